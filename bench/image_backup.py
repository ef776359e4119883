"""Image backup: Snapkeep against restic and borg on a raw ext4 image (full, 1% incremental, sibling, restore).

    ./dev bench image [--size 2GiB] [--repeat 3] [--workdir DIR] [--keep] [--json FILE] [--tools snapkeep,restic,borg]

The images are built first, in the work directory (default a new temporary directory under /var/tmp):

* `base.img`: a real ext4 filesystem (`mkfs.ext4 -d`) of `--size` bytes holding generated files: prose, source
  code, semi-compressible binaries, incompressible random data and disk-like files with zero-filled regions, about
  half the filesystem used. All file contents come from `--seed`, so they are the same on every run; the image is
  written out non-sparse, as a raw disk read from a volume would be.
* `successor.img`: the base with 1% of its 512 KiB blocks rewritten with new file data of the same kind (only
  blocks that lie entirely inside file data, so the filesystem stays consistent); `successor.changed` lists the
  changed blocks, one 512 KiB block index per line, as the EBS changed-block list would.
* `sibling.img` / `sibling.changed`: another instance of the same base with a different 1% changed.

Each tool then runs four phases into a fresh local, encrypted repository per repetition: a full backup of the
base; the incremental backup of the successor (Snapkeep from the changed-block list with the base as parent;
restic and borg back the successor file up into the same repository, which is their incremental); the sibling
(Snapkeep: parent = the base, with the sibling's changed-block list); and a restore of the successor to a file,
compared byte for byte with the source. Each phase is one child process, measured with os.wait4: wall time,
user + system CPU time, peak RSS, and the growth of the repository directory; the wall time ends when what the
tool wrote is on disk (a sync after it exits, so a restore left in the page cache is not counted as done). The
page cache is dropped before every phase when /proc/sys/vm/drop_caches is writable (otherwise the report says
the caches were warm), then the tool's program is loaded once (`--version`, or Snapkeep's modules imported): a
phase starts with cold images and repositories but not with a cold executable, as for a resident service. The
report shows medians over `--repeat` repetitions and the verdicts for the targets. Not part of the test run.

After Snapkeep's restore, `disk-floor` measures the disk alone doing what any restore from that repository must:
reading every pack file while writing as many bytes as the restore wrote, both with O_DIRECT in the restore's
request sizes and nothing decoded. It is the floor under a restore on this machine; where the disk is the limit,
the restore ratio against restic says more about the disk than about the tools.

Snapkeep's full backup reads only the blocks the image's ext4 filesystem uses (its free space restores as zeros);
`snapkeep-whole` is the same Snapkeep with `--read-free-space`, reading every block as restic and borg do, so
the report shows the engine both ways. The verdicts are for `snapkeep`, the default.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BLOCK_SIZE = 512 * 1024
FS_BLOCK = 4096
PAGES_PER_BLOCK = BLOCK_SIZE // FS_BLOCK
GiB = 1024**3
MiB = 1024**2
IMAGE_FORMAT = 2  # bump when the image recipe changes, so a kept work directory is rebuilt
CHANGED_FRACTION = 0.01
PASSPHRASE = "snapkeep-bench-passphrase"
FIXED_TIME = 1_767_225_600  # 2026-01-01T00:00:00Z: file times inside the image
INSTALL_HINT = "apt-get install -y restic borgbackup e2fsprogs"
SYSTEM_DIRS = ("/usr/sbin", "/sbin")

# Targets (the image backup issue), checked against the medians.
FULL_VS_RESTIC = 2.5
FULL_VS_BORG = 2.0
INCREMENTAL_VS_RESTIC = 15.0
GROWTH_VS_FLOOR = 1.1
RESTORE_VS_RESTIC = 3.0
PEAK_RSS_MIB = 128.0

PHASES = ("full", "incremental", "sibling", "restore")
TOOLS = ("snapkeep", "snapkeep-whole", "restic", "borg")
DISK_FLOOR = "disk-floor"
FLOOR_READ = 8 * MiB
FLOOR_WRITE = 4 * MiB


class BenchError(Exception):
    """A missing tool, a failed child process or a wrong restore: the benchmark cannot give a figure."""


# --- generated file contents -------------------------------------------------------------------------------------

LETTERS = "etaoinshrdlcumwfgypbvkjxqz"
LETTER_WEIGHTS = (12.7, 9.1, 8.2, 7.5, 7.0, 6.7, 6.3, 6.1, 6.0, 4.3, 4.0, 2.8, 2.8, 2.4, 2.4, 2.2, 2.0, 2.0,
                  1.9, 1.5, 1.0, 0.8, 0.2, 0.2, 0.1, 0.1)
NIBBLES = bytes((value & 0x0F) * 17 for value in range(256))  # 16 byte values: about 2x compressible

KIND_NAMES = {1: "text", 2: "source", 3: "binary", 4: "random", 5: "disk"}
KIND_CODES = {name: code for code, name in KIND_NAMES.items()}
# Share of the image size taken by each kind of file data (the disk-like files also hold zero-filled regions,
# which become holes and take no space). With the filesystem's own metadata this uses about 55% of the image.
KIND_SHARE = {"text": 0.16, "source": 0.12, "binary": 0.09, "random": 0.12, "disk": 0.03}
KIND_SIZES = {"text": (2048, 1024 * 1024), "source": (1024, 256 * 1024), "binary": (64 * 1024, 8 * MiB),
              "random": (1 * MiB, 16 * MiB), "disk": (4 * MiB, 32 * MiB)}


class Corpus:
    """Seeded generators for the kinds of data a server's disk holds, fast enough for gigabytes in Python.

    Prose and code are drawn from pools of sentences and lines over a Zipf-distributed vocabulary, so they
    compress about as well as real text (3-5x in 512 KiB blocks) while two files never share long runs.
    """

    def __init__(self, seed: int) -> None:
        rng = random.Random(f"corpus-{seed}")
        words: set[str] = set()
        while len(words) < 6000:
            length = min(12, 1 + int(rng.expovariate(1 / 4.5)))
            words.add("".join(rng.choices(LETTERS, weights=LETTER_WEIGHTS, k=length)))
        vocabulary = sorted(words)
        rng.shuffle(vocabulary)
        zipf = list(itertools.accumulate(1.0 / rank for rank in range(1, len(vocabulary) + 1)))

        def phrase(count: int) -> list[str]:
            return rng.choices(vocabulary, cum_weights=zipf, k=count)

        self.sentences = []
        for _ in range(40000):
            sentence = " ".join(phrase(rng.randint(4, 22))).capitalize()
            self.sentences.append(sentence + rng.choice(".....?!;:") + ("\n\n" if rng.random() < 0.08 else " "))
        templates: list[Callable[[], str]] = [
            lambda: f"def {'_'.join(phrase(2))}({', '.join(phrase(rng.randint(0, 3)))}):\n",
            lambda: f"    {phrase(1)[0]} = {'_'.join(phrase(2))}({phrase(1)[0]}, {rng.randint(0, 4096)})\n",
            lambda: f"    if {phrase(1)[0]} > {rng.randint(0, 255)}:\n",
            lambda: f"        return {phrase(1)[0]}.{'_'.join(phrase(2))}()\n",
            lambda: f"    # {' '.join(phrase(rng.randint(3, 12)))}\n",
            lambda: f"#include <{phrase(1)[0]}/{'_'.join(phrase(2))}.h>\n",
            lambda: f"static int {'_'.join(phrase(2))}(struct {phrase(1)[0]} *{phrase(1)[0]})\n{{\n",
            lambda: f"\tfor (i = 0; i < {phrase(1)[0].upper()}_MAX; i++)\n"
                    f"\t\t{phrase(1)[0]}[i] = {rng.randint(0, 99)};\n",
            lambda: "}\n\n",
            lambda: f"class {''.join(word.capitalize() for word in phrase(2))}({phrase(1)[0].capitalize()}):\n",
            lambda: f'    """{" ".join(phrase(rng.randint(4, 14))).capitalize()}."""\n',
        ]
        self.lines = [rng.choice(templates)() for _ in range(30000)]
        self._sentence_length = sum(map(len, self.sentences)) // len(self.sentences)
        self._line_length = sum(map(len, self.lines)) // len(self.lines)

    @staticmethod
    def _draw(rng: random.Random, pool: Sequence[str], average: int, size: int) -> bytes:
        out = "".join(rng.choices(pool, k=size // average + 16)).encode()
        while len(out) < size:
            out += "".join(rng.choices(pool, k=size // average // 8 + 16)).encode()
        return out[:size]

    def text(self, rng: random.Random, size: int) -> bytes:
        return self._draw(rng, self.sentences, self._sentence_length, size)

    def source(self, rng: random.Random, size: int) -> bytes:
        return self._draw(rng, self.lines, self._line_length, size)

    @staticmethod
    def binary(rng: random.Random, size: int) -> bytes:
        """Executable-like: incompressible stretches, low-entropy tables and short zero runs (under a page)."""
        parts: list[bytes] = []
        total = 0
        while total < size:
            length = rng.randint(512, 32768)
            draw = rng.random()
            if draw < 0.3:
                part = rng.randbytes(length)
            elif draw < 0.85:
                part = rng.randbytes(length).translate(NIBBLES)
            else:
                part = bytes(min(length, 3000))
            parts.append(part)
            total += len(part)
        return b"".join(parts)[:size]

    @staticmethod
    def incompressible(rng: random.Random, size: int) -> bytes:
        return rng.randbytes(size)

    def disk(self, rng: random.Random, size: int) -> bytes:
        """File data of a disk-like file (its zero-filled regions are written separately)."""
        return self.binary(rng, size) if rng.random() < 0.5 else self.text(rng, size)

    def of_kind(self, kind: str, rng: random.Random, size: int) -> bytes:
        makers: dict[str, Callable[[random.Random, int], bytes]] = {
            "text": self.text, "source": self.source, "binary": self.binary, "random": self.incompressible,
            "disk": self.disk}
        return makers[kind](rng, size)


# --- building the images --------------------------------------------------------------------------------------


@dataclass
class ImageSet:
    """The three images, their changed-block lists and what is known about them."""

    directory: Path
    size: int
    seed: int
    base: Path
    successor: Path
    sibling: Path
    successor_changed: Path
    sibling_changed: Path
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def blocks(self) -> int:
        return -(-self.size // BLOCK_SIZE)


def find_program(name: str) -> str | None:
    """PATH first, then the sbin directories (mkfs.ext4 and debugfs live there and are not on a user's PATH)."""
    found = shutil.which(name)
    if found is None:
        found = shutil.which(name, path=os.pathsep.join(SYSTEM_DIRS))
    return found


def need_program(name: str, package: str) -> str:
    found = find_program(name)
    if found is None:
        raise BenchError(f"{name} is not installed (Debian package {package}): run `{INSTALL_HINT}` as root, "
                         f"or `./dev bench image`, which installs them when run as root")
    return found


def log_uniform(rng: random.Random, low: int, high: int) -> int:
    return int(math.exp(rng.uniform(math.log(low), math.log(high))))


def populate(root: Path, size: int, corpus: Corpus, seed: int) -> list[tuple[str, str, int]]:
    """Write the source tree for mkfs.ext4 -d; returns (path inside the image, kind, bytes) for every file."""
    files: list[tuple[str, str, int]] = []
    directories: list[Path] = []
    for kind, share in KIND_SHARE.items():
        rng = random.Random(f"tree-{seed}-{kind}")
        budget = int(size * share)
        low, high = KIND_SIZES[kind]
        number = 0
        while budget > 0:
            length = min(budget, max(low, log_uniform(rng, low, high)))
            folder = root / kind / f"d{number // 48:03d}"
            if number % 48 == 0:
                folder.mkdir(parents=True)
                directories.append(folder)
            word = "".join(char for char in rng.choice(corpus.sentences).split()[0].lower() if char.isalpha())
            path = folder / f"{word[:16]}-{number:05d}{suffix(kind)}"
            with open(path, "wb") as out:
                if kind == "disk":
                    write_disk_like(out, rng, corpus, length)
                else:
                    out.write(corpus.of_kind(kind, rng, length))
            os.utime(path, (FIXED_TIME, FIXED_TIME))
            files.append(("/" + path.relative_to(root).as_posix(), kind, length))
            budget -= length
            number += 1
    for folder in [*directories, *(root / kind for kind in KIND_SHARE), root]:
        os.utime(folder, (FIXED_TIME, FIXED_TIME))
    return files


def suffix(kind: str) -> str:
    return {"text": ".txt", "source": ".c", "binary": ".so", "random": ".bin", "disk": ".raw"}[kind]


def write_disk_like(out: Any, rng: random.Random, corpus: Corpus, data_bytes: int) -> None:
    """Data stretches of 1-4 MiB separated by zero-filled regions of 1-8 MiB (which mkfs stores as holes)."""
    while data_bytes > 0:
        stretch = min(data_bytes, rng.randint(1 * MiB, 4 * MiB))
        out.write(corpus.disk(rng, stretch))
        data_bytes -= stretch
        if data_bytes > 0:
            out.write(bytes(rng.randint(1, 8) * MiB))


def materialise(sparse: Path, target: Path) -> None:
    """Copy with every zero written out: a raw image read from a volume is not sparse."""
    with open(sparse, "rb") as src, open(target, "wb") as dst:
        buffer = bytearray(8 * MiB)
        view = memoryview(buffer)
        while count := src.readinto(buffer):
            dst.write(view[:count])


def read_blocks(path: Path) -> Iterable[bytes]:
    with open(path, "rb") as src:
        while block := src.read(BLOCK_SIZE):
            yield block


EXTENT_LEAF = re.compile(r"^\s*\d+/\s*\d+\s+\d+/\s*\d+\s+\d+\s*-\s*\d+\s+(\d+)\s*-\s*(\d+)\s+\d+")


def file_block_kinds(debugfs: str, image: Path, files: list[tuple[str, str, int]], fs_blocks: int,
                     scratch: Path) -> bytearray:
    """For every 4 KiB filesystem block, the kind code of the file whose data it holds (0 = anything else).

    Only the leaves of each file's extent tree count: its interior nodes are filesystem metadata, and rewriting
    them would break the filesystem rather than change a file.
    """
    commands = scratch / "debugfs.commands"
    commands.write_text("".join(f'ex -l "{path}"\n' for path, _, _ in files))
    answer = subprocess.run([debugfs, "-f", str(commands), str(image)], capture_output=True, text=True, check=True)
    kinds = bytearray(fs_blocks)
    current = 0
    order = iter(files)
    for line in answer.stdout.splitlines():
        if line.startswith("debugfs:"):
            current = KIND_CODES[next(order)[1]]
            continue
        leaf = EXTENT_LEAF.match(line)
        if leaf:
            first, last = int(leaf.group(1)), int(leaf.group(2))
            kinds[first:last + 1] = bytes([current]) * (last + 1 - first)
    return kinds


def choose_changes(candidates: list[int], count: int, rng: random.Random, avoid: set[int]) -> list[int]:
    pool = [index for index in candidates if index not in avoid]
    if len(pool) < count:
        raise BenchError(f"only {len(pool)} blocks lie entirely inside file data; {count} are needed")
    return sorted(rng.sample(pool, count))


def derive(base: Path, target: Path, changed: list[int], kinds: bytearray, corpus: Corpus,
           rng: random.Random) -> list[int]:
    """Copy the base and rewrite the changed blocks with new data of each page's kind; returns the blocks."""
    shutil.copyfile(base, target)
    with open(target, "r+b") as image:
        for index in changed:
            image.seek(index * BLOCK_SIZE)
            old = image.read(BLOCK_SIZE)
            pages = kinds[index * PAGES_PER_BLOCK:(index + 1) * PAGES_PER_BLOCK]
            new = b"".join(corpus.of_kind(KIND_NAMES[code], rng, FS_BLOCK) for code in pages)
            if new == old:  # cannot happen with random data, but the list must only hold blocks that differ
                raise BenchError(f"block {index}: the new data equals the old")
            image.seek(index * BLOCK_SIZE)
            image.write(new)
    return changed


def compressed_size(image: Path, blocks: list[int]) -> int:
    """zstd level 3 of each listed block, summed: the least an incremental backup of them can store."""
    import zstandard

    compressor = zstandard.ZstdCompressor(level=3)
    total = 0
    with open(image, "rb") as src:
        for index in blocks:
            src.seek(index * BLOCK_SIZE)
            total += len(compressor.compress(src.read(BLOCK_SIZE)))
    return total


def filesystem_usage(dumpe2fs: str, image: Path) -> float:
    text = subprocess.run([dumpe2fs, "-h", str(image)], capture_output=True, text=True, check=True).stdout
    fields = {key.strip(): value.strip() for key, _, value in (line.partition(":") for line in text.splitlines())}
    count, free = int(fields["Block count"]), int(fields["Free blocks"])
    return (count - free) / count


def fsck_clean(e2fsck: str, image: Path) -> bool:
    return subprocess.run([e2fsck, "-fn", str(image)], capture_output=True).returncode == 0


def build_images(workdir: Path, size: int, seed: int, log: Callable[[str], None] = lambda _: None) -> ImageSet:
    """Build (or reuse, when the recipe, size and seed match) the base, successor and sibling images."""
    mkfs = need_program("mkfs.ext4", "e2fsprogs")
    debugfs = need_program("debugfs", "e2fsprogs")
    dumpe2fs = need_program("dumpe2fs", "e2fsprogs")
    e2fsck = need_program("e2fsck", "e2fsprogs")
    if size % BLOCK_SIZE or size < 32 * MiB:
        raise BenchError(f"--size must be a multiple of 512 KiB and at least 32 MiB, not {size}")
    directory = workdir / "images"
    images = ImageSet(directory, size, seed, directory / "base.img", directory / "successor.img",
                      directory / "sibling.img", directory / "successor.changed", directory / "sibling.changed")
    stamp = directory / "images.json"
    recipe = {"format": IMAGE_FORMAT, "size": size, "seed": seed}
    if stamp.exists():
        saved = json.loads(stamp.read_text())
        paths = (images.base, images.successor, images.sibling, images.successor_changed, images.sibling_changed)
        if saved.get("recipe") == recipe and all(path.exists() for path in paths):
            images.info = saved["info"]
            log(f"reusing the images in {directory}")
            return images
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    started = time.perf_counter()
    corpus = Corpus(seed)
    source = workdir / "source"
    if source.exists():
        shutil.rmtree(source)
    source.mkdir()
    try:
        files = populate(source, size, corpus, seed)
        log(f"wrote {len(files)} files ({sum(length for _, _, length in files) / MiB:.0f} MiB) in "
            f"{time.perf_counter() - started:.1f} s")
        sparse = directory / "mkfs.img"
        with open(sparse, "wb") as out:
            out.truncate(size)
        uuid = "%08x-%04x-%04x-%04x-%012x" % tuple(  # noqa: UP031
            random.Random(f"uuid-{seed}").getrandbits(bits) for bits in (32, 16, 16, 16, 48))
        environment = dict(os.environ, E2FSPROGS_FAKE_TIME=str(FIXED_TIME))
        subprocess.run([mkfs, "-F", "-q", "-t", "ext4", "-b", str(FS_BLOCK), "-L", "snapkeep-bench", "-U", uuid,
                        "-E", f"hash_seed={uuid},root_owner=0:0", "-d", str(source), str(sparse)],
                       check=True, env=environment, capture_output=True)
    finally:
        shutil.rmtree(source, ignore_errors=True)
    materialise(sparse, images.base)
    sparse.unlink()
    log(f"mkfs.ext4 -d and the non-sparse copy done at {time.perf_counter() - started:.1f} s")

    nonzero = [index for index, block in enumerate(read_blocks(images.base)) if block.count(0) != len(block)]
    kinds = file_block_kinds(debugfs, images.base, files, size // FS_BLOCK, directory)
    (directory / "debugfs.commands").unlink()
    candidates = [index for index in range(images.blocks)
                  if 0 not in kinds[index * PAGES_PER_BLOCK:(index + 1) * PAGES_PER_BLOCK]]
    count = max(1, round(images.blocks * CHANGED_FRACTION))
    successor_blocks = choose_changes(candidates, count, random.Random(f"successor-{seed}"), set())
    sibling_blocks = choose_changes(candidates, count, random.Random(f"sibling-{seed}"), set(successor_blocks))
    derive(images.base, images.successor, successor_blocks, kinds, corpus, random.Random(f"successor-data-{seed}"))
    derive(images.base, images.sibling, sibling_blocks, kinds, corpus, random.Random(f"sibling-data-{seed}"))
    images.successor_changed.write_text("".join(f"{index}\n" for index in successor_blocks))
    images.sibling_changed.write_text("".join(f"{index}\n" for index in sibling_blocks))

    data_by_kind = {kind: 0 for kind in KIND_SHARE}
    for _, kind, length in files:
        data_by_kind[kind] += length
    images.info = {
        "size": size, "seed": seed, "files": len(files), "file_bytes_by_kind": data_by_kind,
        "filesystem_used": filesystem_usage(dumpe2fs, images.base),
        "blocks": images.blocks, "blocks_nonzero": len(nonzero), "blocks_inside_file_data": len(candidates),
        "changed_blocks": count,
        "successor_changed_zstd3_bytes": compressed_size(images.successor, successor_blocks),
        "sibling_changed_zstd3_bytes": compressed_size(images.sibling, sibling_blocks),
        "fsck_clean": {name: fsck_clean(e2fsck, path) for name, path in
                       (("base", images.base), ("successor", images.successor), ("sibling", images.sibling))},
        "build_seconds": round(time.perf_counter() - started, 1),
    }
    stamp.write_text(json.dumps({"recipe": recipe, "info": images.info}, indent=2))
    log(f"images built in {images.info['build_seconds']} s: {images.info['filesystem_used']:.1%} of the filesystem "
        f"used, {len(nonzero)} of {images.blocks} blocks non-zero, {count} blocks changed per derived image")
    return images


def differing_blocks(first: Path, second: Path) -> list[int]:
    """The 512 KiB blocks at which two images differ (for checking a changed-block list)."""
    return [index for index, (one, two) in enumerate(zip(read_blocks(first), read_blocks(second), strict=True))
            if one != two]


# --- measuring a child process ---------------------------------------------------------------------------------


@dataclass
class Child:
    wall: float
    user: float
    system: float
    peak_rss_kib: int
    stdout: str
    sync: float
    """Seconds of the sync after the tool exited (part of `wall`)."""


def run_child(argv: Sequence[str], *, env: dict[str, str], cwd: Path, logs: Path, label: str) -> Child:
    """Run one command and take its figures from wait4: CPU and peak RSS of the child (and its own children).
    The wall time runs until what the tool wrote is on disk (a sync after it exits): a tool that leaves its
    writes in the page cache has not finished them."""
    out_path, err_path = logs / f"{label}.out", logs / f"{label}.err"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        started = time.perf_counter()
        process = subprocess.Popen(list(argv), stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env, cwd=cwd)
        _, status, usage = os.wait4(process.pid, 0)
        exited = time.perf_counter()
        os.sync()
        wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        tail = err_path.read_text(errors="replace")[-2000:]
        raise BenchError(f"{' '.join(argv)} exited with {process.returncode}:\n{tail}")
    return Child(wall, usage.ru_utime, usage.ru_stime, usage.ru_maxrss, out_path.read_text(errors="replace"),
                 wall - (exited - started))


def tree_bytes(path: Path) -> int:
    """Bytes of all files under a repository directory (apparent sizes, as `du -sb` counts them)."""
    total = 0
    for folder, _, names in os.walk(path):
        for name in names:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except FileNotFoundError:
                continue
    return total


def disk_floor(packs: Path, write_bytes: int, scratch: Path) -> float:
    """Seconds this disk takes to read every file under `packs` while writing `write_bytes` to a new file, both
    with O_DIRECT (8 MiB reads, 4 MiB writes, as a Snapkeep restore issues them) and nothing decoded."""
    import mmap
    import threading

    files = sorted(path for path in packs.rglob("*") if path.is_file())
    errors: list[BaseException] = []

    def read_all() -> None:
        buffer = memoryview(mmap.mmap(-1, FLOOR_READ))
        for path in files:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
            try:
                offset = 0
                while (count := os.preadv(fd, [buffer], offset)) == len(buffer):
                    offset += count
            finally:
                os.close(fd)

    def write_all() -> None:
        buffer = memoryview(mmap.mmap(-1, FLOOR_WRITE))
        buffer[:] = b"\x5a" * FLOOR_WRITE  # not zeros: nothing below may skip or compress them
        fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_DIRECT, 0o600)
        try:
            for offset in range(0, write_bytes, FLOOR_WRITE):
                os.pwrite(fd, buffer, offset)
            os.fsync(fd)
        finally:
            os.close(fd)

    def guarded(work: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                work()
            except BaseException as exc:  # reported by the caller
                errors.append(exc)
        return run

    drop_caches()
    start = time.perf_counter()
    threads = [threading.Thread(target=guarded(work)) for work in (read_all, write_all)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    scratch.unlink(missing_ok=True)
    if errors:
        raise BenchError(f"the disk-floor measurement failed: {errors[0]}")
    return seconds


def drop_caches() -> bool:
    """Drop the page cache so every phase reads from disk; False when this process may not."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as control:
            control.write("3\n")
    except OSError:
        return False
    return True


# --- the tools ---------------------------------------------------------------------------------------------------


class Tool:
    """How one backup program is driven; `ref` is what identifies a backup (image id, snapshot id, archive)."""

    name = ""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir

    def environment(self, home: Path) -> dict[str, str]:
        return dict(os.environ)

    def version(self) -> str:
        raise NotImplementedError

    def warm_up(self) -> list[str]:
        """A command that loads the program but touches no image or repository: run after the cache is dropped,
        so that a phase starts with cold data but not with a cold executable (a deployed service is resident)."""
        raise NotImplementedError

    def init(self, repo: Path) -> list[str]:
        raise NotImplementedError

    def backup(self, repo: Path, image: Path, phase: str, parent: str | None, changed: Path | None) -> list[str]:
        raise NotImplementedError

    def backup_ref(self, phase: str, stdout: str) -> str:
        raise NotImplementedError

    def answer(self, stdout: str) -> dict[str, Any]:
        return {}

    def restore(self, repo: Path, ref: str, target: Path, image: Path) -> tuple[list[str], Path, Path]:
        """argv, working directory and the path of the restored image file."""
        raise NotImplementedError


def last_json(stdout: str, want: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    for line in reversed(stdout.strip().splitlines()):
        try:
            document = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(document, dict) and want(document):
            return document
    try:
        document = json.loads(stdout)
    except json.JSONDecodeError as error:
        raise BenchError(f"no JSON answer in the output: {stdout[-500:]!r}") from error
    if isinstance(document, dict) and want(document):
        return document
    raise BenchError(f"no JSON answer in the output: {stdout[-500:]!r}")


class Snapkeep(Tool):
    name = "snapkeep"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        beside = Path(sys.executable).parent / "snapkeep"
        found = str(beside) if beside.exists() else shutil.which("snapkeep")
        if found is None:
            raise BenchError("the snapkeep command is missing: run ./dev setup")
        self.program = found
        check = subprocess.run([found, "image", "backup", "--help"], capture_output=True, text=True)
        if check.returncode != 0:
            raise BenchError("this Snapkeep has no `snapkeep image backup` command yet")
        # Installed from a wheel, Snapkeep's modules are compiled at install time; an editable install under
        # PYTHONDONTWRITEBYTECODE would compile them in every phase instead. Compile them as an install would.
        import snapkeep

        subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(snapkeep.__file__).parent)], check=True,
                       capture_output=True)

    def environment(self, home: Path) -> dict[str, str]:
        return dict(os.environ, SNAPKEEP_REPO_PASSWORD=PASSPHRASE, SNAPKEEP_HOME=str(home))

    def version(self) -> str:
        from importlib.metadata import version

        return f"snapkeep {version('snapkeep')}"

    def warm_up(self) -> list[str]:
        # `--help` runs the lean parser only; load what a backup or restore loads (the engine and its native
        # libraries), as `restic version` loads restic's one binary.
        return [sys.executable, "-c", "import snapkeep.cli.images, snapkeep.imagestore.repository, "
                "snapkeep.imagestore.keys, snapkeep.blobstores.local, snapkeep.imagestore.check"]

    def init(self, repo: Path) -> list[str]:
        return [self.program, "repo", "init", "--repo", str(repo)]

    def backup(self, repo: Path, image: Path, phase: str, parent: str | None, changed: Path | None) -> list[str]:
        argv = [self.program, "image", "backup", "--repo", str(repo), str(image), "--json"]
        if parent is not None and changed is not None:
            argv += ["--parent", parent, "--changed-blocks", str(changed)]
        return argv

    def backup_ref(self, phase: str, stdout: str) -> str:
        return str(self.answer(stdout)["ImageId"])

    def answer(self, stdout: str) -> dict[str, Any]:
        return last_json(stdout, lambda document: "ImageId" in document)

    def restore(self, repo: Path, ref: str, target: Path, image: Path) -> tuple[list[str], Path, Path]:
        restored = target / image.name
        return [self.program, "image", "restore", "--repo", str(repo), "--json", ref, str(restored)], target, restored


class SnapkeepWhole(Snapkeep):
    """Snapkeep reading every block (`--read-free-space`), as restic and borg do: the engine without the
    filesystem's free space left out."""

    name = "snapkeep-whole"

    def backup(self, repo: Path, image: Path, phase: str, parent: str | None, changed: Path | None) -> list[str]:
        return [*super().backup(repo, image, phase, parent, changed), "--read-free-space"]


class Restic(Tool):
    name = "restic"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.program = need_program("restic", "restic")

    def environment(self, home: Path) -> dict[str, str]:
        return dict(os.environ, RESTIC_PASSWORD=PASSPHRASE, RESTIC_CACHE_DIR=str(home / "cache"))

    def version(self) -> str:
        return subprocess.run([self.program, "version"], capture_output=True, text=True).stdout.strip()

    def warm_up(self) -> list[str]:
        return [self.program, "version"]

    def init(self, repo: Path) -> list[str]:
        return [self.program, "init", "--repo", str(repo)]

    def backup(self, repo: Path, image: Path, phase: str, parent: str | None, changed: Path | None) -> list[str]:
        return [self.program, "backup", "--repo", str(repo), "--json", "--host", "bench", "--tag", phase, str(image)]

    def backup_ref(self, phase: str, stdout: str) -> str:
        return str(self.answer(stdout)["snapshot_id"])

    def answer(self, stdout: str) -> dict[str, Any]:
        return last_json(stdout, lambda document: document.get("message_type") == "summary")

    def restore(self, repo: Path, ref: str, target: Path, image: Path) -> tuple[list[str], Path, Path]:
        restored = target / image.resolve().relative_to("/")
        return [self.program, "restore", "--repo", str(repo), ref, "--target", str(target)], target, restored


class Borg(Tool):
    name = "borg"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.program = need_program("borg", "borgbackup")
        self._version = subprocess.run([self.program, "--version"], capture_output=True, text=True).stdout.strip()
        if not self._version.startswith("borg 1."):
            raise BenchError(f"{self._version} is not supported here (borg 1.x is; borg 2 changed the commands)")
        modes = subprocess.run([self.program, "init", "--help"], capture_output=True, text=True).stdout
        self.encryption = "repokey-blake2" if "repokey-blake2" in modes else "repokey"

    def environment(self, home: Path) -> dict[str, str]:
        return dict(os.environ, BORG_PASSPHRASE=PASSPHRASE, BORG_BASE_DIR=str(home),
                    BORG_RELOCATED_REPO_ACCESS_IS_OK="yes")

    def version(self) -> str:
        return f"{self._version} (-e {self.encryption}, default chunker and lz4)"

    def warm_up(self) -> list[str]:
        return [self.program, "--version"]

    def init(self, repo: Path) -> list[str]:
        return [self.program, "init", "-e", self.encryption, str(repo)]

    def backup(self, repo: Path, image: Path, phase: str, parent: str | None, changed: Path | None) -> list[str]:
        return [self.program, "create", f"{repo}::{phase}", image.name]  # run in the image directory

    def backup_ref(self, phase: str, stdout: str) -> str:
        return phase

    def restore(self, repo: Path, ref: str, target: Path, image: Path) -> tuple[list[str], Path, Path]:
        return [self.program, "extract", f"{repo}::{ref}"], target, target / image.name


TOOL_CLASSES: dict[str, type[Tool]] = {"snapkeep": Snapkeep, "snapkeep-whole": SnapkeepWhole, "restic": Restic,
                                       "borg": Borg}


# --- the phases -------------------------------------------------------------------------------------------------


@dataclass
class Measurement:
    tool: str
    repetition: int
    phase: str
    wall_seconds: float
    user_seconds: float
    system_seconds: float
    peak_rss_mib: float
    repo_bytes_before: int
    repo_bytes_after: int
    caches_dropped: bool
    restore_identical: bool | None = None
    answer: dict[str, Any] = field(default_factory=dict)  # what the tool reported (Snapkeep's and restic's JSON)
    sync_seconds: float = 0.0  # the part of wall_seconds spent in the sync after the tool exited

    @property
    def growth(self) -> int:
        return self.repo_bytes_after - self.repo_bytes_before


def run_tool(tool: Tool, images: ImageSet, repetition: int, drop: bool, keep: bool,
             log: Callable[[str], None]) -> list[Measurement]:
    """One repetition of the four phases for one tool, in a fresh repository."""
    workdir = tool.workdir
    repo = workdir / "repos" / f"{tool.name}-{repetition}"
    home = workdir / "homes" / f"{tool.name}-{repetition}"
    logs = workdir / "logs"
    for path in (repo, home):
        if path.exists():
            shutil.rmtree(path)
    home.mkdir(parents=True)
    logs.mkdir(exist_ok=True)
    repo.parent.mkdir(exist_ok=True)
    env = tool.environment(home)

    def cold_start() -> bool:
        dropped = drop and drop_caches()
        subprocess.run(tool.warm_up(), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        return dropped

    run_child(tool.init(repo), env=env, cwd=images.directory, logs=logs, label=f"{tool.name}-{repetition}-init")
    measurements: list[Measurement] = []
    refs: dict[str, str] = {}
    plan: list[tuple[str, Path, str | None, Path | None]] = [
        ("full", images.base, None, None),
        ("incremental", images.successor, "full", images.successor_changed),
        ("sibling", images.sibling, "full", images.sibling_changed),
    ]
    try:
        for phase, image, parent, changed in plan:
            dropped = cold_start()
            before = tree_bytes(repo)
            argv = tool.backup(repo, image, phase, refs.get(parent) if parent else None, changed)
            child = run_child(argv, env=env, cwd=images.directory, logs=logs, label=f"{tool.name}-{repetition}-{phase}")
            refs[phase] = tool.backup_ref(phase, child.stdout)
            measurements.append(Measurement(tool.name, repetition, phase, child.wall, child.user, child.system,
                                            child.peak_rss_kib / 1024, before, tree_bytes(repo), dropped,
                                            answer=tool.answer(child.stdout), sync_seconds=child.sync))
            log(f"  {tool.name:<14} {phase:<11} {child.wall:7.2f} s  +{measurements[-1].growth / MiB:.1f} MiB")
        target = workdir / "restore" / f"{tool.name}-{repetition}"
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        argv, cwd, restored = tool.restore(repo, refs["incremental"], target, images.successor)
        dropped = cold_start()
        before = tree_bytes(repo)
        child = run_child(argv, env=env, cwd=cwd, logs=logs, label=f"{tool.name}-{repetition}-restore")
        identical = subprocess.run(["cmp", "-s", str(restored), str(images.successor)]).returncode == 0
        measurements.append(Measurement(tool.name, repetition, "restore", child.wall, child.user, child.system,
                                        child.peak_rss_kib / 1024, before, tree_bytes(repo), dropped, identical,
                                        sync_seconds=child.sync))
        log(f"  {tool.name:<14} restore     {child.wall:7.2f} s  {'identical' if identical else 'DIFFERENT'}")
        if tool.name == "snapkeep" and drop:
            written = restored.stat().st_blocks * 512  # the restore leaves what it did not write as holes
            floor = disk_floor(repo / "data", written, target / "disk-floor.scratch")
            measurements.append(Measurement(DISK_FLOOR, repetition, "restore", floor, 0.0, 0.0, 0.0, 0, 0, True))
            log(f"  {DISK_FLOOR:<14} restore     {floor:7.2f} s  (read {tree_bytes(repo / 'data') / 1e6:.0f} MB of "
                f"packs while writing {written / 1e6:.0f} MB)")
        shutil.rmtree(target)
    finally:
        if not keep:
            shutil.rmtree(repo, ignore_errors=True)
            shutil.rmtree(home, ignore_errors=True)
    return measurements


# --- the report -------------------------------------------------------------------------------------------------


@dataclass
class Median:
    wall: float
    user: float
    system: float
    peak_rss_mib: float
    growth: float
    runs: int
    sync: float = 0.0


def medians(measurements: list[Measurement]) -> dict[tuple[str, str], Median]:
    out: dict[tuple[str, str], Median] = {}
    for key in sorted({(m.tool, m.phase) for m in measurements}):
        rows = [m for m in measurements if (m.tool, m.phase) == key]
        out[key] = Median(statistics.median(m.wall_seconds for m in rows),
                          statistics.median(m.user_seconds for m in rows),
                          statistics.median(m.system_seconds for m in rows),
                          statistics.median(m.peak_rss_mib for m in rows),
                          statistics.median(m.growth for m in rows), len(rows),
                          statistics.median(m.sync_seconds for m in rows))
    return out


@dataclass
class Verdict:
    target: str
    met: bool | None
    detail: str


def verdicts(table: dict[tuple[str, str], Median], images: ImageSet) -> list[Verdict]:
    def get(tool: str, phase: str) -> Median | None:
        return table.get((tool, phase))

    def speed(label: str, phase: str, peer: str, factor: float) -> Verdict:
        ours, theirs = get("snapkeep", phase), get(peer, phase)
        target = f"{label} >= {factor:g}x {peer}'s"
        if ours is None or theirs is None:
            return Verdict(target, None, "not measured")
        ratio = theirs.wall / ours.wall
        detail = f"{ratio:.1f}x ({ours.wall:.2f} s against {theirs.wall:.2f} s)"
        floor = get(DISK_FLOOR, phase)
        if floor is not None:
            allowed = theirs.wall / factor
            left = (f"leaving {allowed - floor.wall:.2f} s for everything else" if floor.wall < allowed
                    else "more than that on its own")
            detail += (f"; {factor:g}x allows {allowed:.2f} s, and the disk alone takes {floor.wall:.2f} s to read "
                       f"the packs and write the image, {left}")
        return Verdict(target, ratio >= factor, detail)

    def growth(phase: str, floor: int) -> Verdict:
        ours = get("snapkeep", phase)
        target = f"{phase} repo growth <= {GROWTH_VS_FLOOR:g}x zstd-3 of its changed blocks ({floor / MiB:.1f} MiB)"
        if ours is None:
            return Verdict(target, None, "not measured")
        ratio = ours.growth / floor
        return Verdict(target, ratio <= GROWTH_VS_FLOOR, f"{ours.growth / MiB:.1f} MiB = {ratio:.2f}x")

    rss = [value.peak_rss_mib for (tool, _), value in table.items() if tool == "snapkeep"]
    memory = Verdict(f"Snapkeep peak RSS <= {PEAK_RSS_MIB:g} MiB in every phase", None, "not measured")
    if rss:
        memory = Verdict(memory.target, max(rss) <= PEAK_RSS_MIB, f"largest median {max(rss):.0f} MiB")
    return [
        speed("full backup throughput", "full", "restic", FULL_VS_RESTIC),
        speed("full backup throughput", "full", "borg", FULL_VS_BORG),
        speed("1% incremental speed", "incremental", "restic", INCREMENTAL_VS_RESTIC),
        growth("incremental", images.info["successor_changed_zstd3_bytes"]),
        growth("sibling", images.info["sibling_changed_zstd3_bytes"]),
        speed("restore throughput", "restore", "restic", RESTORE_VS_RESTIC),
        memory,
    ]


def report(table: dict[tuple[str, str], Median], measurements: list[Measurement], images: ImageSet,
           judged: list[Verdict], tools: Sequence[str], load: Sequence[float] = ()) -> str:
    info = images.info
    lines = [
        f"image: {images.size / GiB:.2f} GiB ext4, {info['filesystem_used']:.1%} of the filesystem used, "
        f"{info['blocks_nonzero']} of {info['blocks']} blocks of 512 KiB non-zero; successor and sibling each "
        f"change {info['changed_blocks']} blocks (zstd-3 of them: {info['successor_changed_zstd3_bytes'] / MiB:.1f} / "
        f"{info['sibling_changed_zstd3_bytes'] / MiB:.1f} MiB)",
    ]
    dropped = [m.caches_dropped for m in measurements]
    runs = max((value.runs for value in table.values()), default=0)
    if dropped and all(dropped):
        cache = "page cache dropped before every phase, then the tool's program loaded (cold data, warm program)"
    elif not any(dropped):
        cache = "caches were warm (--warm, or /proc/sys/vm/drop_caches is not writable)"
    else:
        cache = "page cache dropped before some phases only"
    lines.append(f"{cache}; medians of {runs} run{'s' if runs != 1 else ''}; MB/s = image bytes (10^6) per wall "
                 "second; wall includes the sync after the tool exits")
    if load:
        lines.append(f"load average (1 min) before and after the runs: {' / '.join(f'{value:.1f}' for value in load)} "
                     f"on {os.cpu_count()} CPUs (the tool adds 1-2; more: other processes shared them)")
    lines.append("")
    lines.append(f"{'phase':<12} {'tool':<14} {'wall s':>7} {'sync s':>6} {'MB/s':>6} {'user s':>7} {'sys s':>6} "
                 f"{'peak RSS MiB':>12} {'repo Δ MiB':>10}")
    for phase in PHASES:
        for number, tool in enumerate(tools):
            value = table.get((tool, phase))
            if value is None:
                continue
            lines.append(f"{phase if number == 0 else '':<12} {tool:<14} {value.wall:>7.2f} {value.sync:>6.2f} "
                         f"{images.size / value.wall / 1e6:>6.0f} {value.user:>7.2f} {value.system:>6.2f} "
                         f"{value.peak_rss_mib:>12.0f} {value.growth / MiB:>10.1f}")
    restores = [m for m in measurements if m.phase == "restore" and m.tool != DISK_FLOOR]
    bad = [f"{m.tool} #{m.repetition}" for m in restores if not m.restore_identical]
    lines.append(f"restores identical to the source: {len(restores) - len(bad)} of {len(restores)}"
                 + (f" (DIFFERENT: {', '.join(bad)})" if bad else ""))
    lines.append("")
    for verdict in judged:
        state = {True: "met", False: "NOT met", None: "not measured"}[verdict.met]
        lines.append(f"target {verdict.target}: {state}" + (f": {verdict.detail}" if verdict.met is not None else ""))
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu": model, "kernel": platform.release(), "python": platform.python_version()}


def parse_size(text: str) -> int:
    units = {"": 1, "k": 1024, "kib": 1024, "m": MiB, "mib": MiB, "g": GiB, "gib": GiB}
    stripped = text.strip().lower()
    number = stripped.rstrip("kmgib")
    unit = stripped[len(number):]
    if not number or unit not in units:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size such as 2GiB, 64MiB or 1073741824")
    return int(float(number) * units[unit])


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--size", type=parse_size, default=2 * GiB, help="image size (default 2GiB)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions, fresh repositories each (default 3)")
    parser.add_argument("--workdir", type=Path, help="work directory (default: a new one under /var/tmp)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (images, repositories, logs)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write every figure to FILE")
    parser.add_argument("--seed", type=int, default=1, help="seed for the image contents (default 1)")
    parser.add_argument("--tools", default=",".join(TOOLS), help="comma-separated subset of " + ",".join(TOOLS))
    parser.add_argument("--warm", action="store_true", help="do not drop the page cache between phases")
    parser.add_argument("--build-only", action="store_true", help="build the images, print what they hold, stop")
    args = parser.parse_args(argv)
    tools = [name.strip() for name in args.tools.split(",") if name.strip()]
    unknown = sorted(set(tools) - set(TOOLS))
    if unknown or not tools:
        parser.error(f"--tools: unknown {unknown}; choose from {', '.join(TOOLS)}")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    created = args.workdir is None
    workdir: Path = (Path(tempfile.mkdtemp(prefix="snapkeep-bench-image-", dir="/var/tmp")) if created
                     else args.workdir.resolve())
    workdir.mkdir(parents=True, exist_ok=True)
    log(f"work directory: {workdir}")
    try:
        drivers = [] if args.build_only else [TOOL_CLASSES[name](workdir) for name in tools]
        images = build_images(workdir, args.size, args.seed, log)
        if args.build_only:
            print(json.dumps(images.info, indent=2))
            return 0
        measurements: list[Measurement] = []
        load = [os.getloadavg()[0]]
        for repetition in range(1, args.repeat + 1):
            log(f"repetition {repetition} of {args.repeat}")
            order = drivers if repetition % 2 else list(reversed(drivers))  # alternate, so no tool always goes first
            for driver in order:
                measurements += run_tool(driver, images, repetition, not args.warm, args.keep, log)
        load.append(os.getloadavg()[0])
        table = medians(measurements)
        judged = verdicts(table, images)
        shown = [*tools, *([DISK_FLOOR] if any(m.tool == DISK_FLOOR for m in measurements) else [])]
        print(report(table, measurements, images, judged, shown, load))
        if args.json:
            document = {
                "machine": machine(), "versions": {driver.name: driver.version() for driver in drivers},
                "image": images.info, "repeat": args.repeat, "load_average_before_after": load,
                "runs": [dict(asdict(m), repo_growth=m.growth) for m in measurements],
                "medians": [dict(tool=tool, phase=phase, image_mb_per_s=images.size / value.wall / 1e6, **asdict(value))
                            for (tool, phase), value in table.items()],
                "verdicts": [asdict(verdict) for verdict in judged],
            }
            args.json.write_text(json.dumps(document, indent=2) + "\n")
        return 0 if all(m.restore_identical for m in measurements
                        if m.phase == "restore" and m.tool != DISK_FLOOR) else 1
    except BenchError as error:
        log(f"error: {error}")
        return 2
    finally:
        if args.keep:
            log(f"kept {workdir}")
        elif created:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            for name in ("images", "repos", "homes", "restore", "logs", "source"):
                shutil.rmtree(workdir / name, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
