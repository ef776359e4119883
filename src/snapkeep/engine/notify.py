"""Delivery of backup vault notifications: each outbox row (catalog.events) is published to its SNS topic by a
`notify` task.

The topic is reached in its own region, with Snapkeep's own credentials when it is in Snapkeep's account and
through the protected account's role otherwise. A published row is marked delivered (once: the mark is guarded,
and a marked row is never published again). A failed publish is counted on the row with its error and retried
after a growing pause (domain.notifications.delivery_backoff); after MAX_DELIVERY_ATTEMPTS the task ends and the
row stays in the outbox, undelivered, with its last error.

Delivery is at least once: a process that dies after SNS accepted a message and before the mark is written sends
it again when the task is resumed (so can a worker that lost its lease in the middle of Publish). Every delivery
of one row carries the same NotificationId attribute, so a subscriber can drop such a duplicate.
"""

from __future__ import annotations

import logging

from snapkeep.aws import sns
from snapkeep.catalog import events
from snapkeep.domain.arn import Arn
from snapkeep.domain.errors import SnapkeepError
from snapkeep.domain.notifications import SUBJECT, delivery_backoff, gives_up, publish_attributes
from snapkeep.engine.context import Done, EngineContext, Outcome, RetryAt

log = logging.getLogger("snapkeep.notify")


def deliver_vault_event(ctx: EngineContext, ref_id: str) -> Outcome:
    """Publish one outbox row; Done when delivered (or given up), else when to try again."""
    event_id = int(ref_id)
    with ctx.store.transaction() as conn:
        row = events.get_event(conn, event_id)
    if row is None or row["delivered_at"] is not None:
        return Done()
    stored = row["message"]
    ctx.check_lease()  # a worker that lost the task must not publish it a second time
    try:
        topic = Arn.parse(row["topic_arn"], field="SNSTopicArn")
        role = None if topic.account == ctx.settings.account_id else ctx.role_for(topic.account)
        client = ctx.sessions.client("sns", topic.region, role)
        sns.publish(
            client,
            row["topic_arn"],
            str(stored.get("Subject") or SUBJECT),
            str(stored["Message"]),
            publish_attributes(stored, str(event_id)),
        )
    except Exception as exc:  # any failure is counted on the row and retried; none is lost
        reason = exc.message if isinstance(exc, SnapkeepError) else f"{type(exc).__name__}: {exc}"
        with ctx.store.transaction() as conn:
            failed = events.record_failure(conn, event_id, reason)
        if gives_up(failed):
            log.error("notification %s (%s) given up after %d attempts: %s", event_id, row["event"], failed, reason)
            return Done()
        log.warning("notification %s (%s) to %s failed (%s); retrying", event_id, row["event"], row["topic_arn"],
                    reason)
        return RetryAt(ctx.clock() + delivery_backoff(failed))
    with ctx.store.transaction() as conn:
        events.mark_delivered(conn, event_id, ctx.clock())
    return Done()
