"""The passphrase KDF of a `repo`/`image` command, started before the command has even loaded.

Unwrapping the repository key (Argon2id over 64 MiB, about 0.13 s on both of 2 cores) is the longest step of a
small incremental backup, and loading the program (cryptography, zstandard, the repository code) takes about
0.1 s on one core before the command knows what to open. So `snapkeep.cli.__main__` hands the raw arguments here
first, with nothing loaded but the interpreter. For a local repository named by `--repo` (or SNAPKEEP_REPO), with
the passphrase in SNAPKEEP_REPO_PASSWORD, a thread reads the first passphrase key file (by name, as
`keys.unlock` tries them) and derives its key while the main thread loads the rest: the two cores work at once.

It is a speculation, never trusted blindly: the ordinary unlock reads and checks the key files itself, and takes
the derived key only for the same repository and passphrase (`claim`) and for a key file with exactly the salt
and parameters it was derived with, which are all the KDF's output depends on. Anything else (a prompt, a KMS
key, an S3 repository, a key file this thread cannot read, arguments that do not parse) takes the ordinary path,
and an unlock nobody claims is dropped with the process. It only reads: nothing is written.

This module imports nothing at load time, and the thread only json, binascii, threading and the libargon2 bindings
(imagestore/argon2id.py).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import threading
    from pathlib import Path

KEYS_DIRECTORY = "keys"
"""format.KEYS_PREFIX without its slash (format.py loads zstandard and cryptography; a test holds the two equal)."""

_started: Speculation | None = None


def repository_argument(argv: Sequence[str]) -> str | None:
    """The value of the last `--repo URL` or `--repo=URL` before a `--` (argparse keeps the last one too)."""
    found = None
    for position, arg in enumerate(argv):
        if arg == "--":
            break
        if arg == "--repo" and position + 1 < len(argv):
            found = argv[position + 1]
        elif arg.startswith("--repo="):
            found = arg[len("--repo="):]
    return found


def local_directory(url: str) -> str | None:
    """The absolute directory a repository URL names, read as blobstores/urls.py reads it; None for S3, another
    scheme or nothing."""
    text = url.strip()
    if not text or text.startswith("s3://") or ("://" in text and not text.startswith("file://")):
        return None
    return os.path.abspath(os.path.expanduser(text.removeprefix("file://")))


def start(argv: Sequence[str], environ: Mapping[str, str]) -> bool:
    """Start deriving the key of the local repository `argv` names with the passphrase of the environment; True
    if started."""
    global _started
    from snapkeep.env_names import REPO_ENV, REPO_PASSWORD_ENV

    passphrase = environ.get(REPO_PASSWORD_ENV)
    url = repository_argument(argv) or environ.get(REPO_ENV)
    directory = local_directory(url) if url else None
    if not passphrase or directory is None or not os.path.isdir(os.path.join(directory, KEYS_DIRECTORY)):
        return False  # nothing to speculate on: the command reports what is wrong, if anything
    _started = Speculation(directory, passphrase)
    return True


def claim(path: Path | None, passphrase: str | None) -> Speculation | None:
    """The derivation started for this local repository and passphrase, once; None when there is none."""
    global _started
    if _started is None or path is None or passphrase is None:
        return None
    if _started.directory != os.path.abspath(path) or _started.passphrase != passphrase:
        return None
    speculation, _started = _started, None
    return speculation


def first_passphrase_kdf(directory: str) -> tuple[bytes, int, int, int] | None:
    """(salt, iterations, memory KiB, lanes) of the first passphrase key file by name when it uses Argon2id
    within the bounds Snapkeep runs, else None. Loose on purpose: keys.py reads key files for real."""
    import binascii
    import json

    from snapkeep.imagestore import argon2id

    keys = os.path.join(directory, KEYS_DIRECTORY)
    for name in sorted(os.listdir(keys)):
        with open(os.path.join(keys, name), "rb") as file:
            body = json.loads(file.read(64 * 1024))
        if body.get("kind") != "passphrase":
            continue
        kdf = body["kdf"]
        if kdf["algorithm"] != "argon2id":
            return None
        salt = binascii.a2b_base64(kdf["salt"], strict_mode=True)
        iterations, memory_kib, lanes = (kdf[field] for field in ("iterations", "memory_kib", "lanes"))
        if not all(type(value) is int for value in (iterations, memory_kib, lanes)) \
                or not argon2id.within_bounds(iterations, memory_kib, lanes):
            return None
        return salt, iterations, memory_kib, lanes
    return None


class Speculation:
    """The Argon2id key of the first passphrase key file of `directory`, derived on a thread started now (a
    keys.PrecomputedKdf)."""

    def __init__(self, directory: str, passphrase: str) -> None:
        import threading

        self.directory = directory
        self.passphrase = passphrase
        self._chosen = threading.Event()  # set once the key file is read (or found unusable)
        self._parameters: tuple[bytes, int, int, int] | None = None
        self._key: bytes | None = None
        self._thread: threading.Thread = threading.Thread(target=self._run, name="snapkeep-early-kdf",
                                                          daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            try:
                self._parameters = first_passphrase_kdf(self.directory)
            finally:
                self._chosen.set()
            if self._parameters is not None:
                from snapkeep.imagestore import argon2id

                salt, iterations, memory_kib, lanes = self._parameters
                self._key = argon2id.derive(self.passphrase.encode("utf-8"), salt, iterations=iterations,
                                            memory_kib=memory_kib, lanes=lanes)
        except Exception:  # a speculation: the ordinary unlock reads the key file, derives and reports
            self._parameters = None

    def argon2id_key(self, salt: bytes, iterations: int, memory_kib: int, lanes: int) -> bytes | None:
        self._chosen.wait()
        if self._parameters != (salt, iterations, memory_kib, lanes):
            return None
        self._thread.join()
        return self._key
