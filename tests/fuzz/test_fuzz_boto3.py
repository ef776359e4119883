"""Fuzz every operation of the AWS Backup model as boto3 sends it: inputs drawn from botocore's input shapes,
serialized and signed by boto3's real `backup` client (parameter validation off, so the server sees the breaks
too), and every answer checked on the wire (`answers.problems`)."""

from __future__ import annotations

import contextlib
from typing import Any

import boto3
import pytest
from botocore import xform_name
from botocore.config import Config
from botocore.exceptions import ClientError
from hypothesis import given

from snapkeep.api.app import MODEL
from tests.fuzz.answers import Answer, problems
from tests.fuzz.conftest import FuzzTarget, fuzz_settings
from tests.fuzz.inputs import Drawn, InputStrategies

EXAMPLES = 8


def raw_client(target: FuzzTarget) -> Any:
    """boto3's client exactly as users have it, but without client-side validation or retries, and with a read
    timeout that turns a hang into a failure."""
    config = Config(parameter_validation=False, retries={"max_attempts": 1, "mode": "standard"},
                    connect_timeout=5, read_timeout=30)
    return boto3.client("backup", region_name="us-east-1", endpoint_url=target.endpoint, config=config,
                        aws_access_key_id=target.key_id, aws_secret_access_key=target.secret)


OPERATIONS = sorted(MODEL.operation_names)  # served or not: an unserved one must answer "not supported", cleanly


@pytest.mark.parametrize("name", OPERATIONS)
def test_boto3_requests_get_aws_shaped_answers(fuzz_target: FuzzTarget, name: str) -> None:
    operation = MODEL.operation_model(name)
    client = raw_client(fuzz_target)
    call = getattr(client, xform_name(name))
    seen: list[Answer] = []

    def keep(http_response: Any, **_: Any) -> None:
        seen.append(Answer(http_response.status_code, dict(http_response.headers), http_response.content))

    client.meta.events.register(f"after-call.backup.{name}", keep)

    @fuzz_settings(EXAMPLES)
    @given(InputStrategies(fuzz_target.known).operation_input(operation))
    def one_request(drawn: Drawn) -> None:
        seen.clear()
        with contextlib.suppress(ClientError):  # the answer is checked on the wire, below
            call(**drawn.params)
        assert len(seen) == 1, f"{name}: no answer recorded"
        found = problems(operation, seen[0], broken=drawn.broken)
        if seen[0].headers.get("x-amzn-errortype") == "UnknownOperationException":
            found.append(f"boto3's request for {name} was not routed to it: {seen[0].describe()}")
        assert not found, "\n".join([f"{name}({drawn.params!r})", *found, fuzz_target.log.take()])

    one_request()
