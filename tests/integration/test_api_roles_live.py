"""Roles and keys over the live API: boto3's real `backup` client against a live ApiServer.

Viewers only read; operators do the day-to-day work but cannot delete recovery points or backup vaults, shorten
retention or touch vault locks; admins can. Every operation of botocore's model is tried with each role, as
`snapkeep.api.roles` classifies it: a refused call is AccessDeniedException (403) before any validation of its
input, and changes nothing. Authentication failures the other suites do not cover against the real server (a
disabled key, the right key id with the wrong secret, no signature, on every HTTP method; an expired signature)
are here too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest.mock import patch

import boto3
import pytest
from botocore import UNSIGNED, xform_name
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.session import Session

from snapkeep.api.roles import OPERATIONS, Access, Role
from snapkeep.lab.server import LabServer
from tests.integration.test_api_negative import (
    CATALOGS,
    World,
    open_world,
    send_signed,
    snapshot,
    snapshot_before,
)
from tests.lab_flow import ROLE, drain

MODEL = Session().get_service_model("backup")
FORBIDDEN = "AccessDeniedException"


@dataclass(frozen=True)
class Keys:
    world: World
    viewer: tuple[str, str]
    operator: tuple[str, str]
    admin: tuple[str, str]

    def client(self, role: Role) -> Any:
        key_id, secret = {Role.VIEWER: self.viewer, Role.OPERATOR: self.operator, Role.ADMIN: self.admin}[role]
        return self.world.client(key_id, secret)


USER_OF = {Role.VIEWER: "vera", Role.OPERATOR: "otto", Role.ADMIN: "ada"}


@pytest.fixture(scope="module", params=CATALOGS)
def keys(request: pytest.FixtureRequest, lab_server: LabServer, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[Keys]:
    """The negative suite's world (a plan, a selection, two recovery points in "main"), and a key of each role."""
    with open_world(request, lab_server, tmp_path_factory.mktemp("roles")) as world:
        store = world.sk.keys()
        now = datetime.now(UTC)
        made = {role: store.create_key(USER_OF[role], role, now) for role in Role}
        yield Keys(world, made[Role.VIEWER], made[Role.OPERATOR], made[Role.ADMIN])


# -- minimal valid-looking input for any operation of the model --------------------------------------------------------
PLACEHOLDER_ARN = "arn:aws:backup:us-east-1:123456789012:backup-vault:sk-placeholder"
STAMP = datetime(2026, 1, 1, tzinfo=UTC)


def _value(shape: Any, name: str, depth: int = 0) -> Any:
    """A value of `shape` such as a careful caller would send: enums take their first value, ARNs look like ARNs."""
    kind = shape.type_name
    if kind == "structure":
        if shape.is_document_type or depth > 4:
            return {}
        return {member: _value(shape.members[member], member, depth + 1) for member in shape.required_members}
    if kind == "list":
        return [_value(shape.member, name, depth + 1)]
    if kind == "map":
        return {}
    if kind == "string":
        if shape.enum:
            return shape.enum[0]
        text = PLACEHOLDER_ARN if name.endswith("Arn") or name.endswith("Arns") else "sk-placeholder"
        return text.ljust(int(shape.metadata.get("min", 0)), "x")
    if kind in ("integer", "long"):
        return max(int(shape.metadata.get("min", 1)), 1)
    if kind in ("double", "float"):
        return 1.0
    if kind == "boolean":
        return False
    if kind == "timestamp":
        return STAMP
    if kind == "blob":
        return b"sk"
    raise AssertionError(f"{name}: no placeholder for a {kind}")


def valid_looking(operation: str) -> dict[str, Any]:
    shape = MODEL.operation_model(operation).input_shape
    if shape is None:
        return {}
    return {member: _value(shape.members[member], member) for member in shape.required_members}


def without_body(operation: str) -> dict[str, Any]:
    """Only what routes the request (its path labels): every other required member is missing."""
    shape = MODEL.operation_model(operation).input_shape
    if shape is None:
        return {}
    return {k: v for k, v in valid_looking(operation).items()
            if shape.members[k].serialization.get("location") == "uri"}


def call(client: Any, operation: str, params: dict[str, Any]) -> dict[str, Any]:
    """Call `operation`; its error as a dict (Code, Message, Status), or {} when it succeeds."""
    try:
        getattr(client, xform_name(operation))(**params)
    except ClientError as exc:
        return {**exc.response["Error"], "Status": exc.response["ResponseMetadata"]["HTTPStatusCode"]}
    return {}


def needs(access: Access) -> list[str]:
    return sorted(op for op, least in OPERATIONS.items() if least is access)


NOT_READS = needs(Access.WRITE) + needs(Access.ADMIN)


def test_every_operation_of_the_model_is_classified_and_has_a_placeholder() -> None:
    assert sorted(OPERATIONS) == sorted(MODEL.operation_names)
    assert len(NOT_READS) + len(needs(Access.READ)) == len(MODEL.operation_names)
    for operation in MODEL.operation_names:
        valid_looking(operation)


# -- refused: before any validation, and nothing changes ---------------------------------------------------------------
def assert_denied(keys: Keys, role: Role, operation: str) -> None:
    client = keys.client(role)
    before = snapshot_before(keys.world)
    for params in (valid_looking(operation), without_body(operation)):
        error = call(client, operation, params)
        assert (error.get("Code"), error.get("Status")) == (FORBIDDEN, 403), (params, error)
        assert error["Message"].startswith(
            f"User {USER_OF[role]} (role {role}) is not authorized to perform: backup:{operation}: ")
    assert snapshot(keys.world) == before


@pytest.mark.parametrize("operation", NOT_READS)
def test_a_viewer_is_refused_every_operation_that_is_not_a_read(keys: Keys, operation: str) -> None:
    assert_denied(keys, Role.VIEWER, operation)


@pytest.mark.parametrize("operation", needs(Access.ADMIN))
def test_an_operator_is_refused_every_admin_only_operation(keys: Keys, operation: str) -> None:
    assert_denied(keys, Role.OPERATOR, operation)
    error = call(keys.client(Role.OPERATOR), operation, valid_looking(operation))
    assert "only role admin may, because it " in error["Message"]


# -- the day-to-day work, with real resources --------------------------------------------------------------------------
def refused_for(keys: Keys, role: Role, action: Callable[[Any], object], operation: str) -> None:
    before = snapshot_before(keys.world)
    with pytest.raises(ClientError) as info:
        action(keys.client(role))
    error = info.value.response["Error"]
    assert (error["Code"], info.value.response["ResponseMetadata"]["HTTPStatusCode"]) == (FORBIDDEN, 403)
    assert f"(role {role}) is not authorized to perform: backup:{operation}" in error["Message"]
    assert snapshot(keys.world) == before


def test_a_viewer_reads_everything_with_real_ids(keys: Keys) -> None:
    viewer, world = keys.client(Role.VIEWER), keys.world
    assert {v["BackupVaultName"] for v in viewer.list_backup_vaults()["BackupVaultList"]} >= {"main", "other"}
    assert viewer.get_backup_plan(BackupPlanId=world.plan_id)["BackupPlan"]["BackupPlanName"] == "daily"
    assert viewer.get_backup_selection(BackupPlanId=world.plan_id, SelectionId=world.selection_id)[
        "BackupSelection"]["SelectionName"] == "tagged"
    assert viewer.describe_backup_job(BackupJobId=world.job_id)["State"] == "COMPLETED"
    assert viewer.describe_recovery_point(BackupVaultName="main", RecoveryPointArn=world.point)["Status"] in (
        "COMPLETED", "AVAILABLE")
    assert viewer.get_recovery_point_restore_metadata(BackupVaultName="main", RecoveryPointArn=world.point)[
        "RestoreMetadata"]["InstanceType"]
    assert viewer.export_backup_plan_template(BackupPlanId=world.plan_id)["BackupPlanTemplateJson"]
    template = '{"BackupPlanName": "t", "Rules": [{"RuleName": "r", "TargetBackupVaultName": "main"}]}'
    assert viewer.get_backup_plan_from_json(BackupPlanTemplateJson=template)["BackupPlan"]["BackupPlanName"] == "t"
    refused_for(keys, Role.VIEWER, lambda c: c.start_restore_job(
        RecoveryPointArn=world.point, Metadata={"InstanceType": "t3.micro"}), "StartRestoreJob")
    refused_for(keys, Role.VIEWER, lambda c: c.stop_backup_job(BackupJobId=world.job_id), "StopBackupJob")
    refused_for(keys, Role.VIEWER, lambda c: c.delete_backup_selection(
        BackupPlanId=world.plan_id, SelectionId=world.selection_id), "DeleteBackupSelection")


def test_operators_work_day_to_day_but_only_admins_destroy_or_unlock(keys: Keys) -> None:
    world = keys.world
    operator, admin = keys.client(Role.OPERATOR), keys.client(Role.ADMIN)
    operator.create_backup_vault(BackupVaultName="ops-vault")
    plan = operator.create_backup_plan(BackupPlan={"BackupPlanName": "ops", "Rules": [
        {"RuleName": "nightly", "TargetBackupVaultName": "ops-vault", "ScheduleExpression": "cron(0 2 ? * * *)"}]})
    operator.update_backup_plan(BackupPlanId=plan["BackupPlanId"], BackupPlan={"BackupPlanName": "ops", "Rules": [
        {"RuleName": "nightly", "TargetBackupVaultName": "ops-vault", "ScheduleExpression": "cron(0 3 ? * * *)"}]})
    selection = operator.create_backup_selection(BackupPlanId=plan["BackupPlanId"], BackupSelection={
        "SelectionName": "one", "IamRoleArn": ROLE, "Resources": [world.instance]})
    job = operator.start_backup_job(BackupVaultName="ops-vault", ResourceArn=world.instance, IamRoleArn=ROLE,
                                    Lifecycle={"DeleteAfterDays": 30})
    drain(world.sk)
    point = operator.describe_backup_job(BackupJobId=job["BackupJobId"])["RecoveryPointArn"]
    restore = operator.start_restore_job(RecoveryPointArn=point, Metadata={"InstanceType": "t3.micro"})
    drain(world.sk)
    assert operator.describe_restore_job(RestoreJobId=restore["RestoreJobId"])["Status"] == "COMPLETED"

    refused_for(keys, Role.OPERATOR, lambda c: c.delete_recovery_point(
        BackupVaultName="ops-vault", RecoveryPointArn=point), "DeleteRecoveryPoint")
    refused_for(keys, Role.OPERATOR, lambda c: c.update_recovery_point_lifecycle(
        BackupVaultName="ops-vault", RecoveryPointArn=point, Lifecycle={"DeleteAfterDays": 1}),
        "UpdateRecoveryPointLifecycle")
    refused_for(keys, Role.OPERATOR, lambda c: c.put_backup_vault_lock_configuration(
        BackupVaultName="ops-vault", MinRetentionDays=1), "PutBackupVaultLockConfiguration")
    refused_for(keys, Role.OPERATOR, lambda c: c.delete_backup_vault_lock_configuration(
        BackupVaultName="ops-vault"), "DeleteBackupVaultLockConfiguration")
    refused_for(keys, Role.OPERATOR, lambda c: c.delete_backup_vault(BackupVaultName="ops-vault"),
                "DeleteBackupVault")
    refused_for(keys, Role.OPERATOR, lambda c: c.delete_backup_vault(BackupVaultName="other"), "DeleteBackupVault")

    # What an operator may remove: its selection, then its plan.
    operator.delete_backup_selection(BackupPlanId=plan["BackupPlanId"], SelectionId=selection["SelectionId"])
    operator.delete_backup_plan(BackupPlanId=plan["BackupPlanId"])

    # The admin may do each of the refused things (the vault lock operations at least get past the role check).
    changed = admin.update_recovery_point_lifecycle(BackupVaultName="ops-vault", RecoveryPointArn=point,
                                                    Lifecycle={"DeleteAfterDays": 90})
    assert changed["Lifecycle"] == {"DeleteAfterDays": 90}
    for operation, params in (("PutBackupVaultLockConfiguration", {"BackupVaultName": "ops-vault",
                                                                   "MinRetentionDays": 1}),
                              ("DeleteBackupVaultLockConfiguration", {"BackupVaultName": "ops-vault"})):
        assert call(admin, operation, params).get("Code") != FORBIDDEN
    admin.delete_recovery_point(BackupVaultName="ops-vault", RecoveryPointArn=point)
    drain(world.sk)
    assert point not in {p["RecoveryPointArn"] for p in
                         admin.list_recovery_points_by_backup_vault(BackupVaultName="ops-vault")["RecoveryPoints"]}
    admin.create_backup_vault(BackupVaultName="empty-vault")
    admin.delete_backup_vault(BackupVaultName="empty-vault")
    assert "empty-vault" not in {v["BackupVaultName"] for v in admin.list_backup_vaults()["BackupVaultList"]}


# -- authentication against the real server ----------------------------------------------------------------------------
METHODS: dict[str, Callable[[Any, World], object]] = {
    "GET": lambda c, w: c.list_backup_vaults(),
    "PUT": lambda c, w: c.create_backup_vault(BackupVaultName="by-intruder"),
    "POST": lambda c, w: c.update_backup_plan(BackupPlanId=w.plan_id, BackupPlan={
        "BackupPlanName": "daily", "Rules": [{"RuleName": "hijacked", "TargetBackupVaultName": "other"}]}),
    "DELETE": lambda c, w: c.delete_backup_vault(BackupVaultName="other"),
}


def refused_auth(world: World, client: Any, code: str, message: str) -> None:
    before = snapshot_before(world)
    for method, action in METHODS.items():
        with pytest.raises(ClientError) as info:
            action(client, world)
        response = info.value.response
        assert (response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]) == (code, 403), method
        assert response["Error"]["Message"].startswith(message), method
    assert snapshot(world) == before


@pytest.mark.parametrize("role", list(Role))
def test_the_right_key_id_with_the_wrong_secret_is_refused_on_every_method(keys: Keys, role: Role) -> None:
    key_id, secret = {Role.VIEWER: keys.viewer, Role.OPERATOR: keys.operator, Role.ADMIN: keys.admin}[role]
    wrong = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    refused_auth(keys.world, keys.world.client(key_id, wrong), "InvalidSignatureException",
                 "The request signature we calculated does not match the signature you provided.")


def test_a_disabled_key_is_refused_on_every_method(keys: Keys) -> None:
    store = keys.world.sk.keys()
    key_id, secret = store.create_key("dora", Role.ADMIN, datetime.now(UTC))
    client = keys.world.client(key_id, secret)
    assert client.list_backup_vaults()["BackupVaultList"]  # works until disabled
    store.disable_key(key_id)
    refused_auth(keys.world, client, "UnrecognizedClientException",
                 "The security token included in the request is invalid.")


def test_an_unsigned_request_is_refused_on_every_method(keys: Keys) -> None:
    unsigned = boto3.client("backup", region_name="us-east-1", endpoint_url=keys.world.endpoint,
                            config=Config(signature_version=UNSIGNED, retries={"max_attempts": 1}))
    refused_auth(keys.world, unsigned, "MissingAuthenticationTokenException", "Missing Authentication Token")


@pytest.mark.parametrize(("method", "path", "body"), [
    ("GET", "/backup-vaults/", b""),
    ("PUT", "/backup-vaults/late-vault", b"{}"),
    ("DELETE", "/backup-vaults/other", b""),
])
def test_a_signature_older_than_the_allowed_skew_has_expired(keys: Keys, method: str, path: str, body: bytes
                                                             ) -> None:
    world = keys.world
    before = snapshot_before(world)
    twenty_minutes_ago = (datetime.now(UTC) - timedelta(minutes=20)).replace(tzinfo=None)
    with patch("botocore.auth.get_current_datetime", return_value=twenty_minutes_ago), \
            pytest.raises(ClientError) as info:
        send_signed(world.endpoint, method, path, body)
    response = info.value.response
    assert (response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]) == (
        "InvalidSignatureException", 403)
    assert response["Error"]["Message"].startswith("Signature expired:")
    assert snapshot(world) == before
    send_signed(world.endpoint, "GET", "/backup-vaults/")  # signed now, the same key works


# -- allowed: the role never stands in the way (the input may still be refused) -------------------------------------
ALLOWED = [(role, op) for role, accesses in ((Role.VIEWER, {Access.READ}),
                                             (Role.OPERATOR, {Access.READ, Access.WRITE}),
                                             (Role.ADMIN, set(Access)))
           for op in sorted(OPERATIONS) if OPERATIONS[op] in accesses]


@pytest.mark.parametrize("role", list(Role))
def test_each_role_gets_past_authorization_for_what_it_may_call(keys: Keys, role: Role) -> None:
    """Last in the module: placeholders that happen to be valid create things (a vault, a legal hold)."""
    client = keys.client(role)
    allowed = [op for r, op in ALLOWED if r is role]
    assert allowed
    answers = {op: call(client, op, valid_looking(op)) for op in allowed}
    assert {op: e for op, e in answers.items() if e.get("Code") == FORBIDDEN} == {}
    assert {op: e for op, e in answers.items() if e.get("Status", 200) >= 500} == {}
