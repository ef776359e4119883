"""API keys: access key ids and secrets for SigV4, kept in the catalog with the secrets encrypted at rest.

SigV4 needs the secret itself on the server (it is the HMAC key), so it is encrypted, not hashed.

Formats:
- access key id: 20 characters, "SKAK" then 16 of A-Z 0-9 (like AWS's "AKIA..."), e.g. SKAKQ3V7XW2M9P4T8R1Z.
- secret access key: 40 characters of A-Z a-z 0-9 (generated with `secrets`); a secret given through
  SNAPKEEP_ADMIN_SECRET_ACCESS_KEY may also use '/' and '+', as AWS's do.
- master key: the file SNAPKEEP_HOME/master.key, exactly 32 random bytes (an AES-256 key), mode 0600, created
  on first use. Losing it makes every stored secret unreadable; replacing it does too.
- api_keys.secret_ciphertext: standard base64 (with padding) of
      bytes 0-11    nonce: 12 random bytes, new for every encryption
      bytes 12-51   ciphertext: AES-256-GCM of the secret's 40 ASCII bytes (as long as the plaintext)
      bytes 52-67   tag: the 16-byte GCM authentication tag
  68 bytes, 92 base64 characters. The associated data is the access key id (ASCII), so a ciphertext copied
  onto another key's row does not decrypt.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import os
import re
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from snapkeep.api.roles import Role, parse_role
from snapkeep.catalog.tables import api_keys
from snapkeep.domain.errors import (
    Conflict,
    InvalidParameterValue,
    MissingParameterValue,
    ResourceNotFound,
    SnapkeepError,
)

MASTER_KEY_FILE = "master.key"
MASTER_KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
ACCESS_KEY_ID_PREFIX = "SKAK"
ACCESS_KEY_ID_LENGTH = 20
SECRET_LENGTH = 40
ENV_ADMIN_ACCESS_KEY_ID = "SNAPKEEP_ADMIN_ACCESS_KEY_ID"
ENV_ADMIN_SECRET_ACCESS_KEY = "SNAPKEEP_ADMIN_SECRET_ACCESS_KEY"
ADMIN_USER_NAME = "admin"

ACCESS_KEY_ID_PATTERN = re.compile(r"SKAK[A-Z0-9]{16}")
SECRET_PATTERN = re.compile(r"[A-Za-z0-9/+]{40}")
USER_NAME_PATTERN = re.compile(r"[A-Za-z0-9_+=,.@-]{1,64}")  # IAM's user name rule

_ID_ALPHABET = string.ascii_uppercase + string.digits
_SECRET_ALPHABET = string.ascii_letters + string.digits


class SecretUndecryptable(SnapkeepError):
    """A stored secret does not decrypt: the master key is not the one it was encrypted with, or the row was
    altered. A server fault (HTTP 500), not the caller's."""

    code = "ServiceUnavailableException"
    http_status = 500
    exit_code = 1


@dataclass(frozen=True)
class ApiKey:
    """An API key as listed: never the secret."""

    access_key_id: str
    user_name: str
    role: Role
    enabled: bool
    creation_date: datetime


# -- the master key ------------------------------------------------------------------------------------------
def load_or_create_master_key(home: Path) -> bytes:
    """The 32-byte master key in `home/master.key`, created (mode 0600) if there is none.

    Creation is atomic even against another process doing the same: the key is written and synced under a
    temporary name, then hard-linked to `master.key`, which fails if a key appeared meanwhile; the key on disk
    is what is returned, so every process uses the same one.
    """
    path = home / MASTER_KEY_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        data = _create_master_key(home, path)
    if len(data) != MASTER_KEY_BYTES:
        raise InvalidParameterValue(
            f"{path}: a master key must be exactly {MASTER_KEY_BYTES} bytes, this file has {len(data)}. "
            "Restore the original file (the stored API key secrets cannot be decrypted without it); "
            "Snapkeep never overwrites it",
            field="SNAPKEEP_HOME/master.key",
        )
    return data


def _create_master_key(home: Path, path: Path) -> bytes:
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = home / f".{MASTER_KEY_FILE}.{os.getpid()}.{secrets.token_hex(8)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(secrets.token_bytes(MASTER_KEY_BYTES))
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):  # another process made one first: use theirs
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(home)
    return path.read_bytes()


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- encryption ----------------------------------------------------------------------------------------------
def encrypt_secret(master_key: bytes, access_key_id: str, secret: str) -> str:
    nonce = secrets.token_bytes(NONCE_BYTES)
    sealed = AESGCM(master_key).encrypt(nonce, secret.encode("ascii"), access_key_id.encode("ascii"))
    return base64.b64encode(nonce + sealed).decode("ascii")


def decrypt_secret(master_key: bytes, access_key_id: str, stored: str) -> str:
    try:
        raw = base64.b64decode(stored, validate=True)
        if len(raw) < NONCE_BYTES + TAG_BYTES:
            raise ValueError("too short")
        plain = AESGCM(master_key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], access_key_id.encode("ascii"))
        return plain.decode("ascii")
    except (InvalidTag, ValueError, binascii.Error, UnicodeError):
        raise SecretUndecryptable(
            f"the secret of API key {access_key_id} cannot be decrypted with this master key: SNAPKEEP_HOME/"
            f"{MASTER_KEY_FILE} is not the key it was encrypted with (replaced, or from another installation), "
            "or the stored row was altered"
        ) from None


def _check_master_key(master_key: bytes) -> None:
    if len(master_key) != MASTER_KEY_BYTES:
        raise InvalidParameterValue(
            f"master key: must be exactly {MASTER_KEY_BYTES} bytes, got {len(master_key)}", field="master_key"
        )


def new_access_key_id() -> str:
    return ACCESS_KEY_ID_PREFIX + "".join(
        secrets.choice(_ID_ALPHABET) for _ in range(ACCESS_KEY_ID_LENGTH - len(ACCESS_KEY_ID_PREFIX))
    )


def new_secret_access_key() -> str:
    return "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(SECRET_LENGTH))


# -- the store -----------------------------------------------------------------------------------------------
class KeyStore:
    """API keys in the catalog's `api_keys` table. Every lookup reads the catalog, so a disabled key stops
    working at once, in every process sharing the catalog."""

    def __init__(self, engine: Engine, master_key: bytes) -> None:
        _check_master_key(master_key)
        self.engine = engine
        self._master_key = master_key

    def create_key(self, user_name: str, role: Role | str, now: datetime) -> tuple[str, str]:
        """A new enabled key: (access_key_id, secret_access_key). The secret is shown this once only."""
        if not USER_NAME_PATTERN.fullmatch(user_name):
            raise InvalidParameterValue(
                f"UserName: must be 1 to 64 characters of letters, digits and _+=,.@-, got '{user_name}'",
                field="UserName",
            )
        parsed = parse_role(str(role))
        secret = new_secret_access_key()
        for _ in range(5):  # 36^16 ids: a collision is next to impossible, but cheap to survive
            access_key_id = new_access_key_id()
            if self._insert(access_key_id, user_name, parsed, secret, now):
                return access_key_id, secret
        raise Conflict("could not find a free access key id; try again")

    def secret_for(self, access_key_id: str) -> str | None:
        """The secret of an enabled key; None when the key is unknown or disabled (SigV4's lookup)."""
        row = self._row(access_key_id)
        if row is None or not row["enabled"]:
            return None
        return decrypt_secret(self._master_key, access_key_id, row["secret_ciphertext"])

    def role_of(self, access_key_id: str) -> Role | None:
        """The role of an enabled key; None when the key is unknown or disabled."""
        row = self._row(access_key_id)
        if row is None or not row["enabled"]:
            return None
        return Role(row["role"])

    def get_key(self, access_key_id: str) -> ApiKey:
        row = self._row(access_key_id)
        if row is None:
            raise ResourceNotFound(f"API key {access_key_id} not found", field="AccessKeyId")
        return _api_key(row)

    def list_keys(self) -> list[ApiKey]:
        query = sa.select(api_keys).order_by(api_keys.c.creation_date, api_keys.c.access_key_id)
        with self.engine.connect() as conn:
            return [_api_key(dict(row)) for row in conn.execute(query).mappings()]

    def disable_key(self, access_key_id: str) -> None:
        """Disable a key (idempotent); its requests are refused as UnrecognizedClientException from now on."""
        with self.engine.begin() as conn:
            result = conn.execute(
                api_keys.update().where(api_keys.c.access_key_id == access_key_id).values(enabled=False)
            )
        if result.rowcount == 0:
            raise ResourceNotFound(f"API key {access_key_id} not found", field="AccessKeyId")

    def ensure_admin_from_env(self, env: Mapping[str, str], now: datetime) -> str | None:
        """Create the first admin key from SNAPKEEP_ADMIN_ACCESS_KEY_ID and SNAPKEEP_ADMIN_SECRET_ACCESS_KEY.

        Returns the key id, or None when neither variable is set. Idempotent: a key with that id and secret
        already there is left as it is (a disabled one stays disabled). The same id with another secret or a
        role other than admin is a Conflict: the catalog is never silently changed from the environment.
        """
        key_id = env.get(ENV_ADMIN_ACCESS_KEY_ID, "").strip()
        secret = env.get(ENV_ADMIN_SECRET_ACCESS_KEY, "").strip()
        if not key_id and not secret:
            return None
        if not key_id:
            raise MissingParameterValue(
                f"{ENV_ADMIN_ACCESS_KEY_ID}: must be set when {ENV_ADMIN_SECRET_ACCESS_KEY} is",
                field=ENV_ADMIN_ACCESS_KEY_ID,
            )
        if not secret:
            raise MissingParameterValue(
                f"{ENV_ADMIN_SECRET_ACCESS_KEY}: must be set when {ENV_ADMIN_ACCESS_KEY_ID} is",
                field=ENV_ADMIN_SECRET_ACCESS_KEY,
            )
        if not ACCESS_KEY_ID_PATTERN.fullmatch(key_id):
            raise InvalidParameterValue(
                f"{ENV_ADMIN_ACCESS_KEY_ID}: must be 'SKAK' followed by 16 upper-case letters or digits "
                f"(20 characters), got '{key_id}'",
                field=ENV_ADMIN_ACCESS_KEY_ID,
            )
        if not SECRET_PATTERN.fullmatch(secret):  # never echo the secret
            raise InvalidParameterValue(
                f"{ENV_ADMIN_SECRET_ACCESS_KEY}: must be 40 characters of A-Z, a-z, 0-9, '/' or '+', "
                f"got {len(secret)} characters",
                field=ENV_ADMIN_SECRET_ACCESS_KEY,
            )
        if self._insert(key_id, ADMIN_USER_NAME, Role.ADMIN, secret, now):
            return key_id
        row = self._row(key_id)
        assert row is not None  # the insert collided with it
        if row["role"] != Role.ADMIN:
            raise Conflict(
                f"{ENV_ADMIN_ACCESS_KEY_ID}: API key {key_id} already exists with role {row['role']}, not admin",
                field=ENV_ADMIN_ACCESS_KEY_ID,
            )
        stored = decrypt_secret(self._master_key, key_id, row["secret_ciphertext"])
        if not hmac.compare_digest(stored.encode("ascii"), secret.encode("ascii")):
            raise Conflict(
                f"{ENV_ADMIN_SECRET_ACCESS_KEY}: API key {key_id} already exists with a different secret; the "
                "catalog keeps the secret the key was created with. Set the variable back to that secret, or "
                "bootstrap with a new access key id",
                field=ENV_ADMIN_SECRET_ACCESS_KEY,
            )
        return key_id

    # -- rows ------------------------------------------------------------------------------------------------
    def _insert(self, access_key_id: str, user_name: str, role: Role, secret: str, now: datetime) -> bool:
        """Insert a key; False when the id is taken."""
        values = {
            "access_key_id": access_key_id,
            "user_name": user_name,
            "role": role.value,
            "secret_ciphertext": encrypt_secret(self._master_key, access_key_id, secret),
            "enabled": True,
            "creation_date": now,
        }
        try:
            with self.engine.begin() as conn:
                conn.execute(api_keys.insert().values(**values))
        except IntegrityError:
            return False
        return True

    def _row(self, access_key_id: str) -> dict[str, Any] | None:
        if not ACCESS_KEY_ID_PATTERN.fullmatch(access_key_id):
            return None
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(api_keys).where(api_keys.c.access_key_id == access_key_id)).mappings()
            first = row.first()
        return dict(first) if first is not None else None


def _api_key(row: Mapping[str, Any]) -> ApiKey:
    creation = row["creation_date"]
    assert isinstance(creation, datetime)
    return ApiKey(
        access_key_id=str(row["access_key_id"]),
        user_name=str(row["user_name"]),
        role=Role(str(row["role"])),
        enabled=bool(row["enabled"]),
        creation_date=creation,
    )
