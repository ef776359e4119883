"""StartRestoreJob's Metadata for EC2 and EBS: AWS Backup's keys, checked and normalised before a job is stored.

AWS Backup takes restore metadata as a map of strings. Snapkeep accepts the keys AWS Backup documents (so metadata
copied from GetRecoveryPointRestoreMetadata or written for AWS works unchanged), refuses any other key naming the
closest known ones (a wrong case silently ignored would restore with the backed-up value instead), and turns JSON
numbers, booleans, objects and lists into the strings AWS uses, so the engine reads one form only.

EC2 keys the engine applies: InstanceType, SubnetId, SecurityGroupIds, KeyName ("" = no key pair),
IamInstanceProfileName (a name, "UseBackedUpValue", or "null" = none), AvailabilityZone, Placement
(AvailabilityZone, GroupName, Tenancy), DisableApiTermination, InstanceInitiatedShutdownBehavior, RequireIMDSv2,
EbsOptimized, Monitoring. Accepted and ignored (see EC2_IGNORED_KEYS): VpcId (the subnet decides the VPC),
NetworkInterfaces (Snapkeep restores with SubnetId and SecurityGroupIds), CpuOptions, CreditSpecification,
HibernationOptions, CapacityReservationSpecification, BlockDeviceMappings (the recovery point's snapshots decide
them) and aws:backup:request-id.

EBS keys: availabilityZone (required), encrypted, iops, kmsKeyId, throughput, volumeType, volumeSize, and
Snapkeep's DeviceName / volumeId choosing which volume of an EC2 recovery point to restore. aws:backup:request-id is
accepted and ignored.

Both take Snapkeep's RestoreFrom (Snapshot or ImageBackup): where the data comes from. A point in cold storage has
no snapshots left, so it restores from its image backup; a warm one from its snapshots unless told otherwise. The
restore goes to the region of the availability zone asked for; only an image backup can be written to a region
other than the point's (its snapshots live in the point's region).
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Mapping

from snapkeep.domain.errors import InvalidParameterValue, MissingParameterValue

REQUEST_ID = "aws:backup:request-id"

VOLUME_TYPES = ("standard", "io1", "io2", "gp2", "gp3", "sc1", "st1")
IOPS_VOLUME_TYPES = ("io1", "io2", "gp3")
THROUGHPUT_VOLUME_TYPES = ("gp3",)
SHUTDOWN_BEHAVIORS = ("stop", "terminate")
TENANCIES = ("default", "dedicated", "host")
USE_BACKED_UP_VALUE = "UseBackedUpValue"
NO_PROFILE = "null"
RESTORE_FROM = "RestoreFrom"
FROM_SNAPSHOT = "Snapshot"
FROM_IMAGE_BACKUP = "ImageBackup"
RESTORE_SOURCES = (FROM_SNAPSHOT, FROM_IMAGE_BACKUP)

_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9-]+$")
_ZONE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+(-[a-z]+-\d+)?[a-z]$")
_ZONE_REGION = re.compile(r"^([a-z]{2}(?:-[a-z]+)+-\d+)")
_SUBNET = re.compile(r"^subnet-[0-9a-f]{8,17}$")
_GROUP = re.compile(r"^sg-[0-9a-f]{8,17}$")
_VPC = re.compile(r"^vpc-[0-9a-f]{8,17}$")
_VOLUME = re.compile(r"^vol-[0-9a-f]{8,17}$")
_DEVICE = re.compile(r"^(/dev/)?[a-z][a-z0-9]*$")
_PROFILE = re.compile(r"^[\w+=,.@-]{1,128}$")
_KMS_KEY = re.compile(
    r"^(arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(key|alias)/.+"
    r"|alias/[\w/+=,.@-]+"
    r"|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|mrk-[0-9a-f]{32})$"
)

_Rule = Callable[[str, object], str | None]
"""(key, raw value) -> the normalised string, or None when the value means "not given"; raises when invalid."""


def _field(key: str) -> str:
    return f"Metadata.{key}"


def _invalid(key: str, message: str) -> InvalidParameterValue:
    return InvalidParameterValue(f"{_field(key)}: {message}", field=_field(key))


def _scalar(key: str, raw: object) -> str | None:
    """A JSON string, number or boolean as AWS writes it; None and "" mean "not given"."""
    if raw is None:
        return None
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, int):
        return str(raw)
    if isinstance(raw, float):
        return str(int(raw)) if raw.is_integer() else repr(raw)
    if isinstance(raw, str):
        text = raw.strip()
        return text or None
    raise _invalid(key, f"must be a string, not a JSON {type(raw).__name__}")


def _matching(pattern: re.Pattern[str], what: str) -> _Rule:
    def rule(key: str, raw: object) -> str | None:
        value = _scalar(key, raw)
        if value is not None and not pattern.match(value):
            raise _invalid(key, f"'{value}' is not {what}")
        return value

    return rule


def _any_text(key: str, raw: object) -> str | None:
    value = _scalar(key, raw)
    if value is not None and len(value) > 1024:
        raise _invalid(key, "must be at most 1024 characters")
    return value


def _key_name(key: str, raw: object) -> str | None:
    """KeyName "" is kept: it asks for an instance without a key pair (absent means the backed-up key)."""
    if isinstance(raw, str) and not raw.strip():
        return ""
    value = _scalar(key, raw)
    if value is not None and len(value) > 255:
        raise _invalid(key, "must be at most 255 characters")
    return value


def _profile(key: str, raw: object) -> str | None:
    value = _scalar(key, raw)
    if value is None or value in (USE_BACKED_UP_VALUE, NO_PROFILE):
        return value
    if not _PROFILE.match(value):
        raise _invalid(
            key,
            f"'{value}' is not an instance profile name (1 to 128 of letters, digits and +=,.@_-), "
            f"'{USE_BACKED_UP_VALUE}' or '{NO_PROFILE}'",
        )
    return value


def _boolean(key: str, raw: object) -> str | None:
    value = _scalar(key, raw)
    if value is None:
        return None
    if value.lower() not in ("true", "false"):
        raise _invalid(key, f"must be 'true' or 'false', not '{value}'")
    return value.lower()


def _positive_int(key: str, raw: object) -> str | None:
    if isinstance(raw, bool):
        raise _invalid(key, "must be a positive integer, not a boolean")
    value = _scalar(key, raw)
    if value is None:
        return None
    if not value.isdigit() or int(value) < 1:
        raise _invalid(key, f"must be a positive integer, not '{value}'")
    return str(int(value))


def _one_of(choices: tuple[str, ...]) -> _Rule:
    def rule(key: str, raw: object) -> str | None:
        value = _scalar(key, raw)
        if value is not None and value not in choices:
            raise _invalid(key, f"'{value}' is not one of {', '.join(choices)}")
        return value

    return rule


def _json_value(key: str, raw: object, kind: type) -> object | None:
    """A JSON object or list given as a JSON value or as its string form (AWS's)."""
    if raw is None:
        return None
    if isinstance(raw, str):
        if not raw.strip():
            return None
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise _invalid(key, f"not valid JSON: {exc}") from exc
    if not isinstance(raw, kind):
        raise _invalid(key, f"must be a JSON {'object' if kind is dict else 'list'}")
    return raw


def _dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


def _json_object(key: str, raw: object) -> str | None:
    value = _json_value(key, raw, dict)
    return None if value is None else _dumps(value)


def _json_list(key: str, raw: object) -> str | None:
    value = _json_value(key, raw, list)
    return None if value is None else _dumps(value)


def _security_groups(key: str, raw: object) -> str | None:
    """A JSON list (as a value or a string) or a comma-separated string of sg- ids; normalised to a JSON list."""
    if raw is None:
        return None
    if isinstance(raw, list):
        items: list[object] = list(raw)
    elif isinstance(raw, str):
        text = raw.strip()
        if text.startswith("["):
            listed = _json_value(key, text, list)
            items = list(listed) if isinstance(listed, list) else []
        else:
            items = [part.strip() for part in text.split(",") if part.strip()]
    else:
        raise _invalid(key, "must be a JSON list of security group ids or a comma-separated string")
    groups: list[str] = []
    for item in items:
        if not isinstance(item, str) or not _GROUP.match(item.strip()):
            raise _invalid(key, f"'{item}' is not a security group id (sg-...)")
        if item.strip() not in groups:
            groups.append(item.strip())
    return _dumps(groups) if groups else None


def _placement(key: str, raw: object) -> str | None:
    value = _json_value(key, raw, dict)
    if value is None:
        return None
    assert isinstance(value, dict)
    zone = value.get("AvailabilityZone")
    if zone not in (None, "") and not (isinstance(zone, str) and _ZONE.match(zone)):
        raise _invalid(key, f"AvailabilityZone '{zone}' is not an availability zone (e.g. us-east-1a)")
    tenancy = value.get("Tenancy")
    if tenancy not in (None, "") and tenancy not in TENANCIES:
        raise _invalid(key, f"Tenancy '{tenancy}' is not one of {', '.join(TENANCIES)}")
    group = value.get("GroupName")
    if group is not None and not isinstance(group, str):
        raise _invalid(key, "GroupName must be a string")
    return _dumps(value)


def _monitoring(key: str, raw: object) -> str | None:
    """AWS writes {"State":"disabled"}; RunInstances takes {"Enabled":false}. Either is accepted."""
    value = _json_value(key, raw, dict)
    if value is None:
        return None
    assert isinstance(value, dict)
    state = value.get("State")
    enabled = value.get("Enabled")
    if state is not None and state not in ("enabled", "disabled", "pending", "disabling"):
        raise _invalid(key, f"State '{state}' is not enabled or disabled")
    if enabled is not None and not isinstance(enabled, bool):
        raise _invalid(key, "Enabled must be true or false")
    return _dumps(value)


_ZONE_RULE = _matching(_ZONE, "an availability zone (e.g. us-east-1a)")

EC2_RULES: dict[str, _Rule] = {
    "InstanceType": _matching(_INSTANCE_TYPE, "an instance type (family.size, e.g. t3.micro)"),
    "SubnetId": _matching(_SUBNET, "a subnet id (subnet-...)"),
    "SecurityGroupIds": _security_groups,
    "KeyName": _key_name,
    "IamInstanceProfileName": _profile,
    "AvailabilityZone": _ZONE_RULE,
    "Placement": _placement,
    "DisableApiTermination": _boolean,
    "InstanceInitiatedShutdownBehavior": _one_of(SHUTDOWN_BEHAVIORS),
    "RequireIMDSv2": _boolean,
    "EbsOptimized": _boolean,
    "Monitoring": _monitoring,
    "VpcId": _matching(_VPC, "a VPC id (vpc-...)"),
    "NetworkInterfaces": _json_list,
    "CpuOptions": _json_object,
    "CreditSpecification": _json_object,
    "HibernationOptions": _json_object,
    "CapacityReservationSpecification": _json_object,
    "BlockDeviceMappings": _json_list,
    RESTORE_FROM: _one_of(RESTORE_SOURCES),
    REQUEST_ID: _any_text,
}

EBS_RULES: dict[str, _Rule] = {
    "availabilityZone": _ZONE_RULE,
    "encrypted": _boolean,
    "iops": _positive_int,
    "kmsKeyId": _matching(_KMS_KEY, "a KMS key id, alias or ARN"),
    "throughput": _positive_int,
    "volumeType": _one_of(VOLUME_TYPES),
    "volumeSize": _positive_int,
    "DeviceName": _matching(_DEVICE, "a device name (e.g. /dev/xvdf)"),
    "volumeId": _matching(_VOLUME, "a volume id (vol-...)"),
    RESTORE_FROM: _one_of(RESTORE_SOURCES),
    REQUEST_ID: _any_text,
}

EC2_KEYS = frozenset(EC2_RULES)
EBS_KEYS = frozenset(EBS_RULES)
EC2_IGNORED_KEYS = frozenset(
    {
        "VpcId",
        "NetworkInterfaces",
        "CpuOptions",
        "CreditSpecification",
        "HibernationOptions",
        "CapacityReservationSpecification",
        "BlockDeviceMappings",
        REQUEST_ID,
    }
)
EBS_IGNORED_KEYS = frozenset({REQUEST_ID})


def close_matches(key: str, allowed: frozenset[str]) -> list[str]:
    """The allowed keys a mistyped one most likely meant: the same name in another case first, then look-alikes."""
    by_lower: dict[str, str] = {}
    for name in sorted(allowed):
        by_lower.setdefault(name.lower(), name)
    found = [by_lower[key.lower()]] if key.lower() in by_lower else []
    for near in difflib.get_close_matches(key.lower(), list(by_lower), n=3, cutoff=0.6):
        if by_lower[near] not in found:
            found.append(by_lower[near])
    return found[:3]


def validate_restore_metadata(resource_type: str, metadata: Mapping[str, object]) -> dict[str, str]:
    """Check StartRestoreJob's Metadata for `resource_type` (EC2 or EBS); return it with every value a string.

    Keys whose value is null or "" are left out (not given), except KeyName "" (no key pair).
    """
    if resource_type == "EC2":
        rules = EC2_RULES
    elif resource_type == "EBS":
        rules = EBS_RULES
    else:
        raise InvalidParameterValue(
            f"ResourceType: '{resource_type}' has no restore metadata rules (EC2 or EBS)", field="ResourceType"
        )
    allowed = frozenset(rules)
    out: dict[str, str] = {}
    for raw_key, raw in metadata.items():
        key = str(raw_key)
        rule = rules.get(key)
        if rule is None:
            raise _unknown_key(resource_type, key, allowed)
        value = rule(key, raw)
        if value is not None:
            out[key] = value
    if resource_type == "EBS":
        _check_volume(out)
    else:
        _check_instance(out)
    return out


def _unknown_key(resource_type: str, key: str, allowed: frozenset[str]) -> InvalidParameterValue:
    near = close_matches(key, allowed)
    if near:
        hint = "did you mean " + " or ".join(near) + "?"
    else:
        hint = f"{resource_type} restore metadata keys are " + ", ".join(sorted(allowed, key=str.lower))
    return _invalid(key, f"'{key}' is not a restore metadata key for {resource_type}; {hint}")


def _check_volume(meta: dict[str, str]) -> None:
    if "availabilityZone" not in meta:
        raise MissingParameterValue(
            "Metadata.availabilityZone is required to restore a volume", field=_field("availabilityZone")
        )
    volume_type = meta.get("volumeType")
    if volume_type is not None and "iops" in meta and volume_type not in IOPS_VOLUME_TYPES:
        raise _invalid("iops", f"can only be set for volume types {', '.join(IOPS_VOLUME_TYPES)}, not {volume_type}")
    if volume_type is not None and "throughput" in meta and volume_type not in THROUGHPUT_VOLUME_TYPES:
        raise _invalid("throughput", f"can only be set for volume type gp3, not {volume_type}")
    if meta.get("encrypted") == "false" and "kmsKeyId" in meta:
        raise _invalid("kmsKeyId", "a KMS key needs encrypted 'true' (or encrypted left out)")
    if "DeviceName" in meta and "volumeId" in meta:
        raise InvalidParameterValue(
            "Metadata.volumeId: give DeviceName or volumeId to choose the volume, not both", field=_field("volumeId")
        )


def _check_instance(meta: dict[str, str]) -> None:
    zone = meta.get("AvailabilityZone")
    placed = json.loads(meta["Placement"]).get("AvailabilityZone") if "Placement" in meta else None
    if zone and placed and zone != placed:
        raise _invalid("AvailabilityZone", f"'{zone}' contradicts Placement.AvailabilityZone '{placed}'")


def region_of_zone(zone: str) -> str:
    """us-west-2a -> us-west-2; us-west-2-lax-1a -> us-west-2 (a Local Zone belongs to its parent region)."""
    found = _ZONE_REGION.match(zone)
    if found is None:
        raise InvalidParameterValue(f"'{zone}' is not an availability zone (e.g. us-east-1a)", field="Metadata")
    return found.group(1)


def requested_zone(resource_type: str, meta: Mapping[str, str]) -> tuple[str, str] | None:
    """(metadata key, zone) of the availability zone the restore asks for, if any (validated metadata)."""
    if resource_type == "EBS":
        zone = meta.get("availabilityZone")
        return ("availabilityZone", zone) if zone else None
    if meta.get("AvailabilityZone"):
        return "AvailabilityZone", meta["AvailabilityZone"]
    placed = json.loads(meta["Placement"]).get("AvailabilityZone") if meta.get("Placement") else None
    return ("Placement", str(placed)) if placed else None


def restore_region(resource_type: str, meta: Mapping[str, str], point_region: str) -> str:
    """Where the restored resource goes: the region of the zone asked for, else the recovery point's."""
    zone = requested_zone(resource_type, meta)
    return region_of_zone(zone[1]) if zone else point_region


def restore_source(resource_type: str, meta: Mapping[str, str], *, point_region: str, storage_class: str,
                   has_image_backup: bool) -> str:
    """Snapshot or ImageBackup: what the restore reads, refused when that cannot work (no image backup, snapshots
    gone to cold storage, snapshots asked to cross regions)."""
    wanted = meta.get(RESTORE_FROM)
    cold = storage_class == "COLD"
    if wanted == FROM_IMAGE_BACKUP and not has_image_backup:
        raise _invalid(RESTORE_FROM, "the recovery point has no image backup; restore it from its snapshots "
                                     f"({RESTORE_FROM} {FROM_SNAPSHOT}, or leave {RESTORE_FROM} out)")
    if wanted == FROM_SNAPSHOT and cold:
        raise _invalid(RESTORE_FROM, "the recovery point is in cold storage: its snapshots were deleted and only "
                                     f"its image backup can restore it ({RESTORE_FROM} {FROM_IMAGE_BACKUP}, or "
                                     f"leave {RESTORE_FROM} out)")
    if cold and not has_image_backup:
        raise InvalidParameterValue("RecoveryPointArn: the recovery point is in cold storage and has no image "
                                    "backup to restore it from", field="RecoveryPointArn")
    source = wanted or (FROM_IMAGE_BACKUP if cold else FROM_SNAPSHOT)
    zone = requested_zone(resource_type, meta)
    if source == FROM_SNAPSHOT and zone and region_of_zone(zone[1]) != point_region:
        key, value = zone
        hint = (f"restore from the image backup ({RESTORE_FROM} {FROM_IMAGE_BACKUP}) to change region"
                if has_image_backup else "the recovery point has no image backup, which could change region")
        raise _invalid(key, f"'{value}' is in {region_of_zone(value)}, but the recovery point's snapshots are in "
                            f"{point_region} and cannot be restored to another region; {hint}")
    return source
