"""Two `snapkeep server` processes share one PostgreSQL catalog: every job is run once, by one of them."""

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
from tests.conftest import _drop_pg_database, _fresh_pg_database
from tests.lab_flow import ROLE, fresh_fleet, instance_volumes, open_on_lab, tagged_instances

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture
def pg_url(postgres_server: str) -> Iterator[str]:
    name, url = _fresh_pg_database(postgres_server)
    try:
        yield url
    finally:
        _drop_pg_database(postgres_server, name)


def test_two_server_processes_share_the_queue(pg_url: str, tmp_path: Path) -> None:
    with LabServer(snapshot_seconds=2.0) as lab:
        fleet = fresh_fleet(lab.endpoint, 2.0)
        sk = open_on_lab(lab.endpoint, pg_url, tmp_path, fleet)
        sk.service.create_backup_vault("main")
        targets = tagged_instances(sk, "backup", "daily")
        env = dict(
            os.environ,
            SNAPKEEP_HOME=str(tmp_path),
            SNAPKEEP_DATABASE_URL=pg_url,
            SNAPKEEP_AWS_ENDPOINT_URL=lab.endpoint,
            SNAPKEEP_AWS_ACCESS_KEY_ID="testing",
            SNAPKEEP_AWS_SECRET_ACCESS_KEY="testing",
            SNAPKEEP_POLL_SECONDS="0.3",
            SNAPKEEP_LEASE_SECONDS="10",
        )
        logs = [tmp_path / f"server{i}.log" for i in range(2)]
        servers = [
            subprocess.Popen(
                [sys.executable, "-m", "snapkeep.cli", "server", "--threads", "2", "--port", "0"],
                env=env,
                stdout=log.open("wb"),
                stderr=subprocess.STDOUT,
            )
            for log in logs
        ]
        try:
            jobs = [sk.service.start_backup_job("main", arn, ROLE)["BackupJobId"] for arn in targets]
            jobs += [sk.service.start_backup_job("main", arn, ROLE)["BackupJobId"] for arn in targets]
            deadline = time.monotonic() + 120
            while any(sk.service.describe_backup_job(j)["State"] not in ("COMPLETED", "FAILED") for j in jobs):
                assert time.monotonic() < deadline, "\n".join(log.read_text() for log in logs)
                for server in servers:
                    assert server.poll() is None, "\n".join(log.read_text() for log in logs)
                time.sleep(0.3)
        finally:
            for server in servers:
                server.send_signal(signal.SIGTERM)
            for server in servers:
                server.wait(30)
        assert [s.returncode for s in servers] == [0, 0]
        outcomes = [sk.service.describe_backup_job(j) for j in jobs]
        assert {o["State"] for o in outcomes} == {"COMPLETED"}, outcomes
        points = sk.service.list_recovery_points("main")
        assert sorted(p["RecoveryPointArn"] for p in points) == sorted(o["RecoveryPointArn"] for o in outcomes)
        for job in outcomes:  # exactly one snapshot set per job: nothing was done twice
            arn = Arn.parse(job["ResourceArn"])
            tagged = ec2api.snapshots_tagged(
                sk.context.ec2(arn.account, arn.region), ec2api.TAG_BACKUP_JOB, job["BackupJobId"]
            )
            assert len(tagged) == len(instance_volumes(sk, job["ResourceArn"]))
        sk.close()
