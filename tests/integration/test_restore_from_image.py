"""Restores from a recovery point's image backup, against the lab over HTTP (the instance and volume restore on
SQLite and PostgreSQL, the other flows on SQLite, `ON_SQLITE_ONLY`): the disks are
written from the repository into new snapshots (EBS direct APIs) in the region asked for, a whole instance is
launched from a temporary AMI over them, a point in cold storage (no snapshots left) restores too, and the
temporary AMI and snapshots are gone when the job ends, COMPLETED or FAILED."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from snapkeep.app import Snapkeep
from snapkeep.aws import ec2 as ec2api
from snapkeep.aws.ebs_blocks import EbsBlockSink, EbsBlockSource
from snapkeep.blobstores.local import LocalBlobStore
from snapkeep.domain.arn import Arn
from snapkeep.domain.errors import InvalidParameterValue
from snapkeep.imagestore.keys import KdfParams, PassphraseKey
from snapkeep.imagestore.repository import Repository
from snapkeep.lab.harness import LabHarness
from snapkeep.lab.server import LabServer
from tests.lab_flow import ON_SQLITE_ONLY, ROLE, drain, instance_volumes, tagged_instances

PASSWORD = "restore from the image backup"
FAST_KDF = KdfParams("argon2id", iterations=1, memory_kib=64, lanes=1)
REGIONS = ("us-east-1", "eu-west-1")  # the lab fleet's


def backed_up_instance(sk: Snapkeep, harness: LabHarness, *, reports: bool = True
                       ) -> tuple[dict[str, Any], dict[str, tuple[str, int]]]:
    """A completed recovery point of the fleet's first multi-volume instance (app-1: a volume encrypted with a
    customer key, in another account), and each device's (sha256, GiB) then, when `reports` (they take a while)."""
    target = next(a for a in tagged_instances(sk, "backup", "daily") if len(instance_volumes(sk, a)) >= 2)
    volumes = instance_volumes(sk, target)
    job = sk.service.start_backup_job("main", target, ROLE, lifecycle={"DeleteAfterDays": 7})
    drain(sk)
    done = sk.service.describe_backup_job(job["BackupJobId"])
    assert done["State"] == "COMPLETED", done
    found = {device: harness.volume_report(volume_id) for device, volume_id in volumes.items()} if reports else {}
    with sk.store.transaction() as conn:
        point = dict(sk.store.get_recovery_point(conn, done["RecoveryPointArn"]))
    return point, {device: (r.sha256, r.volume_size) for device, r in found.items()}


def add_image_backup(sk: Snapkeep, point: dict[str, Any], repo_dir: Path) -> dict[str, Any]:
    """The point's snapshots read into a new repository, recorded on the point as the backup engine records it."""
    sk.context.settings = replace(sk.context.settings, repository_password=PASSWORD)
    repo = Repository.init(LocalBlobStore(repo_dir), PassphraseKey(PASSWORD, FAST_KDF))
    role = sk.context.role_for(point["account_id"])
    sources = [EbsBlockSource(sk.context.sessions, point["region"], v["SnapshotId"], role_arn=role,
                              name=v["VolumeId"]) for v in point["volumes"]]
    try:
        manifest = repo.backup(sources, source={"ResourceArn": point["resource_arn"],
                                                "Configuration": point["instance"]})
    finally:
        for source in sources:
            source.close()
    record = {
        "RepositoryUrl": str(repo_dir),
        "KmsKeyArn": None,
        "ImageId": manifest.image_id,
        "Disks": {v["VolumeId"]: {"SnapshotId": v["SnapshotId"], "Size": int(v["VolumeSize"]) * 1024**3,
                                  "DeviceName": v["DeviceName"]} for v in point["volumes"]},
        "BackupSizeInBytes": int(manifest.stats.get("bytes_read", 0)),
        "StoredBytes": int(manifest.stats.get("bytes_stored", 0)),
        "CompletionDate": sk.context.clock().isoformat(),
    }
    with sk.store.transaction() as conn:
        sk.store.update_recovery_point(conn, point["recovery_point_arn"], {"image_backup": record})
    return record


def move_to_cold(sk: Snapkeep, point: dict[str, Any]) -> None:
    """What cold storage does to a point: its AMI and snapshots go, its image backup stays."""
    ec2 = sk.context.ec2(point["account_id"], point["region"])
    ec2api.deregister_image(ec2, point["image_id"])
    for volume in point["volumes"]:
        ec2api.delete_snapshot(ec2, volume["SnapshotId"])
    with sk.store.transaction() as conn:
        sk.store.update_recovery_point(conn, point["recovery_point_arn"], {"storage_class": "COLD"})


def left_behind(sk: Snapkeep, account: str, job_id: str, region: str) -> dict[str, list[str]]:
    """Everything in `region` that carries the restore job's tag (terminated instances excepted)."""
    ec2 = sk.context.ec2(account, region)
    key = ec2api.TAG_RESTORE_JOB
    return {
        "instances": [i["InstanceId"] for i in ec2api.instances_tagged(ec2, key, job_id)],
        "volumes": [v["VolumeId"] for v in ec2api.volumes_tagged(ec2, key, job_id)],
        "snapshots": [s["SnapshotId"] for s in ec2api.snapshots_tagged(ec2, key, job_id)],
        "images": [i["ImageId"] for i in ec2api.images_tagged(ec2, key, job_id)],
    }


def restored_reports(sk: Snapkeep, harness: LabHarness, instance_arn: str) -> dict[str, tuple[str, int]]:
    reports = {d: harness.volume_report(v) for d, v in instance_volumes(sk, instance_arn).items()}
    return {device: (r.sha256, r.volume_size) for device, r in reports.items()}


def restored_keys(sk: Snapkeep, instance_arn: str) -> dict[str, str | None]:
    """Device -> the KMS key its restored volume is encrypted with (None: not encrypted)."""
    arn = Arn.parse(instance_arn)
    volumes = instance_volumes(sk, instance_arn)
    described = ec2api.describe_volumes(sk.context.ec2(arn.account, arn.region), list(volumes.values()))
    return {device: described[v].get("KmsKeyId") if described[v].get("Encrypted") else None
            for device, v in volumes.items()}


def assert_running(sk: Snapkeep, instance_arn: str) -> dict[str, Any]:
    arn = Arn.parse(instance_arn)
    inst = ec2api.describe_instance(sk.context.ec2(arn.account, arn.region), arn.resource_id)
    assert inst["State"]["Name"] == "running"
    return inst


def step_data(sk: Snapkeep, job_id: str) -> dict[str, Any]:
    with sk.store.transaction() as conn:
        return dict(sk.store.get_restore_job(conn, job_id)["step_data"])


def test_instance_and_volume_restore_from_the_image_backup_into_either_region(
        sk: Snapkeep, lab: LabServer, tmp_path: Path) -> None:
    lab_harness = LabHarness(lab.endpoint)  # not the fixture: it would reset the lab under `sk`'s fleet
    point, before = backed_up_instance(sk, lab_harness)
    rp = point["recovery_point_arn"]
    add_image_backup(sk, point, tmp_path / "repo")
    home, account = point["region"], point["account_id"]
    other_region = next(r for r in REGIONS if r != home)
    data_device = sorted(before)[-1]
    data_volume = next(v["VolumeId"] for v in point["volumes"] if v["DeviceName"] == data_device)
    # The guest writes after the backup: restores must bring back the backed-up data, not this.
    lab_harness.write_volume(instance_volumes(sk, point["resource_arn"])[data_device], 3 * 524288, b"later" * 999)

    # From snapshots, only the point's region is possible: asking for another is refused before a job exists.
    jobs_before = len(sk.service.list_restore_jobs())
    with pytest.raises(InvalidParameterValue, match=r"RestoreFrom ImageBackup") as refused:
        sk.service.start_restore_job(rp, {"Placement": {"AvailabilityZone": f"{other_region}a"}})
    assert refused.value.field == "Metadata.Placement" and other_region in refused.value.message
    with pytest.raises(InvalidParameterValue, match=r"Metadata\.RestoreFrom: 'Tape' is not one of"):
        sk.service.start_restore_job(rp, {"RestoreFrom": "Tape"})
    assert len(sk.service.list_restore_jobs()) == jobs_before

    same = sk.service.start_restore_job(rp, {"RestoreFrom": "ImageBackup"}, copy_source_tags=True)["RestoreJobId"]
    other = sk.service.start_restore_job(rp, {"RestoreFrom": "ImageBackup", "InstanceType": "t3.small",
                                              "Placement": {"AvailabilityZone": f"{other_region}a"}})["RestoreJobId"]
    volume = sk.service.start_restore_job(rp, {"RestoreFrom": "ImageBackup", "availabilityZone": f"{other_region}b",
                                               "volumeId": data_volume}, resource_type="EBS")["RestoreJobId"]
    drain(sk, timeout=60)

    for job_id, region in ((same, home), (other, other_region), (volume, other_region)):
        out = sk.service.describe_restore_job(job_id)
        assert out["Status"] == "COMPLETED", out
        assert "StatusMessage" not in out, out
        assert Arn.parse(out["CreatedResourceArn"]).region == region
        data = step_data(sk, job_id)
        assert data["source"] == "ImageBackup" and data["target_region"] == region
        assert set(data["restored_snapshots"]) <= {v["VolumeId"] for v in point["volumes"]}
        left = left_behind(sk, account, job_id, region)
        assert left["snapshots"] == [] and left["images"] == [], f"temporaries of {job_id} remain: {left}"
        assert left_behind(sk, account, job_id, home if region != home else other_region) == {
            "instances": [], "volumes": [], "snapshots": [], "images": []}

    same_arn = sk.service.describe_restore_job(same)["CreatedResourceArn"]
    inst = assert_running(sk, same_arn)
    assert ec2api.tag_dict(inst.get("Tags")).get("backup") == "daily"
    assert inst["SubnetId"] == point["instance"]["SubnetId"]
    assert restored_reports(sk, lab_harness, same_arn) == before
    source_keys = {v["DeviceName"]: v["KmsKeyId"] if v["Encrypted"] else None for v in point["volumes"]}
    assert any(source_keys.values()), "the instance has a volume encrypted with a customer key"
    assert restored_keys(sk, same_arn) == source_keys  # in its region, a volume keeps its own key

    other_arn = sk.service.describe_restore_job(other)["CreatedResourceArn"]
    moved = assert_running(sk, other_arn)
    assert moved["InstanceType"] == "t3.small" and moved["Placement"]["AvailabilityZone"] == f"{other_region}a"
    assert moved["SubnetId"] != point["instance"]["SubnetId"]  # the source's subnet lives in the other region
    assert restored_reports(sk, lab_harness, other_arn) == before
    for device, key in restored_keys(sk, other_arn).items():  # elsewhere: the region's default EBS key
        assert (key is not None) == (source_keys[device] is not None)
        assert key is None or key != source_keys[device]

    volume_id = Arn.parse(sk.service.describe_restore_job(volume)["CreatedResourceArn"]).resource_id
    described = ec2api.describe_volumes(sk.context.ec2(point["account_id"], other_region), [volume_id])[volume_id]
    assert described["AvailabilityZone"] == f"{other_region}b"
    report = lab_harness.volume_report(volume_id)
    assert (report.sha256, report.volume_size) == before[data_device]


class Crash(BaseException):
    """The process dies here: nothing after this point of the step runs."""


def crash(sink: EbsBlockSink, **kwargs: Any) -> str:
    raise Crash


REAL_COMPLETE = EbsBlockSink.complete


def crash_after_sealing(sink: EbsBlockSink, **kwargs: Any) -> str:
    REAL_COMPLETE(sink, **kwargs)
    raise Crash


# Where the worker dies while writing a disk:
# * "writing": every block written, nothing sealed yet: the retry writes the same snapshot again (the same
#   StartSnapshot client token) instead of leaving it behind and starting another;
# * "before-sealing": the seal recorded, CompleteSnapshot not sent: the retry sends it;
# * "after-sealing": CompleteSnapshot sent: the retry's CompleteSnapshot is refused (EBS takes no blocks or seal
#   twice), and it waits for the snapshot instead of failing the job.
CRASH_POINTS = {"writing": ("flush", crash), "before-sealing": ("complete", crash),
                "after-sealing": ("complete", crash_after_sealing)}


@ON_SQLITE_ONLY
@pytest.mark.parametrize("crash_point", list(CRASH_POINTS))
def test_a_point_in_cold_storage_restores_from_its_image_backup_only(
        sk: Snapkeep, lab: LabServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, crash_point: str) -> None:
    lab_harness = LabHarness(lab.endpoint)  # not the fixture: it would reset the lab under `sk`'s fleet
    point, before = backed_up_instance(sk, lab_harness)
    rp = point["recovery_point_arn"]
    add_image_backup(sk, point, tmp_path / "repo")
    move_to_cold(sk, point)
    jobs_before = len(sk.service.list_restore_jobs())
    with pytest.raises(InvalidParameterValue, match="cold storage") as refused:
        sk.service.start_restore_job(rp, {"RestoreFrom": "Snapshot"})
    assert refused.value.field == "Metadata.RestoreFrom" and "ImageBackup" in refused.value.message
    assert len(sk.service.list_restore_jobs()) == jobs_before

    # The worker dies while writing a disk (CRASH_POINTS): the retry finishes that same snapshot. After sealing,
    # the snapshot stays pending for a while (as EBS's do for minutes), so the retry finds it still pending.
    job_id = sk.service.start_restore_job(rp, {})["RestoreJobId"]
    method, replacement = CRASH_POINTS[crash_point]
    pending_for = float(lab_harness.config()["SnapshotSeconds"])
    lab_harness.set_snapshot_seconds(3.0)
    try:
        with monkeypatch.context() as patched:
            patched.setattr(EbsBlockSink, method, replacement)
            with pytest.raises(Crash):
                drain(sk, timeout=60)
    finally:
        lab_harness.set_snapshot_seconds(pending_for)
    interrupted = step_data(sk, job_id)
    assert interrupted["source"] == "ImageBackup" and not interrupted.get("restored_snapshots")
    [(volume_id, record)] = interrupted["writing"].items()
    assert bool(record.get("sealing")) == (crash_point != "writing")
    real = sk.context.clock
    sk.context.clock = lambda: real() + timedelta(seconds=sk.settings.lease_seconds + 1)  # its lease runs out
    drain(sk, timeout=60)
    out = sk.service.describe_restore_job(job_id)
    assert out["Status"] == "COMPLETED", out
    assert step_data(sk, job_id)["restored_snapshots"][volume_id] == record["SnapshotId"]
    assert_running(sk, out["CreatedResourceArn"])
    assert restored_reports(sk, lab_harness, out["CreatedResourceArn"]) == before
    left = left_behind(sk, point["account_id"], job_id, point["region"])
    assert left["snapshots"] == [] and left["images"] == [] and len(left["instances"]) == 1


@ON_SQLITE_ONLY
def test_a_damaged_repository_fails_the_restore_and_leaves_nothing_behind(
        sk: Snapkeep, lab: LabServer, tmp_path: Path) -> None:
    lab_harness = LabHarness(lab.endpoint)  # not the fixture: it would reset the lab under `sk`'s fleet
    point, _ = backed_up_instance(sk, lab_harness, reports=False)
    repo_dir = tmp_path / "repo"
    add_image_backup(sk, point, repo_dir)
    packs = sorted((repo_dir / "data").glob("*/*"))
    assert packs
    for pack in packs:  # one byte inside the first chunk of every pack: every disk's restore reads one
        raw = bytearray(pack.read_bytes())
        raw[30] ^= 0x01
        pack.write_bytes(bytes(raw))

    job_id = sk.service.start_restore_job(point["recovery_point_arn"], {"RestoreFrom": "ImageBackup"})["RestoreJobId"]
    drain(sk, timeout=60)
    out = sk.service.describe_restore_job(job_id)
    assert out["Status"] == "FAILED", out
    message = out["StatusMessage"]
    assert "image backup" in message and any(f"data/{p.parent.name}/{p.name}" in message for p in packs), message
    assert "Cleanup incomplete" not in message
    assert step_data(sk, job_id)["write_started"] is True
    assert left_behind(sk, point["account_id"], job_id, point["region"]) == {
        "instances": [], "volumes": [], "snapshots": [], "images": []}
