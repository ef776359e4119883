"""Backup plans in AWS Backup's JSON shapes, validated the way AWS validates them.

A plan is checked whole when it is built (`BackupPlan.__post_init__`), so no invalid plan exists anywhere in
Snapkeep, whichever door it came in by. Errors carry the JSON path of the value (`Rules[1].Lifecycle.DeleteAfterDays`)
as `field` and name the rule in the message.

Where AWS's rule could not be confirmed it is marked below, with what was found.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any, TypeVar

from snapkeep.domain.errors import InvalidParameterValue, MissingParameterValue
from snapkeep.domain.schedule import CronExpression, load_timezone

DEFAULT_SCHEDULE_EXPRESSION = "cron(0 5 ? * * *)"
DEFAULT_TIMEZONE = "UTC"
DEFAULT_START_WINDOW_MINUTES = 480  # 8 hours (StartBackupJob docs; console default)
DEFAULT_COMPLETION_WINDOW_MINUTES = 10080  # 7 days (console default; aws-cdk#27050)
MIN_START_WINDOW_MINUTES = 60
MIN_COMPLETION_WINDOW_MINUTES = 120
MAX_WINDOW_MINUTES = 52_560_000  # 100 years
MIN_DAYS = 1
MAX_DAYS = 36_500  # 100 years
COLD_STORAGE_MIN_DAYS = 90
CONTINUOUS_MAX_RETENTION_DAYS = 35
MAX_TAGS = 50

_PLAN_NAME = re.compile(r"[a-zA-Z0-9\-_.]{1,50}")
_RULE_NAME = re.compile(r"[a-zA-Z0-9\-_.]{1,50}")
_VAULT_NAME = re.compile(r"[a-zA-Z0-9\-_]{2,50}")
_OPTION = re.compile(r"[a-zA-Z0-9\-_.]{1,50}")
_VAULT_ARN = re.compile(r"arn:aws(-[a-z]+)*:backup:[a-z]{2}(-[a-z]+)+-[0-9]+:[0-9]{12}:backup-vault:"
                        r"[a-zA-Z0-9\-_]{2,50}")

# Keys AWS has that Snapkeep does not implement: refused by name rather than dropped.
_UNSUPPORTED = {
    "ScanSettings": "malware scanning is not supported by Snapkeep",
    "TargetLogicallyAirGappedBackupVaultArn": "logically air-gapped vaults are not supported by Snapkeep",
    "IndexActions": "backup indexes are not supported by Snapkeep",
    "ScanActions": "malware scanning is not supported by Snapkeep",
    "DeleteAfterEvent": "is output only (set by AWS Backup), not valid as input",
}
_PLAN_KEYS = frozenset({"BackupPlanName", "Rules", "AdvancedBackupSettings"})
_RULE_KEYS = frozenset({"RuleName", "TargetBackupVaultName", "ScheduleExpression", "ScheduleExpressionTimezone",
                        "StartWindowMinutes", "CompletionWindowMinutes", "Lifecycle", "RecoveryPointTags",
                        "CopyActions", "EnableContinuousBackup"})
_RULE_OUTPUT_ONLY = frozenset({"RuleId"})  # GetBackupPlan returns it; ignored so its output can be fed back in
_LIFECYCLE_KEYS = frozenset({"MoveToColdStorageAfterDays", "DeleteAfterDays", "OptInToArchiveForSupportedResources"})
_COPY_KEYS = frozenset({"DestinationBackupVaultArn", "Lifecycle"})
_SETTING_KEYS = frozenset({"ResourceType", "BackupOptions"})
_BACKUP_OPTIONS = {"EC2": {"WindowsVSS": frozenset({"enabled", "disabled"})}}


# ------------------------------------------------------------------------------------------------- the model


@dataclasses.dataclass(frozen=True)
class Lifecycle:
    """Days after creation to move to cold storage and to delete; None = never."""

    move_to_cold_storage_after_days: int | None = None
    delete_after_days: int | None = None
    opt_in_to_archive_for_supported_resources: bool | None = None


@dataclasses.dataclass(frozen=True)
class CopyAction:
    destination_backup_vault_arn: str
    lifecycle: Lifecycle | None = None


@dataclasses.dataclass(frozen=True)
class BackupRule:
    rule_name: str
    target_backup_vault_name: str
    schedule_expression: str = DEFAULT_SCHEDULE_EXPRESSION
    schedule_expression_timezone: str = DEFAULT_TIMEZONE
    start_window_minutes: int = DEFAULT_START_WINDOW_MINUTES
    completion_window_minutes: int = DEFAULT_COMPLETION_WINDOW_MINUTES
    lifecycle: Lifecycle | None = None
    recovery_point_tags: dict[str, str] = dataclasses.field(default_factory=dict, hash=False)
    copy_actions: tuple[CopyAction, ...] = ()
    enable_continuous_backup: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "recovery_point_tags", dict(self.recovery_point_tags))
        object.__setattr__(self, "copy_actions", tuple(self.copy_actions))

    @cached_property
    def schedule(self) -> CronExpression:
        """The parsed schedule (evaluate it in `schedule_expression_timezone`)."""
        return CronExpression.parse(self.schedule_expression)


@dataclasses.dataclass(frozen=True)
class BackupPlan:
    backup_plan_name: str
    rules: tuple[BackupRule, ...]
    advanced_backup_settings: tuple[dict[str, Any], ...] = dataclasses.field(default=(), hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rules", tuple(self.rules))
        object.__setattr__(self, "advanced_backup_settings", tuple(self.advanced_backup_settings))
        validate_plan(self)

    def rule(self, name: str) -> BackupRule:
        for rule in self.rules:
            if rule.rule_name == name:
                return rule
        raise KeyError(name)


def rule_windows(rule: BackupRule, scheduled: datetime) -> tuple[datetime, datetime]:
    """(end of the start window, end of the completion window) for a run scheduled at `scheduled`.

    Both count from the scheduled time. AWS's StartBackupJob reference says of CompleteWindowMinutes: "This value
    begins counting down from when the backup was scheduled. It does not add additional time for
    StartWindowMinutes, or if the backup started later than scheduled." (botocore backup service model,
    StartBackupJobInput; the BackupRule shape's older wording "after a backup job is successfully started" is
    the less precise of the two.)
    """
    return (scheduled + timedelta(minutes=rule.start_window_minutes),
            scheduled + timedelta(minutes=rule.completion_window_minutes))


# ------------------------------------------------------------------------------------------------ validation


def _invalid(path: str, rule: str | None, problem: str) -> InvalidParameterValue:
    where = f"{path}: rule {rule!r}: " if rule is not None else f"{path}: "
    return InvalidParameterValue(where + problem, field=path)


def _check_days(value: int | None, path: str, rule: str | None) -> None:
    if value is not None and not MIN_DAYS <= value <= MAX_DAYS:
        raise _invalid(path, rule, f"must be between {MIN_DAYS} and {MAX_DAYS} days, got {value}")


def validate_lifecycle(lc: Lifecycle, field: str, *, rule_name: str | None = None) -> None:
    """Days within 1-36500; with both set, deletion at least 90 days after the move to cold storage.

    90 days: recovery points in cold storage must stay there at least 90 days (Lifecycle shape docs).
    """
    _check_days(lc.move_to_cold_storage_after_days, f"{field}.MoveToColdStorageAfterDays", rule_name)
    _check_days(lc.delete_after_days, f"{field}.DeleteAfterDays", rule_name)
    cold, delete = lc.move_to_cold_storage_after_days, lc.delete_after_days
    if cold is not None and delete is not None and delete < cold + COLD_STORAGE_MIN_DAYS:
        raise _invalid(f"{field}.DeleteAfterDays", rule_name,
                       f"must be at least {COLD_STORAGE_MIN_DAYS} days after MoveToColdStorageAfterDays "
                       f"({cold}), got {delete}")


def _validate_windows(rule: BackupRule, path: str) -> None:
    """Start window: at least 60 minutes, at most 100 years (BackupRuleInput docs).

    Completion window: AWS's own documentation states no minimum and no relation to the start window. Several
    third-party modules (cloudposse/terraform-aws-backup, cdk-backup-plan) say it "must be at least 60 minutes
    greater than start_window", which AWS does not confirm; so Snapkeep asks for what is certainly needed for a job
    to be able to finish: at least 120 minutes and longer than the start window (both count from the scheduled
    time, see `rule_windows`), at most 100 years (StartBackupJob docs).
    """
    name, start, done = rule.rule_name, rule.start_window_minutes, rule.completion_window_minutes
    if not MIN_START_WINDOW_MINUTES <= start <= MAX_WINDOW_MINUTES:
        raise _invalid(f"{path}.StartWindowMinutes", name,
                       f"must be between {MIN_START_WINDOW_MINUTES} and {MAX_WINDOW_MINUTES} minutes, got {start}")
    if not MIN_COMPLETION_WINDOW_MINUTES <= done <= MAX_WINDOW_MINUTES:
        raise _invalid(f"{path}.CompletionWindowMinutes", name,
                       f"must be between {MIN_COMPLETION_WINDOW_MINUTES} and {MAX_WINDOW_MINUTES} minutes, "
                       f"got {done}")
    if done <= start:
        raise _invalid(f"{path}.CompletionWindowMinutes", name,
                       f"must be longer than StartWindowMinutes ({start}), got {done}")


def _validate_tags(tags: Mapping[str, str], path: str, rule: str) -> None:
    """AWS tag limits: 50 tags, keys 1-128 characters, values 0-256, `aws:` prefix reserved."""
    if len(tags) > MAX_TAGS:
        raise _invalid(path, rule, f"at most {MAX_TAGS} tags, got {len(tags)}")
    for key, value in tags.items():
        if not 1 <= len(key) <= 128:
            raise _invalid(path, rule, f"tag key {key[:40]!r} must be 1-128 characters, got {len(key)}")
        if key.lower().startswith("aws:"):
            raise _invalid(f"{path}.{key}", rule, "tag keys starting with 'aws:' are reserved for AWS")
        if len(value) > 256:
            raise _invalid(f"{path}.{key}", rule, f"tag value must be at most 256 characters, got {len(value)}")


def _validate_rule(rule: BackupRule, path: str) -> None:
    name = rule.rule_name
    if not _RULE_NAME.fullmatch(name):
        raise _invalid(f"{path}.RuleName", name, "must be 1-50 letters, digits, '-', '_' or '.'")
    if not _VAULT_NAME.fullmatch(rule.target_backup_vault_name):
        raise _invalid(f"{path}.TargetBackupVaultName", name,
                       f"{rule.target_backup_vault_name!r} must be 2-50 letters, digits, '-' or '_'")
    schedule_field = f"{path}.ScheduleExpression"
    try:
        schedule = CronExpression.parse(rule.schedule_expression, field=schedule_field)
    except InvalidParameterValue as exc:
        raise _invalid(schedule_field, name, exc.message.removeprefix(f"{schedule_field}: ")) from None
    if not schedule.is_at_most_hourly():
        raise _invalid(schedule_field, name,
                       f"'{rule.schedule_expression}' runs more than once an hour; AWS Backup allows at most "
                       "hourly backups")
    tz_field = f"{path}.ScheduleExpressionTimezone"
    try:
        load_timezone(rule.schedule_expression_timezone, field=tz_field)
    except InvalidParameterValue as exc:
        raise _invalid(tz_field, name, exc.message.removeprefix(f"{tz_field}: ")) from None
    _validate_windows(rule, path)
    if rule.lifecycle is not None:
        validate_lifecycle(rule.lifecycle, f"{path}.Lifecycle", rule_name=name)
    if rule.enable_continuous_backup:
        lc = rule.lifecycle or Lifecycle()
        if lc.move_to_cold_storage_after_days is not None:
            raise _invalid(f"{path}.Lifecycle.MoveToColdStorageAfterDays", name,
                           "continuous backups cannot move to cold storage (EnableContinuousBackup is true)")
        if lc.delete_after_days is None:
            raise MissingParameterValue(
                f"{path}.Lifecycle.DeleteAfterDays: rule {name!r}: continuous backups need a retention of 1-"
                f"{CONTINUOUS_MAX_RETENTION_DAYS} days", field=f"{path}.Lifecycle.DeleteAfterDays")
        if lc.delete_after_days > CONTINUOUS_MAX_RETENTION_DAYS:
            raise _invalid(f"{path}.Lifecycle.DeleteAfterDays", name,
                           f"continuous backups keep at most {CONTINUOUS_MAX_RETENTION_DAYS} days, "
                           f"got {lc.delete_after_days}")
    _validate_tags(rule.recovery_point_tags, f"{path}.RecoveryPointTags", name)
    for i, copy in enumerate(rule.copy_actions):
        copy_path = f"{path}.CopyActions[{i}]"
        if not _VAULT_ARN.fullmatch(copy.destination_backup_vault_arn):
            raise _invalid(f"{copy_path}.DestinationBackupVaultArn", name,
                           f"{copy.destination_backup_vault_arn!r} is not a backup vault ARN "
                           "(arn:aws:backup:<region>:<account>:backup-vault:<name>)")
        if copy.lifecycle is not None:
            validate_lifecycle(copy.lifecycle, f"{copy_path}.Lifecycle", rule_name=name)


def _validate_settings(settings: Sequence[Mapping[str, Any]]) -> None:
    """AdvancedBackupSettings: only EC2's WindowsVSS option (enabled | disabled) means anything for EC2."""
    seen: set[str] = set()
    for i, setting in enumerate(settings):
        path = f"AdvancedBackupSettings[{i}]"
        resource_type = setting.get("ResourceType")
        if resource_type not in _BACKUP_OPTIONS:
            raise _invalid(f"{path}.ResourceType", None, f"must be one of {sorted(_BACKUP_OPTIONS)}, "
                                                         f"got {resource_type!r}")
        if resource_type in seen:
            raise _invalid(f"{path}.ResourceType", None, f"'{resource_type}' appears more than once")
        seen.add(resource_type)
        options = setting.get("BackupOptions") or {}
        for key, value in options.items():
            allowed = _BACKUP_OPTIONS[resource_type].get(key)
            if allowed is None:
                raise _invalid(f"{path}.BackupOptions.{key}", None,
                               f"unknown option for {resource_type}; known: {sorted(_BACKUP_OPTIONS[resource_type])}")
            if value not in allowed:
                raise _invalid(f"{path}.BackupOptions.{key}", None, f"must be one of {sorted(allowed)}, "
                                                                    f"got {value!r}")


def validate_plan(plan: BackupPlan) -> None:
    """Every AWS Backup rule on a plan; raises on the first one broken."""
    if not _PLAN_NAME.fullmatch(plan.backup_plan_name):
        raise _invalid("BackupPlanName", None,
                       f"{plan.backup_plan_name!r} must be 1-50 letters, digits, '-', '_' or '.'")
    if not plan.rules:
        raise InvalidParameterValue("Rules: a backup plan needs at least one rule", field="Rules")
    seen: dict[str, int] = {}
    for i, rule in enumerate(plan.rules):
        path = f"Rules[{i}]"
        _validate_rule(rule, path)
        if rule.rule_name in seen:
            raise _invalid(f"{path}.RuleName", rule.rule_name,
                           f"the name is already used by Rules[{seen[rule.rule_name]}]; rule names must be unique")
        seen[rule.rule_name] = i
    _validate_settings(plan.advanced_backup_settings)


# ------------------------------------------------------------------------------------------------- JSON in


_T = TypeVar("_T")


def _type_name(value: object) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer", float: "number",
            type(None): "null"}.get(type(value), type(value).__name__)


def _expect(value: object, kind: type[_T], path: str, what: str) -> _T:
    """`value` if it has the JSON type wanted; bool is not an integer here, whatever Python thinks."""
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    raise InvalidParameterValue(f"{path}: must be {what}, got {_type_name(value)}", field=path)


def _object(value: object, path: str, allowed: frozenset[str], ignored: frozenset[str] = frozenset()
            ) -> dict[str, Any]:
    data = _expect(value, dict, path, "an object")
    for key in data:
        if not isinstance(key, str):
            raise InvalidParameterValue(f"{path}: keys must be strings, got {key!r}", field=path)
        if key in allowed or key in ignored:
            continue
        where = (f"{path}.{key}" if path else key) if key else (path or "BackupPlan")
        reason = _UNSUPPORTED.get(key, f"unknown key {key!r} (expected one of {', '.join(sorted(allowed))})")
        raise InvalidParameterValue(f"{where}: {reason}", field=where)
    return {k: v for k, v in data.items() if k in allowed and v is not None}


def _required(data: Mapping[str, Any], key: str, path: str) -> Any:
    where = f"{path}.{key}" if path else key
    if key not in data:
        raise MissingParameterValue(f"{where}: is required", field=where)
    return data[key]


def _opt_int(data: Mapping[str, Any], key: str, path: str) -> int | None:
    return None if key not in data else _expect(data[key], int, f"{path}.{key}", "an integer")


def _opt_bool(data: Mapping[str, Any], key: str, path: str) -> bool | None:
    return None if key not in data else _expect(data[key], bool, f"{path}.{key}", "true or false")


def lifecycle_from_aws_json(data: Mapping[str, Any], *, field: str = "Lifecycle",
                            rule_name: str | None = None) -> Lifecycle:
    """A validated Lifecycle. `-1` in both day fields is AWS's "keep forever": it reads as no days at all."""
    obj = _object(data, field, _LIFECYCLE_KEYS)
    cold = _opt_int(obj, "MoveToColdStorageAfterDays", field)
    delete = _opt_int(obj, "DeleteAfterDays", field)
    if cold == -1 and delete == -1:
        cold = delete = None
    lc = Lifecycle(cold, delete, _opt_bool(obj, "OptInToArchiveForSupportedResources", field))
    validate_lifecycle(lc, field, rule_name=rule_name)
    return lc


@contextmanager
def _naming_rule(name: str | None) -> Iterator[None]:
    """Put the rule's name into errors raised about its JSON (type errors, unknown keys, missing values)."""
    try:
        yield
    except (InvalidParameterValue, MissingParameterValue) as exc:
        prefix = f"{exc.field}: "
        if name is None or exc.field is None or not exc.message.startswith(prefix) or \
                exc.message.startswith(f"{prefix}rule "):
            raise
        raise type(exc)(f"{prefix}rule {name!r}: {exc.message.removeprefix(prefix)}", field=exc.field) from None


def _tags_from_json(value: object, path: str) -> dict[str, str]:
    obj = _expect(value, dict, path, "an object of string tags")
    for key, tag in obj.items():
        _expect(key, str, path, "an object with string keys")
        _expect(tag, str, f"{path}.{key}", "a string")
    return dict(obj)


def _rule_from_json(value: object, path: str) -> BackupRule:
    peek = value.get("RuleName") if isinstance(value, dict) else None
    with _naming_rule(peek if isinstance(peek, str) else None):
        return _rule_body_from_json(value, path)


def _rule_body_from_json(value: object, path: str) -> BackupRule:
    obj = _object(value, path, _RULE_KEYS, _RULE_OUTPUT_ONLY)
    name = _expect(_required(obj, "RuleName", path), str, f"{path}.RuleName", "a string")
    vault = _expect(_required(obj, "TargetBackupVaultName", path), str, f"{path}.TargetBackupVaultName",
                    "a string")
    copies = _expect(obj.get("CopyActions", []), list, f"{path}.CopyActions", "an array")
    copy_actions = []
    for i, item in enumerate(copies):
        copy_path = f"{path}.CopyActions[{i}]"
        copy = _object(item, copy_path, _COPY_KEYS)
        arn = _expect(_required(copy, "DestinationBackupVaultArn", copy_path), str,
                      f"{copy_path}.DestinationBackupVaultArn", "a string")
        lc = copy.get("Lifecycle")
        copy_actions.append(CopyAction(arn, None if lc is None else lifecycle_from_aws_json(
            lc, field=f"{copy_path}.Lifecycle", rule_name=name)))
    lifecycle = obj.get("Lifecycle")
    start = _opt_int(obj, "StartWindowMinutes", path)
    completion = _opt_int(obj, "CompletionWindowMinutes", path)
    return BackupRule(
        rule_name=name,
        target_backup_vault_name=vault,
        schedule_expression=_expect(obj.get("ScheduleExpression", DEFAULT_SCHEDULE_EXPRESSION), str,
                                    f"{path}.ScheduleExpression", "a string"),
        schedule_expression_timezone=_expect(obj.get("ScheduleExpressionTimezone", DEFAULT_TIMEZONE), str,
                                             f"{path}.ScheduleExpressionTimezone", "a string"),
        start_window_minutes=DEFAULT_START_WINDOW_MINUTES if start is None else start,
        completion_window_minutes=DEFAULT_COMPLETION_WINDOW_MINUTES if completion is None else completion,
        lifecycle=None if lifecycle is None else lifecycle_from_aws_json(lifecycle, field=f"{path}.Lifecycle",
                                                                         rule_name=name),
        recovery_point_tags=_tags_from_json(obj.get("RecoveryPointTags", {}), f"{path}.RecoveryPointTags"),
        copy_actions=tuple(copy_actions),
        enable_continuous_backup=bool(_opt_bool(obj, "EnableContinuousBackup", path)),
    )


def _setting_from_json(value: object, path: str) -> dict[str, Any]:
    obj = _object(value, path, _SETTING_KEYS)
    resource_type = _expect(_required(obj, "ResourceType", path), str, f"{path}.ResourceType", "a string")
    options = _expect(obj.get("BackupOptions", {}), dict, f"{path}.BackupOptions", "an object")
    for key, option in options.items():
        if not isinstance(key, str) or not _OPTION.fullmatch(key):
            raise InvalidParameterValue(f"{path}.BackupOptions: key {key!r} is not a valid option name",
                                        field=f"{path}.BackupOptions")
        _expect(option, str, f"{path}.BackupOptions.{key}", "a string")
    return {"ResourceType": resource_type, "BackupOptions": dict(options)}


def plan_from_aws_json(data: Mapping[str, Any]) -> BackupPlan:
    """A plan from AWS Backup JSON: the BackupPlan object, or `{"BackupPlan": {...}}` around it.

    Unknown keys are refused by name, so a typo never drops a setting silently; `RuleId` (GetBackupPlan output)
    is ignored so a fetched plan can be fed back.
    """
    if not isinstance(data, Mapping):
        raise InvalidParameterValue(f"BackupPlan: must be an object, got {_type_name(data)}", field="BackupPlan")
    body: Mapping[str, Any] = data
    if "BackupPlan" in data and "BackupPlanName" not in data:
        inner = _object(dict(data), "", frozenset({"BackupPlan"})).get("BackupPlan")
        if not isinstance(inner, Mapping):
            raise InvalidParameterValue(f"BackupPlan: must be an object, got {_type_name(inner)}",
                                        field="BackupPlan")
        body = inner
    obj = _object(dict(body), "", _PLAN_KEYS)
    name = _expect(_required(obj, "BackupPlanName", ""), str, "BackupPlanName", "a string")
    rules = _expect(_required(obj, "Rules", ""), list, "Rules", "an array")
    settings = _expect(obj.get("AdvancedBackupSettings", []), list, "AdvancedBackupSettings", "an array")
    return BackupPlan(
        backup_plan_name=name,
        rules=tuple(_rule_from_json(rule, f"Rules[{i}]") for i, rule in enumerate(rules)),
        advanced_backup_settings=tuple(_setting_from_json(s, f"AdvancedBackupSettings[{i}]")
                                       for i, s in enumerate(settings)),
    )


# ------------------------------------------------------------------------------------------------ JSON out


def lifecycle_to_aws_json(lc: Lifecycle) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if lc.move_to_cold_storage_after_days is not None:
        out["MoveToColdStorageAfterDays"] = lc.move_to_cold_storage_after_days
    if lc.delete_after_days is not None:
        out["DeleteAfterDays"] = lc.delete_after_days
    if lc.opt_in_to_archive_for_supported_resources is not None:
        out["OptInToArchiveForSupportedResources"] = lc.opt_in_to_archive_for_supported_resources
    return out


def _rule_to_json(rule: BackupRule) -> dict[str, Any]:
    out: dict[str, Any] = {
        "RuleName": rule.rule_name,
        "TargetBackupVaultName": rule.target_backup_vault_name,
        "ScheduleExpression": rule.schedule_expression,
        "StartWindowMinutes": rule.start_window_minutes,
        "CompletionWindowMinutes": rule.completion_window_minutes,
    }
    if rule.lifecycle is not None:
        out["Lifecycle"] = lifecycle_to_aws_json(rule.lifecycle)
    if rule.recovery_point_tags:
        out["RecoveryPointTags"] = dict(rule.recovery_point_tags)
    out["CopyActions"] = [
        {"DestinationBackupVaultArn": c.destination_backup_vault_arn}
        | ({} if c.lifecycle is None else {"Lifecycle": lifecycle_to_aws_json(c.lifecycle)})
        for c in rule.copy_actions
    ]
    out["EnableContinuousBackup"] = rule.enable_continuous_backup
    out["ScheduleExpressionTimezone"] = rule.schedule_expression_timezone
    return out


def plan_to_aws_json(plan: BackupPlan) -> dict[str, Any]:
    """The BackupPlan object as GetBackupPlan returns it: defaults written out, absent lifecycle left out."""
    out: dict[str, Any] = {
        "BackupPlanName": plan.backup_plan_name,
        "Rules": [_rule_to_json(rule) for rule in plan.rules],
    }
    if plan.advanced_backup_settings:
        out["AdvancedBackupSettings"] = [
            {"ResourceType": s["ResourceType"], "BackupOptions": dict(s.get("BackupOptions") or {})}
            for s in plan.advanced_backup_settings
        ]
    return out
