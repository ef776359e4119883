"""The passphrase KDF of a `repo`/`image` command, started before the command is even parsed.

Unwrapping the repository key (Argon2id over 64 MiB, about 0.12 s on 2 cores) is the longest step of a small
incremental backup, and the lean CLI loads about 40 ms of modules and parses its arguments before it knows what
to open. So `snapkeep.cli.__main__` hands the raw arguments here first: for a local repository named by `--repo`
(or SNAPKEEP_REPO) with the passphrase in SNAPKEEP_REPO_PASSWORD, the key files are read and the KDF runs on a
thread while the rest loads. `start_opening` claims that unlock only for the same repository and passphrase, after
its own checks; anything else (a prompt, a KMS key, an S3 repository, arguments that do not parse) takes the
ordinary path, and an unlock nobody claims is dropped with the process. It only reads: nothing is written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from snapkeep.imagestore.keys import Unlocking

_started: tuple[Path, str, Unlocking] | None = None


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


def start(argv: Sequence[str], environ: Mapping[str, str]) -> bool:
    """Start unlocking the local repository `argv` names with the passphrase of the environment; True if
    started."""
    global _started
    from snapkeep.config import REPO_ENV, REPO_PASSWORD_ENV

    passphrase = environ.get(REPO_PASSWORD_ENV)
    url = repository_argument(argv) or environ.get(REPO_ENV)
    if not passphrase or not url:
        return False
    from snapkeep.blobstores.urls import parse_repository_url
    from snapkeep.domain.errors import SnapkeepError

    try:
        location = parse_repository_url(url, field="--repo")
    except SnapkeepError:
        return False  # the parser reports it
    if location.is_s3 or location.path is None:
        return False
    from snapkeep.blobstores.local import LocalBlobStore
    from snapkeep.imagestore.format import KEYS_PREFIX
    from snapkeep.imagestore.keys import PassphraseKey, Unlocking

    if not (location.path / KEYS_PREFIX).is_dir():
        return False  # no repository there (yet): `repo init`, or an error the command reports

    _started = (location.path, passphrase, Unlocking(LocalBlobStore(location.path), PassphraseKey(passphrase)))
    return True


def claim(path: Path | None, passphrase: str | None) -> Unlocking | None:
    """The unlock started for this local repository and passphrase, once; None when there is none."""
    global _started
    if _started is None or path is None or passphrase is None:
        return None
    started_path, started_passphrase, unlocking = _started
    if started_path != path.absolute() or started_passphrase != passphrase:
        return None
    _started = None
    return unlocking
