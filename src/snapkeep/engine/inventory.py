"""The live inventory selections are evaluated against: every instance of every protected account and region."""

from __future__ import annotations

from dataclasses import dataclass, field

from snapkeep.aws import ec2 as ec2api
from snapkeep.domain.arn import instance_arn
from snapkeep.domain.errors import SnapkeepError
from snapkeep.domain.selection import ProtectedResource
from snapkeep.engine.context import EngineContext


@dataclass
class Inventory:
    resources: list[ProtectedResource] = field(default_factory=list)
    # "account/region: reason" for each place that could not be listed; the others still count.
    failures: list[str] = field(default_factory=list)


def live_inventory(ctx: EngineContext) -> Inventory:
    with ctx.store.transaction() as conn:
        accounts = ctx.store.list_accounts(conn)
    found = Inventory()
    for account in accounts:
        for region in account["regions"]:
            try:
                client = ctx.sessions.client("ec2", region, account["role_arn"])
                with ec2api.aws_errors("AssumeRole/DescribeInstances"):
                    instances = ec2api.list_instances(client, account["account_id"], region)
            except SnapkeepError as exc:
                found.failures.append(f"{account['account_id']}/{region}: {exc.message}")
                continue
            except Exception as exc:  # whatever goes wrong in one place must not hide the others
                found.failures.append(f"{account['account_id']}/{region}: {type(exc).__name__}: {exc}")
                continue
            for inst in instances:
                found.resources.append(
                    ProtectedResource(
                        arn=instance_arn(region, account["account_id"], inst.instance_id),
                        resource_type="EC2",
                        tags=inst.tags,
                    )
                )
    return found
