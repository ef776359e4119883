"""One error hierarchy for the whole product.

Every error carries the AWS Backup error code the API answers with, the HTTP status, and the exit code the CLI
ends with, so the API and the CLI report the same failure the same way.
"""

from __future__ import annotations

from typing import ClassVar


class SnapkeepError(Exception):
    """Base of every error Snapkeep reports to a user."""

    code: ClassVar[str] = "ServiceUnavailableException"
    http_status: ClassVar[int] = 500
    exit_code: ClassVar[int] = 1

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def to_dict(self) -> dict[str, str]:
        body = {"Code": self.code, "Message": self.message}
        if self.field:
            body["Field"] = self.field
        return body


class InvalidParameterValue(SnapkeepError):
    """A value is present but breaks a rule (name pattern, range, cron syntax...)."""

    code = "InvalidParameterValueException"
    http_status = 400
    exit_code = 2


class MissingParameterValue(SnapkeepError):
    """A required value is absent."""

    code = "MissingParameterValueException"
    http_status = 400
    exit_code = 2


class InvalidRequest(SnapkeepError):
    """The request is well formed but not allowed in this combination or state."""

    code = "InvalidRequestException"
    http_status = 400
    exit_code = 2


class ResourceNotFound(SnapkeepError):
    code = "ResourceNotFoundException"
    http_status = 400
    exit_code = 3


class AlreadyExists(SnapkeepError):
    code = "AlreadyExistsException"
    http_status = 400
    exit_code = 4


class Conflict(SnapkeepError):
    """Another operation holds the resource, or its state forbids the change."""

    code = "ConflictException"
    http_status = 409
    exit_code = 4


class InvalidResourceState(SnapkeepError):
    code = "InvalidResourceStateException"
    http_status = 400
    exit_code = 4


class DamagedData(InvalidResourceState):
    """Stored data failed an integrity check (changed, truncated or lost): its own exit code, because the fix is
    a repair or a new backup, not a retry."""

    exit_code = 9


class LimitExceeded(SnapkeepError):
    code = "LimitExceededException"
    http_status = 400
    exit_code = 5


class AccessDenied(SnapkeepError):
    code = "AccessDeniedException"
    http_status = 403
    exit_code = 6


class DependencyFailure(SnapkeepError):
    """AWS (or the lab) failed or refused a call Snapkeep depends on."""

    code = "DependencyFailureException"
    http_status = 500
    exit_code = 7


class ServiceUnavailable(SnapkeepError):
    code = "ServiceUnavailableException"
    http_status = 503
    exit_code = 8
