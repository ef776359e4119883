"""Every validation rule of the live API, refused the AWS way.

boto3's real `backup` client (with its own parameter validation off, so the server alone decides) and raw requests
signed with botocore's SigV4Auth (to send what no client would) go to a live ApiServer over one Snapkeep catalog,
SQLite or PostgreSQL, that holds a plan, a selection, a completed backup job and two recovery points. Each bad request
must get AWS's error code and HTTP status and a message naming the field and what is wrong, and must change nothing:
what the API lists and describes, and every row of the catalog, are the same before and after.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
import sqlalchemy as sa
from botocore import xform_name
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from botocore.session import Session

from snapkeep.api.server import ApiServer
from snapkeep.app import Snapkeep
from snapkeep.catalog import tables
from snapkeep.lab.server import LabServer
from tests.conftest import _drop_pg_database, _fresh_pg_database
from tests.lab_flow import ADMIN_ID, ADMIN_SECRET, ROLE, drain, fresh_fleet, open_on_lab, tagged_instances

MODEL = Session().get_service_model("backup")

INVALID = "InvalidParameterValueException"
MISSING = "MissingParameterValueException"
NOT_FOUND = "ResourceNotFoundException"
INVALID_REQUEST = "InvalidRequestException"
ALREADY_EXISTS = "AlreadyExistsException"
LIMIT_EXCEEDED = "LimitExceededException"
UNKNOWN_OPERATION = "UnknownOperationException"
STATUS = {INVALID: 400, MISSING: 400, NOT_FOUND: 400, INVALID_REQUEST: 400, ALREADY_EXISTS: 400, LIMIT_EXCEEDED: 400,
          "ConflictException": 409, UNKNOWN_OPERATION: 404}

UNPROTECTED_INSTANCE = "arn:aws:ec2:us-east-1:999999999999:instance/i-0123456789abcdef0"
OMIT = object()  # a member left out of the request


@dataclass(frozen=True)
class World:
    """The Snapkeep every case runs against, and the ids of what it holds."""

    sk: Snapkeep
    endpoint: str
    instance: str  # an EC2 instance of the seed fleet, in a protected account
    plan_id: str  # plan "daily" (one rule into "main") with selection "tagged"
    selection_id: str
    job_id: str  # a COMPLETED backup job of `instance` into "main"
    point: str  # its recovery point (WARM)
    cold_point: str  # a second recovery point in "main", moved to cold storage (MoveToColdStorageAfterDays 30)
    # The newest snapshot taken: its catalog rows and the API view read with them (see `snapshot_before`).
    last_seen: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def client(self, key_id: str = ADMIN_ID, secret: str = ADMIN_SECRET, *, validate: bool = False) -> Any:
        return _client(self.endpoint, key_id, secret, validate)


@functools.cache
def _client(endpoint: str, key_id: str, secret: str, validate: bool) -> Any:
    """boto3's `backup` client, no retries; `validate=False` leaves every check to the server."""
    config = Config(parameter_validation=validate, retries={"max_attempts": 1, "mode": "standard"})
    return boto3.client("backup", region_name="us-east-1", endpoint_url=endpoint, aws_access_key_id=key_id,
                        aws_secret_access_key=secret, config=config)


@dataclass
class Ctx:
    """What a case builds its request from: the world and a client that leaves all checking to the server."""

    world: World
    api: Any

    def raw(self, method: str, path: str, body: bytes | str | dict[str, Any] = b"") -> dict[str, Any]:
        """A request no client would send, signed as boto3 signs; an error answer is raised as botocore would."""
        data = json.dumps(body).encode() if isinstance(body, dict) else body.encode() if isinstance(body, str) else body
        return send_signed(self.world.endpoint, method, path, data)


def send_signed(endpoint: str, method: str, path: str, data: bytes = b"", key_id: str = ADMIN_ID,
                secret: str = ADMIN_SECRET) -> dict[str, Any]:
    """Send a request signed with botocore's SigV4Auth; raise an error answer as botocore's ClientError.

    A query in `path` must be percent-encoded already: botocore signs the query of a URL as it finds it.
    """
    request = AWSRequest(method=method, url=endpoint + path, data=data, headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials(key_id, secret), "backup", "us-east-1").add_auth(request)
    prepared = request.prepare()
    outgoing = urllib.request.Request(prepared.url, data=data or None, method=method, headers=dict(prepared.headers))
    try:
        with urllib.request.urlopen(outgoing, timeout=30) as answer:
            return dict(json.loads(answer.read() or b"{}"))
    except urllib.error.HTTPError as exc:
        document = json.loads(exc.read() or b"{}")
        headers = {name.lower(): value for name, value in exc.headers.items()}
        response = {"Error": {"Code": headers.get("x-amzn-errortype", ""), "Message": document.get("Message", "")},
                    "ResponseMetadata": {"HTTPStatusCode": exc.code, "HTTPHeaders": headers}}
        if "Context" in document:
            response["Context"] = document["Context"]
        raise ClientError(response, f"{method} {path}") from None


# -- the world -------------------------------------------------------------------------------------------------------
CATALOGS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@contextlib.contextmanager
def open_world(request: pytest.FixtureRequest, lab_server: LabServer, home: Path) -> Iterator[World]:
    """A fresh catalog of the kind `request.param` names, on the freshly seeded lab, with the world's contents."""
    admin_url = database = None
    if request.param == "sqlite":
        url = f"sqlite:///{home / 'catalog.db'}"
    else:
        admin_url = request.getfixturevalue("postgres_server")
        database, url = _fresh_pg_database(admin_url)
    fleet = fresh_fleet(lab_server.endpoint)
    sk = open_on_lab(lab_server.endpoint, url, home, fleet)
    try:
        service = sk.service
        service.create_backup_vault("main")
        service.create_backup_vault("other")
        plan_id = service.create_backup_plan({"BackupPlanName": "daily", "Rules": [{
            "RuleName": "daily", "TargetBackupVaultName": "main", "Lifecycle": {"DeleteAfterDays": 35}}]})[
            "BackupPlanId"]
        selection_id = service.create_backup_selection(plan_id, {
            "SelectionName": "tagged", "IamRoleArn": ROLE,
            "ListOfTags": [{"ConditionType": "STRINGEQUALS", "ConditionKey": "backup", "ConditionValue": "daily"}]})[
            "SelectionId"]
        instance = tagged_instances(sk, "backup", "daily")[0]
        job_id = service.start_backup_job("main", instance, ROLE)["BackupJobId"]
        cold_job_id = service.start_backup_job("main", instance, ROLE)["BackupJobId"]
        drain(sk)
        point = service.describe_backup_job(job_id)["RecoveryPointArn"]
        cold_point = service.describe_backup_job(cold_job_id)["RecoveryPointArn"]
        # EC2 points never go cold in Snapkeep (nor in AWS Backup); this one stands for a point that has moved.
        with sk.store.transaction() as conn:
            sk.store.update_recovery_point(conn, cold_point, {
                "storage_class": "COLD", "lifecycle": {"MoveToColdStorageAfterDays": 30, "DeleteAfterDays": 400}})
        env = {"SNAPKEEP_ADMIN_ACCESS_KEY_ID": ADMIN_ID, "SNAPKEEP_ADMIN_SECRET_ACCESS_KEY": ADMIN_SECRET}
        with ApiServer(sk.api(env)) as server:
            yield World(sk, server.endpoint, instance, plan_id, selection_id, job_id, point, cold_point)
    finally:
        sk.close()
        if admin_url is not None and database is not None:
            _drop_pg_database(admin_url, database)


@pytest.fixture(scope="module", params=CATALOGS)
def world(request: pytest.FixtureRequest, lab_server: LabServer, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[World]:
    """One Snapkeep for the whole module: the cases change nothing, and each checks that itself."""
    with open_world(request, lab_server, tmp_path_factory.mktemp("negative")) as opened:
        yield opened


@pytest.fixture
def ctx(world: World) -> Ctx:
    return Ctx(world, world.client())


# -- what "changes nothing" means --------------------------------------------------------------------------------------
def _strip(answer: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in answer.items() if k != "ResponseMetadata"}


def api_view(world: World) -> dict[str, Any]:
    """Everything the API lists and describes, read with the admin key."""
    api = world.client(validate=True)
    view: dict[str, Any] = {"vaults": _strip(api.list_backup_vaults())}
    for vault in view["vaults"]["BackupVaultList"]:
        name = vault["BackupVaultName"]
        view[f"vault {name}"] = _strip(api.describe_backup_vault(BackupVaultName=name))
        points = _strip(api.list_recovery_points_by_backup_vault(BackupVaultName=name))
        view[f"points {name}"] = points
        for point in points["RecoveryPoints"]:
            arn = point["RecoveryPointArn"]
            view[f"point {arn}"] = _strip(api.describe_recovery_point(BackupVaultName=name, RecoveryPointArn=arn))
    view["plans"] = _strip(api.list_backup_plans(IncludeDeleted=True))
    for plan in view["plans"]["BackupPlansList"]:
        plan_id = plan["BackupPlanId"]
        view[f"versions {plan_id}"] = _strip(api.list_backup_plan_versions(BackupPlanId=plan_id))
        if "DeletionDate" in plan:
            continue
        view[f"plan {plan_id}"] = _strip(api.get_backup_plan(BackupPlanId=plan_id))
        selections = _strip(api.list_backup_selections(BackupPlanId=plan_id))
        view[f"selections {plan_id}"] = selections
        for selection in selections["BackupSelectionsList"]:
            view[f"selection {selection['SelectionId']}"] = _strip(api.get_backup_selection(
                BackupPlanId=plan_id, SelectionId=selection["SelectionId"]))
    view["jobs"] = _strip(api.list_backup_jobs())
    view["restores"] = _strip(api.list_restore_jobs())
    view["protected"] = _strip(api.list_protected_resources())
    return view


def catalog_rows(world: World) -> dict[str, list[str]]:
    """Every row of every catalog table (tasks, cursors and keys included), in a stable order."""
    with world.sk.store.engine.connect() as conn:
        return {table.name: sorted(repr(sorted(row.items())) for row in conn.execute(sa.select(table)).mappings())
                for table in tables.metadata.sorted_tables}


def snapshot(world: World) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The API's view and the catalog's rows, both read now."""
    view, rows = api_view(world), catalog_rows(world)
    world.last_seen.update(view=view, rows=rows)
    return view, rows


def snapshot_before(world: World) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The snapshot a request is compared with afterwards. The catalog's rows are always read now; the API view
    (some twenty requests, most of a case's time) is read now too, unless the newest snapshot saw exactly these
    rows: the API reads what it lists and describes from the catalog, so the same rows give the same view. Whatever
    a test did since then shows in the rows and forces a fresh view; the snapshot after the request is always read
    in full, so a request that changes anything still fails the comparison."""
    rows = catalog_rows(world)
    if world.last_seen.get("rows") == rows:
        return world.last_seen["view"], rows
    view = api_view(world)
    world.last_seen.update(view=view, rows=rows)
    return view, rows


def refused(world: World, call: Callable[[], object], code: str, *fragments: str, status: int | None = None) -> str:
    """Run `call`; it must fail with `code`, the HTTP status of that code, a message holding every fragment, and
    leave the API's view and the catalog exactly as they were. Returns the message."""
    before = snapshot_before(world)
    with pytest.raises(ClientError) as info:
        call()
    error = info.value.response["Error"]
    message = str(error["Message"])
    assert (error["Code"], message) == (code, message)
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == (status or STATUS[code])
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    # A bad value's error carries the field as its Context, and the message names it (an unreadable body has none).
    if code in (INVALID, MISSING, LIMIT_EXCEEDED) and not message.startswith("could not parse request body"):
        context = info.value.response.get("Context")
        assert context and str(context) in message, f"Context {context!r} is not named in {message!r}"
    assert snapshot(world) == before, "a refused request changed something"
    return message


def test_the_snapshot_sees_every_kind_of_change(world: World) -> None:
    """The comparison is not vacuous: it holds what the world holds, and a real change shows in both halves."""
    view, rows = snapshot(world)
    assert view["vaults"]["BackupVaultList"] and view["points main"]["RecoveryPoints"]
    assert {p["RecoveryPointArn"] for p in view["points main"]["RecoveryPoints"]} == {world.point, world.cold_point}
    assert rows["backup_jobs"] and rows["recovery_points"] and rows["backup_selections"] and rows["tasks"]
    api = world.client()
    api.create_backup_vault(BackupVaultName="changed")
    try:
        changed_view, changed_rows = snapshot(world)
        assert changed_view != view and changed_rows != rows
    finally:
        api.delete_backup_vault(BackupVaultName="changed")
    assert snapshot(world) == (view, rows)


# -- the cases ---------------------------------------------------------------------------------------------------------
Call = Callable[[Ctx], object]
RULE: dict[str, Any] = {"RuleName": "r", "TargetBackupVaultName": "main"}


def _given(members: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in members.items() if v is not OMIT}


def plan_doc(name: str = "p2", rules: list[dict[str, Any]] | None = None, **rule: Any) -> dict[str, Any]:
    return {"BackupPlanName": name, "Rules": rules if rules is not None else [_given({**RULE, **rule})]}


def create_plan(**rule: Any) -> Call:
    return lambda c: c.api.create_backup_plan(BackupPlan=plan_doc(**rule))


def create_selection(**members: Any) -> Call:
    selection = _given({"SelectionName": "s2", "IamRoleArn": ROLE, "Resources": ["*"], **members})
    return lambda c: c.api.create_backup_selection(BackupPlanId=c.world.plan_id, BackupSelection=selection)


def start_job(**members: Any) -> Call:
    def call(c: Ctx) -> object:
        request = _given({"BackupVaultName": "main", "ResourceArn": c.world.instance, "IamRoleArn": ROLE, **members})
        return c.api.start_backup_job(**request)

    return call


def restore(metadata: Any = OMIT, **members: Any) -> Call:
    def call(c: Ctx) -> object:
        return c.api.start_restore_job(**_given({"RecoveryPointArn": c.world.point, "Metadata": metadata, **members}))

    return call


def restore_volume(**metadata: str) -> Call:
    return restore({"availabilityZone": "us-east-1a", **metadata}, ResourceType="EBS")


def update_lifecycle(lifecycle: dict[str, int], vault: str = "main", cold: bool = False) -> Call:
    def call(c: Ctx) -> object:
        arn = c.world.cold_point if cold else c.world.point
        return c.api.update_recovery_point_lifecycle(BackupVaultName=vault, RecoveryPointArn=arn, Lifecycle=lifecycle)

    return call


def unknown_point(c: Ctx) -> str:
    return c.world.point.rsplit("/", 1)[0] + "/ami-00000000000000000"


def case(case_id: str, call: Call, code: str, *fragments: str) -> Any:
    return pytest.param(call, code, fragments, id=case_id)


VAULT_CASES = [
    case("vault-name-1-char", lambda c: c.api.create_backup_vault(BackupVaultName="a"), INVALID,
         "BackupVaultName", "{2,50}"),
    case("vault-name-51-chars", lambda c: c.api.create_backup_vault(BackupVaultName="v" * 51), INVALID,
         "BackupVaultName", "{2,50}"),
    case("vault-name-with-dot", lambda c: c.api.create_backup_vault(BackupVaultName="bad.name"), INVALID,
         "BackupVaultName", "{2,50}"),
    case("vault-name-with-space", lambda c: c.api.create_backup_vault(BackupVaultName="bad name"), INVALID,
         "BackupVaultName", "{2,50}"),
    case("vault-name-not-ascii", lambda c: c.api.create_backup_vault(BackupVaultName="coffre-été"), INVALID,
         "BackupVaultName", "{2,50}"),
    case("vault-duplicate", lambda c: c.api.create_backup_vault(BackupVaultName="main"), ALREADY_EXISTS,
         "backup vault 'main'", "already exists"),
    case("vault-key-not-an-arn", lambda c: c.api.create_backup_vault(BackupVaultName="v2", EncryptionKeyArn="nope"),
         INVALID, "EncryptionKeyArn", "'nope' is not a valid ARN"),
    case("vault-key-not-kms", lambda c: c.api.create_backup_vault(
        BackupVaultName="v2", EncryptionKeyArn="arn:aws:s3:::bucket"), INVALID, "EncryptionKeyArn", "KMS key ARN"),
    case("vault-tags-not-strings", lambda c: c.api.create_backup_vault(BackupVaultName="v2",
                                                                       BackupVaultTags={"team": 7}),
         INVALID, 'BackupVaultTags["team"]', "must be a string"),
    case("vault-tag-aws-prefix", lambda c: c.api.create_backup_vault(BackupVaultName="v2",
                                                                     BackupVaultTags={"AWS:owner": "me"}),
         INVALID, "BackupVaultTags", "'AWS:owner'", "reserved prefix 'aws:'"),
    case("vault-51-tags", lambda c: c.api.create_backup_vault(
        BackupVaultName="v2", BackupVaultTags={f"k{i}": "v" for i in range(51)}), LIMIT_EXCEEDED, "BackupVaultTags",
         "at most 50 tags", "got 51"),
    case("vault-describe-unknown", lambda c: c.api.describe_backup_vault(BackupVaultName="gone"), NOT_FOUND,
         "backup vault 'gone'", "not found"),
    case("vault-delete-unknown", lambda c: c.api.delete_backup_vault(BackupVaultName="gone"), NOT_FOUND,
         "backup vault 'gone'", "not found"),
    case("vault-delete-not-empty", lambda c: c.api.delete_backup_vault(BackupVaultName="main"), INVALID_REQUEST,
         "'main'", "contains 2 recovery points"),
]

CRON = "Rules[0].ScheduleExpression"
HOURLY = "runs more than once an hour"
PLAN_CASES = [
    case("plan-missing", lambda c: c.api.create_backup_plan(), MISSING, "BackupPlan", "is required"),
    case("plan-name-missing", lambda c: c.api.create_backup_plan(BackupPlan={"Rules": [RULE]}), MISSING,
         "BackupPlanName", "is required"),
    case("plan-name-empty", lambda c: c.api.create_backup_plan(BackupPlan=plan_doc("")), INVALID,
         "BackupPlanName", "1-50 letters"),
    case("plan-name-with-space", lambda c: c.api.create_backup_plan(BackupPlan=plan_doc("bad name")), INVALID,
         "BackupPlanName", "'bad name'", "1-50 letters"),
    case("plan-name-51-chars", lambda c: c.api.create_backup_plan(BackupPlan=plan_doc("p" * 51)), INVALID,
         "BackupPlanName", "1-50 letters"),
    case("plan-tag-aws-prefix", lambda c: c.api.create_backup_plan(BackupPlan=plan_doc(),
                                                                   BackupPlanTags={"aws:owner": "me"}), INVALID,
         "BackupPlanTags", "reserved prefix 'aws:'"),
    case("plan-no-rules", lambda c: c.api.create_backup_plan(BackupPlan=plan_doc(rules=[])), INVALID,
         "Rules", "at least one rule"),
    case("rule-name-with-space", create_plan(RuleName="bad rule"), INVALID, "Rules[0].RuleName", "{1,50}"),
    case("rule-name-51-chars", create_plan(RuleName="r" * 51), INVALID, "Rules[0].RuleName", "{1,50}"),
    case("rule-names-duplicate", lambda c: c.api.create_backup_plan(BackupPlan=plan_doc(rules=[RULE, RULE])),
         INVALID, "Rules[1].RuleName", "already used by Rules[0]", "must be unique"),
    case("rule-vault-missing", create_plan(TargetBackupVaultName=OMIT), MISSING,
         "Rules[0].TargetBackupVaultName", "is required"),
    case("rule-vault-does-not-exist", create_plan(TargetBackupVaultName="gone"), INVALID,
         "Rules[0].TargetBackupVaultName", "'gone' does not exist"),
    case("rule-vault-name-invalid", create_plan(TargetBackupVaultName="x"), INVALID,
         "Rules[0].TargetBackupVaultName", "{2,50}"),
    case("cron-5-fields", create_plan(ScheduleExpression="cron(0 5 * * ?)"), INVALID, CRON, "expected 6 fields",
         "got 5"),
    case("cron-7-fields", create_plan(ScheduleExpression="cron(0 0 5 ? * * *)"), INVALID, CRON, "got 7"),
    case("cron-both-day-fields", create_plan(ScheduleExpression="cron(0 5 1 * MON *)"), INVALID, CRON,
         "day-of-month ('1') and day-of-week ('MON') must be '?'"),
    case("cron-no-day-field", create_plan(ScheduleExpression="cron(0 5 ? * ? *)"), INVALID, CRON,
         "cannot both be '?'"),
    case("cron-minute-60", create_plan(ScheduleExpression="cron(60 5 ? * * *)"), INVALID, CRON,
         "minutes 60 is out of range 0-59"),
    case("cron-hour-24", create_plan(ScheduleExpression="cron(0 24 ? * * *)"), INVALID, CRON,
         "hours 24 is out of range 0-23"),
    case("cron-day-0", create_plan(ScheduleExpression="cron(0 5 0 * ? *)"), INVALID, CRON,
         "day-of-month 0 is out of range 1-31"),
    case("cron-day-32", create_plan(ScheduleExpression="cron(0 5 32 * ? *)"), INVALID, CRON,
         "day-of-month 32 is out of range 1-31"),
    case("cron-month-13", create_plan(ScheduleExpression="cron(0 5 ? 13 * *)"), INVALID, CRON,
         "month 13 is out of range 1-12"),
    case("cron-weekday-8", create_plan(ScheduleExpression="cron(0 5 ? * 8 *)"), INVALID, CRON,
         "day-of-week 8 is out of range 1-7"),
    case("cron-year-2200", create_plan(ScheduleExpression="cron(0 5 ? * * 2200)"), INVALID, CRON,
         "year 2200 is out of range 1970-2199"),
    case("cron-years-backwards", create_plan(ScheduleExpression="cron(0 5 ? * * 2030-2025)"), INVALID, CRON,
         "year range '2030-2025' runs backwards"),
    case("cron-weekday-step", create_plan(ScheduleExpression="cron(0 5 ? * MON/2 *)"), INVALID, CRON,
         "day-of-week does not allow '/'"),
    case("cron-two-nth-weekdays", create_plan(ScheduleExpression="cron(0 5 ? * 3#1,6#3 *)"), INVALID, CRON,
         "only one '#'"),
    case("cron-last-day-offset", create_plan(ScheduleExpression="cron(0 5 L-2 * ? *)"), INVALID, CRON, "(L-n)"),
    case("cron-rate", create_plan(ScheduleExpression="rate(1 day)"), INVALID, CRON,
         "rate() expressions are not supported"),
    case("cron-at", create_plan(ScheduleExpression="at(2030-01-01T00:00:00)"), INVALID, CRON,
         "is not a cron expression"),
    case("cron-unwrapped", create_plan(ScheduleExpression="0 5 ? * * *"), INVALID, CRON, "is not a cron expression"),
    case("cron-every-30-minutes", create_plan(ScheduleExpression="cron(0/30 * ? * * *)"), INVALID, CRON, HOURLY),
    case("cron-twice-an-hour", create_plan(ScheduleExpression="cron(0,30 8 ? * * *)"), INVALID, CRON, HOURLY),
    case("cron-every-minute", create_plan(ScheduleExpression="cron(* 5 ? * * *)"), INVALID, CRON, HOURLY),
    case("timezone-unknown", create_plan(ScheduleExpressionTimezone="Mars/Olympus_Mons"), INVALID,
         "Rules[0].ScheduleExpressionTimezone", "unknown time zone 'Mars/Olympus_Mons'"),
    case("timezone-offset", create_plan(ScheduleExpressionTimezone="UTC+2"), INVALID,
         "Rules[0].ScheduleExpressionTimezone", "unknown time zone 'UTC+2'"),
    case("timezone-path", create_plan(ScheduleExpressionTimezone="../../etc/passwd"), INVALID,
         "Rules[0].ScheduleExpressionTimezone", "is not an IANA time zone name"),
    case("start-window-59", create_plan(StartWindowMinutes=59), INVALID, "Rules[0].StartWindowMinutes",
         "between 60 and 52560000 minutes", "got 59"),
    case("start-window-negative", create_plan(StartWindowMinutes=-60), INVALID, "Rules[0].StartWindowMinutes",
         "got -60"),
    case("start-window-over-100-years", create_plan(StartWindowMinutes=52_560_001), INVALID,
         "Rules[0].StartWindowMinutes", "got 52560001"),
    case("completion-window-119", create_plan(CompletionWindowMinutes=119), INVALID,
         "Rules[0].CompletionWindowMinutes", "between 120 and 52560000 minutes", "got 119"),
    case("completion-window-equal-to-start", create_plan(StartWindowMinutes=120, CompletionWindowMinutes=120),
         INVALID, "Rules[0].CompletionWindowMinutes", "longer than StartWindowMinutes (120)"),
    case("completion-window-shorter-than-start", create_plan(StartWindowMinutes=600, CompletionWindowMinutes=300),
         INVALID, "Rules[0].CompletionWindowMinutes", "longer than StartWindowMinutes (600)", "got 300"),
    case("completion-window-over-100-years", create_plan(CompletionWindowMinutes=52_560_001), INVALID,
         "Rules[0].CompletionWindowMinutes", "got 52560001"),
    case("lifecycle-cold-plus-89", create_plan(Lifecycle={"MoveToColdStorageAfterDays": 30, "DeleteAfterDays": 119}),
         INVALID, "Rules[0].Lifecycle.DeleteAfterDays", "at least 90 days after MoveToColdStorageAfterDays (30)"),
    case("lifecycle-delete-negative", create_plan(Lifecycle={"DeleteAfterDays": -5}), INVALID,
         "Rules[0].Lifecycle.DeleteAfterDays", "between 1 and 36500 days", "got -5"),
    case("lifecycle-delete-0", create_plan(Lifecycle={"DeleteAfterDays": 0}), INVALID,
         "Rules[0].Lifecycle.DeleteAfterDays", "got 0"),
    case("lifecycle-delete-36501", create_plan(Lifecycle={"DeleteAfterDays": 36501}), INVALID,
         "Rules[0].Lifecycle.DeleteAfterDays", "got 36501"),
    case("lifecycle-cold-negative", create_plan(Lifecycle={"MoveToColdStorageAfterDays": -2}), INVALID,
         "Rules[0].Lifecycle.MoveToColdStorageAfterDays", "got -2"),
    case("lifecycle-cold-36501", create_plan(Lifecycle={"MoveToColdStorageAfterDays": 36501}), INVALID,
         "Rules[0].Lifecycle.MoveToColdStorageAfterDays", "got 36501"),
    case("copy-to-a-bucket", create_plan(CopyActions=[{"DestinationBackupVaultArn": "arn:aws:s3:::bucket"}]),
         INVALID, "Rules[0].CopyActions[0].DestinationBackupVaultArn", "is not a backup vault ARN"),
    case("copy-to-a-bad-vault-name", create_plan(CopyActions=[
        {"DestinationBackupVaultArn": "arn:aws:backup:us-west-2:123456789012:backup-vault:a"}]), INVALID,
         "Rules[0].CopyActions[0].DestinationBackupVaultArn", "is not a backup vault ARN"),
    case("copy-without-destination", create_plan(CopyActions=[{}]), MISSING,
         "Rules[0].CopyActions[0].DestinationBackupVaultArn", "is required"),
    case("copy-lifecycle", create_plan(CopyActions=[{
        "DestinationBackupVaultArn": "arn:aws:backup:us-west-2:123456789012:backup-vault:dr",
        "Lifecycle": {"DeleteAfterDays": 0}}]), INVALID, "Rules[0].CopyActions[0].Lifecycle.DeleteAfterDays",
         "got 0"),
    case("recovery-point-tag-aws-prefix", create_plan(RecoveryPointTags={"aws:owner": "me"}), INVALID,
         "Rules[0].RecoveryPointTags.aws:owner", "reserved"),
    case("index-actions", create_plan(IndexActions=[{"ResourceTypes": ["EBS"]}]), INVALID,
         "Rules[0].IndexActions", "not supported"),
    case("scan-actions", create_plan(ScanActions=[{"MalwareScanner": "GUARDDUTY", "ScanMode": "FULL_SCAN"}]),
         INVALID, "Rules[0].ScanActions", "not supported"),
    case("air-gapped-target", create_plan(
        TargetLogicallyAirGappedBackupVaultArn="arn:aws:backup:us-east-1:123456789012:backup-vault:ag"), INVALID,
         "Rules[0].TargetLogicallyAirGappedBackupVaultArn", "not supported"),
    case("continuous-moves-to-cold", create_plan(
        EnableContinuousBackup=True, Lifecycle={"MoveToColdStorageAfterDays": 1, "DeleteAfterDays": 100}), INVALID,
         "Rules[0].Lifecycle.MoveToColdStorageAfterDays", "continuous backups cannot move to cold storage"),
    case("continuous-without-retention", create_plan(EnableContinuousBackup=True), MISSING,
         "Rules[0].Lifecycle.DeleteAfterDays", "1-35 days"),
    case("continuous-36-days", create_plan(EnableContinuousBackup=True, Lifecycle={"DeleteAfterDays": 36}), INVALID,
         "Rules[0].Lifecycle.DeleteAfterDays", "at most 35 days", "got 36"),
    case("advanced-settings-not-ec2", lambda c: c.api.create_backup_plan(BackupPlan={
        **plan_doc(), "AdvancedBackupSettings": [{"ResourceType": "RDS", "BackupOptions": {}}]}), INVALID,
         "AdvancedBackupSettings[0].ResourceType", "'RDS'"),
    case("advanced-settings-vss-value", lambda c: c.api.create_backup_plan(BackupPlan={
        **plan_doc(), "AdvancedBackupSettings": [{"ResourceType": "EC2", "BackupOptions": {"WindowsVSS": "maybe"}}]}),
         INVALID, "AdvancedBackupSettings[0].BackupOptions.WindowsVSS", "'maybe'"),
    case("update-unknown-plan", lambda c: c.api.update_backup_plan(BackupPlanId="gone", BackupPlan=plan_doc()),
         NOT_FOUND, "backup plan 'gone'", "not found"),
    case("update-duplicate-rule-names", lambda c: c.api.update_backup_plan(
        BackupPlanId=c.world.plan_id, BackupPlan=plan_doc("daily", rules=[RULE, RULE])), INVALID,
         "Rules[1].RuleName", "must be unique"),
    case("update-vault-does-not-exist", lambda c: c.api.update_backup_plan(
        BackupPlanId=c.world.plan_id, BackupPlan=plan_doc("daily", TargetBackupVaultName="gone")), INVALID,
         "Rules[0].TargetBackupVaultName", "'gone' does not exist"),
    case("update-completion-window", lambda c: c.api.update_backup_plan(
        BackupPlanId=c.world.plan_id, BackupPlan=plan_doc("daily", CompletionWindowMinutes=60)), INVALID,
         "Rules[0].CompletionWindowMinutes", "got 60"),
    case("get-unknown-plan", lambda c: c.api.get_backup_plan(BackupPlanId="gone"), NOT_FOUND,
         "backup plan 'gone'", "not found"),
    case("get-unknown-version", lambda c: c.api.get_backup_plan(BackupPlanId=c.world.plan_id, VersionId="v0"),
         NOT_FOUND, "version 'v0'", "not found"),
    case("delete-unknown-plan", lambda c: c.api.delete_backup_plan(BackupPlanId="gone"), NOT_FOUND,
         "backup plan 'gone'", "not found"),
    case("delete-plan-with-selections", lambda c: c.api.delete_backup_plan(BackupPlanId=c.world.plan_id),
         INVALID_REQUEST, "selections must be deleted"),
    case("versions-of-unknown-plan", lambda c: c.api.list_backup_plan_versions(BackupPlanId="gone"), NOT_FOUND,
         "backup plan 'gone'"),
    case("export-unknown-plan", lambda c: c.api.export_backup_plan_template(BackupPlanId="gone"), NOT_FOUND,
         "backup plan 'gone'"),
    case("template-not-json", lambda c: c.api.get_backup_plan_from_json(BackupPlanTemplateJson="{not json"),
         INVALID, "BackupPlanTemplateJson", "not valid JSON"),
    case("template-not-an-object", lambda c: c.api.get_backup_plan_from_json(BackupPlanTemplateJson="[]"),
         INVALID, "BackupPlanTemplateJson", "must be a JSON object"),
    case("template-invalid-plan", lambda c: c.api.get_backup_plan_from_json(
        BackupPlanTemplateJson=json.dumps(plan_doc(StartWindowMinutes=30))), INVALID,
         "Rules[0].StartWindowMinutes", "got 30"),
]

SELECTION_CASES = [
    case("selection-role-absent", create_selection(IamRoleArn=OMIT), MISSING, "BackupSelection.IamRoleArn",
         "is required"),
    case("selection-role-empty", create_selection(IamRoleArn=""), MISSING, "BackupSelection.IamRoleArn",
         "is required"),
    case("selection-role-is-a-user", create_selection(IamRoleArn="arn:aws:iam::123456789012:user/bob"), INVALID,
         "BackupSelection.IamRoleArn", "is not an IAM role ARN"),
    case("selection-role-not-an-arn", create_selection(IamRoleArn="BackupRole"), INVALID,
         "BackupSelection.IamRoleArn", "'BackupRole' is not an IAM role ARN"),
    case("selection-name-with-space", create_selection(SelectionName="bad name"), INVALID,
         "BackupSelection.SelectionName", "{1,50}"),
    case("selection-name-absent", create_selection(SelectionName=OMIT), MISSING, "BackupSelection.SelectionName",
         "is required"),
    case("selection-wildcard-in-the-middle", create_selection(
        Resources=["arn:aws:ec2:us-east-1:123456789012:instance/*-prod"]), INVALID, "BackupSelection.Resources[0]",
         "wildcard (*) that is neither at the end"),
    case("selection-partial-region-wildcard", create_selection(Resources=["arn:aws:ec2:us-*:*:instance/*"]),
         INVALID, "BackupSelection.Resources[0]", "wildcard (*)"),
    case("selection-not-an-arn", create_selection(Resources=["i-0123456789abcdef0"]), INVALID,
         "BackupSelection.Resources[0]", "is neither an ARN nor '*'"),
    case("selection-501-arns", create_selection(
        Resources=[f"arn:aws:ec2:us-east-1:123456789012:instance/i-{i:017x}" for i in range(501)]), INVALID,
         "BackupSelection.Resources", "at most 500 ARNs", "got 501"),
    case("selection-31-wildcards", create_selection(
        Resources=[f"arn:aws:ec2:us-east-1:123456789012:instance/i-{i:02d}*" for i in range(31)]), INVALID,
         "BackupSelection.Resources", "at most 30 ARNs with wildcards", "got 31"),
    case("selection-not-resources-not-an-arn", create_selection(NotResources=["prod-db"]), INVALID,
         "BackupSelection.NotResources[0]", "'prod-db' is neither an ARN nor '*'"),
    case("selection-nothing-selected", create_selection(Resources=[]), INVALID, "BackupSelection.Resources",
         "Either 'ListOfTags' or 'Resources' section must be non-empty"),
    case("selection-only-conditions", create_selection(Resources=OMIT, Conditions={"StringEquals": [
        {"ConditionKey": "aws:ResourceTag/backup", "ConditionValue": "daily"}]}), INVALID,
         "BackupSelection.Resources", "Either 'ListOfTags' or 'Resources'"),
    case("selection-condition-key-without-prefix", create_selection(Conditions={"StringEquals": [
        {"ConditionKey": "backup", "ConditionValue": "daily"}]}), INVALID,
         "BackupSelection.Conditions.StringEquals[0].ConditionKey", "must start with 'aws:ResourceTag/'"),
    case("selection-condition-key-only-prefix", create_selection(Conditions={"StringLike": [
        {"ConditionKey": "aws:ResourceTag/", "ConditionValue": "prod*"}]}), MISSING,
         "BackupSelection.Conditions.StringLike[0].ConditionKey", "a tag key is required"),
    case("selection-list-of-tags-not-stringequals", create_selection(ListOfTags=[
        {"ConditionType": "STRINGLIKE", "ConditionKey": "backup", "ConditionValue": "d*"}]), INVALID,
         "BackupSelection.ListOfTags[0].ConditionType", "STRINGEQUALS"),
    case("selection-list-of-tags-empty-key", create_selection(ListOfTags=[
        {"ConditionType": "STRINGEQUALS", "ConditionKey": "", "ConditionValue": "daily"}]), MISSING,
         "BackupSelection.ListOfTags[0].ConditionKey", "a tag key is required"),
    case("selection-of-unknown-plan", lambda c: c.api.create_backup_selection(BackupPlanId="gone", BackupSelection={
        "SelectionName": "s2", "IamRoleArn": ROLE, "Resources": ["*"]}), NOT_FOUND, "backup plan 'gone'"),
    case("selection-get-unknown", lambda c: c.api.get_backup_selection(BackupPlanId=c.world.plan_id,
                                                                       SelectionId="gone"), NOT_FOUND,
         "backup selection 'gone'", "not found"),
    case("selection-delete-unknown", lambda c: c.api.delete_backup_selection(BackupPlanId=c.world.plan_id,
                                                                             SelectionId="gone"), NOT_FOUND,
         "backup selection 'gone'", "not found"),
    case("selections-of-unknown-plan", lambda c: c.api.list_backup_selections(BackupPlanId="gone"), NOT_FOUND,
         "backup plan 'gone'"),
]

JOB_CASES = [
    case("job-vault-unknown", start_job(BackupVaultName="gone"), NOT_FOUND, "backup vault 'gone'", "not found"),
    case("job-vault-name-invalid", start_job(BackupVaultName="x"), INVALID, "BackupVaultName", "{2,50}"),
    case("job-vault-absent", start_job(BackupVaultName=OMIT), MISSING, "BackupVaultName", "is required"),
    case("job-resource-absent", start_job(ResourceArn=OMIT), MISSING, "ResourceArn", "is required"),
    case("job-resource-empty", start_job(ResourceArn=""), MISSING, "ResourceArn", "is required"),
    case("job-resource-not-an-arn", start_job(ResourceArn="i-0123456789abcdef0"), INVALID, "ResourceArn",
         "'i-0123456789abcdef0' is not a valid ARN"),
    case("job-resource-a-subnet", start_job(
        ResourceArn="arn:aws:ec2:us-east-1:123456789012:subnet/subnet-0123456789abcdef0"), INVALID, "ResourceArn",
         "is not an EC2 instance or EBS volume ARN"),
    case("job-resource-a-bucket", start_job(ResourceArn="arn:aws:s3:::bucket"), INVALID, "ResourceArn",
         "is not an EC2 instance or EBS volume ARN"),
    case("job-resource-unprotected-account", start_job(ResourceArn=UNPROTECTED_INSTANCE), INVALID, "ResourceArn",
         "account 999999999999 is not protected"),
    case("job-role-absent", start_job(IamRoleArn=OMIT), MISSING, "IamRoleArn", "is required"),
    case("job-role-empty", start_job(IamRoleArn=""), MISSING, "IamRoleArn", "is required"),
    case("job-start-window-59", start_job(StartWindowMinutes=59), INVALID, "StartWindowMinutes",
         "between 60 and 52560000"),
    case("job-start-window-negative", start_job(StartWindowMinutes=-1), INVALID, "StartWindowMinutes",
         "between 60 and 52560000"),
    case("job-start-window-over-100-years", start_job(StartWindowMinutes=52_560_001), INVALID,
         "StartWindowMinutes", "between 60 and 52560000"),
    case("job-start-window-text", start_job(StartWindowMinutes="sixty"), INVALID, "StartWindowMinutes",
         "must be an integer"),
    case("job-complete-window-shorter", start_job(StartWindowMinutes=120, CompleteWindowMinutes=100), INVALID,
         "CompleteWindowMinutes", "longer than StartWindowMinutes (120)"),
    case("job-complete-window-59", start_job(CompleteWindowMinutes=59), INVALID,
         "CompleteWindowMinutes", "between 60 and 52560000"),
    case("job-complete-window-over-100-years", start_job(CompleteWindowMinutes=52_560_001), INVALID,
         "CompleteWindowMinutes", "between 60 and 52560000"),
    case("job-role-not-an-arn", start_job(IamRoleArn="not-a-role"), INVALID, "IamRoleArn"),
    case("job-role-a-user", start_job(IamRoleArn="arn:aws:iam::123456789012:user/bob"), INVALID, "IamRoleArn",
         "is not an IAM role ARN"),
    case("job-vss-maybe", start_job(BackupOptions={"WindowsVSS": "maybe"}), INVALID, "BackupOptions.WindowsVSS",
         "'enabled' or 'disabled'"),
    case("job-unknown-backup-option", start_job(BackupOptions={"Turbo": "on"}), INVALID, "BackupOptions",
         "'Turbo'"),
    case("job-index-enabled", start_job(Index="ENABLED"), INVALID_REQUEST, "Index", "does not support"),
    case("job-air-gapped-vault", start_job(
        LogicallyAirGappedBackupVaultArn="arn:aws:backup:us-east-1:123456789012:backup-vault:lag"),
         INVALID_REQUEST, "LogicallyAirGappedBackupVaultArn", "does not support"),
    case("job-lifecycle-cold-plus-10", start_job(Lifecycle={"MoveToColdStorageAfterDays": 10,
                                                            "DeleteAfterDays": 20}), INVALID,
         "Lifecycle.DeleteAfterDays", "at least 90 days after MoveToColdStorageAfterDays (10)"),
    case("job-lifecycle-negative", start_job(Lifecycle={"DeleteAfterDays": -3}), INVALID,
         "Lifecycle.DeleteAfterDays", "got -3"),
    case("job-lifecycle-0", start_job(Lifecycle={"DeleteAfterDays": 0}), INVALID, "Lifecycle.DeleteAfterDays",
         "got 0"),
    case("job-lifecycle-36501", start_job(Lifecycle={"DeleteAfterDays": 36501}), INVALID,
         "Lifecycle.DeleteAfterDays", "got 36501"),
    case("job-recovery-point-tag-aws-prefix", start_job(RecoveryPointTags={"aws:owner": "me"}), INVALID,
         "RecoveryPointTags", "reserved prefix 'aws:'"),
    case("job-recovery-point-tag-key-129", start_job(RecoveryPointTags={"k" * 129: "v"}), INVALID,
         "RecoveryPointTags", "1 to 128 characters"),
    case("job-index-unknown-value", start_job(Index="MAYBE"), INVALID, "Index", "must be one of ENABLED, DISABLED"),
    case("job-describe-unknown", lambda c: c.api.describe_backup_job(BackupJobId="gone"), NOT_FOUND,
         "backup job 'gone'", "not found"),
    case("job-stop-unknown", lambda c: c.api.stop_backup_job(BackupJobId="gone"), NOT_FOUND, "backup job 'gone'"),
    case("job-stop-completed", lambda c: c.api.stop_backup_job(BackupJobId=c.world.job_id), INVALID_REQUEST,
         "backup job is COMPLETED and cannot be stopped"),
    case("jobs-by-unknown-state", lambda c: c.api.list_backup_jobs(ByState="DONE"), INVALID, "ByState",
         "must be one of CREATED"),
    case("jobs-by-invalid-vault-name", lambda c: c.api.list_backup_jobs(ByBackupVaultName="x"), INVALID,
         "ByBackupVaultName", "{2,50}"),
    case("jobs-by-short-account", lambda c: c.api.list_backup_jobs(ByAccountId="12345"), INVALID, "ByAccountId",
         "[0-9]{12}"),
]

POINT_CASES = [
    case("point-describe-unknown", lambda c: c.api.describe_recovery_point(
        BackupVaultName="main", RecoveryPointArn=unknown_point(c)), NOT_FOUND, "ami-00000000000000000", "not found"),
    case("point-describe-wrong-vault", lambda c: c.api.describe_recovery_point(
        BackupVaultName="other", RecoveryPointArn=c.world.point), NOT_FOUND, "not found in backup vault 'other'"),
    case("point-describe-unknown-vault", lambda c: c.api.describe_recovery_point(
        BackupVaultName="gone", RecoveryPointArn=c.world.point), NOT_FOUND, "'gone'"),
    case("point-delete-unknown", lambda c: c.api.delete_recovery_point(
        BackupVaultName="main", RecoveryPointArn=unknown_point(c)), NOT_FOUND, "ami-00000000000000000", "not found"),
    case("point-delete-wrong-vault", lambda c: c.api.delete_recovery_point(
        BackupVaultName="other", RecoveryPointArn=c.world.point), NOT_FOUND, "not found in backup vault 'other'"),
    case("point-lifecycle-unknown", lambda c: c.api.update_recovery_point_lifecycle(
        BackupVaultName="main", RecoveryPointArn=unknown_point(c), Lifecycle={"DeleteAfterDays": 10}), NOT_FOUND,
         "ami-00000000000000000", "not found"),
    case("point-lifecycle-wrong-vault", update_lifecycle({"DeleteAfterDays": 10}, vault="other"), NOT_FOUND,
         "not found in backup vault 'other'"),
    case("point-lifecycle-cold-plus-10", update_lifecycle({"MoveToColdStorageAfterDays": 10,
                                                           "DeleteAfterDays": 20}), INVALID,
         "Lifecycle.DeleteAfterDays", "at least 90 days after MoveToColdStorageAfterDays (10)"),
    case("point-lifecycle-negative", update_lifecycle({"DeleteAfterDays": -7}), INVALID,
         "Lifecycle.DeleteAfterDays", "got -7"),
    case("point-lifecycle-36501", update_lifecycle({"DeleteAfterDays": 36501}), INVALID,
         "Lifecycle.DeleteAfterDays", "got 36501"),
    case("point-cold-setting-changed-after-transition", update_lifecycle(
        {"MoveToColdStorageAfterDays": 60, "DeleteAfterDays": 400}, cold=True), INVALID_REQUEST,
         "Lifecycle.MoveToColdStorageAfterDays", "cannot be changed after the recovery point has transitioned to "
         "cold storage", "it is 30; got 60"),
    case("point-cold-setting-cleared-after-transition", update_lifecycle({"DeleteAfterDays": 400}, cold=True),
         INVALID_REQUEST, "Lifecycle.MoveToColdStorageAfterDays", "it is 30; got not set"),
    case("points-of-unknown-vault", lambda c: c.api.list_recovery_points_by_backup_vault(BackupVaultName="gone"),
         NOT_FOUND, "backup vault 'gone'"),
    case("points-by-invalid-resource-type", lambda c: c.api.list_recovery_points_by_backup_vault(
        BackupVaultName="main", ByResourceType="EC2 instance"), INVALID, "ByResourceType", "pattern"),
    case("restore-metadata-wrong-vault", lambda c: c.api.get_recovery_point_restore_metadata(
        BackupVaultName="other", RecoveryPointArn=c.world.point), NOT_FOUND, "not found in backup vault 'other'"),
    case("protected-resource-unknown", lambda c: c.api.describe_protected_resource(
        ResourceArn=UNPROTECTED_INSTANCE), NOT_FOUND, UNPROTECTED_INSTANCE, "has no recovery points"),
]

RESTORE_CASES = [
    case("restore-point-unknown", lambda c: c.api.start_restore_job(
        RecoveryPointArn=unknown_point(c), Metadata={}), NOT_FOUND, "ami-00000000000000000", "not found"),
    case("restore-point-absent", restore({}, RecoveryPointArn=OMIT), MISSING, "RecoveryPointArn", "is required"),
    case("restore-metadata-absent", restore(), MISSING, "Metadata", "is required"),
    case("restore-role-a-user", restore({"InstanceType": "t3.micro"}, IamRoleArn="arn:aws:iam::123456789012:user/b"),
         INVALID, "IamRoleArn", "is not an IAM role ARN"),
    case("restore-key-lower-case", restore({"instanceType": "t3.micro"}), INVALID, "Metadata.instanceType",
         "not a restore metadata key for EC2", "did you mean InstanceType?"),
    case("restore-key-wrong-case", restore({"SubnetID": "subnet-0123456789abcdef0"}), INVALID, "Metadata.SubnetID",
         "did you mean SubnetId?"),
    case("restore-key-all-lower-case", restore({"securitygroupids": "[]"}), INVALID, "Metadata.securitygroupids",
         "did you mean SecurityGroupIds?"),
    case("restore-key-unknown", restore({"Frobnicate": "x"}), INVALID, "Metadata.Frobnicate",
         "EC2 restore metadata keys are", "InstanceType"),
    case("restore-volume-key-of-instances", restore_volume(AvailabilityZone="us-east-1a"), INVALID,
         "Metadata.AvailabilityZone", "for EBS", "did you mean availabilityZone?"),
    case("restore-instance-type", restore({"InstanceType": "micro"}), INVALID, "Metadata.InstanceType",
         "'micro' is not an instance type"),
    case("restore-boolean", restore({"EbsOptimized": "yes"}), INVALID, "Metadata.EbsOptimized",
         "must be 'true' or 'false', not 'yes'"),
    case("restore-security-group", restore({"SecurityGroupIds": '["default"]'}), INVALID,
         "Metadata.SecurityGroupIds", "'default' is not a security group id"),
    case("restore-subnet", restore({"SubnetId": "subnet-xyz"}), INVALID, "Metadata.SubnetId",
         "'subnet-xyz' is not a subnet id"),
    case("restore-placement-not-json", restore({"Placement": "{not json"}), INVALID, "Metadata.Placement",
         "not valid JSON"),
    case("restore-placement-tenancy", restore({"Placement": '{"Tenancy": "shared"}'}), INVALID,
         "Metadata.Placement", "Tenancy 'shared'"),
    case("restore-zone-contradicts-placement", restore({
        "AvailabilityZone": "us-east-1a", "Placement": '{"AvailabilityZone": "us-east-1b"}'}), INVALID,
         "Metadata.AvailabilityZone", "contradicts Placement.AvailabilityZone 'us-east-1b'"),
    case("restore-shutdown-behavior", restore({"InstanceInitiatedShutdownBehavior": "hibernate"}), INVALID,
         "Metadata.InstanceInitiatedShutdownBehavior", "'hibernate' is not one of stop, terminate"),
    case("restore-instance-profile", restore({"IamInstanceProfileName": "my profile"}), INVALID,
         "Metadata.IamInstanceProfileName", "is not an instance profile name"),
    case("restore-resource-type-unsupported", restore({}, ResourceType="RDS"), INVALID, "ResourceType",
         "'RDS' is not supported"),
    case("restore-resource-type-pattern", restore({}, ResourceType="EC2 instance"), INVALID, "ResourceType",
         "pattern"),
    case("restore-volume-without-zone", restore({}, ResourceType="EBS"), MISSING, "Metadata.availabilityZone",
         "is required"),
    case("restore-volume-iops-on-gp2", restore_volume(volumeType="gp2", iops="3000"), INVALID, "Metadata.iops",
         "io1, io2, gp3, not gp2"),
    case("restore-volume-size", restore_volume(volumeSize="-4"), INVALID, "Metadata.volumeSize",
         "must be a positive integer, not '-4'"),
    case("restore-volume-device-not-in-point", restore_volume(DeviceName="/dev/sdz"), INVALID,
         "Metadata.DeviceName", "'/dev/sdz'"),
    case("restore-volume-key-unencrypted", restore_volume(encrypted="false", kmsKeyId="alias/backup"), INVALID,
         "Metadata.kmsKeyId", "encrypted 'true'"),
    case("restore-volume-device-and-id", restore_volume(DeviceName="/dev/xvda", volumeId="vol-0123456789abcdef0"),
         INVALID, "Metadata.volumeId", "not both"),
    case("restore-describe-unknown", lambda c: c.api.describe_restore_job(RestoreJobId="gone"), NOT_FOUND,
         "restore job 'gone'", "not found"),
    case("restore-metadata-of-unknown-job", lambda c: c.api.get_restore_job_metadata(RestoreJobId="gone"),
         NOT_FOUND, "restore job 'gone'"),
    case("restores-by-unknown-status", lambda c: c.api.list_restore_jobs(ByStatus="DONE"), INVALID, "ByStatus",
         "must be one of PENDING"),
    case("restores-of-resource-by-unknown-status", lambda c: c.api.list_restore_jobs_by_protected_resource(
        ResourceArn=c.world.instance, ByStatus="DONE"), INVALID, "ByStatus", "must be one of PENDING"),
]

PLAN_JSON_BODY = '{"BackupPlan": {"BackupPlanName": "p2", "Rules": [{"RuleName": "r", "TargetBackupVaultName": ' \
                 '"main", "StartWindowMinutes": %s}]}}'
PROTOCOL_CASES = [
    case("body-plan-is-a-string", lambda c: c.raw("PUT", "/backup/plans/", {"BackupPlan": "daily"}), INVALID,
         "BackupPlan", "must be an object, got string"),
    case("body-rules-is-an-object", lambda c: c.raw("PUT", "/backup/plans/", {
        "BackupPlan": {"BackupPlanName": "p2", "Rules": RULE}}), INVALID, "BackupPlan.Rules",
         "must be an array, got object"),
    case("body-window-is-a-string", lambda c: c.raw("PUT", "/backup/plans/", PLAN_JSON_BODY % '"60"'), INVALID,
         "BackupPlan.Rules[0].StartWindowMinutes", "must be an integer, got string"),
    case("body-window-is-fractional", lambda c: c.raw("PUT", "/backup/plans/", PLAN_JSON_BODY % "60.5"), INVALID,
         "BackupPlan.Rules[0].StartWindowMinutes", "must be a whole number"),
    case("body-window-is-a-boolean", lambda c: c.raw("PUT", "/backup/plans/", PLAN_JSON_BODY % "true"), INVALID,
         "BackupPlan.Rules[0].StartWindowMinutes", "got boolean"),
    case("body-window-beyond-a-long", lambda c: c.raw("PUT", "/backup/plans/", PLAN_JSON_BODY % ("9" * 20)),
         INVALID, "BackupPlan.Rules[0].StartWindowMinutes", "out of range"),
    case("body-window-nan", lambda c: c.raw("PUT", "/backup/plans/", PLAN_JSON_BODY % "NaN"), INVALID,
         "could not parse request body", "not valid JSON"),
    case("body-flag-is-a-string", lambda c: c.raw("PUT", "/backup/plans/", {"BackupPlan": plan_doc(
        EnableContinuousBackup="true")}), INVALID, "BackupPlan.Rules[0].EnableContinuousBackup",
         "must be a boolean, got string"),
    case("body-not-json", lambda c: c.raw("PUT", "/backup/plans/", "{not json"), INVALID,
         "could not parse request body", "not valid JSON"),
    case("body-not-utf8", lambda c: c.raw("PUT", "/backup/plans/", b'{"BackupPlan": "\xff"}'), INVALID,
         "could not parse request body"),
    case("body-an-array", lambda c: c.raw("PUT", "/backup/plans/", "[]"), INVALID,
         "expected a JSON object, got array"),
    case("body-tags-a-list", lambda c: c.raw("PUT", "/backup-vaults/v2", '{"BackupVaultTags": ["team"]}'),
         INVALID, "BackupVaultTags", "must be an object, got array"),
    case("body-metadata-value-an-object", lambda c: c.raw("PUT", "/restore-jobs", {
        "RecoveryPointArn": c.world.point, "Metadata": {"Placement": {"AvailabilityZone": "us-east-1a"}}}),
         INVALID, 'Metadata["Placement"]', "must be a string, got object"),
    case("body-metadata-value-a-boolean", lambda c: c.raw("PUT", "/restore-jobs", {
        "RecoveryPointArn": c.world.point, "Metadata": {"EbsOptimized": True}}), INVALID,
         'Metadata["EbsOptimized"]', "must be a string, got boolean"),
    case("body-required-member-absent", lambda c: c.raw("PUT", "/backup-jobs", {
        "ResourceArn": c.world.instance, "IamRoleArn": ROLE}), MISSING, "BackupVaultName", "is required"),
    case("query-max-results-not-a-number", lambda c: c.raw("GET", "/backup-jobs/?maxResults=ten"), INVALID,
         "MaxResults", "must be an integer"),
    case("query-timestamp-not-a-date", lambda c: c.raw("GET", "/backup-jobs/?createdAfter=yesterday"), INVALID,
         "ByCreatedAfter", "ISO-8601"),
    case("query-unknown-enum-value", lambda c: c.raw("GET", "/backup-vaults/?vaultType=SAFE"), INVALID,
         "ByVaultType", "must be one of BACKUP_VAULT"),
    case("query-boolean-not-a-boolean", lambda c: c.raw("GET", "/backup-vaults/?shared=maybe"), INVALID,
         "ByShared"),
    case("path-unknown", lambda c: c.raw("GET", "/backup-safes/"), UNKNOWN_OPERATION,
         "no operation matches GET /backup-safes"),
]


@pytest.mark.parametrize(("call", "code", "fragments"), VAULT_CASES + PLAN_CASES + SELECTION_CASES + JOB_CASES
                         + POINT_CASES + RESTORE_CASES + PROTOCOL_CASES)
def test_a_bad_request_is_refused_and_changes_nothing(
    ctx: Ctx, call: Call, code: str, fragments: tuple[str, ...]
) -> None:
    refused(ctx.world, lambda: call(ctx), code, *fragments)


def test_a_method_the_path_does_not_take_is_405_with_allow(ctx: Ctx) -> None:
    before = snapshot_before(ctx.world)
    with pytest.raises(ClientError) as info:
        ctx.raw("PATCH", "/backup-vaults/main")
    response = info.value.response
    assert (response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]) == (UNKNOWN_OPERATION, 405)
    assert response["ResponseMetadata"]["HTTPHeaders"]["allow"] == "DELETE, GET, PUT"
    assert "PATCH is not allowed on /backup-vaults/main" in response["Error"]["Message"]
    assert snapshot(ctx.world) == before


# -- pagination, with the bounds of botocore's model -------------------------------------------------------------------
PAGED: dict[str, Callable[[World], dict[str, Any]]] = {
    "ListBackupVaults": lambda w: {},
    "ListBackupPlans": lambda w: {},
    "ListBackupPlanVersions": lambda w: {"BackupPlanId": w.plan_id},
    "ListBackupSelections": lambda w: {"BackupPlanId": w.plan_id},
    "ListBackupJobs": lambda w: {},
    "ListRecoveryPointsByBackupVault": lambda w: {"BackupVaultName": "main"},
    "ListRecoveryPointsByResource": lambda w: {"ResourceArn": w.instance},
    "ListRestoreJobs": lambda w: {},
    "ListRestoreJobsByProtectedResource": lambda w: {"ResourceArn": w.instance},
    "ListProtectedResources": lambda w: {},
}


def _token(offset: str) -> str:
    return base64.urlsafe_b64encode(offset.encode()).decode()


@pytest.mark.parametrize("operation", sorted(PAGED))
def test_paging_bounds_and_tokens(world: World, operation: str) -> None:
    """MaxResults outside the model's bounds and tokens that are no tokens are refused; the bounds themselves work."""
    api = world.client()
    method = getattr(api, xform_name(operation))
    params = PAGED[operation](world)
    bounds = MODEL.operation_model(operation).input_shape.members["MaxResults"].metadata
    low, high = bounds["min"], bounds["max"]
    for size in (low - 1, high + 1, -5):
        refused(world, lambda size=size: method(**params, MaxResults=size), INVALID, "MaxResults",
                f"must be at {'least' if size < low else 'most'} {low if size < low else high}")
    for token in ("not base64!", _token("999999"), _token("-1"), _token("one")):
        refused(world, lambda token=token: method(**params, NextToken=token), INVALID, "NextToken",
                "is not valid")
    everything = _strip(method(**params))
    assert _strip(method(**params, MaxResults=high)) == everything
    key = next(k for k, v in everything.items() if isinstance(v, list))
    if len(everything[key]) > 1:
        first = method(**params, MaxResults=low)
        assert len(first[key]) == low and first["NextToken"]
        rest = method(**params, NextToken=first["NextToken"])
        assert first[key] + rest[key] == everything[key]


# -- the values at the bounds are accepted -----------------------------------------------------------------------------
ACCEPTED_RULES = [
    {"StartWindowMinutes": 60, "CompletionWindowMinutes": 120},
    {"StartWindowMinutes": 52_559_999, "CompletionWindowMinutes": 52_560_000},
    {"Lifecycle": {"MoveToColdStorageAfterDays": 30, "DeleteAfterDays": 120}},
    {"Lifecycle": {"DeleteAfterDays": 1}},
    {"Lifecycle": {"DeleteAfterDays": 36500}},
    {"Lifecycle": {"MoveToColdStorageAfterDays": -1, "DeleteAfterDays": -1}},
    {"ScheduleExpression": "cron(59 23 L * ? 2199)"},
    {"ScheduleExpression": "cron(0 * ? * MON-FRI *)"},
    {"ScheduleExpression": "cron(0 5 ? * 6#3 *)"},
    {"ScheduleExpression": "cron(15 2 LW * ? *)"},
    {"ScheduleExpressionTimezone": "America/Argentina/Buenos_Aires"},
    {"EnableContinuousBackup": True, "Lifecycle": {"DeleteAfterDays": 35}},
    {"RuleName": "r" * 50},
    {"CopyActions": [{"DestinationBackupVaultArn": "arn:aws:backup:eu-west-1:123456789012:backup-vault:dr",
                      "Lifecycle": {"DeleteAfterDays": 36500}}]},
]


@pytest.mark.parametrize("rule", ACCEPTED_RULES, ids=lambda r: json.dumps(r)[:60])
def test_the_bounds_themselves_are_accepted(world: World, rule: dict[str, Any]) -> None:
    """The refusals above are about the rule broken, not about the field: its edge values pass (nothing is stored)."""
    api = world.client()
    template = json.dumps(plan_doc("p" * 50, **rule))
    before = snapshot_before(world)
    answer = api.get_backup_plan_from_json(BackupPlanTemplateJson=template)["BackupPlan"]
    assert answer["BackupPlanName"] == "p" * 50
    assert snapshot(world) == before


def test_bounds_of_jobs_and_selections_are_accepted(world: World) -> None:
    api = world.client()
    job = api.start_backup_job(BackupVaultName="other", ResourceArn=world.instance, IamRoleArn=ROLE,
                               StartWindowMinutes=60, CompleteWindowMinutes=120,
                               Lifecycle={"MoveToColdStorageAfterDays": 1, "DeleteAfterDays": 91})
    try:
        assert api.describe_backup_job(BackupJobId=job["BackupJobId"])["State"] == "CREATED"
    finally:
        api.stop_backup_job(BackupJobId=job["BackupJobId"])
        drain(world.sk)
    resources = [f"arn:aws:ec2:us-east-1:123456789012:instance/i-{i:017x}" for i in range(470)]
    resources += [f"arn:aws:ec2:us-east-1:123456789012:instance/i-{i:02d}*" for i in range(30)]
    selection = api.create_backup_selection(BackupPlanId=world.plan_id, BackupSelection={
        "SelectionName": "s" * 50, "IamRoleArn": ROLE, "Resources": resources, "NotResources": ["*"]})
    try:
        stored = api.get_backup_selection(BackupPlanId=world.plan_id, SelectionId=selection["SelectionId"])
        assert len(stored["BackupSelection"]["Resources"]) == 500
    finally:
        api.delete_backup_selection(BackupPlanId=world.plan_id, SelectionId=selection["SelectionId"])


# -- refusals whose AWS code Snapkeep does not give yet ----------------------------------------------------------------
def _duplicate_plan(c: Ctx) -> object:
    return c.api.create_backup_plan(BackupPlan=plan_doc("daily"))


def _duplicate_selection(c: Ctx) -> object:
    return c.api.create_backup_selection(BackupPlanId=c.world.plan_id, BackupSelection={
        "SelectionName": "tagged", "IamRoleArn": ROLE, "Resources": ["*"]})


DUPLICATES = [
    pytest.param(_duplicate_plan, "'daily'", id="plan-name"),
    pytest.param(_duplicate_selection, "'tagged'", id="selection-name"),
]


@pytest.mark.parametrize(("call", "name"), DUPLICATES)
def test_a_duplicate_name_is_refused_and_changes_nothing(ctx: Ctx, call: Call, name: str) -> None:
    before = snapshot_before(ctx.world)
    with pytest.raises(ClientError) as info:
        call(ctx)
    error = info.value.response["Error"]
    assert error["Code"] == ALREADY_EXISTS
    assert name in error["Message"] and "already exists" in error["Message"]
    assert snapshot(ctx.world) == before


def test_renaming_a_plan_onto_another_is_refused(ctx: Ctx) -> None:
    other = ctx.api.create_backup_plan(BackupPlan=plan_doc("second"))["BackupPlanId"]
    try:
        before = snapshot_before(ctx.world)
        with pytest.raises(ClientError) as info:
            ctx.api.update_backup_plan(BackupPlanId=other, BackupPlan=plan_doc("daily"))
        assert "'daily' already exists" in info.value.response["Error"]["Message"]
        assert snapshot(ctx.world) == before
    finally:
        ctx.api.delete_backup_plan(BackupPlanId=other)


@pytest.mark.parametrize(("call", "name"), DUPLICATES)
def test_a_duplicate_name_is_already_exists_as_in_aws(ctx: Ctx, call: Call, name: str) -> None:
    refused(ctx.world, lambda: call(ctx), ALREADY_EXISTS, name, "already exists")


# -- accepted by the call, refused by the job --------------------------------------------------------------------------
def test_an_instance_that_does_not_exist_fails_its_job_and_leaves_no_recovery_point(world: World) -> None:
    """StartBackupJob does not ask EC2 (the service never calls AWS in a request): a well-formed ARN of an instance
    that does not exist, in a protected account, makes a job that the worker fails, naming the instance."""
    api = world.client()
    missing = world.instance.rsplit("/", 1)[0] + "/i-00000000000000000"
    points_before = api.list_recovery_points_by_backup_vault(BackupVaultName="other")["RecoveryPoints"]
    job_id = api.start_backup_job(BackupVaultName="other", ResourceArn=missing, IamRoleArn=ROLE)["BackupJobId"]
    drain(world.sk)
    job = api.describe_backup_job(BackupJobId=job_id)
    assert job["State"] == "FAILED"
    assert "i-00000000000000000" in job["StatusMessage"] and "does not exist" in job["StatusMessage"]
    assert "RecoveryPointArn" not in job
    assert api.list_recovery_points_by_backup_vault(BackupVaultName="other")["RecoveryPoints"] == points_before
    assert api.list_recovery_points_by_resource(ResourceArn=missing)["RecoveryPoints"] == []


def test_deleting_a_point_while_it_is_restored_is_a_conflict(world: World) -> None:
    api = world.client()
    restore = api.start_restore_job(RecoveryPointArn=world.point, Metadata={"InstanceType": "t3.micro"})
    try:
        refused(world, lambda: api.delete_recovery_point(BackupVaultName="main", RecoveryPointArn=world.point),
                "ConflictException", "being restored", "when the restore has ended")
    finally:
        drain(world.sk)
    assert api.describe_restore_job(RestoreJobId=restore["RestoreJobId"])["Status"] == "COMPLETED"


def test_the_same_cold_setting_may_be_given_again(world: World) -> None:
    """The refusal after a cold transition is about changing MoveToColdStorageAfterDays, not about the call."""
    api = world.client()
    answer = api.update_recovery_point_lifecycle(BackupVaultName="main", RecoveryPointArn=world.cold_point,
                                                 Lifecycle={"MoveToColdStorageAfterDays": 30, "DeleteAfterDays": 400})
    assert answer["Lifecycle"] == {"MoveToColdStorageAfterDays": 30, "DeleteAfterDays": 400}
