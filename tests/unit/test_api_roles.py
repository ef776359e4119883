"""Roles: every AWS Backup operation of botocore's model is classified, and each role gets exactly its share."""

from __future__ import annotations

import pytest
from botocore.session import Session

from snapkeep.api.roles import (
    ADMIN_ONLY,
    OPERATIONS,
    READ_PREFIXES,
    Access,
    Role,
    authorize,
    is_allowed,
    parse_role,
    required_role,
)
from snapkeep.domain.errors import AccessDenied, InvalidParameterValue

MODEL = Session().get_service_model("backup")
MODEL_OPERATIONS = sorted(MODEL.operation_names)

# The issue: "Viewers only read; operators cannot delete recovery points or change vault locks; admins can."
# These are the admin-only operations, pinned so a change to the table is a deliberate one.
EXPECTED_ADMIN_ONLY = {
    "AssociateBackupVaultMpaApprovalTeam",
    "CancelLegalHold",
    "CreateBackupAccessPoint",
    "CreateRestoreAccessBackupVault",
    "DeleteBackupAccessPoint",
    "DeleteBackupVault",
    "DeleteBackupVaultAccessPolicy",
    "DeleteBackupVaultLockConfiguration",
    "DeleteRecoveryPoint",
    "DisassociateBackupVaultMpaApprovalTeam",
    "DisassociateRecoveryPoint",
    "DisassociateRecoveryPointFromParent",
    "PutBackupVaultAccessPolicy",
    "PutBackupVaultLockConfiguration",
    "RevokeRestoreAccessBackupVault",
    "UpdateGlobalSettings",
    "UpdateRecoveryPointLifecycle",
    "UpdateRegionSettings",
}

# Read operations the HTTP method would misclassify: they are POSTs that change nothing.
READS_THAT_ARE_POSTS = {
    "GetBackupPlanFromJSON",
    "ListBackupAccessPointsByRecoveryPoint",
    "ListBackupAccessPointsByResource",
}


def test_the_model_has_115_operations_and_every_one_is_classified() -> None:
    assert len(MODEL_OPERATIONS) == 115
    assert sorted(OPERATIONS) == MODEL_OPERATIONS
    assert all(isinstance(access, Access) for access in OPERATIONS.values())


@pytest.mark.parametrize("operation", MODEL_OPERATIONS)
def test_each_operation_has_a_least_role(operation: str) -> None:
    assert required_role(operation) in set(Role)


def test_reads_are_exactly_the_get_list_describe_export_operations() -> None:
    reads = {op for op, access in OPERATIONS.items() if access is Access.READ}
    assert reads == {op for op in MODEL_OPERATIONS if op.startswith(READ_PREFIXES)}


def test_the_http_method_alone_would_misclassify_some_reads() -> None:
    method = {op: MODEL.operation_model(op).http["method"] for op in MODEL_OPERATIONS}
    reads = {op for op, access in OPERATIONS.items() if access is Access.READ}
    assert {op for op in reads if method[op] != "GET"} == READS_THAT_ARE_POSTS
    assert {op for op, m in method.items() if m == "GET"} <= reads  # every GET is a read


def test_admin_only_operations_are_the_documented_list() -> None:
    assert set(ADMIN_ONLY) == EXPECTED_ADMIN_ONLY
    assert {op for op, access in OPERATIONS.items() if access is Access.ADMIN} == EXPECTED_ADMIN_ONLY
    assert all(reason.startswith("it ") for reason in ADMIN_ONLY.values())


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("operation", MODEL_OPERATIONS)
def test_the_full_matrix(role: Role, operation: str) -> None:
    access = OPERATIONS[operation]
    allowed = {
        Role.VIEWER: access is Access.READ,
        Role.OPERATOR: access is not Access.ADMIN,
        Role.ADMIN: True,
    }[role]
    assert is_allowed(role, operation) is allowed
    if allowed:
        authorize(role, operation)
    else:
        with pytest.raises(AccessDenied) as info:
            authorize(role, operation)
        assert f"backup:{operation}" in info.value.message
        assert f"role {role.value}" in info.value.message.lower()


@pytest.mark.parametrize(
    "operation",
    [
        "DeleteRecoveryPoint",
        "DeleteBackupVault",
        "PutBackupVaultLockConfiguration",
        "DeleteBackupVaultLockConfiguration",
        "CancelLegalHold",
        "DeleteBackupVaultAccessPolicy",
        "PutBackupVaultAccessPolicy",
        "UpdateRecoveryPointLifecycle",
        "DisassociateRecoveryPoint",
    ],
)
def test_operators_cannot_destroy_or_unlock_but_admins_can(operation: str) -> None:
    assert not is_allowed(Role.OPERATOR, operation)
    assert not is_allowed(Role.VIEWER, operation)
    authorize(Role.ADMIN, operation)


@pytest.mark.parametrize(
    "operation",
    ["CreateBackupPlan", "StartBackupJob", "StartRestoreJob", "StopBackupJob", "TagResource", "CreateBackupVault",
     "CreateLegalHold", "UpdateBackupPlan", "DeleteBackupSelection"],
)
def test_operators_do_the_day_to_day_work_that_viewers_cannot(operation: str) -> None:
    authorize(Role.OPERATOR, operation)
    with pytest.raises(AccessDenied):
        authorize(Role.VIEWER, operation)


def test_access_denied_names_the_action_and_the_role() -> None:
    with pytest.raises(AccessDenied) as info:
        authorize(Role.OPERATOR, "DeleteRecoveryPoint")
    err = info.value
    assert (err.code, err.http_status, err.exit_code) == ("AccessDeniedException", 403, 6)
    assert err.message == (
        "Role operator is not authorized to perform: backup:DeleteRecoveryPoint: only role admin may, because it "
        "deletes a recovery point"
    )
    with pytest.raises(AccessDenied) as info:
        authorize(Role.VIEWER, "StartBackupJob", user_name="alice")
    assert info.value.message == (
        "User alice (role viewer) is not authorized to perform: backup:StartBackupJob: role viewer may only call "
        "read operations (Get*, List*, Describe*, Export*); it needs role operator"
    )


def test_roles_given_as_strings_work_too() -> None:
    authorize("viewer", "ListBackupVaults")  # type: ignore[arg-type]  # StrEnum values from the catalog
    with pytest.raises(AccessDenied):
        authorize("viewer", "DeleteBackupPlan")  # type: ignore[arg-type]


@pytest.mark.parametrize("role", list(Role))
def test_unknown_operations_are_refused_for_every_role(role: Role) -> None:
    assert required_role("FrobnicateVault") is None
    with pytest.raises(AccessDenied, match="backup:FrobnicateVault: it is not an operation of AWS Backup"):
        authorize(role, "FrobnicateVault")
    with pytest.raises(AccessDenied):
        authorize(role, "listBackupVaults")  # names are case-sensitive, as in the model


def test_parse_role() -> None:
    assert parse_role("operator") is Role.OPERATOR
    with pytest.raises(InvalidParameterValue) as info:
        parse_role("root")
    assert info.value.message == "Role: must be one of admin, operator, viewer, got 'root'"
    assert info.value.field == "Role"
