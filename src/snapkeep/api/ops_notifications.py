"""Backup vault notification operations."""

from __future__ import annotations

from snapkeep.api.handler import Handler

OPERATIONS: dict[str, Handler] = {}
