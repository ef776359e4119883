"""Backup vault notifications (pure): accepted events, topic ARNs, what each transition raises, the messages."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import botocore.session
import pytest
from hypothesis import given
from hypothesis import strategies as st

from snapkeep.domain.errors import InvalidParameterValue, InvalidRequest, MissingParameterValue
from snapkeep.domain.jobs import BackupJobState, RestoreJobStatus, check_backup_transition, check_restore_transition
from snapkeep.domain.notifications import (
    ALL_EVENTS,
    DEPRECATED_EVENTS,
    LONGEST_RETRY,
    MAX_DELIVERY_ATTEMPTS,
    SENT_EVENTS,
    SUBJECT,
    BackupJobFacts,
    Notification,
    RecoveryPointFacts,
    RestoreJobFacts,
    aws_timestamp,
    backup_job_notifications,
    delivery_backoff,
    gives_up,
    publish_attributes,
    recovery_point_notifications,
    restore_job_notifications,
    subscribed,
    validate_topic_arn,
    validate_vault_events,
)

OWN = "123456789012"
TOPIC = f"arn:aws:sns:us-east-1:{OWN}:backup-events"
STARTED = datetime(2024, 3, 1, 5, 0, 7, 123456, tzinfo=UTC)
INSTANCE = f"arn:aws:ec2:us-east-1:{OWN}:instance/i-0abc"
POINT = "arn:aws:ec2:us-east-1::image/ami-0def"


def job(state: str, point: str | None = None) -> BackupJobFacts:
    return BackupJobFacts("job-1", OWN, INSTANCE, state, STARTED, point)


def restore(status: str, created: str | None = None) -> RestoreJobFacts:
    return RestoreJobFacts("restore-1", OWN, POINT, status, STARTED, created)


def point(status: str = "COMPLETED", lifecycle: dict[str, int] | None = None, storage: str = "WARM"
          ) -> RecoveryPointFacts:
    return RecoveryPointFacts(POINT, OWN, INSTANCE, status, storage, lifecycle)


# -- accepted events ------------------------------------------------------------------------------------------------
def test_accepted_events_are_exactly_botocores_enum() -> None:
    model = botocore.session.get_session().get_service_model("backup")
    assert list(ALL_EVENTS) == list(model.shape_for("BackupVaultEvent").enum)


def test_sent_and_deprecated_events_are_enum_values_and_disjoint() -> None:
    assert set(SENT_EVENTS) | DEPRECATED_EVENTS <= set(ALL_EVENTS)
    assert not set(SENT_EVENTS) & DEPRECATED_EVENTS
    assert "BACKUP_JOB_FAILED" in DEPRECATED_EVENTS and "BACKUP_JOB_COMPLETED" in SENT_EVENTS


def test_events_keep_their_order_and_lose_duplicates() -> None:
    given_events = ["RESTORE_JOB_COMPLETED", "BACKUP_JOB_FAILED", "RESTORE_JOB_COMPLETED", "COPY_JOB_STARTED"]
    assert validate_vault_events(given_events) == ["RESTORE_JOB_COMPLETED", "BACKUP_JOB_FAILED", "COPY_JOB_STARTED"]


def test_an_unknown_event_is_named_with_its_index_and_the_events_snapkeep_sends() -> None:
    with pytest.raises(InvalidParameterValue) as bad:
        validate_vault_events(["BACKUP_JOB_STARTED", "BACKUP_JOB_DONE"])
    assert bad.value.field == "BackupVaultEvents[1]"
    assert "'BACKUP_JOB_DONE' is not a backup vault event" in bad.value.message
    for event in SENT_EVENTS:
        assert event in bad.value.message


@pytest.mark.parametrize("value, error", [(None, MissingParameterValue), ([], InvalidParameterValue),
                                          ("BACKUP_JOB_STARTED", InvalidParameterValue)])
def test_events_must_be_a_non_empty_list(value: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="BackupVaultEvents"):
        validate_vault_events(value)


# -- topic ARNs ------------------------------------------------------------------------------------------------------
def test_a_standard_topic_of_a_reachable_account_is_accepted() -> None:
    arn = validate_topic_arn(TOPIC, {OWN})
    assert (arn.region, arn.account, arn.resource) == ("us-east-1", OWN, "backup-events")
    assert str(validate_topic_arn("arn:aws:sns:eu-west-1:222222222222:t_1", {OWN, "222222222222"})).endswith(":t_1")


@pytest.mark.parametrize("text, fragment", [
    ("not-an-arn", "is not a valid ARN"),
    (f"arn:aws:sqs:us-east-1:{OWN}:queue", "is not an SNS topic ARN"),
    (f"arn:aws:sns::{OWN}:topic", "is not an SNS topic ARN"),
    (f"arn:aws:sns:us-east-1:{OWN}:events.fifo", "FIFO topic"),
    (f"arn:aws:sns:us-east-1:{OWN}:bad/name", "must be 1-256 letters"),
    ("arn:aws:sns:us-east-1:999999999999:topic", "account 999999999999, which Snapkeep cannot publish to"),
])
def test_bad_topic_arns_are_refused_saying_why(text: str, fragment: str) -> None:
    with pytest.raises(InvalidParameterValue) as bad:
        validate_topic_arn(text, {OWN})
    assert fragment in bad.value.message and bad.value.field == "SNSTopicArn"


def test_a_missing_topic_arn_is_a_missing_parameter() -> None:
    with pytest.raises(MissingParameterValue, match="SNSTopicArn"):
        validate_topic_arn("", {OWN})


# -- backup jobs -----------------------------------------------------------------------------------------------------
def test_a_completed_backup_reads_as_aws_sends_it() -> None:
    [note] = backup_job_notifications("RUNNING", job("COMPLETED", POINT))
    assert note.event == "BACKUP_JOB_COMPLETED"
    assert note.message == (f"An AWS Backup job was completed successfully. Recovery point ARN: {POINT}. "
                            f"Resource ARN : {INSTANCE}. BackupJob ID : job-1")
    assert dict(note.attributes) == {"EventType": "BACKUP_JOB", "State": "COMPLETED", "AccountId": OWN,
                                     "Id": "job-1", "StartTime": "2024-03-01T05:00:07.123Z"}
    assert note.to_json() == {"Subject": SUBJECT, "Message": note.message, "MessageAttributes": note.attributes}


@pytest.mark.parametrize("state, text", [
    ("FAILED", "An AWS Backup job failed. "),
    ("EXPIRED", "An AWS Backup job failed to complete in time. "),
    ("ABORTED", "An AWS Backup job was stopped. "),
])
def test_unsuccessful_backups_raise_completed_with_their_state(state: str, text: str) -> None:
    [note] = backup_job_notifications("ABORTING" if state == "ABORTED" else "RUNNING", job(state, POINT))
    assert note.event == "BACKUP_JOB_COMPLETED" and note.attributes["State"] == state
    assert note.message == f"{text}Resource ARN : {INSTANCE}. BackupJob ID : job-1"
    assert "Recovery point" not in note.message


def test_a_backup_starts_once_and_intermediate_states_raise_nothing() -> None:
    [note] = backup_job_notifications("CREATED", job("RUNNING"))
    assert note.event == "BACKUP_JOB_STARTED" and note.attributes["State"] == "RUNNING"
    assert note.message == f"An AWS Backup job was started. Resource ARN : {INSTANCE}. BackupJob ID : job-1"
    assert backup_job_notifications("RUNNING", job("RUNNING")) == []
    assert backup_job_notifications(None, job("CREATED")) == []
    assert backup_job_notifications("CREATED", job("PENDING")) == []
    assert backup_job_notifications("RUNNING", job("ABORTING")) == []
    assert backup_job_notifications("COMPLETED", job("COMPLETED")) == []


def test_a_job_that_never_ran_raises_only_completed() -> None:
    assert [n.event for n in backup_job_notifications("CREATED", job("EXPIRED"))] == ["BACKUP_JOB_COMPLETED"]


@st.composite
def backup_walks(draw: st.DrawFn) -> list[BackupJobState]:
    """A legal life of a backup job, as domain.jobs allows it, from CREATED."""
    states = [BackupJobState.CREATED]
    while not states[-1].is_final and len(states) < 8:
        options = []
        for target in BackupJobState:
            try:
                check_backup_transition(states[-1], target)
            except InvalidRequest:
                continue
            options.append(target)
        states.append(draw(st.sampled_from(sorted(options))))
    return states


@given(backup_walks())
def test_every_backup_job_life_raises_at_most_one_start_and_one_completion(walk: list[BackupJobState]) -> None:
    raised = [n.event for a, b in itertools.pairwise(walk) for n in backup_job_notifications(a, job(b))]
    assert raised.count("BACKUP_JOB_STARTED") == (1 if BackupJobState.RUNNING in walk else 0)
    assert raised.count("BACKUP_JOB_COMPLETED") == (1 if walk[-1].is_final else 0)
    assert len(raised) == raised.count("BACKUP_JOB_STARTED") + raised.count("BACKUP_JOB_COMPLETED")
    if "BACKUP_JOB_STARTED" in raised and "BACKUP_JOB_COMPLETED" in raised:
        assert raised.index("BACKUP_JOB_STARTED") < raised.index("BACKUP_JOB_COMPLETED")


# -- restore jobs ----------------------------------------------------------------------------------------------------
def test_a_restore_starts_once_and_completes_naming_what_it_created() -> None:
    [started] = restore_job_notifications("PENDING", restore("RUNNING"))
    assert started.event == "RESTORE_JOB_STARTED"
    assert started.message == (f"An AWS Backup restore job was started. Recovery point ARN : {POINT}. "
                               "RestoreJob ID : restore-1")
    assert restore_job_notifications("RUNNING", restore("RUNNING")) == []
    created = f"arn:aws:ec2:us-east-1:{OWN}:instance/i-0new"
    [done] = restore_job_notifications("RUNNING", restore("COMPLETED", created))
    assert done.event == "RESTORE_JOB_COMPLETED"
    assert done.message == (f"An AWS Backup restore job was completed successfully. Recovery point ARN : {POINT}. "
                            f"Created resource ARN : {created}. RestoreJob ID : restore-1")
    assert dict(done.attributes) == {"EventType": "RESTORE_JOB", "State": "COMPLETED", "AccountId": OWN,
                                     "Id": "restore-1", "StartTime": "2024-03-01T05:00:07.123Z"}


def test_a_restore_failing_before_it_ran_raises_only_completed_with_failed() -> None:
    [note] = restore_job_notifications("PENDING", restore("FAILED"))
    assert (note.event, note.attributes["State"]) == ("RESTORE_JOB_COMPLETED", "FAILED")
    assert note.message.startswith("An AWS Backup restore job failed. ")


@given(st.lists(st.sampled_from(list(RestoreJobStatus)), max_size=6))
def test_restore_completion_is_raised_once_whatever_is_written(writes: list[RestoreJobStatus]) -> None:
    status, raised = RestoreJobStatus.PENDING, []
    for target in writes:
        if target != status:
            try:
                check_restore_transition(status, target)
            except InvalidRequest:
                continue
        raised += [n.event for n in restore_job_notifications(status, restore(target))]
        status = target
    assert raised.count("RESTORE_JOB_COMPLETED") == (1 if status.is_final else 0)
    assert raised.count("RESTORE_JOB_STARTED") <= 1


# -- recovery points -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("before, after, lead, state", [
    (point(), point("DELETING"), "An AWS Backup recovery point is being deleted", "DELETING"),
    (point("DELETING"), point("DELETED"), "An AWS Backup recovery point was deleted", "DELETED"),
    (point("DELETING"), point("EXPIRED"), "An AWS Backup recovery point could not be deleted", "EXPIRED"),
    (point(lifecycle={"DeleteAfterDays": 7}), point(lifecycle={"DeleteAfterDays": 35}),
     "An AWS Backup recovery point's lifecycle was changed", "COMPLETED"),
    (point(), point(storage="COLD"), "An AWS Backup recovery point moved to cold storage", "COMPLETED"),
])
def test_recovery_point_changes_raise_modified(before: RecoveryPointFacts, after: RecoveryPointFacts, lead: str,
                                               state: str) -> None:
    [note] = recovery_point_notifications(before, after)
    assert note.event == "RECOVERY_POINT_MODIFIED"
    assert note.message == f"{lead}. Recovery point ARN : {POINT}. Resource ARN : {INSTANCE}"
    assert dict(note.attributes) == {"EventType": "RECOVERY_POINT_MODIFIED", "State": state, "AccountId": OWN,
                                     "RecoveryPointArn": POINT}


def test_an_unchanged_recovery_point_raises_nothing() -> None:
    same = point(lifecycle={"DeleteAfterDays": 7})
    assert recovery_point_notifications(same, point(lifecycle={"DeleteAfterDays": 7})) == []


# -- subscriptions and delivery --------------------------------------------------------------------------------------
def test_only_subscribed_sent_events_go_out() -> None:
    start = Notification("BACKUP_JOB_STARTED", "s")
    done = Notification("BACKUP_JOB_COMPLETED", "d")
    assert subscribed([start, done], {"BACKUP_JOB_COMPLETED", "BACKUP_JOB_FAILED"}) == [done]
    assert subscribed([start, done], set(DEPRECATED_EVENTS)) == []
    assert subscribed([Notification("BACKUP_JOB_FAILED", "x")], {"BACKUP_JOB_FAILED"}) == []


def test_publish_attributes_add_the_notification_id() -> None:
    stored = Notification("BACKUP_JOB_STARTED", "m", {"State": "RUNNING"}).to_json()
    assert publish_attributes(stored, "42") == {"State": "RUNNING", "NotificationId": "42"}


def test_backoff_doubles_from_five_seconds_up_to_an_hour_and_gives_up_after_about_three_days() -> None:
    assert [delivery_backoff(n).total_seconds() for n in range(1, 5)] == [5, 10, 20, 40]
    assert delivery_backoff(30) == LONGEST_RETRY
    total = sum((delivery_backoff(n) for n in range(1, MAX_DELIVERY_ATTEMPTS)), timedelta())
    assert timedelta(days=2) < total < timedelta(days=4)
    assert not gives_up(MAX_DELIVERY_ATTEMPTS - 1) and gives_up(MAX_DELIVERY_ATTEMPTS)


@given(st.integers(min_value=1, max_value=10_000))
def test_backoff_never_shrinks_and_never_passes_an_hour(attempts: int) -> None:
    assert delivery_backoff(attempts) <= delivery_backoff(attempts + 1) <= LONGEST_RETRY


def test_start_time_has_milliseconds_and_a_z() -> None:
    assert aws_timestamp(datetime(2019, 9, 2, 13, 48, 52, 226000, tzinfo=UTC)) == "2019-09-02T13:48:52.226Z"
    with pytest.raises(ValueError):
        aws_timestamp(datetime(2019, 9, 2))
