"""A realistic seed fleet for the demo and the tests, made only through boto3 (and the harness) over HTTP.

Account 123456789012 (moto's default, credentials testing/testing) and account 222222222222, reached with
sts:AssumeRole into `arn:aws:iam::222222222222:role/SnapkeepLab`; regions us-east-1 and eu-west-1:

    123456789012 us-east-1  web-1, web-2   backup=daily env=prod   root 1 GiB
                            db-1           backup=daily env=prod   root 1 GiB + data 2 GiB + logs 1 GiB
    123456789012 eu-west-1  dev-1          backup=none  env=dev    root 1 GiB
    222222222222 eu-west-1  app-1          backup=daily env=prod   root 1 GiB + data 1 GiB encrypted (customer key)

Each (account, region) gets a VPC, subnet, security group and a base AMI whose root snapshot holds a small
"OS image"; every volume gets a few recognisable blocks (a fake filesystem header and files' bytes).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import boto3

from snapkeep.lab.blocks import GIB
from snapkeep.lab.harness import LabHarness

DEFAULT_ACCOUNT = "123456789012"
SECOND_ACCOUNT = "222222222222"
ROLE_ARN = f"arn:aws:iam::{SECOND_ACCOUNT}:role/SnapkeepLab"
REGIONS = ("us-east-1", "eu-west-1")
ROOT_DEVICE = "/dev/xvda"
BASE_IMAGE_NAME = "snapkeep-lab-base"
FS_MAGIC = b"SNAPKEEP-LABFS v1"
"""Starts block 0 of every seeded data volume (and the AMI's root image): recognisable in a hex dump."""

_CIDR = {"us-east-1": "10.10", "eu-west-1": "10.20"}


@dataclass(frozen=True)
class FleetInstance:
    name: str
    account_id: str
    region: str
    instance_id: str
    tags: dict[str, str]
    volumes: dict[str, str]
    """Device name -> volume id."""

    @property
    def root_volume_id(self) -> str:
        return self.volumes[ROOT_DEVICE]

    def to_dict(self) -> dict[str, Any]:
        return {
            "Name": self.name,
            "AccountId": self.account_id,
            "Region": self.region,
            "InstanceId": self.instance_id,
            "Tags": dict(self.tags),
            "Volumes": dict(self.volumes),
        }


@dataclass(frozen=True)
class FleetImage:
    account_id: str
    region: str
    image_id: str
    snapshot_id: str


@dataclass(frozen=True)
class Fleet:
    endpoint: str
    accounts: tuple[str, ...]
    regions: tuple[str, ...]
    role_arn: str
    """Role to assume for the second account."""
    kms_key_arn: str
    """Customer key of the second account in eu-west-1, encrypting `encrypted_volume_id`."""
    encrypted_volume_id: str
    instances: tuple[FleetInstance, ...]
    images: tuple[FleetImage, ...] = field(default=())

    def instance(self, name: str) -> FleetInstance:
        for instance in self.instances:
            if instance.name == name:
                return instance
        raise KeyError(f"no instance named {name!r} in the fleet")

    def account_roles(self) -> dict[str, str | None]:
        """Account id -> role to assume into it (None: the credentials' own account, no role)."""
        return {account: (None if account == DEFAULT_ACCOUNT else self.role_arn) for account in self.accounts}

    def volume_ids(self) -> list[str]:
        return [volume for instance in self.instances for volume in instance.volumes.values()]

    def to_dict(self) -> dict[str, Any]:
        return {
            "Endpoint": self.endpoint,
            "Accounts": list(self.accounts),
            "Regions": list(self.regions),
            "RoleArn": self.role_arn,
            "KmsKeyArn": self.kms_key_arn,
            "EncryptedVolumeId": self.encrypted_volume_id,
            "Images": [
                {"AccountId": i.account_id, "Region": i.region, "ImageId": i.image_id, "SnapshotId": i.snapshot_id}
                for i in self.images
            ],
            "Instances": [instance.to_dict() for instance in self.instances],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


@dataclass(frozen=True)
class _Spec:
    name: str
    account_id: str
    region: str
    tags: dict[str, str]
    data_volumes: tuple[tuple[str, int, bool], ...] = ()
    """(device, GiB, encrypted with the customer key)."""


_SPECS = (
    _Spec("web-1", DEFAULT_ACCOUNT, "us-east-1", {"backup": "daily", "env": "prod", "role": "web"}),
    _Spec("web-2", DEFAULT_ACCOUNT, "us-east-1", {"backup": "daily", "env": "prod", "role": "web"}),
    _Spec(
        "db-1",
        DEFAULT_ACCOUNT,
        "us-east-1",
        {"backup": "daily", "env": "prod", "role": "db"},
        (("/dev/sdf", 2, False), ("/dev/sdg", 1, False)),
    ),
    _Spec("dev-1", DEFAULT_ACCOUNT, "eu-west-1", {"backup": "none", "env": "dev", "role": "dev"}),
    _Spec(
        "app-1",
        SECOND_ACCOUNT,
        "eu-west-1",
        {"backup": "daily", "env": "prod", "role": "app"},
        (("/dev/sdf", 1, True),),
    ),
)


class _Account:
    def __init__(self, endpoint: str, credentials: dict[str, str]) -> None:
        self.endpoint = endpoint
        self.credentials = credentials

    def client(self, service: str, region: str) -> Any:
        return boto3.client(service, endpoint_url=self.endpoint, region_name=region, **self.credentials)


def _accounts(endpoint: str) -> dict[str, _Account]:
    default = _Account(endpoint, {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"})
    assumed = default.client("sts", "us-east-1").assume_role(RoleArn=ROLE_ARN, RoleSessionName="snapkeep-lab-seed")
    creds = assumed["Credentials"]
    second = _Account(
        endpoint,
        {
            "aws_access_key_id": creds["AccessKeyId"],
            "aws_secret_access_key": creds["SecretAccessKey"],
            "aws_session_token": creds["SessionToken"],
        },
    )
    return {DEFAULT_ACCOUNT: default, SECOND_ACCOUNT: second}


def _tags(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in tags.items()]


def _wait_completed(ec2: Any, snapshot_id: str, timeout: float = 3700.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        state = ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0]["State"]
        if state == "completed":
            return
        if state == "error" or time.monotonic() > deadline:
            raise RuntimeError(f"seed_fleet: snapshot {snapshot_id} is {state}")
        time.sleep(0.1)


def _filesystem_header(label: str, size_gib: int) -> bytes:
    header = FS_MAGIC + b"\0" + json.dumps({"label": label, "size_gib": size_gib, "block_size": 4096}).encode()
    return header.ljust(4096, b"\0")


def _network(ec2: Any, region: str) -> tuple[str, str]:
    prefix = _CIDR[region]
    vpc = ec2.create_vpc(
        CidrBlock=f"{prefix}.0.0/16",
        TagSpecifications=[{"ResourceType": "vpc", "Tags": _tags({"Name": f"snapkeep-lab-{region}"})}],
    )["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(
        VpcId=vpc,
        CidrBlock=f"{prefix}.1.0/24",
        AvailabilityZone=f"{region}a",
        TagSpecifications=[{"ResourceType": "subnet", "Tags": _tags({"Name": f"snapkeep-lab-{region}a"})}],
    )["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="snapkeep-lab", Description="Snapkeep lab fleet", VpcId=vpc)
    return subnet, group["GroupId"]


def _base_image(ec2: Any, harness: LabHarness, account_id: str, region: str) -> FleetImage:
    """An AMI whose root snapshot holds a tiny 'OS image', so restored roots carry recognisable data."""
    golden = ec2.create_volume(Size=1, AvailabilityZone=f"{region}a", VolumeType="gp3")["VolumeId"]
    harness.write_volume(golden, 0, _filesystem_header("root", 1))
    harness.write_volume(golden, 4096, b"/etc/os-release\nNAME=SnapkeepLabOS\nVERSION=1.0\n")
    harness.write_volume(golden, 8 * 1024 * 1024, b"\x7fELF" + b"/sbin/init".ljust(60, b"\0") * 64)
    snapshot = ec2.create_snapshot(
        VolumeId=golden,
        Description="snapkeep lab base image root",
        TagSpecifications=[{"ResourceType": "snapshot", "Tags": _tags({"Name": BASE_IMAGE_NAME})}],
    )["SnapshotId"]
    _wait_completed(ec2, snapshot)
    ec2.delete_volume(VolumeId=golden)
    image = ec2.register_image(
        Name=f"{BASE_IMAGE_NAME}-{region}",
        Description="Snapkeep lab base image",
        Architecture="x86_64",
        VirtualizationType="hvm",
        RootDeviceName=ROOT_DEVICE,
        BlockDeviceMappings=[
            {
                "DeviceName": ROOT_DEVICE,
                "Ebs": {"SnapshotId": snapshot, "VolumeSize": 1, "VolumeType": "gp3", "DeleteOnTermination": True},
            }
        ],
    )["ImageId"]
    return FleetImage(account_id, region, image, snapshot)


def _write_instance_data(harness: LabHarness, spec: _Spec, volumes: dict[str, str], sizes: dict[str, int]) -> None:
    root = volumes[ROOT_DEVICE]
    harness.write_volume(root, 1024 * 1024, f"/etc/hostname\n{spec.name}\n".encode())
    harness.write_volume(root, 64 * 1024 * 1024, f"/var/log/boot.log\n{spec.name} booted\n".encode() * 32)
    for device, volume_id in volumes.items():
        if device == ROOT_DEVICE:
            continue
        size = sizes[device]
        label = f"{spec.name}:{device}"
        harness.write_volume(volume_id, 0, _filesystem_header(label, size))
        page = "".join(f"row {i:06d} {spec.name} {device}\n" for i in range(2048)).encode()
        harness.write_volume(volume_id, 4 * 1024 * 1024, page)
        harness.write_volume(volume_id, 300 * 1024 * 1024, page[::-1])
        harness.write_volume(volume_id, size * GIB - 4096, f"END {label}".encode().ljust(4096, b"."))


def seed_fleet(endpoint: str) -> Fleet:
    """Create the fleet in the lab at `endpoint` (expected to be empty; call again after a reset)."""
    harness = LabHarness(endpoint)
    accounts = _accounts(endpoint)
    key_arn = ""
    encrypted_volume = ""
    images: list[FleetImage] = []
    instances: list[FleetInstance] = []
    places: dict[tuple[str, str], tuple[str, str, str]] = {}
    for spec in _SPECS:
        account = accounts[spec.account_id]
        ec2 = account.client("ec2", spec.region)
        place = (spec.account_id, spec.region)
        if place not in places:
            subnet, group = _network(ec2, spec.region)
            image = _base_image(ec2, harness, spec.account_id, spec.region)
            images.append(image)
            places[place] = (subnet, group, image.image_id)
        subnet, group, image_id = places[place]
        mappings = []
        for device, size, encrypted in spec.data_volumes:
            ebs: dict[str, Any] = {"VolumeSize": size, "VolumeType": "gp3", "DeleteOnTermination": True}
            if encrypted:
                if not key_arn:
                    kms = account.client("kms", spec.region)
                    key = kms.create_key(
                        Description="Snapkeep lab customer key for data volumes",
                        Tags=[{"TagKey": "Name", "TagValue": "snapkeep-lab-data"}],
                    )["KeyMetadata"]
                    kms.create_alias(AliasName="alias/snapkeep-lab-data", TargetKeyId=key["KeyId"])
                    key_arn = key["Arn"]
                ebs.update({"Encrypted": True, "KmsKeyId": key_arn})
            mappings.append({"DeviceName": device, "Ebs": ebs})
        tags = {"Name": spec.name, **spec.tags}
        launch: dict[str, Any] = {
            "ImageId": image_id,
            "InstanceType": "t3.micro",
            "MinCount": 1,
            "MaxCount": 1,
            "SubnetId": subnet,
            "SecurityGroupIds": [group],
            "TagSpecifications": [
                {"ResourceType": "instance", "Tags": _tags(tags)},
                {"ResourceType": "volume", "Tags": _tags({k: v for k, v in tags.items() if k != "Name"})},
            ],
        }
        if mappings:
            launch["BlockDeviceMappings"] = mappings
        instance_id = ec2.run_instances(**launch)["Instances"][0]["InstanceId"]
        described = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
        volumes = {m["DeviceName"]: m["Ebs"]["VolumeId"] for m in described["BlockDeviceMappings"]}
        sizes = {}
        for device, volume_id in volumes.items():
            ec2.create_tags(Resources=[volume_id], Tags=_tags({"Name": f"{spec.name}:{device}"}))
            sizes[device] = ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]["Size"]
        for device, _size, encrypted in spec.data_volumes:
            if encrypted:
                encrypted_volume = volumes[device]
        _write_instance_data(harness, spec, volumes, sizes)
        instances.append(FleetInstance(spec.name, spec.account_id, spec.region, instance_id, tags, volumes))
    return Fleet(
        endpoint=endpoint,
        accounts=(DEFAULT_ACCOUNT, SECOND_ACCOUNT),
        regions=REGIONS,
        role_arn=ROLE_ARN,
        kms_key_arn=key_arn,
        encrypted_volume_id=encrypted_volume,
        instances=tuple(instances),
        images=tuple(images),
    )
