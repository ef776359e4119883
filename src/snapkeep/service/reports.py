"""Tags, region settings and job summaries."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from snapkeep.catalog import reports
from snapkeep.domain.errors import ResourceNotFound
from snapkeep.domain.job_reports import (
    JobFact,
    effective_region_settings,
    region_settings_update,
    summarize,
    summary_request,
    summary_since,
)
from snapkeep.domain.job_reports import message_category as category_of
from snapkeep.domain.tags import taggable_kind, tagged, untagged
from snapkeep.service.base import ServiceBase


class ReportOperations(ServiceBase):
    # -- tags --------------------------------------------------------------------------------------------------
    def list_tags(self, resource_arn: str) -> dict[str, str]:
        kind = taggable_kind(resource_arn)
        with self.store.transaction() as conn:
            tags = reports.resource_tags(conn, kind, resource_arn)
        if tags is None:
            raise ResourceNotFound(f"{kind} {resource_arn} not found", field="ResourceArn")
        return tags

    def tag_resource(self, resource_arn: str, tags: Mapping[str, str] | None) -> None:
        """Add or overwrite tags in the catalog. Recovery points are tagged in the catalog only: their AMI and
        snapshots keep the tags they were created with (Snapkeep's own, which find them again)."""
        kind = taggable_kind(resource_arn)
        with self.store.transaction() as conn:
            current = reports.resource_tags(conn, kind, resource_arn, for_update=True)
            if current is None:
                raise ResourceNotFound(f"{kind} {resource_arn} not found", field="ResourceArn")
            reports.set_resource_tags(conn, kind, resource_arn, tagged(current, tags))

    def untag_resource(self, resource_arn: str, keys: Sequence[str] | None) -> None:
        kind = taggable_kind(resource_arn)
        with self.store.transaction() as conn:
            current = reports.resource_tags(conn, kind, resource_arn, for_update=True)
            if current is None:
                raise ResourceNotFound(f"{kind} {resource_arn} not found", field="ResourceArn")
            reports.set_resource_tags(conn, kind, resource_arn, untagged(current, keys))

    # -- region settings ---------------------------------------------------------------------------------------
    def describe_region_settings(self) -> dict[str, dict[str, bool]]:
        """The service opt-in and full-management preferences; Snapkeep keeps one set, for every Region it
        protects."""
        with self.store.transaction() as conn:
            return effective_region_settings(reports.region_settings(conn))

    def update_region_settings(
        self, opt_in: Mapping[str, bool] | None = None, management: Mapping[str, bool] | None = None
    ) -> None:
        with self.store.transaction() as conn:
            stored = reports.region_settings(conn, for_update=True)
            reports.put_region_settings(conn, region_settings_update(stored, opt_in, management))

    # -- job summaries -----------------------------------------------------------------------------------------
    def list_backup_job_summaries(
        self,
        *,
        aggregation_period: str | None = None,
        account_id: str | None = None,
        state: str | None = None,
        resource_type: str | None = None,
        message_category: str | None = None,
    ) -> dict[str, Any]:
        """Job counts of the last 30 days per period, Region, account, state, resource type and message category."""
        request = summary_request(
            aggregation_period=aggregation_period,
            account_id=account_id,
            state=state,
            resource_type=resource_type,
            message_category=message_category,
        )
        now = self.clock()
        with self.store.transaction() as conn:
            rows = reports.job_facts_since(conn, summary_since(now))
        facts = [
            JobFact(
                region=r["region"],
                account_id=r["account_id"],
                state=r["state"],
                resource_type=r["resource_type"],
                message_category=category_of(r["state"], r["status_message"]),
                creation_date=r["creation_date"],
            )
            for r in rows
        ]
        return {
            "BackupJobSummaries": [s.to_aws() for s in summarize(facts, request, now)],
            "AggregationPeriod": request.aggregation_period.value,
        }
