"""Vault lock, vault access policy and legal hold operations."""

from __future__ import annotations

from snapkeep.api.handler import Handler

OPERATIONS: dict[str, Handler] = {}
