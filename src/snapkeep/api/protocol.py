"""AWS rest-json requests in, responses and errors out, driven by a botocore operation model.

Framework-agnostic: callers hand in the method/path/query/headers/body they received and get plain data back.

Wire facts relied on (botocore 1.44.5):
- Requests (`BaseRestSerializer.serialize_to_request` / `_partition_parameters`, botocore/serialize.py): members
  with `location` uri/querystring/header/headers go there under their `locationName`; querystring lists repeat the
  key; a querystring map's entries are plain keys of the query; every other member is a key of one JSON object body
  (or, with a `payload` member, the body is that member: raw bytes for a blob/string, JSON for a structure). Input
  with no body members may arrive with no body at all, and an operation whose body members are all absent gets `{}`.
- Responses (`BaseRestParser._parse_non_payload_attrs`, `RestJSONParser`, botocore/parsers.py): `location: header`
  members from headers, `location: statusCode` from the HTTP status, the rest from the JSON body; an empty body is
  read as `{}`.
- Errors (`RestJSONParser._inject_error_code` and `BaseJSONParser._do_error_parse`): the code is taken from the
  `x-amzn-ErrorType` header first (anything after ':' is dropped), then the body's `code`/`Code`, then `__type`; the
  message from the body's `message` or `Message`. botocore then parses the modelled error shape
  (`endpoint._add_modeled_error_fields`) so `Type` and `Context` show up on the exception's response, and boto3
  raises `client.exceptions.<Code>` when the model declares that code (AWS Backup declares the ten codes of
  `snapkeep.domain.errors` except `AccessDeniedException`, which arrives as a plain `ClientError` with that code).
  A 5xx answer is retried by botocore's retry handlers (`_retry.json` general_server_error / service_unavailable).
- A 204 carries no body (HTTP); botocore reads an empty body as `{}`.

Authentication is done elsewhere; its failures use the codes AWS's JSON-protocol services send for SigV4 problems
(they differ from query/XML services such as S3, STS or EC2, which say `SignatureDoesNotMatch`/`AuthFailure`):
`MissingAuthenticationTokenException` (403, no Authorization header or presigned query),
`IncompleteSignatureException` (400, malformed Authorization header: missing Credential/SignedHeaders/Signature or a
bad credential scope), `UnrecognizedClientException` (403, unknown access key id: "The security token included in
the request is invalid."), `InvalidSignatureException` (403, signature mismatch, and also "Signature expired: ... is
now earlier than ..." for clock skew over 5 minutes), `ExpiredTokenException` (403, expired session token) and
`AccessDeniedException` (403, authenticated but not allowed). See AWS's "Troubleshoot signed requests" guide and the
service API references' Common Errors pages.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from snapkeep.api import shapes
from snapkeep.api.router import MethodNotAllowed, RouteNotFound, query_pairs
from snapkeep.domain.errors import InvalidParameterValue, SnapkeepError

OperationModel = Any  # botocore.model.OperationModel

JSON_CONTENT_TYPE = "application/json"
_NO_BODY_STATUSES = frozenset({204, 205, 304})


class UnsupportedOperation(SnapkeepError):
    """An operation of the AWS Backup model that Snapkeep has no handler for (yet)."""

    code = "InvalidRequestException"
    http_status = 400
    exit_code = 2

    def __init__(self, operation_name: str) -> None:
        super().__init__(f"Snapkeep does not support {operation_name} yet")
        self.operation_name = operation_name


class UnknownOperation(SnapkeepError):
    """No operation has this path (AWS answers `UnknownOperationException` for a request it cannot route)."""

    code = "UnknownOperationException"
    http_status = 404
    exit_code = 2


class MethodNotAllowedError(UnknownOperation):
    """The path is known, but not with this method: same AWS code, HTTP 405 and an `Allow` header."""

    http_status = 405

    def __init__(self, message: str, *, allowed_methods: Sequence[str]) -> None:
        super().__init__(message)
        self.allowed_methods = tuple(allowed_methods)


def routing_error(result: RouteNotFound | MethodNotAllowed) -> UnknownOperation:
    """The error to answer a request the router could not place."""
    if isinstance(result, MethodNotAllowed):
        return MethodNotAllowedError(
            f"{result.method} is not allowed on {result.path} (allowed: {', '.join(result.allowed)})",
            allowed_methods=result.allowed)
    return UnknownOperation(f"no operation matches {result.method} {result.path}")


# --------------------------------------------------------------------------------------------------------- requests


def parse_request(operation_model: OperationModel, uri_params: Mapping[str, str],
                  query: Iterable[tuple[str, str]] | str | bytes, headers: Mapping[str, str],
                  body: bytes) -> dict[str, Any]:
    """The operation's input, keyed by member name as boto3 takes it, validated against the model.

    `uri_params` are the router's decoded labels; `query` the decoded query pairs (a key may repeat) or the raw
    query string; header names are matched case-insensitively. Raises `MissingParameterValue` /
    `InvalidParameterValue` naming the member path (e.g. `BackupPlan.Rules[0].RuleName`); unknown query keys,
    headers and JSON body members are ignored (as AWS ignores them), and JSON `null` counts as absent.
    """
    shape = operation_model.input_shape
    if shape is None:
        return {}
    fixed = _fixed_query_keys(operation_model.http.get("requestUri", ""))
    pairs = [(k, v) for k, v in query_pairs(query) if k not in fixed]
    try:
        return _parse_input(shape, uri_params, pairs, headers, body)
    except RecursionError:
        raise InvalidParameterValue("could not parse request body: nested too deeply") from None


@lru_cache(maxsize=1024)
def _fixed_query_keys(request_uri: str) -> frozenset[str]:
    """Keys of the fixed query of a `requestUri` (`?delete`): routing, not input."""
    query = request_uri.partition("?")[2]
    return frozenset(part.partition("=")[0] for part in query.split("&") if part)


def _parse_input(shape: shapes.Shape, uri_params: Mapping[str, str], query: list[tuple[str, str]],
                 headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    lower_headers = {k.lower(): v for k, v in headers.items()}
    members = shape.members
    result: dict[str, Any] = {}
    claimed_query = {m.serialization.get("name", n) for n, m in members.items()
                     if m.serialization.get("location") == "querystring" and m.type_name != "map"}
    body_members: dict[str, Any] = {}
    payload_name = shape.serialization.get("payload")
    for name, member in members.items():
        location = member.serialization.get("location")
        wire = member.serialization.get("name", name)
        value: Any = None
        if name == payload_name:
            continue
        if location == "uri":
            if wire in uri_params:
                value = shapes.from_text(member, uri_params[wire], name, "iso8601")
        elif location == "querystring":
            value = _from_query(member, name, wire, query, claimed_query)
        elif location == "header":
            if wire.lower() in lower_headers:
                value = _from_header(member, name, lower_headers[wire.lower()])
        elif location == "headers":
            prefix = wire.lower()
            found = {k[len(prefix):]: v for k, v in lower_headers.items() if k.startswith(prefix)}
            if found:
                value = shapes.from_json(member, found, name)
        elif location is None:
            body_members[name] = member
            continue
        if value is not None:
            result[name] = value
    if payload_name is not None:
        payload = _from_payload(members[payload_name], payload_name, body)
        if payload is not None:
            result[payload_name] = payload
    elif body_members:
        document = _json_body(body)
        for name, member in body_members.items():
            raw = document.get(member.serialization.get("name", name))
            if raw is not None:
                result[name] = shapes.from_json(member, raw, name)
    shapes.check_required(shape, result, "")
    if shape.is_tagged_union and len(result) != 1:
        raise InvalidParameterValue(f"request: must set exactly one of {', '.join(members)}")
    return result


def _from_query(member: shapes.Shape, name: str, wire: str, query: Sequence[tuple[str, str]],
                claimed: set[str]) -> Any:
    kind = member.type_name
    if kind == "map":
        value_shape = member.value
        entries: dict[str, Any] = {}
        for key, text in query:
            if key in claimed:
                continue
            if value_shape.type_name == "list":
                entries.setdefault(key, []).append(text)
            elif key not in entries:
                entries[key] = text
        if not entries:
            return None
        return shapes.from_json(member, entries, name)
    values = [v for k, v in query if k == wire]
    if not values:
        return None
    if kind == "list":
        shapes.check_size(member, len(values), name, "items")
        return [shapes.from_text(member.member, v, f"{name}[{i}]", "iso8601") for i, v in enumerate(values)]
    return shapes.from_text(member, values[0], name, "iso8601")


def _from_header(member: shapes.Shape, name: str, text: str) -> Any:
    if member.serialization.get("jsonvalue"):
        try:
            return json.loads(base64.b64decode(text.encode("ascii"), validate=True).decode("utf-8"))
        except (UnicodeError, binascii.Error, ValueError, RecursionError):
            raise InvalidParameterValue(f"{name}: must be base64-encoded JSON", field=name) from None
    if member.type_name == "list":
        items = shapes.split_header_list(member, text)
        shapes.check_size(member, len(items), name, "items")
        return [shapes.from_text(member.member, item, f"{name}[{i}]", "rfc822") for i, item in enumerate(items)]
    return shapes.from_text(member, text, name, "rfc822")


def _from_payload(member: shapes.Shape, name: str, body: bytes) -> Any:
    kind = member.type_name
    if kind == "blob":
        return body if body else None
    if kind == "string":
        if not body:
            return None
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidParameterValue("could not parse request body: not UTF-8 text", field=name) from None
        shapes.check_constraints(member, text, name)
        return text
    if not body.strip():
        return None
    return shapes.from_json(member, _json_value(body), name)


def _json_value(body: bytes) -> Any:
    def refuse_constant(text: str) -> Any:
        raise ValueError(text)

    try:
        return json.loads(body.decode("utf-8"), parse_constant=refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise InvalidParameterValue("could not parse request body: not valid JSON") from None


def _json_body(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    document = _json_value(body)
    if not isinstance(document, dict):
        raise InvalidParameterValue(
            f"could not parse request body: expected a JSON object, got {shapes.json_type_name(document)}")
    return document


# -------------------------------------------------------------------------------------------------------- responses


def serialize_response(operation_model: OperationModel, output: Mapping[str, Any], *,
                       request_id: str | None = None) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) for a successful call. `output` is the operation's output dict as boto3 returns it
    (without ResponseMetadata); None values are dropped; datetimes must be timezone-aware."""
    status = int(operation_model.http.get("responseCode", 200))
    headers: dict[str, str] = {}
    if request_id:
        headers["x-amzn-RequestId"] = request_id
    shape = operation_model.output_shape
    if shape is None:
        extra = [k for k, v in output.items() if v is not None and k != "ResponseMetadata"]
        if extra:
            raise ValueError(f"{operation_model.name} has no output, got {', '.join(extra)}")
        return status, headers, _body_for(status, headers, {})
    members = shape.members
    body_values: dict[str, Any] = {}
    payload_name = shape.serialization.get("payload")
    for name, value in output.items():
        if value is None or name == "ResponseMetadata":
            continue
        member = members.get(name)
        if member is None:
            raise ValueError(f"{operation_model.name}: output has no member {name!r}")
        location = member.serialization.get("location")
        wire = member.serialization.get("name", name)
        if location == "statusCode":
            status = int(value)
        elif location == "header":
            if member.type_name == "list" and not value:
                continue
            headers[wire] = shapes.to_text(member, value, name)
        elif location == "headers":
            for key, item in value.items():
                headers[f"{wire}{key}"] = str(item)
        elif name == payload_name:
            return status, headers, _payload_body(status, headers, member, value, name)
        else:
            body_values[name] = value
    if payload_name is not None:
        return status, headers, b""
    body = shapes.to_json(shape, {k: v for k, v in body_values.items()}, "")
    return status, headers, _body_for(status, headers, body)


def _payload_body(status: int, headers: dict[str, str], member: shapes.Shape, value: Any, name: str) -> bytes:
    if member.type_name == "blob":
        headers.setdefault("Content-Type", "application/octet-stream")
        return bytes(value) if not isinstance(value, str) else value.encode("utf-8")
    if member.type_name == "string":
        headers.setdefault("Content-Type", "text/plain; charset=utf-8")
        return str(value).encode("utf-8")
    return _body_for(status, headers, shapes.to_json(member, value, name))


def _body_for(status: int, headers: dict[str, str], document: Any) -> bytes:
    if status in _NO_BODY_STATUSES:
        return b""
    headers["Content-Type"] = JSON_CONTENT_TYPE
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


def serialize_error(error: SnapkeepError, *, request_id: str | None = None) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) that botocore turns back into `error.code` with `error.message`.

    Body `{"Code", "Message", "Type"}` as AWS Backup's modelled errors are shaped (`Context` carries the field
    when there is one); the code is also in `x-amzn-ErrorType`, which botocore reads first.
    """
    status = int(error.http_status)
    headers = {"x-amzn-ErrorType": error.code, "Content-Type": JSON_CONTENT_TYPE}
    if request_id:
        headers["x-amzn-RequestId"] = request_id
    if isinstance(error, MethodNotAllowedError):
        headers["Allow"] = ", ".join(error.allowed_methods)
    document = {"Code": error.code, "Message": error.message, "Type": "Server" if status >= 500 else "User"}
    if error.field:
        document["Context"] = error.field
    return status, headers, json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
