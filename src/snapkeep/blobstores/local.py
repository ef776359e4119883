"""A blob store in a local directory (or any mounted file system).

Writes are atomic and durable: the bytes go to a temporary file under `<root>/.tmp`, are fsynced, renamed over
the final name and the directory is fsynced, so a crash leaves either the old object, the new one, or a stray
temporary file that no listing shows. There is no retention: a local directory cannot refuse its owner.
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from snapkeep.blobstores.base import (
    BlobInfo,
    BlobNotFound,
    Retention,
    check_blob_name,
    check_range,
)
from snapkeep.domain.errors import DependencyFailure, InvalidParameterValue, InvalidRequest

TEMP_DIR = ".tmp"


class LocalBlobStore:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self._root = Path(root).absolute()

    @property
    def location(self) -> str:
        return str(self._root)

    @property
    def supports_retention(self) -> bool:
        return False

    def _path(self, name: str) -> Path:
        check_blob_name(name)
        if name == TEMP_DIR or name.startswith(TEMP_DIR + "/"):
            raise InvalidParameterValue(f"name: {TEMP_DIR}/ is reserved for temporary files, got {name!r}",
                                        field="name")
        return self._root / name

    def put(self, name: str, data: bytes | bytearray | memoryview, *, retention: Retention | None = None) -> None:
        path = self._path(name)
        if retention is not None:
            raise InvalidRequest(
                f"retention: the local directory store {self._root} cannot hold objects under retention "
                "(S3 Object Lock needs an S3 bucket with Object Lock enabled)",
                field="retention",
            )
        temp_dir = self._root / TEMP_DIR
        try:
            temp_dir.mkdir(parents=True, exist_ok=True)
            path.parent.mkdir(parents=True, exist_ok=True)
            temp = temp_dir / f"{secrets.token_hex(8)}-{path.name}"
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                view = memoryview(data)
                written = 0
                while written < len(view):
                    written += os.write(fd, view[written:])
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, path)
            _fsync_directory(path.parent)
        except OSError as exc:
            raise DependencyFailure(f"writing {name} in {self._root} failed: {exc.strerror or exc}") from exc

    def get(self, name: str) -> bytes:
        path = self._path(name)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise BlobNotFound(f"{name}: no such object in {self._root}") from None
        except OSError as exc:
            raise DependencyFailure(f"reading {name} in {self._root} failed: {exc.strerror or exc}") from exc

    def get_range(self, name: str, offset: int, length: int) -> bytes:
        check_range(offset, length)
        path = self._path(name)
        try:
            with path.open("rb") as handle:
                handle.seek(offset)
                return handle.read(length)
        except FileNotFoundError:
            raise BlobNotFound(f"{name}: no such object in {self._root}") from None
        except OSError as exc:
            raise DependencyFailure(f"reading {name} in {self._root} failed: {exc.strerror or exc}") from exc

    def stat(self, name: str) -> BlobInfo:
        path = self._path(name)
        try:
            info = path.stat()
        except FileNotFoundError:
            raise BlobNotFound(f"{name}: no such object in {self._root}") from None
        if not path.is_file():
            raise BlobNotFound(f"{name}: no such object in {self._root}")
        return BlobInfo(name, info.st_size, datetime.fromtimestamp(info.st_mtime, UTC))

    def list(self, prefix: str = "") -> Iterator[BlobInfo]:
        if not self._root.is_dir():
            return
        # Only walk the directory the prefix points into: listing `data/` must not visit `images/`.
        start = self._root
        head, _, _ = prefix.rpartition("/")
        if head:
            start = self._root / head
            if not start.is_dir():
                return
        for directory, subdirs, files in os.walk(start):
            relative_dir = os.path.relpath(directory, self._root)
            if relative_dir == ".":
                subdirs[:] = [d for d in subdirs if d != TEMP_DIR]
                relative_dir = ""
            subdirs.sort()
            for file_name in sorted(files):
                name = f"{relative_dir}/{file_name}" if relative_dir else file_name
                if not name.startswith(prefix):
                    continue
                try:
                    info = os.stat(os.path.join(directory, file_name))
                except FileNotFoundError:
                    continue  # removed while listing
                yield BlobInfo(name, info.st_size, datetime.fromtimestamp(info.st_mtime, UTC))

    def delete(self, name: str) -> None:
        path = self._path(name)
        try:
            path.unlink()
        except FileNotFoundError:
            raise BlobNotFound(f"{name}: no such object in {self._root}") from None
        except OSError as exc:
            raise DependencyFailure(f"deleting {name} in {self._root} failed: {exc.strerror or exc}") from exc

    def retention(self, name: str) -> Retention | None:
        self.stat(name)
        return None

    def extend_retention(self, name: str, until: datetime) -> Retention:
        self.stat(name)
        raise InvalidRequest(
            f"retention: the local directory store {self._root} cannot hold objects under retention",
            field="retention",
        )


def _fsync_directory(directory: Path) -> None:
    """Make a rename durable: the directory entry, not only the file's bytes, must reach the disk."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EBADF):  # file systems that cannot fsync a directory
            raise
    finally:
        os.close(fd)
