from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from snapkeep.domain.errors import InvalidRequest
from snapkeep.domain.jobs import (
    BackupJobState,
    JobWindows,
    RestoreJobStatus,
    check_backup_transition,
    check_restore_transition,
    check_stoppable,
    window_verdict,
)

T0 = datetime(2026, 3, 8, 5, 0, tzinfo=UTC)
WINDOWS = JobWindows.from_minutes(T0, 60, 180)

ALLOWED = [
    ("CREATED", "RUNNING"), ("CREATED", "PENDING"), ("CREATED", "EXPIRED"), ("PENDING", "RUNNING"),
    ("RUNNING", "COMPLETED"), ("RUNNING", "FAILED"), ("RUNNING", "PARTIAL"), ("RUNNING", "ABORTING"),
    ("ABORTING", "ABORTED"),
]
REFUSED = [
    ("COMPLETED", "RUNNING"), ("FAILED", "COMPLETED"), ("EXPIRED", "RUNNING"), ("RUNNING", "EXPIRED"),
    ("RUNNING", "CREATED"), ("ABORTED", "RUNNING"), ("ABORTING", "COMPLETED"), ("PARTIAL", "COMPLETED"),
]


@pytest.mark.parametrize(("current", "target"), ALLOWED)
def test_allowed_backup_transitions(current: str, target: str) -> None:
    check_backup_transition(BackupJobState(current), BackupJobState(target))


@pytest.mark.parametrize(("current", "target"), REFUSED)
def test_refused_backup_transitions(current: str, target: str) -> None:
    with pytest.raises(InvalidRequest, match=f"from {current} to {target}"):
        check_backup_transition(BackupJobState(current), BackupJobState(target))


@given(st.sampled_from(list(BackupJobState)), st.sampled_from(list(BackupJobState)))
def test_final_states_never_change(current: BackupJobState, target: BackupJobState) -> None:
    if current.is_final:
        with pytest.raises(InvalidRequest):
            check_backup_transition(current, target)


def test_restore_transitions() -> None:
    check_restore_transition(RestoreJobStatus.PENDING, RestoreJobStatus.RUNNING)
    check_restore_transition(RestoreJobStatus.RUNNING, RestoreJobStatus.COMPLETED)
    with pytest.raises(InvalidRequest):
        check_restore_transition(RestoreJobStatus.COMPLETED, RestoreJobStatus.RUNNING)


def test_windows_count_from_the_scheduled_time() -> None:
    assert WINDOWS.start_by == T0 + timedelta(hours=1)
    assert WINDOWS.complete_by == T0 + timedelta(hours=3)


def test_job_not_started_in_its_start_window_expires() -> None:
    assert window_verdict(BackupJobState.CREATED, WINDOWS, T0 + timedelta(minutes=59)) is None
    assert window_verdict(BackupJobState.CREATED, WINDOWS, T0 + timedelta(minutes=60)) is BackupJobState.EXPIRED
    # A running job is past its start: the start window no longer applies to it.
    assert window_verdict(BackupJobState.RUNNING, WINDOWS, T0 + timedelta(minutes=90)) is None


def test_job_not_finished_in_its_completion_window_is_aborted() -> None:
    assert window_verdict(BackupJobState.RUNNING, WINDOWS, T0 + timedelta(minutes=180)) is BackupJobState.ABORTED
    assert window_verdict(BackupJobState.COMPLETED, WINDOWS, T0 + timedelta(days=1)) is None


def test_only_live_jobs_can_be_stopped() -> None:
    check_stoppable(BackupJobState.RUNNING)
    check_stoppable(BackupJobState.CREATED)
    for state in (BackupJobState.COMPLETED, BackupJobState.ABORTING, BackupJobState.EXPIRED):
        with pytest.raises(InvalidRequest, match="cannot be stopped"):
            check_stoppable(state)
