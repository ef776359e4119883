"""The EBS direct APIs as a block source (backup) and a block sink (restore) for the image repository.

Reading: ListSnapshotBlocks (full) or ListChangedBlocks against the previous snapshot (incremental) says which
blocks to read; GetSnapshotBlock fetches them ahead of the repository's workers with up to `concurrency`
requests in flight, and every block's x-amz-Checksum is checked before the repository sees it (its SHA-256 is
handed over, so the block is hashed once). Writing: StartSnapshot (with ParentSnapshotId the parent supplies the
blocks not written), PutSnapshotBlock per block that differs, CompleteSnapshot with the LINEAR aggregate checksum,
then a wait for `completed`.

The listing and the snapshot calls (a few per volume) go through boto3; the block calls (one per 512 KiB) go
through the lean client in http_client, signed by sigv4: boto3 costs 1.4 to 3.6 ms of CPU per block call, the
lean client about 0.8 ms with the checksum check (bench/ebs_client.py), which lets two cores reach the API's 1,000
requests per second per snapshot.

Throttling (HTTP 429 or 503, RequestThrottledException, ThrottlingException) halves the number of requests
allowed in flight (at most once per quarter second) and retries the request after a jittered exponential sleep;
each success adds 1/limit back (AIMD), so a throttled volume settles just under what AWS allows it.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import heapq
import itertools
import logging
import random
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from botocore.exceptions import ClientError

from snapkeep.aws.errors import TransientAwsError, aws_errors
from snapkeep.aws.http_client import Transfer, Transport, open_transport
from snapkeep.aws.sessions import SessionProvider
from snapkeep.aws.sigv4 import EMPTY_SHA256, Credentials, SigV4Signer, canonical_query
from snapkeep.domain.errors import DependencyFailure, InvalidParameterValue, InvalidRequest, SnapkeepError
from snapkeep.imagestore.chunks import is_zero
from snapkeep.imagestore.format import BLOCK_SIZE, ZERO_BLOCK
from snapkeep.imagestore.sources import BlockRanges

logger = logging.getLogger(__name__)

GIB = 1024**3
DEFAULT_CONCURRENCY = 64
MAX_CONCURRENCY = 256
LIST_PAGE_SIZE = 10000
"""Blocks per List* call: the API's maximum, so a terabyte of written blocks costs about 200 list calls."""
TOKEN_PAGES_KEPT = 4
"""List pages whose block tokens a source keeps (about 1.5 MB each); others are listed again when reached."""
ZERO_DIGEST = hashlib.sha256(ZERO_BLOCK).digest()
CHECKSUM_ALGORITHM = "SHA256"
CREDENTIALS_TTL_SECONDS = 60.0
"""How long the block path reuses frozen credentials before asking the SessionProvider (which refreshes
assumed-role credentials five minutes before they expire)."""

THROTTLE_CODES = frozenset({"RequestThrottledException", "ThrottlingException", "ConcurrentLimitExceededException",
                            "TooManyRequestsException", "Throttling", "SlowDown"})
THROTTLE_STATUSES = frozenset({429, 503})
RETRY_STATUSES = frozenset({500, 502, 504})
_TOKEN_REASONS = frozenset({"INVALID_BLOCK_TOKEN"})


class BlockChecksumMismatch(DependencyFailure):
    """GetSnapshotBlock kept returning data that does not match its x-amz-Checksum."""


# --- throttling: pure decisions ------------------------------------------------------------------------------


class AdaptiveLimit:
    """AIMD on the number of requests in flight: halve on throttling (once per `cut_interval` seconds, so one burst
    of throttled answers counts once), add 1/limit per success (about one more per round trip), within
    [minimum, maximum]."""

    def __init__(self, maximum: int, *, minimum: int = 1, cut_interval: float = 0.25) -> None:
        if not 1 <= minimum <= maximum:
            raise ValueError(f"AdaptiveLimit: need 1 <= minimum <= maximum, got {minimum} and {maximum}")
        self.maximum = maximum
        self.minimum = minimum
        self.cut_interval = cut_interval
        self._limit = float(maximum)
        self._last_cut: float | None = None
        self.cuts = 0

    @property
    def current(self) -> int:
        return max(self.minimum, int(self._limit))

    def on_success(self) -> None:
        if self._limit < self.maximum:
            self._limit = min(float(self.maximum), self._limit + 1.0 / self._limit)

    def on_throttle(self, now: float) -> bool:
        """Record a throttled answer at `now` (monotonic seconds); True when the limit was cut."""
        if self._last_cut is not None and now - self._last_cut < self.cut_interval:
            return False
        self._last_cut = now
        self._limit = max(float(self.minimum), self._limit / 2.0)
        self.cuts += 1
        return True


def backoff_delay(attempt: int, rng: random.Random, *, base: float = 0.1, cap: float = 10.0) -> float:
    """Seconds to wait before retry number `attempt` (1, 2, ...): exponential up to `cap`, the upper half jittered
    so requests throttled together do not come back together."""
    ceiling = min(cap, base * 2.0 ** max(0, attempt - 1))
    return ceiling / 2.0 + rng.uniform(0.0, ceiling / 2.0)


@dataclass(frozen=True)
class RetryPolicy:
    throttle_attempts: int = 12
    """Throttled answers one request survives (about a minute of backoff with the defaults)."""
    failure_attempts: int = 5
    """Transport errors and 5xx answers one request survives."""
    base_delay: float = 0.1
    max_delay: float = 10.0


def classify(status: int, error_code: str | None, transport_error: str | None) -> str:
    """'ok', 'throttle', 'retry' (transient) or 'fail' for one answer."""
    if transport_error is not None:
        return "retry"
    if 200 <= status < 300:
        return "ok"
    if status in THROTTLE_STATUSES or (error_code or "") in THROTTLE_CODES:
        return "throttle"
    if status in RETRY_STATUSES or (error_code or "") == "InternalServerException":
        return "retry"
    return "fail"


# --- the block-call client -----------------------------------------------------------------------------------


@dataclass
class BlockCallStats:
    requests: int = 0
    throttled: int = 0
    retried: int = 0
    limit_cuts: int = 0


@dataclass
class _Call:
    """One logical block call and its retries."""

    action: str
    method: str
    path: str
    query: str
    headers: dict[str, str]
    payload_hash: str
    on_done: Callable[[_Call, SnapkeepError | None], None]
    body: bytes | None = None
    into: bytearray | None = None
    throttles: int = 0
    failures: int = 0
    transfer: Transfer | None = None
    error_code: str | None = None
    error_reason: str | None = None
    context: Any = None


def _error_fields(transfer: Transfer) -> tuple[str | None, str, str | None]:
    """(code, message, reason) of an AWS rest-json error answer."""
    code = transfer.response_headers.get("x-amzn-errortype", "").split(":", 1)[0] or None
    message = ""
    reason = None
    try:
        import json

        body = json.loads(transfer.content or b"{}")
        if isinstance(body, dict):
            code = code or str(body.get("__type") or body.get("code") or body.get("Code") or "") or None
            if code and "#" in code:
                code = code.rsplit("#", 1)[1]
            message = str(body.get("message") or body.get("Message") or "")
            raw_reason = body.get("Reason") or body.get("reason")
            reason = str(raw_reason) if raw_reason else None
    except ValueError:
        message = transfer.content[:200].decode("utf-8", "replace")
    return code, message, reason


def aws_error(action: str, status: int, code: str | None, message: str) -> SnapkeepError:
    """The Snapkeep error boto3 calls would raise for the same answer (one mapping: aws.errors)."""
    try:
        with aws_errors(action):
            raise ClientError({"Error": {"Code": code or f"HTTP{status}", "Message": message},
                               "ResponseMetadata": {"HTTPStatusCode": status}}, action)
    except SnapkeepError as exc:
        return exc
    raise AssertionError("unreachable")  # pragma: no cover


class EbsBlockClient:
    """GetSnapshotBlock and PutSnapshotBlock for one account and region, asynchronous, with AIMD throttling.

    Calls wait in a queue until the adaptive limit lets them in flight; answers arrive on the transport's
    thread, so `on_done` callbacks must be short. One client can serve several volumes of an account: the
    throttle it learns is the account's.
    """

    def __init__(
        self,
        endpoint_url: str,
        region: str,
        credentials: Callable[[], Credentials],
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        transport: Transport | str | None = None,
        ca_bundle: str | None = None,
        retry: RetryPolicy = RetryPolicy(),
        rng: random.Random | None = None,
    ) -> None:
        if not 1 <= concurrency <= MAX_CONCURRENCY:
            raise InvalidParameterValue(f"concurrency: must be 1 to {MAX_CONCURRENCY}, got {concurrency}",
                                        field="concurrency")
        parts = urlsplit(endpoint_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidParameterValue(f"endpoint_url: must be an http(s) URL, got {endpoint_url!r}",
                                        field="endpoint_url")
        self._base_url = f"{parts.scheme}://{parts.netloc}"
        self._base_path = parts.path.rstrip("/")
        self._host = _host_header(parts.scheme, parts.hostname, parts.port)
        self._signer = SigV4Signer("ebs", region)
        self._credential_source = credentials
        self._credentials: Credentials | None = None
        self._credentials_until = 0.0
        self._owns_transport = not hasattr(transport, "submit")
        self._transport: Transport = (transport if not isinstance(transport, str | None)
                                      else open_transport(concurrency, ca_bundle=ca_bundle, prefer=transport))
        self.limit = AdaptiveLimit(concurrency)
        self.retry = retry
        self._rng = rng or random.Random()
        self._lock = threading.Condition()
        self._in_flight = 0
        self._queue: deque[_Call] = deque()  # waiting for a slot, retries first
        self._timers: list[tuple[float, int, _Call]] = []
        self._sequence = itertools.count()
        self._timer_thread: threading.Thread | None = None
        self._closed = False
        self.stats = BlockCallStats()

    @property
    def transport_name(self) -> str:
        return self._transport.name

    @property
    def in_flight(self) -> int:
        return self._in_flight

    # --- the two block calls ---

    def get_block(self, snapshot_id: str, index: int, token: str, into: bytearray,
                  on_done: Callable[[_Call, SnapkeepError | None], None], context: Any = None) -> None:
        """Fetch one block into `into`; `on_done(call, error)` gets the answer (call.transfer) or the final error."""
        self._submit(_Call(
            action=f"GetSnapshotBlock {snapshot_id} block {index}", method="GET",
            path=f"{self._base_path}/snapshots/{snapshot_id}/blocks/{index}",
            query=canonical_query((("blockToken", token),)), headers={}, payload_hash=EMPTY_SHA256,
            on_done=on_done, into=into, context=context,
        ))

    def put_block(self, snapshot_id: str, index: int, data: bytes, digest: bytes,
                  on_done: Callable[[_Call, SnapkeepError | None], None], context: Any = None) -> None:
        """Write one 512 KiB block whose SHA-256 is `digest` (it is both the checksum and the payload hash)."""
        self._submit(_Call(
            action=f"PutSnapshotBlock {snapshot_id} block {index}", method="PUT",
            path=f"{self._base_path}/snapshots/{snapshot_id}/blocks/{index}", query="",
            headers={"Content-Type": "application/octet-stream", "x-amz-Data-Length": str(len(data)),
                     "x-amz-Checksum": base64.b64encode(digest).decode("ascii"),
                     "x-amz-Checksum-Algorithm": CHECKSUM_ALGORITHM},
            payload_hash=digest.hex(), on_done=on_done, body=data, context=context,
        ))

    # --- scheduling ---

    def _submit(self, call: _Call) -> None:
        with self._lock:
            if self._closed:
                raise DependencyFailure(f"{call.action}: the EBS block client is closed")
            self._queue.append(call)
            ready = self._take_ready()
        self._send_all(ready)

    def _take_ready(self) -> list[_Call]:
        """Calls that may go now (the lock is held)."""
        ready = []
        limit = self.limit.current
        while self._queue and self._in_flight < limit:
            ready.append(self._queue.popleft())
            self._in_flight += 1
        self.stats.requests += len(ready)
        return ready

    def _send_all(self, calls: Iterable[_Call]) -> None:
        for call in calls:
            try:
                self._send(call)
            except Exception as exc:  # signing or submitting failed: the call ends, the slot is freed
                self._finish(call, DependencyFailure(f"{call.action} failed: {exc}"))

    def _send(self, call: _Call) -> None:
        credentials = self._current_credentials()
        added = self._signer.sign(credentials, call.method, self._host, call.path, call.query, call.headers,
                                  call.payload_hash)
        lines = [f"{name}: {value}" for name, value in call.headers.items()]
        lines += [f"{name}: {value}" for name, value in added.items()]
        lines.append("Expect:")
        url = f"{self._base_url}{call.path}?{call.query}" if call.query else f"{self._base_url}{call.path}"
        transfer = Transfer(call.method, url, lines, body=call.body, into=call.into, callback=self._answered,
                            context=call)
        call.transfer = transfer
        self._transport.submit(transfer)

    def _current_credentials(self) -> Credentials:
        now = time.monotonic()
        credentials = self._credentials
        if credentials is None or now >= self._credentials_until:
            credentials = self._credential_source()
            self._credentials = credentials
            self._credentials_until = now + CREDENTIALS_TTL_SECONDS
        return credentials

    def _answered(self, transfer: Transfer) -> None:
        call: _Call = transfer.context
        code = reason = None
        message = ""
        if transfer.error is None and not 200 <= transfer.status < 300:
            code, message, reason = _error_fields(transfer)
        call.error_code, call.error_reason = code, reason
        verdict = classify(transfer.status, code, transfer.error)
        if verdict == "ok":
            with self._lock:
                self.limit.on_success()
            self._finish(call, None)
        elif verdict == "throttle":
            call.throttles += 1
            with self._lock:
                self.stats.throttled += 1
                if self.limit.on_throttle(time.monotonic()):
                    self.stats.limit_cuts += 1
            if call.throttles >= self.retry.throttle_attempts:
                self._finish(call, TransientAwsError(
                    f"{call.action} failed: still throttled after {call.throttles} attempts "
                    f"({code or transfer.status}: {message})".rstrip(": )") + ")"))
            else:
                self._retry_later(call, backoff_delay(call.throttles, self._rng, base=self.retry.base_delay,
                                                      cap=self.retry.max_delay))
        elif verdict == "retry":
            call.failures += 1
            what = transfer.error or f"HTTP {transfer.status} {code or ''}".strip()
            if call.failures >= self.retry.failure_attempts:
                self._finish(call, TransientAwsError(f"{call.action} failed after {call.failures} attempts: {what}"))
            else:
                logger.debug("%s: %s; retrying", call.action, what)
                self._retry_later(call, backoff_delay(call.failures, self._rng, base=self.retry.base_delay,
                                                      cap=self.retry.max_delay))
        else:
            self._finish(call, aws_error(call.action, transfer.status, code, message))

    def _retry_later(self, call: _Call, delay: float) -> None:
        if self._closed:
            self._finish(call, DependencyFailure(f"{call.action}: abandoned, the EBS block client was closed"))
            return
        with self._lock:
            self._in_flight -= 1
            self.stats.retried += 1
            heapq.heappush(self._timers, (time.monotonic() + delay, next(self._sequence), call))
            if self._timer_thread is None:
                self._timer_thread = threading.Thread(target=self._run_timers, name="snapkeep-ebs-retry",
                                                      daemon=True)
                self._timer_thread.start()
            self._lock.notify_all()
            ready = self._take_ready()
        self._send_all(ready)

    def _run_timers(self) -> None:
        while True:
            with self._lock:
                while not self._closed and (not self._timers or self._timers[0][0] > time.monotonic()):
                    self._lock.wait(None if not self._timers else max(0.0, self._timers[0][0] - time.monotonic()))
                if self._closed:
                    return
                due: list[_Call] = []
                now = time.monotonic()
                while self._timers and self._timers[0][0] <= now:
                    due.append(heapq.heappop(self._timers)[2])
                self._queue.extendleft(reversed(due))
                ready = self._take_ready()
            self._send_all(ready)

    def _finish(self, call: _Call, error: SnapkeepError | None) -> None:
        with self._lock:
            self._in_flight -= 1
            ready = self._take_ready()
            self._lock.notify_all()
        try:
            call.on_done(call, error)
        except Exception:
            logger.exception("%s: the completion handler failed", call.action)
        self._send_all(ready)

    def close(self) -> None:
        """Stop: calls still queued or waiting out a backoff end with an error; the transport is closed if owned."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            abandoned = [*self._queue, *(entry[2] for entry in self._timers)]
            self._queue.clear()
            self._timers = []
            self._in_flight += len(abandoned)
            self._lock.notify_all()
        for call in abandoned:
            self._finish(call, DependencyFailure(f"{call.action}: abandoned, the EBS block client was closed"))
        if self._owns_transport:
            self._transport.close()


def _host_header(scheme: str, hostname: str, port: int | None) -> str:
    host = f"[{hostname}]" if ":" in hostname else hostname
    if port is not None and port != {"http": 80, "https": 443}[scheme]:
        host = f"{host}:{port}"
    return host


def block_client_for(sessions: SessionProvider, region: str, role_arn: str | None = None, *,
                     concurrency: int = DEFAULT_CONCURRENCY, transport: Transport | str | None = None,
                     ca_bundle: str | None = None, retry: RetryPolicy = RetryPolicy()) -> EbsBlockClient:
    """An EbsBlockClient on the endpoint and credentials boto3's `ebs` client uses for this account and region."""
    endpoint = sessions.client("ebs", region, role_arn).meta.endpoint_url

    def credentials() -> Credentials:
        access_key, secret_key, token = sessions.credentials(region, role_arn)
        return Credentials(access_key, secret_key, token)

    return EbsBlockClient(endpoint, region, credentials, concurrency=concurrency, transport=transport,
                          ca_bundle=ca_bundle, retry=retry)


# --- listings ------------------------------------------------------------------------------------------------


class IndexRuns:
    """Ascending block indexes kept as runs: a terabyte of contiguous data costs a few objects."""

    def __init__(self) -> None:
        self.ranges: list[range] = []

    def add(self, index: int) -> None:
        if self.ranges and self.ranges[-1].stop == index:
            self.ranges[-1] = range(self.ranges[-1].start, index + 1)
        elif self.ranges and index < self.ranges[-1].stop:
            raise DependencyFailure(f"the block listing went backwards at block {index}")
        else:
            self.ranges.append(range(index, index + 1))

    def __contains__(self, index: object) -> bool:
        if not isinstance(index, int) or not self.ranges:
            return False
        position = bisect.bisect_right(self.ranges, index, key=lambda r: r.start) - 1
        return position >= 0 and index in self.ranges[position]

    def __len__(self) -> int:
        return sum(len(r) for r in self.ranges)

    def without(self, skip: Collection[int]) -> IndexRuns:
        """These indexes minus `skip`."""
        kept = IndexRuns()
        if not skip:
            kept.ranges = list(self.ranges)
            return kept
        for run in self.ranges:
            for index in run:
                if index not in skip:
                    kept.add(index)
        return kept

    def sequence(self) -> BlockRanges:
        """The indexes as a sequence the repository can iterate and index."""
        return BlockRanges(list(self.ranges))


@dataclass
class _Page:
    first: int
    last: int | None
    """The last block index this page answers for; None: through the end of the volume."""
    tokens: dict[int, str | None]
    expires: float


Page = tuple[list[tuple[int, str | None]], str | None, float, int]
PageFetcher = Callable[[int | None, str | None], Page]
"""(starting block index, next token) -> (entries, next token, token expiry (epoch), volume size GiB)."""


class _TokenPages:
    """Block tokens by index, a few List* pages at a time: pages are loaded where reading needs them (by
    StartingBlockIndex) and forgotten least-recently-used first, so memory does not grow with the volume."""

    def __init__(self, fetch: PageFetcher, capacity: int | None = None, *, refresh_margin: float = 60.0) -> None:
        self._fetch = fetch
        self._capacity = capacity or TOKEN_PAGES_KEPT
        self._margin = refresh_margin
        self._pages: OrderedDict[int, _Page] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, page: _Page) -> None:
        with self._lock:
            if len(self._pages) < self._capacity:
                self._pages[page.first] = page

    def token(self, index: int, *, refresh: bool = False) -> str | None:
        with self._lock:
            page = self._find(index)
            if page is not None and (refresh or page.expires - self._margin <= time.time()):
                del self._pages[page.first]
                page = None
            if page is None:
                entries, next_token, expires, _ = self._fetch(index, None)
                last = entries[-1][0] if next_token and entries else None
                page = _Page(index, last, dict(entries), expires)
                self._pages[index] = page
                while len(self._pages) > self._capacity:
                    self._pages.popitem(last=False)
            self._pages.move_to_end(page.first)
            return page.tokens.get(index)

    def _find(self, index: int) -> _Page | None:
        for page in self._pages.values():
            if page.first <= index and (page.last is None or index <= page.last):
                return page
        return None


def _expiry_epoch(value: Any) -> float:
    if value is None:
        return time.time() + 600.0
    if hasattr(value, "timestamp"):
        return float(value.timestamp())
    return float(value)


# --- the source ----------------------------------------------------------------------------------------------


class _Slot:
    __slots__ = ("buffer", "checksum", "error", "length", "ready", "reason")

    def __init__(self, buffer: bytearray) -> None:
        self.buffer = buffer
        self.ready = False
        self.error: SnapkeepError | None = None
        self.reason: str | None = None
        self.checksum: str | None = None
        self.length = 0


@dataclass
class SourceStats:
    blocks_fetched: int = 0
    blocks_zero: int = 0
    checksum_mismatches: int = 0
    token_refreshes: int = 0
    list_calls: int = 0


class EbsBlockSource:
    """One EBS snapshot as a BlockSource: a full read (ListSnapshotBlocks) or, with `previous_snapshot_id`, the
    blocks changed since that snapshot of the same lineage (ListChangedBlocks: back up with
    `changed_blocks={source.name: source.changed_blocks()}` and the previous image backup as parent).

    Blocks are fetched ahead in the order the repository asks for them (allocated_blocks or changed_blocks), up
    to `concurrency` at once; read_into copies one out, checks its SHA-256 against x-amz-Checksum (a mismatch is
    fetched again, up to `checksum_attempts` times) and returns the digest. Blocks never written, and blocks that
    became empty since the previous snapshot, read as zeros without a call.

    Resuming: blocks in `done` are left out of the lists (a caller that already stored them); `on_block(index)` is
    called for each block delivered.
    """

    def __init__(
        self,
        sessions: SessionProvider,
        region: str,
        snapshot_id: str,
        *,
        role_arn: str | None = None,
        previous_snapshot_id: str | None = None,
        name: str | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        done: Collection[int] = (),
        on_block: Callable[[int], None] | None = None,
        client: EbsBlockClient | None = None,
        transport: Transport | str | None = None,
        checksum_attempts: int = 3,
    ) -> None:
        if not 1 <= concurrency <= MAX_CONCURRENCY:
            raise InvalidParameterValue(f"concurrency: must be 1 to {MAX_CONCURRENCY}, got {concurrency}",
                                        field="concurrency")
        if previous_snapshot_id == snapshot_id:
            raise InvalidParameterValue("previous_snapshot_id: must differ from snapshot_id",
                                        field="previous_snapshot_id")
        self._sessions = sessions
        self._region = region
        self._role_arn = role_arn
        self.snapshot_id = snapshot_id
        self.previous_snapshot_id = previous_snapshot_id
        self._name = name or snapshot_id
        self._window = concurrency
        self._done = done
        self._on_block = on_block
        self._checksum_attempts = max(1, checksum_attempts)
        self._owns_client = client is None
        self._client = client or block_client_for(sessions, region, role_arn, concurrency=concurrency,
                                                  transport=transport)
        self.stats = SourceStats()
        self._lock = threading.Condition()
        self._list_lock = threading.Lock()
        self._volume_gib: int | None = None
        self._allocated: IndexRuns | None = None
        self._changed: IndexRuns | None = None
        self._emptied: set[int] = set()  # changed blocks without a SecondBlockToken: zeros now
        self._first_blocks: int | None = None
        self._full_pages = _TokenPages(self._list_blocks_page)
        self._changed_pages = _TokenPages(self._list_changed_page)
        self._plan: Sequence[int] = ()
        self._plan_runs = IndexRuns()
        self._cursor = 0
        self._slots: dict[int, _Slot] = {}
        self._ahead: set[int] = set()  # planned blocks fetched out of turn: the cursor skips them
        self._outstanding = 0
        self._buffers: list[bytearray] = []
        self._closed = False

    # --- BlockSource ---

    @property
    def name(self) -> str:
        return self._name

    @property
    def size(self) -> int:
        if self._volume_gib is None:
            self._load_listing()
        assert self._volume_gib is not None
        return self._volume_gib * GIB

    @property
    def transport_name(self) -> str:
        return self._client.transport_name

    @property
    def client(self) -> EbsBlockClient:
        return self._client

    def allocated_blocks(self) -> Sequence[int]:
        """Every block the snapshot holds (ListSnapshotBlocks), less those in `done`; reading follows this list."""
        plan = self._allocated_runs().without(self._done)
        self._set_plan(plan)
        return plan.sequence()

    def _allocated_runs(self) -> IndexRuns:
        with self._list_lock:
            if self._allocated is None:
                self._allocated = self._list_all_blocks()
            return self._allocated

    def changed_blocks(self) -> Sequence[int]:
        """The blocks that differ from `previous_snapshot_id` (ListChangedBlocks), less those in `done`, including
        blocks that became empty (they read as zeros); reading follows this list."""
        if self.previous_snapshot_id is None:
            raise InvalidRequest("changed_blocks: needs previous_snapshot_id (the snapshot of the previous backup)",
                                 field="previous_snapshot_id")
        self._load_listing()
        assert self._changed is not None
        plan = self._changed.without(self._done)
        self._set_plan(plan.without(self._emptied))
        return plan.sequence()

    def read_into(self, index: int, buffer: memoryview) -> tuple[int, bytes | None]:
        if index < 0 or index * BLOCK_SIZE >= self.size:
            raise InvalidParameterValue(f"block index: {index} is outside snapshot {self.snapshot_id} "
                                        f"({self.size // GIB} GiB)", field="block_index")
        view = buffer[:BLOCK_SIZE]
        if self._reads_as_zeros(index):
            view[:] = ZERO_BLOCK
            self._delivered(index, fetched=False)
            return BLOCK_SIZE, ZERO_DIGEST
        refreshes = 0
        attempt = 0
        fresh = False
        while True:
            slot = self._claim(index, fresh=fresh)
            try:
                error = slot.error
                if error is None:
                    view[:] = memoryview(slot.buffer)[:BLOCK_SIZE]
                checksum, length, reason = slot.checksum, slot.length, slot.reason
            finally:
                self._release(slot)
            if error is not None:
                if reason in _TOKEN_REASONS and refreshes < 2:
                    refreshes += 1
                    self.stats.token_refreshes += 1
                    self._token(index, refresh=True)
                    fresh = True
                    continue
                raise error
            attempt += 1
            digest = hashlib.sha256(view).digest()
            problem = _checksum_problem(checksum, length, digest)
            if problem is None:
                self._delivered(index, fetched=True)
                return BLOCK_SIZE, digest
            self.stats.checksum_mismatches += 1
            logger.warning("GetSnapshotBlock %s block %d (attempt %d): %s", self.snapshot_id, index, attempt, problem)
            if attempt >= self._checksum_attempts:
                raise BlockChecksumMismatch(
                    f"GetSnapshotBlock {self.snapshot_id} block {index}: {problem}, on each of {attempt} attempts; "
                    "the block was not used")
            fresh = True

    # --- listing ---

    def _ebs(self) -> Any:
        return self._sessions.client("ebs", self._region, self._role_arn)

    def _list_blocks_page(self, start: int | None, next_token: str | None) -> Page:
        snapshot = self.snapshot_id
        kwargs: dict[str, Any] = {"SnapshotId": snapshot, "MaxResults": LIST_PAGE_SIZE}
        if next_token:
            kwargs["NextToken"] = next_token
        elif start:
            kwargs["StartingBlockIndex"] = start
        with aws_errors(f"ListSnapshotBlocks {snapshot}"):
            answer = self._ebs().list_snapshot_blocks(**kwargs)
        self.stats.list_calls += 1
        entries: list[tuple[int, str | None]] = [(int(b["BlockIndex"]), b.get("BlockToken"))
                                                 for b in answer.get("Blocks", [])]
        return entries, answer.get("NextToken"), _expiry_epoch(answer.get("ExpiryTime")), int(answer["VolumeSize"])

    def _list_changed_page(self, start: int | None, next_token: str | None) -> Page:
        kwargs: dict[str, Any] = {"FirstSnapshotId": self.previous_snapshot_id, "SecondSnapshotId": self.snapshot_id,
                                  "MaxResults": LIST_PAGE_SIZE}
        if next_token:
            kwargs["NextToken"] = next_token
        elif start:
            kwargs["StartingBlockIndex"] = start
        with aws_errors(f"ListChangedBlocks {self.previous_snapshot_id} -> {self.snapshot_id}"):
            answer = self._ebs().list_changed_blocks(**kwargs)
        self.stats.list_calls += 1
        entries: list[tuple[int, str | None]] = [(int(b["BlockIndex"]), b.get("SecondBlockToken"))
                                                 for b in answer.get("ChangedBlocks", [])]
        return entries, answer.get("NextToken"), _expiry_epoch(answer.get("ExpiryTime")), int(answer["VolumeSize"])

    def _pages(self, fetch: PageFetcher, pages: _TokenPages) -> Iterator[tuple[int, str | None]]:
        """Every entry of a listing, in order; the first pages' tokens are kept for the reads."""
        next_token: str | None = None
        first = 0
        while True:
            entries, next_token, expires, volume_gib = fetch(None, next_token)
            self._volume_gib = volume_gib
            last = entries[-1][0] if next_token and entries else None
            pages.remember(_Page(first, last, dict(entries), expires))
            yield from entries
            if not next_token:
                return
            first = (last if last is not None else first) + 1

    def _list_all_blocks(self) -> IndexRuns:
        runs = IndexRuns()
        for index, _ in self._pages(self._list_blocks_page, self._full_pages):
            runs.add(index)
        return runs

    def _load_listing(self) -> None:
        with self._list_lock:
            if self._volume_gib is not None and (self.previous_snapshot_id is None or self._changed is not None):
                return
            if self.previous_snapshot_id is None:
                self._allocated = self._list_all_blocks()
                return
            runs = IndexRuns()
            emptied = set()
            for index, token in self._pages(self._list_changed_page, self._changed_pages):
                runs.add(index)
                if not token:
                    emptied.add(index)
            self._changed, self._emptied = runs, emptied

    def _first_block_count(self) -> int:
        """How many blocks the previous snapshot has: blocks past its end that did not change are zeros."""
        if self._first_blocks is None:
            assert self.previous_snapshot_id is not None
            kwargs = {"SnapshotId": self.previous_snapshot_id, "MaxResults": 100}
            with aws_errors(f"ListSnapshotBlocks {self.previous_snapshot_id}"):
                answer = self._ebs().list_snapshot_blocks(**kwargs)
            self.stats.list_calls += 1
            self._first_blocks = int(answer["VolumeSize"]) * GIB // BLOCK_SIZE
        return self._first_blocks

    def _reads_as_zeros(self, index: int) -> bool:
        if self.previous_snapshot_id is None:
            return index not in self._allocated_runs()
        self._load_listing()
        assert self._changed is not None
        if index in self._emptied:
            return True
        if index in self._changed:
            return False
        if index >= self._first_block_count():
            return True  # past the previous snapshot's end and unchanged: never written
        return self._full_pages.token(index) is None

    def _token(self, index: int, *, refresh: bool = False) -> str | None:
        if self.previous_snapshot_id is not None and self._changed is not None and index in self._changed:
            return self._changed_pages.token(index, refresh=refresh)
        return self._full_pages.token(index, refresh=refresh)

    # --- fetching ahead ---

    def _set_plan(self, plan: IndexRuns) -> None:
        with self._lock:
            self._plan = plan.sequence()
            self._plan_runs = plan
            self._cursor = 0
            self._ahead.clear()

    def _claim(self, index: int, *, fresh: bool) -> _Slot:
        """The answer for `index`: the one fetched ahead, or a request made now; waits for it."""
        with self._lock:
            slot = None if fresh else self._slots.get(index)
            if slot is None:
                slot = self._new_slot(index)
                if (not fresh and index in self._plan_runs and self._cursor < len(self._plan)
                        and index >= self._plan[self._cursor]):
                    self._ahead.add(index)  # the plan reaches it later: not again
                direct = True
            else:
                direct = False
        if direct:
            self._issue(index, slot)
        self._fill()
        with self._lock:
            while not slot.ready:
                if self._closed:
                    raise DependencyFailure(f"reading {self.snapshot_id}: the source was closed")
                self._lock.wait()
            if self._slots.get(index) is slot:
                del self._slots[index]
        return slot

    def _new_slot(self, index: int) -> _Slot:
        slot = _Slot(self._buffers.pop() if self._buffers else bytearray(BLOCK_SIZE))
        self._outstanding += 1
        self._slots[index] = slot
        return slot

    def _release(self, slot: _Slot) -> None:
        with self._lock:
            self._buffers.append(slot.buffer)
            self._outstanding -= 1
        self._fill()

    def _fill(self) -> None:
        """Fetch ahead along the plan while fewer than `concurrency` blocks are fetched but not yet taken."""
        while True:
            with self._lock:
                if self._closed or self._outstanding >= self._window or self._cursor >= len(self._plan):
                    return
                index = self._plan[self._cursor]
                self._cursor += 1
                if index in self._ahead:
                    self._ahead.discard(index)
                    continue
                if index in self._slots:
                    continue
                slot = self._new_slot(index)
            self._issue(index, slot)

    def _issue(self, index: int, slot: _Slot) -> None:
        try:
            token = self._token(index)
            if token is None:
                raise DependencyFailure(f"GetSnapshotBlock {self.snapshot_id} block {index}: no block token "
                                        "(the listing changed while reading)")
            self._client.get_block(self.snapshot_id, index, token, slot.buffer, self._fetched, context=slot)
        except SnapkeepError as exc:
            self._answer(slot, exc, None, 0, None)

    def _fetched(self, call: _Call, error: SnapkeepError | None) -> None:
        transfer = call.transfer
        assert transfer is not None
        self._answer(call.context, error, transfer.response_headers.get("x-amz-checksum"), transfer.length,
                     call.error_reason)

    def _answer(self, slot: _Slot, error: SnapkeepError | None, checksum: str | None, length: int,
                reason: str | None) -> None:
        with self._lock:
            slot.error, slot.checksum, slot.length, slot.reason = error, checksum, length, reason
            slot.ready = True
            self._lock.notify_all()

    def _delivered(self, index: int, *, fetched: bool) -> None:
        with self._lock:
            if fetched:
                self.stats.blocks_fetched += 1
            else:
                self.stats.blocks_zero += 1
        if self._on_block is not None:
            self._on_block(index)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> EbsBlockSource:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def _checksum_problem(checksum: str | None, length: int, digest: bytes) -> str | None:
    if length != BLOCK_SIZE:
        return f"{length} bytes arrived, a block has {BLOCK_SIZE}"
    if not checksum:
        return "the answer has no x-amz-Checksum"
    try:
        expected = base64.b64decode(checksum, validate=True)
    except ValueError:
        return f"x-amz-Checksum {checksum!r} is not base64"
    if expected != digest:
        return (f"x-amz-Checksum is {checksum} but the data's SHA-256 is "
                f"{base64.b64encode(digest).decode('ascii')}")
    return None


# --- the sink ------------------------------------------------------------------------------------------------


@dataclass
class SinkStats:
    blocks_written: int = 0
    zero_skipped: int = 0
    unchanged_skipped: int = 0
    zeros_written: int = 0


def complete_snapshot(ebs: Any, snapshot_id: str, count: int, checksum: str | None) -> str:
    """CompleteSnapshot with the number of blocks written and their LINEAR aggregate checksum (`aggregate_checksum`;
    None: sent without one); the status EBS answers. Also what a restore retried after a crash calls with the
    count and checksum it recorded before sealing."""
    request: dict[str, Any] = {"SnapshotId": snapshot_id, "ChangedBlocksCount": count}
    if count and checksum:
        request.update(Checksum=checksum, ChecksumAlgorithm=CHECKSUM_ALGORITHM, ChecksumAggregationMethod="LINEAR")
    with aws_errors(f"CompleteSnapshot {snapshot_id}"):
        answer = ebs.complete_snapshot(**request)
    return str(answer.get("Status", "pending"))


class EbsBlockSink:
    """A new EBS snapshot as a BlockSink: StartSnapshot now, PutSnapshotBlock per block written, CompleteSnapshot in
    complete().

    Without a parent the new snapshot reads zeros where nothing is written, so zero blocks are skipped. With
    `parent_snapshot_id` every block not written comes from the parent: zero blocks are written only where the
    parent has data, and `unchanged(index, sha256_digest)` (when given) lets the caller skip blocks it knows the
    parent already holds (e.g. from the parent's image backup), so an incremental restore writes only what
    changed. Blocks shorter than 512 KiB (the end of a disk image) are padded with zeros.
    """

    def __init__(
        self,
        sessions: SessionProvider,
        region: str,
        size: int,
        *,
        role_arn: str | None = None,
        parent_snapshot_id: str | None = None,
        client_token: str | None = None,
        encrypted: bool | None = None,
        kms_key_arn: str | None = None,
        tags: Mapping[str, str] | None = None,
        description: str | None = None,
        timeout_minutes: int | None = None,
        unchanged: Callable[[int, bytes], bool] | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        client: EbsBlockClient | None = None,
        transport: Transport | str | None = None,
    ) -> None:
        if size <= 0:
            raise InvalidParameterValue(f"size: must be more than 0 bytes, got {size}", field="size")
        if not 1 <= concurrency <= MAX_CONCURRENCY:
            raise InvalidParameterValue(f"concurrency: must be 1 to {MAX_CONCURRENCY}, got {concurrency}",
                                        field="concurrency")
        if parent_snapshot_id is not None and encrypted is not None:
            raise InvalidParameterValue("encrypted: cannot be given with parent_snapshot_id (the new snapshot is "
                                        "encrypted as its parent is, or with kms_key_arn)", field="encrypted")
        self._sessions = sessions
        self._region = region
        self._role_arn = role_arn
        self.volume_size_gib = -(-size // GIB)
        self.parent_snapshot_id = parent_snapshot_id
        self._unchanged = unchanged
        self._max_outstanding = concurrency
        self.stats = SinkStats()
        request: dict[str, Any] = {"VolumeSize": self.volume_size_gib}
        if parent_snapshot_id:
            request["ParentSnapshotId"] = parent_snapshot_id
        if client_token:
            request["ClientToken"] = client_token
        if encrypted is not None:
            request["Encrypted"] = encrypted
        if kms_key_arn:
            request["KmsKeyArn"] = kms_key_arn
        if tags:
            request["Tags"] = [{"Key": key, "Value": value} for key, value in sorted(tags.items())]
        if description is not None:
            request["Description"] = description
        if timeout_minutes is not None:
            request["Timeout"] = timeout_minutes
        self._parent_blocks: IndexRuns | None = None
        if parent_snapshot_id:
            self._parent_blocks = self._list_parent(parent_snapshot_id)
        self._owns_client = client is None
        self._client = client or block_client_for(sessions, region, role_arn, concurrency=concurrency,
                                                  transport=transport)
        try:
            with aws_errors("StartSnapshot"):
                answer = self._ebs().start_snapshot(**request)
        except BaseException:
            self._close_client()
            raise
        self.snapshot_id: str = answer["SnapshotId"]
        self.status: str = answer.get("Status", "pending")
        self._lock = threading.Condition()
        self._outstanding = 0
        self._digests: dict[int, bytes] = {}
        self._failure: SnapkeepError | None = None
        self._completed = False

    # --- BlockSink ---

    @property
    def size(self) -> int:
        return self.volume_size_gib * GIB

    @property
    def zeroed(self) -> bool:
        return self.parent_snapshot_id is None

    @property
    def transport_name(self) -> str:
        return self._client.transport_name

    def write_block(self, index: int, data: bytes | memoryview) -> None:
        self._write(index, data, None)

    def write_verified_block(self, index: int, data: bytes | memoryview, sha256_digest: bytes) -> None:
        """A whole block whose SHA-256 the caller computed over exactly these bytes (the restore, verifying the
        chunk): it becomes the PutSnapshotBlock checksum without hashing the block again."""
        if len(data) != BLOCK_SIZE or len(sha256_digest) != 32:
            self._write(index, data, None)  # a short block is padded, so its checksum is not the caller's
            return
        self._write(index, data, sha256_digest)

    def _write(self, index: int, data: bytes | memoryview, known_digest: bytes | None) -> None:
        if index < 0 or index * BLOCK_SIZE >= self.size:
            raise InvalidParameterValue(f"block index: {index} is outside the {self.volume_size_gib} GiB snapshot "
                                        f"{self.snapshot_id}", field="block_index")
        length = len(data)
        if length > BLOCK_SIZE:
            raise InvalidParameterValue(f"block {index}: {length} bytes, a block holds at most {BLOCK_SIZE}",
                                        field="data")
        self._raise_failure()
        if length < BLOCK_SIZE:
            block = bytes(data) + ZERO_BLOCK[length:]
        else:
            block = data if isinstance(data, bytes) else bytes(data)
        if is_zero(block):
            if self._parent_blocks is None or index not in self._parent_blocks:
                with self._lock:
                    self.stats.zero_skipped += 1
                return
            digest = ZERO_DIGEST
        else:
            digest = known_digest or hashlib.sha256(block).digest()
        if self._unchanged is not None and self._unchanged(index, digest):
            with self._lock:
                self.stats.unchanged_skipped += 1
            return
        with self._lock:
            while self._outstanding >= self._max_outstanding and self._failure is None:
                self._lock.wait()
            self._raise_failure()
            if self._completed:
                raise InvalidRequest(f"snapshot {self.snapshot_id} is completed; no more blocks can be written")
            self._outstanding += 1
        self._client.put_block(self.snapshot_id, index, block, digest, self._written, context=(index, digest))

    def _written(self, call: _Call, error: SnapkeepError | None) -> None:
        index, digest = call.context
        with self._lock:
            self._outstanding -= 1
            if error is not None:
                self._failure = self._failure or error
            else:
                self._digests[index] = digest
                self.stats.blocks_written = len(self._digests)
                if digest == ZERO_DIGEST:
                    self.stats.zeros_written += 1
            self._lock.notify_all()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def flush(self) -> None:
        """Wait until every block handed over is written; raises the first failure."""
        with self._lock:
            while self._outstanding:
                self._lock.wait()
        self._raise_failure()

    def aggregate_checksum(self) -> tuple[int, str]:
        """(ChangedBlocksCount, the LINEAR aggregate): SHA-256 over the written blocks' SHA-256 digests
        concatenated in ascending block index order, base64 — how AWS's coldsnap computes it."""
        with self._lock:
            ordered = b"".join(self._digests[index] for index in sorted(self._digests))
            count = len(self._digests)
        return count, base64.b64encode(hashlib.sha256(ordered).digest()).decode("ascii")

    def complete(self, *, wait: bool = True, wait_seconds: float = 1800.0, poll_seconds: float = 0.2) -> str:
        """Seal the snapshot (CompleteSnapshot) and, with `wait`, return once EC2 reports it completed."""
        self.flush()
        count, checksum = self.aggregate_checksum()
        status = complete_snapshot(self._ebs(), self.snapshot_id, count, checksum)
        with self._lock:
            self._completed = True
        self.status = status
        if wait:
            self.wait_completed(wait_seconds, poll_seconds)
        self._close_client()
        return self.snapshot_id

    def wait_completed(self, wait_seconds: float = 1800.0, poll_seconds: float = 0.2) -> None:
        ec2 = self._sessions.client("ec2", self._region, self._role_arn)
        deadline = time.monotonic() + wait_seconds
        delay = poll_seconds
        while True:
            with aws_errors(f"DescribeSnapshots {self.snapshot_id}"):
                found = ec2.describe_snapshots(SnapshotIds=[self.snapshot_id])["Snapshots"]
            state = found[0]["State"] if found else "missing"
            self.status = state
            if state == "completed":
                return
            if state in ("error", "missing"):
                raise DependencyFailure(f"snapshot {self.snapshot_id} ended in state {state} after CompleteSnapshot"
                                        + (f": {found[0].get('StateMessage')}" if found and found[0].get(
                                            "StateMessage") else ""))
            if time.monotonic() > deadline:
                raise TransientAwsError(f"snapshot {self.snapshot_id} is still {state} after {wait_seconds:g} s")
            time.sleep(delay)
            delay = min(delay * 1.5, 5.0)

    def _ebs(self) -> Any:
        return self._sessions.client("ebs", self._region, self._role_arn)

    def _list_parent(self, parent_snapshot_id: str) -> IndexRuns:
        runs = IndexRuns()
        kwargs: dict[str, Any] = {"SnapshotId": parent_snapshot_id, "MaxResults": LIST_PAGE_SIZE}
        while True:
            with aws_errors(f"ListSnapshotBlocks {parent_snapshot_id}"):
                answer = self._ebs().list_snapshot_blocks(**kwargs)
            for block in answer.get("Blocks", []):
                runs.add(int(block["BlockIndex"]))
            if not answer.get("NextToken"):
                return runs
            kwargs["NextToken"] = answer["NextToken"]

    def _close_client(self) -> None:
        if self._owns_client:
            self._client.close()

    def close(self) -> None:
        """Release the client. An uncompleted snapshot is left to AWS, which moves it to `error` after its
        Timeout."""
        self._close_client()

    def __enter__(self) -> EbsBlockSink:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
