"""Vault access policies: the document's grammar, and which Deny applies to which request (IAM's rules)."""

from __future__ import annotations

import fnmatch
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from snapkeep.domain.errors import InvalidParameterValue, MissingParameterValue
from snapkeep.domain.vault_policy import (
    RequestContext,
    explicit_deny,
    glob_match,
    parse_policy,
)

ACCOUNT = "123456789012"
VAULT = f"arn:aws:backup:us-east-1:{ACCOUNT}:backup-vault:main"
POINT = "arn:aws:ec2:us-east-1::image/ami-0123456789abcdef0"
OTTO = f"arn:aws:iam::{ACCOUNT}:user/otto"


def doc(*statements: dict[str, Any], version: str | None = "2012-10-17") -> str:
    body: dict[str, Any] = {"Statement": list(statements)}
    if version is not None:
        body["Version"] = version
    return json.dumps(body)


def deny(**extra: Any) -> dict[str, Any]:
    statement: dict[str, Any] = {"Effect": "Deny", "Principal": "*", "Action": "backup:DeleteRecoveryPoint",
                                 "Resource": "*"}
    statement.update(extra)
    return {k: v for k, v in statement.items() if v is not None}


def request(action: str = "backup:DeleteRecoveryPoint", user: str = "otto", account: str = ACCOUNT,
            resources: tuple[str, ...] = (VAULT, POINT)) -> RequestContext:
    return RequestContext(f"arn:aws:iam::{account}:user/{user}", account, user, action, resources)


def denied_by(policy: str, ctx: RequestContext) -> str | None:
    found = explicit_deny(parse_policy(policy), ctx)
    return None if found is None else found.name


# --- grammar -----------------------------------------------------------------------------------------------

def test_a_single_statement_object_and_a_list_are_both_accepted() -> None:
    single = json.dumps({"Version": "2012-10-17", "Statement": deny(Sid="One")})
    assert [s.sid for s in parse_policy(single).statements] == ["One"]
    assert len(parse_policy(doc(deny(), deny(Effect="Allow"))).statements) == 2
    assert parse_policy(doc(deny(), version=None)).version is None


@pytest.mark.parametrize(("text", "fragment"), [
    ("{not json", "not valid JSON"),
    ("[]", "must be a JSON object"),
    (json.dumps({"Version": "2012-10-17"}), "needs a Statement"),
    (json.dumps({"Version": "2012-10-17", "Statement": []}), "Statement must not be empty"),
    (json.dumps({"Version": "2020-01-01", "Statement": [deny()]}), "Version must be 2012-10-17 or 2008-10-17"),
    (json.dumps({"Statement": [deny()], "Extra": 1}), "unknown top-level element(s) Extra"),
    (doc(deny(Effect="Block")), "Statement[0].Effect must be Allow or Deny; got 'Block'"),
    (doc(deny(Effect=None)), "Statement[0] needs Effect"),
    (doc(deny(Action=None)), "Statement[0] needs Action (or NotAction)"),
    (doc(deny(NotAction="backup:*")), "cannot have both Action and NotAction"),
    (doc(deny(Action=[])), "Statement[0].Action must not be empty"),
    (doc(deny(Action="DeleteRecoveryPoint")), "is not an action"),
    (doc(deny(Action=7)), "must be a string or a list of strings"),
    (doc(deny(Resource=None)), "needs Resource (or NotResource)"),
    (doc(deny(Resource="main")), "'main' is not an ARN"),
    (doc(deny(Principal=None)), "needs Principal (or NotPrincipal)"),
    (doc(deny(Principal={"AWS": "arn:aws:iam::123456789012:user/o*"})), "cannot contain wildcards"),
    (doc(deny(Principal={"AWS": "otto"})), "is not an account id, an IAM ARN or *"),
    (doc(deny(Principal={"Group": "x"})), "is not a principal kind"),
    (doc(deny(Principal="someone")), 'must be "*" or an object'),
    (doc(deny(Effect="Allow"), deny(Colour="red")), "Statement[1] has unknown element(s) Colour"),
    (doc(deny(Sid=5)), "Statement[0].Sid must be a string"),
])
def test_malformed_policies_are_refused_naming_the_problem(text: str, fragment: str) -> None:
    with pytest.raises(InvalidParameterValue) as caught:
        parse_policy(text)
    assert type(caught.value) is InvalidParameterValue
    assert caught.value.field == "Policy"
    assert caught.value.message.startswith("Policy: ")
    assert fragment in caught.value.message


@pytest.mark.parametrize("text", [None, ""])
def test_a_missing_policy_is_a_missing_parameter(text: str | None) -> None:
    with pytest.raises(MissingParameterValue):
        parse_policy(text)


@pytest.mark.parametrize(("condition", "fragment"), [
    ({"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, "IpAddress is a condition operator Snapkeep cannot evaluate"),
    ({"StringEquals": {"aws:SourceVpc": "vpc-1"}}, "aws:SourceVpc is a condition key Snapkeep cannot evaluate"),
    ({"StringEqualsIfExists": {"aws:username": "otto"}}, "cannot evaluate"),
    ({"ForAnyValue:StringEquals": {"aws:username": "otto"}}, "cannot evaluate"),
    ({"StringEquals": {}}, "non-empty object"),
    ("aws:username", "must be an object"),
])
def test_conditions_snapkeep_cannot_evaluate_are_refused_not_ignored(condition: Any, fragment: str) -> None:
    with pytest.raises(InvalidParameterValue) as caught:
        parse_policy(doc(deny(Condition=condition)))
    assert fragment in caught.value.message
    assert "Statement[0].Condition" in caught.value.message


# --- evaluation --------------------------------------------------------------------------------------------

def test_deny_everyone_applies_to_every_user_and_names_the_statement() -> None:
    policy = doc(deny(Sid="NoDeletes"))
    assert denied_by(policy, request(user="otto")) == "statement 'NoDeletes'"
    assert denied_by(policy, request(user="admin")) == "statement 'NoDeletes'"
    assert denied_by(doc(deny()), request()) == "Statement[0] (no Sid)"


def test_allow_statements_grant_and_deny_nothing() -> None:
    assert denied_by(doc(deny(Effect="Allow", Action="*")), request()) is None


def test_action_names_are_case_insensitive_and_take_wildcards() -> None:
    assert denied_by(doc(deny(Action="BACKUP:deleterecoverypoint")), request()) is not None
    assert denied_by(doc(deny(Action="backup:Delete*")), request("backup:DeleteBackupVault")) is not None
    assert denied_by(doc(deny(Action="backup:Delete*")), request("backup:DescribeRecoveryPoint")) is None
    assert denied_by(doc(deny(Action="backup:?eleteRecoveryPoint")), request()) is not None
    assert denied_by(doc(deny(Action="*")), request("backup:ListRecoveryPointsByBackupVault")) is not None
    assert denied_by(doc(deny(Action="ec2:*")), request()) is None
    assert denied_by(doc(deny(Action=["backup:StartRestoreJob", "backup:Update*"])),
                     request("backup:UpdateRecoveryPointLifecycle")) is not None


def test_not_action_denies_everything_else() -> None:
    policy = doc(deny(Action=None, NotAction=["backup:Describe*", "backup:List*"]))
    assert denied_by(policy, request("backup:DeleteRecoveryPoint")) is not None
    assert denied_by(policy, request("backup:describerecoverypoint")) is None
    assert denied_by(policy, request("backup:ListRecoveryPointsByBackupVault")) is None


def test_principal_forms() -> None:
    cases = [
        ({"AWS": "*"}, "otto", True),
        ({"AWS": OTTO}, "otto", True),
        ({"AWS": OTTO}, "vera", False),
        ({"AWS": [f"arn:aws:iam::{ACCOUNT}:user/vera", OTTO]}, "otto", True),
        ({"AWS": ACCOUNT}, "anyone", True),
        ({"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "anyone", True),
        ({"AWS": "210987654321"}, "otto", False),
        ({"AWS": f"arn:aws:iam::{ACCOUNT}:role/MyRole"}, "otto", False),
        ({"Service": "backup.amazonaws.com"}, "otto", False),
    ]
    for principal, user, expected in cases:
        assert (denied_by(doc(deny(Principal=principal)), request(user=user)) is not None) == expected, principal


def test_user_arns_compare_exactly() -> None:
    assert denied_by(doc(deny(Principal={"AWS": OTTO})), request(user="Otto")) is None


def test_not_principal_exempts_the_named_users() -> None:
    policy = doc(deny(Principal=None, NotPrincipal={"AWS": [f"arn:aws:iam::{ACCOUNT}:user/vera"]}))
    assert denied_by(policy, request(user="otto")) is not None
    assert denied_by(policy, request(user="vera")) is None


def test_resources_match_the_point_or_its_vault_case_sensitively() -> None:
    assert denied_by(doc(deny(Resource=VAULT)), request()) is not None
    assert denied_by(doc(deny(Resource="arn:aws:ec2:*::image/*")), request()) is not None
    assert denied_by(doc(deny(Resource="arn:aws:ec2:us-east-1::snapshot/*")), request()) is None
    assert denied_by(doc(deny(Resource=VAULT.replace(":main", ":MAIN"))), request()) is None
    assert denied_by(doc(deny(Resource="arn:aws:backup:*:*:backup-vault:other")), request()) is None
    vault_only = request("backup:DeleteBackupVault", resources=(VAULT,))
    assert denied_by(doc(deny(Action="*", Resource="arn:aws:ec2:*::image/*")), vault_only) is None


def test_not_resource_applies_only_when_no_resource_of_the_request_matches() -> None:
    spare = doc(deny(Resource=None, NotResource=POINT))
    assert denied_by(spare, request()) is None
    other = request(resources=(VAULT, "arn:aws:ec2:us-east-1::image/ami-other"))
    assert denied_by(spare, other) is not None
    assert denied_by(doc(deny(Resource=None, NotResource=VAULT)), request()) is None


def test_supported_conditions() -> None:
    by_name = doc(deny(Condition={"StringEquals": {"aws:username": ["otto", "olga"]}}))
    assert denied_by(by_name, request(user="otto")) is not None
    assert denied_by(by_name, request(user="vera")) is None
    not_vera = doc(deny(Condition={"StringNotEquals": {"AWS:UserName": ["vera", "victor"]}}))
    assert denied_by(not_vera, request(user="otto")) is not None
    assert denied_by(not_vera, request(user="vera")) is None
    like = doc(deny(Condition={"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:user/o*"}}))
    assert denied_by(like, request(user="otto")) is not None
    assert denied_by(like, request(user="vera")) is None
    caseless = doc(deny(Condition={"StringEqualsIgnoreCase": {"aws:username": "OTTO"}}))
    assert denied_by(caseless, request(user="otto")) is not None
    both = doc(deny(Condition={"StringLike": {"aws:username": "o*"},
                               "StringEquals": {"aws:PrincipalAccount": "210987654321"}}))
    assert denied_by(both, request(user="otto")) is None  # operators are AND'ed


def test_the_first_applicable_deny_is_reported() -> None:
    policy = doc(deny(Sid="Other", Action="backup:StartRestoreJob"), deny(Sid="Second"), deny(Sid="Third"))
    assert denied_by(policy, request()) == "statement 'Second'"


@given(st.text(alphabet="ab*?:/", max_size=8), st.text(alphabet="abAB:/", max_size=8))
def test_glob_matches_like_fnmatch_without_brackets(glob: str, value: str) -> None:
    assert glob_match(glob, value) == fnmatch.fnmatchcase(value, glob)
    assert glob_match(glob, value, caseless=True) == fnmatch.fnmatchcase(value.lower(), glob.lower())
