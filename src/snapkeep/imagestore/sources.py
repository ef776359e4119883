"""Block sources and sinks: where an image backup reads 512 KiB blocks from and a restore writes them to.

The repository only sees the two protocols; the local raw image file / block device implementations live here
(the EBS direct API ones come with the AWS adapters). Reads go straight into the caller's reused buffer
(`os.preadv`), so the backup pipeline allocates no per-block memory for source data, and positional I/O lets
several threads read one file without sharing a file offset.
"""

from __future__ import annotations

import bisect
import errno
import os
import stat
from collections.abc import Iterator, Sequence
from itertools import accumulate, chain
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from snapkeep.blobstores.local import DIRECT_ALIGNMENT, is_aligned, open_direct, pwrite_all
from snapkeep.domain.errors import DependencyFailure, InvalidParameterValue, ResourceNotFound
from snapkeep.imagestore.format import BLOCK_SIZE, ZERO_BLOCK

if TYPE_CHECKING:
    from snapkeep.imagestore.filesystems import FreeSpace


class BlockSource(Protocol):
    """One disk to back up."""

    @property
    def name(self) -> str: ...

    @property
    def size(self) -> int:
        """Bytes."""
        ...

    def allocated_blocks(self) -> Sequence[int] | None:
        """Block indexes that may hold data, ascending, within the disk; None when unknown (then every block
        is read)."""
        ...

    def read_into(self, index: int, buffer: memoryview) -> tuple[int, bytes | None]:
        """Fill `buffer` with block `index`; returns the byte count and, when the source has it already
        verified, the block's SHA-256 digest (EBS returns one per block), else None."""
        ...


class BlockSink(Protocol):
    """One disk to restore into."""

    @property
    def size(self) -> int: ...

    @property
    def zeroed(self) -> bool:
        """True when unwritten blocks already read as zeros (a new sparse file, a new EBS snapshot)."""
        ...

    def write_block(self, index: int, data: bytes | memoryview) -> None: ...


@runtime_checkable
class DigestSink(Protocol):
    """An optional sink capability: a block handed over with the SHA-256 digest the restore verified it against,
    so a sink that must send one (PutSnapshotBlock's checksum) does not hash the block a second time."""

    def write_verified_block(self, index: int, data: bytes | memoryview, sha256_digest: bytes) -> None: ...


def block_count(size: int) -> int:
    return -(-size // BLOCK_SIZE)


def _size_of(fd: int) -> int:
    info = os.fstat(fd)
    if stat.S_ISREG(info.st_mode):
        return info.st_size
    if stat.S_ISBLK(info.st_mode):
        return os.lseek(fd, 0, os.SEEK_END)
    raise InvalidParameterValue("path: must be a regular file or a block device", field="path")


class RawImageSource:
    """A raw disk image file or a block device, read block by block. Holes of sparse files are never read; with
    `skip_free_space`, neither are blocks a cleanly unmounted filesystem on it does not use (`filesystems`)."""

    def __init__(self, path: str | os.PathLike[str], name: str | None = None, *,
                 skip_free_space: bool = False, direct: bool = True) -> None:
        self._path = Path(path)
        try:
            self._fd = os.open(self._path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            raise ResourceNotFound(f"path: {self._path} does not exist", field="path") from None
        except OSError as exc:
            raise DependencyFailure(f"opening {self._path} failed: {exc.strerror or exc}") from exc
        try:
            self._size = _size_of(self._fd)
        except BaseException:
            os.close(self._fd)
            raise
        self._name = name or self._path.name
        # Blocks are read once: with direct I/O (where the file system takes it) they skip the page cache, which
        # saves a copy per block and leaves the machine's cache to its workload.
        self._direct = open_direct(self._path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)) if direct else None
        self.free_space: FreeSpace | None = None
        """With `skip_free_space`: the filesystem's free space, which `allocated_blocks` leaves out."""
        if skip_free_space:
            try:
                from snapkeep.imagestore.filesystems import free_space  # only a full read skips free space

                self.free_space = free_space(self._read_at, self._size, align=BLOCK_SIZE)
            except BaseException:
                self.close()
                raise

    @property
    def name(self) -> str:
        return self._name

    @property
    def size(self) -> int:
        return self._size

    def allocated_blocks(self) -> Sequence[int] | None:
        """The blocks overlapping data extents (SEEK_DATA/SEEK_HOLE) and, with `skip_free_space`, the
        filesystem's used space; None where neither can be told."""
        extents: list[tuple[int, int]] | None = None
        if hasattr(os, "SEEK_DATA"):
            try:
                extents = list(self._data_extents())
            except OSError:
                extents = None
        if self.free_space is not None:
            used = self.free_space.used(self._size)
            extents = used if extents is None else _intersect(extents, used)
        return None if extents is None else _blocks_of_extents(extents)

    def prefetch(self, blocks: Sequence[int]) -> None:
        """Have the kernel start reading these blocks (ascending) into the page cache now, while the caller does
        other work (unwrapping the repository key); read them later from a source opened with `direct=False`."""
        advise = getattr(os, "posix_fadvise", None)
        if advise is None:
            return
        first = previous = -2
        for block in [*blocks, -2]:
            if block != previous + 1:
                if first >= 0:
                    advise(self._fd, first * BLOCK_SIZE, (previous + 1 - first) * BLOCK_SIZE, os.POSIX_FADV_WILLNEED)
                first = block
            previous = block

    def _read_at(self, offset: int, length: int) -> bytes:
        try:
            return os.pread(self._fd, length, offset)
        except OSError as exc:
            raise DependencyFailure(f"reading {self._path} at byte {offset} failed: {exc.strerror or exc}") from exc

    def _data_extents(self) -> Iterator[tuple[int, int]]:
        position = 0
        while position < self._size:
            try:
                start = os.lseek(self._fd, position, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:  # no data after position
                    return
                raise
            end = os.lseek(self._fd, start, os.SEEK_HOLE)
            yield start, end
            position = end

    def read_into(self, index: int, buffer: memoryview) -> tuple[int, bytes | None]:
        offset = index * BLOCK_SIZE
        want = min(BLOCK_SIZE, self._size - offset)
        if want <= 0 or index < 0:
            raise InvalidParameterValue(f"block index: {index} is outside {self._path} ({self._size} bytes)",
                                        field="block_index")
        done = 0
        if self._direct is not None and want % DIRECT_ALIGNMENT == 0 and is_aligned(buffer):
            try:
                done = os.preadv(self._direct, [buffer[:want]], offset)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise DependencyFailure(f"reading {self._path} at byte {offset} failed: "
                                            f"{exc.strerror or exc}") from exc
                os.close(self._direct)  # this file system refuses direct reads after all: read through the cache
                self._direct = None
            done -= done % DIRECT_ALIGNMENT  # a short direct read goes on from an aligned offset
        while done < want:
            try:
                count = os.preadv(self._fd, [buffer[done:want]], offset + done)
            except OSError as exc:
                raise DependencyFailure(f"reading {self._path} at byte {offset + done} failed: "
                                        f"{exc.strerror or exc}") from exc
            if count == 0:
                raise DependencyFailure(f"{self._path} ended at {offset + done} bytes, expected {self._size}")
            done += count
        return want, None

    def close(self) -> None:
        if self._direct is not None:
            os.close(self._direct)
            self._direct = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> RawImageSource:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class BlockRanges(Sequence[int]):
    """Ascending block indexes held as disjoint ranges: a terabyte of data extents costs a few objects, not one
    Python int per block."""

    def __init__(self, ranges: list[range]) -> None:
        self._ranges = [r for r in ranges if len(r)]
        self._starts = list(accumulate((len(r) for r in self._ranges), initial=0))

    def __len__(self) -> int:
        return self._starts[-1]

    def __iter__(self) -> Iterator[int]:
        return chain.from_iterable(self._ranges)

    def __getitem__(self, i: int) -> int:  # type: ignore[override]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        which = bisect.bisect_right(self._starts, i) - 1
        return self._ranges[which][i - self._starts[which]]


def _intersect(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The overlap of two ascending lists of disjoint byte ranges."""
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        start, end = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if start < end:
            out.append((start, end))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def _blocks_of_extents(extents: list[tuple[int, int]]) -> BlockRanges:
    ranges: list[range] = []
    for start, end in extents:
        first, last = start // BLOCK_SIZE, (end - 1) // BLOCK_SIZE
        if ranges and ranges[-1].stop > first:
            first = ranges[-1].stop
        if first <= last:
            if ranges and ranges[-1].stop == first:
                ranges[-1] = range(ranges[-1].start, last + 1)
            else:
                ranges.append(range(first, last + 1))
    return BlockRanges(ranges)


class RawImageSink:
    """Restore into a raw image file (created sparse at the image's size) or onto an existing block device.

    A new or truncated file reads zeros where nothing is written, so zero blocks are skipped; an existing block
    device is not zeroed, so the restore writes its zero blocks too. Page-aligned buffers are written through a
    second, O_DIRECT descriptor where the file system allows it: filling new page-cache pages was the slowest
    part of a restore on the machines measured.
    """

    def __init__(self, path: str | os.PathLike[str], size: int, *, overwrite: bool = False) -> None:
        self._path = Path(path)
        self._size = size
        flags = os.O_WRONLY | getattr(os, "O_CLOEXEC", 0)
        device = self._path.exists() and stat.S_ISBLK(self._path.stat().st_mode)
        try:
            if device:
                self._fd = os.open(self._path, flags)
            else:
                if self._path.exists() and not overwrite:
                    raise InvalidParameterValue(
                        f"target: {self._path} exists; restore into a new file, or pass overwrite", field="target"
                    )
                self._fd = os.open(self._path, flags | os.O_CREAT | os.O_TRUNC, 0o600)
        except OSError as exc:
            raise DependencyFailure(f"opening {self._path} for writing failed: {exc.strerror or exc}") from exc
        try:
            if device:
                capacity = os.lseek(self._fd, 0, os.SEEK_END)
                if capacity < size:
                    raise InvalidParameterValue(
                        f"target: block device {self._path} holds {capacity} bytes, the disk needs {size}",
                        field="target",
                    )
            else:
                os.ftruncate(self._fd, size)
            self._direct_fd = open_direct(self._path, flags)
        except BaseException:
            os.close(self._fd)
            raise
        self._zeroed = not device

    @property
    def size(self) -> int:
        return self._size

    @property
    def zeroed(self) -> bool:
        return self._zeroed

    def write_block(self, index: int, data: bytes | memoryview) -> None:
        self.write_blocks(index, data)

    def write_blocks(self, first: int, data: bytes | memoryview) -> None:
        """Consecutive blocks from block `first` in one write (the restore batches runs of blocks)."""
        offset = first * BLOCK_SIZE
        if first < 0 or offset + len(data) > self._size:
            raise InvalidParameterValue(f"block index: {first} does not fit {self._path} ({self._size} bytes)",
                                        field="block_index")
        try:
            pwrite_all(self._fd, memoryview(data), offset, self._direct_fd)
        except OSError as exc:
            raise DependencyFailure(f"writing {self._path} at byte {offset} failed: {exc.strerror or exc}") from exc

    def close(self) -> None:
        if self._direct_fd is not None:
            os.close(self._direct_fd)
            self._direct_fd = None
        if self._fd >= 0:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> RawImageSink:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def parse_changed_blocks(text: str, block_total: int, *, field: str = "changed_blocks") -> list[int]:
    """A changed-block list: one 512 KiB block index per line (blank lines and `#` comments ignored)."""
    found: set[int] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if not line.isdigit():
            raise InvalidParameterValue(f"{field}: line {number}: {line!r} is not a block index (a whole number)",
                                        field=field)
        index = int(line)
        if index >= block_total:
            raise InvalidParameterValue(f"{field}: line {number}: block {index} is beyond the disk's "
                                        f"{block_total} blocks", field=field)
        found.add(index)
    return sorted(found)


def zero_block(length: int = BLOCK_SIZE) -> bytes:
    return ZERO_BLOCK[:length]
