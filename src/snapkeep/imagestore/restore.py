"""Restore of one disk as a pipeline: pack reads, chunk decoding and target writes each on their own threads.

A restore is bound by three things at once: reading the packs, decrypting, decompressing and verifying every
chunk (about 0.9 ms of CPU per 512 KiB block), and writing the disk. When one worker did all three in turn, a core
sat idle whenever its worker waited on the disk. Here readers read ranges of packs ahead into a small pool of
buffers, one decoder per core turns them into runs of consecutive target blocks, and two writers write the runs,
so the cores decode while both directions of I/O are in flight. Pools bound memory: at most `readers + 2` range
buffers of up to RESTORE_READ_SIZE and `decoders + 2` run buffers of RESTORE_RUN_BLOCKS blocks (about 50 MiB on
2 cores). Where the disk itself is the limit (these machines: reads and writes share about 1 GB/s), the pipeline
reaches it; where the CPU is, both cores decode all the time.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from snapkeep.blobstores.base import RangeReader
from snapkeep.blobstores.local import DIRECT_ALIGNMENT, aligned_buffer
from snapkeep.imagestore.errors import DamagedObject
from snapkeep.imagestore.format import BLOCK_SIZE, ENVELOPE_OVERHEAD, BlobType, pack_name
from snapkeep.imagestore.sources import BlockSink, DigestSink

if TYPE_CHECKING:
    from snapkeep.blobstores.base import BlobStore
    from snapkeep.imagestore.chunks import ChunkIdentifier
    from snapkeep.imagestore.format import BlobCodec
    from snapkeep.imagestore.manifest import Disk

RESTORE_RUN_BLOCKS = 8
"""A restore writes up to this many consecutive blocks (4 MiB) in one call."""
RESTORE_READ_SIZE = 8 * 1024 * 1024
"""Wanted blobs of a pack closer than RESTORE_READ_GAP are read in one request of up to about this many bytes."""
RESTORE_READ_GAP = 1024 * 1024
_POLL = 0.1


@dataclass
class Blob:
    """One chunk of a pack the disk needs, and every block that holds it."""

    length: int
    raw_length: int
    chunk_id: bytes
    blocks: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class PackRead:
    """One request: bytes [start, end) of a pack, holding the blobs at `offsets`."""

    pack_id: bytes
    start: int
    end: int
    offsets: list[int]


ProgressSink = Callable[[int, int], None]
"""Called with (blocks, bytes) written since the last call, on the thread that runs the restore."""


def plan_reads(pack_id: bytes, blobs: Mapping[int, Blob], *, gap: int = RESTORE_READ_GAP,
               size: int = RESTORE_READ_SIZE) -> list[PackRead]:
    """Coalesce a pack's wanted blobs (by offset) into reads: blobs less than `gap` apart share a read, until the
    read would pass `size` bytes."""
    reads: list[PackRead] = []
    start = end = -1
    offsets: list[int] = []
    for offset in sorted(blobs):
        blob_end = offset + blobs[offset].length
        if offsets and offset - end <= gap and blob_end - start <= size:
            offsets.append(offset)
            end = max(end, blob_end)
            continue
        if offsets:
            reads.append(PackRead(pack_id, start, end, offsets))
        start, end, offsets = offset, blob_end, [offset]
    if offsets:
        reads.append(PackRead(pack_id, start, end, offsets))
    return reads


def runs_of(read: PackRead, blobs: Mapping[int, Blob]) -> list[list[tuple[int, int]]]:
    """The (block, offset) pairs a read serves, as runs of up to RESTORE_RUN_BLOCKS consecutive blocks."""
    targets = sorted((block, offset) for offset in read.offsets for block in blobs[offset].blocks)
    runs: list[list[tuple[int, int]]] = []
    for block, offset in targets:
        if runs and block == runs[-1][-1][0] + 1 and len(runs[-1]) < RESTORE_RUN_BLOCKS:
            runs[-1].append((block, offset))
        else:
            runs.append([(block, offset)])
    return runs


class _Stopped(Exception):
    """A thread gave up because another failed."""


class _Pool:
    """Up to `limit` buffers made on demand by `make`, handed out and returned; waiting stops with the restore."""

    def __init__(self, limit: int, make: Callable[[], Any], stop: threading.Event) -> None:
        self._free: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._made = 0
        self._limit = limit
        self._make = make
        self._stop = stop

    def take(self) -> Any:
        with self._lock:
            if self._free.empty() and self._made < self._limit:
                self._made += 1
                return self._make()
        while True:
            try:
                return self._free.get(timeout=_POLL)
            except queue.Empty:
                if self._stop.is_set():
                    raise _Stopped from None

    def give(self, buffer: Any) -> None:
        self._free.put(buffer)


class _Range:
    """A pack range in memory, with the number of its runs still being decoded (its buffer is freed at zero)."""

    def __init__(self, read: PackRead, data: memoryview, buffer: Any, runs: int) -> None:
        self.read = read
        self.data = data
        self.buffer = buffer
        self.pending = runs
        self.lock = threading.Lock()

    def done_one(self) -> bool:
        with self.lock:
            self.pending -= 1
            return self.pending == 0


class RestorePipeline:
    """Restore the blocks of `target` that `reads` serve to `sink`; zero the rest where the sink is not zeroed."""

    def __init__(self, store: BlobStore, codec: BlobCodec, chunk_ids: ChunkIdentifier, target: Disk,
                 sink: BlockSink, *, verify: bool, decoders: int | None = None, readers: int | None = None,
                 writers: int = 2) -> None:
        self.store = store
        self.codec = codec
        self.chunk_ids = chunk_ids
        self.target = target
        self.sink = sink
        self.verify = verify
        self.local = isinstance(store, RangeReader)
        # A local disk serves two reads in flight at full speed; a remote store needs more to hide its latency.
        self.readers = readers or (2 if self.local else 4)
        self.decoders = decoders or max(2, min(8, os.cpu_count() or 2))
        # Two writes in flight: a local disk takes them a little faster than one at a time, and a sink that
        # computes per block (the EBS sink's checksums) gets two threads for it.
        self.writers = writers
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.error_lock = threading.Lock()
        # A read is at most RESTORE_READ_SIZE bytes, widened to page boundaries at both ends.
        self.ranges = _Pool(self.readers + 2, lambda: aligned_buffer(RESTORE_READ_SIZE + 2 * DIRECT_ALIGNMENT),
                            self.stop)
        self.runs = _Pool(self.decoders + 2, lambda: memoryview(aligned_buffer(RESTORE_RUN_BLOCKS * BLOCK_SIZE)),
                          self.stop)
        self.decode_queue: queue.Queue[tuple[_Range, list[tuple[int, int]]] | None] = queue.Queue()
        # (first block, bytes, the run buffer to give back or None for zeros, each block's verified SHA-256)
        self.write_queue: queue.Queue[tuple[int, memoryview, memoryview | None, list[bytes] | None] | None] = \
            queue.Queue()
        self.digest_sink = isinstance(sink, DigestSink)
        self.done: queue.SimpleQueue[tuple[int, int]] = queue.SimpleQueue()
        self.totals = [0, 0]
        """Blocks and bytes written from chunks, counted on the calling thread."""

    def run(self, reads: list[PackRead], blobs: Mapping[bytes, Mapping[int, Blob]],
            progress: ProgressSink) -> tuple[int, int]:
        """Restore; returns (blocks written from chunks, bytes written). The first error of any thread is raised
        once every thread has stopped; `progress` is called on the calling thread only."""
        feed = iter(reads)
        feed_lock = threading.Lock()
        readers = [self._thread(f"snapkeep-restore-read-{i}", self._read_loop, feed, feed_lock, blobs)
                   for i in range(self.readers)]
        decoders = [self._thread(f"snapkeep-restore-decode-{i}", self._decode_loop, blobs)
                    for i in range(self.decoders)]
        writers = [self._thread(f"snapkeep-restore-write-{i}", self._write_loop) for i in range(self.writers)]
        try:
            for thread in readers:
                self._join(thread, progress)
            if not self.sink.zeroed and not self.stop.is_set():
                self._queue_zeros()
            for _ in decoders:
                self.decode_queue.put(None)
            for thread in decoders:
                self._join(thread, progress)
            for _ in writers:
                self.write_queue.put(None)
            for thread in writers:
                self._join(thread, progress)
        except BaseException as exc:
            self._fail(exc)
            for thread in (*readers, *decoders, *writers):
                thread.join()
        self._report(progress)
        if self.errors:
            raise self.errors[0]
        return self.totals[0], self.totals[1]

    # --- threads ---------------------------------------------------------------------------------------------

    def _thread(self, name: str, target: Callable[..., None], *args: Any) -> threading.Thread:
        def guarded() -> None:
            try:
                target(*args)
            except _Stopped:
                pass
            except BaseException as exc:
                self._fail(exc)

        thread = threading.Thread(target=guarded, name=name, daemon=True)
        thread.start()
        return thread

    def _join(self, thread: threading.Thread, progress: ProgressSink) -> None:
        """Wait for a thread, reporting progress meanwhile."""
        while thread.is_alive():
            thread.join(timeout=_POLL)
            self._report(progress)

    def _report(self, progress: ProgressSink) -> None:
        """Count and report the runs written so far (on the calling thread)."""
        while not self.done.empty():
            blocks, size = self.done.get()
            self.totals[0] += blocks
            self.totals[1] += size
            progress(blocks, size)

    def _fail(self, exc: BaseException) -> None:
        with self.error_lock:
            self.errors.append(exc)
        self.stop.set()

    def _get(self, source: queue.Queue[Any]) -> Any:
        while True:
            try:
                return source.get(timeout=_POLL)
            except queue.Empty:
                if self.stop.is_set():
                    raise _Stopped from None

    def _read_loop(self, feed: Iterator[PackRead], feed_lock: threading.Lock,
                   blobs: Mapping[bytes, Mapping[int, Blob]]) -> None:
        while not self.stop.is_set():
            with feed_lock:
                read = next(feed, None)
            if read is None:
                return
            pack_blobs = blobs[read.pack_id]
            runs = runs_of(read, pack_blobs)
            buffer = self.ranges.take()
            data = self._read_range(read, buffer)
            held = _Range(read, data, buffer, len(runs))
            for run in runs:
                self.decode_queue.put((held, run))

    def _read_range(self, read: PackRead, buffer: Any) -> memoryview:
        """Bytes [start, end) of a pack; a local store reads them (page-aligned, bypassing the cache) into the
        range buffer."""
        name = pack_name(read.pack_id)
        if self.local:
            assert isinstance(self.store, RangeReader)
            first = read.start - read.start % DIRECT_ALIGNMENT
            length = -(-(read.end - first) // DIRECT_ALIGNMENT) * DIRECT_ALIGNMENT
            view = memoryview(buffer)[:length]
            count = self.store.read_into(name, first, view)
            if count < read.end - first:
                raise DamagedObject(name, f"ends before byte {read.end}, where the index places a chunk")
            return view[read.start - first:read.end - first]
        data = memoryview(self.store.get_range(name, read.start, read.end - read.start))
        if len(data) != read.end - read.start:
            raise DamagedObject(name, f"ends before byte {read.end}, where the index places a chunk")
        return data

    def _decode_loop(self, blobs: Mapping[bytes, Mapping[int, Blob]]) -> None:
        scratch = memoryview(bytearray(BLOCK_SIZE + ENVELOPE_OVERHEAD))
        while True:
            item = self._get(self.decode_queue)
            if item is None:
                return
            held, run = item
            out = self.runs.take()
            digests: list[bytes] = []
            try:
                size = self._decode_run(held, run, blobs[held.read.pack_id], out, scratch, digests)
            except BaseException:
                self.runs.give(out)
                raise
            finally:
                if held.done_one():
                    self.ranges.give(held.buffer)
            self.write_queue.put((run[0][0], out[:size], out, digests if len(digests) == len(run) else None))

    def _decode_run(self, held: _Range, run: list[tuple[int, int]], blobs: Mapping[int, Blob], out: memoryview,
                    scratch: memoryview, digests: list[bytes]) -> int:
        """Decrypt and decompress each chunk of a run straight into its place in `out`; the run's byte length.
        Verifying, each block's SHA-256 goes to `digests` (a DigestSink need not hash it again)."""
        name = pack_name(held.read.pack_id)
        start = held.read.start
        decoded: dict[int, int] = {}
        verified: dict[int, bytes] = {}
        position = 0
        for block, offset in run:
            blob = blobs[offset]
            where = f"{name} @ {offset}"
            expected = min(BLOCK_SIZE, self.target.size - block * BLOCK_SIZE)
            slot = out[position:position + BLOCK_SIZE]
            if offset in decoded:  # the same chunk twice in one run: copy what is decoded already
                slot[:expected] = out[decoded[offset]:decoded[offset] + expected]
                if offset in verified:
                    digests.append(verified[offset])
            else:
                size = self.codec.open_into(BlobType.CHUNK, blob.chunk_id,
                                            held.data[offset - start:offset - start + blob.length], slot, scratch,
                                            where=where)
                if size != blob.raw_length:
                    raise DamagedObject(where, f"holds {size} bytes, the index says {blob.raw_length}")
                if size != expected:
                    raise DamagedObject(where, f"chunk of {size} bytes for block {block}, which holds {expected}")
                if self.verify:
                    digest = hashlib.sha256(slot[:size]).digest()
                    if self.chunk_ids.from_digest(digest) != blob.chunk_id:
                        raise DamagedObject(where, "its content does not hash to its chunk id")
                    verified[offset] = digest
                    digests.append(digest)
                decoded[offset] = position
            position += expected
        return position

    def _write_loop(self) -> None:
        while True:
            item = self._get(self.write_queue)
            if item is None:
                return
            first, data, buffer, digests = item
            try:
                if digests is not None and self.digest_sink:
                    assert isinstance(self.sink, DigestSink)
                    for number, digest in enumerate(digests):
                        self.sink.write_verified_block(first + number, data[number * BLOCK_SIZE:
                                                                            (number + 1) * BLOCK_SIZE], digest)
                else:
                    write_blocks(self.sink, first, data)
            finally:
                if buffer is not None:
                    self.runs.give(buffer)
            if buffer is not None:  # zero runs are not the image's blocks: they do not count as restored
                self.done.put((-(-len(data) // BLOCK_SIZE), len(data)))

    def _queue_zeros(self) -> None:
        """The blocks the image does not hold, as zero runs for the writer (a device is not zeroed for us)."""
        present = set(self.target.block_map.indexes)
        zeros = memoryview(aligned_buffer(RESTORE_RUN_BLOCKS * BLOCK_SIZE))
        first = count = 0
        for block in range(self.target.block_count + 1):
            absent = block < self.target.block_count and block not in present
            if count and (not absent or count == RESTORE_RUN_BLOCKS):
                end = min((first + count) * BLOCK_SIZE, self.target.size)
                self.write_queue.put((first, zeros[:end - first * BLOCK_SIZE], None, None))
                count = 0
            if absent:
                first, count = (first, count + 1) if count else (block, 1)


def write_blocks(sink: BlockSink, first: int, data: memoryview) -> None:
    """Consecutive blocks in one write where the sink takes that (a raw file), else block by block."""
    write_many = getattr(sink, "write_blocks", None)
    if write_many is not None:
        write_many(first, data)
        return
    for position in range(0, len(data), BLOCK_SIZE):
        sink.write_block(first + position // BLOCK_SIZE, data[position:position + BLOCK_SIZE])
