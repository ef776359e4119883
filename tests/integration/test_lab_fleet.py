"""The seed fleet: two accounts, two regions, tagged instances, an encrypted volume, data on every volume."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from snapkeep.lab.fleet import FS_MAGIC, ROLE_ARN, SECOND_ACCOUNT, seed_fleet

if TYPE_CHECKING:
    from tests.integration.conftest import LabKit


def _instances(ec2: object, **filters: str) -> dict[str, dict[str, object]]:
    answer = ec2.describe_instances(  # type: ignore[attr-defined]
        Filters=[{"Name": f"tag:{k}", "Values": [v]} for k, v in filters.items()]
    )
    found = {}
    for reservation in answer["Reservations"]:
        for instance in reservation["Instances"]:
            tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
            found[tags["Name"]] = instance
    return found


def test_seed_fleet_spans_two_accounts_and_two_regions_with_data(lab_kit: LabKit) -> None:
    fleet = seed_fleet(lab_kit.endpoint)

    assert fleet.accounts == ("123456789012", SECOND_ACCOUNT)
    assert set(fleet.regions) == {"us-east-1", "eu-west-1"}
    assert fleet.role_arn == ROLE_ARN
    assert fleet.account_roles() == {"123456789012": None, SECOND_ACCOUNT: ROLE_ARN}
    assert {(i.account_id, i.region) for i in fleet.instances} == {
        ("123456789012", "us-east-1"),
        ("123456789012", "eu-west-1"),
        (SECOND_ACCOUNT, "eu-west-1"),
    }

    home = _instances(lab_kit.clients("ec2"), backup="daily", env="prod")
    assert set(home) == {"web-1", "web-2", "db-1"}
    assert len(home["db-1"]["BlockDeviceMappings"]) == 3  # type: ignore[arg-type]
    dev = _instances(lab_kit.clients("ec2", "eu-west-1"), backup="none")
    assert set(dev) == {"dev-1"} and fleet.instance("dev-1").tags["env"] == "dev"
    other = _instances(lab_kit.clients("ec2", "eu-west-1", account=SECOND_ACCOUNT), backup="daily")
    assert set(other) == {"app-1"}
    assert other["app-1"]["InstanceId"] == fleet.instance("app-1").instance_id

    encrypted = lab_kit.clients("ec2", "eu-west-1", account=SECOND_ACCOUNT).describe_volumes(
        VolumeIds=[fleet.encrypted_volume_id]
    )["Volumes"][0]
    assert (encrypted["Encrypted"], encrypted["KmsKeyId"]) == (True, fleet.kms_key_arn)
    assert fleet.kms_key_arn.startswith(f"arn:aws:kms:eu-west-1:{SECOND_ACCOUNT}:key/")
    key = lab_kit.clients("kms", "eu-west-1", account=SECOND_ACCOUNT).describe_key(KeyId=fleet.kms_key_arn)
    assert key["KeyMetadata"]["KeyManager"] == "CUSTOMER"

    for instance in fleet.instances:
        root = instance.root_volume_id
        assert lab_kit.harness.read_volume(root, 0, len(FS_MAGIC)) == FS_MAGIC, "roots come from the base AMI"
        assert instance.name.encode() in lab_kit.harness.read_volume(root, 1024 * 1024, 64)
        for device, volume in instance.volumes.items():
            if device != "/dev/xvda":
                assert lab_kit.harness.read_volume(volume, 0, len(FS_MAGIC)) == FS_MAGIC
    sizes = {v["Size"] for v in lab_kit.ec2.describe_volumes()["Volumes"]}
    assert sizes <= {1, 2}

    described = json.loads(fleet.to_json())
    assert described["EncryptedVolumeId"] == fleet.encrypted_volume_id
    assert {i["Name"] for i in described["Instances"]} == {"web-1", "web-2", "db-1", "dev-1", "app-1"}
    assert len(fleet.volume_ids()) == 8
