"""Requests the fuzzers found answered outside the API (by the web framework, not AWS-shaped), kept as cases."""

from __future__ import annotations

import json

import pytest
import requests

from snapkeep.api.app import MODEL
from tests.fuzz.answers import Answer, problems
from tests.fuzz.conftest import FuzzTarget
from tests.fuzz.test_fuzz_openapi import SigV4


def send(target: FuzzTarget, method: str, path: str, body: bytes = b"") -> Answer:
    session = requests.Session()
    session.auth = SigV4(target.key_id, target.secret)
    response = session.request(method, target.endpoint + path, data=body, timeout=30)
    return Answer(response.status_code, dict(response.headers), response.content)


def error_code(answer: Answer) -> str:
    assert answer.headers["content-type"] == "application/json", answer.describe()
    body = json.loads(answer.body)
    assert body["Code"] == answer.headers["x-amzn-errortype"] and body["Message"], answer.describe()
    return str(body["Code"])


def test_a_label_holding_a_newline_reaches_the_operation(fuzz_target: FuzzTarget) -> None:
    """Starlette's `path` route stopped at '\\n' and answered {"detail": "Not Found"}."""
    answer = send(fuzz_target, "GET", "/backup-vaults/main%0A")
    assert answer.status == 400 and error_code(answer) == "ResourceNotFoundException"
    assert "main\n" in json.loads(answer.body)["Message"]
    assert not problems(MODEL.operation_model("DescribeBackupVault"), answer, broken=[])
    assert send(fuzz_target, "GET", "/backup-vaults/main").status == 200


@pytest.mark.parametrize("method", ["OPTIONS", "PROPFIND", "TRACE"])
def test_a_method_the_model_does_not_use_is_an_unknown_operation(fuzz_target: FuzzTarget, method: str) -> None:
    """Starlette answered 405 {"detail": "Method Not Allowed"} for any method outside the route's list."""
    answer = send(fuzz_target, method, "/backup-vaults/main")
    assert answer.status == 405 and error_code(answer) == "UnknownOperationException"
    assert set(answer.headers["allow"].split(", ")) == {"GET", "PUT", "DELETE"}


def test_a_path_no_operation_has_is_an_unknown_operation(fuzz_target: FuzzTarget) -> None:
    answer = send(fuzz_target, "GET", "/no/such\n/path")
    assert answer.status == 404 and error_code(answer) == "UnknownOperationException"
