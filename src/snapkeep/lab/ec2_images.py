"""AMIs that describe recovery points, and instances launched from them with their data.

moto's RegisterImage keeps only Name and Description and makes a stray empty 15 GiB snapshot; CreateImage
points at one more empty snapshot. The lab removes the stray snapshot, honours BlockDeviceMappings and
RootDeviceName (RegisterImage) or snapshots the instance's volumes (CreateImage), and RunInstances creates
volumes from the image's mappings (merged with explicit ones, as AWS does) so they carry the snapshots' blocks.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from typing import Any

from moto.core.responses import ActionResult

from snapkeep.lab.ec2_volumes import AMI_MAPPINGS, check_size, find_snapshot, usable_source
from snapkeep.lab.errors import ec2_error
from snapkeep.lab.records import LAB_LOCK, snapshot_data

DEFAULT_VOLUME_TYPE = "standard"


def _drop_stray_snapshot(backend: Any, ami: Any) -> None:
    stray = getattr(ami, "ebs_snapshot", None)
    if stray is not None:
        backend.snapshots.pop(stray.id, None)
        ami.ebs_snapshot = None
    if getattr(ami, AMI_MAPPINGS, None) is None:
        setattr(ami, AMI_MAPPINGS, [])


def image_mappings(ami: Any) -> list[dict[str, Any]] | None:
    """The lab's mappings of an AMI, or None for an AMI the lab did not register (moto's defaults)."""
    mappings = getattr(ami, AMI_MAPPINGS, None)
    return None if mappings is None else copy.deepcopy(mappings)


def _get_block_device_mappings(original: property) -> property:
    def block_device_mappings(self: Any) -> list[dict[str, Any]]:
        mappings = image_mappings(self)
        return original.fget(self) if mappings is None else mappings  # type: ignore[misc]

    return property(block_device_mappings, doc="The mappings the AMI was registered with")


def _normalise_mappings(backend: Any, requested: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """RegisterImage's BlockDeviceMappings, validated against the region's snapshots, in AWS's shape."""
    mappings: list[dict[str, Any]] = []
    seen: set[str] = set()
    for number, raw in enumerate(requested):
        device = raw.get("DeviceName")
        if not device:
            raise ec2_error("MissingParameter", f"BlockDeviceMapping.{number + 1}.DeviceName is required.")
        if device in seen:
            raise ec2_error("InvalidBlockDeviceMapping", f"The device '{device}' is mapped more than once.")
        seen.add(device)
        if "NoDevice" in raw:
            mappings.append({"DeviceName": device, "NoDevice": ""})
            continue
        if raw.get("VirtualName") and not raw.get("Ebs"):
            mappings.append({"DeviceName": device, "VirtualName": raw["VirtualName"]})
            continue
        ebs = dict(raw.get("Ebs") or {})
        snapshot_id = ebs.get("SnapshotId")
        entry: dict[str, Any] = {"DeleteOnTermination": bool(ebs.get("DeleteOnTermination", True))}
        if snapshot_id:
            snapshot = find_snapshot(backend, snapshot_id)
            data = snapshot_data(snapshot)
            check_size(snapshot, data, ebs.get("VolumeSize"), "InvalidBlockDeviceMapping")
            entry["SnapshotId"] = snapshot.id
            entry["VolumeSize"] = int(ebs.get("VolumeSize") or data.volume_size)
            entry["Encrypted"] = bool(snapshot.encrypted)
            if snapshot.encrypted and snapshot.kms_key_id:
                entry["KmsKeyId"] = snapshot.kms_key_id
        elif ebs.get("VolumeSize"):
            entry["VolumeSize"] = int(ebs["VolumeSize"])
            entry["Encrypted"] = bool(ebs.get("Encrypted", False))
            if ebs.get("KmsKeyId"):
                entry["KmsKeyId"] = ebs["KmsKeyId"]
        else:
            raise ec2_error(
                "InvalidBlockDeviceMapping",
                f"The mapping for '{device}' needs Ebs.SnapshotId or Ebs.VolumeSize.",
            )
        entry["VolumeType"] = ebs.get("VolumeType") or DEFAULT_VOLUME_TYPE
        for key in ("Iops", "Throughput"):
            if ebs.get(key):
                entry[key] = int(ebs[key])
        mappings.append({"DeviceName": device, "Ebs": entry})
    return mappings


def register_image(
    backend: Any,
    name: str | None,
    description: str | None,
    mappings: list[dict[str, Any]],
    root_device_name: str | None = None,
    architecture: str | None = None,
    virtualization_type: str | None = None,
    boot_mode: str | None = None,
) -> Any:
    """RegisterImage from snapshots: the AMI maps exactly the given devices, nothing stray."""
    normalised = _normalise_mappings(backend, mappings)
    if root_device_name and normalised and not any(m["DeviceName"] == root_device_name for m in normalised):
        raise ec2_error(
            "InvalidBlockDeviceMapping",
            f"The root device '{root_device_name}' is not in the block device mappings.",
        )
    ami = backend.register_image(name, description)
    setattr(ami, AMI_MAPPINGS, normalised)
    if root_device_name:
        ami.root_device_name = root_device_name
    if normalised:
        ami.root_device_type = "ebs"
    ami.architecture = architecture or ami.architecture or "x86_64"
    ami.virtualization_type = virtualization_type or ami.virtualization_type or "hvm"
    if boot_mode:
        ami.boot_mode = boot_mode
    return ami


def register_image_response(self: Any) -> ActionResult:
    tags = self._parse_tag_specification().get("image", {})
    self.error_on_dryrun()
    ami = register_image(
        self.ec2_backend,
        self._get_param("Name"),
        self._get_param("Description", ""),
        self._get_param("BlockDeviceMappings", []) or [],
        root_device_name=self._get_param("RootDeviceName"),
        architecture=self._get_param("Architecture"),
        virtualization_type=self._get_param("VirtualizationType"),
        boot_mode=self._get_param("BootMode"),
    )
    if tags:
        ami.add_tags(tags)
    return ActionResult({"ImageId": ami.id})


def wrap_register_image(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def register(self: Any, name: str | None = None, description: str | None = None) -> Any:
        ami = original(self, name, description)
        _drop_stray_snapshot(self, ami)
        return ami

    return register


def wrap_create_image(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def create_image(
        self: Any,
        instance_id: str,
        name: str,
        description: str,
        tag_specifications: list[dict[str, Any]],
    ) -> Any:
        instance = self.get_instance(instance_id)
        snapshot_tags: dict[str, str] = {}
        other_specs = []
        for spec in tag_specifications or []:
            if spec.get("ResourceType") == "snapshot":
                snapshot_tags.update({t["Key"]: t["Value"] for t in spec.get("Tags", [])})
            else:
                other_specs.append(spec)
        with LAB_LOCK:
            ami = original(self, instance_id, name, description, other_specs)
            _drop_stray_snapshot(self, ami)
            mappings = []
            for device, block in instance.get_block_device_mapping:
                volume = self.get_volume(block.volume_id)
                snapshot = self.create_snapshot(volume.id, f"Created by CreateImage({instance_id}) for {ami.id}")
                if snapshot_tags:
                    snapshot.add_tags(snapshot_tags)
                ebs: dict[str, Any] = {
                    "SnapshotId": snapshot.id,
                    "VolumeSize": int(volume.size),
                    "DeleteOnTermination": bool(getattr(block, "delete_on_termination", True)),
                    "VolumeType": volume.volume_type,
                    "Encrypted": bool(volume.encrypted),
                }
                if volume.encrypted and volume.kms_key_id:
                    ebs["KmsKeyId"] = volume.kms_key_id
                mappings.append({"DeviceName": device, "Ebs": ebs})
            setattr(ami, AMI_MAPPINGS, mappings)
            ami.root_device_name = instance.root_device_name
            ami.root_device_type = "ebs"
        return ami

    return create_image


# --- RunInstances ---------------------------------------------------------------------------------------


def _as_template(mapping: dict[str, Any]) -> dict[str, Any]:
    """An AMI mapping in the shape moto's RunInstances parser produces."""
    ebs = mapping.get("Ebs") or {}
    return {
        "VirtualName": mapping.get("VirtualName"),
        "DeviceName": mapping["DeviceName"],
        "NoDevice": mapping.get("NoDevice"),
        "Ebs": {
            "SnapshotId": ebs.get("SnapshotId"),
            "VolumeSize": ebs.get("VolumeSize"),
            "DeleteOnTermination": ebs.get("DeleteOnTermination", True),
            "VolumeType": ebs.get("VolumeType"),
            "Iops": ebs.get("Iops"),
            "Encrypted": ebs.get("Encrypted", False),
            "KmsKeyId": ebs.get("KmsKeyId"),
        },
    }


def merge_mappings(image: list[dict[str, Any]], explicit: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """AWS's rule: the AMI's mappings, overridden per device by the request's; NoDevice removes one.

    An explicit mapping that names a SnapshotId replaces the AMI's entry; one that does not refines it
    (moto's parser turns absent booleans into False, so only True overrides DeleteOnTermination/Encrypted).
    """
    merged: dict[str, dict[str, Any]] = {}
    for mapping in image:
        if mapping.get("NoDevice") == "" or (mapping.get("VirtualName") and not mapping.get("Ebs")):
            continue
        merged[mapping["DeviceName"]] = _as_template(mapping)
    for mapping in explicit:
        device = mapping.get("DeviceName")
        if mapping.get("NoDevice") == "":
            merged.pop(device, None)  # type: ignore[arg-type]
            continue
        ebs = mapping.get("Ebs") or {}
        base = merged.get(device)  # type: ignore[arg-type]
        if base is None or ebs.get("SnapshotId"):
            merged[device] = mapping  # type: ignore[index]
            continue
        combined = dict(base["Ebs"])
        combined.update({k: v for k, v in ebs.items() if v is not None and v is not False})
        merged[device] = {**base, "Ebs": combined}  # type: ignore[index]
    return list(merged.values())


def _validate_launch_mappings(backend: Any, mappings: list[dict[str, Any]]) -> None:
    """Refuse a bad snapshot before moto creates half an instance."""
    for mapping in mappings:
        if mapping.get("NoDevice") == "":
            continue
        ebs = mapping.get("Ebs") or {}
        snapshot_id = ebs.get("SnapshotId")
        if snapshot_id:
            snapshot = find_snapshot(backend, snapshot_id)
            data = usable_source(snapshot)
            check_size(snapshot, data, ebs.get("VolumeSize"), "InvalidBlockDeviceMapping")


def wrap_run_instances(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def run_instances(
        self: Any,
        image_id: str,
        count: int,
        user_data: Any,
        security_group_names: list[str],
        **kwargs: Any,
    ) -> Any:
        ami = self.amis.get(image_id) if isinstance(image_id, str) else None
        image = image_mappings(ami) if ami is not None else None
        if image:
            kwargs["block_device_mappings"] = merge_mappings(image, kwargs.get("block_device_mappings") or [])
        _validate_launch_mappings(self, kwargs.get("block_device_mappings") or [])
        return original(self, image_id, count, user_data, security_group_names, **kwargs)

    return run_instances


def block_device_mappings_property(original: property) -> property:
    return _get_block_device_mappings(original)
