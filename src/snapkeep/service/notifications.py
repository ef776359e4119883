"""Backup vault notifications: which vault events are published to which SNS topic."""

from __future__ import annotations

from snapkeep.service.base import ServiceBase


class NotificationOperations(ServiceBase):
    pass
