"""Backup plans: AWS JSON in and out, every validation rule, and round trips of generated plans."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snapkeep.domain.errors import InvalidParameterValue, MissingParameterValue, SnapkeepError
from snapkeep.domain.plans import (
    BackupPlan,
    BackupRule,
    CopyAction,
    Lifecycle,
    lifecycle_from_aws_json,
    lifecycle_to_aws_json,
    plan_from_aws_json,
    plan_to_aws_json,
    rule_windows,
    validate_lifecycle,
)
from snapkeep.domain.schedule import CronExpression

DR_VAULT = "arn:aws:backup:eu-west-1:123456789012:backup-vault:dr-vault"

REALISTIC: dict[str, Any] = {
    "BackupPlanName": "prod-ec2.v2",
    "Rules": [
        {
            "RuleName": "daily",
            "TargetBackupVaultName": "prod-vault",
            "ScheduleExpression": "cron(0 2 ? * * *)",
            "ScheduleExpressionTimezone": "Europe/Berlin",
            "StartWindowMinutes": 60,
            "CompletionWindowMinutes": 240,
            "Lifecycle": {"DeleteAfterDays": 35},
            "RecoveryPointTags": {"tier": "daily", "owner": "platform"},
            "CopyActions": [{"DestinationBackupVaultArn": DR_VAULT, "Lifecycle": {"DeleteAfterDays": 35}}],
        },
        {
            "RuleName": "monthly",
            "TargetBackupVaultName": "prod-vault",
            "ScheduleExpression": "cron(0 3 1 * ? *)",
            "ScheduleExpressionTimezone": "Europe/Berlin",
            "StartWindowMinutes": 480,
            "CompletionWindowMinutes": 10080,
            "Lifecycle": {"MoveToColdStorageAfterDays": 30, "DeleteAfterDays": 365,
                          "OptInToArchiveForSupportedResources": True},
            "RecoveryPointTags": {"tier": "monthly"},
            "CopyActions": [{"DestinationBackupVaultArn": DR_VAULT,
                             "Lifecycle": {"MoveToColdStorageAfterDays": 30, "DeleteAfterDays": 3650}}],
            "EnableContinuousBackup": False,
        },
    ],
    "AdvancedBackupSettings": [{"ResourceType": "EC2", "BackupOptions": {"WindowsVSS": "enabled"}}],
}

EXPECTED = BackupPlan(
    backup_plan_name="prod-ec2.v2",
    rules=(
        BackupRule(
            rule_name="daily",
            target_backup_vault_name="prod-vault",
            schedule_expression="cron(0 2 ? * * *)",
            schedule_expression_timezone="Europe/Berlin",
            start_window_minutes=60,
            completion_window_minutes=240,
            lifecycle=Lifecycle(delete_after_days=35),
            recovery_point_tags={"tier": "daily", "owner": "platform"},
            copy_actions=(CopyAction(DR_VAULT, Lifecycle(delete_after_days=35)),),
        ),
        BackupRule(
            rule_name="monthly",
            target_backup_vault_name="prod-vault",
            schedule_expression="cron(0 3 1 * ? *)",
            schedule_expression_timezone="Europe/Berlin",
            lifecycle=Lifecycle(30, 365, True),
            recovery_point_tags={"tier": "monthly"},
            copy_actions=(CopyAction(DR_VAULT, Lifecycle(30, 3650)),),
        ),
    ),
    advanced_backup_settings=({"ResourceType": "EC2", "BackupOptions": {"WindowsVSS": "enabled"}},),
)


def realistic() -> dict[str, Any]:
    return copy.deepcopy(REALISTIC)


def test_realistic_plan_reads_into_the_model() -> None:
    assert plan_from_aws_json(realistic()) == EXPECTED


def test_realistic_plan_round_trips_with_defaults_written_out() -> None:
    out = plan_to_aws_json(plan_from_aws_json(realistic()))
    expected = realistic()
    expected["Rules"][0]["EnableContinuousBackup"] = False
    assert out == expected
    assert plan_from_aws_json(out) == EXPECTED


def test_minimal_rule_gets_aws_defaults() -> None:
    plan = plan_from_aws_json({"BackupPlanName": "p", "Rules": [{"RuleName": "r", "TargetBackupVaultName": "vv"}]})
    assert plan_to_aws_json(plan) == {"BackupPlanName": "p", "Rules": [{
        "RuleName": "r", "TargetBackupVaultName": "vv", "ScheduleExpression": "cron(0 5 ? * * *)",
        "StartWindowMinutes": 480, "CompletionWindowMinutes": 10080, "CopyActions": [],
        "EnableContinuousBackup": False, "ScheduleExpressionTimezone": "UTC"}]}
    rule = plan.rules[0]
    assert rule.schedule == CronExpression.parse("cron(0 5 ? * * *)")
    assert rule.lifecycle is None and rule.recovery_point_tags == {} and rule.copy_actions == ()


def test_wrapper_form_as_in_create_backup_plan_input() -> None:
    assert plan_from_aws_json({"BackupPlan": realistic()}) == EXPECTED


def test_wrapper_with_other_keys_is_refused_by_name() -> None:
    with pytest.raises(InvalidParameterValue) as caught:
        plan_from_aws_json({"BackupPlan": realistic(), "BackupPlanTags": {"a": "b"}})
    assert caught.value.field == "BackupPlanTags"
    with pytest.raises(InvalidParameterValue) as caught:
        plan_from_aws_json({"BackupPlan": "nope"})
    assert caught.value.field == "BackupPlan"


def test_rule_ids_from_get_backup_plan_are_ignored() -> None:
    data = realistic()
    data["Rules"][0]["RuleId"] = "8a4f5bbb-7e24-4d45-9a61-ec0f1c2b9c39"
    assert plan_from_aws_json(data) == EXPECTED


def test_nulls_read_as_absent() -> None:
    data = realistic()
    data["Rules"][0]["Lifecycle"] = None
    data["AdvancedBackupSettings"] = None
    plan = plan_from_aws_json(data)
    assert plan.rules[0].lifecycle is None and plan.advanced_backup_settings == ()


def test_keep_forever_minus_one_reads_as_no_days() -> None:
    lc = lifecycle_from_aws_json({"MoveToColdStorageAfterDays": -1, "DeleteAfterDays": -1})
    assert lc == Lifecycle(None, None, None)
    assert lifecycle_to_aws_json(lc) == {}


def test_schedule_property_and_windows() -> None:
    rule = EXPECTED.rules[0]
    assert rule.schedule.next_after(datetime(2024, 7, 1, tzinfo=UTC), rule.schedule_expression_timezone) == \
        datetime(2024, 7, 2, 0, tzinfo=UTC)  # 02:00 CEST
    scheduled = datetime(2024, 7, 2, 0, tzinfo=UTC)
    assert rule_windows(rule, scheduled) == (datetime(2024, 7, 2, 1, tzinfo=UTC), datetime(2024, 7, 2, 4, tzinfo=UTC))
    assert rule_windows(EXPECTED.rules[1], scheduled) == (
        datetime(2024, 7, 2, 8, tzinfo=UTC), datetime(2024, 7, 9, 0, tzinfo=UTC))


def test_plans_are_hashable_and_frozen() -> None:
    assert hash(EXPECTED) == hash(plan_from_aws_json(realistic()))
    with pytest.raises(AttributeError):
        EXPECTED.backup_plan_name = "x"  # type: ignore[misc]
    assert EXPECTED.rule("monthly") is EXPECTED.rules[1]


# -------------------------------------------------------------------------------------- validation rules


def _set(path: list[Any], value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(data: dict[str, Any]) -> None:
        target: Any = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return mutate


def _delete(path: list[Any]) -> Callable[[dict[str, Any]], None]:
    def mutate(data: dict[str, Any]) -> None:
        target: Any = data
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
    return mutate


R0, R1 = ["Rules", 0], ["Rules", 1]
Invalid, Missing = InvalidParameterValue, MissingParameterValue

CASES: list[tuple[str, Callable[[dict[str, Any]], None], type[SnapkeepError], str, str]] = [
    # (id, mutation, error class, field, message fragment)
    ("plan-name-empty", _set(["BackupPlanName"], ""), Invalid, "BackupPlanName", "1-50"),
    ("plan-name-long", _set(["BackupPlanName"], "p" * 51), Invalid, "BackupPlanName", "1-50"),
    ("plan-name-space", _set(["BackupPlanName"], "prod plan"), Invalid, "BackupPlanName", "letters, digits"),
    ("plan-name-newline", _set(["BackupPlanName"], "prod\n"), Invalid, "BackupPlanName", "1-50"),
    ("plan-name-missing", _delete(["BackupPlanName"]), Missing, "BackupPlanName", "is required"),
    ("rules-missing", _delete(["Rules"]), Missing, "Rules", "is required"),
    ("rules-empty", _set(["Rules"], []), Invalid, "Rules", "at least one rule"),
    ("rule-name-bad", _set([*R0, "RuleName"], "daily backup"), Invalid, "Rules[0].RuleName", "1-50"),
    ("rule-name-long", _set([*R0, "RuleName"], "r" * 51), Invalid, "Rules[0].RuleName", "1-50"),
    ("rule-name-missing", _delete([*R0, "RuleName"]), Missing, "Rules[0].RuleName", "is required"),
    ("rule-name-duplicate", _set([*R1, "RuleName"], "daily"), Invalid, "Rules[1].RuleName", "must be unique"),
    ("vault-short", _set([*R0, "TargetBackupVaultName"], "v"), Invalid, "Rules[0].TargetBackupVaultName", "2-50"),
    ("vault-dot", _set([*R0, "TargetBackupVaultName"], "prod.vault"), Invalid, "Rules[0].TargetBackupVaultName",
     "2-50"),
    ("vault-long", _set([*R0, "TargetBackupVaultName"], "v" * 51), Invalid, "Rules[0].TargetBackupVaultName",
     "2-50"),
    ("vault-missing", _delete([*R0, "TargetBackupVaultName"]), Missing, "Rules[0].TargetBackupVaultName",
     "is required"),
    ("schedule-bad", _set([*R1, "ScheduleExpression"], "cron(0 3 32 * ? *)"), Invalid,
     "Rules[1].ScheduleExpression", "day-of-month 32 is out of range 1-31"),
    ("schedule-rate", _set([*R0, "ScheduleExpression"], "rate(1 day)"), Invalid, "Rules[0].ScheduleExpression",
     "rate()"),
    ("schedule-too-often", _set([*R0, "ScheduleExpression"], "cron(0/30 * ? * * *)"), Invalid,
     "Rules[0].ScheduleExpression", "more than once an hour"),
    ("timezone-unknown", _set([*R0, "ScheduleExpressionTimezone"], "Mars/Olympus_Mons"), Invalid,
     "Rules[0].ScheduleExpressionTimezone", "unknown time zone"),
    ("start-window-59", _set([*R0, "StartWindowMinutes"], 59), Invalid, "Rules[0].StartWindowMinutes",
     "between 60 and 52560000"),
    ("start-window-huge", _set([*R1, "StartWindowMinutes"], 52_560_001), Invalid, "Rules[1].StartWindowMinutes",
     "between 60 and 52560000"),
    ("completion-119", _set([*R0, "CompletionWindowMinutes"], 119), Invalid, "Rules[0].CompletionWindowMinutes",
     "between 120 and 52560000"),
    ("completion-not-longer", _set([*R1, "CompletionWindowMinutes"], 480), Invalid,
     "Rules[1].CompletionWindowMinutes", "longer than StartWindowMinutes (480)"),
    ("completion-huge", _set([*R1, "CompletionWindowMinutes"], 52_560_001), Invalid,
     "Rules[1].CompletionWindowMinutes", "between 120"),
    ("delete-0", _set([*R0, "Lifecycle", "DeleteAfterDays"], 0), Invalid, "Rules[0].Lifecycle.DeleteAfterDays",
     "between 1 and 36500"),
    ("delete-36501", _set([*R0, "Lifecycle", "DeleteAfterDays"], 36501), Invalid,
     "Rules[0].Lifecycle.DeleteAfterDays", "between 1 and 36500"),
    ("cold-0", _set([*R1, "Lifecycle", "MoveToColdStorageAfterDays"], 0), Invalid,
     "Rules[1].Lifecycle.MoveToColdStorageAfterDays", "between 1 and 36500"),
    ("only-one-minus-one", _set([*R1, "Lifecycle", "MoveToColdStorageAfterDays"], -1), Invalid,
     "Rules[1].Lifecycle.MoveToColdStorageAfterDays", "between 1 and 36500"),
    ("cold-90-rule", _set([*R1, "Lifecycle", "DeleteAfterDays"], 119), Invalid, "Rules[1].Lifecycle.DeleteAfterDays",
     "at least 90 days after MoveToColdStorageAfterDays (30)"),
    ("continuous-cold", lambda d: d["Rules"][1].update(EnableContinuousBackup=True), Invalid,
     "Rules[1].Lifecycle.MoveToColdStorageAfterDays", "cannot move to cold storage"),
    ("continuous-36-days", lambda d: d["Rules"][0].update(EnableContinuousBackup=True,
                                                          Lifecycle={"DeleteAfterDays": 36}),
     Invalid, "Rules[0].Lifecycle.DeleteAfterDays", "at most 35 days"),
    ("continuous-no-retention", lambda d: d["Rules"][0].update(EnableContinuousBackup=True, Lifecycle={}),
     Missing, "Rules[0].Lifecycle.DeleteAfterDays", "retention of 1-35 days"),
    ("tag-key-empty", _set([*R0, "RecoveryPointTags", ""], "x"), Invalid, "Rules[0].RecoveryPointTags",
     "tag key '' must be 1-128 characters, got 0"),
    ("tag-key-long", _set([*R0, "RecoveryPointTags", "k" * 129], "x"), Invalid, "Rules[0].RecoveryPointTags",
     "must be 1-128 characters, got 129"),
    ("tag-value-long", _set([*R0, "RecoveryPointTags", "tier"], "v" * 257), Invalid,
     "Rules[0].RecoveryPointTags.tier", "at most 256"),
    ("tag-aws-prefix", _set([*R0, "RecoveryPointTags", "AWS:backup"], "x"), Invalid,
     "Rules[0].RecoveryPointTags.AWS:backup", "reserved"),
    ("tags-51", _set([*R0, "RecoveryPointTags"], {f"k{i}": "v" for i in range(51)}), Invalid,
     "Rules[0].RecoveryPointTags", "at most 50 tags"),
    ("copy-not-vault-arn", _set([*R0, "CopyActions", 0, "DestinationBackupVaultArn"], "arn:aws:s3:::bucket"),
     Invalid, "Rules[0].CopyActions[0].DestinationBackupVaultArn", "not a backup vault ARN"),
    ("copy-plan-arn", _set([*R0, "CopyActions", 0, "DestinationBackupVaultArn"],
                           "arn:aws:backup:eu-west-1:123456789012:backup-plan:abc"),
     Invalid, "Rules[0].CopyActions[0].DestinationBackupVaultArn", "not a backup vault ARN"),
    ("copy-bad-account", _set([*R0, "CopyActions", 0, "DestinationBackupVaultArn"],
                              "arn:aws:backup:eu-west-1:1234:backup-vault:dr"),
     Invalid, "Rules[0].CopyActions[0].DestinationBackupVaultArn", "not a backup vault ARN"),
    ("copy-arn-missing", _delete([*R0, "CopyActions", 0, "DestinationBackupVaultArn"]), Missing,
     "Rules[0].CopyActions[0].DestinationBackupVaultArn", "is required"),
    ("copy-lifecycle-90", _set([*R1, "CopyActions", 0, "Lifecycle", "DeleteAfterDays"], 100), Invalid,
     "Rules[1].CopyActions[0].Lifecycle.DeleteAfterDays", "at least 90 days after"),
    ("unknown-plan-key", _set(["BackupPlanNmae"], "x"), Invalid, "BackupPlanNmae", "unknown key"),
    ("unknown-rule-key", _set([*R0, "StartWindowMinute"], 60), Invalid, "Rules[0].StartWindowMinute", "unknown key"),
    ("unknown-lifecycle-key", _set([*R0, "Lifecycle", "DeleteAfterDay"], 60), Invalid,
     "Rules[0].Lifecycle.DeleteAfterDay", "unknown key"),
    ("unknown-copy-key", _set([*R0, "CopyActions", 0, "Destination"], "x"), Invalid,
     "Rules[0].CopyActions[0].Destination", "unknown key"),
    ("unsupported-index", _set([*R0, "IndexActions"], [{"ResourceTypes": ["EBS"]}]), Invalid,
     "Rules[0].IndexActions", "not supported"),
    ("unsupported-scan", _set(["ScanSettings"], []), Invalid, "ScanSettings", "not supported"),
    ("output-only", _set([*R0, "Lifecycle", "DeleteAfterEvent"], "DELETE_AFTER_COPY"), Invalid,
     "Rules[0].Lifecycle.DeleteAfterEvent", "output only"),
    ("type-plan-name", _set(["BackupPlanName"], 42), Invalid, "BackupPlanName", "must be a string, got integer"),
    ("type-rules", _set(["Rules"], {"RuleName": "x"}), Invalid, "Rules", "must be an array, got object"),
    ("type-rule", _set(["Rules", 0], "daily"), Invalid, "Rules[0]", "must be an object, got string"),
    ("type-window-string", _set([*R0, "StartWindowMinutes"], "60"), Invalid, "Rules[0].StartWindowMinutes",
     "must be an integer, got string"),
    ("type-window-bool", _set([*R0, "CompletionWindowMinutes"], True), Invalid,
     "Rules[0].CompletionWindowMinutes", "must be an integer, got boolean"),
    ("type-days-float", _set([*R0, "Lifecycle", "DeleteAfterDays"], 35.0), Invalid,
     "Rules[0].Lifecycle.DeleteAfterDays", "must be an integer, got number"),
    ("type-continuous", _set([*R0, "EnableContinuousBackup"], "false"), Invalid, "Rules[0].EnableContinuousBackup",
     "must be true or false"),
    ("type-opt-in", _set([*R1, "Lifecycle", "OptInToArchiveForSupportedResources"], 1), Invalid,
     "Rules[1].Lifecycle.OptInToArchiveForSupportedResources", "must be true or false"),
    ("type-tags", _set([*R0, "RecoveryPointTags"], [["tier", "daily"]]), Invalid, "Rules[0].RecoveryPointTags",
     "must be an object"),
    ("type-tag-value", _set([*R0, "RecoveryPointTags", "tier"], 3), Invalid, "Rules[0].RecoveryPointTags.tier",
     "must be a string"),
    ("type-copy-actions", _set([*R0, "CopyActions"], {"DestinationBackupVaultArn": DR_VAULT}), Invalid,
     "Rules[0].CopyActions", "must be an array"),
    ("type-lifecycle", _set([*R0, "Lifecycle"], 35), Invalid, "Rules[0].Lifecycle", "must be an object"),
    ("setting-resource-type", _set(["AdvancedBackupSettings", 0, "ResourceType"], "S3"), Invalid,
     "AdvancedBackupSettings[0].ResourceType", "must be one of ['EC2']"),
    ("setting-option-value", _set(["AdvancedBackupSettings", 0, "BackupOptions", "WindowsVSS"], "on"), Invalid,
     "AdvancedBackupSettings[0].BackupOptions.WindowsVSS", "must be one of ['disabled', 'enabled']"),
    ("setting-option-unknown", _set(["AdvancedBackupSettings", 0, "BackupOptions", "BackupACLs"], "disabled"),
     Invalid, "AdvancedBackupSettings[0].BackupOptions.BackupACLs", "unknown option"),
    ("setting-duplicate", lambda d: d["AdvancedBackupSettings"].append(
        {"ResourceType": "EC2", "BackupOptions": {"WindowsVSS": "disabled"}}), Invalid,
     "AdvancedBackupSettings[1].ResourceType", "more than once"),
    ("setting-type", _set(["AdvancedBackupSettings"], {"ResourceType": "EC2"}), Invalid, "AdvancedBackupSettings",
     "must be an array"),
]


@pytest.mark.parametrize(("mutate", "error", "field", "fragment"),
                         [pytest.param(*case[1:], id=case[0]) for case in CASES])
def test_each_rule_broken_gives_its_error(mutate: Callable[[dict[str, Any]], None], error: type[SnapkeepError],
                                          field: str, fragment: str) -> None:
    data = realistic()
    mutate(data)
    with pytest.raises(SnapkeepError) as caught:
        plan_from_aws_json(data)
    exc = caught.value
    assert type(exc) is error, exc.message
    assert exc.field == field, exc.message
    assert exc.message.startswith(f"{field}: "), exc.message
    assert fragment in exc.message, exc.message
    if field.startswith("Rules[") and field != "Rules[0]":
        index = int(field[len("Rules["):field.index("]")])
        name = data["Rules"][index].get("RuleName")
        if isinstance(name, str) and "RuleName" not in field:
            assert f"rule '{name}'" in exc.message, exc.message


def test_absent_or_null_schedule_is_the_default() -> None:
    data = realistic()
    data["Rules"][0]["ScheduleExpression"] = None
    del data["Rules"][1]["ScheduleExpression"]
    plan = plan_from_aws_json(data)
    assert [r.schedule_expression for r in plan.rules] == ["cron(0 5 ? * * *)"] * 2


@pytest.mark.parametrize("value", [[], "plan", 3, None])
def test_top_level_must_be_an_object(value: Any) -> None:
    with pytest.raises(InvalidParameterValue) as caught:
        plan_from_aws_json(value)
    assert caught.value.field == "BackupPlan"


def test_boundaries_that_are_allowed() -> None:
    data = realistic()
    data["Rules"][0].update(StartWindowMinutes=60, CompletionWindowMinutes=120)
    data["Rules"][1]["Lifecycle"] = {"MoveToColdStorageAfterDays": 1, "DeleteAfterDays": 91}
    data["Rules"][0]["RecoveryPointTags"] = {"k" * 128: "v" * 256, "empty": ""}
    data["Rules"][0]["CopyActions"][0]["DestinationBackupVaultArn"] = (
        "arn:aws-us-gov:backup:us-gov-west-1:123456789012:backup-vault:Gov_Vault-1")
    data["BackupPlanName"] = "p" * 50
    data["Rules"].append({"RuleName": "pitr", "TargetBackupVaultName": "prod-vault", "EnableContinuousBackup": True,
                          "Lifecycle": {"DeleteAfterDays": 35}, "ScheduleExpression": "cron(15 * ? * * *)"})
    plan = plan_from_aws_json(data)
    assert plan.rules[2].enable_continuous_backup and plan.rules[2].lifecycle == Lifecycle(delete_after_days=35)


def test_direct_construction_is_validated_too() -> None:
    with pytest.raises(InvalidParameterValue) as caught:
        BackupPlan("p", (BackupRule("r", "vault", start_window_minutes=30),))
    assert caught.value.field == "Rules[0].StartWindowMinutes"
    assert "rule 'r'" in caught.value.message
    with pytest.raises(InvalidParameterValue):
        BackupPlan("p", ())


def test_validate_lifecycle_on_its_own() -> None:
    validate_lifecycle(Lifecycle(30, 120), "Lifecycle")
    with pytest.raises(InvalidParameterValue) as caught:
        validate_lifecycle(Lifecycle(30, 100), "Rules[3].Lifecycle", rule_name="weekly")
    assert caught.value.field == "Rules[3].Lifecycle.DeleteAfterDays"
    assert caught.value.message == ("Rules[3].Lifecycle.DeleteAfterDays: rule 'weekly': must be at least 90 days "
                                    "after MoveToColdStorageAfterDays (30), got 100")
    with pytest.raises(InvalidParameterValue):
        lifecycle_from_aws_json({"DeleteAfterDays": "35"})


# -------------------------------------------------------------------------------- generated round trips

_NAME = st.text("abcXYZ019-_.", min_size=1, max_size=50)
_VAULT = st.text("abcXYZ019-_", min_size=2, max_size=50)
_DAYS = st.integers(1, 36500)


@st.composite
def lifecycles(draw: st.DrawFn, continuous: bool = False) -> Lifecycle:
    if continuous:
        return Lifecycle(None, draw(st.integers(1, 35)), draw(st.none() | st.booleans()))
    cold = draw(st.none() | st.integers(1, 36500 - 90))
    delete = draw(st.none() | (_DAYS if cold is None else st.integers(cold + 90, 36500)))
    return Lifecycle(cold, delete, draw(st.none() | st.booleans()))


@st.composite
def rules(draw: st.DrawFn, name: str) -> BackupRule:
    continuous = draw(st.booleans())
    start = draw(st.integers(60, 100_000))
    arns = st.builds(lambda region, account, vault: f"arn:aws:backup:{region}:{account}:backup-vault:{vault}",
                     st.sampled_from(["us-east-1", "eu-central-1", "ap-southeast-2"]),
                     st.from_regex(r"[0-9]{12}", fullmatch=True), _VAULT)
    return BackupRule(
        rule_name=name,
        target_backup_vault_name=draw(_VAULT),
        schedule_expression=draw(st.sampled_from([
            "cron(0 5 ? * * *)", "cron(15 * ? * * *)", "cron(0 3 L * ? *)", "cron(30 2 ? * MON-FRI *)",
            "cron(0 0 1 1 ? 2030-2040)", "cron(0 4 ? * 6L *)", "cron(0 1 15W * ? *)", "cron(0 0/6 * * ? *)"])),
        schedule_expression_timezone=draw(st.sampled_from(["UTC", "Europe/Berlin", "America/New_York",
                                                           "Australia/Lord_Howe"])),
        start_window_minutes=start,
        completion_window_minutes=draw(st.integers(max(start + 1, 120), 52_560_000)),
        lifecycle=draw(lifecycles(continuous) if continuous else st.none() | lifecycles()),
        recovery_point_tags=draw(st.dictionaries(
            st.text(min_size=1, max_size=128).filter(lambda k: not k.lower().startswith("aws:")),
            st.text(max_size=256), max_size=5)),
        copy_actions=tuple(draw(st.lists(st.builds(CopyAction, arns, st.none() | lifecycles()), max_size=2))),
        enable_continuous_backup=continuous,
    )


@st.composite
def plans(draw: st.DrawFn) -> BackupPlan:
    names = draw(st.lists(_NAME, min_size=1, max_size=4, unique=True))
    settings_ = draw(st.sampled_from([(), ({"ResourceType": "EC2", "BackupOptions": {"WindowsVSS": "enabled"}},),
                                      ({"ResourceType": "EC2", "BackupOptions": {}},)]))
    return BackupPlan(draw(_NAME), tuple(draw(rules(n)) for n in names), settings_)


@settings(max_examples=80, deadline=None)
@given(plans())
def test_generated_plans_round_trip(plan: BackupPlan) -> None:
    data = plan_to_aws_json(plan)
    assert plan_from_aws_json(data) == plan
    assert plan_from_aws_json({"BackupPlan": data}) == plan
    assert plan_to_aws_json(plan_from_aws_json(copy.deepcopy(data))) == data


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            out += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            out += _paths(child, (*prefix, i))
    return out


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3),
    max_leaves=8)


@settings(max_examples=150, deadline=None)
@given(path=st.sampled_from(_paths(REALISTIC)), value=_JSON, extra_key=st.none() | st.text(max_size=12))
def test_any_json_damage_gives_only_parameter_errors(path: tuple[Any, ...], value: Any, extra_key: str | None) -> None:
    data = realistic()
    _set([*path[:-1], extra_key if extra_key is not None and isinstance(path[-1], str) else path[-1]], value)(data)
    try:
        plan_from_aws_json(data)
    except (InvalidParameterValue, MissingParameterValue) as exc:
        assert exc.field and exc.message.startswith(f"{exc.field}: ")
