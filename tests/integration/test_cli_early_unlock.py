"""The KDF started before a `repo`/`image` command loads (cli/early_unlock.py), on real repositories in tmp_path:
which arguments start it, that only the same repository and passphrase claim it and only a key file with its salt
and parameters uses it, that it gives up quietly on what it cannot read, that a wrong passphrase still fails as
the ordinary path fails, that the CLI's commands really use it, and that starting it loads almost nothing."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from snapkeep.blobstores.local import LocalBlobStore
from snapkeep.cli import early_unlock
from snapkeep.cli.early_unlock import KEYS_DIRECTORY, claim, local_directory, repository_argument, start
from snapkeep.cli.repos import main
from snapkeep.domain.errors import InvalidParameterValue
from snapkeep.imagestore.errors import WrongPassphrase
from snapkeep.imagestore.format import KEYS_PREFIX
from snapkeep.imagestore.keys import KdfParams, PassphraseKey, unlock
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


@pytest.fixture
def derivations(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The salts the ordinary unlock derives a key for (the early one is not counted)."""
    seen: list[bytes] = []
    real = KdfParams.derive

    def counting(self: KdfParams, passphrase: str, salt: bytes) -> bytes:
        seen.append(salt)
        return real(self, passphrase, salt)

    monkeypatch.setattr(KdfParams, "derive", counting)
    return seen


def _key_file(repo: Path) -> Path:
    (only,) = (repo / KEYS_DIRECTORY).iterdir()
    return only


def test_the_keys_directory_is_the_formats() -> None:
    assert KEYS_DIRECTORY + "/" == KEYS_PREFIX


@pytest.mark.parametrize(("url", "expected"), [
    ("/r", "/r"), ("/r/", "/r"), ("/a/../r", "/r"), ("file:///r", "/r"), ("  /r ", "/r"),
    ("s3://bucket/prefix", None), ("ftp://host/x", None), ("", None),
])
def test_local_directory(url: str, expected: str | None) -> None:
    assert local_directory(url) == expected


def test_local_directory_is_absolute_and_expands_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert local_directory("~/r") == str(tmp_path / "r")
    assert local_directory("r") == str(tmp_path / "r")


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


def test_claimed_once_for_the_same_repository_and_passphrase(repo: Path, derivations: list[bytes]) -> None:
    assert start(["image", "list", "--repo", str(repo)], {"SNAPKEEP_REPO_PASSWORD": PASSPHRASE})
    assert claim(repo, "another passphrase") is None
    assert claim(repo.parent, PASSPHRASE) is None
    speculation = claim(repo / "keys" / "..", PASSPHRASE)  # the same directory, spelled otherwise
    assert speculation is not None
    master = unlock(LocalBlobStore(repo), PassphraseKey(PASSPHRASE, precomputed=speculation))
    assert Repository.open(LocalBlobStore(repo), master).images() == []
    assert derivations == []  # opened with the early key: nothing derived again
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


def _rewrite_kdf(repo: Path, **changes: object) -> None:
    path = _key_file(repo)
    body = json.loads(path.read_bytes())
    body["kdf"].update(changes)
    path.write_text(json.dumps(body))


@pytest.mark.parametrize("case", ["hostile memory", "not a number", "scrypt", "bad salt", "not json", "kms first"])
def test_a_key_file_it_cannot_use_leaves_the_ordinary_unlock(repo: Path, derivations: list[bytes],
                                                             case: str) -> None:
    """The speculation derives nothing for a key file it cannot use (never 4 TiB of memory for a hostile one),
    and the ordinary unlock then decides: it opens what is sound and refuses what is not."""
    opens = True
    if case == "hostile memory":
        _rewrite_kdf(repo, memory_kib=2**32)
        opens = False
    elif case == "not a number":
        _rewrite_kdf(repo, iterations="1")
    elif case == "scrypt":
        _rewrite_kdf(repo, algorithm="scrypt", n=2**10, r=8, p=1)
        opens = False  # the secret was wrapped under an Argon2id key
    elif case == "bad salt":
        _rewrite_kdf(repo, salt="not base64!")
        opens = False
    elif case == "not json":
        _key_file(repo).write_bytes(b"\x00garbage")
        opens = False
    else:  # a KMS key file sorts first: the passphrase key file after it is the one
        (repo / KEYS_DIRECTORY / "0000").write_text(json.dumps({"kind": "kms", "kms_key_id": "k"}))
    assert start(["image", "list", "--repo", str(repo)], {"SNAPKEEP_REPO_PASSWORD": PASSPHRASE})
    speculation = claim(repo, PASSPHRASE)
    assert speculation is not None
    if opens and case != "kms first":
        # the file is sound for the ordinary reader, not for the speculation: derived again
        master = unlock(LocalBlobStore(repo), PassphraseKey(PASSPHRASE, precomputed=speculation))
        assert master is not None and len(derivations) == 1
    elif opens:
        unlock(LocalBlobStore(repo), PassphraseKey(PASSPHRASE, precomputed=speculation))
        assert derivations == []  # the speculation read past the KMS key file
    else:
        refusal = InvalidParameterValue if case == "hostile memory" else WrongPassphrase
        with pytest.raises(refusal):
            unlock(LocalBlobStore(repo), PassphraseKey(PASSPHRASE, precomputed=speculation))
    assert speculation._key is None or case == "kms first"


def test_a_key_file_changed_after_the_speculation_read_it_is_derived_again(repo: Path,
                                                                           derivations: list[bytes]) -> None:
    assert start(["image", "list", "--repo", str(repo)], {"SNAPKEEP_REPO_PASSWORD": PASSPHRASE})
    speculation = claim(repo, PASSPHRASE)
    assert speculation is not None
    speculation._thread.join()
    store = LocalBlobStore(repo)
    master = unlock(store, PassphraseKey(PASSPHRASE))
    (old,) = store.list(KEYS_PREFIX)
    Repository.open(store, master).add_key(PassphraseKey(PASSPHRASE, FAST_KDF))  # a new salt ...
    store.delete(old.name)  # ... in the only key file left
    assert unlock(store, PassphraseKey(PASSPHRASE, precomputed=speculation)).secret == master.secret
    (new,) = store.list(KEYS_PREFIX)
    new_salt = base64.b64decode(json.loads(store.get(new.name))["kdf"]["salt"])
    assert derivations[-1] == new_salt


def test_a_wrong_passphrase_fails_as_the_ordinary_path_does(repo: Path) -> None:
    assert start(["image", "list", "--repo", str(repo)], {"SNAPKEEP_REPO_PASSWORD": "wrong"})
    speculation = claim(repo, "wrong")
    assert speculation is not None
    with pytest.raises(WrongPassphrase, match="no passphrase key file opens"):
        unlock(LocalBlobStore(repo), PassphraseKey("wrong", precomputed=speculation))


def test_the_cli_claims_it(repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                           derivations: list[bytes]) -> None:
    monkeypatch.setenv("SNAPKEEP_REPO_PASSWORD", PASSPHRASE)
    argv = ["image", "list", "--repo", str(repo), "--json"]
    assert start(argv, {"SNAPKEEP_REPO_PASSWORD": PASSPHRASE})
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert early_unlock._started is None  # claimed by the command, not left for nobody
    assert derivations == []  # and its key used


def test_the_cli_with_a_wrong_passphrase_exits_6(repo: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SNAPKEEP_REPO_PASSWORD", "wrong")
    argv = ["image", "list", "--repo", str(repo)]
    assert start(argv, {"SNAPKEEP_REPO_PASSWORD": "wrong"})
    assert main(argv) == 6
    assert "no passphrase key file opens" in capsys.readouterr().err
    assert early_unlock._started is None


def test_starting_it_loads_almost_nothing(repo: Path) -> None:
    """What makes it early: before the KDF runs, the process has loaded the interpreter, this module, the names of
    two environment variables and, on the KDF's thread, json and the libargon2 bindings; not cryptography,
    zstandard, the settings or the repository code, which load on the main thread meanwhile."""
    probe = f"""
import os, sys
from snapkeep.cli import early_unlock
assert early_unlock.start(["image", "list", "--repo", {str(repo)!r}], {{"SNAPKEEP_REPO_PASSWORD": "x"}})
early_unlock._started._thread.join()
heavy = sorted(name for name in sys.modules if name.split(".")[0] in ("cryptography", "zstandard", "blake3", "argon2")
               or name in ("snapkeep.config", "snapkeep.imagestore.keys", "snapkeep.imagestore.format", "dataclasses"))
print(heavy, "_argon2_cffi_bindings" in sys.modules)
"""
    answer = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                            env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
    assert answer.stdout.split() == ["[]", "True"]
