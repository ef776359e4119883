"""BackupSelection: AWS JSON in and out, validation, and which resources it picks and why."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snapkeep.domain.errors import InvalidParameterValue, MissingParameterValue
from snapkeep.domain.selection import (
    MAX_ARNS,
    MAX_WILDCARD_ARNS,
    BackupSelection,
    Condition,
    ConditionParameter,
    Conditions,
    ProtectedResource,
    SelectionMatch,
    arn_pattern_matches,
    arn_pattern_problem,
    duplicates,
    evaluate,
    explain,
    selection_from_aws_json,
    selection_to_aws_json,
    string_like,
    validate_selection,
)

ROLE = "arn:aws:iam::111122223333:role/service-role/AWSBackupDefaultServiceRole"
ACCOUNT = "111122223333"


def instance(iid: str, region: str = "us-east-1", **tags: str) -> ProtectedResource:
    return ProtectedResource(f"arn:aws:ec2:{region}:{ACCOUNT}:instance/{iid}", "EC2", tags)


def volume(vid: str, region: str = "us-east-1", **tags: str) -> ProtectedResource:
    return ProtectedResource(f"arn:aws:ec2:{region}:{ACCOUNT}:volume/{vid}", "EBS", tags)


def sel(**kwargs: Any) -> BackupSelection:
    kwargs.setdefault("selection_name", "s1")
    kwargs.setdefault("iam_role_arn", ROLE)
    return BackupSelection(**kwargs)


def arns(matches: list[SelectionMatch]) -> list[str]:
    return [m.resource_arn for m in matches]


FLEET = [
    instance("i-prod", env="prod", backup="daily"),
    instance("i-dev", env="dev"),
    instance("i-bare"),
    volume("vol-prod", env="production", backup="daily"),
    volume("vol-nobackup", env="prod", backup="false"),
    volume("vol-west", region="us-west-2", env="Prod"),
]


# --- AWS JSON ----------------------------------------------------------------------------------------------

DEVGUIDE_EXAMPLE = {
    "BackupSelection": {
        "SelectionName": "Example-1",
        "IamRoleArn": ROLE,
        "Resources": ["arn:aws:ec2:*:*:volume/*"],
        "ListOfTags": [],
        "NotResources": [],
        "Conditions": {
            "StringEquals": [
                {"ConditionKey": "aws:ResourceTag/backup", "ConditionValue": "yes"},
                {"ConditionKey": "aws:ResourceTag/owner", "ConditionValue": "example"},
            ],
            "StringNotEquals": [],
            "StringLike": [],
            "StringNotLike": [],
        },
    }
}


def test_reads_the_wrapper_and_the_bare_object_alike() -> None:
    wrapped = selection_from_aws_json(DEVGUIDE_EXAMPLE)
    bare = selection_from_aws_json(DEVGUIDE_EXAMPLE["BackupSelection"])
    assert wrapped == bare
    assert wrapped.selection_name == "Example-1"
    assert wrapped.resources == ("arn:aws:ec2:*:*:volume/*",)
    assert wrapped.conditions.string_equals == (
        ConditionParameter("aws:ResourceTag/backup", "yes"), ConditionParameter("aws:ResourceTag/owner", "example"))


def test_reads_cli_input_json_and_get_backup_selection_output() -> None:
    cli = {"BackupPlanId": "plan-1", "CreatorRequestId": "r1", **copy.deepcopy(DEVGUIDE_EXAMPLE)}
    got = {"SelectionId": "sel-1", "CreationDate": "2026-01-01T00:00:00Z", **copy.deepcopy(DEVGUIDE_EXAMPLE)}
    assert selection_from_aws_json(cli) == selection_from_aws_json(got) == selection_from_aws_json(DEVGUIDE_EXAMPLE)


def test_round_trip_is_aws_shape_with_every_list() -> None:
    original = selection_from_aws_json(DEVGUIDE_EXAMPLE)
    out = selection_to_aws_json(original)
    assert out == DEVGUIDE_EXAMPLE["BackupSelection"]
    assert selection_from_aws_json(out) == original


def test_list_of_tags_key_with_or_without_prefix_is_the_same_tag() -> None:
    data = {"SelectionName": "t", "IamRoleArn": ROLE, "ListOfTags": [
        {"ConditionType": "STRINGEQUALS", "ConditionKey": "aws:ResourceTag/Department", "ConditionValue": "Acct"},
        {"ConditionType": "STRINGEQUALS", "ConditionKey": "Department", "ConditionValue": "Acct"}]}
    selection = selection_from_aws_json(data)
    assert selection.list_of_tags[0] == selection.list_of_tags[1] == Condition("STRINGEQUALS", "Department", "Acct")
    assert selection_to_aws_json(selection)["ListOfTags"][0]["ConditionKey"] == "Department"
    assert Condition("STRINGEQUALS", "AWS:RESOURCETAG/Department", "x").key == "Department"


def test_condition_prefix_case_is_canonicalised_but_tag_key_keeps_its_case() -> None:
    assert ConditionParameter("aws:resourcetag/Env", "p").key == "aws:ResourceTag/Env"
    assert ConditionParameter("aws:resourcetag/Env", "p").tag_key == "Env"


def test_null_lists_mean_empty() -> None:
    data = {"SelectionName": "t", "IamRoleArn": ROLE, "Resources": ["*"], "ListOfTags": None,
            "NotResources": None, "Conditions": None}
    assert selection_from_aws_json(data) == sel(selection_name="t", resources=("*",))


# --- validation: every rule has a failing case -----------------------------------------------------------

def body(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"SelectionName": "ok", "IamRoleArn": ROLE, "Resources": ["*"]}
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not ...}


INVALID_CASES: list[tuple[dict[str, Any], type[Exception], str, str]] = [
    (body(SelectionName=...), MissingParameterValue, "BackupSelection.SelectionName", "is required"),
    (body(SelectionName=""), MissingParameterValue, "BackupSelection.SelectionName", "is required"),
    (body(SelectionName="has space"), InvalidParameterValue, "BackupSelection.SelectionName", "1 to 50"),
    (body(SelectionName="x" * 51), InvalidParameterValue, "BackupSelection.SelectionName", "1 to 50"),
    (body(SelectionName=7), InvalidParameterValue, "BackupSelection.SelectionName", "must be a string"),
    (body(SelectionName="ok\n"), InvalidParameterValue, "BackupSelection.SelectionName", "1 to 50"),
    (body(IamRoleArn=ROLE + "\n"), InvalidParameterValue, "BackupSelection.IamRoleArn", "not an IAM role ARN"),
    (body(Resources=[f"arn:aws:ec2:us-east-1:{ACCOUNT}:instance/i-1\n"]), InvalidParameterValue,
     "BackupSelection.Resources[0]", "contains whitespace"),
    (body(IamRoleArn=...), MissingParameterValue, "BackupSelection.IamRoleArn", "is required"),
    (body(IamRoleArn="arn:aws:iam::111122223333:user/bob"), InvalidParameterValue, "BackupSelection.IamRoleArn",
     "not an IAM role ARN"),
    (body(IamRoleArn="AWSBackupDefaultServiceRole"), InvalidParameterValue, "BackupSelection.IamRoleArn",
     "not an IAM role ARN"),
    (body(Resources="*"), InvalidParameterValue, "BackupSelection.Resources", "must be a list"),
    (body(Resources=["arn:aws:s3:::*-logs"]), InvalidParameterValue, "BackupSelection.Resources[0]",
     "wildcard (*) that is neither at the end"),
    (body(Resources=["*", "arn:aws:ec2:us-*:*:instance/*"]), InvalidParameterValue, "BackupSelection.Resources[1]",
     "whole region or account field"),
    (body(Resources=["i-0123456789"]), InvalidParameterValue, "BackupSelection.Resources[0]", "neither an ARN"),
    (body(Resources=["arn:aws:ec2:us-east-1:12:instance/i-1"]), InvalidParameterValue,
     "BackupSelection.Resources[0]", "not a valid ARN"),
    (body(Resources=[""]), InvalidParameterValue, "BackupSelection.Resources[0]", "non-empty ARN"),
    (body(Resources=[5]), InvalidParameterValue, "BackupSelection.Resources[0]", "must be a string"),
    (body(Resources=[f"arn:aws:ec2:us-east-1:{ACCOUNT}:volume/vol-{i}" for i in range(MAX_ARNS + 1)]),
     InvalidParameterValue, "BackupSelection.Resources", "at most 500 ARNs"),
    (body(Resources=[f"arn:aws:ec2:us-east-1:{ACCOUNT}:volume/vol-{i}*" for i in range(MAX_WILDCARD_ARNS + 1)]),
     InvalidParameterValue, "BackupSelection.Resources", "at most 30 ARNs with wildcards"),
    (body(NotResources=["arn:aws:ec2:*:*:*-x"]), InvalidParameterValue, "BackupSelection.NotResources[0]",
     "wildcard"),
    (body(Resources=[], ListOfTags=[]), InvalidParameterValue, "BackupSelection.Resources",
     "Either 'ListOfTags' or 'Resources' section must be non-empty"),
    (body(Resources=..., Conditions={"StringEquals": [{"ConditionKey": "aws:ResourceTag/a", "ConditionValue": "b"}]}),
     InvalidParameterValue, "BackupSelection.Resources", "Either 'ListOfTags' or 'Resources'"),
    (body(ListOfTags=[{"ConditionType": "STRINGNOTEQUALS", "ConditionKey": "a", "ConditionValue": "b"}]),
     InvalidParameterValue, "BackupSelection.ListOfTags[0].ConditionType", "only supports STRINGEQUALS"),
    (body(ListOfTags=[{"ConditionType": "StringEquals", "ConditionKey": "a", "ConditionValue": "b"}]),
     InvalidParameterValue, "BackupSelection.ListOfTags[0].ConditionType", "only supports STRINGEQUALS"),
    (body(ListOfTags=[{"ConditionKey": "a", "ConditionValue": "b"}]), MissingParameterValue,
     "BackupSelection.ListOfTags[0].ConditionType", "is required"),
    (body(ListOfTags=[{"ConditionType": "STRINGEQUALS", "ConditionKey": "", "ConditionValue": "b"}]),
     MissingParameterValue, "BackupSelection.ListOfTags[0].ConditionKey", "tag key is required"),
    (body(ListOfTags=[{"ConditionType": "STRINGEQUALS", "ConditionKey": "aws:ResourceTag/", "ConditionValue": "b"}]),
     MissingParameterValue, "BackupSelection.ListOfTags[0].ConditionKey", "tag key is required"),
    (body(ListOfTags=[{"ConditionType": "STRINGEQUALS", "ConditionKey": "a"}]), MissingParameterValue,
     "BackupSelection.ListOfTags[0].ConditionValue", "is required"),
    (body(ListOfTags=["backup=daily"]), InvalidParameterValue, "BackupSelection.ListOfTags[0]",
     "must be a JSON object"),
    (body(Conditions={"StringLike": [{"ConditionKey": "env", "ConditionValue": "prod*"}]}), InvalidParameterValue,
     "BackupSelection.Conditions.StringLike[0].ConditionKey", "must start with 'aws:ResourceTag/'"),
    (body(Conditions={"StringEquals": [{"ConditionKey": "aws:ResourceTag/", "ConditionValue": "x"}]}),
     MissingParameterValue, "BackupSelection.Conditions.StringEquals[0].ConditionKey", "tag key is required"),
    (body(Conditions={"StringNotEquals": [{"ConditionKey": "aws:ResourceTag/a"}]}), MissingParameterValue,
     "BackupSelection.Conditions.StringNotEquals[0].ConditionValue", "is required"),
    (body(Conditions={"StringEqual": []}), InvalidParameterValue, "BackupSelection.Conditions.StringEqual",
     "did you mean 'StringEquals'"),
    (body(Conditions=[]), InvalidParameterValue, "BackupSelection.Conditions", "must be a JSON object"),
    (body(Conditions={"StringEquals": [{"ConditionKey": "aws:ResourceTag/a", "ConditionValue": "b", "X": 1}]}),
     InvalidParameterValue, "BackupSelection.Conditions.StringEquals[0].X", "unknown key 'X'"),
    (body(Resource=["*"]), InvalidParameterValue, "BackupSelection.Resource", "did you mean 'Resources'"),
    (body(ListOfTags=[{"ConditionType": "STRINGEQUALS", "Key": "a", "ConditionValue": "b"}]),
     InvalidParameterValue, "BackupSelection.ListOfTags[0].Key", "unknown key 'Key'"),
]


@pytest.mark.parametrize(("data", "error", "field", "fragment"), INVALID_CASES)
def test_invalid_selection_names_field_and_rule(data: dict[str, Any], error: type[Exception], field: str,
                                                fragment: str) -> None:
    with pytest.raises(error) as caught:
        selection_from_aws_json(data)
    assert type(caught.value) is error
    assert caught.value.field == field  # type: ignore[attr-defined]
    assert fragment in str(caught.value)
    assert str(caught.value).startswith(field)


def test_unknown_wrapper_key_is_refused() -> None:
    with pytest.raises(InvalidParameterValue) as caught:
        selection_from_aws_json({"BackupSelection": body(), "BackupPlanID": "x"})
    assert caught.value.field == "BackupSelection.BackupPlanID"
    assert "did you mean 'BackupPlanId'" in caught.value.message


def test_not_an_object_is_refused() -> None:
    with pytest.raises(InvalidParameterValue) as caught:
        selection_from_aws_json(["*"])  # type: ignore[arg-type]
    assert caught.value.field == "BackupSelection"
    with pytest.raises(InvalidParameterValue) as caught:
        selection_from_aws_json({"BackupSelection": "x"})
    assert "must be a JSON object" in caught.value.message


def test_field_prefix_can_be_chosen() -> None:
    with pytest.raises(MissingParameterValue) as caught:
        selection_from_aws_json({"IamRoleArn": ROLE, "Resources": ["*"]}, field="Selections[2]")
    assert caught.value.field == "Selections[2].SelectionName"


@pytest.mark.parametrize("pattern", [
    "*", "arn:aws:ec2:*:*:volume/*", "arn:aws:ec2:*:*:instance/*", "arn:aws:ec2:*", "arn:aws:ec2:*:*",
    "arn:aws:s3:::my-bucket-*", "arn:aws:ec2:us-east-1:111122223333:volume/vol-*",
    "arn:aws:ec2:*:111122223333:instance/i-0abc", "arn:aws:ec2:us-east-1:*:instance/i-0abc",
    "arn:aws:rds:*:*:cluster:*", "arn:aws:ec2:us-east-1:111122223333:instance/i-1",
])
def test_accepted_arn_patterns(pattern: str) -> None:
    assert arn_pattern_problem(pattern) is None


@pytest.mark.parametrize("pattern", [
    "arn:aws:s3:::*-logs", "arn:aws:ec2:*:*:instance/i-*abc", "arn:aws:ec2:us-*:*:instance/*", "arn:aws:ec2:**",
    "arn:aws:ec2:*:1234*:volume/*", "*:aws:ec2", "arn:aws:ec2:*:123456789012", "vol-123", "arn:aws:EC2:*:*:x/*",
])
def test_refused_arn_patterns(pattern: str) -> None:
    assert arn_pattern_problem(pattern) is not None


def test_validate_selection_on_a_directly_built_selection() -> None:
    with pytest.raises(InvalidParameterValue) as caught:
        validate_selection(sel(resources=("*",), list_of_tags=(Condition("STRINGLIKE", "a", "b"),)))
    assert caught.value.field == "BackupSelection.ListOfTags[0].ConditionType"
    validate_selection(sel(list_of_tags=(Condition("STRINGEQUALS", "a", "b"),)))


# --- evaluation: golden cases ------------------------------------------------------------------------------

def test_resources_star_with_list_of_tags_picks_everything_because_they_are_ored() -> None:
    """terraform-provider-aws #41274: a tag next to a wildcard ARN does not narrow the ARN."""
    selection = sel(resources=("*",), list_of_tags=(Condition("STRINGEQUALS", "backup", "daily"),))
    picked = evaluate(selection, FLEET)
    assert arns(picked) == [r.arn for r in FLEET]
    assert picked[0].matched_by == ("Resources: *", "ListOfTags: backup=daily")
    assert picked[1].matched_by == ("Resources: *",)


def test_conditions_narrow_resources_with_and() -> None:
    selection = sel(resources=("arn:aws:ec2:*:*:volume/*",), conditions=Conditions(
        string_equals=(ConditionParameter("aws:ResourceTag/backup", "daily"),)))
    picked = evaluate(selection, FLEET)
    assert arns(picked) == [FLEET[3].arn]
    assert picked[0].matched_by == ("Resources: arn:aws:ec2:*:*:volume/*",
                                    "Conditions.StringEquals: aws:ResourceTag/backup=daily")


def test_list_of_tags_alone_picks_only_tagged_resources_any_of_them() -> None:
    selection = sel(list_of_tags=(Condition("STRINGEQUALS", "aws:ResourceTag/env", "dev"),
                                  Condition("STRINGEQUALS", "backup", "daily")))
    assert arns(evaluate(selection, FLEET)) == [FLEET[0].arn, FLEET[1].arn, FLEET[3].arn]
    assert evaluate(selection, [FLEET[1]])[0].matched_by == ("ListOfTags: env=dev",)


def test_not_resources_wins_over_everything() -> None:
    selection = sel(resources=("*",), not_resources=("arn:aws:ec2:*:*:volume/*",))
    assert arns(evaluate(selection, FLEET)) == [r.arn for r in FLEET if r.resource_type == "EC2"]
    verdict = explain(selection, FLEET[3])
    assert not verdict.selected and verdict.reasons == ("NotResources: arn:aws:ec2:*:*:volume/*",)


def test_string_not_equals_keeps_resources_without_the_tag() -> None:
    selection = sel(resources=("*",), conditions=Conditions(
        string_not_equals=(ConditionParameter("aws:ResourceTag/backup", "false"),)))
    picked = {m.resource_arn: m.matched_by for m in evaluate(selection, FLEET)}
    assert FLEET[4].arn not in picked
    assert picked[FLEET[2].arn] == (
        "Resources: *", "Conditions.StringNotEquals: aws:ResourceTag/backup=false (tag absent)")
    assert picked[FLEET[0].arn] == ("Resources: *", "Conditions.StringNotEquals: aws:ResourceTag/backup=false")


def test_string_not_like_holds_without_the_tag_string_like_does_not() -> None:
    not_like = sel(resources=("*",), conditions=Conditions(
        string_not_like=(ConditionParameter("aws:ResourceTag/env", "prod*"),)))
    assert arns(evaluate(not_like, FLEET)) == [FLEET[1].arn, FLEET[2].arn, FLEET[5].arn]
    like = sel(resources=("*",), conditions=Conditions(
        string_like=(ConditionParameter("aws:ResourceTag/env", "prod*"),)))
    assert arns(evaluate(like, FLEET)) == [FLEET[0].arn, FLEET[3].arn, FLEET[4].arn]
    assert explain(like, FLEET[2]).reasons == ("Conditions.StringLike: aws:ResourceTag/env=prod* not met (tag absent)",)
    assert explain(like, FLEET[5]).reasons == (
        "Conditions.StringLike: aws:ResourceTag/env=prod* not met (value 'Prod')",)


def test_tags_are_case_sensitive_in_keys_and_values() -> None:
    resource = instance("i-1", Env="prod")
    assert evaluate(sel(list_of_tags=(Condition("STRINGEQUALS", "env", "prod"),)), [resource]) == []
    assert evaluate(sel(list_of_tags=(Condition("STRINGEQUALS", "Env", "Prod"),)), [resource]) == []
    assert len(evaluate(sel(list_of_tags=(Condition("STRINGEQUALS", "Env", "prod"),)), [resource])) == 1


def test_two_string_equals_on_one_key_select_nothing_because_conditions_are_anded() -> None:
    selection = sel(resources=("*",), conditions=Conditions(string_equals=(
        ConditionParameter("aws:ResourceTag/env", "prod"), ConditionParameter("aws:ResourceTag/env", "dev"))))
    assert evaluate(selection, FLEET) == []


def test_every_condition_operator_at_once() -> None:
    selection = sel(resources=("arn:aws:ec2:*:*:instance/*", "arn:aws:ec2:*:*:volume/*"), conditions=Conditions(
        string_equals=(ConditionParameter("aws:ResourceTag/backup", "daily"),),
        string_not_equals=(ConditionParameter("aws:ResourceTag/env", "dev"),),
        string_like=(ConditionParameter("aws:ResourceTag/env", "*rod*"),),
        string_not_like=(ConditionParameter("aws:ResourceTag/team", "leg?cy"),)))
    picked = evaluate(selection, [*FLEET, volume("vol-legacy", env="prod", backup="daily", team="legacy")])
    assert arns(picked) == [FLEET[0].arn, FLEET[3].arn]
    assert picked[1].matched_by[-1] == "Conditions.StringNotLike: aws:ResourceTag/team=leg?cy (tag absent)"


def test_arn_wildcards_match_regions_accounts_and_prefixes() -> None:
    assert arn_pattern_matches("arn:aws:ec2:*:*:instance/*", FLEET[0].arn)
    assert not arn_pattern_matches("arn:aws:ec2:*:*:instance/*", FLEET[3].arn)
    assert arn_pattern_matches("arn:aws:ec2:*", FLEET[3].arn)
    assert arn_pattern_matches("arn:aws:ec2:us-west-2:*:volume/*", FLEET[5].arn)
    assert not arn_pattern_matches("arn:aws:ec2:us-west-2:*:volume/*", FLEET[3].arn)
    assert arn_pattern_matches("arn:aws:ec2:*:111122223333:volume/vol-p*", FLEET[3].arn)
    assert not arn_pattern_matches("arn:aws:ec2:*:999999999999:volume/*", FLEET[3].arn)
    assert not arn_pattern_matches("arn:aws:ec2:*:*:INSTANCE/*", FLEET[0].arn)
    assert arn_pattern_matches(FLEET[0].arn, FLEET[0].arn)
    assert not arn_pattern_matches(FLEET[0].arn + "x", FLEET[0].arn)
    assert not arn_pattern_matches("arn:aws:ec2:us-east-1:111122223333:instance/i-pro?", FLEET[0].arn.replace(
        "i-prod", "i-prox"))


def test_string_like_wildcards() -> None:
    assert string_like("prod*", "production") and string_like("*rod*", "production")
    assert string_like("*", "") and string_like("p?od", "prod") and not string_like("p?od", "pod")
    assert not string_like("prod", "production") and not string_like("Prod*", "production")
    assert string_like("a.b", "a.b") and not string_like("a.b", "axb")


def test_explain_says_why_nothing_matched() -> None:
    verdict = explain(sel(resources=("arn:aws:ec2:*:*:volume/*",)), FLEET[0])
    assert verdict == type(verdict)(FLEET[0].arn, False, ("no Resources pattern or ListOfTags condition matches",))


def test_duplicates_lists_selections_that_pick_the_same_resource() -> None:
    picks = {
        "ec2-all": evaluate(sel(resources=("arn:aws:ec2:*:*:instance/*",)), FLEET),
        "tagged": evaluate(sel(list_of_tags=(Condition("STRINGEQUALS", "backup", "daily"),)), FLEET),
        "ebs": evaluate(sel(resources=("arn:aws:ec2:*:*:volume/*",)), FLEET),
    }
    assert duplicates(picks) == {FLEET[0].arn: ["ec2-all", "tagged"], FLEET[3].arn: ["tagged", "ebs"]}
    assert duplicates({"a": [SelectionMatch("x", ("r",)), SelectionMatch("x", ("r",))]}) == {}
    assert duplicates({}) == {}


def test_protected_resource_is_hashable_despite_tags() -> None:
    assert len({instance("i-1", a="b"), instance("i-1", a="b")}) == 1


# --- properties --------------------------------------------------------------------------------------------

TAG_KEYS = ("env", "Env", "backup", "team")
TAG_VALUES = ("prod", "production", "Prod", "dev", "daily", "false", "")
REGIONS = ("us-east-1", "eu-west-1")
ACCOUNTS = ("111122223333", "444455556666")
PATTERNS = ("*", "arn:aws:ec2:*", "arn:aws:ec2:*:*:instance/*", "arn:aws:ec2:*:*:volume/*",
            "arn:aws:ec2:eu-west-1:*:volume/*", "arn:aws:ec2:*:111122223333:instance/i-1*",
            "arn:aws:ec2:us-east-1:444455556666:volume/vol-2")
LIKE_VALUES = ("prod*", "*rod*", "p?od", "*", "dev", "")

tags_st = st.dictionaries(st.sampled_from(TAG_KEYS), st.sampled_from(TAG_VALUES), max_size=3)


@st.composite
def resources_st(draw: st.DrawFn) -> ProtectedResource:
    kind = draw(st.sampled_from(("instance", "volume")))
    ident = ("i-" if kind == "instance" else "vol-") + str(draw(st.integers(1, 30)))
    arn = f"arn:aws:ec2:{draw(st.sampled_from(REGIONS))}:{draw(st.sampled_from(ACCOUNTS))}:{kind}/{ident}"
    return ProtectedResource(arn, "EC2" if kind == "instance" else "EBS", draw(tags_st))


conditions_st = st.lists(st.builds(Condition, st.just("STRINGEQUALS"), st.sampled_from(TAG_KEYS),
                                   st.sampled_from(TAG_VALUES)), max_size=3).map(tuple)
params_st = st.lists(st.builds(ConditionParameter, st.sampled_from(TAG_KEYS).map(lambda k: f"aws:ResourceTag/{k}"),
                               st.sampled_from(TAG_VALUES + LIKE_VALUES)), max_size=2).map(tuple)
condition_sets_st = st.builds(Conditions, params_st, params_st, params_st, params_st)


@st.composite
def selections_st(draw: st.DrawFn) -> BackupSelection:
    resources = tuple(draw(st.lists(st.sampled_from(PATTERNS), max_size=3, unique=True)))
    list_of_tags = draw(conditions_st)
    if not resources and not list_of_tags:
        resources = ("*",)
    return BackupSelection(
        selection_name=draw(st.from_regex(r"[a-zA-Z0-9\-_.]{1,50}", fullmatch=True)), iam_role_arn=ROLE,
        resources=resources, list_of_tags=list_of_tags,
        not_resources=tuple(draw(st.lists(st.sampled_from(PATTERNS[1:]), max_size=2, unique=True))),
        conditions=draw(condition_sets_st))


fleet_st = st.lists(resources_st(), max_size=12)


@settings(max_examples=150)
@given(selections_st(), fleet_st)
def test_never_selects_anything_matching_not_resources(selection: BackupSelection,
                                                       fleet: list[ProtectedResource]) -> None:
    for match in evaluate(selection, fleet):
        assert not any(arn_pattern_matches(p, match.resource_arn) for p in selection.not_resources)
        assert match.matched_by


@settings(max_examples=150)
@given(selections_st(), fleet_st, st.builds(Condition, st.just("STRINGEQUALS"), st.sampled_from(TAG_KEYS),
                                            st.sampled_from(TAG_VALUES)))
def test_adding_a_list_of_tags_condition_never_removes_a_resource(selection: BackupSelection,
                                                                  fleet: list[ProtectedResource],
                                                                  extra: Condition) -> None:
    before = set(arns(evaluate(selection, fleet)))
    wider = BackupSelection(selection.selection_name, selection.iam_role_arn, selection.resources,
                            selection.not_resources, (*selection.list_of_tags, extra), selection.conditions)
    assert before <= set(arns(evaluate(wider, fleet)))


@settings(max_examples=150)
@given(selections_st(), fleet_st, params_st, st.sampled_from(PATTERNS))
def test_adding_conditions_or_not_resources_never_adds_a_resource(selection: BackupSelection,
                                                                  fleet: list[ProtectedResource],
                                                                  extra: tuple[ConditionParameter, ...],
                                                                  excluded: str) -> None:
    before = set(arns(evaluate(selection, fleet)))
    c = selection.conditions
    narrower = BackupSelection(selection.selection_name, selection.iam_role_arn, selection.resources,
                               (*selection.not_resources, excluded), selection.list_of_tags,
                               Conditions(c.string_equals + extra, c.string_not_equals, c.string_like,
                                          c.string_not_like + extra))
    assert set(arns(evaluate(narrower, fleet))) <= before


@settings(max_examples=150)
@given(selections_st(), fleet_st)
def test_picks_keep_input_order_and_agree_with_explain(selection: BackupSelection,
                                                       fleet: list[ProtectedResource]) -> None:
    picked = evaluate(selection, fleet)
    expected = [r.arn for r in fleet if explain(selection, r).selected]
    assert arns(picked) == expected


@settings(max_examples=150)
@given(selections_st())
def test_json_round_trip(selection: BackupSelection) -> None:
    data = selection_to_aws_json(selection)
    assert selection_from_aws_json(data) == selection
    assert selection_from_aws_json({"BackupSelection": data}) == selection


@given(st.dictionaries(st.sampled_from(("a", "b", "c", "d")),
                       st.lists(st.sampled_from(("x", "y", "z")), max_size=4), max_size=4))
def test_duplicates_only_reports_arns_picked_by_several_selections(raw: dict[str, list[str]]) -> None:
    picks = {name: [SelectionMatch(arn, ("r",)) for arn in found] for name, found in raw.items()}
    result = duplicates(picks)
    for arn, names in result.items():
        assert len(names) == len(set(names)) > 1
        assert all(arn in raw[n] for n in names)
    for arn in {a for found in raw.values() for a in found}:
        owners = [n for n, found in raw.items() if arn in found]
        assert (arn in result) == (len(owners) > 1)


@given(st.text(alphabet="abc/:-.", max_size=8), st.text(alphabet="abc/:-.", max_size=12))
def test_string_like_star_is_substring_search(needle: str, value: str) -> None:
    assert string_like(f"*{needle}*", value) == (needle in value)
    assert string_like(f"{needle}*", value) == value.startswith(needle)


@given(st.text(alphabet="abcdef0123456789/-", min_size=1, max_size=10),
       st.text(alphabet="abcdef0123456789/-", max_size=10))
def test_trailing_star_is_a_prefix_match(prefix: str, rest: str) -> None:
    base = f"arn:aws:ec2:us-east-1:{ACCOUNT}:volume/"
    assert arn_pattern_problem(f"{base}{prefix}*") is None
    assert arn_pattern_matches(f"{base}{prefix}*", base + rest) == rest.startswith(prefix)
