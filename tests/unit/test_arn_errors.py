from __future__ import annotations

import pytest

from snapkeep.domain import arn
from snapkeep.domain.errors import (
    AlreadyExists,
    InvalidParameterValue,
    MissingParameterValue,
    ResourceNotFound,
    SnapkeepError,
)


def test_parse_instance_arn() -> None:
    parsed = arn.Arn.parse("arn:aws:ec2:eu-west-1:222222222222:instance/i-0abc")
    assert (parsed.service, parsed.region, parsed.account) == ("ec2", "eu-west-1", "222222222222")
    assert (parsed.resource_type, parsed.resource_id) == ("instance", "i-0abc")
    assert str(parsed) == "arn:aws:ec2:eu-west-1:222222222222:instance/i-0abc"


def test_image_and_vault_arns_use_aws_formats() -> None:
    assert arn.image_arn("us-east-1", "ami-1") == "arn:aws:ec2:us-east-1::image/ami-1"
    assert arn.snapshot_arn("us-east-1", "snap-1") == "arn:aws:ec2:us-east-1::snapshot/snap-1"
    assert arn.vault_arn("us-east-1", "123456789012", "v") == "arn:aws:backup:us-east-1:123456789012:backup-vault:v"
    vault = arn.Arn.parse(arn.vault_arn("us-east-1", "123456789012", "main"))
    assert (vault.resource_type, vault.resource_id) == ("backup-vault", "main")


@pytest.mark.parametrize("text", ["", "arn:aws:ec2", "i-123", "arn:aws:ec2:us-east-1:12345:instance/i-1",
                                  "arn:aws:ec2:us-east-1:123456789012:instance/i-1\n", "ARN:aws:ec2:::x"])
def test_invalid_arns_are_refused_naming_the_field(text: str) -> None:
    with pytest.raises(InvalidParameterValue) as err:
        arn.Arn.parse(text, field="ResourceArn")
    assert err.value.field == "ResourceArn"


def test_errors_carry_aws_code_http_status_and_exit_code() -> None:
    cases = [(InvalidParameterValue, "InvalidParameterValueException", 400, 2),
             (MissingParameterValue, "MissingParameterValueException", 400, 2),
             (ResourceNotFound, "ResourceNotFoundException", 400, 3),
             (AlreadyExists, "AlreadyExistsException", 400, 4)]
    for cls, code, status, exit_code in cases:
        error = cls("boom", field="Name")
        assert isinstance(error, SnapkeepError)
        assert (error.code, error.http_status, error.exit_code) == (code, status, exit_code)
        assert error.to_dict() == {"Code": code, "Message": "boom", "Field": "Name"}
