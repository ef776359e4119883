"""`snapkeep image ...`: back up a raw disk image or block device into a repository, list, restore, forget.

Bad input is refused before the repository is opened or anything is written (only the key may already be
unlocking, which reads: cli/early_unlock.py): a missing file, a changed-block list that is not one block index
per line within the disk, --changed-blocks without --parent. An unknown parent is refused after opening, still
before anything is written.
"""

from __future__ import annotations

import argparse
import stat
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from snapkeep.cli.repos import (
    GROUPS,
    Parser,
    add_common,
    human_bytes,
    open_repository,
    print_json,
    print_table,
    progress_bar,
    start_opening,
)
from snapkeep.domain.errors import InvalidParameterValue

if TYPE_CHECKING:
    from snapkeep.imagestore.manifest import Manifest
    from snapkeep.imagestore.sources import RawImageSource


def _source_path(text: str) -> Path:
    path = Path(text)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise InvalidParameterValue(f"FILE_OR_DEVICE: {text} does not exist", field="FILE_OR_DEVICE") from None
    except OSError as exc:
        raise InvalidParameterValue(f"FILE_OR_DEVICE: {text}: {exc.strerror}", field="FILE_OR_DEVICE") from None
    if not (stat.S_ISREG(mode) or stat.S_ISBLK(mode)):
        raise InvalidParameterValue(f"FILE_OR_DEVICE: {text} is not a regular file or a block device",
                                    field="FILE_OR_DEVICE")
    return path


def _read_changed_blocks(text: str) -> str:
    try:
        return Path(text).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidParameterValue(f"--changed-blocks: {text} does not exist", field="--changed-blocks") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidParameterValue(f"--changed-blocks: cannot read {text}: {exc}", field="--changed-blocks") from None


def _parse_tags(values: list[str] | None) -> dict[str, str]:
    tags = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidParameterValue(f"--tag: expected KEY=VALUE, got {item!r}", field="--tag")
        tags[key] = value
    return tags


def _delete_after(repo: Any, keep_days: int | None) -> Any:
    """--keep-days: the image backup's retention (required by an Object Lock repository, which retains every object
    it uses until then)."""
    if keep_days is None:
        return None
    if keep_days < 1:
        raise InvalidParameterValue(f"--keep-days: must be 1 or more, got {keep_days}", field="--keep-days")
    return repo.clock() + timedelta(days=keep_days)


def _source_record(path: Path, source: RawImageSource) -> dict[str, Any]:
    """What the manifest records of the disk read: its path and, when free space was skipped, how much."""
    record: dict[str, Any] = {"path": str(path.absolute())}
    if source.free_space is not None:
        record.update(filesystem=source.free_space.filesystem, free_space_skipped=source.free_space.free_bytes)
    return record


def image_backup(args: argparse.Namespace) -> int:
    if args.changed_blocks is not None and args.parent is None:
        raise InvalidParameterValue("--changed-blocks: needs --parent, the image backup the unchanged blocks are "
                                    "copied from", field="--changed-blocks")
    path = _source_path(args.source)
    text = _read_changed_blocks(args.changed_blocks) if args.changed_blocks is not None else None
    tags = _parse_tags(args.tag)
    opening = start_opening(args, storage_class=args.storage_class)  # the KDF runs while the rest loads

    from snapkeep.imagestore.sources import RawImageSource, block_count, parse_changed_blocks

    with RawImageSource(path, direct=False) as probe:
        changed = None if text is None else parse_changed_blocks(text, block_count(probe.size),
                                                                 field="--changed-blocks")
        if changed is not None:
            probe.prefetch(changed)  # read while the key is unwrapped; then from the page cache
    repo = opening()
    parent = repo.image(args.parent) if args.parent else None
    # An incremental continues the parent's disk: keep its name, whatever the file is called now.
    name = parent.disks[0].name if parent is not None and len(parent.disks) == 1 else path.name
    with RawImageSource(path, name=name, skip_free_space=changed is None and not args.read_free_space,
                        direct=changed is None) as source, \
            progress_bar("Backing up", args.as_json) as progress:
        manifest = repo.backup([source], source=_source_record(path, source),
                               parent=parent.image_id if parent else None,
                               changed_blocks={name: changed} if changed is not None else None, tags=tags,
                               delete_after=_delete_after(repo, args.keep_days), progress=progress)
    stats = manifest.stats
    out: dict[str, Any] = {
        "ImageId": manifest.image_id, "Parent": manifest.parent, "Repository": repo.store.location, "Disk": name,
        "Size": manifest.size, "Created": manifest.created, "BlocksRead": stats.get("blocks_read", 0),
        "BlocksZero": stats.get("blocks_zero", 0), "BlocksNew": stats.get("blocks_new", 0),
        "BytesRead": stats.get("bytes_read", 0), "BytesStored": stats.get("bytes_stored", 0),
        "FreeSpaceSkipped": manifest.source.get("free_space_skipped", 0)}
    if args.as_json:
        print_json(out)
    else:
        print(f"Image backup {manifest.image_id}" + (f" (parent {manifest.parent})" if manifest.parent else "")
              + f": {out['BlocksRead']} blocks read ({out['BlocksZero']} zero, {out['BlocksNew']} new), "
              f"{human_bytes(out['BytesRead'])} read, {human_bytes(out['BytesStored'])} stored")
    return 0


def _summary(manifest: Manifest) -> dict[str, Any]:
    return {"ImageId": manifest.image_id, "Created": manifest.created, "Parent": manifest.parent,
            "Size": manifest.size, "DeleteAfter": manifest.delete_after, "Tags": manifest.tags,
            "Disks": [{"Name": d.name, "Size": d.size, "Blocks": len(d.block_map)} for d in manifest.disks],
            "Stats": manifest.stats, "Source": manifest.source}


def image_list(args: argparse.Namespace) -> int:
    repo = open_repository(args)
    manifests = repo.images()
    if args.as_json:
        print_json([_summary(m) for m in manifests])
    else:
        print_table(f"Image backups in {repo.store.location}", ["ImageId", "Created", "Parent", "Disks", "Size",
                                                                 "Stored"],
                    [[m.image_id, m.created, m.parent, ", ".join(d.name for d in m.disks), human_bytes(m.size),
                      human_bytes(m.stats.get("bytes_stored", 0))] for m in manifests])
    return 0


def image_restore(args: argparse.Namespace) -> int:
    target = Path(args.target)
    if target.is_dir():
        raise InvalidParameterValue(f"TARGET: {target} is a directory; name a file or a block device",
                                    field="TARGET")
    if not target.parent.is_dir():
        raise InvalidParameterValue(f"TARGET: {target.parent} is not a directory", field="TARGET")
    opening = start_opening(args)  # the KDF runs while the rest loads

    from snapkeep.imagestore.sources import RawImageSink

    repo = opening()
    manifest = repo.image(args.image_id)
    disk = manifest.pick_disk(args.disk, field="--disk")
    created = not target.exists()
    try:
        with RawImageSink(target, disk.size, overwrite=True) as sink, \
                progress_bar("Restoring", args.as_json) as progress:
            result = repo.restore(manifest.image_id, sink, disk=disk.name, progress=progress)
    except BaseException:
        if created:  # do not leave a half-written file that looks like a restored disk
            target.unlink(missing_ok=True)
        raise
    out = {"ImageId": manifest.image_id, "Disk": disk.name, "Target": str(target), "Size": disk.size,
           "BlocksWritten": result.blocks_written, "ZeroBlocks": result.zero_blocks,
           "BytesWritten": result.bytes_written}
    if args.as_json:
        print_json(out)
    else:
        print(f"Restored {disk.name} of image backup {manifest.image_id} to {target}: {result.blocks_written} "
              f"blocks ({human_bytes(result.bytes_written)}) written, {result.zero_blocks} zero blocks")
    return 0


def image_forget(args: argparse.Namespace) -> int:
    repo = open_repository(args)
    manifest = repo.image(args.image_id)
    repo.forget(manifest.image_id)
    if args.as_json:
        print_json({"ImageId": manifest.image_id, "Forgotten": True})
    else:
        print(f"Forgot image backup {manifest.image_id}; `snapkeep repo gc` frees the space only it used")
    return 0


def add_image_commands(groups: argparse._SubParsersAction[Parser]) -> None:
    image = groups.add_parser("image", help=GROUPS["image"], description=GROUPS["image"])
    commands = image.add_subparsers(title="commands", metavar="COMMAND", required=True)

    backup = commands.add_parser(
        "backup", help="Back up a raw disk image file or a block device",
        description="Back up FILE_OR_DEVICE as a new image backup (zero blocks are not stored; blocks already in "
                    "the repository are stored once). With --parent and --changed-blocks only the listed 512 KiB "
                    "blocks are read and the rest come from the parent. A full read skips the free space of a "
                    "cleanly unmounted ext2/3/4 filesystem on the disk or in its GPT or MBR partitions (it "
                    "restores as zeros) unless --read-free-space is given.")
    add_common(backup)
    backup.add_argument("source", metavar="FILE_OR_DEVICE")
    backup.add_argument("--parent", metavar="ID", help="The image backup this one follows (id or unique prefix)")
    backup.add_argument("--changed-blocks", metavar="FILE",
                        help="Blocks changed since --parent: one 512 KiB block index per line (# comments allowed)")
    backup.add_argument("--keep-days", type=int, metavar="DAYS",
                        help="Keep the image backup at least this long (needed with S3 Object Lock)")
    backup.add_argument("--tag", action="append", metavar="KEY=VALUE", help="Tag the image backup (repeatable)")
    backup.add_argument("--read-free-space", action="store_true",
                        help="Read every block, also those the filesystem marks free (deleted files' data is kept)")
    backup.add_argument("--storage-class", metavar="CLASS",
                        help="S3 storage class of the packs this backup writes (STANDARD, STANDARD_IA, ONEZONE_IA, "
                             "INTELLIGENT_TIERING, GLACIER_IR, GLACIER, DEEP_ARCHIVE)")
    backup.set_defaults(handler=image_backup)

    listing = commands.add_parser("list", help="The image backups, oldest first")
    add_common(listing)
    listing.set_defaults(handler=image_list)

    restore = commands.add_parser(
        "restore", help="Write an image backup's disk to a file or block device",
        description="Write one disk of image backup ID to TARGET: a file (created, or overwritten) or a block "
                    "device at least as large. Every block is verified against its chunk id.")
    add_common(restore)
    restore.add_argument("image_id", metavar="ID")
    restore.add_argument("target", metavar="TARGET")
    restore.add_argument("--disk", metavar="NAME", help="Which disk, when the image backup has several")
    restore.set_defaults(handler=image_restore)

    forget = commands.add_parser("forget", help="Remove an image backup (gc then frees its unshared data)")
    add_common(forget)
    forget.add_argument("image_id", metavar="ID")
    forget.set_defaults(handler=image_forget)

