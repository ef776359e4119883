from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from snapkeep.domain.errors import InvalidParameterValue, LimitExceeded, MissingParameterValue
from snapkeep.domain.tags import (
    MAX_TAGS_PER_RESOURCE,
    TaggableKind,
    taggable_kind,
    tagged,
    untagged,
    validate_tags,
)

VAULT = "arn:aws:backup:us-east-1:123456789012:backup-vault:main"


@pytest.mark.parametrize(
    ("arn", "kind"),
    [
        (VAULT, TaggableKind.BACKUP_VAULT),
        ("arn:aws:backup:us-east-1:123456789012:backup-plan:4f1c", TaggableKind.BACKUP_PLAN),
        ("arn:aws:backup:us-east-1:123456789012:legal-hold:abc", TaggableKind.LEGAL_HOLD),
        ("arn:aws:ec2:us-east-1::image/ami-0123", TaggableKind.RECOVERY_POINT),
        ("arn:aws:backup:us-east-1:123456789012:recovery-point:1EB3B5E7", TaggableKind.RECOVERY_POINT),
    ],
)
def test_kinds_snapkeep_tags(arn: str, kind: TaggableKind) -> None:
    assert taggable_kind(arn) is kind


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:ec2:us-east-1:123456789012:instance/i-0abc",
        "arn:aws:backup:us-east-1:123456789012:report-plan:weekly",
        "arn:aws:s3:::bucket",
        "arn:aws:iam::123456789012:role/x",
    ],
)
def test_other_kinds_are_refused_naming_what_they_are(arn: str) -> None:
    with pytest.raises(InvalidParameterValue) as err:
        taggable_kind(arn)
    assert err.value.field == "ResourceArn"
    assert "only backup vaults, backup plans, recovery points and legal holds" in err.value.message


def test_not_an_arn_and_missing_arn() -> None:
    with pytest.raises(InvalidParameterValue, match="not a valid ARN"):
        taggable_kind("backup-vault:main")
    with pytest.raises(MissingParameterValue):
        taggable_kind("")


@pytest.mark.parametrize(
    "key",
    ["env", "Name", "a" * 128, "cost-center/team_1", "k.v:x=y+z@w", "環境", "with space", "Ümlaut"],
)
def test_good_keys(key: str) -> None:
    assert validate_tags({key: "v"}) == {key: "v"}


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("", "1 to 128"),
        ("a" * 129, "1 to 128"),
        ("aws:created", "reserved prefix"),
        ("AWS:Created", "reserved prefix"),
        ("Aws:x", "reserved prefix"),
        ("semi;colon", "';'"),
        ("quote'", "\"'\""),
        ("star*", "'*'"),
    ],
)
def test_bad_keys(key: str, why: str) -> None:
    with pytest.raises(InvalidParameterValue) as err:
        validate_tags({key: "v"}, field="BackupVaultTags")
    assert why in err.value.message
    assert err.value.field == "BackupVaultTags"


def test_values_may_be_empty_up_to_256_and_are_never_echoed() -> None:
    assert validate_tags({"k": ""}) == {"k": ""}
    assert validate_tags({"k": "v" * 256})["k"] == "v" * 256
    with pytest.raises(InvalidParameterValue) as long_value:
        validate_tags({"k": "secret" * 50})
    assert "at most 256" in long_value.value.message and "secret" not in long_value.value.message
    with pytest.raises(InvalidParameterValue) as bad_chars:
        validate_tags({"k": "top#secret"})
    assert "'k'" in bad_chars.value.message and "top#secret" not in bad_chars.value.message


def test_at_most_50_tags() -> None:
    fifty = {f"k{i}": "v" for i in range(MAX_TAGS_PER_RESOURCE)}
    assert len(validate_tags(fifty)) == 50
    with pytest.raises(LimitExceeded):
        validate_tags({**fifty, "one-more": "v"})


def test_tagged_overwrites_and_counts_only_new_keys_against_the_limit() -> None:
    current = {f"k{i}": "old" for i in range(MAX_TAGS_PER_RESOURCE)}
    assert tagged(current, {"k0": "new"})["k0"] == "new"
    with pytest.raises(LimitExceeded) as err:
        tagged(current, {"k0": "new", "extra": "x"})
    assert "51" in err.value.message
    with pytest.raises(MissingParameterValue):
        tagged({}, {})


def test_untagged_ignores_absent_keys_and_refuses_reserved_ones() -> None:
    assert untagged({"a": "1", "b": "2"}, ["a", "absent"]) == {"b": "2"}
    with pytest.raises(InvalidParameterValue) as err:
        untagged({"a": "1"}, ["aws:backup:source-resource"])
    assert err.value.field == "TagKeyList"
    with pytest.raises(MissingParameterValue):
        untagged({"a": "1"}, [])


_KEYS = st.text(alphabet=st.characters(categories=("L", "N")), min_size=1, max_size=20).filter(
    lambda k: not k.lower().startswith("aws:")
)


@given(st.dictionaries(_KEYS, st.text(alphabet="abc -_", max_size=10), max_size=20),
       st.dictionaries(_KEYS, st.text(alphabet="xyz", max_size=10), min_size=1, max_size=20))
def test_tag_then_untag_gives_back_what_was_there_minus_the_keys(
    current: dict[str, str], added: dict[str, str]
) -> None:
    after = tagged(current, added)
    assert all(after[k] == v for k, v in added.items())
    assert untagged(after, list(added)) == {k: v for k, v in current.items() if k not in added}
