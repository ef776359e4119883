"""Restore jobs that go wrong, against the lab over HTTP (a volume restore made exactly once on SQLite and
PostgreSQL, the other flows on SQLite, `ON_SQLITE_ONLY`): each ends (FAILED or
COMPLETED), never loops, and a failed restore leaves no instance or volume tagged with its id behind."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from snapkeep.app import Snapkeep
from snapkeep.aws import ec2 as ec2api
from snapkeep.domain.arn import Arn
from snapkeep.engine.context import LeaseLost
from snapkeep.engine.worker import run_one
from tests.lab_flow import ON_SQLITE_ONLY, ROLE, drain, instance_volumes, tagged_instances


class Crash(BaseException):
    """The process dies here: nothing after this point of the step runs."""


def backed_up(sk: Snapkeep) -> tuple[str, Any, str]:
    """A completed recovery point of a multi-volume instance: its ARN, an EC2 client of its region, a data device."""
    target = next(a for a in tagged_instances(sk, "backup", "daily") if len(instance_volumes(sk, a)) >= 2)
    job = sk.service.start_backup_job("main", target, ROLE)
    drain(sk)
    done = sk.service.describe_backup_job(job["BackupJobId"])
    assert done["State"] == "COMPLETED", done
    arn = Arn.parse(target)
    return done["RecoveryPointArn"], sk.context.ec2(arn.account, arn.region), sorted(instance_volumes(sk, target))[-1]


def zone_of(ec2: Any) -> str:
    return f"{ec2.meta.region_name}b"


def left_behind(ec2: Any, job_id: str) -> tuple[list[str], list[str]]:
    """The live instances and the volumes that carry the restore job's tag."""
    instances = [i["InstanceId"] for i in ec2api.instances_tagged(ec2, ec2api.TAG_RESTORE_JOB, job_id)]
    volumes = [v["VolumeId"] for v in ec2api.volumes_tagged(ec2, ec2api.TAG_RESTORE_JOB, job_id)]
    return instances, volumes


def restore_row(sk: Snapkeep, job_id: str) -> dict[str, Any]:
    with sk.store.transaction() as conn:
        return sk.store.get_restore_job(conn, job_id)


def step_once(sk: Snapkeep) -> None:
    assert run_one(sk.context, "test-worker"), "a task was ready"


def later(sk: Snapkeep, delta: timedelta) -> None:
    real = sk.context.clock
    sk.context.clock = lambda: real() + delta


@ON_SQLITE_ONLY
def test_restore_of_a_deleted_recovery_point_fails_cleanly(sk: Snapkeep) -> None:
    rp, ec2, device = backed_up(sk)
    whole = sk.service.start_restore_job(rp, {})["RestoreJobId"]
    single = sk.service.start_restore_job(rp, {"availabilityZone": zone_of(ec2), "DeviceName": device},
                                          resource_type="EBS")["RestoreJobId"]
    with sk.store.transaction() as conn:  # retention expired it between StartRestoreJob and the worker
        sk.store.update_recovery_point(conn, rp, {"status": "DELETED"})
    drain(sk, timeout=20)
    for job_id in (whole, single):
        out = sk.service.describe_restore_job(job_id)
        assert out["Status"] == "FAILED", out
        assert rp in out["StatusMessage"] and "DELETED" in out["StatusMessage"]
        assert "CreatedResourceArn" not in out or not out["CreatedResourceArn"]
        assert left_behind(ec2, job_id) == ([], [])


@ON_SQLITE_ONLY
def test_an_instance_that_stops_fails_the_job_and_is_terminated(sk: Snapkeep,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    rp, ec2, _ = backed_up(sk)
    job_id = sk.service.start_restore_job(rp, {})["RestoreJobId"]
    step_once(sk)  # launch: the job waits for the instance to run
    row = restore_row(sk, job_id)
    assert row["step"] == "wait" and row["status"] == "RUNNING"
    instance_id = row["step_data"]["instance_id"]
    ec2.stop_instances(InstanceIds=[instance_id])
    drain(sk, timeout=20)
    out = sk.service.describe_restore_job(job_id)
    assert out["Status"] == "FAILED", out
    assert f"{instance_id} is stopped instead of running" in out["StatusMessage"]
    state = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["State"]["Name"]
    assert state in ("shutting-down", "terminated")
    assert left_behind(ec2, job_id) == ([], [])

    # When the instance cannot be terminated, cleanup is tried twice and the job ends naming what is left.
    refused_job = sk.service.start_restore_job(rp, {})["RestoreJobId"]
    step_once(sk)
    kept = restore_row(sk, refused_job)["step_data"]["instance_id"]
    ec2.stop_instances(InstanceIds=[kept])
    real_client = sk.context.ec2

    class RefusesTermination:
        def __init__(self, client: Any) -> None:
            self.client = client

        def __getattr__(self, name: str) -> Any:
            return getattr(self.client, name)

        def terminate_instances(self, **kwargs: Any) -> Any:
            raise ClientError({"Error": {"Code": "UnauthorizedOperation", "Message": "not allowed"}},
                              "TerminateInstances")

    monkeypatch.setattr(sk.context, "ec2", lambda account, region: RefusesTermination(real_client(account, region)))
    drain(sk, timeout=20)
    monkeypatch.undo()
    out = sk.service.describe_restore_job(refused_job)
    assert out["Status"] == "FAILED", out
    assert "stopped instead of running" in out["StatusMessage"]
    assert f"Cleanup incomplete, left behind: {kept}" in out["StatusMessage"]
    assert "UnauthorizedOperation" in out["StatusMessage"]
    assert restore_row(sk, refused_job)["step_data"]["cleanup_attempts"] == 2
    assert left_behind(ec2, refused_job)[0] == [kept]


@ON_SQLITE_ONLY
def test_failures_after_creation_leave_nothing_tagged(sk: Snapkeep, monkeypatch: pytest.MonkeyPatch) -> None:
    rp, ec2, device = backed_up(sk)
    # Termination protection on, and the data volumes kept on termination: cleanup still removes everything.
    whole = sk.service.start_restore_job(rp, {"DisableApiTermination": "true"})["RestoreJobId"]
    step_once(sk)
    instance_id = restore_row(sk, whole)["step_data"]["instance_id"]
    ec2.modify_instance_attribute(InstanceId=instance_id, DisableApiTermination={"Value": True})
    inst = ec2api.describe_instance(ec2, instance_id)
    ec2.modify_instance_attribute(InstanceId=instance_id, BlockDeviceMappings=[
        {"DeviceName": b["DeviceName"], "Ebs": {"DeleteOnTermination": False}} for b in inst["BlockDeviceMappings"]])
    assert left_behind(ec2, whole)[1], "the launched instance's volumes carry the job's tag"

    def broken(client: Any, wanted: str) -> dict[str, Any]:
        raise KeyError("State")

    monkeypatch.setattr("snapkeep.engine.restore.ec2api.describe_instance", broken)
    drain(sk, timeout=20)
    monkeypatch.undo()
    out = sk.service.describe_restore_job(whole)
    assert out["Status"] == "FAILED", out
    assert "Internal error: KeyError" in out["StatusMessage"]
    assert left_behind(ec2, whole) == ([], [])

    # A volume that ends in `error` is deleted and fails its job.
    single = sk.service.start_restore_job(rp, {"availabilityZone": zone_of(ec2), "DeviceName": device},
                                          resource_type="EBS")["RestoreJobId"]
    real_describe = ec2api.describe_volumes

    def in_error(client: Any, volume_ids: list[str]) -> dict[str, dict[str, Any]]:
        return {k: dict(v, State="error") for k, v in real_describe(client, volume_ids).items()}

    monkeypatch.setattr("snapkeep.engine.restore.ec2api.describe_volumes", in_error)
    drain(sk, timeout=20)
    monkeypatch.undo()
    out = sk.service.describe_restore_job(single)
    assert out["Status"] == "FAILED", out
    assert "is in state error" in out["StatusMessage"]
    volume_id = restore_row(sk, single)["step_data"]["volume_id"]
    assert ec2.describe_volumes(Filters=[{"Name": "volume-id", "Values": [volume_id]}])["Volumes"] == []
    assert left_behind(ec2, single) == ([], [])


@ON_SQLITE_ONLY
def test_a_restore_not_done_six_hours_after_its_creation_times_out(sk: Snapkeep) -> None:
    rp, ec2, _ = backed_up(sk)
    running = sk.service.start_restore_job(rp, {})["RestoreJobId"]
    step_once(sk)  # launched, waiting
    assert restore_row(sk, running)["step_data"]["instance_id"]
    never_started = sk.service.start_restore_job(rp, {})["RestoreJobId"]
    later(sk, timedelta(hours=6, minutes=1))
    drain(sk, timeout=20)
    for job_id in (running, never_started):
        out = sk.service.describe_restore_job(job_id)
        assert out["Status"] == "FAILED", out
        assert "timed out" in out["StatusMessage"]
        assert left_behind(ec2, job_id) == ([], [])
    assert restore_row(sk, never_started)["step_data"].get("launch_requested") is None


@ON_SQLITE_ONLY
def test_a_transient_aws_error_is_retried_and_the_restore_completes(sk: Snapkeep,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    rp, ec2, _ = backed_up(sk)
    real_describe = ec2api.describe_instance
    calls: list[str] = []

    def throttled_once(client: Any, instance_id: str) -> dict[str, Any]:
        calls.append(instance_id)
        if len(calls) == 1:
            raise ec2api.TransientAwsError("DescribeInstances failed: RequestLimitExceeded: Request limit exceeded.")
        return real_describe(client, instance_id)

    monkeypatch.setattr("snapkeep.engine.restore.ec2api.describe_instance", throttled_once)
    job_id = sk.service.start_restore_job(rp, {"InstanceType": "t3.small"})["RestoreJobId"]
    drain(sk, timeout=30)
    out = sk.service.describe_restore_job(job_id)
    assert out["Status"] == "COMPLETED", out
    assert len(calls) >= 2
    row = restore_row(sk, job_id)
    assert row["step_data"]["transient_errors"] == 1
    instances, _ = left_behind(ec2, job_id)
    assert [Arn.parse(out["CreatedResourceArn"]).resource_id] == instances


def test_a_volume_restore_is_made_exactly_once(sk: Snapkeep, monkeypatch: pytest.MonkeyPatch) -> None:
    """Lease lost before CreateVolume: nothing made. Crash after CreateVolume: the tag finds the volume again."""
    rp, ec2, device = backed_up(sk)
    job_id = sk.service.start_restore_job(rp, {"availabilityZone": zone_of(ec2), "DeviceName": device,
                                               "volumeType": "gp3"}, resource_type="EBS")["RestoreJobId"]

    def lost() -> None:
        raise LeaseLost("lost the lease")

    monkeypatch.setattr(sk.context, "check_lease", lost)
    step_once(sk)
    monkeypatch.undo()
    assert left_behind(ec2, job_id) == ([], [])
    assert restore_row(sk, job_id)["status"] != "FAILED"

    requests: list[dict[str, Any]] = []
    real_client = sk.context.ec2

    class DiesAfterCreateVolume:
        def __init__(self, client: Any) -> None:
            self.client = client

        def __getattr__(self, name: str) -> Any:
            return getattr(self.client, name)

        def create_volume(self, **kwargs: Any) -> Any:
            requests.append(kwargs)
            self.client.create_volume(**kwargs)
            raise Crash

    monkeypatch.setattr(sk.context, "ec2", lambda account, region: DiesAfterCreateVolume(real_client(account, region)))
    later(sk, timedelta(seconds=sk.settings.lease_seconds + 1))  # the first worker's lease runs out
    with pytest.raises(Crash):
        drain(sk, timeout=20)
    monkeypatch.undo()
    assert [r["ClientToken"] for r in requests] == [job_id]
    made = left_behind(ec2, job_id)[1]
    assert len(made) == 1
    assert restore_row(sk, job_id)["step_data"].get("volume_id") is None  # the crash came before it was recorded

    later(sk, timedelta(seconds=sk.settings.lease_seconds + 1))
    drain(sk, timeout=20)
    out = sk.service.describe_restore_job(job_id)
    assert out["Status"] == "COMPLETED", out
    assert Arn.parse(out["CreatedResourceArn"]).resource_id == made[0]
    assert left_behind(ec2, job_id)[1] == made
