"""`snapkeep server --lab` as a user runs it, driven by other `snapkeep` processes (the README's flow)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

pytestmark = pytest.mark.slow


def cli_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAPKEEP_")}
    env.update(SNAPKEEP_HOME=str(home), SNAPKEEP_POLL_SECONDS="0.3", COLUMNS="200")
    return env


def snapkeep(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "snapkeep.cli", *args], env=cli_env(home), capture_output=True, text=True, timeout=180
    )


def test_server_with_lab_backs_up_and_restores_through_the_cli(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    server = subprocess.Popen(
        [sys.executable, "-m", "snapkeep.cli", "server", "--lab", "--port", "0"],
        env=cli_env(tmp_path),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        while "server running" not in log.read_text():
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        endpoint = json.loads((tmp_path / "lab.json").read_text())["Endpoint"]
        assert endpoint in log.read_text()
        ec2 = boto3.client(
            "ec2",
            region_name="us-east-1",
            endpoint_url=endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        reservations = ec2.describe_instances(Filters=[{"Name": "tag:Name", "Values": ["db-1"]}])["Reservations"]
        instance_id = reservations[0]["Instances"][0]["InstanceId"]
        arn = f"arn:aws:ec2:us-east-1:123456789012:instance/{instance_id}"

        assert snapkeep(tmp_path, "vault", "create", "main").returncode == 0
        backup = snapkeep(tmp_path, "job", "start", arn, "--vault", "main", "--wait", "--json")
        assert backup.returncode == 0, backup.stderr
        job = json.loads(backup.stdout)
        assert job["State"] == "COMPLETED", job
        listed = json.loads(snapkeep(tmp_path, "recovery-point", "list", "--resource-arn", arn, "--json").stdout)
        assert [p["RecoveryPointArn"] for p in listed] == [job["RecoveryPointArn"]]
        restore = snapkeep(
            tmp_path,
            "restore",
            "start",
            job["RecoveryPointArn"],
            "--metadata",
            "InstanceType=m5.large",
            "--wait",
            "--json",
        )
        assert restore.returncode == 0, restore.stderr
        assert json.loads(restore.stdout)["Status"] == "COMPLETED"
        jobs = snapkeep(tmp_path, "job", "list")
        assert job["BackupJobId"] in jobs.stdout and "COMPLETED" in jobs.stdout
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    assert server.returncode == 0, log.read_text()
    assert not (tmp_path / "lab.json").exists()
