"""Tag, region settings and job summary operations."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from snapkeep.api.handler import Handler, paginate
from snapkeep.service import BackupService


def _tag_resource(svc: BackupService, p: Mapping[str, Any]) -> dict[str, Any]:
    svc.tag_resource(p["ResourceArn"], p.get("Tags"))
    return {}


def _untag_resource(svc: BackupService, p: Mapping[str, Any]) -> dict[str, Any]:
    svc.untag_resource(p["ResourceArn"], p.get("TagKeyList"))
    return {}


def _list_tags(svc: BackupService, p: Mapping[str, Any]) -> dict[str, Any]:
    """Tags is a map, so a page is a slice of its keys in order; the token is the offset as for the lists."""
    pairs = [{"Key": k, "Value": v} for k, v in sorted(svc.list_tags(p["ResourceArn"]).items())]
    page = paginate(pairs, p, "Tags")
    out: dict[str, Any] = {"Tags": {t["Key"]: t["Value"] for t in page["Tags"]}}
    if page.get("NextToken"):
        out["NextToken"] = page["NextToken"]
    return out


def _describe_region_settings(svc: BackupService, p: Mapping[str, Any]) -> dict[str, Any]:
    return dict(svc.describe_region_settings())


def _update_region_settings(svc: BackupService, p: Mapping[str, Any]) -> dict[str, Any]:
    svc.update_region_settings(p.get("ResourceTypeOptInPreference"), p.get("ResourceTypeManagementPreference"))
    return {}


def _list_backup_job_summaries(svc: BackupService, p: Mapping[str, Any]) -> dict[str, Any]:
    answer = svc.list_backup_job_summaries(
        aggregation_period=p.get("AggregationPeriod"),
        account_id=p.get("AccountId"),
        state=p.get("State"),
        resource_type=p.get("ResourceType"),
        message_category=p.get("MessageCategory"),
    )
    page = paginate(answer["BackupJobSummaries"], p, "BackupJobSummaries", default_max=500)
    return {**page, "AggregationPeriod": answer["AggregationPeriod"]}


OPERATIONS: dict[str, Handler] = {
    "TagResource": _tag_resource,
    "UntagResource": _untag_resource,
    "ListTags": _list_tags,
    "DescribeRegionSettings": _describe_region_settings,
    "UpdateRegionSettings": _update_region_settings,
    "ListBackupJobSummaries": _list_backup_job_summaries,
}
