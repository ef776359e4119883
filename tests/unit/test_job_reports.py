from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from snapkeep.domain.errors import InvalidParameterValue, InvalidRequest, MissingParameterValue
from snapkeep.domain.job_reports import (
    AGGREGATE_ALL,
    ANY,
    MANAGEMENT,
    OPT_IN,
    RESOURCE_TYPES,
    AggregationPeriod,
    JobFact,
    MessageCategory,
    assigned_explicitly,
    backup_job_filter,
    check_opted_in,
    decode_job_cursor,
    effective_region_settings,
    encode_job_cursor,
    message_category,
    opted_out,
    parse_message_category,
    region_settings_update,
    summarize,
    summary_request,
    summary_windows,
)
from snapkeep.domain.jobs import BackupJobState

NOW = datetime(2026, 3, 20, 15, 30, tzinfo=UTC)
INSTANCE = "arn:aws:ec2:us-east-1:123456789012:instance/i-0abc"


# -- message categories ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("state", "message", "category"),
    [
        ("COMPLETED", None, MessageCategory.SUCCESS),
        ("COMPLETED", "", MessageCategory.SUCCESS),
        ("ABORTED", "Backup job was stopped", MessageCategory.STOPPED),
        ("EXPIRED", "The start window closed before the job could start", MessageCategory.WINDOW_CLOSED),
        ("ABORTED", "The completion window closed before the backup finished", MessageCategory.WINDOW_CLOSED),
        ("FAILED", "DescribeInstances failed: InvalidInstanceID.NotFound: The instance ID 'i-1' does not exist",
         MessageCategory.RESOURCE_NOT_FOUND),
        ("FAILED", "instance i-0abc is terminated", MessageCategory.RESOURCE_NOT_FOUND),
        ("FAILED", "AssumeRole failed: AccessDenied: User is not authorized to perform sts:AssumeRole",
         MessageCategory.ACCESS_DENIED),
        ("FAILED", "CreateSnapshots failed: UnauthorizedOperation: You are not authorized",
         MessageCategory.ACCESS_DENIED),
        ("FAILED", "RegisterImage failed: InvalidParameterValue: bad architecture", MessageCategory.INVALID_PARAMETERS),
        ("FAILED", "instance i-0abc has no EBS volumes to back up", MessageCategory.INVALID_RESOURCE_STATE),
        ("FAILED", "CreateSnapshots failed: SnapshotLimitExceeded: too many", MessageCategory.LIMIT_EXCEEDED),
        ("FAILED", "Internal error: KeyError: 'config'", MessageCategory.INTERNAL_ERROR),
        ("FAILED", "something nobody foresaw", MessageCategory.UNKNOWN),
        ("FAILED", None, MessageCategory.UNKNOWN),
        ("EXPIRED", None, MessageCategory.WINDOW_CLOSED),
        ("CREATED", None, None),
        ("RUNNING", None, None),
        ("ABORTING", None, None),
        ("COMPLETED", "Backup job was stopped; cleanup failed (boom); may be left behind: none",
         MessageCategory.STOPPED),
    ],
)
def test_message_category(state: str, message: str | None, category: MessageCategory | None) -> None:
    assert message_category(state, message) == category


@given(st.sampled_from(list(BackupJobState)), st.text(min_size=1).filter(str.strip))
def test_a_job_with_a_message_is_never_success(state: BackupJobState, message: str) -> None:
    """AWS: "completed with issues" is COMPLETED with a category other than SUCCESS."""
    category = message_category(state.value, message)
    assert category is not None and category is not MessageCategory.SUCCESS


@pytest.mark.parametrize(
    ("given_", "parsed"),
    [
        ("SUCCESS", MessageCategory.SUCCESS),
        ("Success", MessageCategory.SUCCESS),
        ("AccessDenied", MessageCategory.ACCESS_DENIED),
        ("access_denied", MessageCategory.ACCESS_DENIED),
        ("InvalidParameters", MessageCategory.INVALID_PARAMETERS),
        ("ANY", ANY),
        ("*", ANY),
        ("AGGREGATE_ALL", AGGREGATE_ALL),
        (None, None),
    ],
)
def test_category_filters_are_read_leniently(given_: str | None, parsed: object) -> None:
    assert parse_message_category(given_) == parsed


def test_unknown_category_is_refused_with_the_list() -> None:
    with pytest.raises(InvalidParameterValue) as err:
        parse_message_category("Sucess", field="ByMessageCategory")
    assert err.value.field == "ByMessageCategory"
    assert "ACCESS_DENIED" in err.value.message and "AGGREGATE_ALL" in err.value.message


# -- ListBackupJobs filters and tokens -------------------------------------------------------------------------
def test_job_filter_checks_names() -> None:
    f = backup_job_filter(state="FAILED", resource_type="EC2", account_id="123456789012",
                          message_category="ResourceNotFound")
    assert f.message_category is MessageCategory.RESOURCE_NOT_FOUND
    assert f.keeps_category(MessageCategory.RESOURCE_NOT_FOUND) and not f.keeps_category(None)
    assert backup_job_filter().keeps_category(None)
    with pytest.raises(InvalidParameterValue, match="ByState"):
        backup_job_filter(state="DONE")
    with pytest.raises(InvalidParameterValue, match="did you mean 'EC2'"):
        backup_job_filter(resource_type="ec2")
    with pytest.raises(InvalidParameterValue, match="ByAccountId"):
        backup_job_filter(account_id="1234")
    with pytest.raises(InvalidParameterValue, match="time zone"):
        backup_job_filter(created_after=datetime(2026, 1, 1))


@given(st.datetimes(timezones=st.just(UTC)), st.text(min_size=1, max_size=40))
def test_job_cursor_round_trips(when: datetime, job_id: str) -> None:
    assert decode_job_cursor(encode_job_cursor(when, job_id)) == (when, job_id)


@pytest.mark.parametrize("token", ["", "not base64!", "MTA=", "eyJjIjoiMjAyNi0wMS0wMSJ9"])
def test_bad_cursor_is_refused(token: str) -> None:
    with pytest.raises(InvalidParameterValue) as err:
        decode_job_cursor(token)
    assert err.value.field == "NextToken"


# -- region settings -------------------------------------------------------------------------------------------
def test_a_fresh_account_is_opted_in_to_everything() -> None:
    settings = effective_region_settings({})
    assert set(settings[OPT_IN]) == set(RESOURCE_TYPES) and all(settings[OPT_IN].values())
    assert settings[MANAGEMENT] == {"CloudFormation": True, "DSQL": True, "DynamoDB": True, "EFS": True}


def test_update_changes_only_the_types_named() -> None:
    stored = region_settings_update({}, {"EC2": False}, None)
    stored = region_settings_update(stored, {"RDS": False}, {"DynamoDB": False})
    assert stored == {OPT_IN: {"EC2": False, "RDS": False}, MANAGEMENT: {"DynamoDB": False}}
    settings = effective_region_settings(stored)
    assert not settings[OPT_IN]["EC2"] and not settings[OPT_IN]["RDS"] and settings[OPT_IN]["EBS"]
    assert settings[MANAGEMENT] == {"CloudFormation": True, "DSQL": True, "DynamoDB": False, "EFS": True}
    back = region_settings_update(stored, {"EC2": True}, None)
    assert effective_region_settings(back)[OPT_IN]["EC2"]


def test_update_refuses_unknown_types_and_management_of_types_without_it() -> None:
    with pytest.raises(InvalidParameterValue) as unknown:
        region_settings_update({}, {"Ec2": False}, None)
    assert "did you mean 'EC2'" in unknown.value.message
    assert unknown.value.message.startswith(f"{OPT_IN}.Ec2:")
    with pytest.raises(InvalidParameterValue, match=f"{MANAGEMENT}.EC2"):
        region_settings_update({}, None, {"EC2": True})
    with pytest.raises(MissingParameterValue):
        region_settings_update({}, None, {})


def test_opted_out_type_refuses_an_on_demand_backup() -> None:
    settings = effective_region_settings(region_settings_update({}, {"EC2": False}, None))
    with pytest.raises(InvalidRequest) as err:
        check_opted_in(settings, "EC2", INSTANCE)
    assert err.value.field == "ResourceArn" and "opted out" in err.value.message
    check_opted_in(effective_region_settings({}), "EC2", INSTANCE)


@pytest.mark.parametrize(
    ("patterns", "explicit"),
    [
        ([], False),
        (["*"], False),
        (["arn:aws:ec2:*:*:instance/*"], True),
        ([INSTANCE], True),
        (["arn:aws:ec2:us-east-1:123456789012:instance/i-other"], False),
        (["*", "arn:aws:ec2:*"], True),
    ],
)
def test_assigned_explicitly(patterns: list[str], explicit: bool) -> None:
    assert assigned_explicitly(patterns, INSTANCE) is explicit


def test_scheduled_runs_leave_out_opted_out_types_unless_assigned_explicitly() -> None:
    settings = effective_region_settings(region_settings_update({}, {"EC2": False}, None))
    picked = {"arn:a": "EC2", "arn:b": "EC2", "arn:c": "EBS"}
    assert opted_out(picked, {"arn:b"}, settings) == ["arn:a"]
    assert opted_out(picked, set(), effective_region_settings({})) == []


# -- job summaries ---------------------------------------------------------------------------------------------
def _job(days_ago: float, state: str = "COMPLETED", account: str = "123456789012", region: str = "us-east-1",
         category: MessageCategory | None = MessageCategory.SUCCESS) -> JobFact:
    return JobFact(region, account, state, "EC2", category, NOW - timedelta(days=days_ago))


def test_windows_are_utc_days_with_today_ending_now() -> None:
    daily = summary_windows(AggregationPeriod.ONE_DAY, NOW)
    assert len(daily) == 30
    assert daily[-1].start == datetime(2026, 3, 20, tzinfo=UTC) and daily[-1].shown_end == NOW
    assert daily[0].start == datetime(2026, 2, 19, tzinfo=UTC) and daily[0].shown_end == datetime(2026, 2, 20,
                                                                                                  tzinfo=UTC)
    week = summary_windows(AggregationPeriod.SEVEN_DAYS, NOW)
    assert [(w.start, w.shown_end) for w in week] == [(datetime(2026, 3, 14, tzinfo=UTC), NOW)]
    fortnight = summary_windows(AggregationPeriod.FOURTEEN_DAYS, NOW)
    assert fortnight[0].start == datetime(2026, 3, 7, tzinfo=UTC)


def test_daily_counts_per_state_and_category() -> None:
    jobs = [_job(0.1), _job(0.2), _job(0.3, "FAILED", category=MessageCategory.RESOURCE_NOT_FOUND),
            _job(1), _job(40)]
    rows = [r.to_aws() for r in summarize(jobs, summary_request(), NOW)]
    assert rows == [
        {"Region": "us-east-1", "AccountId": "123456789012", "State": "COMPLETED", "ResourceType": "EC2",
         "MessageCategory": "SUCCESS", "Count": 1, "StartTime": datetime(2026, 3, 19, tzinfo=UTC),
         "EndTime": datetime(2026, 3, 20, tzinfo=UTC)},
        {"Region": "us-east-1", "AccountId": "123456789012", "State": "COMPLETED", "ResourceType": "EC2",
         "MessageCategory": "SUCCESS", "Count": 2, "StartTime": datetime(2026, 3, 20, tzinfo=UTC), "EndTime": NOW},
        {"Region": "us-east-1", "AccountId": "123456789012", "State": "FAILED", "ResourceType": "EC2",
         "MessageCategory": "RESOURCE_NOT_FOUND", "Count": 1, "StartTime": datetime(2026, 3, 20, tzinfo=UTC),
         "EndTime": NOW},
    ]


def test_any_groups_aggregate_all_sums_and_a_value_filters() -> None:
    jobs = [_job(1), _job(2, "FAILED", category=MessageCategory.ACCESS_DENIED),
            _job(3, account="222222222222"), _job(3, region="eu-west-1"), _job(10), _job(0.5, "RUNNING", category=None)]
    week = summary_request(aggregation_period="SEVEN_DAYS", state=AGGREGATE_ALL, account_id=AGGREGATE_ALL,
                           message_category=AGGREGATE_ALL)
    rows = summarize(jobs, week, NOW)
    assert [(r.region, r.account_id, r.state, r.message_category, r.count) for r in rows] == [
        ("eu-west-1", AGGREGATE_ALL, AGGREGATE_ALL, AGGREGATE_ALL, 1),
        ("us-east-1", AGGREGATE_ALL, AGGREGATE_ALL, AGGREGATE_ALL, 4),
    ]
    only_failed = summarize(jobs, summary_request(aggregation_period="FOURTEEN_DAYS", state="FAILED"), NOW)
    assert [(r.state, r.message_category, r.count) for r in only_failed] == [("FAILED", "ACCESS_DENIED", 1)]
    by_account = summarize(jobs, summary_request(aggregation_period="SEVEN_DAYS", account_id="222222222222",
                                                 message_category="Success"), NOW)
    assert [(r.account_id, r.count) for r in by_account] == [("222222222222", 1)]
    running = summarize(jobs, summary_request(aggregation_period="SEVEN_DAYS", state="RUNNING"), NOW)
    assert [r.to_aws().get("MessageCategory", "absent") for r in running] == ["absent"]


def test_summary_request_validation() -> None:
    assert summary_request().aggregation_period is AggregationPeriod.ONE_DAY
    for kwargs, name in (({"aggregation_period": "ONE_WEEK"}, "AggregationPeriod"), ({"state": "DONE"}, "State"),
                         ({"account_id": "12"}, "AccountId"), ({"resource_type": "Ec2"}, "ResourceType"),
                         ({"message_category": "Oops"}, "MessageCategory")):
        with pytest.raises(InvalidParameterValue) as err:
            summary_request(**kwargs)
        assert err.value.field == name


_FACTS = st.builds(
    JobFact,
    region=st.sampled_from(["us-east-1", "eu-west-1"]),
    account_id=st.sampled_from(["123456789012", "222222222222"]),
    state=st.sampled_from([s.value for s in BackupJobState]),
    resource_type=st.just("EC2"),
    message_category=st.sampled_from([None, *MessageCategory]),
    creation_date=st.integers(min_value=0, max_value=40 * 24 * 3600).map(lambda s: NOW - timedelta(seconds=s)),
)


@given(st.lists(_FACTS, max_size=40), st.sampled_from(list(AggregationPeriod)))
def test_counts_add_up_whatever_the_grouping(jobs: list[JobFact], period: AggregationPeriod) -> None:
    windows = summary_windows(period, NOW)
    inside = sum(1 for j in jobs if any(w.start <= j.creation_date < w.end for w in windows))
    grouped = summarize(jobs, summary_request(aggregation_period=period.value), NOW)
    summed = summarize(jobs, summary_request(aggregation_period=period.value, account_id=AGGREGATE_ALL,
                                             state=AGGREGATE_ALL, resource_type=AGGREGATE_ALL,
                                             message_category=AGGREGATE_ALL), NOW)
    assert sum(r.count for r in grouped) == sum(r.count for r in summed) == inside
    assert all(r.count > 0 for r in grouped)
