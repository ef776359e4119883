"""The KDF started before a `repo`/`image` command parses (cli/early_unlock.py), on real repositories in tmp_path:
which arguments start it, that only the same repository and passphrase claim it, that a wrong passphrase still
fails as the ordinary path fails, and that the CLI's commands really use it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from snapkeep.blobstores.local import LocalBlobStore
from snapkeep.cli import early_unlock
from snapkeep.cli.early_unlock import claim, repository_argument, start
from snapkeep.cli.repos import main
from snapkeep.imagestore.errors import WrongPassphrase
from snapkeep.imagestore.keys import KdfParams, PassphraseKey
from snapkeep.imagestore.repository import Repository

PASSPHRASE = "early bird"
FAST_KDF = KdfParams("argon2id", iterations=1, memory_kib=64, lanes=1)


@pytest.fixture(autouse=True)
def nothing_started() -> Iterator[None]:
    early_unlock._started = None
    yield
    early_unlock._started = None


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    Repository.init(LocalBlobStore(path), PassphraseKey(PASSPHRASE, FAST_KDF))
    return path


@pytest.mark.parametrize(("argv", "expected"), [
    (["image", "list", "--repo", "/r"], "/r"),
    (["image", "list", "--repo=/r"], "/r"),
    (["image", "list", "--repo", "/a", "--repo", "/b"], "/b"),
    (["image", "list", "--", "--repo", "/r"], None),
    (["image", "list", "--repo"], None),
    (["image", "list"], None),
])
def test_repository_argument(argv: list[str], expected: str | None) -> None:
    assert repository_argument(argv) == expected


def test_claimed_once_for_the_same_repository_and_passphrase(repo: Path) -> None:
    assert start(["image", "list", "--repo", str(repo)], {"SNAPKEEP_REPO_PASSWORD": PASSPHRASE})
    assert claim(repo, "another passphrase") is None
    assert claim(repo.parent, PASSPHRASE) is None
    unlocking = claim(repo, PASSPHRASE)
    assert unlocking is not None
    opened = Repository.open(LocalBlobStore(repo), unlocking.master())
    assert opened.images() == []
    assert claim(repo, PASSPHRASE) is None  # once


def test_the_repository_may_come_from_the_environment(repo: Path) -> None:
    assert start(["image", "list"], {"SNAPKEEP_REPO_PASSWORD": PASSPHRASE, "SNAPKEEP_REPO": str(repo)})
    assert claim(repo, PASSPHRASE) is not None


@pytest.mark.parametrize("case", ["no passphrase", "no repository", "s3", "not a repository", "bad url"])
def test_nothing_starts_without_a_local_repository_and_a_passphrase(repo: Path, tmp_path: Path, case: str) -> None:
    argv, environ = ["image", "list", "--repo", str(repo)], {"SNAPKEEP_REPO_PASSWORD": PASSPHRASE}
    if case == "no passphrase":
        environ = {}
    elif case == "no repository":
        argv = ["image", "list"]
    elif case == "s3":
        argv = ["image", "list", "--repo", "s3://bucket/prefix"]
    elif case == "not a repository":
        argv = ["image", "list", "--repo", str(tmp_path / "elsewhere")]
    else:
        argv = ["image", "list", "--repo", "ftp://host/x"]
    assert not start(argv, environ)
    assert early_unlock._started is None
    assert not (tmp_path / "elsewhere").exists()  # only reads


def test_a_wrong_passphrase_fails_as_the_ordinary_path_does(repo: Path) -> None:
    assert start(["image", "list", "--repo", str(repo)], {"SNAPKEEP_REPO_PASSWORD": "wrong"})
    unlocking = claim(repo, "wrong")
    assert unlocking is not None
    with pytest.raises(WrongPassphrase, match="no passphrase key file opens"):
        unlocking.master()


def test_the_cli_claims_it(repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SNAPKEEP_REPO_PASSWORD", PASSPHRASE)
    argv = ["image", "list", "--repo", str(repo), "--json"]
    assert start(argv, {"SNAPKEEP_REPO_PASSWORD": PASSPHRASE})
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert early_unlock._started is None  # claimed by the command, not left for nobody


def test_the_cli_with_a_wrong_passphrase_exits_6(repo: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SNAPKEEP_REPO_PASSWORD", "wrong")
    argv = ["image", "list", "--repo", str(repo)]
    assert start(argv, {"SNAPKEEP_REPO_PASSWORD": "wrong"})
    assert main(argv) == 6
    assert "no passphrase key file opens" in capsys.readouterr().err
    assert early_unlock._started is None
