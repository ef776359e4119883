"""Tags on the resources Snapkeep owns, checked as AWS checks them, and which ARNs Snapkeep can tag at all.

AWS's tag rules (AWS Backup API reference, TagResource; "Tagging AWS resources", Tag naming limits and requirements):

- a key is 1 to 128 Unicode characters, a value 0 to 256;
- both may hold letters, numbers and white space of any script, and ``_ . : / = + - @`` (AWS's pattern
  ``^([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*)$``);
- keys starting with ``aws:`` (any case) are reserved for AWS and cannot be added, changed or removed;
- a resource carries at most 50 tags (TagResource answers LimitExceededException beyond that);
- untagging a key the resource does not carry is not an error.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from enum import StrEnum

from snapkeep.domain.arn import Arn
from snapkeep.domain.errors import InvalidParameterValue, LimitExceeded, MissingParameterValue

MAX_TAGS_PER_RESOURCE = 50
MAX_KEY_LENGTH = 128
MAX_VALUE_LENGTH = 256
RESERVED_PREFIX = "aws:"
_PUNCTUATION = frozenset("_.:/=+-@")
ALLOWED_CHARACTERS = "letters, numbers, white space and _ . : / = + - @"


class TaggableKind(StrEnum):
    """The kinds of resource TagResource, UntagResource and ListTags accept in Snapkeep."""

    BACKUP_VAULT = "backup vault"
    BACKUP_PLAN = "backup plan"
    RECOVERY_POINT = "recovery point"
    LEGAL_HOLD = "legal hold"


_BACKUP_KINDS = {
    "backup-vault": TaggableKind.BACKUP_VAULT,
    "backup-plan": TaggableKind.BACKUP_PLAN,
    "legal-hold": TaggableKind.LEGAL_HOLD,
    "recovery-point": TaggableKind.RECOVERY_POINT,  # AWS Backup's own form, for types it manages fully
}
# EC2 recovery points are AMIs (`arn:aws:ec2:REGION::image/ami-...`); EBS ones would be snapshots.
_EC2_KINDS = {"image": TaggableKind.RECOVERY_POINT, "snapshot": TaggableKind.RECOVERY_POINT}


def taggable_kind(resource_arn: str, *, field: str = "ResourceArn") -> TaggableKind:
    """What `resource_arn` names, or InvalidParameterValue when it is no ARN or not a kind Snapkeep tags."""
    if not resource_arn:
        raise MissingParameterValue(f"{field} is required", field=field)
    arn = Arn.parse(resource_arn, field=field)
    kinds = _BACKUP_KINDS if arn.service == "backup" else _EC2_KINDS if arn.service == "ec2" else {}
    kind = kinds.get(arn.resource_type)
    if kind is None:
        raise InvalidParameterValue(
            f"{field}: '{resource_arn}' is a {arn.service} {arn.resource_type}; only backup vaults, backup plans, "
            "recovery points and legal holds can be tagged",
            field=field,
        )
    return kind


def _bad_characters(text: str) -> list[str]:
    return sorted({ch for ch in text if unicodedata.category(ch)[0] not in "LZN" and ch not in _PUNCTUATION})


def _check_key(key: str, field: str) -> None:
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY_LENGTH:
        size = len(key) if isinstance(key, str) else "no"
        raise InvalidParameterValue(
            f"{field}: a tag key must be 1 to {MAX_KEY_LENGTH} characters, got one of {size} characters", field=field
        )
    if key.lower().startswith(RESERVED_PREFIX):
        raise InvalidParameterValue(
            f"{field}: tag key '{key}' starts with the reserved prefix '{RESERVED_PREFIX}' (any case)", field=field
        )
    bad = _bad_characters(key)
    if bad:
        raise InvalidParameterValue(
            f"{field}: tag key '{key}' contains {', '.join(map(repr, bad))}; allowed are {ALLOWED_CHARACTERS}",
            field=field,
        )


def validate_tags(tags: Mapping[str, str] | None, *, field: str = "Tags") -> dict[str, str]:
    """The tags as a plain dict, or InvalidParameterValue naming the first key or value that breaks a rule.

    Values are never echoed (the model marks tags sensitive); keys are, so the caller can find the culprit.
    """
    checked: dict[str, str] = {}
    for key, value in (tags or {}).items():
        _check_key(key, field)
        if not isinstance(value, str) or len(value) > MAX_VALUE_LENGTH:
            raise InvalidParameterValue(
                f"{field}: the value of tag '{key}' must be a string of at most {MAX_VALUE_LENGTH} characters",
                field=field,
            )
        if _bad_characters(value):
            raise InvalidParameterValue(
                f"{field}: the value of tag '{key}' contains characters that are not allowed; allowed are "
                f"{ALLOWED_CHARACTERS}",
                field=field,
            )
        checked[key] = value
    if len(checked) > MAX_TAGS_PER_RESOURCE:
        raise LimitExceeded(
            f"{field}: at most {MAX_TAGS_PER_RESOURCE} tags per resource, got {len(checked)}", field=field
        )
    return checked


def tagged(current: Mapping[str, str], added: Mapping[str, str] | None) -> dict[str, str]:
    """The tags after TagResource: `added` overwrites keys already there; at most 50 in all."""
    if not added:
        raise MissingParameterValue("Tags: at least one tag is required", field="Tags")
    new = validate_tags(added)
    result = {**current, **new}
    if len(result) > MAX_TAGS_PER_RESOURCE:
        raise LimitExceeded(
            f"Tags: a resource carries at most {MAX_TAGS_PER_RESOURCE} tags; it has {len(current)} and "
            f"{len(set(new) - set(current))} new keys would make {len(result)}",
            field="Tags",
        )
    return result


def untagged(current: Mapping[str, str], keys: Iterable[str] | None) -> dict[str, str]:
    """The tags after UntagResource; a key the resource does not carry is ignored, as AWS does."""
    removed = list(keys or [])
    if not removed:
        raise MissingParameterValue("TagKeyList: at least one tag key is required", field="TagKeyList")
    for key in removed:
        _check_key(key, "TagKeyList")
    gone = set(removed)
    return {k: v for k, v in current.items() if k not in gone}
