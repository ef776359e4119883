"""Kill a real `snapkeep server` process in the middle of a backup job; a restarted one finishes it cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from snapkeep.aws import ec2 as ec2api
from snapkeep.domain.arn import Arn
from snapkeep.lab.server import LabServer
from tests.lab_flow import ROLE, fresh_fleet, instance_volumes, open_on_lab, tagged_instances

pytestmark = pytest.mark.slow


@pytest.fixture
def lab() -> Iterator[LabServer]:
    server = LabServer(snapshot_seconds=6.0)
    server.start()
    yield server
    server.stop()


def start_server(home: Path, endpoint: str, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, SNAPKEEP_HOME=str(home), SNAPKEEP_AWS_ENDPOINT_URL=endpoint,
               SNAPKEEP_AWS_ACCESS_KEY_ID="testing", SNAPKEEP_AWS_SECRET_ACCESS_KEY="testing",
               SNAPKEEP_LEASE_SECONDS="5", SNAPKEEP_POLL_SECONDS="0.3")
    return subprocess.Popen([sys.executable, "-m", "snapkeep.cli", "server", "--port", "0"], env=env,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT)


def test_killed_worker_mid_job_restarts_and_finishes_cleanly(lab: LabServer, tmp_path: Path) -> None:
    fleet = fresh_fleet(lab.endpoint, 6.0)
    sk = open_on_lab(lab.endpoint, f"sqlite:///{tmp_path / 'catalog.db'}", tmp_path, fleet)
    sk.service.create_backup_vault("main")
    target = next(a for a in tagged_instances(sk, "backup", "daily") if len(instance_volumes(sk, a)) >= 2)
    job_id = sk.service.start_backup_job("main", target, ROLE)["BackupJobId"]
    log = tmp_path / "server.log"

    first = start_server(tmp_path, lab.endpoint, log)
    try:
        deadline = time.monotonic() + 60
        while True:  # wait until the job has asked AWS for its snapshots and is waiting on them
            with sk.store.transaction() as conn:
                job = sk.store.get_job(conn, job_id)
            if job["step"] == "wait":
                break
            assert time.monotonic() < deadline, log.read_text()
            assert first.poll() is None, log.read_text()
            time.sleep(0.1)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    assert first.returncode == -signal.SIGKILL
    assert sk.service.describe_backup_job(job_id)["State"] == "RUNNING"

    second = start_server(tmp_path, lab.endpoint, log)
    try:
        deadline = time.monotonic() + 90
        while sk.service.describe_backup_job(job_id)["State"] == "RUNNING":
            assert time.monotonic() < deadline, log.read_text()
            assert second.poll() is None, log.read_text()
            time.sleep(0.2)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(30)
    assert second.returncode == 0, log.read_text()

    job = sk.service.describe_backup_job(job_id)
    assert job["State"] == "COMPLETED", job
    point = sk.service.describe_recovery_point("main", job["RecoveryPointArn"])
    arn = Arn.parse(target)
    tagged = ec2api.snapshots_tagged(sk.context.ec2(arn.account, arn.region), ec2api.TAG_BACKUP_JOB, job_id)
    # Exactly one crash-consistent set exists, and the recovery point tracks every snapshot of it.
    assert sorted(s["SnapshotId"] for s in tagged) == sorted(v["SnapshotId"] for v in point["Volumes"])
    sk.close()
