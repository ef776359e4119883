"""Vault locks, vault access policies and legal holds: what keeps recovery points from being deleted or changed."""

from __future__ import annotations

from snapkeep.service.base import ServiceBase


class GovernanceOperations(ServiceBase):
    pass
