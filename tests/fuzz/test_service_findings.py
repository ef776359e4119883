"""Failures the fuzzers found in the service layer, kept as exact regression cases."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.fuzz.conftest import FuzzTarget
from tests.lab_flow import ROLE


def client(target: FuzzTarget) -> Any:
    return boto3.client("backup", region_name="us-east-1", endpoint_url=target.endpoint,
                        aws_access_key_id=target.key_id, aws_secret_access_key=target.secret,
                        config=Config(retries={"max_attempts": 1, "mode": "standard"}))


def test_start_restore_job_retried_with_its_idempotency_token_returns_the_same_job(fuzz_target: FuzzTarget) -> None:
    """AWS Backup: retrying a successful request with the same idempotency token succeeds with no action taken."""
    backup = client(fuzz_target)
    before = len(backup.list_restore_jobs()["RestoreJobs"])
    request = {"RecoveryPointArn": fuzz_target.known["RecoveryPointArn"][0], "IamRoleArn": ROLE,
               "Metadata": {"InstanceType": "t3.micro"}, "IdempotencyToken": "fuzz-restore-retry"}
    first = backup.start_restore_job(**request)["RestoreJobId"]
    assert backup.start_restore_job(**request)["RestoreJobId"] == first
    assert len(backup.list_restore_jobs()["RestoreJobs"]) == before + 1


def test_start_restore_job_with_an_empty_idempotency_token_twice(fuzz_target: FuzzTarget) -> None:
    """The model allows an empty token (no length constraint), so boto3 sends it; it must not be a server error."""
    backup = client(fuzz_target)
    request = {"RecoveryPointArn": fuzz_target.known["RecoveryPointArn"][0], "IamRoleArn": ROLE,
               "Metadata": {"InstanceType": "t3.micro"}, "IdempotencyToken": ""}
    for _ in range(2):
        try:
            backup.start_restore_job(**request)
        except ClientError as error:
            assert error.response["ResponseMetadata"]["HTTPStatusCode"] < 500, error.response["Error"]
