"""Index load: what every backup, restore and check pays before its first lookup, as a repository grows.

    ./dev bench index [--entries 1000000] [--incrementals 100] [--repeat 3]

Builds the index files of a repository holding `--entries` unique chunks (one file, as a full backup or gc
writes) plus `--incrementals` files of 41 chunks each (one per small incremental backup), encodes them as stored
(plaintext: the envelope's decryption is the same for every loader), and times, medians of `--repeat`:

* decode: parsing and checking every file (pack numbers within the pack table, ids in ascending order);
* load: building the in-memory ChunkIndex;
* first lookup: the sort a lookup triggers for buckets that gained records from several files;

for the bulk loader (`ChunkIndex.load` of decoded files) side by side with entry-by-entry loading (the same
entries as tuples, what the loader did for every file before). Not part of the test run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from functools import partial

from snapkeep.imagestore.index import ChunkIndex, Entry, IndexFile, PackRecord

CHUNKS_PER_PACK = 32
INCREMENTAL_CHUNKS = 41


def build(entries: int, incrementals: int) -> list[tuple[bytes, bytes]]:
    """(index id, plaintext) of every index file."""
    files = []
    sizes = [entries] + [INCREMENTAL_CHUNKS] * incrementals
    for size in sizes:
        index_file = IndexFile(IndexFile.new_id())
        packs = max(1, -(-size // CHUNKS_PER_PACK))
        index_file.packs = [PackRecord(os.urandom(32), 16 << 20, 0) for _ in range(packs)]
        index_file.entries = [(os.urandom(32), i // CHUNKS_PER_PACK, (i % CHUNKS_PER_PACK) * 300_000, 300_000,
                               524_288) for i in range(size)]
        files.append((index_file.index_id, index_file.encode()))
    return files


class _OneByOne(Sequence[Entry]):
    """A decoded file's entries behind a plain sequence: the loader reads them one by one."""

    def __init__(self, entries: Sequence[Entry]) -> None:
        self._entries = entries

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, i: int) -> Entry:  # type: ignore[override]
        return self._entries[i]

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries)


def measure(files: list[tuple[bytes, bytes]], bulk: bool) -> tuple[float, float, float]:
    started = time.perf_counter()
    decoded = [IndexFile.decode(index_id, data, "index/bench") for index_id, data in files]
    if not bulk:  # the same entries, not recognised as decoded: loaded one by one, as every file was before
        decoded = [IndexFile(f.index_id, f.packs, _OneByOne(f.entries), f.supersedes) for f in decoded]
    decoding = time.perf_counter() - started
    started = time.perf_counter()
    index = ChunkIndex()
    for index_file in decoded:
        index.load(index_file)
    loading = time.perf_counter() - started
    started = time.perf_counter()
    index.lookup(os.urandom(32))
    return decoding, loading, time.perf_counter() - started


def median_of(repeat: int, run: Callable[[], tuple[float, float, float]]) -> tuple[float, float, float]:
    runs = [run() for _ in range(repeat)]
    decoding, loading, lookup = (statistics.median(r[i] for r in runs) for i in range(3))
    return decoding, loading, lookup


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--incrementals", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    if args.entries < 1 or args.incrementals < 0 or args.repeat < 1:
        parser.error("--entries and --repeat must be 1 or more, --incrementals 0 or more")
    files = build(args.entries, args.incrementals)
    total = args.entries + args.incrementals * INCREMENTAL_CHUNKS
    print(f"{len(files)} index files, {total} entries ({sum(len(d) for _, d in files) / 2**20:.1f} MiB); "
          f"medians of {args.repeat}")
    print(f"{'loader':16} {'decode s':>9} {'load s':>8} {'lookup s':>9} {'total s':>8}")
    figures = {}
    for name, bulk in (("bulk", True), ("entry by entry", False)):
        decoding, loading, lookup = median_of(args.repeat, partial(measure, files, bulk))
        figures[name] = decoding + loading + lookup
        print(f"{name:16} {decoding:9.3f} {loading:8.3f} {lookup:9.3f} {figures[name]:8.3f}")
    print(f"bulk is {figures['entry by entry'] / figures['bulk']:.1f}x faster")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
