"""The lean SigV4 signer against botocore's SigV4Auth: the same Authorization header, byte for byte, over many
generated requests (methods, paths, query strings, headers, session tokens, dates, regions, ports)."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from unittest import mock
from urllib.parse import urlsplit

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snapkeep.aws import sigv4
from snapkeep.aws.sigv4 import EMPTY_SHA256, UNSIGNED_PAYLOAD, Credentials, SigV4Signer, canonical_query

UTC = dt.UTC


def botocore_headers(credentials: Credentials, service: str, region: str, method: str, url: str,
                     headers: Mapping[str, str], body: bytes, when: dt.datetime,
                     params: Mapping[str, str] | None = None) -> dict[str, str]:
    request = AWSRequest(method=method, url=url, headers=dict(headers), data=body, params=dict(params or {}))
    boto_credentials = BotoCredentials(credentials.access_key, credentials.secret_key, credentials.token)
    with mock.patch("botocore.auth.get_current_datetime", return_value=when):
        SigV4Auth(boto_credentials, service, region).add_auth(request)
    return {name: request.headers[name] for name in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token")
            if name in request.headers}


def host_of(url: str) -> str:
    parts = urlsplit(url)
    assert parts.hostname is not None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    if parts.port is not None and parts.port != {"http": 80, "https": 443}[parts.scheme]:
        host += f":{parts.port}"
    return host


def ours(credentials: Credentials, service: str, region: str, method: str, url: str, headers: Mapping[str, str],
         payload_hash: str, when: dt.datetime, signer: SigV4Signer | None = None) -> dict[str, str]:
    parts = urlsplit(url)
    signer = signer or SigV4Signer(service, region)
    return signer.sign(credentials, method, host_of(url), parts.path, parts.query, headers, payload_hash,
                       now=when.timestamp())


def test_the_aws_documentation_example() -> None:
    """The worked example of the SigV4 documentation (IAM ListUsers), with its published signature."""
    credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
    when = dt.datetime(2015, 8, 30, 12, 36, 0, tzinfo=UTC)
    signed = ours(credentials, "iam", "us-east-1", "GET", "https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08",
                  headers, EMPTY_SHA256, when)
    assert signed["X-Amz-Date"] == "20150830T123600Z"
    assert signed["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, "
        "SignedHeaders=content-type;host;x-amz-date, "
        "Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7")
    assert "X-Amz-Security-Token" not in signed


def test_an_ebs_get_snapshot_block_request_matches_botocore() -> None:
    credentials = Credentials("ASIAEXAMPLEEXAMPLE00", "secret/with+chars=", "FwoGZXIvYXdzEJr//////////session+token=")
    token = "AAUBAcuWqOCnDNuKle11s7IIX6jp6FYcC/q8oT93913HhvLvA+3JRrSybp/0"
    url = f"https://ebs.eu-west-1.amazonaws.com/snapshots/snap-0123456789abcdef0/blocks/4242?" \
          f"{canonical_query({'blockToken': token})}"
    assert "%2F" in url and "%2B" in url  # the token's / and + are encoded in what is sent
    when = dt.datetime(2026, 11, 22, 23, 59, 59, tzinfo=UTC)
    expected = botocore_headers(credentials, "ebs", "eu-west-1", "GET", url, {}, b"", when)
    assert ours(credentials, "ebs", "eu-west-1", "GET", url, {}, EMPTY_SHA256, when) == expected


def test_a_put_snapshot_block_request_matches_botocore_signed_and_unsigned() -> None:
    credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "token")
    body = bytes(range(256)) * 2048
    digest = hashlib.sha256(body).digest()
    headers = {"Content-Type": "application/octet-stream", "x-amz-Data-Length": str(len(body)),
               "x-amz-Checksum": "ignored-by-the-signer-but-signed", "x-amz-Checksum-Algorithm": "SHA256",
               "User-Agent": "never signed"}
    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    url = "http://127.0.0.1:5000/snapshots/snap-1/blocks/7"
    expected = botocore_headers(credentials, "ebs", "us-east-1", "PUT", url, headers, body, when)
    assert ours(credentials, "ebs", "us-east-1", "PUT", url, headers, digest.hex(), when) == expected
    unsigned = {**headers, "X-Amz-Content-SHA256": UNSIGNED_PAYLOAD}
    https = "https://ebs.us-east-1.amazonaws.com/snapshots/snap-1/blocks/7"
    expected = botocore_headers(credentials, "ebs", "us-east-1", "PUT", https, unsigned, body, when)
    assert ours(credentials, "ebs", "us-east-1", "PUT", https, unsigned, UNSIGNED_PAYLOAD, when) == expected


def test_the_signing_key_is_derived_once_per_day() -> None:
    signer = SigV4Signer("ebs", "us-east-1")
    credentials = Credentials("AKID", "secret")
    derivations: list[str] = []
    real = sigv4._hmac

    def counting(key: bytes, message: str) -> bytes:
        derivations.append(message)
        return real(key, message)

    morning = dt.datetime(2026, 11, 22, 0, 0, 1, tzinfo=UTC)
    with mock.patch.object(sigv4, "_hmac", counting):
        for second in range(50):
            signer.sign(credentials, "GET", "h", "/x", "", {}, EMPTY_SHA256,
                        now=(morning + dt.timedelta(seconds=second * 1000)).timestamp())
    # 50 requests over about 14 hours: one derivation (4 HMACs) for the 22nd
    assert derivations == ["20261122", "us-east-1", "ebs", "aws4_request"]
    next_day = dt.datetime(2026, 11, 23, 0, 0, 1, tzinfo=UTC)
    with mock.patch.object(sigv4, "_hmac", counting):
        signed = signer.sign(credentials, "GET", "h", "/x", "", {}, EMPTY_SHA256, now=next_day.timestamp())
    assert derivations[4:] == ["20261123", "us-east-1", "ebs", "aws4_request"]
    assert signed == ours(credentials, "ebs", "us-east-1", "GET", "https://h/x", {}, EMPTY_SHA256, next_day)
    with mock.patch.object(sigv4, "_hmac", counting):  # rotated credentials: a new key the same day
        signer.sign(Credentials("AKID2", "other"), "GET", "h", "/x", "", {}, EMPTY_SHA256, now=next_day.timestamp())
    assert len(derivations) == 12


def test_the_secret_never_shows_in_repr() -> None:
    assert "s3cr3t" not in repr(Credentials("AKID", "s3cr3t", "tok"))


# --- generated requests --------------------------------------------------------------------------------------

_SEGMENT_CHARS = st.sampled_from([*"abcXYZ019-_.~", "%20", "%2F", "%25", "%C3%A9", ".", "..", "", "+", "=", "!", "*",
                                  "(", ")", "'", "@", ":", ","])
_segment = st.lists(_SEGMENT_CHARS, min_size=0, max_size=6).map("".join)
_path = st.lists(_segment, min_size=0, max_size=5).map(lambda parts: "/" + "/".join(parts))
_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=12)
_query = st.lists(st.tuples(_text.filter(bool), _text), max_size=5)
_header_name = st.sampled_from(["Content-Type", "x-amz-Checksum", "X-Amz-Data-Length", "X-Custom", "Accept",
                                "x-amz-checksum-algorithm", "User-Agent", "Expect", "X-Amzn-Trace-Id",
                                "x-amz-meta-Mixed", "Content-MD5"])
_header_value = st.text(alphabet=st.sampled_from(list("abcAB12=+/;,.:-_ \t")), min_size=1, max_size=24).filter(
    lambda v: v.strip() != "")
_headers = st.dictionaries(_header_name, _header_value, max_size=6)
_host = st.sampled_from(["https://ebs.us-east-1.amazonaws.com", "http://127.0.0.1:5000", "https://EBS.Example.com:443",
                         "http://localhost:80", "https://[::1]:8443", "https://ebs-fips.us-gov-west-1.amazonaws.com"])
_when = st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2099, 12, 31)).map(
    lambda d: d.replace(microsecond=0, tzinfo=UTC))
_credentials = st.builds(
    Credentials,
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=16, max_size=20),
    st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=40),
    st.one_of(st.none(), st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1,
                                 max_size=300)),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(method=st.sampled_from(["GET", "PUT", "POST", "DELETE", "HEAD"]), host=_host, path=_path, query=_query,
       headers=_headers, body=st.binary(max_size=64), credentials=_credentials, when=_when,
       region=st.sampled_from(["us-east-1", "eu-central-2", "ap-southeast-4", "us-gov-west-1"]),
       service=st.sampled_from(["ebs", "ec2", "backup", "s3-outposts"]))
def test_any_request_is_signed_as_botocore_signs_it(method: str, host: str, path: str, query: list[tuple[str, str]],
                                                    headers: dict[str, str], body: bytes, credentials: Credentials,
                                                    when: dt.datetime, region: str, service: str) -> None:
    encoded = canonical_query(query)
    url = f"{host}{path}" + (f"?{encoded}" if encoded else "")
    payload = hashlib.sha256(body).hexdigest()
    expected = botocore_headers(credentials, service, region, method, url, headers, body, when)
    assert ours(credentials, service, region, method, url, headers, payload, when) == expected


@settings(max_examples=150, deadline=None)
@given(params=st.dictionaries(_text.filter(bool), _text, max_size=5), when=_when, credentials=_credentials)
def test_a_query_given_as_parameters_signs_as_botocore_signs_parameters(params: dict[str, str], when: dt.datetime,
                                                                        credentials: Credentials) -> None:
    """botocore signs `params` by encoding each pair; canonical_query must give the same string (and it is what
    the lean client puts in the URL)."""
    base = "https://ebs.us-east-1.amazonaws.com/snapshots/snap-1/blocks"
    expected = botocore_headers(credentials, "ebs", "us-east-1", "GET", base, {}, b"", when, params=params)
    url = base + (f"?{canonical_query(params)}" if params else "")
    assert ours(credentials, "ebs", "us-east-1", "GET", url, {}, EMPTY_SHA256, when) == expected


@pytest.mark.parametrize("path,expected", [
    ("", "/"), ("/", "/"), ("/a//b", "/a/b"), ("/a/./b/../c/", "/a/c/"), ("/a%20b", "/a%2520b"),
    ("/~user/x", "/~user/x"), ("/../..", "/"),
])
def test_canonical_paths(path: str, expected: str) -> None:
    assert sigv4.canonical_path(path) == expected
