"""The one place that wires adapters into the engine: catalog, AWS sessions, queue, service, workers."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from snapkeep.aws.sessions import SessionProvider
from snapkeep.catalog import db
from snapkeep.catalog.store import CatalogStore
from snapkeep.config import Settings
from snapkeep.engine.context import EngineContext
from snapkeep.engine.queue import TaskQueue
from snapkeep.engine.worker import WorkerPool
from snapkeep.service import BackupService


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Snapkeep:
    settings: Settings
    store: CatalogStore
    service: BackupService
    context: EngineContext

    @classmethod
    def open(cls, settings: Settings, clock: Callable[[], datetime] = utc_now) -> Snapkeep:
        if settings.database_url.startswith("sqlite"):
            settings.home.mkdir(parents=True, exist_ok=True)
        engine = db.create_engine(settings.database_url)
        db.upgrade(engine)
        store = CatalogStore(engine)
        sessions = SessionProvider(
            settings.aws_endpoint_url, settings.aws_access_key_id, settings.aws_secret_access_key
        )
        context = EngineContext(settings, store, TaskQueue(engine), sessions, clock)
        return cls(settings, store, BackupService(store, settings.region, settings.account_id, clock), context)

    def api(self, env: Mapping[str, str]) -> Any:
        """The AWS Backup API of this Snapkeep (a FastAPI app); creates the first admin key from `env` if asked."""
        from snapkeep.api.app import Dispatcher, create_app
        from snapkeep.api.keys import KeyStore, load_or_create_master_key

        keys = KeyStore(self.store.engine, load_or_create_master_key(self.settings.home))
        keys.ensure_admin_from_env(env, self.context.clock())
        return create_app(Dispatcher(self.service, keys, self.settings.region, self.context.clock))

    def keys(self) -> Any:
        from snapkeep.api.keys import KeyStore, load_or_create_master_key

        return KeyStore(self.store.engine, load_or_create_master_key(self.settings.home))

    def workers(self, threads: int | None = None, *, scheduler_enabled: bool = True) -> WorkerPool:
        return WorkerPool(
            self.context,
            self.settings.worker_threads if threads is None else threads,
            scheduler_enabled=scheduler_enabled,
        )

    def close(self) -> None:
        self.store.engine.dispose()
