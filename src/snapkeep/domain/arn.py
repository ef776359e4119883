"""ARNs and identifiers in AWS's formats, so the AWS Backup API needs no translation layer."""

from __future__ import annotations

import re
from dataclasses import dataclass

from snapkeep.domain.errors import InvalidParameterValue

_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):(?P<service>[a-z0-9-]+):(?P<region>[a-z0-9-]*):"
    r"(?P<account>\d{12}|):(?P<resource>.+)$"
)


@dataclass(frozen=True)
class Arn:
    partition: str
    service: str
    region: str
    account: str
    resource: str

    @classmethod
    def parse(cls, text: str, *, field: str = "ResourceArn") -> Arn:
        match = _ARN.fullmatch(text)
        if not match:
            raise InvalidParameterValue(f"{field}: '{text}' is not a valid ARN", field=field)
        return cls(**match.groupdict())

    @property
    def resource_type(self) -> str:
        """The part before the first '/' or ':' of the resource, e.g. 'instance' or 'backup-vault'."""
        return re.split(r"[/:]", self.resource, maxsplit=1)[0]

    @property
    def resource_id(self) -> str:
        return re.split(r"[/:]", self.resource, maxsplit=1)[-1]

    def __str__(self) -> str:
        return f"arn:{self.partition}:{self.service}:{self.region}:{self.account}:{self.resource}"


def vault_arn(region: str, account: str, name: str) -> str:
    return f"arn:aws:backup:{region}:{account}:backup-vault:{name}"


def plan_arn(region: str, account: str, plan_id: str) -> str:
    return f"arn:aws:backup:{region}:{account}:backup-plan:{plan_id}"


def instance_arn(region: str, account: str, instance_id: str) -> str:
    return f"arn:aws:ec2:{region}:{account}:instance/{instance_id}"


def volume_arn(region: str, account: str, volume_id: str) -> str:
    return f"arn:aws:ec2:{region}:{account}:volume/{volume_id}"


def image_arn(region: str, image_id: str) -> str:
    """EC2 recovery points are AMIs; AWS leaves the account out of image ARNs."""
    return f"arn:aws:ec2:{region}::image/{image_id}"


def snapshot_arn(region: str, snapshot_id: str) -> str:
    """EBS recovery points are snapshots; AWS leaves the account out of snapshot ARNs."""
    return f"arn:aws:ec2:{region}::snapshot/{snapshot_id}"
