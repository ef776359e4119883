"""Which resources a BackupSelection picks, exactly as AWS Backup does, and why.

``evaluate`` documents AWS Backup's selection rule and its sources; ``explain`` says why one resource is in or out;
``duplicates`` finds resources that several selections pick; the rest reads, writes and validates AWS's JSON.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from difflib import get_close_matches
from functools import lru_cache
from typing import Any

from snapkeep.domain.arn import Arn
from snapkeep.domain.errors import InvalidParameterValue, MissingParameterValue

CONDITION_KEY_PREFIX = "aws:ResourceTag/"
STRINGEQUALS = "STRINGEQUALS"
MAX_ARNS = 500
# "500 without wildcards, or 30 ARNs with wildcards": Snapkeep reads it as at most 30 wildcard patterns among at
# most 500 entries. The stricter reading (30 entries in all once any has a wildcard) is not confirmed anywhere.
MAX_WILDCARD_ARNS = 30

_SELECTION_NAME = re.compile(r"^[a-zA-Z0-9\-\_\.]{1,50}$")
_IAM_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/(?:[\w+=,.@-]+/)*(?P<name>[\w+=,.@-]{1,64})$")
_PREFIX_RE = re.compile(re.escape(CONDITION_KEY_PREFIX), re.IGNORECASE)

_SELECTION_KEYS = ("SelectionName", "IamRoleArn", "Resources", "ListOfTags", "NotResources", "Conditions")
# What may sit next to "BackupSelection": create-backup-selection --cli-input-json and get-backup-selection output.
_WRAPPER_KEYS = ("BackupSelection", "BackupPlanId", "CreatorRequestId", "SelectionId", "CreationDate")
_CONDITION_KEYS = ("ConditionType", "ConditionKey", "ConditionValue")
_PARAMETER_KEYS = ("ConditionKey", "ConditionValue")
_OPERATORS = ("StringEquals", "StringNotEquals", "StringLike", "StringNotLike")


def _bare_tag_key(key: str) -> str:
    """'aws:ResourceTag/env' (any case of the prefix) -> 'env'; 'env' -> 'env'."""
    return key[len(CONDITION_KEY_PREFIX):] if _PREFIX_RE.match(key) else key


def _canonical_condition_key(key: str) -> str:
    """Spell the prefix 'aws:ResourceTag/' exactly; the tag key after it keeps its case."""
    return CONDITION_KEY_PREFIX + key[len(CONDITION_KEY_PREFIX):] if _PREFIX_RE.match(key) else key


@dataclass(frozen=True)
class Condition:
    """One ListOfTags entry. `key` is the bare tag key: a leading 'aws:ResourceTag/' is removed on creation."""

    condition_type: str
    key: str
    value: str

    def __post_init__(self) -> None:
        if isinstance(self.key, str):
            object.__setattr__(self, "key", _bare_tag_key(self.key))


@dataclass(frozen=True)
class ConditionParameter:
    """One entry of a Conditions operator; `key` is 'aws:ResourceTag/<tag key>'."""

    key: str
    value: str

    def __post_init__(self) -> None:
        if isinstance(self.key, str):
            object.__setattr__(self, "key", _canonical_condition_key(self.key))

    @property
    def tag_key(self) -> str:
        return _bare_tag_key(self.key)


@dataclass(frozen=True)
class Conditions:
    string_equals: tuple[ConditionParameter, ...] = ()
    string_not_equals: tuple[ConditionParameter, ...] = ()
    string_like: tuple[ConditionParameter, ...] = ()
    string_not_like: tuple[ConditionParameter, ...] = ()

    def by_operator(self) -> tuple[tuple[str, tuple[ConditionParameter, ...]], ...]:
        """(AWS operator name, entries) in AWS's order."""
        return (("StringEquals", self.string_equals), ("StringNotEquals", self.string_not_equals),
                ("StringLike", self.string_like), ("StringNotLike", self.string_not_like))

    def is_empty(self) -> bool:
        return not (self.string_equals or self.string_not_equals or self.string_like or self.string_not_like)


@dataclass(frozen=True)
class BackupSelection:
    selection_name: str
    iam_role_arn: str
    resources: tuple[str, ...] = ()
    not_resources: tuple[str, ...] = ()
    list_of_tags: tuple[Condition, ...] = ()
    conditions: Conditions = field(default_factory=Conditions)


@dataclass(frozen=True)
class ProtectedResource:
    """A resource a selection may pick: resource_type is AWS Backup's ("EC2" for instances, "EBS" for volumes)."""

    arn: str
    resource_type: str
    tags: Mapping[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class SelectionMatch:
    resource_arn: str
    matched_by: tuple[str, ...]


@dataclass(frozen=True)
class SelectionVerdict:
    """Why a resource is or is not picked: the matching reasons, or the first rule that left it out."""

    resource_arn: str
    selected: bool
    reasons: tuple[str, ...]


# --- ARN patterns -------------------------------------------------------------------------------------------

_PARTITION = re.compile(r"aws[a-z-]*")
_SERVICE = re.compile(r"[a-z0-9-]+")
_REGION = re.compile(r"\*|[a-z0-9-]*")
_ACCOUNT = re.compile(r"\*|\d{12}|")
_PARTIAL = (re.compile(r"arn"), re.compile(r"[a-z-]*"), re.compile(r"[a-z0-9-]*"),
            re.compile(r"[a-z0-9-]*"), re.compile(r"\d{0,12}"), re.compile(r".*", re.DOTALL))
_COMPLETE = (re.compile(r"arn"), _PARTITION, _SERVICE, _REGION, _ACCOUNT, re.compile(r".+", re.DOTALL))


def has_wildcard(pattern: str) -> bool:
    return "*" in pattern


def arn_pattern_problem(pattern: str) -> str | None:
    """What is wrong with a Resources/NotResources entry, or None when AWS Backup would take it."""
    if pattern == "*":
        return None
    if any(char.isspace() for char in pattern):
        return "contains whitespace"
    if not pattern.startswith("arn:"):
        return "is neither an ARN nor '*'"
    if "*" not in pattern:
        try:
            Arn.parse(pattern)
        except InvalidParameterValue:
            return "is not a valid ARN (arn:partition:service:region:account:resource)"
        return None
    trailing = pattern.endswith("*")
    head = pattern[:-1] if trailing else pattern
    fields = head.split(":", 5)
    # With a trailing '*' the last field of `head` is a prefix still being typed; every other field is whole.
    complete = fields[:-1] if trailing else fields
    for index, text in enumerate(fields):
        whole_region_or_account = index in (3, 4) and text == "*" and index < len(complete)
        if "*" in text and not whole_region_or_account:
            return ("has a wildcard (*) that is neither at the end (a prefix pattern such as "
                    "arn:aws:ec2:*:*:volume/*) nor a whole region or account field; AWS Backup does not support it")
    bad = "is not a valid ARN pattern (arn:partition:service:region:account:resource)"
    if not trailing and len(fields) < 6:
        return bad
    if not all(_COMPLETE[index].fullmatch(text) for index, text in enumerate(complete)):
        return bad
    if trailing and not _PARTIAL[len(fields) - 1].fullmatch(fields[-1]):
        return bad
    return None


@lru_cache(maxsize=4096)
def _arn_regex(pattern: str) -> re.Pattern[str]:
    parts: list[str] = []
    last = len(pattern) - 1
    for index, char in enumerate(pattern):
        if char == "*":
            parts.append(".*" if index == last else "[^:]*")
        else:
            parts.append(re.escape(char))
    return re.compile("".join(parts), re.DOTALL)


def arn_pattern_matches(pattern: str, arn: str) -> bool:
    """Does `arn` match a Resources/NotResources entry (a trailing '*' matches any rest, a '*' field one field)."""
    return _arn_regex(pattern).fullmatch(arn) is not None


# --- tag conditions -----------------------------------------------------------------------------------------

@lru_cache(maxsize=4096)
def _like_regex(pattern: str) -> re.Pattern[str]:
    parts = [".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern]
    return re.compile("".join(parts), re.DOTALL)


def string_like(pattern: str, value: str) -> bool:
    """IAM StringLike: '*' any run of characters, '?' one character, case-sensitive, whole value."""
    return _like_regex(pattern).fullmatch(value) is not None


def _condition_holds(operator: str, parameter: ConditionParameter, tags: Mapping[str, str]) -> tuple[bool, str]:
    """(holds, reason) for one Conditions entry; negated operators hold on a resource without the tag."""
    tag = parameter.tag_key
    present = tag in tags
    actual = tags.get(tag)
    if operator == "StringEquals":
        holds = present and actual == parameter.value
    elif operator == "StringNotEquals":
        holds = not present or actual != parameter.value
    elif operator == "StringLike":
        holds = present and string_like(parameter.value, actual or "")
    else:
        holds = not present or not string_like(parameter.value, actual or "")
    text = f"Conditions.{operator}: {parameter.key}={parameter.value}"
    if holds:
        return True, text if present else f"{text} (tag absent)"
    return False, f"{text} not met ({'tag absent' if not present else f'value {actual!r}'})"


def explain(selection: BackupSelection, resource: ProtectedResource) -> SelectionVerdict:
    """Evaluate one resource and say why: every rule that picked it, or the rule that left it out."""
    for pattern in selection.not_resources:
        if arn_pattern_matches(pattern, resource.arn):
            return SelectionVerdict(resource.arn, False, (f"NotResources: {pattern}",))
    reasons = [f"Resources: {p}" for p in selection.resources if arn_pattern_matches(p, resource.arn)]
    reasons += [f"ListOfTags: {c.key}={c.value}" for c in selection.list_of_tags
                if c.condition_type.upper() == STRINGEQUALS and resource.tags.get(c.key) == c.value]
    if not reasons:
        return SelectionVerdict(resource.arn, False, ("no Resources pattern or ListOfTags condition matches",))
    for operator, parameters in selection.conditions.by_operator():
        for parameter in parameters:
            holds, reason = _condition_holds(operator, parameter, resource.tags)
            if not holds:
                return SelectionVerdict(resource.arn, False, (reason,))
            reasons.append(reason)
    return SelectionVerdict(resource.arn, True, tuple(reasons))


def evaluate(selection: BackupSelection, resources: Iterable[ProtectedResource]) -> list[SelectionMatch]:
    """The resources `selection` picks, in input order, each with the rules that picked it.

    AWS Backup's rule (API reference, ``BackupSelection``; developer guide, "Assign resources with AWS CLI"):

        selected  =  (any Resources pattern matches  OR  any ListOfTags condition matches)
                     AND every Conditions entry holds
                     AND no NotResources pattern matches

    * ``Resources`` entries are OR-ed ("the resources must match any of the ARNs"); ``ListOfTags`` entries are OR-ed
      ("match any of the conditions"), and the two lists are OR-ed with each other, so ``Resources: ["*"]`` together
      with a ListOfTags tag picks *everything*, tagged or not (terraform-provider-aws #41274, PR #49870;
      aws-cdk #18911; cloudposse/terraform-aws-backup #97). To narrow ARNs by tag use ``Conditions``.
    * ``Conditions`` entries are AND-ed, every entry of every operator ("the resources must match all
      conditions"), so two StringEquals on the same key with different values select nothing. The developer guide
      states "The Boolean arithmetic is similar to that in IAM policies".
    * ``Resources: ["*"]`` matches every resource passed in (the guide's "Select all resources in my account"; AWS
      limits that to supported, opted-in resource types, which the caller decides by what it passes).
    * AWS refuses a selection whose ``Resources`` and ``ListOfTags`` are both empty with InvalidParameterValueException
      "Invalid backup selection. Either 'ListOfTags' or 'Resources' section must be non-empty."
      (ministryofjustice/modernisation-platform-terraform-baselines PR #90 (2022) and #293 (2023);
      terraform-provider-aws PR #25436), even though the API reference still says an empty selection "attempts to select
      all supported and opted-in storage resources". ``validate_selection`` mirrors what the service does.

    Matching details:

    * Tag keys and values are case sensitive ("Condition operators are case sensitive"; "Be aware that tags are
      case-sensitive"). Only the ``aws:ResourceTag/`` prefix itself is read case-insensitively and rewritten to
      that spelling.
    * ``StringLike`` / ``StringNotLike``: ``*`` matches any run of characters (also empty) anywhere in the value
      (API reference: "prod*" or "*rod*" match "production"). ``?`` matches exactly one character, as in IAM's
      StringLike; AWS Backup's pages only mention ``*``, so ``?`` is IAM behaviour, not verified for AWS Backup.
    * A resource without the tag: StringEquals and StringLike are false; StringNotEquals and StringNotLike are
      *true*. This is IAM's rule ("If the policy condition requires that the key is not matched, such as
      StringNotLike or ArnNotLike, and the right key is not present, the condition is true", IAM User Guide,
      condition operators), and what makes the common ``StringNotEquals aws:ResourceTag/backup=false`` keep untagged
      resources.
    * ListOfTags keys may be written ``Department`` or ``aws:ResourceTag/Department``: AWS's own pages use both
      (API reference example ``"ConditionKey": "backup"``; CloudFormation example
      ``"aws:ResourceTag/CreatedByCryo"``). Both name the tag ``Department``; Snapkeep keeps the bare key.
      Conditions keys must carry the prefix (API reference, ConditionParameter: "Include the prefix
      aws:ResourceTag in your tags").
    * ARN patterns: botocore's model (1.44) says "the asterisk (*) must appear at the end of the ARN string (prefix
      pattern). For example, arn:aws:s3:::my-bucket-* is valid, but arn:aws:s3:::*-logs is not supported", while
      AWS's own examples also put ``*`` as a whole region or account field (``arn:aws:ec2:*:*:volume/*``). So ``*``
      is accepted at the end (matching any rest, ``/`` and ``:`` included, so ``arn:aws:ec2:*`` is every EC2
      resource) or as a whole region or account field (matching one field). ARNs compare case-sensitively;
      ``?`` is not a wildcard in ARNs.
    * Limits: at most 500 ARNs per list and at most 30 of them with wildcards (API reference: "The maximum number of
      ARNs is 500 without wildcards, or 30 ARNs with wildcards"; read leniently, see ``MAX_WILDCARD_ARNS``).

    The selection is not validated here (see ``validate_selection``): an empty Resources and ListOfTags picks
    nothing.
    """
    picked = []
    for resource in resources:
        verdict = explain(selection, resource)
        if verdict.selected:
            picked.append(SelectionMatch(resource.arn, verdict.reasons))
    return picked


def duplicates(picks: Mapping[str, Sequence[SelectionMatch]]) -> dict[str, list[str]]:
    """Resource ARN -> names of the selections that picked it, for resources picked by more than one.

    Two selections (of one plan or of several) picking the same resource back it up twice and pay twice
    (ministryofjustice/modernisation-platform #4466). Names keep the mapping's order; ARNs are sorted.
    """
    by_arn: dict[str, list[str]] = {}
    for name, matches in picks.items():
        for match in matches:
            names = by_arn.setdefault(match.resource_arn, [])
            if name not in names:
                names.append(name)
    return {arn: names for arn, names in sorted(by_arn.items()) if len(names) > 1}


# --- validation ---------------------------------------------------------------------------------------------

def _check_arn_list(values: tuple[str, ...], path: str) -> None:
    for index, value in enumerate(values):
        item = f"{path}[{index}]"
        if not isinstance(value, str) or not value:
            raise InvalidParameterValue(f"{item}: must be a non-empty ARN string", field=item)
        problem = arn_pattern_problem(value)
        if problem:
            raise InvalidParameterValue(f"{item}: '{value}' {problem}", field=item)
    if len(values) > MAX_ARNS:
        raise InvalidParameterValue(f"{path}: at most {MAX_ARNS} ARNs are allowed; got {len(values)}", field=path)
    wildcards = sum(1 for v in values if has_wildcard(v))
    if wildcards > MAX_WILDCARD_ARNS:
        raise InvalidParameterValue(
            f"{path}: at most {MAX_WILDCARD_ARNS} ARNs with wildcards are allowed; got {wildcards}", field=path)


def validate_selection(selection: BackupSelection, *, field: str = "BackupSelection") -> None:
    """Raise InvalidParameterValue / MissingParameterValue naming the first field that breaks AWS's rules."""
    name_path, role_path = f"{field}.SelectionName", f"{field}.IamRoleArn"
    if not selection.selection_name:
        raise MissingParameterValue(f"{name_path}: is required", field=name_path)
    if not isinstance(selection.selection_name, str) or not _SELECTION_NAME.fullmatch(selection.selection_name):
        raise InvalidParameterValue(
            f"{name_path}: '{selection.selection_name}' must be 1 to 50 letters, digits or '-_.' characters",
            field=name_path)
    if not selection.iam_role_arn:
        raise MissingParameterValue(f"{role_path}: is required", field=role_path)
    if not isinstance(selection.iam_role_arn, str) or not _IAM_ROLE_ARN.fullmatch(selection.iam_role_arn):
        raise InvalidParameterValue(
            f"{role_path}: '{selection.iam_role_arn}' is not an IAM role ARN "
            "(arn:aws:iam::123456789012:role/NAME)", field=role_path)
    _check_arn_list(selection.resources, f"{field}.Resources")
    _check_arn_list(selection.not_resources, f"{field}.NotResources")
    for index, condition in enumerate(selection.list_of_tags):
        item = f"{field}.ListOfTags[{index}]"
        if condition.condition_type != STRINGEQUALS:
            raise InvalidParameterValue(
                f"{item}.ConditionType: '{condition.condition_type}' is not supported; ListOfTags only supports "
                "STRINGEQUALS (use Conditions for StringNotEquals, StringLike or StringNotLike)",
                field=f"{item}.ConditionType")
        if not condition.key:
            raise MissingParameterValue(f"{item}.ConditionKey: a tag key is required", field=f"{item}.ConditionKey")
    for operator, parameters in selection.conditions.by_operator():
        for index, parameter in enumerate(parameters):
            item = f"{field}.Conditions.{operator}[{index}].ConditionKey"
            if not _PREFIX_RE.match(parameter.key):
                raise InvalidParameterValue(
                    f"{item}: '{parameter.key}' must start with '{CONDITION_KEY_PREFIX}' "
                    f"(for example '{CONDITION_KEY_PREFIX}{parameter.key or 'backup'}')", field=item)
            if not parameter.tag_key:
                raise MissingParameterValue(f"{item}: a tag key is required after '{CONDITION_KEY_PREFIX}'",
                                            field=item)
    if not selection.resources and not selection.list_of_tags:
        path = f"{field}.Resources"
        raise InvalidParameterValue(
            f"{path}: Invalid backup selection. Either 'ListOfTags' or 'Resources' section must be non-empty "
            "(use Resources [\"*\"] with Conditions to select every resource by tag)", field=path)


# --- AWS JSON -----------------------------------------------------------------------------------------------

def _refuse_unknown(data: Mapping[str, Any], allowed: Sequence[str], path: str) -> None:
    for key in data:
        if key not in allowed:
            hint = get_close_matches(str(key), allowed, n=1)
            also = f"; did you mean '{hint[0]}'?" if hint else f" (expected {', '.join(allowed)})"
            raise InvalidParameterValue(f"{path}.{key}: unknown key '{key}'{also}", field=f"{path}.{key}")


def _object(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidParameterValue(f"{path}: must be a JSON object", field=path)
    return value


def _list(value: Any, path: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise InvalidParameterValue(f"{path}: must be a list", field=path)
    return list(value)


def _string(value: Any, path: str, *, required: bool) -> str:
    if value is None:
        if required:
            raise MissingParameterValue(f"{path}: is required", field=path)
        return ""
    if not isinstance(value, str):
        raise InvalidParameterValue(f"{path}: must be a string", field=path)
    return value


def selection_from_aws_json(data: Mapping[str, Any], *, field: str = "BackupSelection") -> BackupSelection:
    """Read AWS's BackupSelection JSON, bare or inside {"BackupSelection": {...}}, and validate it.

    The wrapper may also hold BackupPlanId, CreatorRequestId, SelectionId and CreationDate (the shapes of
    create-backup-selection --cli-input-json and get-backup-selection); they are ignored here.
    """
    body = _object(data, field)
    if "BackupSelection" in body:
        _refuse_unknown(body, _WRAPPER_KEYS, field)
        body = _object(body["BackupSelection"], field)
    _refuse_unknown(body, _SELECTION_KEYS, field)

    list_of_tags = []
    for index, raw in enumerate(_list(body.get("ListOfTags"), f"{field}.ListOfTags")):
        item = f"{field}.ListOfTags[{index}]"
        entry = _object(raw, item)
        _refuse_unknown(entry, _CONDITION_KEYS, item)
        list_of_tags.append(Condition(
            _string(entry.get("ConditionType"), f"{item}.ConditionType", required=True),
            _string(entry.get("ConditionKey"), f"{item}.ConditionKey", required=True),
            _string(entry.get("ConditionValue"), f"{item}.ConditionValue", required=True)))

    conditions_path = f"{field}.Conditions"
    raw_conditions = _object({} if body.get("Conditions") is None else body["Conditions"], conditions_path)
    _refuse_unknown(raw_conditions, _OPERATORS, conditions_path)
    operators: dict[str, tuple[ConditionParameter, ...]] = {}
    for operator in _OPERATORS:
        entries = []
        for index, raw in enumerate(_list(raw_conditions.get(operator), f"{conditions_path}.{operator}")):
            item = f"{conditions_path}.{operator}[{index}]"
            entry = _object(raw, item)
            _refuse_unknown(entry, _PARAMETER_KEYS, item)
            entries.append(ConditionParameter(
                _string(entry.get("ConditionKey"), f"{item}.ConditionKey", required=True),
                _string(entry.get("ConditionValue"), f"{item}.ConditionValue", required=True)))
        operators[operator] = tuple(entries)

    selection = BackupSelection(
        selection_name=_string(body.get("SelectionName"), f"{field}.SelectionName", required=True),
        iam_role_arn=_string(body.get("IamRoleArn"), f"{field}.IamRoleArn", required=True),
        resources=tuple(_string(v, f"{field}.Resources[{i}]", required=True)
                        for i, v in enumerate(_list(body.get("Resources"), f"{field}.Resources"))),
        not_resources=tuple(_string(v, f"{field}.NotResources[{i}]", required=True)
                            for i, v in enumerate(_list(body.get("NotResources"), f"{field}.NotResources"))),
        list_of_tags=tuple(list_of_tags),
        conditions=Conditions(operators["StringEquals"], operators["StringNotEquals"],
                              operators["StringLike"], operators["StringNotLike"]),
    )
    validate_selection(selection, field=field)
    return selection


def selection_to_aws_json(selection: BackupSelection) -> dict[str, Any]:
    """AWS's BackupSelection shape with every list present, as GetBackupSelection returns it.

    ListOfTags keys come out bare ('Department'); selection_from_aws_json reads the result back unchanged.
    """
    return {
        "SelectionName": selection.selection_name,
        "IamRoleArn": selection.iam_role_arn,
        "Resources": list(selection.resources),
        "ListOfTags": [{"ConditionType": c.condition_type, "ConditionKey": c.key, "ConditionValue": c.value}
                       for c in selection.list_of_tags],
        "NotResources": list(selection.not_resources),
        "Conditions": {operator: [{"ConditionKey": p.key, "ConditionValue": p.value} for p in parameters]
                       for operator, parameters in selection.conditions.by_operator()},
    }
