"""Argon2id (RFC 9106, version 0x13) through libargon2, with nothing imported but its bindings.

The passphrase KDF is the longest step of a small backup, and the CLI starts it before the rest of the program
loads (cli/early_unlock.py). That only pays if what the KDF needs loads at once: the argon2-cffi-bindings package
loads in about 1 ms, where argon2-cffi's own wrapper first loads dataclasses, inspect and typing (about 25 ms).
libargon2 fills the lanes on threads of its own, and cffi releases the GIL for the call, so the rest of the
program loads meanwhile.
"""

from __future__ import annotations

try:
    from _argon2_cffi_bindings import ffi, lib
except ImportError:  # pragma: no cover - a dependency; keys.py falls back to cryptography's Argon2id
    ffi = lib = None

VERSION = 0x13
MAX_ITERATIONS = 64
MAX_LANES = 64
MAX_MEMORY_KIB = 4 * 1024 * 1024
"""A key file asking for more is damaged or hostile: opening it would take absurd time or memory."""


def available() -> bool:
    return lib is not None


def within_bounds(iterations: int, memory_kib: int, lanes: int) -> bool:
    """Parameters Snapkeep agrees to run: 1..64 passes and lanes, 8 KiB per lane up to 4 GiB in all."""
    return 1 <= iterations <= MAX_ITERATIONS and 1 <= lanes <= MAX_LANES and 8 * lanes <= memory_kib <= MAX_MEMORY_KIB


def derive(secret: bytes, salt: bytes, *, iterations: int, memory_kib: int, lanes: int, length: int = 32) -> bytes:
    """The raw Argon2id hash of `secret` (no encoded string, no secret key, no associated data)."""
    if lib is None:
        raise RuntimeError("libargon2 (the argon2-cffi-bindings package) is not installed")
    out = ffi.new("uint8_t[]", length)
    code = lib.argon2_hash(iterations, memory_kib, lanes, ffi.new("uint8_t[]", secret), len(secret),
                           ffi.new("uint8_t[]", salt), len(salt), out, length, ffi.NULL, 0, lib.Argon2_id, VERSION)
    if code != lib.ARGON2_OK:
        raise ValueError(f"argon2id: {ffi.string(lib.argon2_error_message(code)).decode()}")
    return bytes(ffi.buffer(out, length))
