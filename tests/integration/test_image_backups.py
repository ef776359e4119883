"""Image-level backups from backup jobs: a vault with an image repository, incremental by changed blocks, cold
storage (snapshots go, the image backup stays), expiry (the image backup is forgotten), and failures. The
incremental flow runs on SQLite and PostgreSQL, the others on SQLite (`ON_SQLITE_ONLY`)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from snapkeep.app import Snapkeep
from snapkeep.aws import ec2 as ec2api
from snapkeep.domain.arn import Arn
from snapkeep.domain.errors import InvalidParameterValue, InvalidRequest, ResourceNotFound
from snapkeep.engine import retention
from snapkeep.engine.repositories import open_repository, set_vault_repository
from snapkeep.imagestore.errors import ImageNotFound, WrongPassphrase
from snapkeep.imagestore.format import BLOCK_SIZE
from snapkeep.lab.harness import LabHarness
from snapkeep.lab.server import LabServer
from tests.lab_flow import ON_SQLITE_ONLY, ROLE, drain, instance_volumes, tagged_instances, volume_named

PASSWORD = "correct horse battery staple"


class MemorySink:
    """A BlockSink keeping what is written, to compare block by block with the lab's volume."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.zeroed = True
        self.blocks: dict[int, bytes] = {}

    def write_block(self, index: int, data: bytes | memoryview) -> None:
        self.blocks[index] = bytes(data)


def with_password(sk: Snapkeep, password: str | None = PASSWORD) -> None:
    sk.context.settings = replace(sk.context.settings, repository_password=password)


def two_volume_instance(sk: Snapkeep) -> str:
    for arn in tagged_instances(sk, "backup", "daily"):
        if len(instance_volumes(sk, arn)) >= 2:
            return arn
    raise AssertionError("the seed fleet has no tagged instance with several volumes")


def backup(sk: Snapkeep, target: str, lifecycle: dict[str, int]) -> dict[str, Any]:
    job = sk.service.start_backup_job("main", target, ROLE, lifecycle=lifecycle)
    drain(sk)
    done = sk.service.describe_backup_job(job["BackupJobId"])
    assert done["State"] == "COMPLETED", done
    with sk.store.transaction() as conn:
        return dict(sk.store.get_recovery_point(conn, done["RecoveryPointArn"]))


def assert_image_matches_volume(sk: Snapkeep, harness: LabHarness, point: dict[str, Any], volume_id: str) -> None:
    backup_record = point["image_backup"]
    repo = open_repository(sk.context, {"Url": backup_record["RepositoryUrl"], "KmsKeyArn": None})
    size = backup_record["Disks"][volume_id]["Size"]
    sink = MemorySink(size)
    repo.restore(backup_record["ImageId"], sink, disk=volume_id)
    assert sink.blocks, "the image backup of a volume with data holds blocks"
    for index, data in sink.blocks.items():
        assert data == harness.read_volume(volume_id, index * BLOCK_SIZE, BLOCK_SIZE), f"block {index}"
    # blocks the image backup does not hold read as zeros on the volume too (sample a few)
    missing = [i for i in range(0, size // BLOCK_SIZE, 97) if i not in sink.blocks][:8]
    for index in missing:
        assert harness.read_volume(volume_id, index * BLOCK_SIZE, BLOCK_SIZE) == bytes(BLOCK_SIZE)


def test_image_backups_follow_the_instance_incrementally_and_live_longer_than_snapshots(
        sk: Snapkeep, lab: LabServer, tmp_path: Path) -> None:
    harness = LabHarness(lab.endpoint)
    with_password(sk)
    repo_dir = tmp_path / "repo"
    made = set_vault_repository(sk.context, "main", str(repo_dir), None, init=True)
    assert made["Created"] is True and (repo_dir / "config").exists()

    target = two_volume_instance(sk)
    volumes = instance_volumes(sk, target)
    lifecycle = {"MoveToColdStorageAfterDays": 2, "DeleteAfterDays": 92}
    first = backup(sk, target, lifecycle)
    record = first["image_backup"]
    assert record is not None and record["RepositoryUrl"] == str(repo_dir)
    assert set(record["Disks"]) == set(volumes.values())
    assert first["move_to_cold_at"] - first["creation_date"] == timedelta(days=2)
    shown = sk.service.describe_recovery_point("main", first["recovery_point_arn"])
    assert shown["ImageBackup"]["ImageId"] == record["ImageId"]
    assert shown["CalculatedLifecycle"]["MoveToColdStorageAt"] == first["move_to_cold_at"]
    for volume_id in volumes.values():
        assert_image_matches_volume(sk, harness, first, volume_id)

    # The guest changes two blocks of one volume: the next image backup reads only what changed.
    device = sorted(volumes)[-1]
    at_first_backup = harness.snapshot_digest(next(v["SnapshotId"] for v in first["volumes"]
                                                   if v["DeviceName"] == device))
    harness.write_volume(volumes[device], 5 * BLOCK_SIZE + 100, b"changed after the first backup" * 100)
    harness.write_volume(volumes[device], 40 * BLOCK_SIZE, b"\x07" * BLOCK_SIZE)
    second = backup(sk, target, lifecycle)
    record2 = second["image_backup"]
    assert record2["Parent"] == record["ImageId"]
    assert record2["BackupSizeInBytes"] == 2 * BLOCK_SIZE, record2
    assert 0 < record2["StoredBytes"] < 2 * BLOCK_SIZE  # two changed blocks, compressed
    assert_image_matches_volume(sk, harness, second, volumes[device])
    repo = open_repository(sk.context, {"Url": str(repo_dir), "KmsKeyArn": None})
    assert {m.image_id for m in repo.images()} == {record["ImageId"], record2["ImageId"]}

    # Past MoveToColdStorageAt: the snapshots and image go, the point is COLD, its image backup stays.
    client = sk.context.ec2(Arn.parse(target).account, Arn.parse(target).region)
    real = sk.context.clock
    sk.context.clock = sk.service.clock = lambda: real() + timedelta(days=2, minutes=5)  # and still moving
    retention.sweep(sk.store, sk.context.clock())
    drain(sk)
    with sk.store.transaction() as conn:
        cold = dict(sk.store.get_recovery_point(conn, first["recovery_point_arn"]))
    assert (cold["storage_class"], cold["status"]) == ("COLD", "COMPLETED")
    for vol in first["volumes"]:
        with pytest.raises(ResourceNotFound):
            ec2api.describe_snapshots(client, [vol["SnapshotId"]])
    assert record["ImageId"] in {m.image_id for m in repo.images()}
    assert_image_matches_volume(sk, harness, cold, volumes[device])
    described = sk.service.describe_recovery_point("main", first["recovery_point_arn"])
    assert described["StorageClass"] == "COLD"

    # The COLD point restores from its image backup, into the lab's other region too: the volume holds the data
    # of the first backup, and no temporary snapshot is left behind.
    region = Arn.parse(target).region
    other = "us-east-1" if region != "us-east-1" else "eu-west-1"
    restore = sk.service.start_restore_job(first["recovery_point_arn"],
                                           {"availabilityZone": f"{other}a", "DeviceName": device},
                                           resource_type="EBS")
    drain(sk)
    restored = sk.service.describe_restore_job(restore["RestoreJobId"])
    assert restored["Status"] == "COMPLETED", restored.get("StatusMessage")
    new_volume = Arn.parse(restored["CreatedResourceArn"])
    assert new_volume.region == other
    assert harness.volume_digest(new_volume.resource_id) == at_first_backup
    other_client = sk.context.ec2(new_volume.account, other)
    assert ec2api.snapshots_tagged(other_client, ec2api.TAG_RESTORE_JOB, restore["RestoreJobId"]) == []

    # Past DeleteAt: both points expire and their image backups are forgotten.
    sk.context.clock = sk.service.clock = lambda: real() + timedelta(days=93)
    retention.sweep(sk.store, sk.context.clock())
    drain(sk)
    with pytest.raises(ImageNotFound):
        repo.image(record["ImageId"])
    with pytest.raises(ImageNotFound):
        repo.image(record2["ImageId"])
    # ... and the repository's gc, queued by the expiry, freed every pack (no image backup is left).
    assert repo.images() == []
    assert [p for p in (repo_dir / "data").rglob("*") if p.is_file()] == []


@ON_SQLITE_ONLY
def test_vault_repository_refuses_what_would_fail_later(sk: Snapkeep, tmp_path: Path) -> None:
    with_password(sk)
    with pytest.raises(InvalidParameterValue):
        set_vault_repository(sk.context, "main", "ftp://nowhere/x", None, init=True)
    with pytest.raises(ResourceNotFound):
        set_vault_repository(sk.context, "no-such-vault", str(tmp_path / "r"), None, init=True)
    with pytest.raises(ResourceNotFound):  # no repository there and no --init
        set_vault_repository(sk.context, "main", str(tmp_path / "absent"), None, init=False)
    set_vault_repository(sk.context, "main", str(tmp_path / "r"), None, init=True)
    with_password(sk, "another passphrase")
    with pytest.raises(WrongPassphrase):
        set_vault_repository(sk.context, "main", str(tmp_path / "r"), None, init=False)
    with sk.store.transaction() as conn:
        assert sk.store.get_vault(conn, "main")["image_repository"]["Url"] == str(tmp_path / "r")


@ON_SQLITE_ONLY
def test_a_job_whose_repository_cannot_be_opened_fails_and_leaves_no_snapshot(
        sk: Snapkeep, lab: LabServer, tmp_path: Path) -> None:
    with_password(sk)
    set_vault_repository(sk.context, "main", str(tmp_path / "r"), None, init=True)
    with_password(sk, "not the passphrase")
    target = two_volume_instance(sk)
    job = sk.service.start_backup_job("main", target, ROLE, lifecycle={"DeleteAfterDays": 7})
    drain(sk)
    done = sk.service.describe_backup_job(job["BackupJobId"])
    assert done["State"] == "FAILED"
    assert "key" in done["StatusMessage"] and str(tmp_path / "r") in done["StatusMessage"], done
    client = sk.context.ec2(Arn.parse(target).account, Arn.parse(target).region)
    assert ec2api.snapshots_tagged(client, ec2api.TAG_BACKUP_JOB, job["BackupJobId"]) == []
    assert ec2api.images_tagged(client, ec2api.TAG_BACKUP_JOB, job["BackupJobId"]) == []


@ON_SQLITE_ONLY
def test_cli_sets_and_shows_a_vault_repository(sk: Snapkeep, tmp_path: Path) -> None:
    env = {"SNAPKEEP_HOME": str(sk.settings.home), "SNAPKEEP_DATABASE_URL": sk.settings.database_url,
           "SNAPKEEP_REPO_PASSWORD": PASSWORD, "PATH": "/usr/bin:/bin"}
    cli = [sys.executable, "-m", "snapkeep.cli"]
    bad = subprocess.run([*cli, "vault", "repository", "set", "main", "--repo", "ftp://x/y"], env=env,
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "neither a local path nor s3://" in bad.stderr, bad
    ok = subprocess.run([*cli, "vault", "repository", "set", "main", "--repo", str(tmp_path / "r"), "--init",
                         "--json"], env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    shown = subprocess.run([*cli, "vault", "repository", "show", "main", "--json"], env=env, capture_output=True,
                           text=True)
    assert shown.returncode == 0 and str(tmp_path / "r") in shown.stdout
    wrong = subprocess.run([*cli, "vault", "repository", "set", "main", "--repo", str(tmp_path / "r")],
                           env={**env, "SNAPKEEP_REPO_PASSWORD": "wrong"}, capture_output=True, text=True)
    assert wrong.returncode == 6, wrong


@ON_SQLITE_ONLY
def test_s3_repository_wrapped_by_kms_retains_packs_past_the_point_delete_at(sk: Snapkeep, tmp_path: Path) -> None:
    """An S3 repository with Object Lock (GOVERNANCE), its key wrapped by a KMS key: no passphrase on the worker,
    packs in the vault's storage class, each retained at least until the recovery point's DeleteAt."""
    with_password(sk, None)
    s3 = sk.context.sessions.client("s3", sk.settings.region)
    s3.create_bucket(Bucket="vault-images", ObjectLockEnabledForBucket=True)
    kms_key = sk.context.sessions.client("kms", sk.settings.region).create_key()["KeyMetadata"]["Arn"]
    made = set_vault_repository(sk.context, "main", "s3://vault-images/fleet", kms_key, init=True,
                                storage_class="GLACIER_IR", object_lock_mode="GOVERNANCE")
    assert (made["ObjectLockMode"], made["StorageClass"]) == ("GOVERNANCE", "GLACIER_IR")

    volume_arn, _ = volume_named(sk, "db-1:/dev/sdf")
    point = backup(sk, volume_arn, {"MoveToColdStorageAfterDays": 1, "DeleteAfterDays": 120})
    record = point["image_backup"]
    assert record["KmsKeyArn"] == kms_key and record["RepositoryUrl"] == "s3://vault-images/fleet"
    packs = [o for o in s3.list_objects_v2(Bucket="vault-images", Prefix="fleet/data/")["Contents"]]
    assert packs, "the image backup's packs are in the bucket"
    for obj in packs:
        head = s3.head_object(Bucket="vault-images", Key=obj["Key"])
        assert head["StorageClass"] == "GLACIER_IR"
        assert head["ObjectLockMode"] == "GOVERNANCE"
        assert head["ObjectLockRetainUntilDate"] >= point["delete_at"]
    repo = open_repository(sk.context, {"Url": record["RepositoryUrl"], "KmsKeyArn": kms_key})
    assert repo.image(record["ImageId"]).tags["BackupJobId"] == point["backup_job_id"]

    # Lengthening the point's retention retains its image backup (manifest and packs) as long; shortening it, or
    # keeping it forever (an Object Lock needs a date), is refused and changes nothing.
    arn = point["recovery_point_arn"]
    longer = sk.service.update_recovery_point_lifecycle(
        "main", arn, {"MoveToColdStorageAfterDays": 1, "DeleteAfterDays": 400})
    drain(sk)
    until = longer["CalculatedLifecycle"]["DeleteAt"]
    manifest_key = f"fleet/images/{record['ImageId']}"
    objects = [o["Key"] for o in s3.list_objects_v2(Bucket="vault-images", Prefix="fleet/")["Contents"]]
    assert manifest_key in objects
    for key in [*(o["Key"] for o in packs), manifest_key]:
        assert s3.head_object(Bucket="vault-images", Key=key)["ObjectLockRetainUntilDate"] >= until, key
    for lifecycle in ({"MoveToColdStorageAfterDays": 1, "DeleteAfterDays": 100}, {"MoveToColdStorageAfterDays": 1}):
        with pytest.raises(InvalidRequest, match="image backup"):
            sk.service.update_recovery_point_lifecycle("main", arn, lifecycle)
    assert sk.service.describe_recovery_point("main", arn)["CalculatedLifecycle"]["DeleteAt"] == until
