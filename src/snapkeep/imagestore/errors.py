"""The image repository's failures, placed in the product's one error hierarchy (code, HTTP status, exit code)."""

from __future__ import annotations

from snapkeep.domain.errors import (
    AccessDenied,
    AlreadyExists,
    Conflict,
    DamagedData,
    InvalidResourceState,
    ResourceNotFound,
)


class RepositoryNotFound(ResourceNotFound):
    """No repository (no config object) at the given location."""


class RepositoryExists(AlreadyExists):
    """`init` found a repository already there: it never overwrites one."""


class WrongPassphrase(AccessDenied):
    """No key file of the repository opens with the passphrase (or key) given."""


class ImageNotFound(ResourceNotFound):
    """No image backup with that id (or id prefix) in the repository."""


class RepositoryLocked(Conflict):
    """Another process holds a lock that excludes this operation (a writer during gc, gc during a backup)."""


class DamagedObject(DamagedData):
    """An object failed its integrity check: it was changed, truncated, moved or swapped since it was written."""

    def __init__(self, object_name: str, reason: str) -> None:
        super().__init__(f"{object_name}: {reason}")
        self.object_name = object_name
        self.reason = reason


class RepositoryDamaged(DamagedData):
    """check found damaged or missing objects; the message names them and the image backups they affect."""


class UnsupportedFormat(InvalidResourceState):
    """The repository (or an object in it) was written by a newer format version than this code reads."""
