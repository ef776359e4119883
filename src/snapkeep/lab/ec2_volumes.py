"""EC2 volumes and snapshots that carry data: the wrappers the lab puts around moto's EBS models.

- CreateVolume (and every volume RunInstances makes) starts blank or as a copy of its snapshot's blocks,
  inheriting Encrypted and KmsKeyId, and is refused when smaller than the snapshot or made from a snapshot
  that is not completed (IncorrectState, as AWS answers).
- CreateSnapshot and CreateSnapshots freeze the volume's blocks under the lab lock (point in time; all volumes
  of an instance at the same instant), keep the volume's KmsKeyId, and go pending -> completed over the
  configured delay.
- CopySnapshot carries the blocks (any region of the account), honours Encrypted/KmsKeyId.
- DeleteSnapshot drops the blocks and refuses a snapshot an AMI still maps (InvalidSnapshot.InUse).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from moto.core.responses import ActionResult
from moto.ec2.exceptions import InvalidParameterDependency, InvalidSnapshotInUse
from moto.ec2.models import ec2_backends
from moto.ec2.models.elastic_block_store import Snapshot
from moto.ec2.utils import random_snapshot_id

from snapkeep.lab.ebs_api import placeholder_volume
from snapkeep.lab.errors import ec2_error, snapshot_not_found
from snapkeep.lab.records import (
    ATTRIBUTE,
    LAB_LOCK,
    SnapshotData,
    VolumeData,
    clock,
    drop_data,
    set_snapshot_data,
    set_volume_data,
    snapshot_data,
    volume_data,
)
from snapkeep.lab.settings import SETTINGS

AMI_MAPPINGS = "_snapkeep_lab_mappings"
"""Attribute on moto's Ami: the BlockDeviceMappings the lab registered (list of AWS-shaped dicts)."""


def find_snapshot(backend: Any, snapshot_id: str) -> Any:
    snapshot = backend.snapshots.get(snapshot_id) if isinstance(snapshot_id, str) else None
    if snapshot is None:
        raise snapshot_not_found(str(snapshot_id))
    return snapshot


def usable_source(snapshot: Any) -> SnapshotData:
    """The snapshot's data, if a volume or a copy may be made from it now."""
    data = snapshot_data(snapshot)
    status = data.status()
    if status != "completed":
        raise ec2_error("IncorrectState", f"Snapshot is in invalid state - {status}")
    if getattr(snapshot, "storage_tier", "standard") == "archive":
        raise ec2_error(
            "IncorrectState",
            f"The snapshot '{snapshot.id}' is archived; restore it before using it.",
        )
    return data


def check_size(snapshot: Any, data: SnapshotData, size: object, code: str) -> None:
    if size is not None and int(size) < data.volume_size:  # type: ignore[call-overload]
        raise ec2_error(
            code,
            f"Volume of size {int(size)}GB is smaller than snapshot '{snapshot.id}', "  # type: ignore[call-overload]
            f"expect size >= {data.volume_size}GB",
        )


def freeze(backend: Any, snapshot: Any) -> None:
    """Give a just-made EC2 snapshot its volume's blocks as of now."""
    volume = snapshot.volume
    source = volume_data(volume)
    set_snapshot_data(
        snapshot,
        SnapshotData(
            source.blocks.copy(),
            lineage=source.lineage,
            volume_size=int(volume.size),
            delay=SETTINGS.snapshot_seconds,
            sealed_at=clock(),
        ),
    )
    if volume.encrypted and snapshot.kms_key_id is None:
        snapshot.kms_key_id = volume.kms_key_id


# --- model wrappers -------------------------------------------------------------------------------------


def wrap_create_volume(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def create_volume(
        self: Any,
        size: int,
        zone_name: str,
        snapshot_id: str | None = None,
        encrypted: bool = False,
        kms_key_id: str | None = None,
        volume_type: str | None = None,
        iops: int | None = None,
        throughput: int | None = None,
        multi_attach_enabled: bool | None = None,
    ) -> Any:
        with LAB_LOCK:
            source: SnapshotData | None = None
            if snapshot_id:
                snapshot = find_snapshot(self, snapshot_id)
                source = usable_source(snapshot)
                check_size(snapshot, source, size, "InvalidParameterValue")
                if size is None:
                    size = source.volume_size
                if snapshot.encrypted:
                    encrypted = True
                    kms_key_id = kms_key_id or snapshot.kms_key_id
            volume = original(
                self,
                size,
                zone_name,
                snapshot_id,
                encrypted,
                kms_key_id,
                volume_type,
                iops,
                throughput,
                multi_attach_enabled,
            )
            if source is not None:
                set_volume_data(volume, VolumeData(source.blocks.copy(), source.lineage))
            else:
                volume_data(volume)
        return volume

    return create_volume


def wrap_create_snapshot(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def create_snapshot(
        self: Any,
        volume_id: str,
        description: str,
        owner_id: str | None = None,
        from_ami: str | None = None,
    ) -> Any:
        with LAB_LOCK:
            snapshot = original(self, volume_id, description, owner_id, from_ami)
            freeze(self, snapshot)
        return snapshot

    return create_snapshot


def copy_snapshot(
    backend: Any,
    source_snapshot_id: str,
    source_region: str | None,
    description: str | None,
    kms_key_id: str | None,
    encrypted: bool = False,
) -> Any:
    """CopySnapshot as AWS does it: blocks carried, point-in-time, pending -> completed, VolumeId vol-ffffffff.

    An encrypted copy keeps the source key within a region; across regions (keys are regional) and for a
    newly encrypted copy it takes the destination region's default EBS key unless KmsKeyId names one.
    """
    region = source_region or backend.region_name
    source_backend = ec2_backends[backend.account_id][region]
    source = find_snapshot(source_backend, source_snapshot_id)
    if kms_key_id and not (encrypted or source.encrypted):
        raise InvalidParameterDependency("KmsKeyId", "Encrypted")
    with LAB_LOCK:
        data = usable_source(source)
        will_encrypt = bool(source.encrypted or encrypted or kms_key_id)
        key = kms_key_id
        if will_encrypt and not key:
            if source.encrypted and region == backend.region_name and source.kms_key_id:
                key = source.kms_key_id
            else:
                key = backend.default_kms_key_id or backend._create_default_encryption_key()
        snapshot = Snapshot(
            backend,
            random_snapshot_id(),
            placeholder_volume(backend, data.volume_size),
            description if description is not None else f"[Copied {source.id} from {region}]",
            encrypted=will_encrypt,
            kms_key_id=key,
        )
        set_snapshot_data(
            snapshot,
            SnapshotData(
                data.blocks.copy(),
                lineage=data.lineage,
                volume_size=data.volume_size,
                delay=SETTINGS.snapshot_seconds,
                sealed_at=clock(),
            ),
        )
        backend.snapshots[snapshot.id] = snapshot
    return snapshot


def wrap_copy_snapshot(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def copy_snapshot_model(
        self: Any,
        source_snapshot_id: str,
        source_region: str,
        description: str,
        kms_key_id: str | None,
    ) -> Any:
        return copy_snapshot(self, source_snapshot_id, source_region, description, kms_key_id)

    return copy_snapshot_model


def wrap_delete_snapshot(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def delete_snapshot(self: Any, snapshot_id: str) -> Any:
        for ami in list(self.amis.values()):
            for mapping in getattr(ami, AMI_MAPPINGS, None) or []:
                if mapping.get("Ebs", {}).get("SnapshotId") == snapshot_id:
                    raise InvalidSnapshotInUse(snapshot_id, ami.id)
        if snapshot_id not in self.snapshots:
            raise snapshot_not_found(snapshot_id)
        with LAB_LOCK:
            snapshot = original(self, snapshot_id)
            drop_data(snapshot)
        return snapshot

    return delete_snapshot


# --- Snapshot attributes --------------------------------------------------------------------------------


def _lab_data(snapshot: Any) -> SnapshotData | None:
    data = vars(snapshot).get(ATTRIBUTE)
    if data is None:
        # A snapshot is registered by moto a moment before the lab freezes it (both under LAB_LOCK):
        # wait for that instead of reporting moto's hard-coded `completed`.
        with LAB_LOCK:
            data = vars(snapshot).get(ATTRIBUTE)
    return data  # type: ignore[no-any-return]


def _get_status(self: Any) -> str:
    data = _lab_data(self)
    return data.status() if data is not None else str(vars(self).get("_moto_status", "completed"))


def _set_status(self: Any, value: str) -> None:
    vars(self)["_moto_status"] = value


def _get_progress(self: Any) -> str:
    data = _lab_data(self)
    return data.progress() if data is not None else "100%"


def _get_volume_size(self: Any) -> int:
    data = _lab_data(self)
    return data.volume_size if data is not None else int(self.volume.size)


SNAPSHOT_PROPERTIES: dict[str, property] = {
    "status": property(_get_status, _set_status, doc="pending -> completed over the lab's delay"),
    "state": property(_get_status, doc="CreateSnapshots answers State from here (moto has none)"),
    "progress": property(_get_progress, doc="'0%'..'100%' while pending"),
    "volume_size": property(_get_volume_size, doc="GiB as of the snapshot, not the volume's current size"),
}


# --- response handlers ----------------------------------------------------------------------------------


def create_snapshots_response(self: Any) -> ActionResult:
    """CreateSnapshots with ExcludeBootVolume, ExcludeDataVolumeIds and CopyTagsFromSource, crash-consistent."""
    spec = self._get_param("InstanceSpecification", {}) or {}
    description = self._get_param("Description", "")
    copy_tags = self._get_param("CopyTagsFromSource")
    tags = self._parse_tag_specification().get("snapshot", {})
    self.error_on_dryrun()
    backend = self.ec2_backend
    instance = backend.get_instance(spec.get("InstanceId"))
    exclude_boot = str(spec.get("ExcludeBootVolume", False)).lower() == "true"
    excluded = set(spec.get("ExcludeDataVolumeIds") or [])
    for volume_id in excluded:
        backend.get_volume(volume_id)
    volume_ids = []
    for device, mapping in instance.get_block_device_mapping:
        is_root = device == instance.root_device_name
        if (is_root and exclude_boot) or (not is_root and mapping.volume_id in excluded):
            continue
        volume_ids.append(mapping.volume_id)
    with LAB_LOCK:
        snapshots = [backend.create_snapshot(volume_id, description) for volume_id in volume_ids]
    for snapshot in snapshots:
        if copy_tags == "volume":
            snapshot.add_tags(
                {
                    tag["key"]: tag["value"]
                    for tag in snapshot.volume.get_tags()
                    if not str(tag["key"]).startswith("aws:")
                }
            )
        snapshot.add_tags(tags)
    return ActionResult({"Snapshots": snapshots})


def copy_snapshot_response(self: Any) -> ActionResult:
    """CopySnapshot that also reads Encrypted (moto drops it)."""
    tags = self._parse_tag_specification().get("snapshot", {})
    encrypted = self._get_param("Encrypted")
    self.error_on_dryrun()
    snapshot = copy_snapshot(
        self.ec2_backend,
        self._get_param("SourceSnapshotId"),
        self._get_param("SourceRegion"),
        self._get_param("Description"),
        self._get_param("KmsKeyId"),
        encrypted=str(encrypted).lower() == "true",
    )
    snapshot.add_tags(tags)
    return ActionResult({"SnapshotId": snapshot.id, "Tags": snapshot.tag_set})
