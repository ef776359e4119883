"""What every answer of the API must look like, whatever was asked: the checks both fuzzers apply.

- Never a 5xx: a bug answers ServiceUnavailableException (503) and an unreachable dependency 500; neither may
  happen for any input when the catalog and the lab are up.
- An error is AWS-shaped: `x-amzn-ErrorType` names the code, the JSON body has the same `Code` and a `Message`
  (botocore reads both), and the code is one of the service's model (so boto3 raises `client.exceptions.<Code>`)
  or a request-level one (routing). A request that breaks the model's constraints must be refused as bad input.
- A success has the operation's status and a JSON body of exactly the output shape's members and types, which
  botocore's own parser then reads without error.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from botocore.parsers import create_parser

Shape = Any  # botocore.model.Shape

BAD_INPUT = frozenset({"InvalidParameterValueException", "MissingParameterValueException"})
# Codes any operation may answer besides its modelled ones: bad input, an operation not served (yet), a request
# the router cannot place (a label holding '/', an empty label).
REQUEST_LEVEL = BAD_INPUT | {"InvalidRequestException", "UnknownOperationException"}
INTEGER_TYPES = frozenset({"integer", "long", "short", "byte"})


class Answer:
    """One HTTP answer as it came off the wire."""

    def __init__(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.status = status
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.body = body

    def describe(self) -> str:
        return f"HTTP {self.status} {self.headers.get('x-amzn-errortype', '')} {self.body[:600]!r}"


def problems(operation_model: Any, answer: Answer, *, broken: list[str] | None = None,
             allowed_extra: frozenset[str] = frozenset()) -> list[str]:
    """Everything wrong with `answer` to a request for `operation_model` (empty when it is fine). `broken` lists
    the model breaks the request carried (None: unknown, as for schemathesis' negative cases)."""
    if answer.status >= 500:
        return [f"server error: {answer.describe()}"]
    if answer.status >= 400:
        return _error_problems(operation_model, answer, broken, allowed_extra)
    found: list[str] = []
    if broken:
        found.append(f"accepted a request that breaks the model at {', '.join(broken)}: {answer.describe()}")
    expected = int(operation_model.http.get("responseCode", 200))
    if answer.status != expected:
        found.append(f"status {answer.status}, the model says {expected}")
    shape = operation_model.output_shape
    if shape is None or not answer.body:
        if answer.body not in (b"", b"{}"):
            found.append(f"no output expected, got {answer.body[:200]!r}")
        return found
    try:
        document = json.loads(answer.body)
    except ValueError:
        return [*found, f"success body is not JSON: {answer.describe()}"]
    found.extend(conformance(shape, document, "", top=True))
    parser = create_parser("rest-json")
    parsed = parser.parse({"status_code": answer.status, "headers": answer.headers, "body": answer.body}, shape)
    if "Error" in parsed and parsed["Error"].get("Code"):
        found.append(f"botocore read an error out of a success: {parsed['Error']}")
    return found


def _error_problems(operation_model: Any, answer: Answer, broken: list[str] | None,
                    allowed_extra: frozenset[str]) -> list[str]:
    header_code = answer.headers.get("x-amzn-errortype", "").partition(":")[0]
    try:
        body = json.loads(answer.body)
    except ValueError:
        return [f"error body is not JSON: {answer.describe()}"]
    if not isinstance(body, dict) or not isinstance(body.get("Message"), str) or not body.get("Message"):
        return [f"error body without a Message: {answer.describe()}"]
    if body.get("Code") != header_code or not header_code:
        return [f"x-amzn-ErrorType {header_code!r} and body Code {body.get('Code')!r} differ: {answer.describe()}"]
    if broken:
        if header_code not in BAD_INPUT:
            return [f"a request breaking the model at {', '.join(broken)} got {header_code}, not a bad-input error: "
                    f"{answer.describe()}"]
        return []
    allowed = service_error_codes(operation_model.service_model) | REQUEST_LEVEL | allowed_extra
    if header_code not in allowed:
        return [f"{header_code} is not an error code of {operation_model.service_model.service_name} "
                f"({', '.join(sorted(allowed))}): {answer.describe()}"]
    return []


def service_error_codes(service_model: Any) -> frozenset[str]:
    """Every error code the service's model knows. boto3 maps a code to `client.exceptions.<Code>` service-wide, and
    AWS answers codes an operation does not list (ResourceNotFoundException for a missing parent, for one), so the
    service's set is the contract, not the operation's."""
    return frozenset(e.error_code or e.name for name in service_model.operation_names
                     for e in service_model.operation_model(name).error_shapes)


def conformance(shape: Shape, value: Any, path: str, top: bool = False) -> list[str]:
    """Where `value` (decoded JSON of an output) strays from `shape`: unknown members, wrong types."""
    where = path or "output"
    kind = shape.type_name
    if kind == "structure":
        if shape.is_document_type:
            return []
        if not isinstance(value, dict):
            return [f"{where}: expected an object, got {type(value).__name__}"]
        members = {m.serialization.get("name", n): (n, m) for n, m in shape.members.items()
                   if not top or m.serialization.get("location") is None}
        found: list[str] = []
        for key, item in value.items():
            if key not in members:
                found.append(f"{where}: {key!r} is not a member of {shape.name}")
                continue
            name, member = members[key]
            found.extend(conformance(member, item, f"{path}.{name}" if path else name))
        return found
    if kind == "list":
        if not isinstance(value, list):
            return [f"{where}: expected an array, got {type(value).__name__}"]
        return [p for i, item in enumerate(value) for p in conformance(shape.member, item, f"{where}[{i}]")]
    if kind == "map":
        if not isinstance(value, dict):
            return [f"{where}: expected an object, got {type(value).__name__}"]
        return [p for k, item in value.items() for p in conformance(shape.value, item, f"{where}[{k!r}]")]
    if kind == "string":
        return [] if isinstance(value, str) else [f"{where}: expected a string, got {value!r}"]
    if kind == "boolean":
        return [] if isinstance(value, bool) else [f"{where}: expected a boolean, got {value!r}"]
    if kind in INTEGER_TYPES:
        return [] if isinstance(value, int) and not isinstance(value, bool) else [
            f"{where}: expected an integer, got {value!r}"]
    if kind in ("double", "float"):
        ok = (isinstance(value, int | float) and not isinstance(value, bool)) or value in ("NaN", "Infinity",
                                                                                         "-Infinity")
        return [] if ok else [f"{where}: expected a number, got {value!r}"]
    if kind == "timestamp":
        fmt = shape.serialization.get("timestampFormat", "unixTimestamp").lower()
        if fmt == "unixtimestamp":
            ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        else:
            ok = isinstance(value, str)
        return [] if ok else [f"{where}: expected a {fmt} timestamp, got {value!r}"]
    if kind == "blob":
        return [] if isinstance(value, str) else [f"{where}: expected base64 text, got {value!r}"]
    return [f"{where}: unknown shape type {kind}"]
