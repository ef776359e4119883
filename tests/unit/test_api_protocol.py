"""The wire layer against botocore itself: requests serialized by botocore's own serializer must route and parse back
to the parameters given, and our responses and errors must parse in botocore's own rest-json parser (and in boto3)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta, timezone
from functools import cache
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import boto3
import botocore.session
import pytest
from botocore.awsrequest import AWSResponse, HeadersDict, create_request_object, prepare_request_dict
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.model import ServiceModel
from botocore.parsers import create_parser
from botocore.serialize import create_serializer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snapkeep.api import auth, protocol
from snapkeep.api.protocol import UnsupportedOperation, parse_request, serialize_error, serialize_response
from snapkeep.api.router import AmbiguousRoutes, MethodNotAllowed, RouteMatch, RouteNotFound, Router
from snapkeep.domain import errors
from snapkeep.domain.errors import InvalidParameterValue, MissingParameterValue, SnapkeepError

MODEL = botocore.session.get_session().get_service_model("backup")
ROUTER = Router(MODEL)
OPERATIONS = sorted(MODEL.operation_names)
SERIALIZER = create_serializer("rest-json", include_validation=True)
PARSER = create_parser("rest-json")
ENDPOINT = "https://backup.snapkeep.test"

# A valid value for every string shape of the model that has a pattern (test_samples_cover_every_pattern).
SAMPLES = {
    "AccessPointArn": "arn:aws:backup:us-east-1:123456789012:accesspoint/ap-1",
    "AccessPointName": "ap-1",
    "AccountId": "123456789012",
    "BackupOptionKey": "WindowsVSS",
    "BackupOptionValue": "enabled",
    "BackupRuleName": "daily-1",
    "BackupSelectionName": "sel.1",
    "BackupVaultName": "vault-1",
    "BackupVaultNameOrWildcard": "vault-1",
    "FrameworkDescription": "a framework",
    "FrameworkName": "fw_1",
    "RecoveryPointArn": "arn:aws:ec2:us-east-1::image/ami-0123456789abcdef0",
    "ReportPlanDescription": "a report plan",
    "ReportPlanName": "rp_1",
    "ResourceArn": "arn:aws:ec2:us-east-1:123456789012:instance/i-0abc",
    "ResourceType": "EC2",
    "TieringConfigurationName": "tier_1",
}
WHEN = datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


# ------------------------------------------------------------------------------------------------------ helpers


def sample_value(shape: Any, *, full: bool, depth: int = 0) -> Any:
    """A valid value of `shape`: required members only, or (full) every member down to a few levels."""
    kind, meta = shape.type_name, shape.metadata
    if kind == "structure":
        if shape.is_document_type:
            return {"doc": [1, "two"]}
        names = list(shape.members) if full and depth < 4 else list(shape.required_members)
        if shape.is_tagged_union:
            names = names[:1] or list(shape.members)[:1]
        return {n: sample_value(shape.members[n], full=full, depth=depth + 1) for n in names}
    if kind == "list":
        return [sample_value(shape.member, full=full, depth=depth + 1) for _ in range(max(1, meta.get("min", 1)))]
    if kind == "map":
        return {sample_value(shape.key, full=full): sample_value(shape.value, full=full, depth=depth + 1)}
    if kind == "string":
        if shape.name in SAMPLES:
            return SAMPLES[shape.name]
        if meta.get("enum"):
            return meta["enum"][0]
        return "s" * max(1, meta.get("min", 1))
    if kind in ("integer", "long"):
        return max(meta.get("min", 7), min(7, meta.get("max", 7)))
    if kind in ("double", "float"):
        return 1.5
    if kind == "boolean":
        return True
    if kind == "timestamp":
        return WHEN
    if kind == "blob":
        return b"blob\x00\xff"
    raise AssertionError(f"no sample for {kind}")


def wire_request(op_model: Any, params: Mapping[str, Any]) -> tuple[str, str, str, dict[str, str], bytes]:
    """What botocore puts on the wire for `params`: method, raw path, raw query, headers, body."""
    request_dict = SERIALIZER.serialize_to_request(dict(params), op_model)
    prepare_request_dict(request_dict, ENDPOINT)
    prepared = create_request_object(request_dict).prepare()
    url = urlsplit(prepared.url)
    body = prepared.body or b""
    return prepared.method, url.path, url.query, dict(prepared.headers.items()), body


def route_and_parse(router: Router, model: Any, method: str, path: str, query: str, headers: Mapping[str, str],
                    body: bytes) -> tuple[str, dict[str, Any]]:
    found = router.match(method, path, query)
    assert isinstance(found, RouteMatch), (method, path, query, found)
    op_model = model.operation_model(found.operation_name)
    pairs = parse_qsl(query, keep_blank_values=True)
    return found.operation_name, parse_request(op_model, found.uri_params, pairs, headers, body)


def parse_response(op_model: Any, status: int, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    parsed = PARSER.parse({"status_code": status, "headers": HeadersDict(headers), "body": body},
                          op_model.output_shape)
    parsed.pop("ResponseMetadata", None)
    return dict(parsed)


def without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_none(v) for v in value]
    return value


# ------------------------------------------------------------------------------------------------------- router


def test_samples_cover_every_pattern() -> None:
    from snapkeep.api.shapes import check_constraints

    patterned = {n for n in MODEL.shape_names if MODEL.shape_for(n).metadata.get("pattern")}
    assert patterned <= set(SAMPLES)
    for name in patterned:
        check_constraints(MODEL.shape_for(name), SAMPLES[name], name)


@pytest.mark.parametrize("full", [False, True], ids=["minimal", "full"])
def test_router_finds_every_operation_from_botocore_requests(full: bool) -> None:
    assert len(OPERATIONS) == 115
    wrong = {}
    for name in OPERATIONS:
        op_model = MODEL.operation_model(name)
        params = sample_value(op_model.input_shape, full=full) if op_model.input_shape else {}
        method, path, query, _, _ = wire_request(op_model, params)
        found = ROUTER.match(method, path, query)
        if not (isinstance(found, RouteMatch) and found.operation_name == name):
            wrong[name] = (method, path, query, found)
    assert wrong == {}


def test_arn_labels_arrive_percent_encoded_and_are_decoded() -> None:
    arn = "arn:aws:ec2:us-east-1::image/ami-1"
    method, path, _, _, _ = wire_request(MODEL.operation_model("DescribeRecoveryPoint"),
                                         {"BackupVaultName": "v-1", "RecoveryPointArn": arn})
    assert path == "/backup-vaults/v-1/recovery-points/arn%3Aaws%3Aec2%3Aus-east-1%3A%3Aimage%2Fami-1"
    assert ROUTER.match(method, path) == RouteMatch("DescribeRecoveryPoint",
                                                    {"backupVaultName": "v-1", "recoveryPointArn": arn})
    # bytes (ASGI raw_path) work the same; a decoded path with '/' inside the ARN does not
    assert ROUTER.match("GET", path.encode()) == ROUTER.match("GET", path)
    assert not isinstance(ROUTER.match("GET", f"/backup-vaults/v-1/recovery-points/{arn}"), RouteMatch)


def test_router_methods_trailing_slashes_and_fixed_queries() -> None:
    assert ROUTER.match("GET", "/backup/plans/p1/") == RouteMatch("GetBackupPlan", {"backupPlanId": "p1"})
    assert ROUTER.match("GET", "/backup/plans/p1") == RouteMatch("GetBackupPlan", {"backupPlanId": "p1"})
    assert ROUTER.match("post", "/backup/plans/p1") == RouteMatch("UpdateBackupPlan", {"backupPlanId": "p1"})
    assert ROUTER.match("GET", "/backup/plans") == RouteMatch("ListBackupPlans", {})
    assert ROUTER.match("PATCH", "/backup/plans/p1") == MethodNotAllowed("PATCH", "/backup/plans/p1",
                                                                        ("DELETE", "GET", "POST"))
    assert ROUTER.match("GET", "/no/such/thing") == RouteNotFound("GET", "/no/such/thing")
    assert isinstance(ROUTER.match("GET", "backup/plans"), RouteNotFound)
    team = "/backup-vaults/v1/mpaApprovalTeam"
    assert ROUTER.match("PUT", team) == RouteMatch("AssociateBackupVaultMpaApprovalTeam", {"backupVaultName": "v1"})
    assert ROUTER.match("POST", team, "delete") == RouteMatch("DisassociateBackupVaultMpaApprovalTeam",
                                                             {"backupVaultName": "v1"})
    assert ROUTER.match("POST", team + "?delete") == ROUTER.match("POST", team, [("delete", "")])
    assert ROUTER.match("POST", team) == MethodNotAllowed("POST", team, ("PUT",))
    # literal segments beat labels: /backup-access-point/create is not DescribeBackupAccessPoint("create")
    assert ROUTER.match("PUT", "/backup-access-point/create").operation_name == "CreateBackupAccessPoint"  # type: ignore[union-attr]
    assert ROUTER.match("GET", "/backup-access-point/create").operation_name == "DescribeBackupAccessPoint"  # type: ignore[union-attr]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["GET", "PUT", "POST", "DELETE", "PATCH", "get"]),
       st.one_of(st.text(max_size=40), st.binary(max_size=40),
                 st.lists(st.sampled_from(["", "backup", "plans", "backup-vaults", "v", "%2F", "%", "%zz", "%C3",
                                           "recovery-points", "..", "?delete", "{x}"]),
                          max_size=6).map(lambda parts: "/" + "/".join(parts))),
       st.text(max_size=12))
def test_router_never_raises(method: str, path: str | bytes, query: str) -> None:
    assert isinstance(ROUTER.match(method, path, query), RouteMatch | RouteNotFound | MethodNotAllowed)


def _model(operations: dict[str, tuple[str, str]], shapes: dict[str, Any] | None = None) -> ServiceModel:
    ops = {}
    for name, (method, uri) in operations.items():
        ops[name] = {"name": name, "http": {"method": method, "requestUri": uri}}
    return ServiceModel({"version": "2.0", "metadata": {"protocol": "rest-json", "apiVersion": "2024-01-01",
                                                       "endpointPrefix": "t", "serviceId": "T", "uid": "t"},
                         "operations": ops, "shapes": shapes or {}}, service_name="t")


def test_most_literal_template_wins_and_equal_overlaps_are_refused() -> None:
    router = Router(_model({"ByLabel": ("GET", "/x/{a}"), "Literal": ("GET", "/x/y"),
                            "Greedy": ("GET", "/files/{key+}"), "GreedyMeta": ("GET", "/files/{key+}/meta")}))
    assert router.match("GET", "/x/y") == RouteMatch("Literal", {})
    assert router.match("GET", "/x/z") == RouteMatch("ByLabel", {"a": "z"})
    assert router.match("GET", "/files/a/b%2Fc/meta") == RouteMatch("GreedyMeta", {"key": "a/b/c"})
    assert router.match("GET", "/files/a/b") == RouteMatch("Greedy", {"key": "a/b"})
    with pytest.raises(AmbiguousRoutes):
        Router(_model({"A": ("GET", "/x/{a}"), "B": ("GET", "/{b}/y")}))
    with pytest.raises(AmbiguousRoutes):
        Router(_model({"A": ("GET", "/x/"), "B": ("GET", "/x")}))
    Router(_model({"A": ("GET", "/x/{a}"), "B": ("PUT", "/{b}/y")}))  # other methods never clash


# ------------------------------------------------------------------------------------------------ parse_request


@pytest.mark.parametrize("full", [False, True], ids=["minimal", "full"])
def test_every_operation_parses_back_what_botocore_sent(full: bool) -> None:
    wrong = {}
    for name in OPERATIONS:
        op_model = MODEL.operation_model(name)
        params = sample_value(op_model.input_shape, full=full) if op_model.input_shape else {}
        op, parsed = route_and_parse(ROUTER, MODEL, *wire_request(op_model, params))
        if (op, parsed) != (name, params):
            wrong[name] = (op, parsed, params)
    assert wrong == {}


@cache
def valid_strategy(shape: Any, where: str = "body", depth: int = 0) -> st.SearchStrategy[Any]:
    kind, meta = shape.type_name, shape.metadata
    if kind == "structure":
        if shape.is_document_type:
            return st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)
        members = shape.members
        if shape.is_tagged_union:
            return st.sampled_from(sorted(members)).flatmap(
                lambda n: valid_strategy(members[n], "body", depth + 1).map(lambda v: {n: v}))
        required = {n: valid_strategy(members[n], "body", depth + 1) for n in shape.required_members}
        optional = {} if depth >= 3 else {n: valid_strategy(m, "body", depth + 1)
                                          for n, m in members.items() if n not in required}
        return st.fixed_dictionaries(required, optional=optional)
    if kind == "list":
        low = meta.get("min", 0)
        return st.lists(valid_strategy(shape.member, where, depth + 1), min_size=low,
                        max_size=min(meta.get("max", low + 2), low + 2))
    if kind == "map":
        low = meta.get("min", 0)
        return st.dictionaries(valid_strategy(shape.key, "key"), valid_strategy(shape.value, where, depth + 1),
                               min_size=low, max_size=min(meta.get("max", low + 2), low + 2))
    if kind == "string":
        if shape.name in SAMPLES:
            return st.just(SAMPLES[shape.name])
        if meta.get("enum"):
            return st.sampled_from(meta["enum"])
        low = max(meta.get("min", 0), 1 if where in ("uri", "key") else 0)
        return st.text(st.characters(codec="utf-8"), min_size=low,
                       max_size=min(meta.get("max", low + 12), low + 12))
    if kind in ("integer", "long"):
        bits = 31 if kind == "integer" else 63
        return st.integers(meta.get("min", -(2**bits)), meta.get("max", 2**bits - 1))
    if kind in ("double", "float"):
        return st.floats(meta.get("min"), meta.get("max"), allow_nan=False, allow_infinity=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "timestamp":  # up to 2100 epoch floats keep microseconds exactly
        return st.datetimes(datetime(1970, 1, 2), datetime(2100, 1, 1), timezones=st.just(UTC))
    if kind == "blob":
        return st.binary(min_size=meta.get("min", 0), max_size=16)
    raise AssertionError(kind)


@cache
def input_strategy(name: str) -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    shape = MODEL.operation_model(name).input_shape
    if shape is None:
        return st.just((name, {}))
    members = shape.members
    required = {n: valid_strategy(members[n], members[n].serialization.get("location") or "body")
                for n in shape.required_members}
    optional = {n: valid_strategy(m, m.serialization.get("location") or "body")
                for n, m in members.items() if n not in required}
    return st.fixed_dictionaries(required, optional=optional).map(lambda params: (name, params))


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.sampled_from(OPERATIONS).flatmap(input_strategy))
def test_random_valid_inputs_round_trip_through_botocore(case: tuple[str, dict[str, Any]]) -> None:
    name, params = case
    op, parsed = route_and_parse(ROUTER, MODEL, *wire_request(MODEL.operation_model(name), params))
    assert op == name
    assert parsed == params


def _parse(op: str, body: Any = None, *, uri: Mapping[str, str] | None = None,
           query: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    raw = body if isinstance(body, bytes) else (b"" if body is None else json.dumps(body).encode())
    return parse_request(MODEL.operation_model(op), uri or {}, query or [], {}, raw)


RULE = {"RuleName": "daily", "TargetBackupVaultName": "vault-1"}
PLAN: dict[str, Any] = {"BackupPlanName": "plan", "Rules": [RULE]}


def test_nested_required_and_invalid_members_are_named_by_path() -> None:
    with pytest.raises(MissingParameterValue) as missing:
        _parse("CreateBackupPlan", {"BackupPlan": {"BackupPlanName": "p", "Rules": [RULE, {
            "TargetBackupVaultName": "vault-1"}]}})
    assert missing.value.field == "BackupPlan.Rules[1].RuleName"
    assert missing.value.message == "BackupPlan.Rules[1].RuleName: is required"
    with pytest.raises(MissingParameterValue) as top:
        _parse("CreateBackupPlan", {"BackupPlanTags": {}})
    assert top.value.field == "BackupPlan"
    cases: list[tuple[Any, str, str]] = [
        ({"RuleName": "no spaces!"}, "BackupPlan.Rules[0].RuleName", "must match the pattern"),
        ({"StartWindowMinutes": "60"}, "BackupPlan.Rules[0].StartWindowMinutes", "must be an integer, got string"),
        ({"StartWindowMinutes": 1.5}, "BackupPlan.Rules[0].StartWindowMinutes", "must be a whole number"),
        ({"StartWindowMinutes": True}, "BackupPlan.Rules[0].StartWindowMinutes", "must be an integer"),
        ({"StartWindowMinutes": 2**63}, "BackupPlan.Rules[0].StartWindowMinutes", "out of range"),
        ({"EnableContinuousBackup": "true"}, "BackupPlan.Rules[0].EnableContinuousBackup", "must be a boolean"),
        ({"Lifecycle": []}, "BackupPlan.Rules[0].Lifecycle", "must be an object, got array"),
        ({"RecoveryPointTags": {"k": 1}}, 'BackupPlan.Rules[0].RecoveryPointTags["k"]', "must be a string"),
        ({"CopyActions": [{}]}, "BackupPlan.Rules[0].CopyActions[0].DestinationBackupVaultArn", "is required"),
    ]
    advanced = {"BackupPlan": {**PLAN, "AdvancedBackupSettings": [
        {"ResourceType": "EC2", "BackupOptions": {"bad key!": "enabled"}}]}}
    with pytest.raises(InvalidParameterValue) as key_err:
        _parse("CreateBackupPlan", advanced)
    assert key_err.value.field == "BackupPlan.AdvancedBackupSettings[0].BackupOptions"
    assert "each key must match the pattern" in key_err.value.message
    for change, field, problem in cases:
        body = {"BackupPlan": {**PLAN, "Rules": [{**RULE, **change}]}}
        with pytest.raises((InvalidParameterValue, MissingParameterValue)) as err:
            _parse("CreateBackupPlan", body)
        assert err.value.field == field, change
        assert err.value.message.startswith(f"{field}: ") and problem in err.value.message, err.value.message


def test_query_and_uri_members_are_converted_and_validated() -> None:
    parsed = _parse("ListBackupJobs", query=[("maxResults", "10"), ("state", "COMPLETED"), ("nextToken", ""),
                                             ("createdBefore", "2024-01-02T03:04:05.678Z"), ("unknown", "x")])
    assert parsed == {"MaxResults": 10, "ByState": "COMPLETED", "NextToken": "",
                      "ByCreatedBefore": datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)}
    raw_query = parse_request(MODEL.operation_model("ListBackupJobs"), {}, b"maxResults=10&state=FAILED&x", {}, b"")
    assert raw_query == {"MaxResults": 10, "ByState": "FAILED"}
    plans = _parse("ListBackupPlans", query=[("includeDeleted", "true")])
    assert plans == {"IncludeDeleted": True}
    bad = [("maxResults", "0", "MaxResults", "must be at least 1"), ("maxResults", "1001", "MaxResults", "at most"),
           ("maxResults", "ten", "MaxResults", "must be an integer"), ("maxResults", "1_0", "MaxResults", "integer"),
           ("maxResults", "9" * 5000, "MaxResults", "out of range"),
           ("state", "DONE", "ByState", "must be one of CREATED, PENDING"),
           ("createdBefore", "yesterday", "ByCreatedBefore", "ISO-8601"),
           ("accountId", "1234", "ByAccountId", "pattern")]
    for key, value, field, problem in bad:
        with pytest.raises(InvalidParameterValue) as err:
            _parse("ListBackupJobs", query=[(key, value)])
        assert err.value.field == field and problem in err.value.message, err.value.message
    with pytest.raises(InvalidParameterValue, match="IncludeDeleted: must be true or false"):
        _parse("ListBackupPlans", query=[("includeDeleted", "yes")])
    with pytest.raises(MissingParameterValue, match="ScanEndTime: is required"):
        _parse("GetPITRMalwareScanResults", query=[("RecoveryPointArn", SAMPLES["RecoveryPointArn"]),
                                                   ("BackupVaultName", "vault-1"), ("MalwareScanner", "GUARDDUTY")])
    with pytest.raises(InvalidParameterValue, match="BackupVaultName: must match"):
        _parse("CreateBackupVault", uri={"backupVaultName": "a b"})
    with pytest.raises(MissingParameterValue, match="BackupVaultName: is required"):
        _parse("DescribeBackupVault")


def test_bodies_unknown_members_nulls_and_malformed_json() -> None:
    body = {"BackupPlan": {**PLAN, "Surprise": {"deep": [1]}}, "FromTheFuture": True, "BackupPlanTags": None}
    assert _parse("CreateBackupPlan", body) == {"BackupPlan": {
        "BackupPlanName": "plan", "Rules": [{"RuleName": "daily", "TargetBackupVaultName": "vault-1"}]}}
    assert _parse("UpdateRecoveryPointLifecycle", b"", uri={
        "backupVaultName": "vault-1", "recoveryPointArn": SAMPLES["RecoveryPointArn"]}) == {
        "BackupVaultName": "vault-1", "RecoveryPointArn": SAMPLES["RecoveryPointArn"]}
    for raw in [b"{", b"\xff\xfe", b'{"BackupPlan": NaN}', b"[" * 100_000, b'{"a": 1,}', b'{"a": "\\ud800" "x"}']:
        with pytest.raises(InvalidParameterValue, match="could not parse request body"):
            _parse("CreateBackupPlan", raw)
    with pytest.raises(InvalidParameterValue, match="expected a JSON object, got array"):
        _parse("CreateBackupPlan", b"[]")
    # a GET's body is not read
    assert _parse("ListBackupPlans", b"not json") == {}


def test_body_timestamps_are_epoch_seconds() -> None:
    from snapkeep.api.shapes import from_json

    ts_shape = MODEL.shape_for("timestamp")
    assert from_json(ts_shape, 1704164645.678, "T") == WHEN
    assert from_json(ts_shape, 0, "T") == datetime(1970, 1, 1, tzinfo=UTC)
    for bad in ["2024-01-02T03:04:05Z", True, 1e300, [1]]:
        with pytest.raises(InvalidParameterValue, match=r"^T: "):
            from_json(ts_shape, bad, "T")


# Arbitrary bytes/JSON, shaped like the operation's input or not, must only ever raise SnapkeepError.
JSON_SCALARS = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
                | st.sampled_from(["", "NaN", "Infinity", "2024-01-01T00:00:00Z", "AAAA", "!!", 2**64, -1, 1e308]))
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8)


@cache
def garbage_strategy(shape: Any, depth: int = 0) -> st.SearchStrategy[Any]:
    if depth > 4:
        return JSON_VALUES
    kind = shape.type_name
    if kind == "structure" and not shape.is_document_type:
        return JSON_VALUES | st.fixed_dictionaries({}, optional={
            m.serialization.get("name", n): garbage_strategy(m, depth + 1) for n, m in shape.members.items()})
    if kind == "list":
        return JSON_VALUES | st.lists(garbage_strategy(shape.member, depth + 1), max_size=3)
    if kind == "map":
        return JSON_VALUES | st.dictionaries(st.text(max_size=130), garbage_strategy(shape.value, depth + 1),
                                             max_size=3)
    return JSON_SCALARS


@cache
def garbage_request(name: str) -> st.SearchStrategy[tuple[str, dict[str, str], list[tuple[str, str]], bytes]]:
    op = MODEL.operation_model(name)
    labels = next(r for r in ROUTER.routes if r.operation_name == name).labels
    shape = op.input_shape
    query_keys = sorted({m.serialization.get("name", n) for n, m in shape.members.items()
                         if m.serialization.get("location") == "querystring"}) if shape is not None else []
    keys = st.sampled_from(query_keys) | st.text(max_size=4) if query_keys else st.text(max_size=4)
    texts = st.text(max_size=12) | st.sampled_from(["", "0", "-1", "true", "9" * 30, "NaN", "2024-13-01"])
    bodies = st.binary(max_size=64) | (garbage_strategy(shape) if shape is not None else JSON_VALUES).map(
        lambda v: json.dumps(v).encode())
    return st.tuples(st.just(name), st.fixed_dictionaries({}, optional={label: texts for label in labels}),
                     st.lists(st.tuples(keys, texts), max_size=4), bodies)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.sampled_from(OPERATIONS).flatmap(garbage_request), st.dictionaries(st.text(max_size=8), st.text(max_size=8)))
def test_bad_input_only_ever_raises_snapkeep_errors(
        case: tuple[str, dict[str, str], list[tuple[str, str]], bytes], headers: dict[str, str]) -> None:
    name, uri, query, body = case
    try:
        parse_request(MODEL.operation_model(name), uri, query, headers, body)
    except SnapkeepError as exc:
        assert exc.http_status == 400 and exc.message


# ------------------------------------------------------------------------------------------ serialize_response


def test_every_operation_output_parses_back_in_botocore() -> None:
    wrong = {}
    for name in OPERATIONS:
        op_model = MODEL.operation_model(name)
        output = sample_value(op_model.output_shape, full=True) if op_model.output_shape else {}
        status, headers, body = serialize_response(op_model, output, request_id="req-1")
        assert status == op_model.http.get("responseCode", 200)
        parsed = parse_response(op_model, status, headers, body)
        if parsed != output:
            wrong[name] = (parsed, output)
    assert wrong == {}


@cache
def output_strategy(name: str) -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    shape = MODEL.operation_model(name).output_shape
    if shape is None:
        return st.just((name, {}))
    return valid_strategy(shape).map(lambda output: (name, output))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.sampled_from(OPERATIONS).flatmap(output_strategy))
def test_random_outputs_parse_back_in_botocore(case: tuple[str, dict[str, Any]]) -> None:
    name, output = case
    op_model = MODEL.operation_model(name)
    parsed = parse_response(op_model, *serialize_response(op_model, output))
    assert parsed == output


def test_response_details() -> None:
    op = MODEL.operation_model("DescribeBackupVault")
    status, headers, body = serialize_response(op, {"BackupVaultName": "v", "CreationDate": WHEN, "Locked": None},
                                               request_id="r-1")
    assert status == 200
    assert headers == {"x-amzn-RequestId": "r-1", "Content-Type": "application/json"}
    assert json.loads(body) == {"BackupVaultName": "v", "CreationDate": 1704164645.678}
    other_zone = WHEN.astimezone(timezone(timedelta(hours=-5)))
    assert json.loads(serialize_response(op, {"CreationDate": other_zone})[2]) == {"CreationDate": 1704164645.678}
    with pytest.raises(ValueError, match="timezone-aware"):
        serialize_response(op, {"CreationDate": datetime(2024, 1, 1)})
    with pytest.raises(ValueError, match="no member 'Nope'"):
        serialize_response(op, {"Nope": 1})
    with pytest.raises(TypeError, match="NumberOfRecoveryPoints"):
        serialize_response(op, {"NumberOfRecoveryPoints": "3"})
    no_content = MODEL.operation_model("DeleteRestoreTestingPlan")
    assert serialize_response(no_content, {}) == (204, {}, b"")
    created = MODEL.operation_model("CreateRestoreTestingPlan")
    assert serialize_response(created, {"CreationTime": WHEN, "RestoreTestingPlanArn": "a",
                                        "RestoreTestingPlanName": "n"})[0] == 201


# --------------------------------------------------------------------------------------------- serialize_error


def _all_error_classes() -> list[type[SnapkeepError]]:
    """Every error class of snapkeep.domain.errors and of the wire layer."""
    found: list[type[SnapkeepError]] = []
    stack: list[type[SnapkeepError]] = [SnapkeepError]
    while stack:
        cls = stack.pop()
        if cls.__module__ in (errors.__name__, protocol.__name__, auth.__name__) and not cls.__name__.startswith("_"):
            found.append(cls)
        stack.extend(cls.__subclasses__())
    return found


AUTH_ERRORS: dict[type[SnapkeepError], tuple[str, int]] = {
    auth.MissingAuthenticationToken: ("MissingAuthenticationTokenException", 403),
    auth.IncompleteSignature: ("IncompleteSignatureException", 400),
    auth.UnrecognizedClient: ("UnrecognizedClientException", 403),
    auth.InvalidSignature: ("InvalidSignatureException", 403),
    errors.AccessDenied: ("AccessDeniedException", 403),
}


def _instance(cls: type[SnapkeepError]) -> SnapkeepError:
    if cls is UnsupportedOperation:
        return UnsupportedOperation("StartCopyJob")
    if cls is protocol.MethodNotAllowedError:
        return protocol.MethodNotAllowedError("PATCH is not allowed", allowed_methods=("GET", "PUT"))
    return cls(f"{cls.__name__} happened: ünïcode \"quoted\"", field="BackupVaultName")


def test_every_error_class_parses_in_botocore_with_code_and_message() -> None:
    classes = _all_error_classes()
    assert set(AUTH_ERRORS) <= set(classes) and errors.ResourceNotFound in classes
    for cls, (code, status) in AUTH_ERRORS.items():
        assert (cls.code, cls.http_status) == (code, status)
    op = MODEL.operation_model("ListBackupVaults")
    for cls in classes:
        error = _instance(cls)
        status, headers, body = serialize_error(error, request_id="req-9")
        assert status == error.http_status
        assert headers["x-amzn-ErrorType"] == error.code
        parsed = PARSER.parse({"status_code": status, "headers": HeadersDict(headers), "body": body},
                              op.output_shape)
        assert parsed["Error"]["Code"] == error.code
        assert parsed["Error"]["Message"] == error.message
        assert parsed["ResponseMetadata"]["RequestId"] == "req-9"
        # the body alone is enough too (a proxy dropping the header)
        from_body = PARSER.parse({"status_code": status, "headers": {}, "body": body}, op.output_shape)
        assert from_body["Error"]["Code"] == error.code
        assert json.loads(body)["Type"] == ("Server" if status >= 500 else "User")


def test_unsupported_and_routing_errors() -> None:
    error = UnsupportedOperation("StartCopyJob")
    assert (error.code, error.http_status, error.message) == (
        "InvalidRequestException", 400, "Snapkeep does not support StartCopyJob yet")
    not_found = protocol.routing_error(RouteNotFound("GET", "/nope"))
    assert (not_found.code, not_found.http_status) == ("UnknownOperationException", 404)
    not_allowed = protocol.routing_error(MethodNotAllowed("PATCH", "/backup/plans/p", ("GET", "POST")))
    status, headers, _ = serialize_error(not_allowed)
    assert (status, headers["Allow"], not_allowed.code) == (405, "GET, POST", "UnknownOperationException")


# ---------------------------------------------------------------------------------------------- boto3 end to end


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


Server = Callable[[str, dict[str, Any]], Mapping[str, Any]]


@pytest.fixture(scope="module")
def wire() -> Iterator[tuple[Any, dict[str, Any]]]:
    """A real boto3 client whose HTTP exchange goes through router, parse_request and serialize_* in-process."""
    state: dict[str, Any] = {"server": None, "seen": []}

    def before_send(request: Any, **_: Any) -> AWSResponse:
        url = urlsplit(request.url)
        body = request.body or b""
        found = ROUTER.match(request.method, url.path, url.query)
        try:
            if not isinstance(found, RouteMatch):
                raise protocol.routing_error(found)
            op = MODEL.operation_model(found.operation_name)
            params = parse_request(op, found.uri_params, parse_qsl(url.query, keep_blank_values=True),
                                   dict(request.headers.items()), body)
            state["seen"].append((found.operation_name, params))
            status, headers, out = serialize_response(op, state["server"](found.operation_name, params),
                                                      request_id="rid-1")
        except SnapkeepError as exc:
            status, headers, out = serialize_error(exc, request_id="rid-1")
        return AWSResponse(request.url, status, headers, _Raw(out))

    session = boto3.session.Session(aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret",
                                    region_name="us-east-1")
    client = session.client("backup", endpoint_url="http://snapkeep.test:8080",
                            config=Config(retries={"mode": "standard", "total_max_attempts": 1},
                                          parameter_validation=False))
    client.meta.events.register("before-send.backup", before_send)
    yield client, state


def test_boto3_calls_round_trip(wire: tuple[Any, dict[str, Any]]) -> None:
    client, state = wire
    arn = "arn:aws:ec2:us-east-1::image/ami-0abc"
    state["server"] = lambda op, params: {
        "BackupVaultName": params["BackupVaultName"], "RecoveryPointArn": params["RecoveryPointArn"],
        "CreationDate": WHEN, "BackupSizeInBytes": 2**40, "Status": "COMPLETED",
        "CreatedBy": {"BackupPlanId": "p"}}
    result = client.describe_recovery_point(BackupVaultName="vault-1", RecoveryPointArn=arn)
    assert state["seen"][-1] == ("DescribeRecoveryPoint", {"BackupVaultName": "vault-1", "RecoveryPointArn": arn})
    assert result["RecoveryPointArn"] == arn and result["CreationDate"] == WHEN
    assert result["BackupSizeInBytes"] == 2**40 and result["CreatedBy"] == {"BackupPlanId": "p"}
    assert result["ResponseMetadata"]["RequestId"] == "rid-1"

    state["server"] = lambda op, params: {"BackupPlanId": "p-1", "CreationDate": WHEN, "VersionId": "v1"}
    created = client.create_backup_plan(BackupPlan=PLAN, BackupPlanTags={"team": "ops"})
    op, params = state["seen"][-1]
    assert op == "CreateBackupPlan" and params["BackupPlan"] == PLAN and params["BackupPlanTags"] == {"team": "ops"}
    assert params["CreatorRequestId"]  # botocore fills idempotency tokens
    assert created["BackupPlanId"] == "p-1"

    state["server"] = lambda op, params: {"BackupJobs": []}
    client.list_backup_jobs(ByCreatedBefore=WHEN, ByState="FAILED", MaxResults=5)
    assert state["seen"][-1] == ("ListBackupJobs", {"ByCreatedBefore": WHEN, "ByState": "FAILED", "MaxResults": 5})


def test_boto3_raises_the_modelled_exceptions(wire: tuple[Any, dict[str, Any]]) -> None:
    client, state = wire
    for cls in _all_error_classes():
        error = _instance(cls)

        def server(op: str, params: dict[str, Any], error: SnapkeepError = error) -> Mapping[str, Any]:
            raise error

        state["server"] = server
        with pytest.raises(ClientError) as caught:
            client.list_backup_vaults()
        assert caught.value.response["Error"]["Code"] == error.code
        assert caught.value.response["Error"]["Message"] == error.message
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == error.http_status
        modelled = getattr(client.exceptions, error.code, None)
        if MODEL.shape_for_error_code(error.code) is not None:
            assert modelled is not None and isinstance(caught.value, modelled)
            assert caught.value.response["Type"] == ("Server" if error.http_status >= 500 else "User")

    with pytest.raises(client.exceptions.InvalidParameterValueException, match="MaxResults: must be at least 1"):
        client.list_backup_jobs(MaxResults=0)  # client-side validation is off: the server says no
    with pytest.raises(client.exceptions.MissingParameterValueException, match=r"BackupPlan\.Rules\[0\]\.RuleName"):
        client.create_backup_plan(BackupPlan={"BackupPlanName": "p", "Rules": [{"TargetBackupVaultName": "v-1"}]})


# ---------------------------------------------------------------------- headers, payloads, maps: a synthetic model


SYNTH = ServiceModel({
    "version": "2.0",
    "metadata": {"apiVersion": "2024-01-01", "endpointPrefix": "synth", "jsonVersion": "1.1", "protocol": "rest-json",
                 "serviceId": "Synth", "signatureVersion": "v4", "uid": "synth-2024-01-01"},
    "operations": {
        "PutThing": {"name": "PutThing", "http": {"method": "PUT", "requestUri": "/things/{Key+}?mode=fast",
                                                  "responseCode": 201},
                     "input": {"shape": "PutThingInput"}, "output": {"shape": "PutThingOutput"}},
        "Upload": {"name": "Upload", "http": {"method": "POST", "requestUri": "/blobs/{Id}"},
                   "input": {"shape": "UploadInput"}, "output": {"shape": "UploadOutput"}},
    },
    "shapes": {
        "PutThingInput": {"type": "structure", "required": ["Key", "Name"], "members": {
            "Key": {"shape": "String", "location": "uri", "locationName": "Key"},
            "When": {"shape": "Timestamp", "location": "header", "locationName": "X-When"},
            "Meta": {"shape": "String", "location": "header", "locationName": "X-Meta", "jsonvalue": True},
            "Flags": {"shape": "StringList", "location": "header", "locationName": "X-Flags"},
            "Dates": {"shape": "TimestampList", "location": "header", "locationName": "X-Dates"},
            "Count": {"shape": "Integer", "location": "header", "locationName": "X-Count"},
            "Ratio": {"shape": "Double", "location": "header", "locationName": "X-Ratio"},
            "Enabled": {"shape": "Boolean", "location": "header", "locationName": "X-Enabled"},
            "Extra": {"shape": "StringMap", "location": "headers", "locationName": "x-meta-"},
            "Filters": {"shape": "MultiMap", "location": "querystring"},
            "Since": {"shape": "Timestamp", "location": "querystring", "locationName": "since"},
            "Ids": {"shape": "IntegerList", "location": "querystring", "locationName": "id"},
            "Name": {"shape": "String"},
            "Stamp": {"shape": "IsoTimestamp", "locationName": "stamp"},
            "Data": {"shape": "Blob"},
            "Score": {"shape": "Double"},
            "Choice": {"shape": "Choice"},
        }},
        "PutThingOutput": {"type": "structure", "members": {
            "Status": {"shape": "Integer", "location": "statusCode"},
            "ETag": {"shape": "String", "location": "header", "locationName": "ETag"},
            "Modified": {"shape": "Timestamp", "location": "header", "locationName": "Last-Modified"},
            "Info": {"shape": "String", "location": "header", "locationName": "X-Info", "jsonvalue": True},
            "Tags": {"shape": "StringList", "location": "header", "locationName": "X-Tags"},
            "Enabled": {"shape": "Boolean", "location": "header", "locationName": "X-Enabled"},
            "Extra": {"shape": "StringMap", "location": "headers", "locationName": "x-meta-"},
            "Name": {"shape": "String"},
            "Created": {"shape": "Timestamp"},
            "Stamp": {"shape": "IsoTimestamp"},
            "Score": {"shape": "Double"},
            "Data": {"shape": "Blob"},
        }},
        "UploadInput": {"type": "structure", "required": ["Id"], "payload": "Body", "members": {
            "Id": {"shape": "String", "location": "uri", "locationName": "Id"},
            "Body": {"shape": "Blob"},
        }},
        "UploadOutput": {"type": "structure", "payload": "Doc", "members": {"Doc": {"shape": "Doc"}}},
        "Doc": {"type": "structure", "members": {"Size": {"shape": "Integer"}}},
        "Choice": {"type": "structure", "union": True, "members": {"A": {"shape": "String"},
                                                                    "B": {"shape": "Integer"}}},
        "String": {"type": "string"},
        "Integer": {"type": "integer"},
        "Double": {"type": "double"},
        "Boolean": {"type": "boolean"},
        "Blob": {"type": "blob"},
        "Timestamp": {"type": "timestamp"},
        "IsoTimestamp": {"type": "timestamp", "timestampFormat": "iso8601"},
        "StringList": {"type": "list", "member": {"shape": "String"}},
        "TimestampList": {"type": "list", "member": {"shape": "Timestamp"}},
        "IntegerList": {"type": "list", "member": {"shape": "Integer"}},
        "StringMap": {"type": "map", "key": {"shape": "String"}, "value": {"shape": "String"}},
        "MultiMap": {"type": "map", "key": {"shape": "String"}, "value": {"shape": "StringList"}},
    },
}, service_name="synth")
SYNTH_ROUTER = Router(SYNTH)


def test_headers_query_maps_and_payloads_round_trip_through_botocore() -> None:
    params = {
        "Key": "a/b c/ü", "When": WHEN.replace(microsecond=0), "Meta": {"k": [1, "x"], "n": None},
        "Flags": ["plain", "with,comma", 'with"quote'], "Dates": [WHEN.replace(microsecond=0), WHEN.replace(
            microsecond=0, year=2030)],
        "Count": -3, "Ratio": 0.25, "Enabled": False, "Extra": {"owner": "me", "team": "ops"},
        "Filters": {"f-colour": ["red", "blue"], "f-size": ["L"]}, "Since": WHEN, "Ids": [1, 2, 3],
        "Name": "thing", "Stamp": WHEN, "Data": b"\x00\x01", "Score": 2.5, "Choice": {"B": 3},
    }
    op, parsed = route_and_parse(SYNTH_ROUTER, SYNTH, *wire_request(SYNTH.operation_model("PutThing"), params))
    assert op == "PutThing"
    assert parsed == params

    op, parsed = route_and_parse(SYNTH_ROUTER, SYNTH, *wire_request(SYNTH.operation_model("Upload"),
                                                                    {"Id": "x", "Body": b"\xff raw"}))
    assert (op, parsed) == ("Upload", {"Id": "x", "Body": b"\xff raw"})

    with pytest.raises(InvalidParameterValue, match="Choice: must set exactly one"):
        parse_request(SYNTH.operation_model("PutThing"), {"Key": "k"}, [], {},
                      json.dumps({"Name": "n", "Choice": {"A": "x", "B": 1}}).encode())
    for header, value, problem in [("X-Count", "x", "Count: must be an integer"),
                                   ("X-When", "not a date", "When: must be an HTTP date"),
                                   ("x-meta", "!!", "Meta: must be base64-encoded JSON"),
                                   ("X-Enabled", "maybe", "Enabled: must be true or false")]:
        with pytest.raises(InvalidParameterValue, match=problem):
            parse_request(SYNTH.operation_model("PutThing"), {"Key": "k"}, [], {header: value}, b'{"Name": "n"}')


def test_header_and_status_outputs_parse_back_in_botocore() -> None:
    op = SYNTH.operation_model("PutThing")
    output = {"Status": 202, "ETag": '"abc"', "Modified": WHEN.replace(microsecond=0), "Info": {"a": [1, 2]},
              "Tags": ["x", "y"], "Enabled": True, "Extra": {"owner": "me"}, "Name": "n", "Created": WHEN,
              "Stamp": WHEN, "Score": -0.5,
              "Data": b"\x00"}
    status, headers, body = serialize_response(op, output)
    assert status == 202 and headers["X-Enabled"] == "true"
    assert parse_response(op, status, headers, body) == output
    default_status = serialize_response(op, {"Name": "n"})[0]
    assert default_status == 201
    upload = SYNTH.operation_model("Upload")
    status, headers, body = serialize_response(upload, {"Doc": {"Size": 3}})
    assert json.loads(body) == {"Size": 3}
    assert parse_response(upload, status, headers, body) == {"Doc": {"Size": 3}}


SYNTH_HEADERS = ["X-When", "X-Meta", "X-Flags", "X-Dates", "X-Count", "X-Ratio", "X-Enabled", "x-meta-a"]
HEADER_TEXTS = st.text(max_size=30) | st.sampled_from([
    "Mon, 01 Jan 2024 00:00:00 GMT", "Mon, 01 Jan 2024 00:00:00 GMT, Tue, 02 Jan 2024 00:00:00 GMT", '"a,b",c',
    '"unterminated', "eyJhIjoxfQ==", "bnVsbA==", "W10=", "e30=", "NaN", "-Infinity", "1e400", "TRUE", "0x1"])


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(SYNTH_HEADERS), HEADER_TEXTS),
       st.lists(st.tuples(st.sampled_from(["since", "id", "f-x", "mode"]), HEADER_TEXTS), max_size=4),
       st.binary(max_size=20) | JSON_VALUES.map(lambda v: json.dumps({"Name": "n", "Choice": v}).encode()))
def test_bad_headers_and_query_only_ever_raise_snapkeep_errors(
        headers: dict[str, str], query: list[tuple[str, str]], body: bytes) -> None:
    try:
        parse_request(SYNTH.operation_model("PutThing"), {"Key": "k"}, query, headers, body)
    except SnapkeepError as exc:
        assert exc.http_status == 400 and (exc.field is not None or "body" in exc.message)
