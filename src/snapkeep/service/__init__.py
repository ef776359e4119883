"""The operations of AWS Backup over the catalog, in its request and response shapes (see `core`)."""

from snapkeep.service.core import BackupService

__all__ = ["BackupService"]
