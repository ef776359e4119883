"""AWS failures turned into Snapkeep's errors, naming the AWS action and code; transient ones marked as such."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import BotoCoreError, ClientError

from snapkeep.domain.errors import AlreadyExists, DependencyFailure, InvalidParameterValue, ResourceNotFound

# Codes AWS answers when a call may well succeed if simply tried again later.
TRANSIENT_CODES = frozenset(
    {
        "RequestLimitExceeded",
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
        "SnapshotCreationPerVolumeRateExceeded",
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        "Unavailable",
        "RequestTimeout",
        "RequestTimeoutException",
        "InsufficientInstanceCapacity",
    }
)


class TransientAwsError(DependencyFailure):
    """AWS throttled, failed on its side or could not be reached: retry later, the job is not lost."""


@contextmanager
def aws_errors(action: str) -> Iterator[None]:
    """Translate boto3 failures into Snapkeep errors that name the AWS action and code."""
    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "Unknown"))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        message = f"{action} failed: {code}: {error.get('Message', '')}".rstrip(": ")
        if code in TRANSIENT_CODES or status >= 500:
            raise TransientAwsError(message) from exc
        if code.endswith(".NotFound") or code in ("ResourceNotFoundException", "InvalidInstanceID.Malformed"):
            raise ResourceNotFound(message) from exc
        if code.endswith(".Duplicate"):
            raise AlreadyExists(message) from exc
        if code.startswith("InvalidParameter") or code == "ValidationException":
            raise InvalidParameterValue(message) from exc
        raise DependencyFailure(message) from exc
    except BotoCoreError as exc:  # connection refused or reset, timeouts: nothing says the call was refused
        raise TransientAwsError(f"{action} failed: {exc}") from exc
