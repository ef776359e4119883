"""Block tokens and page tokens for the EBS direct APIs.

Both are opaque to clients, as in AWS: base64 of (index, expiry) plus an HMAC over what they are valid for.
Block tokens last seven days and page tokens sixty minutes, as the EBS direct API FAQ says.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import struct
import time
from datetime import UTC, datetime

BLOCK_TOKEN_SECONDS = 7 * 24 * 3600
PAGE_TOKEN_SECONDS = 60 * 60

_SECRET = secrets.token_bytes(32)
_LAYOUT = struct.Struct(">QQ")
_MAC_BYTES = 16

wall_clock = time.time


def _mac(purpose: str, subject: str, index: int, expiry: int) -> bytes:
    message = f"{purpose}\n{subject}\n{index}\n{expiry}".encode()
    return hmac.new(_SECRET, message, hashlib.sha256).digest()[:_MAC_BYTES]


def _encode(purpose: str, subject: str, index: int, lifetime: int) -> tuple[str, int]:
    expiry = int(wall_clock()) + lifetime
    raw = _LAYOUT.pack(index, expiry) + _mac(purpose, subject, index, expiry)
    return base64.b64encode(raw).decode("ascii"), expiry


def _decode(purpose: str, subject: str, token: str) -> int | None:
    try:
        raw = base64.b64decode(token.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return None
    if len(raw) != _LAYOUT.size + _MAC_BYTES:
        return None
    index, expiry = _LAYOUT.unpack(raw[: _LAYOUT.size])
    if not hmac.compare_digest(raw[_LAYOUT.size :], _mac(purpose, subject, index, expiry)):
        return None
    if expiry < wall_clock():
        return None
    return int(index)


def block_token(snapshot_id: str, index: int) -> str:
    return _encode("block", snapshot_id, index, BLOCK_TOKEN_SECONDS)[0]


def block_token_expiry() -> datetime:
    """The ExpiryTime reported beside block tokens minted now."""
    return datetime.fromtimestamp(int(wall_clock()) + BLOCK_TOKEN_SECONDS, tz=UTC)


def check_block_token(snapshot_id: str, index: int, token: str) -> bool:
    """True if `token` was minted for this snapshot and block index and has not expired."""
    return _decode("block", snapshot_id, token) == index


def page_token(listing: str, next_index: int) -> str:
    """A NextToken that resumes `listing` (e.g. 'blocks:snap-1') at block index `next_index`."""
    return _encode("page", listing, next_index, PAGE_TOKEN_SECONDS)[0]


def read_page_token(listing: str, token: str) -> int | None:
    """The block index a NextToken resumes at, or None if it is not a valid token for `listing`."""
    return _decode("page", listing, token)
