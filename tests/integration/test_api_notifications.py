"""Backup vault notifications end to end: the three operations through boto3's `backup` client, and the events of
real backup and restore jobs in the lab published to an SNS topic and read back from an SQS queue subscribed to it.
The operations, the events of a backup and a restore and a retried delivery (the catalog's outbox) run on SQLite and
PostgreSQL; refusals and the other flows on SQLite (`ON_SQLITE_ONLY`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import boto3
import pytest

from snapkeep.app import Snapkeep
from snapkeep.catalog import events
from snapkeep.domain.arn import Arn
from snapkeep.domain.errors import InvalidParameterValue, ResourceNotFound
from snapkeep.domain.notifications import SENT_EVENTS, SUBJECT
from snapkeep.engine.notify import deliver_vault_event
from snapkeep.engine.worker import HANDLERS, run_one
from snapkeep.lab.fleet import ROLE_ARN, SECOND_ACCOUNT
from tests.lab_flow import ADMIN_ID, ADMIN_SECRET, ON_SQLITE_ONLY, ROLE, drain, tagged_instances

OWN = "123456789012"
LAB_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def backup_client(endpoint: str) -> Any:
    return boto3.client("backup", region_name="us-east-1", endpoint_url=endpoint, aws_access_key_id=ADMIN_ID,
                        aws_secret_access_key=ADMIN_SECRET)


def lab_client(sk: Snapkeep, service: str, region: str = "us-east-1", account: str = OWN) -> Any:
    """A client on the lab as a subscriber would have it: the account's own credentials, not Snapkeep's."""
    credentials: dict[str, str] = dict(LAB_CREDENTIALS)
    if account != OWN:
        answer = boto3.client("sts", endpoint_url=sk.settings.aws_endpoint_url, region_name=region,
                              **LAB_CREDENTIALS).assume_role(RoleArn=ROLE_ARN, RoleSessionName="subscriber")
        creds = answer["Credentials"]
        credentials = {"aws_access_key_id": creds["AccessKeyId"], "aws_secret_access_key": creds["SecretAccessKey"],
                       "aws_session_token": creds["SessionToken"]}
    return boto3.client(service, endpoint_url=sk.settings.aws_endpoint_url, region_name=region, **credentials)


class Inbox:
    """An SNS topic with an SQS queue subscribed to it: what a subscriber to a vault's notifications receives."""

    def __init__(self, sk: Snapkeep, name: str = "backup-events", region: str = "us-east-1",
                 account: str = OWN) -> None:
        self.sns = lab_client(sk, "sns", region, account)
        self.sqs = lab_client(sk, "sqs", region, account)
        self.name = name
        self.topic_arn = self.create_topic()
        self.queue_url = self.sqs.create_queue(QueueName=f"{name}-inbox")["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        self.sns.subscribe(TopicArn=self.topic_arn, Protocol="sqs", Endpoint=queue_arn)

    def create_topic(self) -> str:
        return str(self.sns.create_topic(Name=self.name)["TopicArn"])

    def messages(self) -> list[dict[str, Any]]:
        """Every notification received since the last call: Subject, Message and the attributes' values."""
        out: list[dict[str, Any]] = []
        while True:
            batch = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                return out
            for message in batch:
                body = json.loads(message["Body"])
                attributes = {k: v["Value"] for k, v in body.get("MessageAttributes", {}).items()}
                out.append({"Subject": body.get("Subject"), "Message": body["Message"], **attributes})
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])


def outbox(sk: Snapkeep, vault: str | None = None) -> list[dict[str, Any]]:
    with sk.store.transaction() as conn:
        return events.list_events(conn, vault)


def vault_row(sk: Snapkeep, name: str) -> dict[str, Any]:
    with sk.store.transaction() as conn:
        return sk.store.get_vault(conn, name)


def backed_up(sk: Snapkeep, vault: str = "main") -> tuple[str, str, str]:
    """A completed backup of a seed instance into `vault`: job id, recovery point ARN, instance ARN."""
    target = tagged_instances(sk, "backup", "daily")[0]
    job_id = sk.service.start_backup_job(vault, target, ROLE, lifecycle={"DeleteAfterDays": 35})["BackupJobId"]
    drain(sk)
    done = sk.service.describe_backup_job(job_id)
    assert done["State"] == "COMPLETED", done
    return job_id, done["RecoveryPointArn"], target


# -- the operations through boto3 ------------------------------------------------------------------------------------
def test_put_get_and_delete_vault_notifications_through_boto3(sk: Snapkeep, api: str) -> None:
    backup = backup_client(api)
    topic = f"arn:aws:sns:us-east-1:{OWN}:backup-events"
    with pytest.raises(backup.exceptions.ResourceNotFoundException):
        backup.get_backup_vault_notifications(BackupVaultName="main")
    backup.put_backup_vault_notifications(
        BackupVaultName="main", SNSTopicArn=topic,
        BackupVaultEvents=["BACKUP_JOB_COMPLETED", "RESTORE_JOB_COMPLETED", "BACKUP_JOB_FAILED",
                           "BACKUP_JOB_COMPLETED"])
    got = backup.get_backup_vault_notifications(BackupVaultName="main")
    assert got["BackupVaultName"] == "main"
    assert got["BackupVaultArn"] == f"arn:aws:backup:us-east-1:{OWN}:backup-vault:main"
    assert got["SNSTopicArn"] == topic
    # A deprecated event (BACKUP_JOB_FAILED) is accepted and kept, as AWS does; the duplicate is dropped.
    assert got["BackupVaultEvents"] == ["BACKUP_JOB_COMPLETED", "RESTORE_JOB_COMPLETED", "BACKUP_JOB_FAILED"]

    # Put again replaces the whole configuration.
    other = f"arn:aws:sns:eu-west-1:{SECOND_ACCOUNT}:other-topic"
    backup.put_backup_vault_notifications(BackupVaultName="main", SNSTopicArn=other,
                                          BackupVaultEvents=["RECOVERY_POINT_MODIFIED"])
    got = backup.get_backup_vault_notifications(BackupVaultName="main")
    assert (got["SNSTopicArn"], got["BackupVaultEvents"]) == (other, ["RECOVERY_POINT_MODIFIED"])

    backup.delete_backup_vault_notifications(BackupVaultName="main")
    with pytest.raises(backup.exceptions.ResourceNotFoundException) as none:
        backup.get_backup_vault_notifications(BackupVaultName="main")
    assert "has no notifications" in none.value.response["Error"]["Message"]
    backup.delete_backup_vault_notifications(BackupVaultName="main")  # idempotent, as AWS's
    row = vault_row(sk, "main")
    assert row["notification_topic_arn"] is None and row["notification_events"] is None

    calls: list[Callable[[], Any]] = [
        lambda: backup.get_backup_vault_notifications(BackupVaultName="nope"),
        lambda: backup.delete_backup_vault_notifications(BackupVaultName="nope"),
        lambda: backup.put_backup_vault_notifications(BackupVaultName="nope", SNSTopicArn=topic,
                                                      BackupVaultEvents=["BACKUP_JOB_STARTED"]),
    ]
    for call in calls:
        with pytest.raises(backup.exceptions.ResourceNotFoundException):
            call()


@pytest.mark.parametrize("topic, events, fragment", [
    (f"arn:aws:sqs:us-east-1:{OWN}:a-queue", ["BACKUP_JOB_STARTED"], "is not an SNS topic ARN"),
    (f"arn:aws:sns:us-east-1:{OWN}:events.fifo", ["BACKUP_JOB_STARTED"], "FIFO topic"),
    ("arn:aws:sns:us-east-1:999999999999:events", ["BACKUP_JOB_STARTED"], "account 999999999999"),
    ("events", ["BACKUP_JOB_STARTED"], "is not a valid ARN"),
    (f"arn:aws:sns:us-east-1:{OWN}:events", [], "at least one event"),
    (f"arn:aws:sns:us-east-1:{OWN}:events", ["BACKUP_JOB_STARTED", "BACKUP_JOB_DONE"], "BackupVaultEvents[1]"),
])
@ON_SQLITE_ONLY
def test_bad_notification_settings_are_refused_and_change_nothing(sk: Snapkeep, api: str, topic: str,
                                                                  events: list[str], fragment: str) -> None:
    backup = backup_client(api)
    good = f"arn:aws:sns:us-east-1:{OWN}:backup-events"
    backup.put_backup_vault_notifications(BackupVaultName="main", SNSTopicArn=good,
                                          BackupVaultEvents=["BACKUP_JOB_COMPLETED"])
    before = backup.get_backup_vault_notifications(BackupVaultName="main")
    with pytest.raises(backup.exceptions.InvalidParameterValueException) as bad:
        backup.put_backup_vault_notifications(BackupVaultName="main", SNSTopicArn=topic, BackupVaultEvents=events)
    assert fragment in bad.value.response["Error"]["Message"]
    after = backup.get_backup_vault_notifications(BackupVaultName="main")
    assert {k: after[k] for k in ("SNSTopicArn", "BackupVaultEvents")} == {
        k: before[k] for k in ("SNSTopicArn", "BackupVaultEvents")}


@ON_SQLITE_ONLY
def test_the_service_names_the_bad_event_and_the_events_it_sends(sk: Snapkeep) -> None:
    """The API's wire layer refuses values outside the enum first; the CLI path gets the service's own message."""
    with pytest.raises(InvalidParameterValue) as bad:
        sk.service.put_backup_vault_notifications("main", f"arn:aws:sns:us-east-1:{OWN}:t", ["BACKUP_JOB_DONE"])
    assert "'BACKUP_JOB_DONE' is not a backup vault event" in bad.value.message
    assert all(event in bad.value.message for event in SENT_EVENTS)
    with pytest.raises(ResourceNotFound):
        sk.service.get_backup_vault_notifications("main")


# -- delivery --------------------------------------------------------------------------------------------------------
def test_backup_restore_and_recovery_point_events_reach_the_topic(sk: Snapkeep) -> None:
    inbox = Inbox(sk)
    sk.service.put_backup_vault_notifications("main", inbox.topic_arn, list(SENT_EVENTS))
    job_id, point, target = backed_up(sk)
    got = inbox.messages()
    assert [(m["EventType"], m["State"], m["Id"]) for m in got] == [
        ("BACKUP_JOB", "RUNNING", job_id), ("BACKUP_JOB", "COMPLETED", job_id)]
    started, completed = got
    assert started["Message"] == f"An AWS Backup job was started. Resource ARN : {target}. BackupJob ID : {job_id}"
    assert completed["Message"] == (f"An AWS Backup job was completed successfully. Recovery point ARN: {point}. "
                                    f"Resource ARN : {target}. BackupJob ID : {job_id}")
    assert {m["Subject"] for m in got} == {SUBJECT}
    assert {m["AccountId"] for m in got} == {Arn.parse(target).account}
    assert started["StartTime"] == completed["StartTime"] and started["StartTime"].endswith("Z")

    restore_id = sk.service.start_restore_job(point, {"InstanceType": "t3.micro"})["RestoreJobId"]
    drain(sk)
    created = sk.service.describe_restore_job(restore_id)["CreatedResourceArn"]
    got = inbox.messages()
    assert [(m["EventType"], m["State"], m["Id"]) for m in got] == [
        ("RESTORE_JOB", "RUNNING", restore_id), ("RESTORE_JOB", "COMPLETED", restore_id)]
    assert got[1]["Message"] == (f"An AWS Backup restore job was completed successfully. Recovery point ARN : {point}."
                                 f" Created resource ARN : {created}. RestoreJob ID : {restore_id}")

    sk.service.update_recovery_point_lifecycle("main", point, {"DeleteAfterDays": 90})
    sk.service.update_recovery_point_lifecycle("main", point, {"DeleteAfterDays": 90})  # no change: no event
    sk.service.delete_recovery_point("main", point)
    drain(sk)
    got = inbox.messages()
    assert [(m["EventType"], m["State"], m["RecoveryPointArn"]) for m in got] == [
        ("RECOVERY_POINT_MODIFIED", "COMPLETED", point), ("RECOVERY_POINT_MODIFIED", "DELETING", point),
        ("RECOVERY_POINT_MODIFIED", "DELETED", point)]
    assert got[0]["Message"].startswith("An AWS Backup recovery point's lifecycle was changed. ")
    assert got[2]["Message"].startswith("An AWS Backup recovery point was deleted. ")

    rows = outbox(sk, "main")
    assert len(rows) == 7 and all(r["delivered_at"] is not None and r["attempts"] == 1 for r in rows)
    assert all(r["topic_arn"] == inbox.topic_arn and r["last_error"] is None for r in rows)
    assert inbox.messages() == []  # each was published once


@ON_SQLITE_ONLY
def test_a_failed_backup_is_told_by_completed_with_its_state(sk: Snapkeep) -> None:
    inbox = Inbox(sk)
    sk.service.put_backup_vault_notifications("main", inbox.topic_arn, ["BACKUP_JOB_STARTED", "BACKUP_JOB_COMPLETED"])
    target = tagged_instances(sk, "backup", "daily")[0]
    arn = Arn.parse(target)
    sk.context.ec2(arn.account, arn.region).terminate_instances(InstanceIds=[arn.resource_id])
    job_id = sk.service.start_backup_job("main", target, ROLE)["BackupJobId"]
    drain(sk)
    assert sk.service.describe_backup_job(job_id)["State"] == "FAILED"
    [message] = inbox.messages()  # it never ran: no BACKUP_JOB_STARTED
    assert (message["EventType"], message["State"], message["Id"]) == ("BACKUP_JOB", "FAILED", job_id)
    assert message["Message"] == f"An AWS Backup job failed. Resource ARN : {target}. BackupJob ID : {job_id}"


@ON_SQLITE_ONLY
def test_events_not_subscribed_to_write_nothing(sk: Snapkeep) -> None:
    inbox = Inbox(sk)
    sk.service.create_backup_vault("quiet")
    # Deprecated events are accepted and, as in AWS, never sent.
    sk.service.put_backup_vault_notifications(
        "main", inbox.topic_arn, ["BACKUP_JOB_COMPLETED", "BACKUP_JOB_SUCCESSFUL", "RESTORE_JOB_FAILED"])
    job_id, point, _ = backed_up(sk)
    backed_up(sk, vault="quiet")
    sk.service.start_restore_job(point, {})
    drain(sk)
    rows = outbox(sk)
    assert [(r["backup_vault_name"], r["event"]) for r in rows] == [("main", "BACKUP_JOB_COMPLETED")]
    [message] = inbox.messages()
    assert (message["Id"], message["State"]) == (job_id, "COMPLETED")
    assert message["NotificationId"] == str(rows[0]["event_id"])

    sk.service.delete_backup_vault_notifications("main")
    backed_up(sk)
    assert len(outbox(sk)) == 1 and inbox.messages() == []


def test_a_failed_delivery_is_retried_and_recorded_not_lost(sk: Snapkeep) -> None:
    assert HANDLERS[events.NOTIFY_TASK] is deliver_vault_event
    inbox = Inbox(sk)
    sk.service.put_backup_vault_notifications("main", inbox.topic_arn, ["RECOVERY_POINT_MODIFIED"])
    _, point, _ = backed_up(sk)
    inbox.sns.delete_topic(TopicArn=inbox.topic_arn)

    sk.service.update_recovery_point_lifecycle("main", point, {"DeleteAfterDays": 60})
    [row] = outbox(sk)
    assert run_one(sk.context, "test-worker")
    with sk.store.transaction() as conn:
        failed = events.get_event(conn, row["event_id"])
    assert failed is not None
    assert failed["delivered_at"] is None and failed["attempts"] == 1
    assert "NotFound" in str(failed["last_error"]) and inbox.topic_arn in str(failed["last_error"])
    assert sk.context.queue.pending() == 1, "the notification waits to be tried again"
    assert not run_one(sk.context, "test-worker"), "not before its backoff is over"

    # The topic comes back (same name, same ARN): the next attempt delivers the notification, once.
    assert inbox.create_topic() == inbox.topic_arn
    queue_arn = inbox.sqs.get_queue_attributes(QueueUrl=inbox.queue_url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    inbox.sns.subscribe(TopicArn=inbox.topic_arn, Protocol="sqs", Endpoint=queue_arn)
    real = sk.context.clock
    sk.context.clock = lambda: real() + timedelta(seconds=6)
    drain(sk)
    [message] = inbox.messages()
    assert (message["EventType"], message["RecoveryPointArn"]) == ("RECOVERY_POINT_MODIFIED", point)
    [row] = outbox(sk)
    assert row["delivered_at"] is not None and row["attempts"] == 2 and "NotFound" in str(row["last_error"])

    # A delivered row is never published again, whoever runs its task.
    deliver_vault_event(sk.context, str(row["event_id"]))
    assert inbox.messages() == []


@ON_SQLITE_ONLY
def test_a_topic_in_a_protected_account_is_reached_through_its_role(sk: Snapkeep) -> None:
    inbox = Inbox(sk, name="team-events", region="eu-west-1", account=SECOND_ACCOUNT)
    assert Arn.parse(inbox.topic_arn).account == SECOND_ACCOUNT
    sk.service.put_backup_vault_notifications("main", inbox.topic_arn, ["BACKUP_JOB_COMPLETED"])
    job_id, _, _ = backed_up(sk)
    [message] = inbox.messages()
    assert (message["EventType"], message["State"], message["Id"]) == ("BACKUP_JOB", "COMPLETED", job_id)
    [row] = outbox(sk)
    assert row["delivered_at"] is not None and row["attempts"] == 1
