"""What every part of the service shares: the catalog, the region and account it speaks for, and the clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from snapkeep.catalog.store import CatalogStore
from snapkeep.domain.errors import MissingParameterValue


def require(value: Any, field: str) -> Any:
    """`value`, or MissingParameterValue naming `field` when it is absent or empty."""
    if value is None or value == "":
        raise MissingParameterValue(f"{field} is required", field=field)
    return value


class ServiceBase:
    def __init__(
        self,
        store: CatalogStore,
        region: str,
        account_id: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.region = region
        self.account_id = account_id
        self.clock = clock
