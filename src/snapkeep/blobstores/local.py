"""A blob store in a local directory (or any mounted file system).

Writes are atomic and durable: the bytes go to a temporary file under `<root>/.tmp`, are fsynced, renamed over
the final name and the directory is fsynced, so a crash leaves either the old object, the new one, or a stray
temporary file that no listing shows. There is no retention: a local directory cannot refuse its owner.

Large page-aligned buffers (the repository's pack and restore buffers) are written and read with O_DIRECT where
the file system allows it: on the machines measured, a new file written through the page cache ran at a fifth of
the disk's speed (every page is a fresh allocation, then a copy), and nothing reads a pack back soon after a
backup. Where O_DIRECT is refused (tmpfs, some network file systems) the same calls use the page cache.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import mmap
import os
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
DIRECT_ALIGNMENT = 4096
"""O_DIRECT needs buffer address, file offset and length aligned to the device's logical block; a page is safe."""
O_DIRECT = getattr(os, "O_DIRECT", 0)


def aligned_buffer(size: int) -> mmap.mmap:
    """A zero-filled, page-aligned buffer (anonymous memory) that direct I/O can use, rounded up to whole pages."""
    return mmap.mmap(-1, max(DIRECT_ALIGNMENT, -(-size // DIRECT_ALIGNMENT) * DIRECT_ALIGNMENT))


def is_aligned(view: memoryview) -> bool:
    """True when a buffer starts on a direct-I/O boundary (only writable buffers expose their address)."""
    if view.readonly or not view.c_contiguous:
        return False
    try:
        address = ctypes.addressof(ctypes.c_char.from_buffer(view))
    except (TypeError, ValueError):
        return False
    return address % DIRECT_ALIGNMENT == 0


def pwrite_all(fd: int, view: memoryview, offset: int, direct_fd: int | None = None) -> None:
    """Write all of `view` at `offset`: its aligned head through `direct_fd` (O_DIRECT) when everything lines up,
    the rest through `fd`. A direct write the kernel refuses (EINVAL) is redone through the page cache."""
    done = 0
    if direct_fd is not None and offset % DIRECT_ALIGNMENT == 0 and is_aligned(view):
        head = len(view) - len(view) % DIRECT_ALIGNMENT
        try:
            while done < head:
                done += os.pwrite(direct_fd, view[done:head], offset + done)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
    while done < len(view):
        done += os.pwrite(fd, view[done:], offset + done)


def open_direct(path: str | os.PathLike[str], flags: int) -> int | None:
    """A second descriptor with O_DIRECT, or None where the system or file system refuses it."""
    if not O_DIRECT:
        return None
    try:
        return os.open(path, flags | O_DIRECT)
    except OSError as exc:
        if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP):
            return None
        raise


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
            temp = temp_dir / f"{os.urandom(8).hex()}-{path.name}"
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                _write_file(fd, memoryview(data))
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

    def read_into(self, name: str, offset: int, buffer: memoryview) -> int:
        """Read up to len(buffer) bytes from `offset` into `buffer`; the count (short at the end of the object).
        Aligned requests bypass the page cache."""
        check_range(offset, len(buffer))
        path = self._path(name)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            raise BlobNotFound(f"{name}: no such object in {self._root}") from None
        except OSError as exc:
            raise DependencyFailure(f"reading {name} in {self._root} failed: {exc.strerror or exc}") from exc
        try:
            if O_DIRECT and offset % DIRECT_ALIGNMENT == 0 and len(buffer) % DIRECT_ALIGNMENT == 0 \
                    and is_aligned(buffer):
                with contextlib.suppress(OSError):  # not supported here: a plain read does the same
                    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | O_DIRECT)
            done = 0
            while done < len(buffer):
                try:
                    count = os.preadv(fd, [buffer[done:]], offset + done)
                except OSError as exc:
                    if exc.errno != errno.EINVAL or not fcntl.fcntl(fd, fcntl.F_GETFL) & O_DIRECT:
                        raise
                    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~O_DIRECT)
                    continue
                if count == 0:
                    break
                done += count
            return done
        except OSError as exc:
            raise DependencyFailure(f"reading {name} in {self._root} failed: {exc.strerror or exc}") from exc
        finally:
            os.close(fd)

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


def _write_file(fd: int, view: memoryview) -> None:
    """Write a new file from its start: the aligned head of an aligned buffer with O_DIRECT (no page-cache copy),
    the rest, or everything where O_DIRECT is refused, through the page cache."""
    done = 0
    head = len(view) - len(view) % DIRECT_ALIGNMENT
    if O_DIRECT and head and is_aligned(view):
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        try:
            fcntl.fcntl(fd, fcntl.F_SETFL, flags | O_DIRECT)
            while done < head:
                done += os.write(fd, view[done:head])
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            os.lseek(fd, done, os.SEEK_SET)
        finally:
            fcntl.fcntl(fd, fcntl.F_SETFL, flags)
    while done < len(view):
        done += os.write(fd, view[done:])


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
