"""`snapkeep repo ...` / `snapkeep image ...` through the installed console script, on real image files and real
repositories in tmp_path: init, full and incremental backups, list, byte-for-byte restores, forget, gc, check
finding a flipped byte, the exit codes (2 bad input, 3 not found, 4 locked, 6 wrong passphrase, 9 damaged) and
bad input that changes nothing.

Repositories other than the one `repo init` makes are created in-process with a cheap KDF: the KDF parameters
live in the key file, so the CLI opens them quickly, and the test stays fast.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from snapkeep.blobstores.local import LocalBlobStore
from snapkeep.imagestore.format import BLOCK_SIZE
from snapkeep.imagestore.keys import KdfParams, PassphraseKey
from snapkeep.imagestore.repository import Repository

SNAPKEEP = str(Path(sys.executable).parent / "snapkeep")
PASSPHRASE = "correct horse battery staple"
FAST_KDF = KdfParams("argon2id", iterations=1, memory_kib=64, lanes=1)
TAIL = 100 * 1024  # the images end in a short block


def run(*args: str | Path, passphrase: str | None = PASSPHRASE, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SNAPKEEP_REPO")}
    if passphrase is not None:
        environ["SNAPKEEP_REPO_PASSWORD"] = passphrase
    environ.update(env)
    return subprocess.run([SNAPKEEP, *map(str, args)], capture_output=True, text=True, env=environ,
                          stdin=subprocess.DEVNULL, timeout=120)


def ok_json(*args: str | Path, **env: str) -> Any:
    done = run(*args, "--json", **env)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no progress bar when stderr is not a terminal
    return json.loads(done.stdout)


def one_line_error(done: subprocess.CompletedProcess[str], code: int, *words: str) -> str:
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error ("), done.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def write_image(path: Path, kinds: str, seed: int) -> bytes:
    """One block per letter: r random, z zeros written, h hole (never written); then a short random tail."""
    rng = random.Random(seed)
    with path.open("wb") as out:
        for kind in kinds:
            if kind == "r":
                out.write(rng.randbytes(BLOCK_SIZE))
            elif kind == "z":
                out.write(bytes(BLOCK_SIZE))
            else:
                out.seek(BLOCK_SIZE, os.SEEK_CUR)
        out.write(rng.randbytes(TAIL))
    return path.read_bytes()


def rewrite_blocks(path: Path, blocks: list[int], seed: int) -> bytes:
    rng = random.Random(seed)
    with path.open("r+b") as out:
        for block in blocks:
            out.seek(block * BLOCK_SIZE)
            out.write(rng.randbytes(BLOCK_SIZE))
    return path.read_bytes()


def tree(root: Path) -> dict[str, int]:
    """Every object of a repository (name -> size), to show that a refused command wrote nothing."""
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*")
            if p.is_file() and ".tmp" not in p.parts}


def size_of(root: Path) -> int:
    return sum(tree(root).values())


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository with small packs (1 MiB), so gc has whole packs to free."""
    path = tmp_path / "repo"
    Repository.init(LocalBlobStore(path), PassphraseKey(PASSPHRASE, FAST_KDF), pack_size=1024 * 1024)
    return path


@pytest.fixture
def base(tmp_path: Path, repo: Path) -> Iterator[tuple[Path, str]]:
    image = tmp_path / "base.img"
    write_image(image, "rrzhrrhr", seed=1)
    yield image, ok_json("image", "backup", "--repo", repo, image)["ImageId"]


def test_repo_init_refuses_an_existing_repository(tmp_path: Path) -> None:
    where = tmp_path / "made"
    out = ok_json("repo", "init", "--repo", where)
    assert out["KeyKinds"] == ["passphrase"] and len(out["RepositoryId"]) == 64
    assert (where / "config").is_file() and len(list((where / "keys").iterdir())) == 1
    one_line_error(run("repo", "init", "--repo", where), 4, "already holds a repository")
    # Without a passphrase and without a terminal to ask on, init refuses and creates nothing.
    one_line_error(run("repo", "init", "--repo", tmp_path / "other", passphrase=None), 2, "SNAPKEEP_REPO_PASSWORD")
    assert not (tmp_path / "other").exists()


def test_backup_incremental_list_restore_forget_gc(tmp_path: Path, repo: Path) -> None:
    image = tmp_path / "disk.img"
    first = write_image(image, "rrzhrrrhr", seed=1)
    blocks = len(first) // BLOCK_SIZE + 1
    full = ok_json("image", "backup", "--repo", repo, image)
    assert full["Parent"] is None and full["Size"] == len(first)
    assert full["BlocksNew"] == 7 and full["BlocksZero"] >= 1 and full["BytesStored"] > 6 * BLOCK_SIZE

    # The next day: two blocks changed, one of them a hole before. Only those two are read.
    second = rewrite_blocks(image, [1, 3], seed=2)
    (tmp_path / "changed").write_text("# changed since the full backup\n3\n1\n\n")
    incremental = ok_json("image", "backup", "--repo", repo, image, "--parent", full["ImageId"][:8],
                          "--changed-blocks", tmp_path / "changed")
    assert incremental["Parent"] == full["ImageId"]
    assert (incremental["BlocksRead"], incremental["BlocksNew"]) == (2, 2)
    assert incremental["BytesRead"] == 2 * BLOCK_SIZE

    # Another disk, unrelated: forgetting it leaves whole packs unreferenced.
    other = tmp_path / "other.img"
    write_image(other, "rrrr", seed=3)
    unrelated = ok_json("image", "backup", "--repo", repo, other, "--tag", "team=db")

    listed = {i["ImageId"]: i for i in ok_json("image", "list", SNAPKEEP_REPO=str(repo))}  # repo from the env
    assert set(listed) == {full["ImageId"], incremental["ImageId"], unrelated["ImageId"]}
    assert listed[incremental["ImageId"]]["Parent"] == full["ImageId"]
    assert listed[unrelated["ImageId"]]["Tags"] == {"team": "db"}
    assert listed[full["ImageId"]]["Disks"] == [{"Name": "disk.img", "Size": len(first), "Blocks": 7}]

    # Restores are byte for byte, into a new file and over an existing one.
    target = tmp_path / "restored.img"
    restored = ok_json("image", "restore", "--repo", repo, full["ImageId"], target)
    assert target.read_bytes() == first and restored["BlocksWritten"] == 7
    assert restored["ZeroBlocks"] == blocks - 7
    ok_json("image", "restore", "--repo", repo, incremental["ImageId"], target)
    assert target.read_bytes() == second

    ok_json("image", "forget", "--repo", repo, unrelated["ImageId"])
    assert {i["ImageId"] for i in ok_json("image", "list", "--repo", repo)} == {full["ImageId"],
                                                                                incremental["ImageId"]}
    one_line_error(run("image", "restore", "--repo", repo, unrelated["ImageId"], tmp_path / "gone.img"), 3,
                   unrelated["ImageId"])
    assert not (tmp_path / "gone.img").exists()

    # gc: the default safety margin (1 h) keeps the fresh packs; the dry run plans without deleting.
    before = tree(repo)
    kept = ok_json("repo", "gc", "--repo", repo)
    assert kept["Delete"] == [] and kept["KeepRecent"] and tree(repo) == before
    plan = ok_json("repo", "gc", "--repo", repo, "--dry-run", "--safety-margin", "0s")
    assert plan["DryRun"] and plan["Delete"] and plan["BytesToFree"] >= 4 * BLOCK_SIZE
    assert tree(repo) == before
    done = ok_json("repo", "gc", "--repo", repo, "--safety-margin", "0")
    assert sorted(done["Deleted"]) == sorted(p["Name"] for p in plan["Delete"])
    assert size_of(repo) <= sum(before.values()) - plan["BytesToFree"] + 64 * 1024  # (+ the rewritten index)
    assert not any((repo / name).exists() for name in done["Deleted"])

    # What is left is intact and still restores.
    assert ok_json("repo", "check", "--repo", repo, "--read-data")["Ok"]
    ok_json("image", "restore", "--repo", repo, full["ImageId"], target)
    assert target.read_bytes() == first
    stats = ok_json("repo", "stats", "--repo", repo)
    assert stats["Images"] == 2 and stats["LogicalBytes"] == 2 * len(first)


def test_check_names_the_image_a_flipped_byte_damages(tmp_path: Path, repo: Path,
                                                      base: tuple[Path, str]) -> None:
    _, damaged_id = base
    packs_of_base = {p for p in (repo / "data").rglob("*") if p.is_file()}
    other = tmp_path / "other.img"
    write_image(other, "rr", seed=7)
    intact_id = ok_json("image", "backup", "--repo", repo, other)["ImageId"]
    assert ok_json("repo", "check", "--repo", repo)["Ok"]
    assert ok_json("repo", "check", "--repo", repo, "--read-data=100")["Ok"]

    pack = sorted(packs_of_base)[0]
    data = bytearray(pack.read_bytes())
    data[len(data) // 3] ^= 0x01
    pack.write_bytes(bytes(data))

    done = run("repo", "check", "--repo", repo, "--read-data", "--json")
    line = one_line_error(done, 9, damaged_id)
    assert intact_id not in line
    report = json.loads(done.stdout)
    assert not report["Ok"] and report["DamagedImages"] == [damaged_id]
    assert any(pack.name in p["Object"] and p["Images"] == [damaged_id] for p in report["Problems"])
    human = run("repo", "check", "--repo", repo, "--read-data", "100%")
    one_line_error(human, 9, "image backups affected")
    assert f"damaged: data/{pack.parent.name}/{pack.name}" in human.stdout and damaged_id in human.stdout
    # Restoring the damaged image fails with the same exit code and leaves no half-written file.
    one_line_error(run("image", "restore", "--repo", repo, damaged_id, tmp_path / "r.img"), 9, pack.name)
    assert not (tmp_path / "r.img").exists()


def test_wrong_passphrase_and_missing_repository(tmp_path: Path, repo: Path) -> None:
    one_line_error(run("image", "list", "--repo", repo, passphrase="wrong horse"), 6, "AccessDeniedException")
    one_line_error(run("image", "list", "--repo", tmp_path / "nothing"), 3, "no repository")
    one_line_error(run("image", "list"), 2, "SNAPKEEP_REPO")
    one_line_error(run("repo", "check", "--repo", repo, "--read-data", "150"), 2, "--read-data")


def test_locked_repository_exits_4_until_unlocked(tmp_path: Path, repo: Path, base: tuple[Path, str]) -> None:
    image, _ = base
    store = LocalBlobStore(repo)
    holder = Repository.open(store, PassphraseKey(PASSPHRASE)).locks.acquire(exclusive=True)
    try:
        one_line_error(run("image", "backup", "--repo", repo, image), 4, "locked")
        one_line_error(run("repo", "gc", "--repo", repo), 4, "locked")
        assert ok_json("repo", "unlock", "--repo", repo)["Removed"] == []  # a live lock stays without --force
        one_line_error(run("image", "backup", "--repo", repo, image), 4, "locked")
        removed = ok_json("repo", "unlock", "--repo", repo, "--force")["Removed"]
        assert [r["Name"] for r in removed] == [holder.name] and removed[0]["Exclusive"]
        ok_json("image", "backup", "--repo", repo, image)
    finally:
        holder.release()

    # A lock whose holder stopped refreshing it an hour ago is stale: unlock removes it without --force.
    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    stale = Repository.open(store, PassphraseKey(PASSPHRASE), clock=lambda: hour_ago).locks.acquire(exclusive=True)
    try:
        removed = ok_json("repo", "unlock", "--repo", repo)["Removed"]
        assert [r["Name"] for r in removed] == [stale.name]
        ok_json("image", "backup", "--repo", repo, image)
    finally:
        stale.release()


@pytest.mark.parametrize(("case", "code", "words"), [
    ("missing file", 2, ["does not exist", "nope.img"]),
    ("not a number", 2, ["line 2", "'seven'", "not a block index"]),
    ("out of range", 2, ["block 9 is beyond", "9 blocks"]),
    ("negative", 2, ["'-1'"]),
    ("changed blocks without parent", 2, ["needs --parent"]),
    ("missing changed-block file", 2, ["--changed-blocks", "does not exist"]),
    ("unknown parent", 3, ["no image backup", "0123abcd"]),
    ("not a repository", 3, ["no repository"]),
])
def test_bad_input_is_one_line_and_changes_nothing(tmp_path: Path, repo: Path, base: tuple[Path, str], case: str,
                                                   code: int, words: list[str]) -> None:
    image, parent = base
    changed = tmp_path / "changed"
    changed.write_text({"not a number": "1\nseven\n", "out of range": "1\n9\n", "negative": "-1\n"}.get(case, "1\n"))
    args: list[str | Path] = ["image", "backup", "--repo", repo, image, "--parent", parent,
                              "--changed-blocks", changed]
    if case == "missing file":
        args[4] = tmp_path / "nope.img"
    elif case == "changed blocks without parent":
        args[5:7] = []
    elif case == "missing changed-block file":
        args[-1] = tmp_path / "no-such-list"
    elif case == "unknown parent":
        args[6] = "0123abcd"
    elif case == "not a repository":
        args[3] = tmp_path / "elsewhere"
    before = tree(repo)
    one_line_error(run(*args), code, *words)
    assert tree(repo) == before
    assert not (tmp_path / "elsewhere").exists()


def test_progress_bar_only_on_a_terminal_and_never_with_json(tmp_path: Path, repo: Path) -> None:
    import pty

    image = tmp_path / "disk.img"
    write_image(image, "rrrr", seed=5)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SNAPKEEP_REPO")}
    environ.update(SNAPKEEP_REPO_PASSWORD=PASSPHRASE, TERM="xterm", COLUMNS="100")
    drawn = {}
    for flag in ("", "--json"):
        leader, follower = pty.openpty()
        try:
            done = subprocess.run([SNAPKEEP, "image", "backup", "--repo", str(repo), str(image),
                                   *([flag] if flag else [])], stdout=subprocess.PIPE, stderr=follower,
                                  stdin=subprocess.DEVNULL, env=environ, timeout=120)
            os.close(follower)
            chunks = []
            while True:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # EIO: the terminal's other side is closed and drained
                    break
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            os.close(leader)
        assert done.returncode == 0
        drawn[flag] = b"".join(chunks).decode(errors="replace")
    assert "Backing up" in drawn[""]
    assert drawn["--json"] == ""


def test_s3_repository_with_object_lock_retains_what_a_backup_uses(tmp_path: Path, lab_clients: Any) -> None:
    """On the lab's S3 (a real HTTP S3 API): a GOVERNANCE Object Lock repository refuses a backup without
    --keep-days, retains every pack a backup uses until its retention, and restores byte for byte."""
    s3 = lab_clients("s3")
    s3.create_bucket(Bucket="cli-locked", ObjectLockEnabledForBucket=True)
    aws = {"AWS_ENDPOINT_URL": lab_clients.endpoint, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    url = "s3://cli-locked/images"
    assert ok_json("repo", "init", "--repo", url, "--object-lock-mode", "governance", **aws)["RepositoryId"]
    image = tmp_path / "disk.img"
    data = write_image(image, "rrzhr", seed=11)
    one_line_error(run("image", "backup", "--repo", url, image, **aws), 2, "delete")
    made = ok_json("image", "backup", "--repo", url, image, "--keep-days", "30", **aws)
    packs = s3.list_objects_v2(Bucket="cli-locked", Prefix="images/data/")["Contents"]
    assert packs
    floor = datetime.now(UTC) + timedelta(days=29)
    for obj in packs:
        head = s3.head_object(Bucket="cli-locked", Key=obj["Key"])
        assert head["ObjectLockMode"] == "GOVERNANCE" and head["ObjectLockRetainUntilDate"] >= floor
    target = tmp_path / "restored.img"
    ok_json("image", "restore", "--repo", url, made["ImageId"], target, **aws)
    assert target.read_bytes() == data
    one_line_error(run("image", "backup", "--repo", url, image, "--keep-days", "0", **aws), 2, "--keep-days")
