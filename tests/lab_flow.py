"""Helpers shared by the tests that run Snapkeep against the lab: open an app on it, drive its workers."""

from __future__ import annotations

import json
import time
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from snapkeep.app import Snapkeep
from snapkeep.aws import ec2 as ec2api
from snapkeep.config import Settings
from snapkeep.domain.arn import Arn
from snapkeep.engine.worker import run_one

ROLE = "arn:aws:iam::123456789012:role/service-role/AWSBackupDefaultServiceRole"
# The first admin key the API tests' servers are started with (the `api` fixture).
ADMIN_ID, ADMIN_SECRET = "SKAKADMIN00000000001", "S3cr3tForTheAdminKeyOfTheseTests00000000"

ON_SQLITE_ONLY = pytest.mark.parametrize("catalog_url", ["sqlite"], indirect=True)
"""For a flow whose subject is the engine against AWS (the lab), not the catalog: it runs on SQLite only, not on
both catalogs as `catalog_url` would have it. The catalog itself (store, queue leases, scheduler, migrations, keys,
governance, reports, the API's refusals) is tested on both; each kind of end-to-end flow (instance and volume backup
and restore, retention, scheduled runs, image backups, restores from them, notifications, the installed command)
keeps one test on both, so the engine is still proven on PostgreSQL."""


def open_on_lab(endpoint: str, catalog_url: str, home: Path, fleet: Any) -> Snapkeep:
    settings = replace(Settings.from_env({}), home=home, database_url=catalog_url, poll_seconds=0.2,
                       lease_seconds=10).with_lab(endpoint)
    sk = Snapkeep.open(settings)
    for account_id, role_arn in fleet.account_roles().items():
        sk.service.put_protected_account(account_id, list(fleet.regions), role_arn)
    return sk


def drain(sk: Snapkeep, timeout: float = 60.0) -> None:
    """Run the queue's tasks in this thread until none is left (waiting tasks are run when they fall due)."""
    deadline = time.monotonic() + timeout
    while sk.context.queue.pending():
        if not run_one(sk.context, "test-worker"):
            time.sleep(0.05)
        if time.monotonic() > deadline:
            raise AssertionError("the queue did not drain in time")


def set_snapshot_seconds(endpoint: str, seconds: float) -> None:
    request = urllib.request.Request(f"{endpoint}/_harness/config", data=json.dumps(
        {"SnapshotSeconds": seconds}).encode(), headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200


def instance_volumes(sk: Snapkeep, instance_arn: str) -> dict[str, str]:
    arn = Arn.parse(instance_arn)
    inst = ec2api.describe_instance(sk.context.ec2(arn.account, arn.region), arn.resource_id)
    return {b["DeviceName"]: b["Ebs"]["VolumeId"] for b in inst["BlockDeviceMappings"]}


def tagged_instances(sk: Snapkeep, key: str, value: str) -> list[str]:
    from snapkeep.engine.inventory import live_inventory

    return sorted(r.arn for r in live_inventory(sk.context).resources
                  if r.resource_type == "EC2" and r.tags.get(key) == value)


def fresh_fleet(endpoint: str, snapshot_seconds: float = 0.0) -> Any:
    """Reset the lab and seed its fleet anew. moto keeps its state in module globals, so every lab server in one
    process shares it: each test that seeds must start from a reset."""
    from snapkeep.lab.fleet import seed_fleet
    from snapkeep.lab.harness import LabHarness

    LabHarness(endpoint).reset()
    set_snapshot_seconds(endpoint, snapshot_seconds)
    return seed_fleet(endpoint)


def volume_named(sk: Snapkeep, name: str) -> tuple[str, dict[str, Any]]:
    """The ARN and inventory details of the fleet volume tagged Name=`name` (e.g. 'db-1:/dev/sdf')."""
    from snapkeep.engine.inventory import live_inventory

    inventory = live_inventory(sk.context)
    [arn] = [r.arn for r in inventory.resources if r.resource_type == "EBS" and r.tags.get("Name") == name]
    return arn, inventory.details[arn]
