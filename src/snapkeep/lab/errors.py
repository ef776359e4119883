"""Errors the lab answers with, in the shapes AWS uses.

EBS direct API errors are moto ServiceExceptions whose code names an error shape of the `ebs` service model,
so moto serialises them as rest-json with the model's HTTP status (400, 404, 409, 403) and a `Reason`.
EC2 errors are moto's EC2ClientError (query protocol, HTTP 400).
"""

from __future__ import annotations

from moto.core.exceptions import ServiceException
from moto.ec2.exceptions import EC2ClientError


class EbsApiError(ServiceException):
    code = "ValidationException"
    default_reason: str | None = None

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason or self.default_reason


class EbsValidationError(EbsApiError):
    code = "ValidationException"
    default_reason = "INVALID_PARAMETER_VALUE"


class EbsNotFoundError(EbsApiError):
    code = "ResourceNotFoundException"
    default_reason = "SNAPSHOT_NOT_FOUND"


class EbsConflictError(EbsApiError):
    code = "ConflictException"


def ec2_error(code: str, message: str) -> EC2ClientError:
    """An EC2 error with AWS's code, e.g. `InvalidParameterValue` or `IncorrectState`."""
    return EC2ClientError(code, message)


def snapshot_not_found(snapshot_id: str) -> EC2ClientError:
    return EC2ClientError("InvalidSnapshot.NotFound", f"The snapshot '{snapshot_id}' does not exist.")
