"""`python -m snapkeep.lab` as a process: prints its endpoint when ready, serves, stops on SIGTERM."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from typing import IO

import boto3
import pytest

from snapkeep.lab.harness import LabHarness
from snapkeep.lab.server import LabServer


def _first_line(stream: IO[str], timeout: float) -> str:
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(stream.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout).strip()
    except queue.Empty:
        raise AssertionError(f"no endpoint printed within {timeout}s") from None


@pytest.mark.slow
def test_module_entry_point_serves_until_terminated() -> None:
    env = {k: v for k, v in os.environ.items() if k != "MOTO_ACCOUNT_ID"}  # one account per server is not ours
    process = subprocess.Popen(
        [sys.executable, "-m", "snapkeep.lab", "--port", "0", "--snapshot-seconds", "0.5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        endpoint = _first_line(process.stdout, timeout=60)
        assert endpoint.startswith("http://127.0.0.1:")
        ec2 = boto3.client(
            "ec2",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        volume = ec2.create_volume(Size=1, AvailabilityZone="us-east-1a")["VolumeId"]
        LabHarness(endpoint).write_volume(volume, 0, b"from another process")
        assert LabHarness(endpoint).read_volume(volume, 0, 20) == b"from another process"
        assert ec2.create_snapshot(VolumeId=volume)["State"] == "pending"
        assert ec2.describe_images(Owners=["self"])["Images"] == []
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=20)
        finally:
            if process.poll() is None:
                process.kill()
    assert code == 0


def test_the_lab_never_binds_beyond_loopback() -> None:
    for host in ("0.0.0.0", "::", "10.0.0.1", "example.com"):
        with pytest.raises(ValueError, match="loopback"):
            LabServer(host=host)
    refused = subprocess.run(
        [sys.executable, "-m", "snapkeep.lab", "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2
    assert "loopback" in refused.stderr
