"""A vault's image repository: where it is, how its master key is unwrapped, and opening it for a job.

A vault's `image_repository` is {"Url": local path or s3://bucket/prefix, "KmsKeyArn": a KMS key or null}. With a
KMS key the repository's master key is wrapped by KMS (envelope encryption) and no secret lives on the worker;
without one it is wrapped by a passphrase, which workers read from SNAPKEEP_REPO_PASSWORD (Settings) and which is
never written to the catalog.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from snapkeep.blobstores.base import RETENTION_MODES, RetentionMode
from snapkeep.blobstores.s3 import STORAGE_CLASSES
from snapkeep.blobstores.urls import RepositoryUrl, check_storage_class, open_blob_store, parse_repository_url
from snapkeep.domain.errors import InvalidParameterValue, InvalidRequest
from snapkeep.engine.context import EngineContext
from snapkeep.env_names import REPO_PASSWORD_ENV
from snapkeep.imagestore.errors import RepositoryNotFound
from snapkeep.imagestore.keys import KeyWrapping, KmsKey, PassphraseKey, kms_key_region
from snapkeep.imagestore.repository import Repository


def repository_config(url: str, kms_key_arn: str | None, storage_class: str | None = None) -> dict[str, Any]:
    """The vault column's value, checked: a parseable URL, a KMS key ARN or id if given, and for S3 the storage
    class of its packs (STANDARD, STANDARD_IA, GLACIER_IR; GLACIER or DEEP_ARCHIVE for an archive tier)."""
    location = parse_repository_url(url, "ImageRepository.Url")
    if kms_key_arn is not None and not kms_key_arn.strip():
        raise InvalidParameterValue("ImageRepository.KmsKeyArn: must name a KMS key (id, ARN or alias)",
                                    field="ImageRepository.KmsKeyArn")
    if storage_class is not None:
        check_storage_class(location, storage_class, "ImageRepository.StorageClass")
        if storage_class not in STORAGE_CLASSES:
            raise InvalidParameterValue(f"ImageRepository.StorageClass: must be one of {', '.join(STORAGE_CLASSES)}"
                                        f"; got {storage_class!r}", field="ImageRepository.StorageClass")
    return {"Url": location.url if location.is_s3 else str(location.path), "KmsKeyArn": kms_key_arn or None,
            "StorageClass": storage_class}


def image_backup_repository(image_backup: dict[str, Any]) -> dict[str, Any]:
    """The repository (as a vault names one) that a recovery point's image backup is in."""
    return {"Url": image_backup["RepositoryUrl"], "KmsKeyArn": image_backup.get("KmsKeyArn")}


def repository_ref(config: dict[str, Any]) -> str:
    """A short stable name for a repository (its URL and key), for task references."""
    text = json.dumps([config["Url"], config.get("KmsKeyArn")])
    return "repo-" + hashlib.sha256(text.encode()).hexdigest()[:40]


def _key(ctx: EngineContext, config: dict[str, Any]) -> KeyWrapping:
    if config.get("KmsKeyArn"):
        arn = str(config["KmsKeyArn"])
        return KmsKey(ctx.sessions.client("kms", kms_key_region(arn) or ctx.settings.region), arn)
    if not ctx.settings.repository_password:
        raise InvalidRequest(f"the image repository {config['Url']} is protected by a passphrase, and "
                             f"{REPO_PASSWORD_ENV} is not set for Snapkeep (or give the vault's repository a KMS key)")
    return PassphraseKey(ctx.settings.repository_password)


def _store(ctx: EngineContext, location: RepositoryUrl, config: dict[str, Any]) -> Any:
    return open_blob_store(location, lambda: ctx.sessions.client("s3", ctx.settings.region),
                           storage_class=config.get("StorageClass"))


def open_repository(ctx: EngineContext, config: dict[str, Any]) -> Repository:
    """Open the repository a vault (or a recovery point's image backup) names."""
    location = parse_repository_url(str(config["Url"]), "ImageRepository.Url")
    return Repository.open(_store(ctx, location, config), _key(ctx, config), clock=ctx.clock)


def open_or_init_repository(ctx: EngineContext, config: dict[str, Any], *, init: bool,
                            object_lock_mode: RetentionMode | None = None) -> tuple[Repository, bool]:
    """Open the repository, or create it when `init` and there is none; (repository, created). A new repository
    on an S3 bucket with Object Lock may retain every object (GOVERNANCE or COMPLIANCE) until the longest
    retention of the backups that use it."""
    location = parse_repository_url(str(config["Url"]), "ImageRepository.Url")
    store, key = _store(ctx, location, config), _key(ctx, config)
    try:
        return Repository.open(store, key, clock=ctx.clock), False
    except RepositoryNotFound:
        if not init:
            raise
    return Repository.init(store, key, clock=ctx.clock, object_lock_mode=object_lock_mode), True


def set_vault_repository(ctx: EngineContext, vault_name: str, url: str, kms_key_arn: str | None, *,
                         init: bool, storage_class: str | None = None,
                         object_lock_mode: RetentionMode | None = None) -> dict[str, Any]:
    """Send the vault's future recovery points' image backups to a repository; it must open (or be created with
    `init`) with the key Snapkeep has, so a wrong passphrase or an unreachable bucket is found now, not at 3 a.m.
    Points already backed up keep the repository they name."""
    config = repository_config(url, kms_key_arn, storage_class)
    if object_lock_mode is not None and object_lock_mode not in RETENTION_MODES:
        raise InvalidParameterValue(f"ObjectLockMode: must be GOVERNANCE or COMPLIANCE; got {object_lock_mode!r}",
                                    field="ObjectLockMode")
    with ctx.store.transaction() as conn:
        ctx.store.get_vault(conn, vault_name)  # ResourceNotFound for an unknown vault, before touching storage
    repo, created = open_or_init_repository(ctx, config, init=init, object_lock_mode=object_lock_mode)
    if object_lock_mode is not None and repo.config.object_lock_mode != object_lock_mode:
        raise InvalidRequest(f"ObjectLockMode: the repository at {config['Url']} exists with object lock mode "
                             f"{repo.config.object_lock_mode or 'none'}; a repository's mode is set when it is created")
    with ctx.store.transaction() as conn:
        ctx.store.get_vault(conn, vault_name)
        ctx.store.update_vault(conn, vault_name, {"image_repository": config})
    return {**config, "RepositoryId": repo.config.repository_id.hex(), "ObjectLockMode": repo.config.object_lock_mode,
            "Created": created}


def clear_vault_repository(ctx: EngineContext, vault_name: str) -> None:
    """Future points of the vault are snapshot-only; existing image backups stay where they are."""
    with ctx.store.transaction() as conn:
        ctx.store.get_vault(conn, vault_name)
        ctx.store.update_vault(conn, vault_name, {"image_repository": None})


def vault_repository(ctx: EngineContext, vault_name: str) -> dict[str, Any] | None:
    with ctx.store.transaction() as conn:
        config = ctx.store.get_vault(conn, vault_name).get("image_repository")
    return dict(config) if config else None
