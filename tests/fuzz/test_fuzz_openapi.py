"""Fuzz every operation with schemathesis over the OpenAPI 3 document generated from botocore's model: positive
cases (what the document allows) and negative ones (wrong types, missing members, values out of bounds, bytes that
are not JSON), each SigV4-signed with botocore's signer just before it is sent, every answer checked as in
`answers.problems`."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import pytest
import requests
import schemathesis
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.utils import percent_encode_sequence
from hypothesis import given, reject
from hypothesis import strategies as st
from schemathesis import GenerationMode

from snapkeep.api.app import MODEL
from snapkeep.api.openapi import openapi_document
from tests.fuzz.answers import Answer, problems
from tests.fuzz.conftest import FuzzTarget, fuzz_settings
from tests.fuzz.inputs import valid_string

EXAMPLES = 4
SCHEMA = schemathesis.openapi.from_dict(openapi_document(MODEL))
OPERATIONS = {op.definition.raw["operationId"]: op for op in (r.ok() for r in SCHEMA.get_all_operations())}
# What a hand-written client may get besides the operation's own codes: a body that is not what the path's
# operation takes, or a signature over bytes the server saw differently, is refused before the operation runs.
REQUEST_LEVEL_EXTRA = frozenset({"InvalidSignatureException", "IncompleteSignatureException"})


class SigV4(requests.auth.AuthBase):
    """Signs a prepared request with botocore's SigV4Auth, over exactly the URL, headers and body sent.

    The query is first re-encoded as botocore encodes it (`percent_encode_sequence`: space as %20, only `-_.~` left
    as is): botocore's signer signs the query string as it finds it in the URL, and requests' form encoding ('+'
    for a space) is not SigV4's canonical form, which the server rebuilds from the decoded pairs."""

    def __init__(self, key_id: str, secret: str) -> None:
        self.signer = SigV4Auth(Credentials(key_id, secret), "backup", "us-east-1")

    def __call__(self, prepared: requests.PreparedRequest) -> requests.PreparedRequest:
        for name in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token"):
            prepared.headers.pop(name, None)
        url = urlsplit(prepared.url or "")
        if url.query:
            pairs = parse_qsl(url.query, keep_blank_values=True)
            prepared.url = urlunsplit(url._replace(query=percent_encode_sequence(pairs)))
        body = prepared.body or b""
        aws = AWSRequest(method=prepared.method, url=prepared.url,
                         data=body.encode("utf-8") if isinstance(body, str) else body,
                         headers=dict(prepared.headers))
        self.signer.add_auth(aws)
        prepared.headers["Authorization"] = aws.headers["Authorization"]
        for name in ("X-Amz-Date", "Date"):  # a generated Date header makes botocore sign with it instead
            if aws.headers.get(name) is not None:
                prepared.headers[name] = aws.headers[name]
        return prepared


def label_values(name: str, target: FuzzTarget) -> st.SearchStrategy[dict[str, str]] | None:
    """Values for the operation's uri labels that fit the model, real identifiers among them. schemathesis cannot
    make some itself (a pattern that holds '/', as an access point ARN's does), and real ones reach the service."""
    shape = MODEL.operation_model(name).input_shape
    labels = {m.serialization.get("name", n): valid_string(m, target.known.get(n, []), label=True)
              for n, m in (shape.members.items() if shape else []) if m.serialization.get("location") == "uri"}
    return st.fixed_dictionaries(labels) if labels else None


def test_the_document_has_every_operation_of_the_model() -> None:
    assert sorted(OPERATIONS) == sorted(MODEL.operation_names)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["positive", "negative"])
@pytest.mark.parametrize("name", sorted(OPERATIONS))
def test_schemathesis_requests_get_aws_shaped_answers(fuzz_target: FuzzTarget, name: str,
                                                      mode: GenerationMode) -> None:
    operation = OPERATIONS[name]
    model = MODEL.operation_model(name)
    strategies = [operation.as_strategy(generation_mode=mode)]
    labels = label_values(name, fuzz_target)
    if labels is not None:
        strategies.append(labels.flatmap(
            lambda values: operation.as_strategy(generation_mode=mode, path_parameters=values)))
    session = requests.Session()
    session.auth = SigV4(fuzz_target.key_id, fuzz_target.secret)

    @fuzz_settings(EXAMPLES)
    @given(st.one_of(strategies))
    def one_request(case: Any) -> None:
        try:
            response = case.call(base_url=fuzz_target.endpoint, session=session, timeout=30)
        except (requests.exceptions.InvalidHeader, requests.exceptions.InvalidURL, UnicodeError):
            reject()  # the client cannot send it at all
        headers = {k: ",".join(v) if isinstance(v, list) else v for k, v in response.headers.items()}
        answer = Answer(response.status_code, headers, response.content)
        broken = [] if mode is GenerationMode.POSITIVE else None
        found = problems(model, answer, broken=broken, allowed_extra=REQUEST_LEVEL_EXTRA)
        assert not found, "\n".join([case.as_curl_command(base_url=fuzz_target.endpoint), *found,
                                     fuzz_target.log.take()])

    one_request()
