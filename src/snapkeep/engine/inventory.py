"""The live inventory selections are evaluated against: every instance of every protected account and region."""

from __future__ import annotations

from snapkeep.aws import ec2 as ec2api
from snapkeep.domain.arn import instance_arn
from snapkeep.domain.selection import ProtectedResource
from snapkeep.engine.context import EngineContext


def live_inventory(ctx: EngineContext) -> list[ProtectedResource]:
    with ctx.store.transaction() as conn:
        accounts = ctx.store.list_accounts(conn)
    found: list[ProtectedResource] = []
    for account in accounts:
        for region in account["regions"]:
            client = ctx.sessions.client("ec2", region, account["role_arn"])
            for inst in ec2api.list_instances(client, account["account_id"], region):
                found.append(
                    ProtectedResource(
                        arn=instance_arn(region, account["account_id"], inst.instance_id),
                        resource_type="EC2",
                        tags=inst.tags,
                    )
                )
    return found
