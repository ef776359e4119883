"""`snapkeep repo ...` and the lean front end of the image repository commands (`repo`, `image`).

These commands are timed end to end (a small incremental backup is mostly process start-up), so they run from an
argparse parser instead of the Typer app and import only what the command needs: the engine, the blob store of
the URL (boto3 only for s3://), rich only to draw on a terminal. Errors print the same one line as the rest of
the CLI (`Error (Code) [field]: message`) and end with the error's exit code.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn

from snapkeep.domain.errors import (
    InvalidParameterValue,
    MissingParameterValue,
    SnapkeepError,
)
from snapkeep.env_names import REPO_ENV, REPO_PASSWORD_ENV

if TYPE_CHECKING:
    import typer

    from snapkeep.blobstores.base import BlobStore
    from snapkeep.blobstores.urls import RepositoryUrl
    from snapkeep.imagestore.keys import KeyWrapping, PrecomputedKdf
    from snapkeep.imagestore.repository import Progress, Repository

GROUPS = {
    "repo": "Image repositories: init, check, gc, stats, unlock (`snapkeep repo --help`).",
    "image": "Image backups of disk images and block devices: backup, list, restore, forget "
             "(`snapkeep image --help`).",
}
ProgressCallback = Callable[["Progress"], None]


# -- errors and output --------------------------------------------------------------------------------------
def print_error(error: SnapkeepError) -> None:
    """The CLI's one error line; rich colours it on a terminal, plain text elsewhere (never wrapped)."""
    field = f" [{error.field}]" if error.field else ""
    if sys.stderr.isatty():
        from rich.console import Console
        from rich.markup import escape

        Console(stderr=True).print(f"[bold red]Error[/] ({error.code}){escape(field)}: {escape(error.message)}",
                                   highlight=False)
    else:
        sys.stderr.write(f"Error ({error.code}){field}: {' '.join(error.message.split())}\n")


def print_json(value: Any) -> None:
    def default(item: Any) -> Any:
        if isinstance(item, datetime):
            from snapkeep.domain.clock import iso_z

            return iso_z(item)
        raise TypeError(f"cannot serialise {type(item).__name__}")

    sys.stdout.write(json.dumps(value, indent=2, default=default) + "\n")


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    from snapkeep.cli.output import console, make_table

    console.print(make_table(title, columns, rows))


def human_bytes(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"  # pragma: no cover - the loop always returns


@contextmanager
def progress_bar(description: str, as_json: bool) -> Iterator[ProgressCallback | None]:
    """A rich progress bar on stderr while the block is running, only on a terminal and never with --json.

    Yields the callback to hand to the engine (None when hidden); operations without block counts show a
    pulsing bar.
    """
    if as_json or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as Bar

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("blocks"),
               TimeElapsedColumn())
    with Bar(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=None)

        def update(progress: Progress) -> None:
            bar.update(task, completed=progress.blocks_done, total=progress.blocks_total)

        yield update


# -- parsing ------------------------------------------------------------------------------------------------
class _Formatter(argparse.HelpFormatter):
    """The terminal width from `os`: argparse would import shutil (and with it bz2 and lzma) for every command."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        if width is None:
            try:
                columns = int(os.environ.get("COLUMNS", "0")) or os.get_terminal_size(sys.stdout.fileno()).columns
            except (AttributeError, OSError, ValueError):
                columns = 80
            width = max(columns, 40) - 2
        super().__init__(prog, indent_increment, max_help_position, width)


class Parser(argparse.ArgumentParser):
    """argparse with the CLI's error line and exit code 2 instead of usage text."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise InvalidParameterValue(f"{self.prog}: {message} (see `{self.prog} --help`)")


_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str, option: str) -> timedelta:
    """`90`, `90s`, `30m`, `1h`, `1h30m`, `2d`: a bare number is seconds."""
    value = text.strip().lower()
    try:
        return timedelta(seconds=float(value))
    except ValueError:
        pass
    parts = _DURATION.findall(value)
    if not parts or "".join(number + unit for number, unit in parts) != value:
        raise InvalidParameterValue(f"{option}: {text!r} is not a duration (e.g. 90s, 30m, 1h, 2d, 1h30m)",
                                    field=option)
    return timedelta(seconds=sum(float(number) * _UNITS[unit] for number, unit in parts))


def parse_percent(text: str, option: str) -> float:
    try:
        value = float(text.strip().removesuffix("%"))
    except ValueError:
        raise InvalidParameterValue(f"{option}: {text!r} is not a percentage (0 to 100)", field=option) from None
    if not 0 < value <= 100:
        raise InvalidParameterValue(f"{option}: must be more than 0 and at most 100, got {text}", field=option)
    return value


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo", metavar="URL", default=None,
                        help=f"The repository: a directory, or s3://bucket/prefix (default: ${REPO_ENV}). S3 uses "
                             "the AWS credential chain, and AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL when set.")
    parser.add_argument("--json", dest="as_json", action="store_true", help="Print JSON (and no progress bar)")


# -- opening repositories -----------------------------------------------------------------------------------
def repo_url(args: argparse.Namespace) -> str:
    url = args.repo or os.environ.get(REPO_ENV, "")
    if not url:
        raise MissingParameterValue(f"--repo: give the repository URL (a directory or s3://bucket/prefix) or set "
                                    f"{REPO_ENV}", field="--repo")
    return str(url)


def _s3_client() -> Any:
    import boto3
    from botocore.config import Config

    # boto3 itself honours AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL and the usual credential chain.
    return boto3.session.Session().client(
        "s3", config=Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=10, read_timeout=60))


def open_store(url: str | RepositoryUrl, *, storage_class: str | None = None) -> BlobStore:
    """A blob store from a repository URL: a local path (or file://) or s3://bucket/prefix."""
    from snapkeep.blobstores.urls import open_blob_store, parse_repository_url

    location = parse_repository_url(url, field="--repo") if isinstance(url, str) else url
    return open_blob_store(location, _s3_client, storage_class=storage_class, field="--storage-class")


def _kms_client(key_id: str) -> Any:
    import boto3

    from snapkeep.imagestore.keys import kms_key_region

    # An ARN names its region; an id or alias goes to the region of the AWS configuration.
    return boto3.session.Session().client("kms", region_name=kms_key_region(key_id))


def _kms_key(key_id: str) -> KeyWrapping:
    from snapkeep.imagestore.keys import KmsKey

    return KmsKey(_kms_client(key_id), key_id)


@contextmanager
def _kms_errors(key_id: str | None) -> Iterator[None]:
    """KMS refusals (unknown key, no access, no region) as the CLI's AWS errors, not tracebacks."""
    if not key_id:
        yield
        return
    from snapkeep.aws.errors import aws_errors

    with aws_errors(f"KMS Encrypt with {key_id}"):
        yield


def ask_passphrase(*, confirm: bool) -> str:
    """SNAPKEEP_REPO_PASSWORD, else a prompt on the terminal (twice when creating a repository)."""
    passphrase = os.environ.get(REPO_PASSWORD_ENV, "")
    if passphrase:
        return passphrase
    if not sys.stdin.isatty():
        raise MissingParameterValue(f"passphrase: set {REPO_PASSWORD_ENV}, or run on a terminal to be asked for it",
                                    field=REPO_PASSWORD_ENV)
    import getpass

    passphrase = getpass.getpass("Repository passphrase: ")
    if confirm and getpass.getpass("Repository passphrase again: ") != passphrase:
        raise InvalidParameterValue("passphrase: the two entries differ", field="passphrase")
    if not passphrase:
        raise InvalidParameterValue("passphrase: must not be empty", field="passphrase")
    return passphrase


def _opening_key(store: BlobStore, precomputed: PrecomputedKdf | None = None) -> KeyWrapping:
    """The passphrase when one is set; else a KMS key file's key when the repository has one; else ask."""
    from snapkeep.imagestore.format import KEYS_PREFIX
    from snapkeep.imagestore.keys import PassphraseKey, read_key_file

    passphrase = os.environ.get(REPO_PASSWORD_ENV)
    if passphrase:
        return PassphraseKey(passphrase, precomputed=precomputed)
    for info in store.list(KEYS_PREFIX):
        try:
            key_file = read_key_file(store.get(info.name), info.name)
        except SnapkeepError:
            continue  # Repository.open reports what it cannot use
        if key_file.kind == "kms" and key_file.fields.get("kms_key_id"):
            return _kms_key(str(key_file.fields["kms_key_id"]))
    return PassphraseKey(ask_passphrase(confirm=False))


def start_opening(args: argparse.Namespace, *, storage_class: str | None = None) -> Callable[[], Repository]:
    """Begin opening the repository of --repo (says so before asking for a passphrase when there is none). The
    key is unlocked in a background thread while the caller loads the rest of its code and reads its input; the
    function returned finishes the opening."""
    from snapkeep.blobstores.base import BlobNotFound
    from snapkeep.blobstores.urls import parse_repository_url
    from snapkeep.cli.early_unlock import claim
    from snapkeep.imagestore.errors import RepositoryNotFound
    from snapkeep.imagestore.format import CONFIG_NAME
    from snapkeep.imagestore.keys import Unlocking

    location = parse_repository_url(repo_url(args), field="--repo")
    store = open_store(location, storage_class=storage_class)
    try:
        store.stat(CONFIG_NAME)
    except BlobNotFound:
        raise RepositoryNotFound(f"{store.location}: no repository there (no {CONFIG_NAME} object); create one with "
                                 "`snapkeep repo init`", field="--repo") from None
    # The key `run` began deriving before parsing is used when it was for this repository and passphrase.
    unlocking = Unlocking(store, _opening_key(store, claim(location.path, os.environ.get(REPO_PASSWORD_ENV) or None)))

    def finish() -> Repository:
        from snapkeep.imagestore.repository import Repository

        return Repository.open(store, unlocking.master())

    return finish


def open_repository(args: argparse.Namespace, *, storage_class: str | None = None) -> Repository:
    """Open the repository of --repo."""
    return start_opening(args, storage_class=storage_class)()


# -- repo commands ------------------------------------------------------------------------------------------
def repo_init(args: argparse.Namespace) -> int:
    from snapkeep.imagestore.keys import PassphraseKey
    from snapkeep.imagestore.repository import Repository

    store = open_store(repo_url(args))
    kinds = []
    if args.kms_key_id:
        key = _kms_key(args.kms_key_id)
        kinds.append("kms")
        passphrase = os.environ.get(REPO_PASSWORD_ENV, "")  # a passphrase as well, when one is set
    else:
        passphrase = ask_passphrase(confirm=True)
        key = PassphraseKey(passphrase)
        kinds.append("passphrase")
    with progress_bar("Creating the repository", args.as_json), _kms_errors(args.kms_key_id):
        repo = Repository.init(store, key, object_lock_mode=args.object_lock_mode)
        if args.kms_key_id and passphrase:
            repo.add_key(PassphraseKey(passphrase))
            kinds.append("passphrase")
    out: dict[str, Any] = {"Repository": store.location, "RepositoryId": repo.config.repository_id.hex(),
                           "KeyKinds": kinds, "Created": repo.config.created}
    if args.as_json:
        print_json(out)
    else:
        print(f"Created repository {out['RepositoryId'][:16]}… at {store.location} (keys: {', '.join(kinds)})")
    return 0


def repo_check(args: argparse.Namespace) -> int:
    from snapkeep.imagestore.check import check
    from snapkeep.imagestore.errors import RepositoryDamaged

    read_data = 0.0 if args.read_data is None else parse_percent(args.read_data, "--read-data")
    repo = open_repository(args)
    with progress_bar("Checking", args.as_json):
        report = check(repo, read_data=read_data)
    problems = [{"Object": p.object_name, "Reason": p.reason, "Images": list(p.images)} for p in report.problems]
    out = {"Ok": report.ok, "ImagesChecked": report.images_checked, "PacksChecked": report.packs_checked,
           "PacksRead": report.packs_read, "BytesRead": report.bytes_read, "Problems": problems,
           "DamagedImages": report.damaged_images, "UnindexedPacks": report.unindexed_packs}
    if args.as_json:
        print_json(out)
    else:
        for problem in report.problems:
            affects = f" (image backups affected: {', '.join(problem.images)})" if problem.images else ""
            print(f"damaged: {problem.object_name}: {problem.reason}{affects}")
        read = f", {report.packs_read} read in full ({human_bytes(report.bytes_read)})" if read_data else ""
        print(f"{report.images_checked} image backups, {report.packs_checked} packs checked{read}; "
              f"{len(report.problems)} problems"
              + (f"; {len(report.unindexed_packs)} unindexed packs (gc removes them)" if report.unindexed_packs
                 else ""))
    if not report.ok:
        images = ", ".join(report.damaged_images) or "none"
        raise RepositoryDamaged(f"{repo.store.location}: {len(report.problems)} damaged or missing objects; "
                                f"image backups affected: {images}")
    return 0


def repo_gc(args: argparse.Namespace) -> int:
    from snapkeep.imagestore.gc import DEFAULT_SAFETY_MARGIN, PackFacts, run_gc

    margin = (DEFAULT_SAFETY_MARGIN if args.safety_margin is None
              else parse_duration(args.safety_margin, "--safety-margin"))
    if margin < timedelta(0):
        raise InvalidParameterValue("--safety-margin: must not be negative", field="--safety-margin")
    repo = open_repository(args)
    with progress_bar("Collecting garbage", args.as_json):
        result = run_gc(repo, dry_run=args.dry_run, safety_margin=margin)
    plan = result.plan

    def packs(items: Sequence[PackFacts]) -> list[dict[str, Any]]:
        return [{"Name": p.name, "Size": p.size, "Modified": p.modified, "RetainUntil": p.retain_until}
                for p in items]

    out = {"DryRun": result.dry_run, "SafetyMarginSeconds": margin.total_seconds(), "Delete": packs(plan.delete),
           "KeepRecent": packs(plan.keep_recent), "KeepRetained": packs(plan.keep_retained),
           "Referenced": plan.referenced, "BytesFreed": plan.bytes_freed if not result.dry_run else 0,
           "BytesToFree": plan.bytes_freed, "Deleted": result.deleted, "Refused": result.refused}
    if args.as_json:
        print_json(out)
        return 0
    if plan.delete:
        print_table("Packs to delete" if result.dry_run else "Packs deleted", ["Pack", "Size", "Modified"],
                    [[p.name, human_bytes(p.size), p.modified] for p in plan.delete])
    verb = "would free" if result.dry_run else "freed"
    print(f"{len(plan.delete)} unreferenced packs {verb} {human_bytes(plan.bytes_freed)}; kept "
          f"{plan.referenced} referenced, {len(plan.keep_recent)} younger than the safety margin, "
          f"{len(plan.keep_retained)} under retention"
          + (f"; the store refused {len(result.refused)}" if result.refused else ""))
    return 0


def repo_stats(args: argparse.Namespace) -> int:
    repo = open_repository(args)
    with progress_bar("Counting", args.as_json):
        stats = repo.stats()
    out = {"Repository": repo.store.location, "Images": stats.images, "Packs": stats.packs,
           "PackBytes": stats.pack_bytes, "Chunks": stats.chunks, "ChunkRawBytes": stats.chunk_raw_bytes,
           "LogicalBytes": stats.logical_bytes, "IndexFiles": stats.index_files,
           "DedupRatio": round(stats.dedup_ratio, 3)}
    if args.as_json:
        print_json(out)
    else:
        print_table(f"Repository {repo.store.location}", ["Images", "Packs", "Stored", "Chunks", "Logical",
                                                            "Ratio", "Index files"],
                    [[stats.images, stats.packs, human_bytes(stats.pack_bytes), stats.chunks,
                      human_bytes(stats.logical_bytes), f"{stats.dedup_ratio:.2f}", stats.index_files]])
    return 0


def repo_unlock(args: argparse.Namespace) -> int:
    repo = open_repository(args)
    removed = repo.locks.unlock(force=args.force)
    out = {"Removed": [{"Name": lock.name, "Exclusive": lock.exclusive, "Hostname": lock.hostname, "Pid": lock.pid,
                        "Created": lock.created, "Refreshed": lock.refreshed, "Readable": lock.readable}
                       for lock in removed]}
    if args.as_json:
        print_json(out)
    else:
        for lock in removed:
            print(f"removed {lock.name}: {lock.describe()}")
        left = len(repo.locks.current())
        print(f"{len(removed)} locks removed" + (f"; {left} live locks left (--force removes them)" if left else ""))
    return 0


def add_repo_commands(groups: argparse._SubParsersAction[Parser]) -> None:
    repo = groups.add_parser("repo", help=GROUPS["repo"], description=GROUPS["repo"])
    commands = repo.add_subparsers(title="commands", metavar="COMMAND", required=True)

    init = commands.add_parser("init", help="Create an encrypted repository at --repo",
                               description="Create an encrypted repository. The passphrase comes from "
                                           f"{REPO_PASSWORD_ENV} or is asked twice; with --kms-key-id the master key "
                                           f"is wrapped with KMS (and with {REPO_PASSWORD_ENV} too when it is set).")
    add_common(init)
    init.add_argument("--kms-key-id", metavar="KEY", help="A KMS key (id, ARN or alias) to wrap the master key with")
    init.add_argument("--object-lock-mode", choices=("GOVERNANCE", "COMPLIANCE"), type=str.upper,
                      help="On an S3 bucket with Object Lock: retain every object until the longest retention of "
                           "the image backups using it (image backup --keep-days)")
    init.set_defaults(handler=repo_init)

    check = commands.add_parser("check", help="Verify the repository; exit 9 when anything is damaged",
                                description="Verify structure (keys, indexes, manifests, packs present) and, with "
                                            "--read-data, every byte of a share of the packs. Names the image "
                                            "backups each problem affects; exit 9 when there is any.")
    add_common(check)
    check.add_argument("--read-data", nargs="?", const="100", metavar="PERCENT",
                       help="Also read and verify every byte of PERCENT of the packs (default 100)")
    check.set_defaults(handler=repo_check)

    gc = commands.add_parser("gc", help="Delete the packs no image backup needs",
                             description="Plan, then delete the unreferenced packs older than the safety margin "
                                         "whose retention has expired (takes the exclusive lock).")
    add_common(gc)
    gc.add_argument("--dry-run", action="store_true", help="Print the plan only")
    gc.add_argument("--safety-margin", metavar="DURATION",
                    help="Keep unreferenced packs younger than this (running backups may need them); default 1h")
    gc.set_defaults(handler=repo_gc)

    stats = commands.add_parser("stats", help="Sizes, counts and the deduplication ratio")
    add_common(stats)
    stats.set_defaults(handler=repo_stats)

    unlock = commands.add_parser("unlock", help="Remove stale locks (every lock with --force)")
    add_common(unlock)
    unlock.add_argument("--force", action="store_true",
                        help="Remove live locks too: only when their holders are known to be gone")
    unlock.set_defaults(handler=repo_unlock)


# -- entry points -------------------------------------------------------------------------------------------
def build_parser(only: str | None = None) -> Parser:
    """The parser of both groups, or of `only` one (building every subcommand costs a small backup 10 ms)."""
    from snapkeep.cli.images import add_image_commands

    parser = Parser(prog="snapkeep", description="Snapkeep: backup and recovery for AWS EC2.")
    groups = parser.add_subparsers(title="commands", metavar="COMMAND", required=True, parser_class=Parser)
    if only in (None, "repo"):
        add_repo_commands(groups)
    if only in (None, "image"):
        add_image_commands(groups)
    return parser


def main(argv: Sequence[str]) -> int:
    """Run one `repo`/`image` command; returns the exit code."""
    try:
        args = build_parser(argv[0] if argv and argv[0] in GROUPS else None).parse_args(list(argv))
        return int(args.handler(args))
    except SnapkeepError as exc:
        print_error(exc)
        return exc.exit_code
    except (ValueError, TypeError) as exc:  # as the Typer commands do (output.errors_to_exit)
        error = InvalidParameterValue(f"invalid input: {exc}")
        print_error(error)
        return error.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("Interrupted\n")
        return 130


def add_to_app(app: typer.Typer) -> None:
    """List `repo` and `image` in the Typer app too (and run them from there, e.g. after root options)."""
    import typer

    def passthrough(group: str) -> Callable[[typer.Context], None]:
        def command(ctx: typer.Context) -> None:
            raise typer.Exit(main([group, *ctx.args]))

        command.__annotations__ = {"ctx": typer.Context, "return": None}  # typer is only imported here
        return command

    for group, text in GROUPS.items():
        app.command(group, help=text, add_help_option=False,
                    context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(passthrough(group))
