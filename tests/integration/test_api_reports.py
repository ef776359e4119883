"""Tags, region settings, every ListBackupJobs filter and job summaries, through boto3's real `backup` client
against a live ApiServer, with real jobs run against the lab."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from snapkeep.app import Snapkeep
from snapkeep.catalog import tables as t
from snapkeep.domain.arn import Arn
from snapkeep.engine import scheduler
from snapkeep.engine.inventory import live_inventory
from tests.lab_flow import ADMIN_ID, ADMIN_SECRET, ROLE, drain

ACCOUNT = "123456789012"


def client(endpoint: str, key_id: str = ADMIN_ID, secret: str = ADMIN_SECRET) -> Any:
    return boto3.client("backup", region_name="us-east-1", endpoint_url=endpoint, aws_access_key_id=key_id,
                        aws_secret_access_key=secret)


def instance(sk: Snapkeep, name: str) -> str:
    """The ARN of the fleet's instance with this Name tag."""
    [arn] = [r.arn for r in live_inventory(sk.context).resources if r.tags.get("Name") == name]
    return arn


def code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def region_settings(backup: Any) -> dict[str, Any]:
    answer = backup.describe_region_settings()
    return {k: v for k, v in answer.items() if k != "ResponseMetadata"}


def vault_arn(name: str) -> str:
    return f"arn:aws:backup:us-east-1:{ACCOUNT}:backup-vault:{name}"


def insert_legal_hold(sk: Snapkeep, tags: dict[str, str]) -> str:
    """A legal hold row as the legal hold operations store it (only its tags matter here)."""
    hold_id = str(uuid.uuid4())
    arn = f"arn:aws:backup:us-east-1:{ACCOUNT}:legal-hold:{hold_id}"
    with sk.store.transaction() as conn:
        conn.execute(t.legal_holds.insert().values(
            legal_hold_id=hold_id, arn=arn, title="case 42", description="litigation", status="ACTIVE",
            tags=tags, creation_date=datetime.now(UTC)))
    return arn


def all_tags(backup: Any, arn: str, page_size: int) -> tuple[dict[str, str], int]:
    """Every tag of `arn` read page by page, and how many pages it took."""
    tags: dict[str, str] = {}
    kwargs: dict[str, Any] = {"ResourceArn": arn, "MaxResults": page_size}
    pages = 0
    while True:
        page = backup.list_tags(**kwargs)
        pages += 1
        assert len(page["Tags"]) <= page_size and not set(page["Tags"]) & set(tags)
        tags.update(page["Tags"])
        if not page.get("NextToken"):
            return tags, pages
        kwargs["NextToken"] = page["NextToken"]


# -- tags ----------------------------------------------------------------------------------------------------------
def test_tags_of_vaults_plans_recovery_points_and_legal_holds(sk: Snapkeep, api: str) -> None:
    backup = client(api)
    backup.create_backup_vault(BackupVaultName="tagged", BackupVaultTags={"team": "ops"})
    assert backup.list_tags(ResourceArn=vault_arn("tagged"))["Tags"] == {"team": "ops"}
    assert backup.list_tags(ResourceArn=vault_arn("main"))["Tags"] == {}

    backup.tag_resource(ResourceArn=vault_arn("tagged"), Tags={"env": "prod", "team": "sre"})
    assert backup.list_tags(ResourceArn=vault_arn("tagged"))["Tags"] == {"team": "sre", "env": "prod"}
    backup.untag_resource(ResourceArn=vault_arn("tagged"), TagKeyList=["env", "never-there"])
    assert backup.list_tags(ResourceArn=vault_arn("tagged"))["Tags"] == {"team": "sre"}

    plan = backup.create_backup_plan(BackupPlan={"BackupPlanName": "daily", "Rules": [{
        "RuleName": "daily", "TargetBackupVaultName": "main", "ScheduleExpression": "cron(0 5 ? * * *)"}]},
        BackupPlanTags={"cost-center": "42"})
    assert backup.list_tags(ResourceArn=plan["BackupPlanArn"])["Tags"] == {"cost-center": "42"}
    backup.tag_resource(ResourceArn=plan["BackupPlanArn"], Tags={"owner": "ana@example.com"})
    assert backup.list_tags(ResourceArn=plan["BackupPlanArn"])["Tags"] == {"cost-center": "42",
                                                                           "owner": "ana@example.com"}

    job = backup.start_backup_job(BackupVaultName="main", ResourceArn=instance(sk, "web-1"), IamRoleArn=ROLE,
                                  RecoveryPointTags={"origin": "api"})
    drain(sk)
    point = backup.describe_backup_job(BackupJobId=job["BackupJobId"])["RecoveryPointArn"]
    assert Arn.parse(point).resource_type == "image"
    assert backup.list_tags(ResourceArn=point)["Tags"] == {"origin": "api"}
    backup.tag_resource(ResourceArn=point, Tags={"keep": "yes"})
    backup.untag_resource(ResourceArn=point, TagKeyList=["origin"])
    assert backup.list_tags(ResourceArn=point)["Tags"] == {"keep": "yes"}

    hold = insert_legal_hold(sk, {"case": "42"})
    backup.tag_resource(ResourceArn=hold, Tags={"counsel": "external"})
    assert backup.list_tags(ResourceArn=hold)["Tags"] == {"case": "42", "counsel": "external"}
    with sk.store.transaction() as conn:
        stored = conn.execute(t.legal_holds.select().where(t.legal_holds.c.arn == hold)).mappings().one()
    assert stored["tags"] == {"case": "42", "counsel": "external"}

    backup.delete_backup_plan(BackupPlanId=plan["BackupPlanId"])
    with pytest.raises(ClientError) as deleted:
        backup.list_tags(ResourceArn=plan["BackupPlanArn"])
    assert code(deleted) == "ResourceNotFoundException"


def test_list_tags_pages(sk: Snapkeep, api: str) -> None:
    backup = client(api)
    many = {f"key-{i:02d}": f"value {i}" for i in range(7)}
    backup.tag_resource(ResourceArn=vault_arn("main"), Tags=many)
    assert all_tags(backup, vault_arn("main"), 3) == (many, 3)
    assert all_tags(backup, vault_arn("main"), 1000) == (many, 1)
    with pytest.raises(ClientError) as bad_token:
        backup.list_tags(ResourceArn=vault_arn("main"), NextToken="garbage!")
    assert code(bad_token) == "InvalidParameterValueException"


def test_bad_tags_and_arns_are_refused_and_change_nothing(sk: Snapkeep, api: str) -> None:
    backup = client(api)
    backup.tag_resource(ResourceArn=vault_arn("main"), Tags={"team": "ops"})

    def refused(expected: str, **kwargs: Any) -> str:
        call = backup.untag_resource if "TagKeyList" in kwargs else backup.tag_resource
        with pytest.raises(ClientError) as err:
            call(**{"ResourceArn": vault_arn("main"), **kwargs})
        assert code(err) == expected, err.value.response["Error"]
        assert backup.list_tags(ResourceArn=vault_arn("main"))["Tags"] == {"team": "ops"}
        return str(err.value.response["Error"]["Message"])

    assert "reserved prefix 'aws:'" in refused("InvalidParameterValueException", Tags={"aws:owner": "x"})
    assert "reserved prefix" in refused("InvalidParameterValueException", Tags={"AWS:owner": "x", "ok": "y"})
    assert "1 to 128" in refused("InvalidParameterValueException", Tags={"k" * 129: "x"})
    assert "at most 256" in refused("InvalidParameterValueException", Tags={"team": "v" * 257})
    assert "';'" in refused("InvalidParameterValueException", Tags={"a;b": "x"})
    assert "at most 50" in refused("LimitExceededException", Tags={f"k{i}": "v" for i in range(50)})
    assert "at least one tag" in refused("MissingParameterValueException", Tags={})
    assert "reserved prefix" in refused("InvalidParameterValueException", TagKeyList=["aws:backup:source"])
    backup.tag_resource(ResourceArn=vault_arn("main"), Tags={f"k{i}": "v" for i in range(49)})  # 50 in all: fine
    backup.untag_resource(ResourceArn=vault_arn("main"), TagKeyList=[f"k{i}" for i in range(49)])

    for arn, expected in (
        (vault_arn("nope"), "ResourceNotFoundException"),
        ("arn:aws:backup:eu-west-1:123456789012:backup-vault:main", "ResourceNotFoundException"),
        ("arn:aws:backup:us-east-1:123456789012:backup-plan:no-such-plan", "ResourceNotFoundException"),
        ("arn:aws:backup:us-east-1:123456789012:legal-hold:no-such-hold", "ResourceNotFoundException"),
        ("arn:aws:ec2:us-east-1::image/ami-00000000000000000", "ResourceNotFoundException"),
        (instance(sk, "web-1"), "InvalidParameterValueException"),
        ("arn:aws:s3:::some-bucket", "InvalidParameterValueException"),
        ("not-an-arn", "InvalidParameterValueException"),
    ):
        calls: list[tuple[Any, dict[str, Any]]] = [
            (backup.list_tags, {}), (backup.tag_resource, {"Tags": {"x": "y"}}),
            (backup.untag_resource, {"TagKeyList": ["x"]}),
        ]
        for call, extra in calls:
            with pytest.raises(ClientError) as err:
                call(ResourceArn=arn, **extra)
            assert code(err) == expected, (arn, err.value.response["Error"])

    with pytest.raises(ClientError) as bad_vault:
        backup.create_backup_vault(BackupVaultName="bad-tags", BackupVaultTags={"aws:x": "y"})
    assert code(bad_vault) == "InvalidParameterValueException"
    assert "BackupVaultTags" in bad_vault.value.response["Error"]["Message"]
    assert {v["BackupVaultName"] for v in backup.list_backup_vaults()["BackupVaultList"]} == {"main"}
    with pytest.raises(ClientError) as bad_plan:
        backup.create_backup_plan(BackupPlan={"BackupPlanName": "p", "Rules": [{
            "RuleName": "r", "TargetBackupVaultName": "main", "ScheduleExpression": "cron(0 5 ? * * *)"}]},
            BackupPlanTags={f"k{i}": "v" for i in range(51)})
    assert code(bad_plan) == "LimitExceededException"
    assert backup.list_backup_plans()["BackupPlansList"] == []
    with pytest.raises(ClientError) as bad_point_tags:
        backup.start_backup_job(BackupVaultName="main", ResourceArn=instance(sk, "web-1"), IamRoleArn=ROLE,
                                RecoveryPointTags={"aws:backup": "x"})
    assert code(bad_point_tags) == "InvalidParameterValueException"
    assert backup.list_backup_jobs()["BackupJobs"] == []

    viewer_id, viewer_secret = sk.keys().create_key("vera", "viewer", datetime.now(UTC))
    viewer = client(api, viewer_id, viewer_secret)
    assert viewer.list_tags(ResourceArn=vault_arn("main"))["Tags"] == {"team": "ops"}
    with pytest.raises(ClientError) as denied:
        viewer.tag_resource(ResourceArn=vault_arn("main"), Tags={"x": "y"})
    assert code(denied) == "AccessDeniedException"


# -- region settings -----------------------------------------------------------------------------------------------
def run_plan_now(sk: Snapkeep, plan_id: str) -> str:
    """Run the plan's hourly rule as the scheduler would an hour from now; the run's id."""
    created = sk.service.get_backup_plan(plan_id)["CreationDate"]
    now = created.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1, minutes=1)
    real = sk.context.clock
    offset = now - real()
    sk.context.clock = lambda: real() + offset
    [run_id] = scheduler.tick(sk.store, now)
    drain(sk)
    return str(run_id)


def test_region_settings_opt_out_stops_backups_of_that_type(sk: Snapkeep, api: str) -> None:
    backup = client(api)
    fresh = region_settings(backup)
    assert fresh["ResourceTypeOptInPreference"]["EC2"] is True
    assert all(fresh["ResourceTypeOptInPreference"].values()) and len(fresh["ResourceTypeOptInPreference"]) >= 17
    assert fresh["ResourceTypeManagementPreference"] == {"CloudFormation": True, "DSQL": True, "DynamoDB": True,
                                                         "EFS": True}

    backup.update_region_settings(ResourceTypeOptInPreference={"EC2": False, "RDS": False},
                                  ResourceTypeManagementPreference={"DynamoDB": False})
    after = region_settings(backup)
    assert after["ResourceTypeOptInPreference"] == {**fresh["ResourceTypeOptInPreference"], "EC2": False,
                                                    "RDS": False}
    assert after["ResourceTypeManagementPreference"]["DynamoDB"] is False

    for bad, expected, field in (
        ({"ResourceTypeOptInPreference": {"Ec2": True}}, "InvalidParameterValueException", "did you mean 'EC2'"),
        ({"ResourceTypeOptInPreference": {"Mainframe": True}}, "InvalidParameterValueException", "Mainframe"),
        ({"ResourceTypeManagementPreference": {"EC2": True}}, "InvalidParameterValueException", "EC2"),
        ({}, "MissingParameterValueException", "ResourceTypeOptInPreference"),
    ):
        with pytest.raises(ClientError) as err:
            backup.update_region_settings(**bad)
        assert code(err) == expected and field in err.value.response["Error"]["Message"]
        assert region_settings(backup) == after

    with pytest.raises(ClientError) as refused:
        backup.start_backup_job(BackupVaultName="main", ResourceArn=instance(sk, "web-1"), IamRoleArn=ROLE)
    assert code(refused) == "InvalidRequestException"
    assert "opted out" in refused.value.response["Error"]["Message"]
    assert backup.list_backup_jobs()["BackupJobs"] == [] and not sk.context.queue.pending()

    # A scheduled run leaves out what tags picked, and backs up what a selection names explicitly (as AWS does).
    backup.update_region_settings(ResourceTypeOptInPreference={"EBS": False})  # the fleet's volumes are tagged too
    plan = sk.service.create_backup_plan({"BackupPlanName": "p", "Rules": [
        {"RuleName": "hourly", "TargetBackupVaultName": "main", "ScheduleExpression": "cron(0 * ? * * *)",
         "StartWindowMinutes": 60, "CompletionWindowMinutes": 120}]})
    sk.service.create_backup_selection(plan["BackupPlanId"], {
        "SelectionName": "by-tag", "IamRoleArn": ROLE,
        "ListOfTags": [{"ConditionType": "STRINGEQUALS", "ConditionKey": "backup", "ConditionValue": "daily"}]})
    sk.service.create_backup_selection(plan["BackupPlanId"], {
        "SelectionName": "named", "IamRoleArn": ROLE, "Resources": [instance(sk, "db-1")]})
    run_id = run_plan_now(sk, plan["BackupPlanId"])
    jobs = backup.list_backup_jobs()["BackupJobs"]
    assert [j["ResourceArn"] for j in jobs] == [instance(sk, "db-1")]
    with sk.store.transaction() as conn:
        message = sk.store.get_run(conn, run_id)["message"]
    assert message.startswith("1 resources") and "opted out" in message
    assert all(instance(sk, n) in message for n in ("web-1", "web-2", "app-1"))
    assert instance(sk, "db-1") not in message

    backup.update_region_settings(ResourceTypeOptInPreference={"EC2": True})
    assert backup.describe_region_settings()["ResourceTypeOptInPreference"]["RDS"] is False
    job = backup.start_backup_job(BackupVaultName="main", ResourceArn=instance(sk, "web-1"), IamRoleArn=ROLE)
    assert backup.describe_backup_job(BackupJobId=job["BackupJobId"])["State"] == "CREATED"


# -- jobs: every ListBackupJobs filter, and summaries -------------------------------------------------------------
class Jobs:
    """Five real jobs in two phases: web-1 (main) and web-2 (vault 'other') complete; then app-1 (the second
    account) completes, dev-1 fails (its instance is gone) and db-1 is stopped before it starts."""

    def __init__(self, sk: Snapkeep, backup: Any) -> None:
        backup.create_backup_vault(BackupVaultName="other")
        arns = {n: instance(sk, n) for n in ("web-1", "web-2", "app-1", "dev-1", "db-1")}

        def start(name: str, vault: str = "main") -> str:
            return str(backup.start_backup_job(BackupVaultName=vault, ResourceArn=arns[name],
                                               IamRoleArn=ROLE)["BackupJobId"])

        self.arns = arns
        self.ids = {"web-1": start("web-1"), "web-2": start("web-2", "other")}
        drain(sk)
        self.between = datetime.now(UTC)
        self.ids["app-1"] = start("app-1")
        dev = Arn.parse(arns["dev-1"])
        sk.context.ec2(dev.account, dev.region).terminate_instances(InstanceIds=[dev.resource_id])
        self.ids["dev-1"] = start("dev-1")
        self.ids["db-1"] = start("db-1")
        backup.stop_backup_job(BackupJobId=self.ids["db-1"])
        drain(sk)
        self.name_of = {job_id: name for name, job_id in self.ids.items()}


def listed(backup: Any, jobs: Jobs, **filters: Any) -> set[str]:
    """The names of the instances whose jobs ListBackupJobs answers with these filters (all pages)."""
    names = []
    for page in backup.get_paginator("list_backup_jobs").paginate(**filters):
        names += [jobs.name_of[j["BackupJobId"]] for j in page["BackupJobs"]]
    assert len(names) == len(set(names))
    return set(names)


def test_every_list_backup_jobs_filter(sk: Snapkeep, api: str) -> None:
    backup = client(api)
    jobs = Jobs(sk, backup)
    every = set(jobs.ids)
    states = {n: backup.describe_backup_job(BackupJobId=i)["State"] for n, i in jobs.ids.items()}
    assert states == {"web-1": "COMPLETED", "web-2": "COMPLETED", "app-1": "COMPLETED", "dev-1": "FAILED",
                      "db-1": "ABORTED"}
    categories = {n: backup.describe_backup_job(BackupJobId=i).get("MessageCategory") for n, i in jobs.ids.items()}
    assert categories == {"web-1": "SUCCESS", "web-2": "SUCCESS", "app-1": "SUCCESS",
                          "dev-1": "RESOURCE_NOT_FOUND", "db-1": "STOPPED"}

    assert listed(backup, jobs) == every
    assert listed(backup, jobs, ByState="COMPLETED") == {"web-1", "web-2", "app-1"}
    assert listed(backup, jobs, ByState="FAILED") == {"dev-1"}
    assert listed(backup, jobs, ByState="RUNNING") == set()
    assert listed(backup, jobs, ByBackupVaultName="other") == {"web-2"}
    assert listed(backup, jobs, ByResourceArn=jobs.arns["app-1"]) == {"app-1"}
    assert listed(backup, jobs, ByResourceType="EC2") == every
    assert listed(backup, jobs, ByResourceType="EBS") == set()
    assert listed(backup, jobs, ByAccountId="222222222222") == {"app-1"}
    assert listed(backup, jobs, ByAccountId=ACCOUNT) == every - {"app-1"}
    assert listed(backup, jobs, ByCreatedBefore=jobs.between) == {"web-1", "web-2"}
    assert listed(backup, jobs, ByCreatedAfter=jobs.between) == {"app-1", "dev-1", "db-1"}
    assert listed(backup, jobs, ByCompleteBefore=jobs.between) == {"web-1", "web-2"}
    assert listed(backup, jobs, ByCompleteAfter=jobs.between) == {"app-1", "dev-1", "db-1"}
    assert listed(backup, jobs, ByCompleteAfter=jobs.between, ByState="COMPLETED") == {"app-1"}
    assert listed(backup, jobs, ByParentJobId=jobs.ids["web-1"]) == set()  # Snapkeep's jobs have no children
    assert listed(backup, jobs, ByMessageCategory="SUCCESS") == {"web-1", "web-2", "app-1"}
    assert listed(backup, jobs, ByMessageCategory="ResourceNotFound") == {"dev-1"}
    assert listed(backup, jobs, ByMessageCategory="STOPPED", ByState="ABORTED") == {"db-1"}
    assert listed(backup, jobs, ByMessageCategory="ACCESS_DENIED") == set()
    assert listed(backup, jobs, ByMessageCategory="AGGREGATE_ALL") == every
    assert listed(backup, jobs, ByMessageCategory="ANY") == every
    # "Completed with issues" (AWS): COMPLETED minus COMPLETED with SUCCESS; none here.
    assert listed(backup, jobs, ByState="COMPLETED") == listed(backup, jobs, ByState="COMPLETED",
                                                               ByMessageCategory="SUCCESS")

    for bad, field in (({"ByMessageCategory": "Oops"}, "ByMessageCategory"), ({"ByResourceType": "Ec2"}, "EC2"),
                       ({"ByState": "DONE"}, "ByState"), ({"ByAccountId": "42"}, "ByAccountId"),
                       ({"NextToken": "bm9wZQ=="}, "NextToken")):
        with pytest.raises(ClientError) as err:
            backup.list_backup_jobs(**bad)
        assert code(err) == "InvalidParameterValueException" and field in err.value.response["Error"]["Message"]


def test_list_backup_jobs_pages_stay_stable_while_jobs_are_created(sk: Snapkeep, api: str) -> None:
    backup = client(api)
    jobs = Jobs(sk, backup)
    first = backup.list_backup_jobs(MaxResults=2)
    assert len(first["BackupJobs"]) == 2 and first["NextToken"]
    backup.start_backup_job(BackupVaultName="main", ResourceArn=jobs.arns["web-1"], IamRoleArn=ROLE)
    seen = [j["BackupJobId"] for j in first["BackupJobs"]]
    token = first["NextToken"]
    while token:
        page = backup.list_backup_jobs(MaxResults=2, NextToken=token)
        seen += [j["BackupJobId"] for j in page["BackupJobs"]]
        token = page.get("NextToken")
    assert len(seen) == len(set(seen)) == 5 and set(seen) == set(jobs.ids.values())
    newest_first = [backup.describe_backup_job(BackupJobId=i)["CreationDate"] for i in seen]
    assert newest_first == sorted(newest_first, reverse=True)
    failed = backup.list_backup_jobs(ByState="FAILED", MaxResults=1)
    assert [jobs.name_of[j["BackupJobId"]] for j in failed["BackupJobs"]] == ["dev-1"] and "NextToken" not in failed


def test_backup_job_summaries(sk: Snapkeep, api: str) -> None:
    backup = client(api)
    Jobs(sk, backup)

    def counts(answer: dict[str, Any], *keys: str) -> Counter[tuple[Any, ...]]:
        total: Counter[tuple[Any, ...]] = Counter()
        for row in answer["BackupJobSummaries"]:
            total[tuple(row.get(k) for k in keys)] += row["Count"]
        return total

    daily = backup.list_backup_job_summaries()
    assert daily["AggregationPeriod"] == "ONE_DAY"
    assert counts(daily, "Region", "AccountId", "State", "MessageCategory", "ResourceType") == Counter({
        ("us-east-1", ACCOUNT, "COMPLETED", "SUCCESS", "EC2"): 2,
        ("eu-west-1", "222222222222", "COMPLETED", "SUCCESS", "EC2"): 1,
        ("eu-west-1", ACCOUNT, "FAILED", "RESOURCE_NOT_FOUND", "EC2"): 1,
        ("us-east-1", ACCOUNT, "ABORTED", "STOPPED", "EC2"): 1,
    })
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    for row in daily["BackupJobSummaries"]:
        assert row["EndTime"] - row["StartTime"] <= timedelta(days=1) and row["StartTime"] >= today - timedelta(days=1)

    fortnight = backup.list_backup_job_summaries(AggregationPeriod="FOURTEEN_DAYS", State="AGGREGATE_ALL",
                                                 MessageCategory="AGGREGATE_ALL")
    assert fortnight["AggregationPeriod"] == "FOURTEEN_DAYS"
    assert counts(fortnight, "Region", "State", "MessageCategory") == Counter({
        ("us-east-1", "AGGREGATE_ALL", "AGGREGATE_ALL"): 3, ("eu-west-1", "AGGREGATE_ALL", "AGGREGATE_ALL"): 2})
    [start] = {r["StartTime"] for r in fortnight["BackupJobSummaries"]}
    assert start == today - timedelta(days=13)

    week = backup.list_backup_job_summaries(AggregationPeriod="SEVEN_DAYS", State="COMPLETED",
                                            AccountId=ACCOUNT)
    assert counts(week, "AccountId", "State") == Counter({(ACCOUNT, "COMPLETED"): 2})
    success = backup.list_backup_job_summaries(MessageCategory="Success", ResourceType="ANY")
    assert sum(counts(success, "MessageCategory").values()) == 3
    assert backup.list_backup_job_summaries(ResourceType="RDS")["BackupJobSummaries"] == []
    paged = backup.list_backup_job_summaries(MaxResults=1)
    assert len(paged["BackupJobSummaries"]) == 1 and paged["NextToken"]

    for bad, field in (({"MessageCategory": "Oops"}, "MessageCategory"), ({"ResourceType": "Ec2"}, "ResourceType"),
                       ({"AccountId": "ANY"}, "AccountId"), ({"AggregationPeriod": "ONE_WEEK"}, "AggregationPeriod")):
        with pytest.raises(ClientError) as err:
            backup.list_backup_job_summaries(**bad)
        assert code(err) == "InvalidParameterValueException" and field in err.value.response["Error"]["Message"]
