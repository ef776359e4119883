"""`snapkeep plan preview`: the run calendar of each rule in its time zone, and what each selection picks now."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from snapkeep.cli.output import console, make_table
from snapkeep.config import Settings
from snapkeep.domain.clock import iso_z
from snapkeep.domain.errors import InvalidRequest
from snapkeep.domain.plans import plan_from_aws_json, rule_windows
from snapkeep.domain.selection import SelectionMatch, duplicates, evaluate, selection_from_aws_json


@dataclass
class RulePreview:
    rule_name: str
    timezone: str
    runs: list[tuple[datetime, datetime, datetime]]  # (run, start window end, completion window end), UTC


@dataclass
class PreviewResult:
    rules: list[RulePreview]
    picks: dict[str, list[SelectionMatch]] = field(default_factory=dict)
    inventory_size: int = 0
    inventory_failures: list[str] = field(default_factory=list)  # account/region that could not be listed

    def duplicates(self) -> dict[str, list[str]]:
        return duplicates(self.picks)

    def to_json(self) -> dict[str, Any]:
        resources: dict[str, dict[str, Any]] = {}
        for name, matches in self.picks.items():
            for match in matches:
                entry = resources.setdefault(
                    match.resource_arn, {"ResourceArn": match.resource_arn, "MatchedBy": [], "Selections": []}
                )
                entry["MatchedBy"].extend(f"{name}: {reason}" for reason in match.matched_by)
                entry["Selections"].append(name)
        return {
            "rules": [
                {
                    "RuleName": r.rule_name,
                    "ScheduleExpressionTimezone": r.timezone,
                    "NextRuns": [iso_z(run) for run, _, _ in r.runs],
                    "NextRunsLocal": [run.astimezone(ZoneInfo(r.timezone)).isoformat() for run, _, _ in r.runs],
                    "StartWindowEnds": [iso_z(s) for _, s, _ in r.runs],
                    "CompletionWindowEnds": [iso_z(c) for _, _, c in r.runs],
                }
                for r in self.rules
            ],
            "resources": sorted(resources.values(), key=lambda e: str(e["ResourceArn"])),
            "inventoryFailures": list(self.inventory_failures),
            "duplicates": [
                {"ResourceArn": arn, "Selections": names} for arn, names in sorted(self.duplicates().items())
            ],
        }


def preview(
    plan_json: Mapping[str, Any],
    selections: Sequence[Mapping[str, Any]],
    start: datetime | None,
    count: int,
    settings: Settings | None,
) -> PreviewResult:
    plan = plan_from_aws_json(plan_json)
    start = start or datetime.now(UTC)
    rules = []
    for rule in plan.rules:
        runs = rule.schedule.upcoming(start, rule.schedule_expression_timezone, count)
        rules.append(
            RulePreview(
                rule.rule_name, rule.schedule_expression_timezone, [(run, *rule_windows(rule, run)) for run in runs]
            )
        )
    result = PreviewResult(rules)
    if selections:
        parsed = [selection_from_aws_json(s) for s in selections]
        if settings is None:
            raise InvalidRequest("a selection preview needs an AWS endpoint")
        from snapkeep.app import Snapkeep
        from snapkeep.engine.inventory import live_inventory

        sk = Snapkeep.open(settings)
        try:
            if not sk.service.list_protected_accounts():
                raise InvalidRequest(
                    "no protected accounts: add one with `snapkeep account add` to preview "
                    "selections against the live inventory"
                )
            inventory = live_inventory(sk.context)
        finally:
            sk.close()
        result.inventory_size = len(inventory.resources)
        result.inventory_failures = inventory.failures
        for selection in parsed:
            result.picks[selection.selection_name] = evaluate(selection, inventory.resources)
    return result


def render_preview(result: PreviewResult) -> None:
    for failure in result.inventory_failures:
        console.print(f"[yellow]Warning[/]: could not list {failure}", highlight=False)
    for rule in result.rules:
        zone = ZoneInfo(rule.timezone)
        console.print(
            make_table(
                f"Rule {rule.rule_name} ({rule.timezone})",
                ["Run (UTC)", f"Run ({rule.timezone})", "Start window ends", "Completion window ends"],
                [
                    [iso_z(run), run.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z"), iso_z(s), iso_z(c)]
                    for run, s, c in rule.runs
                ],
            )
        )
    for name, matches in result.picks.items():
        console.print(
            make_table(
                f"Selection {name}: {len(matches)} of {result.inventory_size} resources",
                ["Resource", "Matched by"],
                [[m.resource_arn, "; ".join(m.matched_by)] for m in matches],
            )
        )
    dups = result.duplicates()
    if dups:
        console.print(
            make_table(
                "Picked by more than one selection",
                ["Resource", "Selections"],
                [[arn, ", ".join(names)] for arn, names in sorted(dups.items())],
            )
        )
