"""What the reporting operations decide (pure): a job's message category, which jobs a ListBackupJobs filter
keeps, the counts of ListBackupJobSummaries, and the region settings (service opt-in) with their rules.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from difflib import get_close_matches
from enum import StrEnum
from typing import Any

from snapkeep.domain.errors import InvalidParameterValue, InvalidRequest, MissingParameterValue
from snapkeep.domain.jobs import BackupJobState
from snapkeep.domain.selection import arn_pattern_matches

ANY = "ANY"
AGGREGATE_ALL = "AGGREGATE_ALL"
SUMMARY_DAYS = 30  # ListBackupJobSummaries counts jobs of the last 30 days (API reference, BackupJobSummary)


# -- message categories ----------------------------------------------------------------------------------------
class MessageCategory(StrEnum):
    """Why a job ended as it did, as one word: AWS Backup's MessageCategory.

    AWS documents SUCCESS and gives AccessDenied and InvalidParameters as examples of the rest (spelling varies
    between its pages), pointing to the console's jobs dashboard for the list. Snapkeep's list covers every way
    its own jobs end. A filter matches case-insensitively and ignores '_', so ``AccessDenied`` finds
    ``ACCESS_DENIED``. A job still under way with nothing to report has no category.
    """

    SUCCESS = "SUCCESS"
    ACCESS_DENIED = "ACCESS_DENIED"
    INVALID_PARAMETERS = "INVALID_PARAMETERS"
    RESOURCE_NOT_FOUND = "RESOURCE_NOT_FOUND"
    INVALID_RESOURCE_STATE = "INVALID_RESOURCE_STATE"
    LIMIT_EXCEEDED = "LIMIT_EXCEEDED"
    STOPPED = "STOPPED"
    WINDOW_CLOSED = "WINDOW_CLOSED"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    UNKNOWN = "UNKNOWN"


# Checked in this order: the first pattern found in the status message decides. Not-found before invalid
# parameters, because EC2 names missing things `InvalidInstanceID.NotFound`.
_MESSAGE_PATTERNS: tuple[tuple[MessageCategory, re.Pattern[str]], ...] = tuple(
    (category, re.compile(pattern, re.IGNORECASE))
    for category, pattern in (
        (MessageCategory.STOPPED, r"\bwas stopped\b|\bstopped on request\b"),
        (MessageCategory.WINDOW_CLOSED, r"\bwindow closed\b"),
        (MessageCategory.ACCESS_DENIED, r"AccessDenied|Unauthorized|AuthFailure|not authori[sz]ed|access denied"),
        (MessageCategory.RESOURCE_NOT_FOUND, r"NotFound|not found|does not exist|\bis terminated\b"),
        (MessageCategory.INVALID_RESOURCE_STATE, r"IncorrectState|IncorrectInstanceState|InvalidResourceState|"
                                                 r"\bhas no EBS volumes\b|\bchanged while\b|\bsnapshot of the "
                                                 r"instance failed\b"),
        (MessageCategory.LIMIT_EXCEEDED, r"LimitExceeded|limit exceeded|Throttl|RequestLimit"),
        (MessageCategory.INVALID_PARAMETERS, r"InvalidParameter|ValidationException|\binvalid\b|\bnot valid\b"),
        (MessageCategory.INTERNAL_ERROR, r"^Internal error\b"),
    )
)

_LIVE = frozenset({BackupJobState.CREATED, BackupJobState.PENDING, BackupJobState.RUNNING, BackupJobState.ABORTING})


def message_category(state: str, status_message: str | None) -> MessageCategory | None:
    """The category of a job from its state and status message.

    A COMPLETED job without a message is SUCCESS; with one it is "completed with issues" (AWS: COMPLETED and a
    category other than SUCCESS), categorised by its message like a failure. A live job without a message has
    none yet; a job that ended without success and says nothing recognisable is UNKNOWN.
    """
    job_state = BackupJobState(state)
    message = (status_message or "").strip()
    if not message:
        if job_state is BackupJobState.COMPLETED:
            return MessageCategory.SUCCESS
        if job_state in _LIVE:
            return None
        if job_state is BackupJobState.EXPIRED:
            return MessageCategory.WINDOW_CLOSED
        return MessageCategory.UNKNOWN
    for category, pattern in _MESSAGE_PATTERNS:
        if pattern.search(message):
            return category
    return MessageCategory.UNKNOWN


def _folded(text: str) -> str:
    return re.sub(r"[^A-Z0-9]", "", text.upper())


_BY_FOLDED = {_folded(c.value): c for c in MessageCategory}


def parse_message_category(value: str | None, *, field: str = "MessageCategory") -> MessageCategory | str | None:
    """A category filter: None (absent), ANY, AGGREGATE_ALL or a MessageCategory; anything else is refused.

    ``*`` is read as ANY (ListBackupJobs documents a wildcard that returns every category).
    """
    if value is None or value == "":
        return None
    if value in ("*", ANY):
        return ANY
    if value == AGGREGATE_ALL:
        return AGGREGATE_ALL
    category = _BY_FOLDED.get(_folded(value))
    if category is None:
        raise InvalidParameterValue(
            f"{field}: '{value}' is not a message category; use one of "
            f"{', '.join(c.value for c in MessageCategory)}, {ANY} or {AGGREGATE_ALL}",
            field=field,
        )
    return category


# -- resource types and region settings ------------------------------------------------------------------------
# The resource type names of AWS Backup (botocore's model, GetSupportedResourceTypes; DescribeRegionSettings of a
# current account adds DSQL and Redshift Serverless).
RESOURCE_TYPES = (
    "Aurora", "CloudFormation", "DocumentDB", "DSQL", "DynamoDB", "EBS", "EC2", "EFS", "EKS", "FSx", "Neptune",
    "RDS", "Redshift", "Redshift Serverless", "S3", "SAP HANA on Amazon EC2", "Storage Gateway", "Timestream",
    "VirtualMachine",
)
# The types whose backups AWS Backup can manage fully (ResourceTypeManagementPreference).
MANAGEMENT_RESOURCE_TYPES = ("CloudFormation", "DSQL", "DynamoDB", "EFS")
OPT_IN = "ResourceTypeOptInPreference"
MANAGEMENT = "ResourceTypeManagementPreference"


def check_resource_type(value: str, *, field: str, allowed: Sequence[str] = RESOURCE_TYPES) -> str:
    if value in allowed:
        return value
    close = get_close_matches(value, allowed, n=1, cutoff=0.6) or [
        t for t in allowed if t.lower() == value.lower()
    ]
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise InvalidParameterValue(
        f"{field}: '{value}' is not an AWS Backup resource type{hint}; use one of {', '.join(allowed)}",
        field=field,
    )


def default_region_settings() -> dict[str, dict[str, bool]]:
    """A fresh account: opted in to every resource type, and full AWS Backup management wherever it exists.

    AWS: an account that starts using AWS Backup in a Region is opted in to every resource type supported there
    at that time ("Service opt-in"); advanced DynamoDB backup is on by default for accounts since November 2021.
    """
    return {
        OPT_IN: dict.fromkeys(RESOURCE_TYPES, True),
        MANAGEMENT: dict.fromkeys(MANAGEMENT_RESOURCE_TYPES, True),
    }


def effective_region_settings(stored: Mapping[str, Mapping[str, bool]]) -> dict[str, dict[str, bool]]:
    """The defaults with what was set through UpdateRegionSettings laid over them."""
    settings = default_region_settings()
    for name, values in stored.items():
        if name in settings:
            settings[name].update({k: bool(v) for k, v in values.items()})
    return settings


def region_settings_update(
    stored: Mapping[str, Mapping[str, bool]],
    opt_in: Mapping[str, bool] | None,
    management: Mapping[str, bool] | None,
) -> dict[str, dict[str, bool]]:
    """The stored settings after UpdateRegionSettings: only the types named change, as in AWS."""
    if not opt_in and not management:
        raise MissingParameterValue(
            f"{OPT_IN} or {MANAGEMENT} is required (a map of resource type to true or false)", field=OPT_IN
        )
    changes = {OPT_IN: (opt_in or {}, RESOURCE_TYPES), MANAGEMENT: (management or {}, MANAGEMENT_RESOURCE_TYPES)}
    result = {name: dict(values) for name, values in stored.items()}
    for name, (values, allowed) in changes.items():
        for resource_type, enabled in values.items():
            check_resource_type(resource_type, field=f"{name}.{resource_type}", allowed=allowed)
            if not isinstance(enabled, bool):
                raise InvalidParameterValue(f"{name}.{resource_type}: must be true or false", field=name)
        if values:
            result[name] = {**result.get(name, {}), **values}
    return result


def check_opted_in(settings: Mapping[str, Mapping[str, bool]], resource_type: str, resource_arn: str) -> None:
    """StartBackupJob for a resource type opted out in the region settings is refused (nothing is recorded)."""
    if not settings[OPT_IN].get(resource_type, False):
        raise InvalidRequest(
            f"ResourceArn: resource type {resource_type} is opted out in this Region's settings, so {resource_arn} "
            f"cannot be backed up; opt in with UpdateRegionSettings ({OPT_IN} {resource_type}=true)",
            field="ResourceArn",
        )


def assigned_explicitly(resource_patterns: Iterable[str], resource_arn: str) -> bool:
    """Whether a selection names the resource (or its type) in Resources rather than reaching it by tags or '*'.

    AWS ("Service opt-in"; UpdateRegionSettings): opt-in applies when resources are assigned by tags only; a
    resource type assigned explicitly (an ARN or ARN pattern such as ``arn:aws:ec2:*:*:instance/*``) is backed
    up even when opted out. ``*`` alone means "all supported, opted-in resources".
    """
    return any(p != "*" and arn_pattern_matches(p, resource_arn) for p in resource_patterns)


def opted_out(
    picked: Mapping[str, str], explicit: Iterable[str], settings: Mapping[str, Mapping[str, bool]]
) -> list[str]:
    """The resources of a scheduled run to leave out: `picked` maps ARN -> resource type; those assigned
    explicitly are kept whatever the opt-in says."""
    keep = set(explicit)
    opt_in = settings[OPT_IN]
    return sorted(a for a, kind in picked.items() if a not in keep and not opt_in.get(kind, False))


# -- ListBackupJobs filters and paging -------------------------------------------------------------------------
@dataclass(frozen=True)
class BackupJobFilter:
    """Every filter of ListBackupJobs. Times are exclusive bounds; `message_category` None or ANY keeps all."""

    state: str | None = None
    vault: str | None = None
    resource_arn: str | None = None
    resource_type: str | None = None
    account_id: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    complete_after: datetime | None = None
    complete_before: datetime | None = None
    parent_job_id: str | None = None
    message_category: MessageCategory | str | None = None

    def keeps_category(self, category: MessageCategory | None) -> bool:
        if self.message_category in (None, ANY, AGGREGATE_ALL):
            return True
        return category is self.message_category


def backup_job_filter(
    *,
    state: str | None = None,
    vault: str | None = None,
    resource_arn: str | None = None,
    resource_type: str | None = None,
    account_id: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    complete_after: datetime | None = None,
    complete_before: datetime | None = None,
    parent_job_id: str | None = None,
    message_category: str | None = None,
) -> BackupJobFilter:
    """The filters checked: state, resource type and category must be names AWS Backup knows."""
    if state is not None and state not in BackupJobState.__members__:
        raise InvalidParameterValue(
            f"ByState: '{state}' is not a backup job state; use one of {', '.join(BackupJobState)}", field="ByState"
        )
    if resource_type is not None:
        check_resource_type(resource_type, field="ByResourceType")
    if account_id is not None and not re.fullmatch(r"\d{12}", account_id):
        raise InvalidParameterValue(f"ByAccountId: '{account_id}' is not a 12-digit account id", field="ByAccountId")
    for name, value in (("ByCreatedAfter", created_after), ("ByCreatedBefore", created_before),
                        ("ByCompleteAfter", complete_after), ("ByCompleteBefore", complete_before)):
        if value is not None and value.tzinfo is None:
            raise InvalidParameterValue(f"{name}: must carry a time zone", field=name)
    return BackupJobFilter(
        state=state,
        vault=vault or None,
        resource_arn=resource_arn or None,
        resource_type=resource_type,
        account_id=account_id,
        created_after=created_after,
        created_before=created_before,
        complete_after=complete_after,
        complete_before=complete_before,
        parent_job_id=parent_job_id or None,
        message_category=parse_message_category(message_category, field="ByMessageCategory"),
    )


def encode_job_cursor(creation_date: datetime, job_id: str) -> str:
    """A NextToken that names the last job of a page (not an offset), so jobs created meanwhile shift nothing."""
    raw = json.dumps({"c": creation_date.astimezone(UTC).isoformat(), "j": job_id}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode()


def decode_job_cursor(token: str) -> tuple[datetime, str]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()).decode())
        when = datetime.fromisoformat(data["c"])
        job_id = data["j"]
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidParameterValue("NextToken is not valid", field="NextToken") from exc
    if when.tzinfo is None or not isinstance(job_id, str):
        raise InvalidParameterValue("NextToken is not valid", field="NextToken")
    return when, job_id


# -- ListBackupJobSummaries ------------------------------------------------------------------------------------
class AggregationPeriod(StrEnum):
    ONE_DAY = "ONE_DAY"
    SEVEN_DAYS = "SEVEN_DAYS"
    FOURTEEN_DAYS = "FOURTEEN_DAYS"


@dataclass(frozen=True)
class JobFact:
    """What a summary needs of one backup job."""

    region: str
    account_id: str
    state: str
    resource_type: str
    message_category: MessageCategory | None
    creation_date: datetime


@dataclass(frozen=True)
class SummaryRequest:
    """The dimensions of a summary: None or ANY counts per value, AGGREGATE_ALL sums over all, else filters."""

    aggregation_period: AggregationPeriod = AggregationPeriod.ONE_DAY
    account_id: str | None = None
    state: str | None = None
    resource_type: str | None = None
    message_category: MessageCategory | str | None = None


def summary_request(
    *,
    aggregation_period: str | None = None,
    account_id: str | None = None,
    state: str | None = None,
    resource_type: str | None = None,
    message_category: str | None = None,
) -> SummaryRequest:
    period = aggregation_period or AggregationPeriod.ONE_DAY.value
    if period not in AggregationPeriod.__members__:
        raise InvalidParameterValue(
            f"AggregationPeriod: '{period}' is not one of {', '.join(AggregationPeriod)}", field="AggregationPeriod"
        )
    if account_id not in (None, "", ANY, AGGREGATE_ALL) and not re.fullmatch(r"\d{12}", str(account_id)):
        raise InvalidParameterValue(
            f"AccountId: '{account_id}' is not a 12-digit account id, {ANY} or {AGGREGATE_ALL}", field="AccountId"
        )
    if state not in (None, "", ANY, AGGREGATE_ALL) and state not in BackupJobState.__members__:
        raise InvalidParameterValue(
            f"State: '{state}' is not one of {', '.join(BackupJobState)}, {ANY} or {AGGREGATE_ALL}", field="State"
        )
    if resource_type not in (None, "", ANY, AGGREGATE_ALL):
        check_resource_type(str(resource_type), field="ResourceType")
    return SummaryRequest(
        aggregation_period=AggregationPeriod(period),
        account_id=account_id or None,
        state=state or None,
        resource_type=resource_type or None,
        message_category=parse_message_category(message_category),
    )


@dataclass(frozen=True)
class JobSummary:
    region: str
    account_id: str | None
    state: str
    resource_type: str
    message_category: str | None
    count: int
    start_time: datetime
    end_time: datetime

    def to_aws(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "Region": self.region,
            "AccountId": self.account_id,
            "State": self.state,
            "ResourceType": self.resource_type,
            "MessageCategory": self.message_category,
            "Count": self.count,
            "StartTime": self.start_time,
            "EndTime": self.end_time,
        }
        return {k: v for k, v in out.items() if v is not None}


@dataclass(frozen=True)
class _Window:
    start: datetime
    end: datetime  # exclusive
    shown_end: datetime = field(compare=False)


def summary_windows(period: AggregationPeriod, now: datetime) -> list[_Window]:
    """The periods counted, oldest first, aligned on UTC days with today's included (its end shown as `now`).

    ONE_DAY: each of the last 30 days; SEVEN_DAYS and FOURTEEN_DAYS: one period of the last 7 or 14 days. (The
    API reference says both "the prior 14 days" for ONE_DAY and "the most recent 30 days" for summaries; Snapkeep
    gives the 30 daily counts.)
    """
    now = now.astimezone(UTC)
    tomorrow = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
    if period is AggregationPeriod.ONE_DAY:
        starts = [tomorrow - timedelta(days=n) for n in range(SUMMARY_DAYS, 0, -1)]
        return [_Window(s, s + timedelta(days=1), min(s + timedelta(days=1), now)) for s in starts]
    days = 7 if period is AggregationPeriod.SEVEN_DAYS else 14
    return [_Window(tomorrow - timedelta(days=days), tomorrow, now)]


def summary_since(now: datetime) -> datetime:
    """The oldest creation date any summary counts (what to read from the catalog)."""
    return min(w.start for w in summary_windows(AggregationPeriod.ONE_DAY, now))


def _dimension(wanted: str | MessageCategory | None, actual: str | None) -> tuple[bool, str | None]:
    """(counted?, value shown) of one dimension of one job."""
    if wanted in (None, ANY):
        return True, actual
    if wanted == AGGREGATE_ALL:
        return True, AGGREGATE_ALL
    return actual == wanted, actual


def summarize(jobs: Iterable[JobFact], request: SummaryRequest, now: datetime) -> list[JobSummary]:
    """Counts of jobs per period and Region, account, state, resource type and message category, as
    ListBackupJobSummaries gives them; groups with no job are left out. Sorted by period, then the dimensions."""
    windows = summary_windows(request.aggregation_period, now)
    counts: Counter[tuple[int, str, str | None, str, str, str | None]] = Counter()
    for job in jobs:
        at = job.creation_date.astimezone(UTC)
        slot = next((i for i, w in enumerate(windows) if w.start <= at < w.end), None)
        if slot is None:
            continue
        category = job.message_category.value if job.message_category else None
        dims = (
            _dimension(request.account_id, job.account_id),
            _dimension(request.state, job.state),
            _dimension(request.resource_type, job.resource_type),
            _dimension(request.message_category, category),
        )
        if all(kept for kept, _ in dims):
            account, state, resource_type, shown_category = (shown for _, shown in dims)
            counts[(slot, job.region, account, str(state), str(resource_type), shown_category)] += 1
    rows = [
        JobSummary(region, account, state, resource_type, category, n, windows[slot].start, windows[slot].shown_end)
        for (slot, region, account, state, resource_type, category), n in counts.items()
    ]
    return sorted(rows, key=lambda r: (r.start_time, r.region, r.account_id or "", r.state, r.resource_type,
                                       r.message_category or ""))
