"""The repository master key: 32 random bytes, never stored in the clear, split by HKDF into purpose keys.

Key files under `keys/` each wrap the same master secret, one per way in: a passphrase (through a memory-hard
KDF whose parameters live in the key file, so they can be raised later without touching data) or a KMS key
(envelope encryption: KMS encrypts the secret under an encryption context naming the repository and key file).
Adding a passphrase or a KMS key is writing one more key file; removing one is deleting it. Changing the master
secret itself would mean re-encrypting everything, which this format does not do (as in restic and borg).
"""

from __future__ import annotations

import base64
import json
import os
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from snapkeep.domain.clock import iso_z
from snapkeep.domain.errors import InvalidParameterValue
from snapkeep.imagestore import argon2id
from snapkeep.imagestore.errors import DamagedObject, UnsupportedFormat, WrongPassphrase
from snapkeep.imagestore.format import KEYS_PREFIX

if TYPE_CHECKING:
    from snapkeep.blobstores.base import BlobStore

try:  # cryptography >= 44
    from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
except ImportError:  # pragma: no cover - older cryptography: scrypt only
    Argon2id = None  # type: ignore[assignment,misc]

SECRET_SIZE = 32
REPOSITORY_ID_SIZE = 32
KEY_ID_SIZE = 16
KEY_FILE_VERSION = 1
_WRAP_AAD = b"snapkeep/v1/key-file\x00"
PURPOSES = {
    "blob": b"snapkeep/v1/blob-encryption",
    "chunk-id": b"snapkeep/v1/chunk-id",
}
# Refuse key files that would make opening take absurd memory or time (a damaged or hostile key file).
MAX_KDF_MEMORY_KIB = argon2id.MAX_MEMORY_KIB
MAX_KDF_ITERATIONS = argon2id.MAX_ITERATIONS


def argon2_available() -> bool:
    return Argon2id is not None or argon2id.available()


@dataclass(frozen=True)
class KdfParams:
    """A passphrase KDF and its cost. Argon2id (RFC 9106's second recommendation: 3 passes over 64 MiB) where
    available, else scrypt."""

    algorithm: Literal["argon2id", "scrypt"]
    iterations: int = 3
    """argon2id: passes over memory."""
    memory_kib: int = 64 * 1024
    """argon2id: memory in KiB; scrypt: 128 * r * n bytes."""
    lanes: int = 4
    """argon2id: parallelism, RFC 9106's p=4. A guess costs an attacker the same memory and passes whatever the
    lanes, but libargon2 fills them on parallel threads: on 2 cores an unlock takes about 0.12 s with 4 lanes
    against 0.17 s with 1, and every command waits for it."""
    n: int = 2**16
    r: int = 8
    p: int = 1

    @staticmethod
    def default() -> KdfParams:
        return KdfParams("argon2id") if argon2_available() else KdfParams("scrypt")

    def to_json(self, salt: bytes) -> dict[str, Any]:
        if self.algorithm == "argon2id":
            return {"algorithm": "argon2id", "salt": _b64(salt), "iterations": self.iterations,
                    "memory_kib": self.memory_kib, "lanes": self.lanes}
        return {"algorithm": "scrypt", "salt": _b64(salt), "n": self.n, "r": self.r, "p": self.p}

    @staticmethod
    def from_json(data: Any, where: str) -> tuple[KdfParams, bytes]:
        try:
            algorithm = data["algorithm"]
            salt = _unb64(data["salt"])
            if algorithm == "argon2id":
                params = KdfParams("argon2id", iterations=int(data["iterations"]), memory_kib=int(data["memory_kib"]),
                                   lanes=int(data["lanes"]))
            elif algorithm == "scrypt":
                params = KdfParams("scrypt", n=int(data["n"]), r=int(data["r"]), p=int(data["p"]))
            else:
                raise UnsupportedFormat(f"{where}: unknown KDF {algorithm!r} (this Snapkeep knows argon2id, scrypt)")
        except (KeyError, TypeError, ValueError) as exc:
            raise DamagedObject(where, f"KDF parameters are not readable: {exc}") from None
        params.check(where)
        return params, salt

    def check(self, where: str = "kdf") -> None:
        if self.algorithm == "argon2id":
            if not argon2id.within_bounds(self.iterations, self.memory_kib, self.lanes):
                raise InvalidParameterValue(
                    f"{where}: argon2id needs 1..{MAX_KDF_ITERATIONS} iterations, 1..{argon2id.MAX_LANES} lanes and "
                    f"8*lanes..{MAX_KDF_MEMORY_KIB} KiB of memory; got {self.iterations}, {self.lanes}, "
                    f"{self.memory_kib}",
                    field="kdf",
                )
        elif self.algorithm == "scrypt":
            if not (self.n >= 2 and self.n & (self.n - 1) == 0 and 1 <= self.r <= 64 and 1 <= self.p <= 16
                    and 128 * self.r * self.n <= MAX_KDF_MEMORY_KIB * 1024):
                raise InvalidParameterValue(
                    f"{where}: scrypt needs n a power of two, r 1..64, p 1..16 and 128*r*n at most "
                    f"{MAX_KDF_MEMORY_KIB} KiB; got n={self.n} r={self.r} p={self.p}",
                    field="kdf",
                )
        else:
            raise InvalidParameterValue(f"{where}: algorithm must be argon2id or scrypt, got {self.algorithm!r}",
                                        field="kdf")

    def derive(self, passphrase: str, salt: bytes) -> bytes:
        secret = passphrase.encode("utf-8")
        if self.algorithm == "argon2id":
            if argon2id.available():
                return argon2id.derive(secret, salt, iterations=self.iterations, memory_kib=self.memory_kib,
                                       lanes=self.lanes)
            if Argon2id is None:
                raise UnsupportedFormat("this key file uses argon2id, which neither libargon2 (argon2-cffi-bindings) "
                                        "nor the installed cryptography provides")
            return bytes(Argon2id(salt=salt, length=32, iterations=self.iterations, lanes=self.lanes,
                                  memory_cost=self.memory_kib).derive(secret))
        return bytes(Scrypt(salt=salt, length=32, n=self.n, r=self.r, p=self.p).derive(secret))


class MasterKey:
    """The master secret and the keys derived from it: one per purpose, so no key is ever used for two jobs."""

    def __init__(self, secret: bytes, repository_id: bytes) -> None:
        if len(secret) != SECRET_SIZE or len(repository_id) != REPOSITORY_ID_SIZE:
            raise ValueError("master secret and repository id must be 32 bytes each")
        self.secret = secret
        self.repository_id = repository_id
        self.blob_key = self.derive("blob")
        self.chunk_id_key = self.derive("chunk-id")

    @staticmethod
    def generate() -> MasterKey:
        return MasterKey(os.urandom(SECRET_SIZE), os.urandom(REPOSITORY_ID_SIZE))

    def derive(self, purpose: str) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=self.repository_id, info=PURPOSES[purpose]).derive(
            self.secret
        )


@dataclass(frozen=True)
class KeyContext:
    """What a wrapped secret is bound to: the repository and the key file's own id."""

    repository_id: bytes
    key_id: str

    def aad(self) -> bytes:
        return _WRAP_AAD + self.repository_id + self.key_id.encode("ascii")

    def encryption_context(self) -> dict[str, str]:
        return {"snapkeep:repository": self.repository_id.hex(), "snapkeep:key": self.key_id}


class KeyWrapping(Protocol):
    """One way to protect the master secret in a key file: a passphrase, a KMS key, ..."""

    @property
    def kind(self) -> str: ...

    def wrap(self, secret: bytes, context: KeyContext) -> dict[str, Any]:
        """The fields this kind stores in the key file."""
        ...

    def unwrap(self, fields: dict[str, Any], context: KeyContext) -> bytes:
        """The secret; WrongPassphrase when this passphrase or key does not open it."""
        ...


class PrecomputedKdf(Protocol):
    """An Argon2id derivation of this passphrase made ahead of time (cli/early_unlock.py starts one before the
    command has even loaded)."""

    def argon2id_key(self, salt: bytes, iterations: int, memory_kib: int, lanes: int) -> bytes | None:
        """The key derived with exactly this salt and these parameters (waiting for it), else None."""
        ...


class PassphraseKey:
    def __init__(self, passphrase: str, kdf: KdfParams | None = None, *,
                 precomputed: PrecomputedKdf | None = None) -> None:
        if not isinstance(passphrase, str) or not passphrase:
            raise InvalidParameterValue("passphrase: must not be empty", field="passphrase")
        self._passphrase = passphrase
        self._kdf = kdf or KdfParams.default()
        self._kdf.check()
        self._precomputed = precomputed

    @property
    def kind(self) -> str:
        return "passphrase"

    def wrap(self, secret: bytes, context: KeyContext) -> dict[str, Any]:
        salt, nonce = os.urandom(16), os.urandom(12)
        wrapping_key = self._kdf.derive(self._passphrase, salt)
        wrapped = AESGCM(wrapping_key).encrypt(nonce, secret, context.aad())
        return {"kdf": self._kdf.to_json(salt), "nonce": _b64(nonce), "wrapped": _b64(wrapped)}

    def unwrap(self, fields: dict[str, Any], context: KeyContext) -> bytes:
        where = f"keys/{context.key_id}"
        params, salt = KdfParams.from_json(fields.get("kdf"), where)
        try:
            nonce, wrapped = _unb64(fields["nonce"]), _unb64(fields["wrapped"])
        except (KeyError, TypeError, ValueError):
            raise DamagedObject(where, "nonce or wrapped secret missing or not base64") from None
        try:
            return AESGCM(self._wrapping_key(params, salt)).decrypt(nonce, wrapped, context.aad())
        except (InvalidTag, ValueError):
            raise WrongPassphrase(f"{where}: the passphrase does not open this key (or the key file was changed)") \
                from None

    def _wrapping_key(self, params: KdfParams, salt: bytes) -> bytes:
        """The KDF's output for a key file: the precomputed one when it was made with this very salt and these
        parameters (the output depends on nothing else but the passphrase), else derived now."""
        if self._precomputed is not None and params.algorithm == "argon2id":
            key = self._precomputed.argon2id_key(salt, params.iterations, params.memory_kib, params.lanes)
            if key is not None:
                return key
        return params.derive(self._passphrase, salt)


class KmsClient(Protocol):
    """The two calls of a boto3 KMS client the KMS key file needs."""

    def encrypt(self, *, KeyId: str, Plaintext: bytes, EncryptionContext: dict[str, str]) -> dict[str, Any]: ...

    def decrypt(self, *, CiphertextBlob: bytes, EncryptionContext: dict[str, str], KeyId: str) -> dict[str, Any]: ...


def kms_key_region(key_id: str) -> str | None:
    """The region a KMS key ARN names; None for a key id or alias (the client's own region then)."""
    parts = key_id.split(":")
    return parts[3] if key_id.startswith("arn:") and len(parts) > 3 and parts[3] else None


class KmsKey:
    """Envelope encryption: KMS encrypts the master secret, bound to the repository by the encryption context."""

    def __init__(self, client: KmsClient, key_id: str) -> None:
        if not key_id:
            raise InvalidParameterValue("kms_key_id: must name a KMS key (id, ARN or alias)", field="kms_key_id")
        self._client = client
        self._key_id = key_id

    @property
    def kind(self) -> str:
        return "kms"

    def wrap(self, secret: bytes, context: KeyContext) -> dict[str, Any]:
        answer = self._client.encrypt(KeyId=self._key_id, Plaintext=secret,
                                      EncryptionContext=context.encryption_context())
        return {"kms_key_id": str(answer.get("KeyId", self._key_id)), "wrapped": _b64(answer["CiphertextBlob"])}

    def unwrap(self, fields: dict[str, Any], context: KeyContext) -> bytes:
        where = f"keys/{context.key_id}"
        try:
            blob = _unb64(fields["wrapped"])
            key_id = str(fields["kms_key_id"])
        except (KeyError, TypeError, ValueError):
            raise DamagedObject(where, "KMS key id or wrapped secret missing or not base64") from None
        try:
            answer = self._client.decrypt(CiphertextBlob=blob, EncryptionContext=context.encryption_context(),
                                          KeyId=key_id)
        except Exception as exc:  # the client's own refusal (wrong key, context, access): this key does not open it
            raise WrongPassphrase(f"{where}: KMS key {key_id} did not decrypt the master secret: {exc}") from exc
        secret = bytes(answer["Plaintext"])
        if len(secret) != SECRET_SIZE:
            raise DamagedObject(where, f"KMS returned {len(secret)} bytes, not a {SECRET_SIZE}-byte secret")
        return secret


@dataclass(frozen=True)
class KeyFile:
    key_id: str
    repository_id: bytes
    kind: str
    created: str
    fields: dict[str, Any]

    @property
    def context(self) -> KeyContext:
        return KeyContext(self.repository_id, self.key_id)


def new_key_id() -> str:
    return os.urandom(KEY_ID_SIZE).hex()


def write_key_file(master: MasterKey, wrapping: KeyWrapping, *, now: datetime, key_id: str | None = None,
                   hostname: str = "") -> tuple[KeyFile, bytes]:
    key_id = key_id or new_key_id()
    context = KeyContext(master.repository_id, key_id)
    fields = wrapping.wrap(master.secret, context)
    record = KeyFile(key_id, master.repository_id, wrapping.kind, iso_z(now), fields)
    body = {"version": KEY_FILE_VERSION, "repository": master.repository_id.hex(), "id": key_id,
            "kind": wrapping.kind, "created": record.created, "hostname": hostname, **fields}
    return record, json.dumps(body, indent=1, sort_keys=True).encode("utf-8") + b"\n"


def read_key_file(raw: bytes, where: str) -> KeyFile:
    try:
        body = json.loads(raw)
        version = int(body["version"])
        if version > KEY_FILE_VERSION:
            raise UnsupportedFormat(f"{where}: key file version {version}; this Snapkeep reads {KEY_FILE_VERSION}")
        repository_id = bytes.fromhex(body["repository"])
        key_id = str(body["id"])
        kind = str(body["kind"])
        created = str(body.get("created", ""))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DamagedObject(where, f"not a readable key file: {exc}") from None
    if len(repository_id) != REPOSITORY_ID_SIZE or where.rsplit("/", 1)[-1] != key_id:
        raise DamagedObject(where, "its repository id or key id does not match its name")
    fields = {k: v for k, v in body.items() if k not in ("version", "repository", "id", "kind", "created")}
    return KeyFile(key_id, repository_id, kind, created, fields)


def unwrap_master(key_file: KeyFile, wrapping: KeyWrapping) -> MasterKey:
    if key_file.kind != wrapping.kind:
        raise WrongPassphrase(f"keys/{key_file.key_id} is a {key_file.kind} key, not a {wrapping.kind} key")
    secret = wrapping.unwrap(key_file.fields, key_file.context)
    if len(secret) != SECRET_SIZE:
        raise DamagedObject(f"keys/{key_file.key_id}", "the wrapped secret has the wrong length")
    return MasterKey(secret, key_file.repository_id)


def unlock(store: BlobStore, key: KeyWrapping) -> MasterKey:
    """The master key from the first key file (by name) of `key`'s kind that `key` opens."""
    master: MasterKey | None = None
    refusals = []
    for name in sorted(info.name for info in store.list(KEYS_PREFIX)):
        try:
            key_file = read_key_file(store.get(name), name)
            if key_file.kind != key.kind:
                continue
            master = unwrap_master(key_file, key)
            break
        except (WrongPassphrase, DamagedObject) as exc:
            refusals.append(exc.message)
    if master is None:
        raise WrongPassphrase(f"{store.location}: no {key.kind} key file opens with the key given"
                              + (f" ({'; '.join(refusals)})" if refusals else ""))
    return master


class Unlocking:
    """`unlock` started in a background thread, so a command can load its code and read its input while the
    memory-hard KDF runs (the KDF releases the GIL): a small incremental then costs the KDF, not the KDF plus
    everything before it. `master()` waits for it and raises what `unlock` raised."""

    def __init__(self, store: BlobStore, key: KeyWrapping) -> None:
        self._master: MasterKey | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(store, key), name="snapkeep-unlock", daemon=True)
        self._thread.start()

    def _run(self, store: BlobStore, key: KeyWrapping) -> None:
        try:
            self._master = unlock(store, key)
        except BaseException as exc:  # handed to the waiting thread by master()
            self._error = exc

    def master(self) -> MasterKey:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._master is not None
        return self._master


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any) -> bytes:
    if not isinstance(text, str):
        raise TypeError("expected a base64 string")
    return base64.b64decode(text, validate=True)
