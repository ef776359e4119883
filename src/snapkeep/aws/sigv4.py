"""AWS Signature Version 4 for the requests Snapkeep sends without boto3 (the EBS block path).

botocore's SigV4Auth costs about 0.18 ms per request, mostly in generic header handling and in deriving the
signing key anew each time. This signer produces the same Authorization header byte for byte (the unit tests
compare them over many requests) for about a sixth of that: the signing key is derived once per secret, day,
region and service, and the caller hands over the payload hash it already has (for a block, the SHA-256 it
computes for x-amz-Checksum anyway).
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import quote

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"

# Headers botocore never signs (hop-by-hop, tracing, user agent): signing them would break behind proxies.
UNSIGNED_HEADERS = frozenset({
    "baggage", "connection", "expect", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
    "traceparent", "tracestate", "trailer", "transfer-encoding", "upgrade", "user-agent", "x-amzn-trace-id",
})

_KEY_CACHE_SIZE = 16


@dataclass(frozen=True)
class Credentials:
    """Frozen credentials: a session token comes with assumed-role (temporary) credentials."""

    access_key: str
    secret_key: str
    token: str | None = None

    def __repr__(self) -> str:  # never print the secret
        return f"Credentials(access_key={self.access_key!r}, token={'yes' if self.token else 'no'})"


def quote_query_value(value: str) -> str:
    """How SigV4 (and botocore's serializer) percent-encode a query key or value: unreserved characters kept."""
    return quote(value, safe="-_.~")


def canonical_query(params: Mapping[str, object] | Iterable[tuple[str, object]]) -> str:
    """The canonical query string, which is also the query to send: encoded pairs sorted by key, then value."""
    items = params.items() if isinstance(params, Mapping) else params
    pairs = sorted((quote_query_value(str(key)), quote_query_value(str(value))) for key, value in items)
    return "&".join(f"{key}={value}" for key, value in pairs)


def canonical_path(path: str) -> str:
    """The URI path as botocore signs it for every service but S3: dot segments and empty segments removed, then
    percent-encoded once more (so an already encoded `%2F` is signed as `%252F`)."""
    segments: list[str] = []
    for segment in path.split("/"):
        if not segment or segment == ".":
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    normalized = "/" + "/".join(segments)
    if path.endswith("/") and segments:
        normalized += "/"
    return quote(normalized, safe="/~")


def amz_date(epoch: float) -> str:
    """`20261122T120000Z` for a time.time() value."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(epoch))


class SigV4Signer:
    """Signs requests to one service in one region. Thread-safe; keep one per (service, region)."""

    def __init__(self, service: str, region: str) -> None:
        self.service = service
        self.region = region
        self._lock = threading.Lock()
        self._keys: dict[tuple[str, str], bytes] = {}
        self._scope_tail = f"/{region}/{service}/aws4_request"

    def signing_key(self, secret_key: str, date: str) -> bytes:
        """HMAC chain AWS4+secret -> date -> region -> service -> aws4_request, cached: it changes once a day."""
        cache_key = (secret_key, date)
        key = self._keys.get(cache_key)
        if key is not None:
            return key
        key = _hmac(("AWS4" + secret_key).encode("utf-8"), date)
        key = _hmac(key, self.region)
        key = _hmac(key, self.service)
        key = _hmac(key, "aws4_request")
        with self._lock:
            if len(self._keys) >= _KEY_CACHE_SIZE:
                self._keys.clear()
            self._keys[cache_key] = key
        return key

    def sign(
        self,
        credentials: Credentials,
        method: str,
        host: str,
        path: str,
        query: str,
        headers: Mapping[str, str],
        payload_hash: str,
        *,
        now: float | None = None,
    ) -> dict[str, str]:
        """The headers to add to the request: X-Amz-Date, X-Amz-Security-Token (temporary credentials) and
        Authorization.

        `host` is the Host header as sent (port included unless it is the scheme's default), `path` the URI path
        as sent (already percent-encoded), `query` the query as sent, built with canonical_query. Every header in
        `headers` is signed except the hop-by-hop ones botocore leaves out. `payload_hash` is the hex SHA-256 of
        the body (EMPTY_SHA256 for none) or UNSIGNED_PAYLOAD, as the operation allows.
        """
        timestamp = amz_date(time.time() if now is None else now)
        added = {"X-Amz-Date": timestamp}
        if credentials.token:
            added["X-Amz-Security-Token"] = credentials.token
        signed: dict[str, str] = {}
        for name, value in headers.items():
            lower = name.lower()
            if lower in UNSIGNED_HEADERS or lower in ("x-amz-date", "x-amz-security-token", "authorization"):
                continue
            text = " ".join(value.split())
            signed[lower] = f"{signed[lower]},{text}" if lower in signed else text
        signed.setdefault("host", host)
        signed["x-amz-date"] = timestamp
        if credentials.token:
            signed["x-amz-security-token"] = " ".join(credentials.token.split())
        names = sorted(signed)
        signed_headers = ";".join(names)
        canonical = "\n".join((
            method.upper(),
            canonical_path(path),
            _sorted_query(query),
            "".join(f"{name}:{signed[name]}\n" for name in names),
            signed_headers,
            payload_hash,
        ))
        date = timestamp[:8]
        scope = date + self._scope_tail
        string_to_sign = "\n".join((
            ALGORITHM, timestamp, scope, hashlib.sha256(canonical.encode("utf-8")).hexdigest(),
        ))
        signature = hmac.new(self.signing_key(credentials.secret_key, date), string_to_sign.encode("utf-8"),
                             hashlib.sha256).hexdigest()
        added["Authorization"] = (f"{ALGORITHM} Credential={credentials.access_key}/{scope}, "
                                  f"SignedHeaders={signed_headers}, Signature={signature}")
        return added


def _sorted_query(query: str) -> str:
    """An already encoded query in canonical order (what botocore does with the query of a prepared URL)."""
    if not query:
        return ""
    pairs = []
    for pair in query.split("&"):
        key, _, value = pair.partition("=")
        pairs.append((key, value))
    return "&".join(f"{key}={value}" for key, value in sorted(pairs))


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()
