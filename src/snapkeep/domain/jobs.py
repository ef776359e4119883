"""Job states and the transitions AWS Backup allows between them (pure).

Backup jobs: CREATED → PENDING → RUNNING → COMPLETED | PARTIAL | FAILED; CREATED → EXPIRED when the start window
closes before the job starts; any live state → ABORTING → ABORTED (StopBackupJob, or the completion window
closing). Restore jobs: PENDING → RUNNING → COMPLETED | FAILED | ABORTED.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from snapkeep.domain.errors import InvalidRequest


class BackupJobState(StrEnum):
    CREATED = "CREATED"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    ABORTING = "ABORTING"
    ABORTED = "ABORTED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    EXPIRED = "EXPIRED"
    PARTIAL = "PARTIAL"

    @property
    def is_final(self) -> bool:
        return self in _BACKUP_FINAL


class RestoreJobStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    ABORTED = "ABORTED"
    FAILED = "FAILED"

    @property
    def is_final(self) -> bool:
        return self in (RestoreJobStatus.COMPLETED, RestoreJobStatus.ABORTED, RestoreJobStatus.FAILED)


_BACKUP_FINAL = frozenset(
    {
        BackupJobState.ABORTED,
        BackupJobState.COMPLETED,
        BackupJobState.FAILED,
        BackupJobState.EXPIRED,
        BackupJobState.PARTIAL,
    }
)

_BACKUP_TRANSITIONS: dict[BackupJobState, frozenset[BackupJobState]] = {
    BackupJobState.CREATED: frozenset(
        {
            BackupJobState.PENDING,
            BackupJobState.RUNNING,
            BackupJobState.EXPIRED,
            BackupJobState.ABORTING,
            BackupJobState.ABORTED,
            BackupJobState.FAILED,
        }
    ),
    BackupJobState.PENDING: frozenset(
        {
            BackupJobState.RUNNING,
            BackupJobState.ABORTING,
            BackupJobState.ABORTED,
            BackupJobState.FAILED,
            BackupJobState.EXPIRED,
        }
    ),
    BackupJobState.RUNNING: frozenset(
        {
            BackupJobState.COMPLETED,
            BackupJobState.PARTIAL,
            BackupJobState.FAILED,
            BackupJobState.ABORTING,
            BackupJobState.ABORTED,
        }
    ),
    BackupJobState.ABORTING: frozenset({BackupJobState.ABORTED, BackupJobState.FAILED}),
}

_RESTORE_TRANSITIONS: dict[RestoreJobStatus, frozenset[RestoreJobStatus]] = {
    RestoreJobStatus.PENDING: frozenset({RestoreJobStatus.RUNNING, RestoreJobStatus.FAILED, RestoreJobStatus.ABORTED}),
    RestoreJobStatus.RUNNING: frozenset(
        {RestoreJobStatus.COMPLETED, RestoreJobStatus.FAILED, RestoreJobStatus.ABORTED}
    ),
}


def check_backup_transition(current: BackupJobState, target: BackupJobState) -> None:
    """Raise InvalidRequest unless AWS Backup allows a job in `current` to move to `target`."""
    if target not in _BACKUP_TRANSITIONS.get(current, frozenset()):
        raise InvalidRequest(f"backup job cannot go from {current} to {target}", field="State")


def check_restore_transition(current: RestoreJobStatus, target: RestoreJobStatus) -> None:
    if target not in _RESTORE_TRANSITIONS.get(current, frozenset()):
        raise InvalidRequest(f"restore job cannot go from {current} to {target}", field="Status")


def check_stoppable(state: BackupJobState) -> None:
    """StopBackupJob is accepted only for live jobs, as in AWS Backup."""
    if state.is_final or state is BackupJobState.ABORTING:
        raise InvalidRequest(f"backup job is {state} and cannot be stopped", field="BackupJobId")


@dataclass(frozen=True)
class JobWindows:
    """When a job must have started, and when it must have finished, counted from its scheduled time."""

    start_by: datetime
    complete_by: datetime

    @classmethod
    def from_minutes(cls, scheduled: datetime, start_window_minutes: int, completion_window_minutes: int) -> JobWindows:
        return cls(
            scheduled + timedelta(minutes=start_window_minutes),
            scheduled + timedelta(minutes=completion_window_minutes),
        )


def window_verdict(state: BackupJobState, windows: JobWindows, now: datetime) -> BackupJobState | None:
    """The state a job must be forced into at `now` because a window closed, or None if none closed.

    A job not started by the end of its start window ends EXPIRED; one not finished by the end of its
    completion window ends ABORTED.
    """
    if state.is_final:
        return None
    if state in (BackupJobState.CREATED, BackupJobState.PENDING) and now >= windows.start_by:
        return BackupJobState.EXPIRED
    if now >= windows.complete_by:
        return BackupJobState.ABORTED
    return None
