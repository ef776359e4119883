"""Waiting for a job with a progress bar: DescribeBackupJob / DescribeRestoreJob polled over the backend."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from snapkeep.cli.backend import Backend
from snapkeep.cli.output import console
from snapkeep.domain.errors import SnapkeepError

BACKUP_FINAL = frozenset({"COMPLETED", "FAILED", "ABORTED", "EXPIRED", "PARTIAL"})
RESTORE_FINAL = frozenset({"COMPLETED", "FAILED", "ABORTED"})
POLL_SECONDS = 0.25


def wait_for_backup(backend: Backend, job_id: str, timeout: float = 600.0) -> dict[str, Any]:
    return _wait(lambda: backend.call("DescribeBackupJob", {"BackupJobId": job_id}), "State",
                 f"backup {job_id[:8]}", timeout, BACKUP_FINAL, backend.where)


def wait_for_restore(backend: Backend, job_id: str, timeout: float = 600.0) -> dict[str, Any]:
    return _wait(lambda: backend.call("DescribeRestoreJob", {"RestoreJobId": job_id}), "Status",
                 f"restore {job_id[:8]}", timeout, RESTORE_FINAL, backend.where)


def _wait(describe: Callable[[], dict[str, Any]], key: str, label: str, timeout: float, final: frozenset[str],
          where: str) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        TextColumn("{task.fields[state]}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=100, state="")
        while True:
            out = describe()
            bar.update(task, completed=float(out.get("PercentDone") or 0), state=out[key])
            if out[key] in final:
                return out
            if time.monotonic() > deadline:
                raise SnapkeepError(
                    f"{label}: still {out[key]} after {timeout:.0f}s (are the workers of {where} running? "
                    "`snapkeep server` runs them)"
                )
            time.sleep(POLL_SECONDS)
