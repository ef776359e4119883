"""Table definitions of the catalog (SQLAlchemy Core). Alembic migrations under `migrations/` create them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Stores UTC instants; always hands back aware UTC datetimes, on SQLite too (which keeps no offset)."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the catalog")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _created() -> sa.Column[datetime]:
    return sa.Column("creation_date", UTCDateTime(), nullable=False)


protected_accounts = sa.Table(
    "protected_accounts",
    metadata,
    sa.Column("account_id", sa.String(12), primary_key=True),
    sa.Column("role_arn", sa.String(2048), nullable=True),  # None: the account of Snapkeep's own credentials
    sa.Column("regions", sa.JSON(), nullable=False),
    _created(),
)

backup_vaults = sa.Table(
    "backup_vaults",
    metadata,
    sa.Column("name", sa.String(50), primary_key=True),
    sa.Column("arn", sa.String(2048), nullable=False, unique=True),
    sa.Column("encryption_key_arn", sa.String(2048), nullable=True),
    sa.Column("creator_request_id", sa.String(255), nullable=True),
    sa.Column("tags", sa.JSON(), nullable=False),
    sa.Column("lock_min_retention_days", sa.Integer(), nullable=True),
    sa.Column("lock_max_retention_days", sa.Integer(), nullable=True),
    sa.Column("lock_date", UTCDateTime(), nullable=True),
    sa.Column("locked", sa.Boolean(), nullable=False, server_default=sa.false()),
    # The resource policy as the client sent it (a JSON document string), and SNS notifications: the topic and
    # the BackupVaultEvents it is told about.
    sa.Column("access_policy", sa.Text(), nullable=True),
    sa.Column("notification_topic_arn", sa.String(2048), nullable=True),
    sa.Column("notification_events", sa.JSON(), nullable=True),
    # Where this vault sends an image-level backup of each recovery point (engine.repositories):
    # {"Url": "s3://bucket/prefix" or a local path, "KmsKeyArn": key wrapping the repository's master key or null}.
    sa.Column("image_repository", sa.JSON(), nullable=True),
    _created(),
)

backup_plans = sa.Table(
    "backup_plans",
    metadata,
    sa.Column("plan_id", sa.String(64), primary_key=True),
    sa.Column("arn", sa.String(2048), nullable=False, unique=True),
    sa.Column("name", sa.String(50), nullable=False),
    sa.Column("version_id", sa.String(64), nullable=False),
    sa.Column("plan", sa.JSON(), nullable=False),  # the current version, in AWS Backup's JSON shape
    sa.Column("creator_request_id", sa.String(255), nullable=True),
    sa.Column("tags", sa.JSON(), nullable=False),
    sa.Column("last_execution_date", UTCDateTime(), nullable=True),
    sa.Column("deletion_date", UTCDateTime(), nullable=True),
    _created(),
)

backup_plan_versions = sa.Table(
    "backup_plan_versions",
    metadata,
    sa.Column("plan_id", sa.String(64), sa.ForeignKey("backup_plans.plan_id"), primary_key=True),
    sa.Column("version_id", sa.String(64), primary_key=True),
    sa.Column("plan", sa.JSON(), nullable=False),
    _created(),
)

backup_selections = sa.Table(
    "backup_selections",
    metadata,
    sa.Column("selection_id", sa.String(64), primary_key=True),
    sa.Column("plan_id", sa.String(64), sa.ForeignKey("backup_plans.plan_id"), nullable=False, index=True),
    sa.Column("name", sa.String(50), nullable=False),
    sa.Column("selection", sa.JSON(), nullable=False),  # AWS Backup's BackupSelection JSON shape
    sa.Column("creator_request_id", sa.String(255), nullable=True),
    _created(),
)

# The scheduler's durable memory: the last run time handed out per rule, so a restart neither loses nor
# repeats a run.
rule_cursors = sa.Table(
    "rule_cursors",
    metadata,
    sa.Column("plan_id", sa.String(64), primary_key=True),
    sa.Column("rule_name", sa.String(50), primary_key=True),
    sa.Column("last_run", UTCDateTime(), nullable=False),
)

scheduled_runs = sa.Table(
    "scheduled_runs",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("plan_id", sa.String(64), nullable=False),
    sa.Column("rule_name", sa.String(50), nullable=False),
    sa.Column("scheduled_at", UTCDateTime(), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # CREATED, RESOLVED, EXPIRED, FAILED
    sa.Column("message", sa.Text(), nullable=True),
    _created(),
    sa.UniqueConstraint("plan_id", "rule_name", "scheduled_at", name="uq_scheduled_runs_rule_time"),
)

backup_jobs = sa.Table(
    "backup_jobs",
    metadata,
    sa.Column("job_id", sa.String(64), primary_key=True),
    sa.Column("idempotency_key", sa.String(512), nullable=False, unique=True),
    sa.Column("account_id", sa.String(12), nullable=False),
    sa.Column("region", sa.String(32), nullable=False),
    sa.Column("backup_vault_name", sa.String(50), nullable=False, index=True),
    sa.Column("resource_arn", sa.String(2048), nullable=False, index=True),
    sa.Column("resource_type", sa.String(32), nullable=False),
    sa.Column("resource_name", sa.String(256), nullable=True),
    sa.Column("plan_id", sa.String(64), nullable=True),
    sa.Column("plan_version_id", sa.String(64), nullable=True),
    sa.Column("rule_name", sa.String(50), nullable=True),
    sa.Column("run_id", sa.String(64), nullable=True),
    sa.Column("iam_role_arn", sa.String(2048), nullable=True),
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("status_message", sa.Text(), nullable=True),
    sa.Column("percent_done", sa.Float(), nullable=False, server_default="0"),
    sa.Column("lifecycle", sa.JSON(), nullable=True),
    sa.Column("recovery_point_tags", sa.JSON(), nullable=False),
    sa.Column("recovery_point_arn", sa.String(2048), nullable=True),
    sa.Column("backup_size_bytes", sa.BigInteger(), nullable=True),
    sa.Column("scheduled_at", UTCDateTime(), nullable=True),
    sa.Column("start_by", UTCDateTime(), nullable=False),
    sa.Column("complete_by", UTCDateTime(), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=True),
    sa.Column("completion_date", UTCDateTime(), nullable=True),
    sa.Column("step", sa.String(32), nullable=False),  # the resumable step the job is in
    sa.Column("step_data", sa.JSON(), nullable=False),  # AWS ids recorded before and after each call
    # Bumped by every write: a writer holding an older version lost a race (a stop, another worker) and must
    # reload instead of overwriting.
    sa.Column("version", sa.Integer(), nullable=False, server_default="0"),
    _created(),
)

recovery_points = sa.Table(
    "recovery_points",
    metadata,
    sa.Column("recovery_point_arn", sa.String(2048), primary_key=True),
    sa.Column("backup_vault_name", sa.String(50), nullable=False, index=True),
    sa.Column("account_id", sa.String(12), nullable=False),
    sa.Column("region", sa.String(32), nullable=False),
    sa.Column("resource_arn", sa.String(2048), nullable=False, index=True),
    sa.Column("resource_type", sa.String(32), nullable=False),
    sa.Column("resource_name", sa.String(256), nullable=True),
    sa.Column("backup_job_id", sa.String(64), nullable=False),
    sa.Column("plan_id", sa.String(64), nullable=True),
    sa.Column("rule_name", sa.String(50), nullable=True),
    sa.Column("iam_role_arn", sa.String(2048), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("status_message", sa.Text(), nullable=True),
    sa.Column("storage_class", sa.String(16), nullable=False),
    sa.Column("lifecycle", sa.JSON(), nullable=True),
    sa.Column("move_to_cold_at", UTCDateTime(), nullable=True),
    sa.Column("delete_at", UTCDateTime(), nullable=True),
    sa.Column("is_encrypted", sa.Boolean(), nullable=False),
    sa.Column("backup_size_bytes", sa.BigInteger(), nullable=False),
    sa.Column("tags", sa.JSON(), nullable=False),
    sa.Column("image_id", sa.String(64), nullable=True),
    # The instance's configuration (type, subnet, security groups, key, profile, tags, block devices) and
    # each volume with its snapshot: enough to restore, and to rebuild this row from AWS.
    sa.Column("instance", sa.JSON(), nullable=True),
    sa.Column("volumes", sa.JSON(), nullable=False),
    # The point's image-level backup, when its vault has a repository: {"RepositoryUrl", "ImageId",
    # "Disks": {source VolumeId: {"SnapshotId", "Size"}}, "BackupSizeInBytes", "StoredBytes", "CompletionDate"}.
    # Its snapshots are kept until MoveToColdStorageAt (the point then turns COLD), the image backup until DeleteAt.
    sa.Column("image_backup", sa.JSON(), nullable=True),
    sa.Column("completion_date", UTCDateTime(), nullable=True),
    _created(),
)

restore_jobs = sa.Table(
    "restore_jobs",
    metadata,
    sa.Column("restore_job_id", sa.String(64), primary_key=True),
    sa.Column("idempotency_token", sa.String(255), nullable=True, unique=True),
    sa.Column("recovery_point_arn", sa.String(2048), nullable=False, index=True),
    sa.Column("resource_type", sa.String(32), nullable=False),
    sa.Column("account_id", sa.String(12), nullable=False),
    sa.Column("region", sa.String(32), nullable=False),
    sa.Column("metadata", sa.JSON(), nullable=False),
    sa.Column("iam_role_arn", sa.String(2048), nullable=True),
    sa.Column("copy_source_tags", sa.Boolean(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("status_message", sa.Text(), nullable=True),
    sa.Column("percent_done", sa.Float(), nullable=False, server_default="0"),
    sa.Column("created_resource_arn", sa.String(2048), nullable=True),
    sa.Column("step", sa.String(32), nullable=False),
    sa.Column("step_data", sa.JSON(), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("completion_date", UTCDateTime(), nullable=True),
    _created(),
)

# The durable work queue. A worker claims a task by taking its lease; a lease that runs out (the worker died)
# lets another worker claim it and resume the job from the step it recorded.
tasks = sa.Table(
    "tasks",
    metadata,
    sa.Column("task_id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("ref_id", sa.String(128), nullable=False),
    sa.Column("state", sa.String(16), nullable=False, index=True),  # READY, DONE
    sa.Column("not_before", UTCDateTime(), nullable=False),
    sa.Column("lease_owner", sa.String(128), nullable=True),
    sa.Column("lease_until", UTCDateTime(), nullable=True),
    sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text(), nullable=True),
    _created(),
    sa.UniqueConstraint("kind", "ref_id", name="uq_tasks_kind_ref"),
)

# API keys for SigV4 (snapkeep.api.keys): the secret is AES-256-GCM encrypted with SNAPKEEP_HOME/master.key,
# base64 of nonce || ciphertext || tag, the access key id as associated data.
api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("access_key_id", sa.String(20), primary_key=True),
    sa.Column("user_name", sa.String(64), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),  # admin, operator, viewer
    sa.Column("secret_ciphertext", sa.String(128), nullable=False),
    sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.true()),
    _created(),
)

# Legal holds: a hold keeps every recovery point it names (chosen when the hold is created) from deletion by any
# path until it is canceled.
legal_holds = sa.Table(
    "legal_holds",
    metadata,
    sa.Column("legal_hold_id", sa.String(64), primary_key=True),
    sa.Column("arn", sa.String(2048), nullable=False, unique=True),
    sa.Column("title", sa.String(256), nullable=False),
    sa.Column("description", sa.Text(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # CREATING, ACTIVE, CANCELING, CANCELED
    sa.Column("idempotency_token", sa.String(255), nullable=True, unique=True),
    sa.Column("recovery_point_selection", sa.JSON(), nullable=True),
    sa.Column("tags", sa.JSON(), nullable=False),
    sa.Column("cancel_description", sa.Text(), nullable=True),
    sa.Column("cancellation_date", UTCDateTime(), nullable=True),
    sa.Column("retain_record_until", UTCDateTime(), nullable=True),
    _created(),
)

legal_hold_points = sa.Table(
    "legal_hold_points",
    metadata,
    sa.Column("legal_hold_id", sa.String(64), sa.ForeignKey("legal_holds.legal_hold_id"), primary_key=True),
    sa.Column("recovery_point_arn", sa.String(2048), primary_key=True, index=True),
)

# Describe/UpdateRegionSettings: one row per setting (ResourceTypeOptInPreference,
# ResourceTypeManagementPreference), the value in AWS's JSON shape.
region_settings = sa.Table(
    "region_settings",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.JSON(), nullable=False),
)

# The notifications outbox: written in the same transaction as the event it reports, published to SNS by a
# worker afterwards, so a crash neither loses nor invents a notification.
vault_events = sa.Table(
    "vault_events",
    metadata,
    sa.Column("event_id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("backup_vault_name", sa.String(50), nullable=False),
    sa.Column("event", sa.String(64), nullable=False),
    sa.Column("topic_arn", sa.String(2048), nullable=False),
    sa.Column("message", sa.JSON(), nullable=False),
    sa.Column("delivered_at", UTCDateTime(), nullable=True, index=True),
    sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text(), nullable=True),
    _created(),
)
