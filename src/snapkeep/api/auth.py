"""AWS Signature Version 4 verification of incoming API requests, so boto3 and the AWS CLI work unchanged.

`verify_request` rebuilds the canonical request the client signed, byte for byte as botocore's `SigV4Auth`
builds it, and compares signatures. It takes the request as it came off the wire:

- `raw_path`: the request target's path exactly as received, still percent-encoded (ASGI `scope["raw_path"]`,
  not the decoded `scope["path"]`), without the query string. Services other than S3 encode path segments
  twice on the client side: an ARN travels as `arn%3Aaws%3A...` and is signed as `arn%253Aaws%253A...`.
- `query_string`: the raw query string (ASGI `scope["query_string"]`), without the `?`.
- `headers`: name → value, names in any case, values decoded as Latin-1 as HTTP servers do. A repeated header
  is joined with `,` (Starlette's `Headers.items()` yields every copy, which is all this needs).
- `body`: the raw body bytes.

Errors carry the codes and messages AWS's JSON services answer with (see the classes below). A bad signature's
message includes the canonical request and string to sign this side computed, as AWS's does; neither holds a
secret.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from hashlib import sha256
from urllib.parse import quote, unquote_to_bytes

from snapkeep.domain.errors import SnapkeepError

SERVICE = "backup"
ALGORITHM = "AWS4-HMAC-SHA256"
TERMINATOR = "aws4_request"
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
MAX_SKEW = timedelta(minutes=15)
MAX_PRESIGNED_EXPIRES = 7 * 24 * 3600  # AWS's limit for presigned URLs, in seconds
EMPTY_SHA256 = sha256(b"").hexdigest()

_AMZ_DATE = re.compile(r"\d{8}T\d{6}Z")
_HEX_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
# Presigned (query-string) authentication parameters, as AWS names them.
_Q_ALGORITHM = "X-Amz-Algorithm"
_Q_CREDENTIAL = "X-Amz-Credential"
_Q_DATE = "X-Amz-Date"
_Q_EXPIRES = "X-Amz-Expires"
_Q_SIGNED_HEADERS = "X-Amz-SignedHeaders"
_Q_SIGNATURE = "X-Amz-Signature"
_Q_REQUIRED = (_Q_ALGORITHM, _Q_CREDENTIAL, _Q_SIGNATURE, _Q_SIGNED_HEADERS, _Q_DATE)
_Q_AUTH = frozenset({*_Q_REQUIRED, _Q_EXPIRES})


class AuthenticationError(SnapkeepError):
    """The request is not authenticated. Exit code 6 like AccessDenied: both are 'you may not'."""

    code = "UnrecognizedClientException"
    http_status = 403
    exit_code = 6


class MissingAuthenticationToken(AuthenticationError):
    """Neither an Authorization header nor presigned query parameters."""

    code = "MissingAuthenticationTokenException"
    http_status = 403


class IncompleteSignature(AuthenticationError):
    """The Authorization header or the presigned query parameters are malformed."""

    code = "IncompleteSignatureException"
    http_status = 400


class UnrecognizedClient(AuthenticationError):
    """The access key id is unknown (or disabled)."""

    code = "UnrecognizedClientException"
    http_status = 403


class InvalidSignature(AuthenticationError):
    """The signature does not match, the credential scope is wrong, or the signature is out of its time."""

    code = "InvalidSignatureException"
    http_status = 403


SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your AWS Secret "
    "Access Key and signing method. Consult the service documentation for details."
)
UNRECOGNIZED_CLIENT = "The security token included in the request is invalid."
MISSING_TOKEN = "Missing Authentication Token"


@dataclass(frozen=True)
class _Credentials:
    """What the client claims: who signed, when, for which scope, over which headers, and the signature."""

    access_key_id: str
    scope_date: str
    region: str
    service: str
    terminator: str
    signed_headers: tuple[str, ...]
    signature: str
    timestamp: str  # ISO 8601 basic, the second line of the string to sign
    expires: int | None  # presigned URLs only: seconds after `timestamp`
    presigned: bool


def verify_request(
    method: str,
    raw_path: str,
    query_string: str,
    headers: Mapping[str, str],
    body: bytes,
    lookup_secret: Callable[[str], str | None],
    now: datetime,
    max_skew: timedelta = MAX_SKEW,
    *,
    region: str | None = None,
    service: str = SERVICE,
) -> str:
    """Check the request's SigV4 signature (Authorization header or presigned query) and return its access key id.

    `lookup_secret` maps an access key id to its secret, or None when the key is unknown or disabled. `region`,
    when given, is the only region a credential scope may name. Raises MissingAuthenticationToken,
    IncompleteSignature, UnrecognizedClient or InvalidSignature.
    """
    if now.tzinfo is None:
        raise ValueError("verify_request needs an aware `now`")
    lowered = _lower_headers(headers.items())
    query_pairs = _split_query(query_string)
    creds = _credentials(lowered, query_pairs)
    _check_scope(creds, region, service)
    _check_time(creds, now.astimezone(UTC), max_skew)

    secret = lookup_secret(creds.access_key_id)
    if secret is None:
        raise UnrecognizedClient(UNRECOGNIZED_CLIENT)

    payload_hash = _payload_hash(lowered, body)
    canonical = _canonical_request(
        method, raw_path, query_pairs, lowered, creds.signed_headers, payload_hash, presigned=creds.presigned
    )
    scope = f"{creds.scope_date}/{creds.region}/{creds.service}/{TERMINATOR}"
    to_sign = string_to_sign(creds.timestamp, scope, canonical)
    expected = signature(secret, creds.scope_date, creds.region, creds.service, to_sign)
    if not hmac.compare_digest(expected.encode("ascii"), creds.signature.encode("utf-8")):
        raise InvalidSignature(
            f"{SIGNATURE_MISMATCH}\n\nThe Canonical String for this request should have been\n'{canonical}'\n\n"
            f"The String-to-Sign should have been\n'{to_sign}'\n"
        )
    _check_content_sha256(lowered, body)
    return creds.access_key_id


# -- the canonical request ---------------------------------------------------------------------------------
def canonical_request(
    method: str,
    raw_path: str,
    query_string: str,
    headers: Mapping[str, str],
    signed_headers: Iterable[str],
    body: bytes,
) -> str:
    """The SigV4 canonical request of a request as received (header-signed form): what the client hashed."""
    lowered = _lower_headers(headers.items())
    signed = tuple(sorted({h.strip().lower() for h in signed_headers}))
    return _canonical_request(
        method, raw_path, _split_query(query_string), lowered, signed, _payload_hash(lowered, body), presigned=False
    )


def canonical_uri(raw_path: str) -> str:
    """The path as botocore signs it for every service but S3: dot segments and empty segments removed, then
    percent-encoded again (so `%3A` on the wire is `%253A` here)."""
    return quote(_remove_dot_segments(raw_path) or "/", safe="/~")


def canonical_query_string(query_string: str, *, exclude: Iterable[str] = ()) -> str:
    """Names and values decoded, encoded again the SigV4 way (RFC 3986 unreserved characters kept, upper-case
    hex, space as %20), sorted by name then value; a name without `=` gets an empty value."""
    return _canonical_query(_split_query(query_string), frozenset(exclude))


def string_to_sign(timestamp: str, scope: str, canonical: str) -> str:
    return "\n".join((ALGORITHM, timestamp, scope, sha256(canonical.encode("utf-8")).hexdigest()))


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = _hmac(f"AWS4{secret}".encode(), date)
    key = _hmac(key, region)
    key = _hmac(key, service)
    return _hmac(key, TERMINATOR)


def signature(secret: str, date: str, region: str, service: str, to_sign: str) -> str:
    return hmac.new(signing_key(secret, date, region, service), to_sign.encode("utf-8"), sha256).hexdigest()


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), sha256).digest()


def _canonical_request(
    method: str,
    raw_path: str,
    query_pairs: list[tuple[str, str]],
    headers: Mapping[str, list[str]],
    signed_headers: tuple[str, ...],
    payload_hash: str,
    *,
    presigned: bool,
) -> str:
    exclude = frozenset({_Q_SIGNATURE}) if presigned else frozenset()
    header_lines = "".join(
        f"{name}:{','.join(' '.join(value.split()) for value in headers.get(name, ['']))}\n"
        for name in signed_headers
    )
    return "\n".join(
        (
            method.upper(),
            canonical_uri(raw_path),
            _canonical_query(query_pairs, exclude),
            header_lines,
            ";".join(signed_headers),
            payload_hash,
        )
    )


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4, and consecutive slashes collapsed, as botocore and AWS do."""
    if not path:
        return ""
    out: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if out:
                out.pop()
        else:
            out.append(segment)
    first = "/" if path.startswith("/") else ""
    last = "/" if path.endswith("/") and out else ""
    return first + "/".join(out) + last


def _split_query(query_string: str) -> list[tuple[str, str]]:
    """The raw (still encoded) name/value pairs, in order."""
    if not query_string:
        return []
    pairs = []
    for pair in query_string.split("&"):
        name, _, value = pair.partition("=")
        pairs.append((name, value))
    return pairs


def _decode(component: str) -> str:
    return unquote_to_bytes(component).decode("utf-8", "replace")


def _encode(component: str) -> str:
    return quote(unquote_to_bytes(component), safe="-_.~")


def _canonical_query(pairs: list[tuple[str, str]], exclude: frozenset[str]) -> str:
    encoded = sorted((_encode(name), _encode(value)) for name, value in pairs if _decode(name) not in exclude)
    return "&".join(f"{name}={value}" for name, value in encoded)


def _lower_headers(items: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    lowered: dict[str, list[str]] = {}
    for name, value in items:
        lowered.setdefault(name.strip().lower(), []).append(value)
    return lowered


def _payload_hash(headers: Mapping[str, list[str]], body: bytes) -> str:
    """X-Amz-Content-SHA256 when the client sent it (botocore signs that value verbatim), else the body's hash."""
    claimed = headers.get("x-amz-content-sha256")
    if claimed:
        return claimed[0]
    return sha256(body).hexdigest() if body else EMPTY_SHA256


def _check_content_sha256(headers: Mapping[str, list[str]], body: bytes) -> None:
    """A signed X-Amz-Content-SHA256 stands in for the body in the signature, so it must be the body's hash:
    unsigned and streaming payloads are refused, else the body would be unauthenticated."""
    claimed = headers.get("x-amz-content-sha256")
    if not claimed:
        return
    value = claimed[0].strip()
    if not _HEX_SHA256.fullmatch(value):
        raise InvalidSignature(
            f"x-amz-content-sha256 must be the hex SHA-256 of the body, got '{value}': "
            "unsigned and streaming payloads are not accepted"
        )
    if not hmac.compare_digest(value.lower().encode(), sha256(body).hexdigest().encode()):
        raise InvalidSignature("The provided 'x-amz-content-sha256' header does not match what was computed.")


# -- what the client claims ----------------------------------------------------------------------------------
def _credentials(headers: Mapping[str, list[str]], query_pairs: list[tuple[str, str]]) -> _Credentials:
    authorization = headers.get("authorization")
    query_auth: dict[str, list[str]] = {}
    for name, value in query_pairs:
        decoded = _decode(name)
        if decoded in _Q_AUTH:
            query_auth.setdefault(decoded, []).append(_decode(value))
    if authorization is not None and query_auth:
        raise IncompleteSignature(
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter or the Authorization "
            "header should be specified"
        )
    if authorization is not None:
        if len(authorization) > 1:
            raise IncompleteSignature("Only one Authorization header is allowed")
        return _header_credentials(authorization[0], headers)
    if query_auth:
        return _query_credentials(query_auth)
    raise MissingAuthenticationToken(MISSING_TOKEN)


def _header_credentials(authorization: str, headers: Mapping[str, list[str]]) -> _Credentials:
    value = authorization.strip()
    algorithm, _, rest = value.partition(" ")
    if algorithm.startswith("AWS4-") and algorithm != ALGORITHM:
        raise IncompleteSignature(f"Unsupported AWS 'algorithm': '{algorithm}'. Only {ALGORITHM} is supported.")
    params: dict[str, str] = {}
    if algorithm == ALGORITHM:
        for part in re.split(r"[,\s]+", rest):  # AWS splits on commas and white space alike
            if not part:
                continue
            if "=" not in part:
                raise IncompleteSignature(
                    f"'{part}' not a valid key=value pair (missing equal-sign) in Authorization header: '{value}'."
                )
            key, _, val = part.partition("=")
            if key in params:
                raise IncompleteSignature(f"'{key}' appears more than once in Authorization header: '{value}'.")
            params[key] = val
    timestamp = _header_timestamp(headers)
    problems = [
        f"Authorization header requires '{name}' parameter."
        for name in ("Credential", "Signature", "SignedHeaders")
        if not params.get(name)
    ]
    if timestamp is None:
        problems.append("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
    if problems:
        raise IncompleteSignature(" ".join([*problems, f"Authorization={value}"]))
    assert timestamp is not None
    return _build(params["Credential"], params["SignedHeaders"], params["Signature"], timestamp, None, False)


def _query_credentials(query_auth: Mapping[str, list[str]]) -> _Credentials:
    if any(name not in query_auth for name in _Q_REQUIRED):
        raise IncompleteSignature(
            "AWS query-string parameters must include 'X-Amz-Algorithm', 'X-Amz-Credential', 'X-Amz-Signature', "
            "'X-Amz-SignedHeaders', 'X-Amz-Date'. Re-examine the query-string parameters."
        )
    duplicated = sorted(name for name, values in query_auth.items() if len(values) > 1)
    if duplicated:
        raise IncompleteSignature(f"Query-string parameter '{duplicated[0]}' appears more than once")
    params = {name: values[0] for name, values in query_auth.items()}
    if params[_Q_ALGORITHM] != ALGORITHM:
        raise IncompleteSignature(
            f"Unsupported AWS 'algorithm': '{params[_Q_ALGORITHM]}'. Only {ALGORITHM} is supported."
        )
    expires: int | None = None
    if _Q_EXPIRES in params:
        raw = params[_Q_EXPIRES]
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_PRESIGNED_EXPIRES:
            raise IncompleteSignature(
                f"X-Amz-Expires must be a whole number of seconds from 1 to {MAX_PRESIGNED_EXPIRES}, got '{raw}'"
            )
        expires = int(raw)
    timestamp = _amz_date(params[_Q_DATE])
    return _build(
        params[_Q_CREDENTIAL], params[_Q_SIGNED_HEADERS], params[_Q_SIGNATURE], timestamp, expires, True
    )


def _build(
    credential: str, signed_headers: str, signature_: str, timestamp: str, expires: int | None, presigned: bool
) -> _Credentials:
    parts = credential.split("/")
    if len(parts) != 5 or not all(parts):
        raise IncompleteSignature(
            "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, "
            f"got '{credential}'"
        )
    signed = tuple(sorted({name.strip().lower() for name in signed_headers.split(";") if name.strip()}))
    if "host" not in signed:
        raise IncompleteSignature("'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")
    return _Credentials(
        access_key_id=parts[0],
        scope_date=parts[1],
        region=parts[2],
        service=parts[3],
        terminator=parts[4],
        signed_headers=signed,
        signature=signature_.strip(),
        timestamp=timestamp,
        expires=expires,
        presigned=presigned,
    )


def _header_timestamp(headers: Mapping[str, list[str]]) -> str | None:
    """X-Amz-Date, else the HTTP Date header, as ISO 8601 basic (what the string to sign carries)."""
    amz = headers.get("x-amz-date")
    if amz:
        return _amz_date(amz[0])
    date = headers.get("date")
    if not date:
        return None
    try:
        parsed = parsedate_to_datetime(date[0])
    except (TypeError, ValueError):
        raise IncompleteSignature(f"Date header is not an HTTP date: '{date[0]}'") from None
    if parsed.tzinfo is None:  # "-0000": UTC with no claim about local time
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).strftime(AMZ_DATE_FORMAT)


def _amz_date(value: str) -> str:
    value = value.strip()
    try:
        if not _AMZ_DATE.fullmatch(value):
            raise ValueError(value)
        datetime.strptime(value, AMZ_DATE_FORMAT)
    except ValueError:
        raise IncompleteSignature(
            f"Date must be in ISO-8601 'basic format'. Got '{value}'. See http://en.wikipedia.org/wiki/ISO_8601"
        ) from None
    return value


def _check_scope(creds: _Credentials, region: str | None, service: str) -> None:
    if creds.scope_date != creds.timestamp[:8]:
        raise InvalidSignature(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
            f"'{creds.scope_date}' != '{creds.timestamp[:8]}', from '{creds.timestamp}'."
        )
    if region is not None and creds.region != region:
        raise InvalidSignature(f"Credential should be scoped to a valid region, not '{creds.region}'. ")
    if creds.service != service:
        raise InvalidSignature(f"Credential should be scoped to correct service: '{service}'. ")
    if creds.terminator != TERMINATOR:
        raise InvalidSignature(
            f"Credential should be scoped with a valid terminator: '{TERMINATOR}', not '{creds.terminator}'. "
        )


def _check_time(creds: _Credentials, now: datetime, max_skew: timedelta) -> None:
    signed_at = datetime.strptime(creds.timestamp, AMZ_DATE_FORMAT).replace(tzinfo=UTC)
    stamp = creds.timestamp
    if signed_at > now + max_skew:
        raise InvalidSignature(
            f"Signature not yet current: {stamp} is still later than {_fmt(now + max_skew)} "
            f"({_fmt(now)} + {_minutes(max_skew)} min.)"
        )
    if creds.expires is not None:
        lifetime = timedelta(seconds=creds.expires)
        if signed_at + lifetime < now:
            raise InvalidSignature(
                f"Signature expired: {stamp} is now earlier than {_fmt(now - lifetime)} "
                f"({_fmt(now)} - {creds.expires} sec.)"
            )
    elif signed_at < now - max_skew:
        raise InvalidSignature(
            f"Signature expired: {stamp} is now earlier than {_fmt(now - max_skew)} "
            f"({_fmt(now)} - {_minutes(max_skew)} min.)"
        )


def _fmt(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(AMZ_DATE_FORMAT)


def _minutes(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 60:g}"
