"""The shape of an operation handler, and AWS-style paging, shared by every operations module."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from snapkeep.domain.errors import InvalidParameterValue
from snapkeep.service import BackupService

Handler = Callable[[BackupService, Mapping[str, Any]], dict[str, Any]]


def paginate(
    items: Sequence[dict[str, Any]], params: Mapping[str, Any], key: str, default_max: int = 1000
) -> dict[str, Any]:
    """AWS-style paging: an opaque NextToken (the offset, base64) and MaxResults (1-1000)."""
    start = 0
    token = params.get("NextToken")
    if token:
        try:
            start = int(base64.urlsafe_b64decode(str(token).encode()).decode())
        except (ValueError, binascii.Error) as exc:
            raise InvalidParameterValue("NextToken is not valid", field="NextToken") from exc
        if not 0 <= start <= len(items):
            raise InvalidParameterValue("NextToken is not valid", field="NextToken")
    size = int(params.get("MaxResults") or default_max)
    page = list(items[start : start + size])
    out: dict[str, Any] = {key: page}
    if start + size < len(items):
        out["NextToken"] = base64.urlsafe_b64encode(str(start + size).encode()).decode()
    return out
