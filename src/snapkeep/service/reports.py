"""Tags, region settings and job summaries."""

from __future__ import annotations

from snapkeep.service.base import ServiceBase


class ReportOperations(ServiceBase):
    pass
