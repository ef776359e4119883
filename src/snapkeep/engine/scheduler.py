"""The durable scheduler: turns each rule's cron schedule into recorded runs.

Each rule keeps a cursor (the last run time handed out) in the catalog; a tick records every run between the
cursor and `now` (unique per rule and time) and moves the cursor in the same transaction, so a restart neither
loses nor repeats a run. Runs missed while Snapkeep was down are recorded too; their jobs end EXPIRED when their
start window has closed, as AWS Backup's do.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from snapkeep.catalog.store import CatalogStore
from snapkeep.domain.plans import plan_from_aws_json
from snapkeep.engine.queue import TaskQueue

MAX_CATCH_UP_RUNS = 50  # per rule and tick: a long outage must not flood the queue with expired runs


def tick(store: CatalogStore, now: datetime) -> list[str]:
    """Record the runs that fell due up to `now`; return the ids of those queued to be carried out."""
    created: list[str] = []
    with store.transaction() as conn:
        plans = store.list_plans(conn)
        for plan_row in plans:
            plan = plan_from_aws_json(plan_row["plan"])
            version = store.get_plan_version(conn, plan_row["plan_id"], plan_row["version_id"])
            for rule in plan.rules:
                # A rule never scheduled before starts from when its plan version was made: a rule added or
                # renamed by an update must not catch up on runs from before it existed.
                cursor = store.rule_cursor(conn, plan_row["plan_id"], rule.rule_name) or version["creation_date"]
                runs: list[datetime] = []
                dropped = 0
                for run_at in rule.schedule.runs_between(cursor, now, rule.schedule_expression_timezone):
                    runs.append(run_at)
                    if len(runs) > MAX_CATCH_UP_RUNS:
                        runs.pop(0)
                        dropped += 1
                for index, run_at in enumerate(runs):
                    # Only the newest due run is carried out; older ones missed while Snapkeep was down are
                    # recorded as EXPIRED, so one outage never starts a burst of backups of the same resources.
                    newest = index == len(runs) - 1
                    run_id = str(uuid.uuid4())
                    if (
                        store.insert_run(
                            conn,
                            {
                                "run_id": run_id,
                                "plan_id": plan_row["plan_id"],
                                "rule_name": rule.rule_name,
                                "scheduled_at": run_at,
                                "state": "CREATED" if newest else "EXPIRED",
                                "message": (f"{dropped} earlier missed runs were not recorded" if dropped else None)
                                if newest
                                else "missed: a later run of the rule was due before this one started",
                                "creation_date": now,
                            },
                        )
                        and newest
                    ):
                        TaskQueue.enqueue(conn, "run", run_id, now)
                        created.append(run_id)
                if runs:
                    store.set_rule_cursor(conn, plan_row["plan_id"], rule.rule_name, runs[-1])
    return created
