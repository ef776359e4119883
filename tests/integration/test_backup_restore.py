"""Backups and restores end to end against the lab over HTTP. The backup and restore of an instance and a volume,
a scheduled run, retention, a lifecycle update and a stop racing a worker's lease run on SQLite and PostgreSQL; the
other flows, whose subject is the engine against AWS, on SQLite (`ON_SQLITE_ONLY`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from snapkeep.app import Snapkeep
from snapkeep.aws import ec2 as ec2api
from snapkeep.domain.arn import Arn
from snapkeep.domain.errors import Conflict, InvalidParameterValue, ResourceNotFound
from snapkeep.engine import backup as backup_engine
from snapkeep.engine import retention, scheduler
from snapkeep.engine.inventory import live_inventory
from snapkeep.engine.worker import run_one
from snapkeep.lab.harness import LabHarness
from snapkeep.lab.server import LabServer
from tests.lab_flow import ON_SQLITE_ONLY, ROLE, drain, instance_volumes, set_snapshot_seconds, tagged_instances


def multi_volume_instance(sk: Snapkeep) -> str:
    for arn in tagged_instances(sk, "backup", "daily"):
        if len(instance_volumes(sk, arn)) >= 2:
            return arn
    raise AssertionError("the seed fleet has no tagged instance with several volumes")


def digests(harness: LabHarness, volumes: dict[str, str]) -> dict[str, str]:
    return {dev: harness.volume_digest(vol) for dev, vol in volumes.items()}


def test_backup_then_restore_instance_and_volume(sk: Snapkeep, lab: LabServer) -> None:
    harness = LabHarness(lab.endpoint)
    target = multi_volume_instance(sk)
    volumes = instance_volumes(sk, target)
    before = digests(harness, volumes)

    job = sk.service.start_backup_job("main", target, ROLE, lifecycle={"DeleteAfterDays": 7})
    drain(sk)
    done = sk.service.describe_backup_job(job["BackupJobId"])
    assert done["State"] == "COMPLETED", done
    point = sk.service.describe_recovery_point("main", done["RecoveryPointArn"])
    assert point["RecoveryPointArn"].startswith(f"arn:aws:ec2:{Arn.parse(target).region}::image/ami-")
    assert {v["DeviceName"] for v in point["Volumes"]} == set(volumes)
    for vol in point["Volumes"]:
        assert harness.snapshot_digest(vol["SnapshotId"]) == before[vol["DeviceName"]]
    assert point["CalculatedLifecycle"]["DeleteAt"] - point["CreationDate"] == timedelta(days=7)

    # The guest writes after the backup: the recovery point must not change.
    data_device = sorted(volumes)[-1]
    harness.write_volume(volumes[data_device], 524288 * 2 + 17, b"written after the backup" * 500)
    after = digests(harness, volumes)
    assert after[data_device] != before[data_device]

    restore = sk.service.start_restore_job(point["RecoveryPointArn"], {"InstanceType": "t3.small"},
                                           copy_source_tags=True)
    drain(sk)
    restored = sk.service.describe_restore_job(restore["RestoreJobId"])
    assert restored["Status"] == "COMPLETED", restored
    new_arn = restored["CreatedResourceArn"]
    assert new_arn != target
    assert digests(harness, instance_volumes(sk, new_arn)) == before
    arn = Arn.parse(new_arn)
    inst = ec2api.describe_instance(sk.context.ec2(arn.account, arn.region), arn.resource_id)
    assert inst["InstanceType"] == "t3.small"
    tags = ec2api.tag_dict(inst.get("Tags"))
    assert tags.get("backup") == "daily" and tags[ec2api.TAG_RESTORE_JOB] == restore["RestoreJobId"]

    zone = f"{arn.region}b"
    single = sk.service.start_restore_job(point["RecoveryPointArn"], {"availabilityZone": zone,
                                                                      "DeviceName": data_device},
                                          resource_type="EBS")
    drain(sk)
    vol_job = sk.service.describe_restore_job(single["RestoreJobId"])
    assert vol_job["Status"] == "COMPLETED", vol_job
    volume_id = Arn.parse(vol_job["CreatedResourceArn"]).resource_id
    assert harness.volume_digest(volume_id) == before[data_device]
    described = ec2api.describe_volumes(sk.context.ec2(arn.account, arn.region), [volume_id])[volume_id]
    assert described["AvailabilityZone"] == zone


def test_scheduled_run_backs_up_exactly_the_selection(sk: Snapkeep) -> None:
    plan = sk.service.create_backup_plan({"BackupPlanName": "p", "Rules": [
        {"RuleName": "hourly", "TargetBackupVaultName": "main", "ScheduleExpression": "cron(0 * ? * * *)",
         "StartWindowMinutes": 60, "CompletionWindowMinutes": 120}]})
    sk.service.create_backup_selection(plan["BackupPlanId"], {
        "SelectionName": "daily-tag", "IamRoleArn": ROLE,
        "ListOfTags": [{"ConditionType": "STRINGEQUALS", "ConditionKey": "backup", "ConditionValue": "daily"}]})
    created = sk.service.get_backup_plan(plan["BackupPlanId"])["CreationDate"]
    now = created.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1, minutes=1)
    real = sk.context.clock
    offset = now - real()
    sk.context.clock = lambda: real() + offset  # an hour later, and still moving
    assert len(scheduler.tick(sk.store, now)) == 1
    drain(sk)
    jobs = sk.service.list_backup_jobs()
    # Tags pick every resource that carries them itself, as in AWS: the fleet's volumes are tagged backup=daily too.
    tagged = [r for r in live_inventory(sk.context).resources if r.tags.get("backup") == "daily"]
    expected = sorted(r.arn for r in tagged)
    assert sorted(j["ResourceArn"] for j in jobs) == expected
    assert {(j["ResourceArn"], j["ResourceType"]) for j in jobs} == {(r.arn, r.resource_type) for r in tagged}
    assert {r.resource_type for r in tagged} == {"EC2", "EBS"}
    assert set(tagged_instances(sk, "backup", "daily")) < set(expected)
    assert len({Arn.parse(a).account for a in expected}) == 2, "the fleet spans two accounts"
    assert all(j["State"] == "COMPLETED" for j in jobs), jobs
    assert all(j["CreatedBy"]["BackupPlanId"] == plan["BackupPlanId"] for j in jobs)


@ON_SQLITE_ONLY
def test_job_of_a_vanished_instance_fails_cleanly(sk: Snapkeep) -> None:
    target = tagged_instances(sk, "backup", "daily")[0]
    arn = Arn.parse(target)
    sk.context.ec2(arn.account, arn.region).terminate_instances(InstanceIds=[arn.resource_id])
    job = sk.service.start_backup_job("main", target, ROLE)
    drain(sk)
    out = sk.service.describe_backup_job(job["BackupJobId"])
    assert out["State"] == "FAILED"
    assert arn.resource_id in out["StatusMessage"]


@ON_SQLITE_ONLY
def test_stopped_job_is_aborted_and_leaves_no_snapshot(sk: Snapkeep, lab: LabServer) -> None:
    set_snapshot_seconds(lab.endpoint, 30.0)
    target = multi_volume_instance(sk)
    job_id = sk.service.start_backup_job("main", target, ROLE)["BackupJobId"]
    for _ in range(3):  # start, snapshot, first poll: the snapshots are pending
        run_one(sk.context, "test-worker")
    job = sk.service.describe_backup_job(job_id)
    assert job["State"] == "RUNNING"
    sk.service.stop_backup_job(job_id)
    set_snapshot_seconds(lab.endpoint, 0.0)
    drain(sk)
    assert sk.service.describe_backup_job(job_id)["State"] == "ABORTED"
    arn = Arn.parse(target)
    assert ec2api.snapshots_tagged(sk.context.ec2(arn.account, arn.region), ec2api.TAG_BACKUP_JOB, job_id) == []


@ON_SQLITE_ONLY
def test_job_past_its_start_window_expires(sk: Snapkeep) -> None:
    target = tagged_instances(sk, "backup", "daily")[0]
    job_id = sk.service.start_backup_job("main", target, ROLE, start_window_minutes=60)["BackupJobId"]
    real = sk.context.clock
    sk.context.clock = lambda: real() + timedelta(minutes=61)
    drain(sk)
    out: dict[str, Any] = sk.service.describe_backup_job(job_id)
    assert out["State"] == "EXPIRED"
    assert "start window" in out["StatusMessage"]


def test_retention_expires_points_and_removes_their_snapshots(sk: Snapkeep) -> None:
    target = multi_volume_instance(sk)
    job = sk.service.start_backup_job("main", target, ROLE, lifecycle={"DeleteAfterDays": 1})
    keep = sk.service.start_backup_job("main", target, ROLE, lifecycle={"DeleteAfterDays": 30})
    drain(sk)
    short = sk.service.describe_backup_job(job["BackupJobId"])["RecoveryPointArn"]
    long = sk.service.describe_backup_job(keep["BackupJobId"])["RecoveryPointArn"]
    point = sk.service.describe_recovery_point("main", short)
    snapshot_ids = [v["SnapshotId"] for v in point["Volumes"]]
    real = sk.context.clock
    assert retention.sweep(sk.store, real() + timedelta(hours=23)) == []
    later = real() + timedelta(days=1, minutes=1)
    sk.context.clock = lambda: later
    assert retention.sweep(sk.store, later) == [short]
    drain(sk)
    assert [p["RecoveryPointArn"] for p in sk.service.list_recovery_points("main")] == [long]
    arn = Arn.parse(target)
    ec2 = sk.context.ec2(arn.account, arn.region)
    left = ec2.describe_snapshots(Filters=[{"Name": "snapshot-id", "Values": snapshot_ids}])["Snapshots"]
    assert left == []
    assert ec2.describe_images(Filters=[{"Name": "image-id", "Values": [point["RecoveryPointArn"].rsplit("/", 1)[1]]}]
                               )["Images"] == []
    assert retention.sweep(sk.store, later) == []


def test_manual_delete_and_lifecycle_update(sk: Snapkeep) -> None:
    target = tagged_instances(sk, "backup", "daily")[0]
    job = sk.service.start_backup_job("main", target, ROLE, lifecycle={"DeleteAfterDays": 200})
    drain(sk)
    rp = sk.service.describe_backup_job(job["BackupJobId"])["RecoveryPointArn"]
    with pytest.raises(InvalidParameterValue):
        sk.service.update_recovery_point_lifecycle("main", rp, {"MoveToColdStorageAfterDays": 30,
                                                                 "DeleteAfterDays": 60})
    out = sk.service.update_recovery_point_lifecycle("main", rp, {"MoveToColdStorageAfterDays": 30,
                                                                   "DeleteAfterDays": 120})
    created = sk.service.describe_recovery_point("main", rp)["CreationDate"]
    assert out["CalculatedLifecycle"]["DeleteAt"] == created + timedelta(days=120)
    # EC2 has no cold storage in AWS Backup: the setting is kept, the point stays warm and restorable.
    assert out["CalculatedLifecycle"]["MoveToColdStorageAt"] is None
    restore = sk.service.start_restore_job(rp, {})
    with pytest.raises(Conflict, match="being restored"):
        sk.service.delete_recovery_point("main", rp)
    drain(sk)
    assert sk.service.describe_restore_job(restore["RestoreJobId"])["Status"] == "COMPLETED"
    later = sk.context.clock() + timedelta(days=30, minutes=1)
    sk.context.clock = lambda: later
    retention.sweep(sk.store, later)
    drain(sk)
    point = sk.service.describe_recovery_point("main", rp)
    assert point["StorageClass"] == "WARM" and point["Lifecycle"]["MoveToColdStorageAfterDays"] == 30
    sk.service.delete_recovery_point("main", rp)
    drain(sk)
    with pytest.raises(ResourceNotFound):
        sk.service.describe_recovery_point("main", rp)


class Crash(BaseException):
    """The process dies here: nothing after this point of the step runs."""


def crash_after(monkeypatch: pytest.MonkeyPatch, action: Any) -> None:
    def dying(*args: Any, **kwargs: Any) -> Any:
        action(*args, **kwargs)
        raise Crash

    monkeypatch.setattr(backup_engine.ec2api, "create_instance_snapshots", dying)


def resume_after_crash(sk: Snapkeep, monkeypatch: pytest.MonkeyPatch, job_id: str) -> None:
    with pytest.raises(Crash):
        drain(sk)
    monkeypatch.undo()
    with sk.store.transaction() as conn:
        assert sk.store.get_job(conn, job_id)["step"] == "snapshot"
    real = sk.context.clock
    sk.context.clock = lambda: real() + timedelta(seconds=sk.settings.lease_seconds + 1)  # the lease runs out
    drain(sk)


@ON_SQLITE_ONLY
def test_restarted_job_adopts_the_snapshots_a_crashed_attempt_made(sk: Snapkeep,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Crash after CreateSnapshots returned but before its ids were recorded: the tags find them again."""
    target = multi_volume_instance(sk)
    arn = Arn.parse(target)
    ec2 = sk.context.ec2(arn.account, arn.region)
    crash_after(monkeypatch, ec2api.create_instance_snapshots)
    job_id = sk.service.start_backup_job("main", target, ROLE)["BackupJobId"]
    resume_after_crash(sk, monkeypatch, job_id)
    made = ec2api.snapshots_tagged(ec2, ec2api.TAG_BACKUP_JOB, job_id)
    assert len(made) == len(instance_volumes(sk, target))
    done = sk.service.describe_backup_job(job_id)
    assert done["State"] == "COMPLETED"
    point = sk.service.describe_recovery_point("main", done["RecoveryPointArn"])
    assert sorted(v["SnapshotId"] for v in point["Volumes"]) == sorted(s["SnapshotId"] for s in made)


@ON_SQLITE_ONLY
def test_restarted_job_replaces_an_incomplete_snapshot_set(sk: Snapkeep, monkeypatch: pytest.MonkeyPatch) -> None:
    target = multi_volume_instance(sk)
    arn = Arn.parse(target)
    ec2 = sk.context.ec2(arn.account, arn.region)
    one_volume = next(iter(instance_volumes(sk, target).values()))
    partial: list[str] = []

    def one_snapshot(client: Any, instance_id: str, tags: dict[str, str], description: str) -> None:
        partial.append(client.create_snapshot(VolumeId=one_volume, TagSpecifications=[
            {"ResourceType": "snapshot", "Tags": ec2api.tag_list(tags)}])["SnapshotId"])

    crash_after(monkeypatch, one_snapshot)
    job_id = sk.service.start_backup_job("main", target, ROLE)["BackupJobId"]
    resume_after_crash(sk, monkeypatch, job_id)
    done = sk.service.describe_backup_job(job_id)
    assert done["State"] == "COMPLETED"
    point = sk.service.describe_recovery_point("main", done["RecoveryPointArn"])
    assert partial and partial[0] not in {v["SnapshotId"] for v in point["Volumes"]}
    tagged = {s["SnapshotId"] for s in ec2api.snapshots_tagged(ec2, ec2api.TAG_BACKUP_JOB, job_id)}
    assert tagged == {v["SnapshotId"] for v in point["Volumes"]}


@ON_SQLITE_ONLY
def test_restore_into_another_subnet_with_other_groups_and_no_source_tags(sk: Snapkeep, lab: LabServer) -> None:
    harness = LabHarness(lab.endpoint)
    target = multi_volume_instance(sk)
    arn = Arn.parse(target)
    ec2 = sk.context.ec2(arn.account, arn.region)
    source = ec2api.describe_instance(ec2, arn.resource_id)
    before = digests(harness, instance_volumes(sk, target))
    job = sk.service.start_backup_job("main", target, ROLE)
    drain(sk)
    rp = sk.service.describe_backup_job(job["BackupJobId"])["RecoveryPointArn"]

    vpc_cidr = ec2.describe_vpcs(VpcIds=[source["VpcId"]])["Vpcs"][0]["CidrBlock"]
    other_cidr = vpc_cidr.rsplit(".", 2)[0] + ".200.0/24"
    subnet = ec2.create_subnet(VpcId=source["VpcId"], CidrBlock=other_cidr,
                               AvailabilityZone=f"{arn.region}c")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="restored", Description="restore test",
                                      VpcId=source["VpcId"])["GroupId"]
    restore = sk.service.start_restore_job(rp, {"SubnetId": subnet, "SecurityGroupIds": f'["{group}"]',
                                                "InstanceType": "c5.large"}, copy_source_tags=False)
    drain(sk)
    out = sk.service.describe_restore_job(restore["RestoreJobId"])
    assert out["Status"] == "COMPLETED", out
    new_id = Arn.parse(out["CreatedResourceArn"]).resource_id
    inst = ec2api.describe_instance(ec2, new_id)
    assert inst["SubnetId"] == subnet
    assert [g["GroupId"] for g in inst["SecurityGroups"]] == [group]
    assert inst["InstanceType"] == "c5.large"
    tags = ec2api.tag_dict(inst.get("Tags"))
    assert "backup" not in tags and "Name" not in tags
    assert tags[ec2api.TAG_RESTORE_JOB] == restore["RestoreJobId"]
    assert digests(harness, instance_volumes(sk, out["CreatedResourceArn"])) == before


@ON_SQLITE_ONLY
def test_restore_refuses_bad_metadata_and_creates_nothing(sk: Snapkeep) -> None:
    target = multi_volume_instance(sk)
    job = sk.service.start_backup_job("main", target, ROLE)
    drain(sk)
    rp = sk.service.describe_backup_job(job["BackupJobId"])["RecoveryPointArn"]
    with pytest.raises(InvalidParameterValue, match="DeviceName is required"):
        sk.service.start_restore_job(rp, {"availabilityZone": "us-east-1a"}, resource_type="EBS")
    with pytest.raises(InvalidParameterValue, match="no volume '/dev/nope'"):
        sk.service.start_restore_job(rp, {"availabilityZone": "us-east-1a", "DeviceName": "/dev/nope"},
                                     resource_type="EBS")
    with pytest.raises(ResourceNotFound):
        sk.service.start_restore_job("arn:aws:ec2:us-east-1::image/ami-0000", {})
    assert sk.service.list_restore_jobs() == []


@ON_SQLITE_ONLY
def test_encrypted_volume_keeps_its_key_through_backup_and_restore(sk: Snapkeep, lab: LabServer) -> None:
    harness = LabHarness(lab.endpoint)
    target = next(a for a in tagged_instances(sk, "backup", "daily") if Arn.parse(a).account == "222222222222")
    arn = Arn.parse(target)
    ec2 = sk.context.ec2(arn.account, arn.region)
    volumes = instance_volumes(sk, target)
    described = ec2api.describe_volumes(ec2, list(volumes.values()))
    encrypted = {dev: described[vol]["KmsKeyId"] for dev, vol in volumes.items() if described[vol]["Encrypted"]}
    assert encrypted, "the seed fleet's account 222222222222 instance has a KMS-encrypted volume"
    before = digests(harness, volumes)
    job = sk.service.start_backup_job("main", target, ROLE)
    drain(sk)
    rp = sk.service.describe_backup_job(job["BackupJobId"])["RecoveryPointArn"]
    point = sk.service.describe_recovery_point("main", rp)
    assert point["IsEncrypted"] is True
    restore = sk.service.start_restore_job(rp, {})
    drain(sk)
    out = sk.service.describe_restore_job(restore["RestoreJobId"])
    assert out["Status"] == "COMPLETED", out
    new_volumes = instance_volumes(sk, out["CreatedResourceArn"])
    assert digests(harness, new_volumes) == before
    new_described = ec2api.describe_volumes(ec2, list(new_volumes.values()))
    for dev, key in encrypted.items():
        assert new_described[new_volumes[dev]]["KmsKeyId"] == key


def test_stop_arriving_during_create_snapshots_aborts_and_leaves_nothing(sk: Snapkeep,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The stop lands while the worker is inside CreateSnapshots and holds the task's lease."""
    target = multi_volume_instance(sk)
    job_id = sk.service.start_backup_job("main", target, ROLE)["BackupJobId"]
    real_create = ec2api.create_instance_snapshots
    seen: dict[str, Any] = {}

    def create_then_get_stopped(*args: Any, **kwargs: Any) -> Any:
        made = real_create(*args, **kwargs)
        sk.service.stop_backup_job(job_id)
        # The stop re-queues the task, but must not take it from the worker holding its lease.
        seen["second_claim"] = sk.context.queue.claim("intruder", sk.context.clock(), timedelta(seconds=30))
        return made

    monkeypatch.setattr(backup_engine.ec2api, "create_instance_snapshots", create_then_get_stopped)
    drain(sk)
    assert seen["second_claim"] is None
    out = sk.service.describe_backup_job(job_id)
    assert out["State"] == "ABORTED", out
    arn = Arn.parse(target)
    assert ec2api.snapshots_tagged(sk.context.ec2(arn.account, arn.region), ec2api.TAG_BACKUP_JOB, job_id) == []
    assert sk.service.list_recovery_points("main") == []


@ON_SQLITE_ONLY
def test_completion_window_closing_on_a_running_job_aborts_it_cleanly(sk: Snapkeep, lab: LabServer) -> None:
    set_snapshot_seconds(lab.endpoint, 60.0)
    target = multi_volume_instance(sk)
    job_id = sk.service.start_backup_job("main", target, ROLE, start_window_minutes=60,
                                         complete_window_minutes=120)["BackupJobId"]
    run_one(sk.context, "test-worker")
    assert sk.service.describe_backup_job(job_id)["State"] == "RUNNING"
    real = sk.context.clock
    sk.context.clock = lambda: real() + timedelta(minutes=121)
    drain(sk)
    out = sk.service.describe_backup_job(job_id)
    assert out["State"] == "ABORTED" and "completion window" in out["StatusMessage"]
    arn = Arn.parse(target)
    assert ec2api.snapshots_tagged(sk.context.ec2(arn.account, arn.region), ec2api.TAG_BACKUP_JOB, job_id) == []


@ON_SQLITE_ONLY
def test_transient_aws_errors_are_retried_not_fatal(sk: Snapkeep, monkeypatch: pytest.MonkeyPatch) -> None:
    target = multi_volume_instance(sk)
    real_describe = ec2api.describe_snapshots
    failures = {"left": 2}

    def flaky(*args: Any, **kwargs: Any) -> Any:
        if failures["left"]:
            failures["left"] -= 1
            raise ec2api.TransientAwsError("DescribeSnapshots failed: RequestLimitExceeded: slow down")
        return real_describe(*args, **kwargs)

    monkeypatch.setattr(backup_engine.ec2api, "describe_snapshots", flaky)
    job_id = sk.service.start_backup_job("main", target, ROLE)["BackupJobId"]
    drain(sk)
    assert failures["left"] == 0
    assert sk.service.describe_backup_job(job_id)["State"] == "COMPLETED"


@ON_SQLITE_ONLY
def test_unreachable_region_does_not_block_the_others(sk: Snapkeep, monkeypatch: pytest.MonkeyPatch) -> None:
    from snapkeep.engine import inventory as inventory_module

    real_list = ec2api.list_instances

    def eu_is_down(client: Any, account_id: str, region: str) -> Any:
        if region == "eu-west-1":
            raise ec2api.TransientAwsError("DescribeInstances failed: could not connect")
        return real_list(client, account_id, region)

    plan = sk.service.create_backup_plan({"BackupPlanName": "p", "Rules": [
        {"RuleName": "hourly", "TargetBackupVaultName": "main", "ScheduleExpression": "cron(0 * ? * * *)",
         "StartWindowMinutes": 60, "CompletionWindowMinutes": 120}]})
    sk.service.create_backup_selection(plan["BackupPlanId"], {
        "SelectionName": "all", "IamRoleArn": ROLE, "Resources": ["arn:aws:ec2:*:*:instance/*"]})
    expected = sorted(a for a in tagged_instances(sk, "backup", "daily") if Arn.parse(a).region == "us-east-1")
    monkeypatch.setattr(inventory_module.ec2api, "list_instances", eu_is_down)
    created = sk.service.get_backup_plan(plan["BackupPlanId"])["CreationDate"]
    run_at = created.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    real = sk.context.clock
    offset = run_at + timedelta(minutes=1) - real()
    sk.context.clock = lambda: real() + offset
    [run_id] = scheduler.tick(sk.store, sk.context.clock())
    run_one(sk.context, "test-worker")  # eu-west-1 does not answer: the run waits for it a while
    with sk.store.transaction() as conn:
        assert sk.store.get_run(conn, run_id)["state"] == "CREATED"
    offset = run_at + timedelta(minutes=31) - real()  # half the start window later it goes ahead without it
    drain(sk)
    jobs = sk.service.list_backup_jobs()
    assert sorted(j["ResourceArn"] for j in jobs) == expected
    with sk.store.transaction() as conn:
        run = sk.store.get_run(conn, run_id)
    assert run["state"] == "RESOLVED" and "eu-west-1" in run["message"] and "could not connect" in run["message"]


@ON_SQLITE_ONLY
def test_overlapping_rules_take_one_backup_for_the_longer_retention(sk: Snapkeep) -> None:
    rule = {"TargetBackupVaultName": "main", "ScheduleExpression": "cron(0 * ? * * *)", "StartWindowMinutes": 60,
            "CompletionWindowMinutes": 120}
    plan = sk.service.create_backup_plan({"BackupPlanName": "p", "Rules": [
        dict(rule, RuleName="short", Lifecycle={"DeleteAfterDays": 7}),
        dict(rule, RuleName="long", Lifecycle={"DeleteAfterDays": 365})]})
    sk.service.create_backup_selection(plan["BackupPlanId"], {
        "SelectionName": "db", "IamRoleArn": ROLE,
        "ListOfTags": [{"ConditionType": "STRINGEQUALS", "ConditionKey": "Name", "ConditionValue": "db-1"}]})
    created = sk.service.get_backup_plan(plan["BackupPlanId"])["CreationDate"]
    now = created.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1, minutes=1)
    real = sk.context.clock
    offset = now - real()
    sk.context.clock = lambda: real() + offset
    assert len(scheduler.tick(sk.store, now)) == 2
    drain(sk)
    jobs = sk.service.list_backup_jobs()
    assert len(jobs) == 1 and jobs[0]["CreatedBy"]["BackupRuleId"] == "long"
    with sk.store.transaction() as conn:
        runs = {r["rule_name"]: r for r in sk.store.list_runs(conn)}
    assert "covered by rule 'long'" in runs["short"]["message"]
