"""EBS volumes as their own protected resource type, against the lab over HTTP: an on-demand volume backup and
restore through boto3 on SQLite and PostgreSQL, the other flows on SQLite (`ON_SQLITE_ONLY`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from snapkeep.app import Snapkeep
from snapkeep.aws import ec2 as ec2api
from snapkeep.domain.arn import Arn
from snapkeep.domain.errors import InvalidParameterValue, MissingParameterValue
from snapkeep.engine import retention, scheduler
from snapkeep.engine.inventory import live_inventory
from snapkeep.engine.runs import backup_resource_type
from snapkeep.lab.harness import LabHarness
from snapkeep.lab.server import LabServer
from tests.integration.test_api_server import client
from tests.integration.test_backup_restore import Crash
from tests.lab_flow import ON_SQLITE_ONLY, ROLE, drain, tagged_instances, volume_named

GIB = 1024**3
DB_ROLE = {"StringEquals": [{"ConditionKey": "aws:ResourceTag/role", "ConditionValue": "db"}]}


def ec2_of(sk: Snapkeep, arn: str) -> Any:
    parsed = Arn.parse(arn)
    return sk.context.ec2(parsed.account, parsed.region)


def run_plan_once(sk: Snapkeep, selection: dict[str, Any]) -> str:
    """A plan with an hourly rule and `selection`, run once an hour later; the workers drained. Returns the plan id."""
    plan = sk.service.create_backup_plan({"BackupPlanName": "p", "Rules": [
        {"RuleName": "hourly", "TargetBackupVaultName": "main", "ScheduleExpression": "cron(0 * ? * * *)",
         "StartWindowMinutes": 60, "CompletionWindowMinutes": 120, "Lifecycle": {"DeleteAfterDays": 35}}]})
    sk.service.create_backup_selection(plan["BackupPlanId"], dict(selection, SelectionName="s", IamRoleArn=ROLE))
    created = sk.service.get_backup_plan(plan["BackupPlanId"])["CreationDate"]
    now = created.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1, minutes=1)
    real = sk.context.clock
    offset = now - real()
    sk.context.clock = lambda: real() + offset
    assert len(scheduler.tick(sk.store, now)) == 1
    drain(sk)
    return str(plan["BackupPlanId"])


@pytest.mark.parametrize(("arn", "kind"), [
    ("arn:aws:ec2:us-east-1:123456789012:instance/i-0123456789abcdef0", "EC2"),
    ("arn:aws:ec2:eu-west-1:222222222222:volume/vol-0123456789abcdef0", "EBS"),
    ("arn:aws:ec2:us-east-1::snapshot/snap-0123456789abcdef0", None),
    ("arn:aws:ec2:us-east-1:123456789012:volume", None),
    ("arn:aws:ec2:us-east-1:123456789012:subnet/subnet-0123456789abcdef0", None),
    ("arn:aws:rds:us-east-1:123456789012:db:main", None),
])
def test_resource_type_comes_from_the_arn(arn: str, kind: str | None) -> None:
    if kind is not None:
        assert backup_resource_type(arn) == kind
        return
    with pytest.raises(InvalidParameterValue, match="is not an EC2 instance or EBS volume ARN") as err:
        backup_resource_type(arn)
    assert err.value.field == "ResourceArn"


@ON_SQLITE_ONLY
def test_scheduled_rule_backs_up_the_volumes_a_selection_picks(sk: Snapkeep, lab: LabServer) -> None:
    harness = LabHarness(lab.endpoint)
    inventory = live_inventory(sk.context)
    expected = sorted(r.arn for r in inventory.resources if r.resource_type == "EBS" and r.tags.get("role") == "db")
    assert len(expected) == 3, "db-1 has three volumes, each tagged role=db"
    before = {arn: harness.volume_digest(Arn.parse(arn).resource_id) for arn in expected}

    plan_id = run_plan_once(sk, {"Resources": ["arn:aws:ec2:*:*:volume/*"], "Conditions": DB_ROLE})

    jobs = sk.service.list_backup_jobs()
    assert sorted(j["ResourceArn"] for j in jobs) == expected
    assert all(j["State"] == "COMPLETED" and j["ResourceType"] == "EBS" for j in jobs), jobs
    assert all(j["CreatedBy"]["BackupPlanId"] == plan_id for j in jobs)
    for job in jobs:
        arn = job["ResourceArn"]
        details = inventory.details[arn]
        assert job["BackupSizeInBytes"] == details["VolumeSize"] * GIB
        point = sk.service.describe_recovery_point("main", job["RecoveryPointArn"])
        snapshot_id = point["RecoveryPointArn"].rsplit("/", 1)[1]
        assert point["RecoveryPointArn"] == f"arn:aws:ec2:{Arn.parse(arn).region}::snapshot/{snapshot_id}"
        assert point["ResourceType"] == "EBS" and point["ResourceArn"] == arn
        assert point["BackupSizeInBytes"] == details["VolumeSize"] * GIB
        assert point["ResourceName"] == details["Tags"]["Name"]
        assert point["CalculatedLifecycle"]["DeleteAt"] - point["CreationDate"] == timedelta(days=35)
        assert harness.snapshot_digest(snapshot_id) == before[arn]
        snap = ec2_of(sk, arn).describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0]
        assert snap["VolumeId"] == Arn.parse(arn).resource_id
        assert ec2api.tag_dict(snap["Tags"])[ec2api.TAG_BACKUP_JOB] == job["BackupJobId"]
    protected = {r["ResourceArn"]: r for r in sk.service.list_protected_resources()}
    assert set(protected) == set(expected)
    assert {r["ResourceType"] for r in protected.values()} == {"EBS"}


@ON_SQLITE_ONLY
def test_an_instance_selection_picks_only_instances(sk: Snapkeep) -> None:
    """db-1's volumes carry role=db like db-1 itself: an instance ARN pattern must still leave them out."""
    [db] = tagged_instances(sk, "role", "db")
    run_plan_once(sk, {"Resources": ["arn:aws:ec2:*:*:instance/*"], "Conditions": DB_ROLE})
    jobs = sk.service.list_backup_jobs()
    assert [(j["ResourceArn"], j["ResourceType"], j["State"]) for j in jobs] == [(db, "EC2", "COMPLETED")]
    point = sk.service.describe_recovery_point("main", jobs[0]["RecoveryPointArn"])
    assert ":image/ami-" in point["RecoveryPointArn"] and len(point["Volumes"]) == 3


@ON_SQLITE_ONLY
def test_tags_on_the_volume_itself_pick_it(sk: Snapkeep) -> None:
    """ListOfTags matches each resource's own tags: a tag only the volume carries picks the volume alone."""
    arn, _ = volume_named(sk, "db-1:/dev/sdg")
    ec2_of(sk, arn).create_tags(Resources=[Arn.parse(arn).resource_id], Tags=[{"Key": "snap", "Value": "me"}])
    run_plan_once(sk, {"ListOfTags": [{"ConditionType": "STRINGEQUALS", "ConditionKey": "snap",
                                       "ConditionValue": "me"}]})
    jobs = sk.service.list_backup_jobs()
    assert [(j["ResourceArn"], j["ResourceType"], j["State"]) for j in jobs] == [(arn, "EBS", "COMPLETED")]


def test_on_demand_volume_backup_and_restore_through_boto3(sk: Snapkeep, api: str, lab: LabServer) -> None:
    harness = LabHarness(lab.endpoint)
    backup = client(api)
    assert backup.get_supported_resource_types()["ResourceTypes"] == ["EC2", "EBS"]
    arn, details = volume_named(sk, "db-1:/dev/sdf")
    volume_id = Arn.parse(arn).resource_id
    marker = b"written before the backup" * 300
    harness.write_volume(volume_id, 7 * 524288 + 11, marker)
    job = backup.start_backup_job(BackupVaultName="main", ResourceArn=arn, IamRoleArn=ROLE,
                                  Lifecycle={"DeleteAfterDays": 30}, RecoveryPointTags={"team": "db"})
    drain(sk)
    described = backup.describe_backup_job(BackupJobId=job["BackupJobId"])
    assert described["State"] == "COMPLETED", described
    assert described["ResourceType"] == "EBS" and described["BackupSizeInBytes"] == details["VolumeSize"] * GIB
    rp = described["RecoveryPointArn"]
    assert rp.startswith("arn:aws:ec2:us-east-1::snapshot/snap-")
    snapshot_id = rp.rsplit("/", 1)[1]
    snap = ec2_of(sk, arn).describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0]
    assert ec2api.tag_dict(snap["Tags"])["team"] == "db"
    point = backup.describe_recovery_point(BackupVaultName="main", RecoveryPointArn=rp)
    assert point["ResourceType"] == "EBS" and point["ResourceArn"] == arn and point["IsEncrypted"] is False
    by_resource = backup.list_recovery_points_by_resource(ResourceArn=arn)["RecoveryPoints"]
    assert [p["RecoveryPointArn"] for p in by_resource] == [rp]
    protected = backup.list_protected_resources()["Results"]
    assert [(r["ResourceArn"], r["ResourceType"]) for r in protected] == [(arn, "EBS")]
    assert backup.describe_protected_resource(ResourceArn=arn)["LastRecoveryPointArn"] == rp

    metadata = backup.get_recovery_point_restore_metadata(BackupVaultName="main", RecoveryPointArn=rp)
    assert metadata["ResourceType"] == "EBS"
    assert metadata["RestoreMetadata"] == {
        "availabilityZone": details["AvailabilityZone"], "volumeType": details["VolumeType"],
        "volumeSize": str(details["VolumeSize"]), "encrypted": "false",
        **({"iops": str(details["Iops"])} if details["Iops"] else {}),
        **({"throughput": str(details["Throughput"])} if details["Throughput"] else {}),
    }

    # The guest writes after the backup: the restore must bring back the volume as it was.
    harness.write_volume(volume_id, 7 * 524288 + 11, b"written after the backup!" * 300)
    with pytest.raises(ClientError) as small:
        backup.start_restore_job(RecoveryPointArn=rp, ResourceType="EBS", Metadata={
            "availabilityZone": "us-east-1b", "volumeSize": str(details["VolumeSize"] - 1)})
    assert small.value.response["Error"]["Code"] == "InvalidParameterValueException"
    assert "Metadata.volumeSize" in small.value.response["Error"]["Message"]
    assert backup.list_restore_jobs()["RestoreJobs"] == []

    bigger = details["VolumeSize"] + 2
    restore = backup.start_restore_job(RecoveryPointArn=rp, IamRoleArn=ROLE, Metadata={
        "availabilityZone": "us-east-1b", "volumeSize": str(bigger), "volumeType": "gp3", "iops": "4000",
        "throughput": "250"})
    drain(sk)
    out = backup.describe_restore_job(RestoreJobId=restore["RestoreJobId"])
    assert out["Status"] == "COMPLETED" and out["ResourceType"] == "EBS", out
    new_id = Arn.parse(out["CreatedResourceArn"]).resource_id
    assert new_id != volume_id
    new = ec2api.describe_volume(ec2_of(sk, arn), new_id)
    assert (new["AvailabilityZone"], new["Size"], new["VolumeType"]) == ("us-east-1b", bigger, "gp3")
    assert ec2api.tag_dict(new["Tags"])[ec2api.TAG_RESTORE_JOB] == restore["RestoreJobId"]
    assert harness.read_volume(new_id, 7 * 524288 + 11, len(marker)) == marker
    assert harness.snapshot_report(snapshot_id).blocks_written == harness.volume_report(new_id).blocks_written
    assert harness.read_volume(new_id, details["VolumeSize"] * GIB, 4096) == bytes(4096)  # the added space


@ON_SQLITE_ONLY
def test_opted_out_ebs_refuses_a_volume_job_and_records_nothing(sk: Snapkeep, api: str) -> None:
    backup = client(api)
    arn, _ = volume_named(sk, "web-1:/dev/xvda")
    backup.update_region_settings(ResourceTypeOptInPreference={"EBS": False})
    with pytest.raises(ClientError) as refused:
        backup.start_backup_job(BackupVaultName="main", ResourceArn=arn, IamRoleArn=ROLE)
    assert refused.value.response["Error"]["Code"] == "InvalidRequestException"
    assert "EBS is opted out" in refused.value.response["Error"]["Message"]
    assert backup.list_backup_jobs()["BackupJobs"] == [] and not sk.context.queue.pending()
    # The instance it is attached to is still EC2, which stays opted in.
    [web] = tagged_instances(sk, "Name", "web-1")
    assert backup.start_backup_job(BackupVaultName="main", ResourceArn=web, IamRoleArn=ROLE)["BackupJobId"]


@ON_SQLITE_ONLY
def test_expiry_deletes_the_snapshot(sk: Snapkeep) -> None:
    arn, _ = volume_named(sk, "web-2:/dev/xvda")
    short = sk.service.start_backup_job("main", arn, ROLE, lifecycle={"MoveToColdStorageAfterDays": 1,
                                                                       "DeleteAfterDays": 91})
    keep = sk.service.start_backup_job("main", arn, ROLE, lifecycle={"DeleteAfterDays": 365})
    drain(sk)
    short_rp = sk.service.describe_backup_job(short["BackupJobId"])["RecoveryPointArn"]
    keep_rp = sk.service.describe_backup_job(keep["BackupJobId"])["RecoveryPointArn"]
    snapshot_id = short_rp.rsplit("/", 1)[1]
    ec2 = ec2_of(sk, arn)
    point = sk.service.describe_recovery_point("main", short_rp)
    # No EBS archive step in Snapkeep: the cold setting is kept, the point stays warm.
    assert point["Lifecycle"]["MoveToColdStorageAfterDays"] == 1
    assert point["CalculatedLifecycle"].get("MoveToColdStorageAt") is None and point["StorageClass"] == "WARM"
    real = sk.context.clock
    later = real() + timedelta(days=91, minutes=1)
    assert retention.sweep(sk.store, later - timedelta(days=2)) == []
    sk.context.clock = lambda: later
    assert retention.sweep(sk.store, later) == [short_rp]
    drain(sk)
    assert ec2.describe_snapshots(Filters=[{"Name": "snapshot-id", "Values": [snapshot_id]}])["Snapshots"] == []
    assert [p["RecoveryPointArn"] for p in sk.service.list_recovery_points("main")] == [keep_rp]
    kept = keep_rp.rsplit("/", 1)[1]
    assert ec2.describe_snapshots(SnapshotIds=[kept])["Snapshots"][0]["State"] == "completed"


@ON_SQLITE_ONLY
def test_a_kms_encrypted_volume_keeps_its_key(sk: Snapkeep, lab: LabServer) -> None:
    harness = LabHarness(lab.endpoint)
    inventory = live_inventory(sk.context)
    [arn] = [r.arn for r in inventory.resources if r.resource_type == "EBS" and inventory.details[r.arn]["Encrypted"]
             and "key/" in str(inventory.details[r.arn]["KmsKeyId"])]
    key = inventory.details[arn]["KmsKeyId"]
    assert Arn.parse(arn).account == "222222222222"
    volume_id = Arn.parse(arn).resource_id
    job = sk.service.start_backup_job("main", arn, ROLE)
    drain(sk)
    rp = sk.service.describe_backup_job(job["BackupJobId"])["RecoveryPointArn"]
    point = sk.service.describe_recovery_point("main", rp)
    assert point["IsEncrypted"] is True and point["Volumes"][0]["KmsKeyId"] == key
    ec2 = ec2_of(sk, arn)
    snapshot = ec2.describe_snapshots(SnapshotIds=[rp.rsplit("/", 1)[1]])["Snapshots"][0]
    assert snapshot["Encrypted"] is True and snapshot["KmsKeyId"] == key
    metadata = sk.service.get_recovery_point_restore_metadata("main", rp)["RestoreMetadata"]
    assert metadata["encrypted"] == "true" and metadata["kmsKeyId"] == key
    zone = inventory.details[arn]["AvailabilityZone"]
    restore = sk.service.start_restore_job(rp, {"availabilityZone": zone}, copy_source_tags=True)
    drain(sk)
    out = sk.service.describe_restore_job(restore["RestoreJobId"])
    assert out["Status"] == "COMPLETED", out
    new_id = Arn.parse(out["CreatedResourceArn"]).resource_id
    new = ec2api.describe_volume(ec2, new_id)
    assert new["Encrypted"] is True and new["KmsKeyId"] == key
    assert ec2api.tag_dict(new["Tags"])["backup"] == "daily"  # the source's tags, asked for
    assert harness.volume_digest(new_id) == harness.volume_digest(volume_id)


@ON_SQLITE_ONLY
def test_restore_of_an_ebs_point_refuses_what_create_volume_would(sk: Snapkeep) -> None:
    arn, _ = volume_named(sk, "web-1:/dev/xvda")
    job = sk.service.start_backup_job("main", arn, ROLE)
    drain(sk)
    rp = sk.service.describe_backup_job(job["BackupJobId"])["RecoveryPointArn"]
    with pytest.raises(InvalidParameterValue, match="restores as EBS only"):
        sk.service.start_restore_job(rp, {"InstanceType": "t3.micro"}, resource_type="EC2")
    with pytest.raises(MissingParameterValue, match="availabilityZone is required"):
        sk.service.start_restore_job(rp, {})
    with pytest.raises(MissingParameterValue, match="iops is required for volume type io2"):
        sk.service.start_restore_job(rp, {"availabilityZone": "us-east-1a", "volumeType": "io2"})
    with pytest.raises(InvalidParameterValue, match="throughput: can only be set for volume type gp3"):
        sk.service.start_restore_job(rp, {"availabilityZone": "us-east-1a", "volumeType": "gp2",
                                          "throughput": "200"})
    assert sk.service.list_restore_jobs() == []


@ON_SQLITE_ONLY
def test_a_crash_after_create_snapshot_adopts_the_snapshot(sk: Snapkeep, monkeypatch: pytest.MonkeyPatch,
                                                           lab: LabServer) -> None:
    """The process dies after CreateSnapshot returned, before the id was recorded: the tag finds it again."""
    harness = LabHarness(lab.endpoint)
    arn, _ = volume_named(sk, "db-1:/dev/sdg")
    ec2 = ec2_of(sk, arn)
    real_create = ec2api.create_volume_snapshot

    def dying(*args: Any, **kwargs: Any) -> Any:
        real_create(*args, **kwargs)
        raise Crash

    monkeypatch.setattr(ec2api, "create_volume_snapshot", dying)  # the module the engine calls through
    job_id = sk.service.start_backup_job("main", arn, ROLE)["BackupJobId"]
    with pytest.raises(Crash):
        drain(sk)
    monkeypatch.undo()
    with sk.store.transaction() as conn:
        crashed = sk.store.get_job(conn, job_id)
    assert crashed["step"] == "snapshot" and not crashed["step_data"].get("snapshot_ids")
    [made] = ec2api.snapshots_tagged(ec2, ec2api.TAG_BACKUP_JOB, job_id)
    real = sk.context.clock
    sk.context.clock = lambda: real() + timedelta(seconds=sk.settings.lease_seconds + 1)  # the lease runs out
    drain(sk)
    done = sk.service.describe_backup_job(job_id)
    assert done["State"] == "COMPLETED", done
    assert done["RecoveryPointArn"].endswith(f"/{made['SnapshotId']}")
    assert [s["SnapshotId"] for s in ec2api.snapshots_tagged(ec2, ec2api.TAG_BACKUP_JOB, job_id)] == \
        [made["SnapshotId"]]
    assert harness.snapshot_digest(made["SnapshotId"]) == harness.volume_digest(Arn.parse(arn).resource_id)


@ON_SQLITE_ONLY
def test_a_stopped_volume_job_leaves_no_snapshot(sk: Snapkeep, lab: LabServer) -> None:
    from snapkeep.engine.worker import run_one
    from tests.lab_flow import set_snapshot_seconds

    set_snapshot_seconds(lab.endpoint, 30.0)
    arn, _ = volume_named(sk, "db-1:/dev/sdf")
    job_id = sk.service.start_backup_job("main", arn, ROLE)["BackupJobId"]
    for _ in range(2):  # start and snapshot: the snapshot is pending
        run_one(sk.context, "test-worker")
    assert sk.service.describe_backup_job(job_id)["State"] == "RUNNING"
    assert ec2api.snapshots_tagged(ec2_of(sk, arn), ec2api.TAG_BACKUP_JOB, job_id)
    sk.service.stop_backup_job(job_id)
    set_snapshot_seconds(lab.endpoint, 0.0)
    drain(sk)
    assert sk.service.describe_backup_job(job_id)["State"] == "ABORTED"
    assert ec2api.snapshots_tagged(ec2_of(sk, arn), ec2api.TAG_BACKUP_JOB, job_id) == []
    assert sk.service.list_recovery_points("main") == []
