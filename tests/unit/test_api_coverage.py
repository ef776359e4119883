from __future__ import annotations

from pathlib import Path

from snapkeep.api.coverage import coverage_markdown
from snapkeep.api.operations import OPERATIONS

ROOT = Path(__file__).resolve().parents[2]


def test_committed_coverage_document_is_up_to_date() -> None:
    expected = coverage_markdown(ROOT / "tests")
    assert (ROOT / "docs" / "api-coverage.md").read_text() == expected, (
        "docs/api-coverage.md is stale: run `.venv/bin/python -m snapkeep.api.coverage > docs/api-coverage.md`")


def test_every_served_operation_is_called_by_a_boto3_test() -> None:
    text = coverage_markdown(ROOT / "tests")
    for name in OPERATIONS:
        row = next(line for line in text.splitlines() if line.startswith(f"| {name} |"))
        assert row.rstrip(" |").endswith("`"), f"{name} is served but no boto3 test calls it"
