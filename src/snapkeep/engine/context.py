"""What every task handler gets: the catalog, the queue, AWS clients and the clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from snapkeep.aws.sessions import SessionProvider
from snapkeep.catalog.store import CatalogStore
from snapkeep.config import Settings
from snapkeep.engine.queue import TaskQueue


@dataclass(frozen=True)
class Done:
    """The task is finished."""


@dataclass(frozen=True)
class RetryAt:
    """Run the task again at `when` (waiting on AWS, or backing off)."""

    when: datetime


Outcome = Done | RetryAt


@dataclass
class EngineContext:
    settings: Settings
    store: CatalogStore
    queue: TaskQueue
    sessions: SessionProvider
    clock: Callable[[], datetime]

    def ec2(self, account_id: str, region: str) -> Any:
        return self.sessions.client("ec2", region, self.role_for(account_id))

    def role_for(self, account_id: str) -> str | None:
        """The role Snapkeep assumes to reach an account; None for its own credentials' account."""
        with self.store.transaction() as conn:
            for account in self.store.list_accounts(conn):
                if account["account_id"] == account_id:
                    role = account["role_arn"]
                    return str(role) if role else None
        return None

    def poll_later(self) -> RetryAt:
        return RetryAt(self.clock() + timedelta(seconds=self.settings.poll_seconds))
