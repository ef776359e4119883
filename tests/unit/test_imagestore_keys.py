"""The master key, its derived keys, and key files: passphrase (argon2id or scrypt) and KMS (a test double)."""

from __future__ import annotations

import base64
import json
import os
from datetime import UTC, datetime
from typing import Any

import pytest

from snapkeep.blobstores.local import LocalBlobStore
from snapkeep.domain.errors import InvalidParameterValue
from snapkeep.imagestore import argon2id
from snapkeep.imagestore.errors import DamagedObject, WrongPassphrase
from snapkeep.imagestore.keys import (
    KdfParams,
    KmsKey,
    MasterKey,
    PassphraseKey,
    Unlocking,
    argon2_available,
    read_key_file,
    unlock,
    unwrap_master,
    write_key_file,
)

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
FAST = {
    "argon2id": KdfParams("argon2id", iterations=1, memory_kib=64, lanes=1),
    "scrypt": KdfParams("scrypt", n=2**10, r=8, p=1),
}


def test_derived_keys_are_separate_and_depend_on_secret_and_repository() -> None:
    master = MasterKey.generate()
    assert master.blob_key != master.chunk_id_key
    again = MasterKey(master.secret, master.repository_id)
    assert (again.blob_key, again.chunk_id_key) == (master.blob_key, master.chunk_id_key)
    other_repo = MasterKey(master.secret, os.urandom(32))
    assert other_repo.blob_key != master.blob_key
    assert other_repo.chunk_id_key != master.chunk_id_key


def test_argon2id_is_the_default_when_available() -> None:
    assert KdfParams.default().algorithm == ("argon2id" if argon2_available() else "scrypt")


def test_argon2id_defaults_are_rfc_9106s_second_recommendation() -> None:
    params = KdfParams("argon2id")
    assert (params.iterations, params.memory_kib, params.lanes) == (3, 64 * 1024, 4)


def test_libargon2_gives_the_reference_implementations_known_answer() -> None:
    """phc-winner-argon2's test.c: Argon2id v1.3, t=2, m=64 MiB, p=1, "password" salted with "somesalt"."""
    assert argon2id.derive(b"password", b"somesalt", iterations=2, memory_kib=65536, lanes=1).hex() == \
        "09316115d5cf24ed5a15a31a3ba326e5cf32edc24702987c02b6566f61913cf7"


def test_libargon2_refuses_what_it_cannot_derive() -> None:
    with pytest.raises(ValueError, match="argon2id: Salt is too short"):
        argon2id.derive(b"pass", b"salt", iterations=1, memory_kib=64, lanes=1)


@pytest.mark.parametrize(("iterations", "memory_kib", "lanes", "within"), [
    (3, 65536, 4, True), (1, 8, 1, True), (64, 4 * 1024 * 1024, 64, True),
    (0, 65536, 4, False), (65, 65536, 4, False), (3, 31, 4, False), (3, 4 * 1024 * 1024 + 1, 4, False),
    (3, 65536, 0, False), (3, 65536, 65, False),
])
def test_argon2id_bounds(iterations: int, memory_kib: int, lanes: int, within: bool) -> None:
    assert argon2id.within_bounds(iterations, memory_kib, lanes) is within
    if not within:
        with pytest.raises(InvalidParameterValue, match="argon2id needs"):
            KdfParams("argon2id", iterations=iterations, memory_kib=memory_kib, lanes=lanes).check()


@pytest.mark.parametrize("lanes", [1, 4])
def test_libargon2_and_cryptography_derive_the_same_key(lanes: int) -> None:
    """Either implementation opens the other's key files: the KDF uses libargon2 where its bindings are installed
    and cryptography's Argon2id otherwise."""
    from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

    for passphrase, salt in (("pass", bytes(16)), ("correct horse ✓", os.urandom(16))):
        expected = Argon2id(salt=salt, length=32, iterations=2, lanes=lanes, memory_cost=1024).derive(
            passphrase.encode())
        assert argon2id.derive(passphrase.encode(), salt, iterations=2, memory_kib=1024, lanes=lanes) == expected
        assert KdfParams("argon2id", iterations=2, memory_kib=1024, lanes=lanes).derive(passphrase, salt) == expected


class _Precomputed:
    """A PrecomputedKdf holding one derivation, counting how often it is asked."""

    def __init__(self, salt: bytes, params: KdfParams, key: bytes) -> None:
        self.made = (salt, params.iterations, params.memory_kib, params.lanes)
        self.key = key
        self.asked = 0

    def argon2id_key(self, salt: bytes, iterations: int, memory_kib: int, lanes: int) -> bytes | None:
        self.asked += 1
        return self.key if (salt, iterations, memory_kib, lanes) == self.made else None


def test_a_precomputed_key_is_used_only_for_its_salt_and_parameters(monkeypatch: pytest.MonkeyPatch) -> None:
    master = MasterKey.generate()
    params = FAST["argon2id"]
    record, body = write_key_file(master, PassphraseKey("pass", params), now=NOW)
    key_file = read_key_file(body, f"keys/{record.key_id}")
    salt = base64.b64decode(key_file.fields["kdf"]["salt"])
    precomputed = _Precomputed(salt, params, params.derive("pass", salt))
    derived: list[bytes] = []
    real_derive = KdfParams.derive
    monkeypatch.setattr(KdfParams, "derive", lambda self, p, s: derived.append(s) or real_derive(self, p, s))

    assert unwrap_master(key_file, PassphraseKey("pass", precomputed=precomputed)).secret == master.secret
    assert (precomputed.asked, derived) == (1, [])  # the precomputed key opened it: no derivation

    other = _Precomputed(os.urandom(16), params, b"x" * 32)  # made for another key file
    assert unwrap_master(key_file, PassphraseKey("pass", precomputed=other)).secret == master.secret
    assert (other.asked, derived) == (1, [salt])  # not used: derived from the passphrase instead


def test_key_file_parameters_decide_the_derivation_not_the_defaults() -> None:
    """A key file written with p=1 (the earlier default) still opens, and lanes change the derived key."""
    salt = os.urandom(16)
    one, four = (KdfParams("argon2id", iterations=1, memory_kib=256, lanes=lanes) for lanes in (1, 4))
    assert one.derive("pass", salt) != four.derive("pass", salt)
    master = MasterKey.generate()
    record, body = write_key_file(master, PassphraseKey("pass", kdf=one), now=NOW)
    key_file = read_key_file(body, f"keys/{record.key_id}")
    assert key_file.fields["kdf"]["lanes"] == 1
    again = unwrap_master(key_file, PassphraseKey("pass"))
    assert again.secret == master.secret


@pytest.mark.parametrize("algorithm", ["argon2id", "scrypt"])
def test_passphrase_key_file_round_trip(algorithm: str) -> None:
    master = MasterKey.generate()
    record, body = write_key_file(master, PassphraseKey("correct horse", FAST[algorithm]), now=NOW)
    stored = json.loads(body)
    assert stored["kdf"]["algorithm"] == algorithm
    assert stored["repository"] == master.repository_id.hex()
    assert master.secret.hex() not in body.decode()
    key_file = read_key_file(body, f"keys/{record.key_id}")
    opened = unwrap_master(key_file, PassphraseKey("correct horse"))
    assert opened.secret == master.secret
    assert opened.repository_id == master.repository_id


def test_wrong_passphrase_is_refused() -> None:
    master = MasterKey.generate()
    record, body = write_key_file(master, PassphraseKey("right", FAST["argon2id"]), now=NOW)
    with pytest.raises(WrongPassphrase, match="does not open"):
        unwrap_master(read_key_file(body, f"keys/{record.key_id}"), PassphraseKey("wrong"))


def test_key_file_bound_to_its_repository_and_name() -> None:
    master = MasterKey.generate()
    record, body = write_key_file(master, PassphraseKey("pw", FAST["scrypt"]), now=NOW)
    moved = json.loads(body)
    moved["repository"] = os.urandom(32).hex()
    with pytest.raises(WrongPassphrase):
        unwrap_master(read_key_file(json.dumps(moved).encode(), f"keys/{record.key_id}"), PassphraseKey("pw"))
    with pytest.raises(DamagedObject, match="does not match its name"):
        read_key_file(body, "keys/" + "0" * 32)


def test_flipped_wrapped_secret_or_garbage_is_refused() -> None:
    master = MasterKey.generate()
    record, body = write_key_file(master, PassphraseKey("pw", FAST["scrypt"]), now=NOW)
    changed = json.loads(body)
    wrapped = bytearray(base64.b64decode(changed["wrapped"]))
    wrapped[3] ^= 1
    changed["wrapped"] = base64.b64encode(bytes(wrapped)).decode()
    with pytest.raises(WrongPassphrase):
        unwrap_master(read_key_file(json.dumps(changed).encode(), f"keys/{record.key_id}"), PassphraseKey("pw"))
    with pytest.raises(DamagedObject):
        read_key_file(b"{not json", f"keys/{record.key_id}")


def test_hostile_kdf_parameters_are_refused_before_deriving() -> None:
    master = MasterKey.generate()
    record, body = write_key_file(master, PassphraseKey("pw", FAST["argon2id"]), now=NOW)
    greedy = json.loads(body)
    greedy["kdf"]["memory_kib"] = 64 * 1024 * 1024
    with pytest.raises(InvalidParameterValue, match="KiB of memory"):
        unwrap_master(read_key_file(json.dumps(greedy).encode(), f"keys/{record.key_id}"), PassphraseKey("pw"))


def test_passphrase_and_params_validation() -> None:
    with pytest.raises(InvalidParameterValue, match="passphrase"):
        PassphraseKey("")
    with pytest.raises(InvalidParameterValue, match="power of two"):
        PassphraseKey("x", KdfParams("scrypt", n=1000))


class FakeKms:
    """Behaves like KMS Encrypt/Decrypt: the ciphertext is bound to the key and the encryption context."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self._store: dict[bytes, tuple[str, dict[str, str], bytes]] = {}

    def encrypt(self, *, KeyId: str, Plaintext: bytes, EncryptionContext: dict[str, str]) -> dict[str, Any]:
        self.calls.append("Encrypt")
        blob = os.urandom(48)
        self._store[blob] = (KeyId, dict(EncryptionContext), Plaintext)
        return {"KeyId": f"arn:aws:kms:us-east-1:123456789012:key/{KeyId}", "CiphertextBlob": blob}

    def decrypt(self, *, CiphertextBlob: bytes, EncryptionContext: dict[str, str], KeyId: str) -> dict[str, Any]:
        self.calls.append("Decrypt")
        key_id, context, plaintext = self._store[CiphertextBlob]
        if context != EncryptionContext or not KeyId.endswith(key_id):
            raise RuntimeError("InvalidCiphertextException")
        return {"Plaintext": plaintext}


def test_kms_key_file_round_trip_and_context_binding() -> None:
    kms = FakeKms()
    master = MasterKey.generate()
    record, body = write_key_file(master, KmsKey(kms, "k-1"), now=NOW)
    stored = json.loads(body)
    assert stored["kind"] == "kms"
    assert stored["kms_key_id"].endswith("k-1")
    opened = unwrap_master(read_key_file(body, f"keys/{record.key_id}"), KmsKey(kms, "k-1"))
    assert opened.secret == master.secret
    assert kms.calls == ["Encrypt", "Decrypt"]
    moved = dict(stored, repository=os.urandom(32).hex())
    with pytest.raises(WrongPassphrase, match="did not decrypt"):
        unwrap_master(read_key_file(json.dumps(moved).encode(), f"keys/{record.key_id}"), KmsKey(kms, "k-1"))


def test_a_passphrase_does_not_try_a_kms_key_file() -> None:
    master = MasterKey.generate()
    record, body = write_key_file(master, KmsKey(FakeKms(), "k"), now=NOW)
    with pytest.raises(WrongPassphrase, match="is a kms key"):
        unwrap_master(read_key_file(body, f"keys/{record.key_id}"), PassphraseKey("pw"))


def test_unlock_tries_key_files_in_name_order_and_unlocking_runs_it_in_the_background(tmp_path: Any) -> None:
    store = LocalBlobStore(tmp_path)
    master = MasterKey.generate()
    for passphrase, key_id in (("first", "a" * 32), ("second", "b" * 32)):
        _, body = write_key_file(master, PassphraseKey(passphrase, FAST["argon2id"]), now=NOW, key_id=key_id)
        store.put(f"keys/{key_id}", body)
    assert unlock(store, PassphraseKey("second")).secret == master.secret
    unlocking = Unlocking(store, PassphraseKey("first"))
    opened = unlocking.master()
    assert (opened.secret, opened.repository_id) == (master.secret, master.repository_id)
    with pytest.raises(WrongPassphrase, match="no passphrase key file opens") as refused:
        Unlocking(store, PassphraseKey("third")).master()  # raised in the caller's thread, naming each refusal
    assert refused.value.message.count("does not open") == 2
