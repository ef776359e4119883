"""The live inventory selections are evaluated against: every instance and every volume of every protected account
and region.

Each resource is matched by its own ARN and its own tags, as AWS Backup does: a volume is not picked because the
instance it is attached to is (an instance ARN pattern never matches a volume ARN), only when a selection names
volumes or the volume itself carries the tags asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from snapkeep.aws import ec2 as ec2api
from snapkeep.domain.arn import instance_arn, volume_arn
from snapkeep.domain.errors import SnapkeepError
from snapkeep.domain.selection import ProtectedResource
from snapkeep.engine.context import EngineContext


@dataclass
class Inventory:
    resources: list[ProtectedResource] = field(default_factory=list)
    # "account/region: reason" for each place that could not be listed; the others still count.
    failures: list[str] = field(default_factory=list)
    # ARN -> what was seen of the resource: for a volume its size, type, zone, encryption, key and attachments.
    details: dict[str, dict[str, Any]] = field(default_factory=dict)


def live_inventory(ctx: EngineContext) -> Inventory:
    with ctx.store.transaction() as conn:
        accounts = ctx.store.list_accounts(conn)
    found = Inventory()
    for account in accounts:
        account_id = account["account_id"]
        for region in account["regions"]:
            try:
                client = ctx.sessions.client("ec2", region, account["role_arn"])
                with ec2api.aws_errors("AssumeRole/DescribeInstances"):
                    instances = ec2api.list_instances(client, account_id, region)
                volumes = ec2api.list_volumes(client)
            except SnapkeepError as exc:
                found.failures.append(f"{account_id}/{region}: {exc.message}")
                continue
            except Exception as exc:  # whatever goes wrong in one place must not hide the others
                found.failures.append(f"{account_id}/{region}: {type(exc).__name__}: {exc}")
                continue
            for inst in instances:
                arn = instance_arn(region, account_id, inst.instance_id)
                found.resources.append(ProtectedResource(arn=arn, resource_type="EC2", tags=inst.tags))
                found.details[arn] = {"State": inst.state, "Name": inst.name}
            for vol in volumes:
                config = ec2api.volume_configuration(vol)
                arn = volume_arn(region, account_id, config["VolumeId"])
                found.resources.append(ProtectedResource(arn=arn, resource_type="EBS", tags=config["Tags"]))
                found.details[arn] = config
    return found
