"""StartRestoreJob's Metadata: AWS Backup's EC2 and EBS keys, their values, and what is refused (and why)."""

from __future__ import annotations

import json
from collections.abc import Mapping

import pytest
from hypothesis import given
from hypothesis import strategies as st

from snapkeep.domain.errors import InvalidParameterValue, MissingParameterValue, SnapkeepError
from snapkeep.domain.restore_metadata import (
    EBS_IGNORED_KEYS,
    EBS_KEYS,
    EC2_IGNORED_KEYS,
    EC2_KEYS,
    VOLUME_TYPES,
    close_matches,
    validate_restore_metadata,
)

ZONE = {"availabilityZone": "us-east-1a"}


def ec2(**meta: object) -> dict[str, str]:
    return validate_restore_metadata("EC2", meta)


def ebs(meta: Mapping[str, object]) -> dict[str, str]:
    return validate_restore_metadata("EBS", {**ZONE, **meta})


def refused(resource_type: str, meta: Mapping[str, object],
            error: type[SnapkeepError] = InvalidParameterValue) -> SnapkeepError:
    with pytest.raises(error) as caught:
        validate_restore_metadata(resource_type, meta)
    return caught.value


# --- the allow-lists --------------------------------------------------------------------------------------------

def test_every_documented_ec2_key_is_accepted() -> None:
    documented = {
        "InstanceType", "SubnetId", "SecurityGroupIds", "KeyName", "IamInstanceProfileName", "AvailabilityZone",
        "Placement", "DisableApiTermination", "InstanceInitiatedShutdownBehavior", "RequireIMDSv2", "EbsOptimized",
        "aws:backup:request-id", "VpcId", "CpuOptions", "CreditSpecification", "Monitoring", "NetworkInterfaces",
        "HibernationOptions", "CapacityReservationSpecification",
    }
    assert documented <= EC2_KEYS
    assert EC2_IGNORED_KEYS <= EC2_KEYS
    assert "InstanceType" not in EC2_IGNORED_KEYS


def test_every_documented_ebs_key_is_accepted() -> None:
    documented = {"availabilityZone", "encrypted", "iops", "kmsKeyId", "throughput", "volumeType", "volumeSize",
                  "aws:backup:request-id", "DeviceName", "volumeId"}
    assert documented <= EBS_KEYS
    assert {"aws:backup:request-id"} == EBS_IGNORED_KEYS


def test_the_sample_of_get_recovery_point_restore_metadata_passes_unchanged() -> None:
    sample = {
        "CapacityReservationSpecification": '{"CapacityReservationPreference":"open"}',
        "CpuOptions": '{"CoreCount":1,"ThreadsPerCore":2}',
        "CreditSpecification": '{"CpuCredits":"unlimited"}',
        "DisableApiTermination": "false",
        "EbsOptimized": "true",
        "HibernationOptions": '{"Configured":false}',
        "InstanceInitiatedShutdownBehavior": "stop",
        "InstanceType": "t3.micro",
        "KeyName": "my-key",
        "Monitoring": '{"State":"disabled"}',
        "NetworkInterfaces": '[{"DeviceIndex":0,"SubnetId":"subnet-0123456789abcdef0"}]',
        "Placement": '{"AvailabilityZone":"us-west-2a","GroupName":"","Tenancy":"default"}',
        "RequireIMDSv2": "false",
        "SecurityGroupIds": '["sg-0123456789abcdef0"]',
        "SubnetId": "subnet-0123456789abcdef0",
        "VpcId": "vpc-0123456789abcdef0",
        "aws:backup:request-id": "8f5b2b1e-6a3f-4c2e-9f00-2d1f0c9e7a11",
    }
    assert validate_restore_metadata("EC2", sample) == sample


def test_empty_metadata_is_fine_for_ec2() -> None:
    assert ec2() == {}


def test_unknown_resource_type() -> None:
    err = refused("RDS", {})
    assert err.field == "ResourceType"


# --- unknown keys -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("resource_type", "key", "meant"), [
    ("EC2", "instanceType", "InstanceType"),
    ("EC2", "subnetId", "SubnetId"),
    ("EC2", "SecurityGroupId", "SecurityGroupIds"),
    ("EC2", "requireImdsV2", "RequireIMDSv2"),
    ("EC2", "iamInstanceProfileName", "IamInstanceProfileName"),
    ("EBS", "AvailabilityZone", "availabilityZone"),
    ("EBS", "VolumeSize", "volumeSize"),
    ("EBS", "volumetype", "volumeType"),
    ("EBS", "deviceName", "DeviceName"),
])
def test_unknown_key_names_the_key_and_the_close_match(resource_type: str, key: str, meant: str) -> None:
    meta: dict[str, object] = {**(ZONE if resource_type == "EBS" and key != "AvailabilityZone" else {}), key: "x"}
    err = refused(resource_type, meta)
    assert isinstance(err, InvalidParameterValue)
    assert f"'{key}'" in err.message and f"did you mean {meant}" in err.message
    assert err.field == f"Metadata.{key}"


def test_unknown_key_with_no_look_alike_lists_the_keys() -> None:
    err = refused("EBS", {**ZONE, "zzzzzz": "1"})
    assert isinstance(err, InvalidParameterValue)
    assert "availabilityZone" in err.message and "volumeType" in err.message


def test_an_ec2_key_is_unknown_for_ebs_and_the_reverse() -> None:
    refused("EBS", {**ZONE, "InstanceType": "t3.micro"})
    refused("EC2", {"volumeSize": "10"})


def test_close_matches_prefers_the_same_name_in_another_case() -> None:
    assert close_matches("INSTANCETYPE", EC2_KEYS)[0] == "InstanceType"
    assert close_matches("qqqq", EC2_KEYS) == []


# --- values: strings, JSON values turned into AWS's strings -----------------------------------------------------

def test_json_values_become_aws_strings() -> None:
    out = validate_restore_metadata("EBS", {**ZONE, "volumeSize": 20, "iops": 4000.0, "throughput": 250,
                                            "encrypted": True, "volumeType": "gp3"})
    assert out == {**ZONE, "volumeSize": "20", "iops": "4000", "throughput": "250", "encrypted": "true",
                   "volumeType": "gp3"}
    assert ec2(DisableApiTermination=False, EbsOptimized=True) == {"DisableApiTermination": "false",
                                                                   "EbsOptimized": "true"}
    assert ec2(Placement={"AvailabilityZone": "us-east-1b", "Tenancy": "default"}) == {
        "Placement": '{"AvailabilityZone":"us-east-1b","Tenancy":"default"}'}
    assert ec2(Monitoring={"Enabled": True}) == {"Monitoring": '{"Enabled":true}'}


def test_null_and_empty_values_mean_not_given_but_an_empty_key_name_means_no_key_pair() -> None:
    assert ec2(InstanceType=None, SubnetId="", SecurityGroupIds="[]", KeyName="") == {"KeyName": ""}
    assert ec2(KeyName="  my key ") == {"KeyName": "my key"}


def test_values_are_stripped() -> None:
    assert ec2(InstanceType=" t3.micro ") == {"InstanceType": "t3.micro"}


@pytest.mark.parametrize("raw", [["t3"], {"a": 1}, b"t3.micro"])
def test_a_string_key_refuses_a_json_object_or_list(raw: object) -> None:
    err = refused("EC2", {"InstanceType": raw})
    assert "must be a string" in str(err)


# --- EC2 rules --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["t3.micro", "c5.large", "m5d.metal", "u-6tb1.metal", "c7gn.16xlarge",
                                   "mac2-m2pro.metal"])
def test_instance_types(value: str) -> None:
    assert ec2(InstanceType=value) == {"InstanceType": value}


@pytest.mark.parametrize("value", ["t3", "T3.micro", "t3.", ".micro", "t3 micro", "t3.micro.x", "3t.micro"])
def test_bad_instance_types(value: str) -> None:
    err = refused("EC2", {"InstanceType": value})
    assert isinstance(err, InvalidParameterValue)
    assert err.field == "Metadata.InstanceType" and "family.size" in err.message


@pytest.mark.parametrize("value", ["subnet-12345678", "subnet-0123456789abcdef0"])
def test_subnets(value: str) -> None:
    assert ec2(SubnetId=value) == {"SubnetId": value}


@pytest.mark.parametrize("value", ["sub-12345678", "subnet-", "subnet-XYZ12345", "12345678", "subnet-123"])
def test_bad_subnets(value: str) -> None:
    err = refused("EC2", {"SubnetId": value})
    assert isinstance(err, InvalidParameterValue) and err.field == "Metadata.SubnetId"


@pytest.mark.parametrize("raw", [
    '["sg-12345678", "sg-0123456789abcdef0"]',
    ["sg-12345678", "sg-0123456789abcdef0"],
    "sg-12345678, sg-0123456789abcdef0",
    "sg-12345678,sg-0123456789abcdef0,sg-12345678",
])
def test_security_groups_in_every_form_become_a_json_list(raw: object) -> None:
    out = ec2(SecurityGroupIds=raw)
    assert json.loads(out["SecurityGroupIds"]) == ["sg-12345678", "sg-0123456789abcdef0"]


@pytest.mark.parametrize("raw", ['["sg-12345678", "default"]', "sg-12345678,web", '["sg-1"', '{"a": 1}', 7,
                                 [1, 2]])
def test_bad_security_groups(raw: object) -> None:
    err = refused("EC2", {"SecurityGroupIds": raw})
    assert isinstance(err, InvalidParameterValue) and err.field == "Metadata.SecurityGroupIds"


@pytest.mark.parametrize("key", ["DisableApiTermination", "RequireIMDSv2", "EbsOptimized"])
def test_ec2_booleans(key: str) -> None:
    assert ec2(**{key: "TRUE"}) == {key: "true"}
    assert ec2(**{key: "false"}) == {key: "false"}
    err = refused("EC2", {key: "yes"})
    assert isinstance(err, InvalidParameterValue) and "'true' or 'false'" in err.message
    assert err.field == f"Metadata.{key}"


def test_shutdown_behavior() -> None:
    assert ec2(InstanceInitiatedShutdownBehavior="terminate") == {"InstanceInitiatedShutdownBehavior": "terminate"}
    refused("EC2", {"InstanceInitiatedShutdownBehavior": "hibernate"})


@pytest.mark.parametrize("value", ["my-profile", "UseBackedUpValue", "null", "role+name=x,y.z@w"])
def test_instance_profiles(value: str) -> None:
    assert ec2(IamInstanceProfileName=value) == {"IamInstanceProfileName": value}


@pytest.mark.parametrize("value", ["has space", "x" * 129, "arn:aws:iam::1:instance-profile/x"])
def test_bad_instance_profiles(value: str) -> None:
    refused("EC2", {"IamInstanceProfileName": value})


def test_key_name_length() -> None:
    refused("EC2", {"KeyName": "k" * 256})


@pytest.mark.parametrize("value", ["us-east-1a", "eu-central-2c", "us-gov-west-1b", "ap-northeast-3d",
                                   "us-east-1-bos-1a"])
def test_availability_zones(value: str) -> None:
    assert ec2(AvailabilityZone=value) == {"AvailabilityZone": value}
    assert ebs({"availabilityZone": value})["availabilityZone"] == value


@pytest.mark.parametrize("value", ["us-east-1", "useast1a", "US-EAST-1A", "a", "us-east-a"])
def test_bad_availability_zones(value: str) -> None:
    err = refused("EC2", {"AvailabilityZone": value})
    assert isinstance(err, InvalidParameterValue) and err.field == "Metadata.AvailabilityZone"
    err = refused("EBS", {"availabilityZone": value})
    assert isinstance(err, InvalidParameterValue) and err.field == "Metadata.availabilityZone"


def test_placement_rules() -> None:
    refused("EC2", {"Placement": '{"AvailabilityZone": "nowhere"}'})
    refused("EC2", {"Placement": '{"Tenancy": "shared"}'})
    refused("EC2", {"Placement": '{"GroupName": 3}'})
    refused("EC2", {"Placement": '["us-east-1a"]'})
    refused("EC2", {"Placement": "{not json"})
    assert ec2(Placement='{"Tenancy": "dedicated"}') == {"Placement": '{"Tenancy":"dedicated"}'}


def test_availability_zone_must_agree_with_placement() -> None:
    err = refused("EC2", {"AvailabilityZone": "us-east-1a", "Placement": {"AvailabilityZone": "us-east-1b"}})
    assert "contradicts" in str(err)
    assert ec2(AvailabilityZone="us-east-1a", Placement={"AvailabilityZone": "us-east-1a"})


def test_monitoring_rules() -> None:
    assert ec2(Monitoring='{"State":"enabled"}') == {"Monitoring": '{"State":"enabled"}'}
    refused("EC2", {"Monitoring": '{"State":"on"}'})
    refused("EC2", {"Monitoring": '{"Enabled":"yes"}'})
    refused("EC2", {"Monitoring": "true"})


@pytest.mark.parametrize(("key", "good", "bad"), [
    ("VpcId", "vpc-0123456789abcdef0", "vpc-x"),
    ("NetworkInterfaces", '[{"DeviceIndex":0}]', '{"DeviceIndex":0}'),
    ("CpuOptions", '{"CoreCount":2}', "[2]"),
    ("CreditSpecification", {"CpuCredits": "standard"}, "standard"),
    ("HibernationOptions", '{"Configured":true}', "true"),
    ("CapacityReservationSpecification", '{"CapacityReservationPreference":"none"}', "none"),
    ("BlockDeviceMappings", "[]", "{}"),
])
def test_accepted_but_ignored_keys_are_still_checked(key: str, good: object, bad: object) -> None:
    assert key in EC2_IGNORED_KEYS
    assert key in ec2(**{key: good})
    refused("EC2", {key: bad})


def test_request_id_is_any_text_for_both() -> None:
    assert ec2(**{"aws:backup:request-id": "abc"}) == {"aws:backup:request-id": "abc"}
    assert ebs({"aws:backup:request-id": "abc"})["aws:backup:request-id"] == "abc"
    refused("EC2", {"aws:backup:request-id": "x" * 1025})


# --- EBS rules --------------------------------------------------------------------------------------------------

def test_ebs_requires_an_availability_zone() -> None:
    for meta in ({}, {"availabilityZone": ""}, {"availabilityZone": None}, {"volumeType": "gp3"}):
        err = refused("EBS", meta, MissingParameterValue)
        assert isinstance(err, MissingParameterValue) and err.field == "Metadata.availabilityZone"


@pytest.mark.parametrize("key", ["volumeSize", "iops", "throughput"])
@pytest.mark.parametrize("bad", ["0", "-5", "1.5", "ten", 0, -1, 2.5, True, "1e3"])
def test_sizes_are_positive_integers(key: str, bad: object) -> None:
    err = refused("EBS", {**ZONE, "volumeType": "gp3", key: bad})
    assert isinstance(err, InvalidParameterValue) and err.field == f"Metadata.{key}"
    assert "positive integer" in err.message


@given(st.integers(min_value=1, max_value=10**6), st.sampled_from([str, int]))
def test_any_positive_integer_is_a_size(size: int, form: type) -> None:
    assert ebs({"volumeSize": form(size)})["volumeSize"] == str(size)


def test_leading_zeros_are_normalised() -> None:
    assert ebs({"volumeSize": "010"})["volumeSize"] == "10"


@pytest.mark.parametrize("volume_type", VOLUME_TYPES)
def test_volume_types(volume_type: str) -> None:
    assert ebs({"volumeType": volume_type})["volumeType"] == volume_type


@pytest.mark.parametrize("bad", ["gp4", "GP3", "magnetic", "io3"])
def test_bad_volume_types(bad: str) -> None:
    err = refused("EBS", {**ZONE, "volumeType": bad})
    assert isinstance(err, InvalidParameterValue) and "gp3" in err.message and err.field == "Metadata.volumeType"


def test_iops_and_throughput_only_where_the_volume_type_has_them() -> None:
    assert ebs({"volumeType": "io2", "iops": "5000"})["iops"] == "5000"
    assert ebs({"iops": "5000"})["iops"] == "5000"  # the backed-up volume type decides later
    refused("EBS", {**ZONE, "volumeType": "gp2", "iops": "5000"})
    refused("EBS", {**ZONE, "volumeType": "io1", "throughput": "500"})
    assert ebs({"volumeType": "gp3", "throughput": "500"})["throughput"] == "500"


def test_encrypted() -> None:
    assert ebs({"encrypted": "True"})["encrypted"] == "true"
    refused("EBS", {**ZONE, "encrypted": "1"})


@pytest.mark.parametrize("key_id", [
    "1234abcd-12ab-34cd-56ef-1234567890ab",
    "alias/my-key",
    "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    "arn:aws:kms:us-east-1:123456789012:alias/my-key",
    "mrk-1234abcd12ab34cd56ef1234567890ab",
])
def test_kms_keys(key_id: str) -> None:
    assert ebs({"kmsKeyId": key_id})["kmsKeyId"] == key_id


@pytest.mark.parametrize("key_id", ["my-key", "arn:aws:kms:us-east-1:1:key/x", "key/123"])
def test_bad_kms_keys(key_id: str) -> None:
    refused("EBS", {**ZONE, "kmsKeyId": key_id})


def test_a_kms_key_needs_encryption() -> None:
    err = refused("EBS", {**ZONE, "encrypted": "false", "kmsKeyId": "alias/k"})
    assert isinstance(err, InvalidParameterValue) and err.field == "Metadata.kmsKeyId"


def test_which_volume() -> None:
    assert ebs({"DeviceName": "/dev/xvdf"})["DeviceName"] == "/dev/xvdf"
    assert ebs({"DeviceName": "xvdf"})["DeviceName"] == "xvdf"
    assert ebs({"volumeId": "vol-0123456789abcdef0"})["volumeId"] == "vol-0123456789abcdef0"
    refused("EBS", {**ZONE, "DeviceName": "/dev/../etc"})
    refused("EBS", {**ZONE, "volumeId": "snap-0123456789abcdef0"})
    err = refused("EBS", {**ZONE, "DeviceName": "/dev/xvdf", "volumeId": "vol-0123456789abcdef0"})
    assert "not both" in str(err)


def test_the_input_is_not_changed() -> None:
    meta: dict[str, object] = {**ZONE, "volumeSize": 5}
    validate_restore_metadata("EBS", meta)
    assert meta == {**ZONE, "volumeSize": 5}


@given(st.dictionaries(st.sampled_from(sorted(EC2_KEYS - {"KeyName"})), st.just(None)))
def test_only_nulls_give_nothing(meta: dict[str, object]) -> None:
    assert validate_restore_metadata("EC2", meta) == {}
