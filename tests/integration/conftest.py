"""Integration fixtures. The lab: one LabServer for the whole session, reset before every test that uses it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from snapkeep.api.server import ApiServer
from snapkeep.app import Snapkeep
from snapkeep.lab.blocks import BLOCK_SIZE
from snapkeep.lab.harness import LabHarness
from snapkeep.lab.server import LabServer
from tests.lab_flow import ADMIN_ID, ADMIN_SECRET, fresh_fleet, open_on_lab

LAB_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
LAB_SECOND_ACCOUNT = "222222222222"


class LabClients:
    """boto3 clients on the lab: account 123456789012 by default, or another account through AssumeRole."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self._assumed: dict[str, dict[str, str]] = {}

    def __call__(self, service: str, region: str = "us-east-1", account: str | None = None, **config: Any) -> Any:
        credentials = LAB_CREDENTIALS if account in (None, "123456789012") else self._credentials(str(account))
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=region,
            config=Config(retries={"max_attempts": 1, "mode": "standard"}, **config),
            **credentials,
        )

    def _credentials(self, account: str) -> dict[str, str]:
        if account not in self._assumed:
            answer = self("sts").assume_role(
                RoleArn=f"arn:aws:iam::{account}:role/SnapkeepLab", RoleSessionName="lab-tests"
            )["Credentials"]
            self._assumed[account] = {
                "aws_access_key_id": answer["AccessKeyId"],
                "aws_secret_access_key": answer["SecretAccessKey"],
                "aws_session_token": answer["SessionToken"],
            }
        return self._assumed[account]


@pytest.fixture(scope="session")
def lab_server() -> Iterator[LabServer]:
    server = LabServer(snapshot_seconds=0.0)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def lab_endpoint(lab_server: LabServer) -> str:
    """The session lab's endpoint, emptied (moto reset) and with instant snapshots."""
    harness = LabHarness(lab_server.endpoint)
    harness.reset()
    harness.set_snapshot_seconds(0.0)
    return lab_server.endpoint


@pytest.fixture
def lab_harness(lab_endpoint: str) -> LabHarness:
    return LabHarness(lab_endpoint)


@pytest.fixture
def lab_clients(lab_endpoint: str) -> LabClients:
    return LabClients(lab_endpoint)


class LabKit:
    """Clients, the harness and the few steps most lab tests repeat."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.clients = LabClients(endpoint)
        self.harness = LabHarness(endpoint)
        self.ec2 = self.clients("ec2")
        self.ebs = self.clients("ebs")

    def volume(self, size: int = 1, region: str = "us-east-1", ec2: Any = None, **extra: Any) -> str:
        client = ec2 or (self.ec2 if region == "us-east-1" else self.clients("ec2", region))
        return str(client.create_volume(Size=size, AvailabilityZone=f"{region}a", **extra)["VolumeId"])

    def write_blocks(self, volume_id: str, contents: dict[int, bytes]) -> None:
        """Write `contents[i]` at the start of block i."""
        for index, data in contents.items():
            self.harness.write_volume(volume_id, index * BLOCK_SIZE, data)

    def snapshot(self, volume_id: str, ec2: Any = None) -> str:
        return str((ec2 or self.ec2).create_snapshot(VolumeId=volume_id)["SnapshotId"])

    def wait_completed(self, snapshot_id: str, ec2: Any = None, timeout: float = 20.0) -> list[str]:
        """Poll DescribeSnapshots until completed; returns the states seen, in order, without repeats."""
        client = ec2 or self.ec2
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            state = client.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0]["State"]
            if not seen or seen[-1] != state:
                seen.append(state)
            if state != "pending":
                return seen
            if time.monotonic() > deadline:
                raise AssertionError(f"{snapshot_id} still pending after {timeout}s")
            time.sleep(0.05)

    def block_tokens(self, snapshot_id: str, ebs: Any = None) -> dict[int, str]:
        """Every block of the snapshot (all pages) -> its block token."""
        client = ebs or self.ebs
        tokens: dict[int, str] = {}
        kwargs: dict[str, Any] = {"SnapshotId": snapshot_id}
        while True:
            page = client.list_snapshot_blocks(**kwargs)
            tokens.update({b["BlockIndex"]: b["BlockToken"] for b in page["Blocks"]})
            if not page.get("NextToken"):
                return tokens
            kwargs["NextToken"] = page["NextToken"]

    def read_block(self, snapshot_id: str, index: int, token: str, ebs: Any = None) -> bytes:
        answer = (ebs or self.ebs).get_snapshot_block(SnapshotId=snapshot_id, BlockIndex=index, BlockToken=token)
        return bytes(answer["BlockData"].read())


@pytest.fixture
def lab_kit(lab_endpoint: str) -> LabKit:
    return LabKit(lab_endpoint)


@pytest.fixture
def lab(lab_server: LabServer) -> LabServer:
    """The session's lab server (its state is reset by the fixtures that seed it)."""
    return lab_server


@pytest.fixture
def sk(lab: LabServer, catalog_url: str, tmp_path: Path) -> Iterator[Snapkeep]:
    """Snapkeep on a fresh catalog (SQLite or PostgreSQL) against the lab with its seed fleet and a vault 'main'."""
    fleet = fresh_fleet(lab.endpoint)
    app = open_on_lab(lab.endpoint, catalog_url, tmp_path, fleet)
    app.service.create_backup_vault("main")
    yield app
    app.close()


@pytest.fixture
def api(sk: Snapkeep) -> Iterator[str]:
    """A live API server over `sk`, its first admin key ADMIN_ID / ADMIN_SECRET; yields the endpoint."""
    env = {"SNAPKEEP_ADMIN_ACCESS_KEY_ID": ADMIN_ID, "SNAPKEEP_ADMIN_SECRET_ACCESS_KEY": ADMIN_SECRET}
    with ApiServer(sk.api(env)) as server:
        yield server.endpoint
