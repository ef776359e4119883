"""A lean HTTP client for the EBS block path: many requests in flight, reused connections, bodies straight into
the caller's buffers.

boto3 spends 1.4 to 3.6 ms of CPU on one 512 KiB GetSnapshotBlock over TLS (bench/ebs_client.py and the
performance notes; glibc's malloc settings account for much of the range); libcurl driven from one thread with its
multi interface spends about 0.8 ms with the checksum check, so two cores can keep a volume at the API's 1,000
requests per second. When pycurl cannot be imported, a urllib3 pool with one thread per request in flight does
the same job at about three times the CPU (logged once).

The transport is deliberately dumb: it sends what it is given and reports what came back (or the transport
error). Signing, retries and throttling belong to the caller.
"""

from __future__ import annotations

import logging
import os
import select
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)

USER_AGENT = "snapkeep-ebs-blocks"
CONNECT_TIMEOUT_SECONDS = 10
STALL_SECONDS = 60
"""A transfer that moves less than a KiB per second for this long is abandoned (then retried by the caller)."""


class Transfer:
    """One request and, once `callback` is called, its outcome: `status` and `headers` (lower-case names), the body
    in `into[:length]` when a buffer was given (else in `content`), or `error` when no response came."""

    __slots__ = ("body", "callback", "chunks", "context", "error", "headers", "into", "length", "method",
                 "response_headers", "status", "url")

    def __init__(self, method: str, url: str, headers: list[str], body: bytes | None = None,
                 into: bytearray | None = None, callback: Callable[[Transfer], None] | None = None,
                 context: Any = None) -> None:
        self.method = method
        self.url = url
        self.headers = headers
        """`Name: value` lines."""
        self.body = body
        self.into = into
        self.callback = callback
        self.context = context
        self.status = 0
        self.response_headers: dict[str, str] = {}
        self.length = 0
        self.chunks: list[bytes] = []
        self.error: str | None = None

    @property
    def content(self) -> bytes:
        if self.into is not None:
            return bytes(self.into[:self.length])
        return b"".join(self.chunks)

    def reset_response(self) -> None:
        self.status = 0
        self.response_headers = {}
        self.length = 0
        self.chunks = []
        self.error = None


class Transport(Protocol):
    """Sends transfers; calls each one's callback exactly once, from a thread of its own."""

    name: str

    def submit(self, transfer: Transfer) -> None: ...

    def close(self) -> None: ...


def ca_bundle_path(explicit: str | None = None) -> str:
    """Which CA certificates to trust: the explicit path, else AWS_CA_BUNDLE, else botocore's (certifi's) bundle —
    the same choice boto3 makes, so both clients trust the same endpoints."""
    if explicit:
        return explicit
    from_env = os.environ.get("AWS_CA_BUNDLE")
    if from_env:
        return from_env
    from botocore.httpsession import get_cert_path

    return str(get_cert_path(True))


def open_transport(max_in_flight: int, *, ca_bundle: str | None = None, prefer: str | None = None) -> Transport:
    """The pycurl transport, or urllib3 when pycurl is missing (or `prefer="urllib3"`)."""
    if prefer not in (None, "pycurl", "urllib3"):
        raise ValueError(f"transport: must be pycurl or urllib3, got {prefer!r}")
    if prefer != "urllib3":
        try:
            return CurlTransport(max_in_flight, ca_bundle=ca_bundle)
        except ImportError as exc:
            if prefer == "pycurl":
                raise
            _log_fallback(exc)
    return Urllib3Transport(max_in_flight, ca_bundle=ca_bundle)


_fallback_logged = False


def _log_fallback(exc: ImportError) -> None:
    global _fallback_logged
    if not _fallback_logged:
        _fallback_logged = True
        logger.warning("pycurl cannot be imported (%s): the EBS block path falls back to urllib3, which costs "
                       "about three times the CPU per block (bench/ebs_client.py); install pycurl to get the lean "
                       "client back", exc)


class CurlTransport:
    """libcurl's multi interface, driven by one thread: up to `max_in_flight` transfers at once over a shared
    connection cache, easy handles reused, response bodies written straight into the caller's buffer."""

    name = "pycurl"

    def __init__(self, max_in_flight: int, *, ca_bundle: str | None = None) -> None:
        import pycurl  # type: ignore[import-untyped]

        self._pycurl: Any = pycurl
        self._ca_bundle = ca_bundle_path(ca_bundle)
        self._multi: Any = pycurl.CurlMulti()
        self._multi.setopt(pycurl.M_MAXCONNECTS, max_in_flight + 4)
        self._lock = threading.Lock()
        self._queue: deque[Transfer] = deque()
        self._free: list[Any] = []
        self._active: dict[Any, Transfer] = {}
        self._closed = False
        self._waiting = False
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        self._thread = threading.Thread(target=self._run, name="snapkeep-curl", daemon=True)
        self._thread.start()

    def submit(self, transfer: Transfer) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("the transport is closed")
            self._queue.append(transfer)
            wake = self._waiting
            self._waiting = False
        if wake:
            os.write(self._wake_write, b"x")

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        os.write(self._wake_write, b"x")
        self._thread.join(timeout=30)
        os.close(self._wake_read)
        os.close(self._wake_write)

    # --- the pump thread ---------------------------------------------------------------------------------------

    def _run(self) -> None:
        multi = self._multi
        pycurl = self._pycurl
        wake = self._wake_read
        try:
            while True:
                with self._lock:
                    closed = self._closed
                    started = list(self._queue)
                    self._queue.clear()
                if closed:
                    break
                for transfer in started:
                    try:
                        self._start(transfer)
                    except Exception as exc:  # a bad option for this transfer: it fails, the others go on
                        transfer.error = f"the request could not be started: {exc}"
                        _deliver(transfer)
                while True:
                    code, _ = multi.perform()
                    if code != pycurl.E_CALL_MULTI_PERFORM:
                        break
                self._collect()
                with self._lock:
                    if self._queue or self._closed:
                        continue
                    self._waiting = True
                if self._active:
                    readers, writers, errors = multi.fdset()
                    timeout = multi.timeout()
                    seconds = 1.0 if timeout < 0 else min(timeout / 1000.0, 1.0)
                    if readers or writers or errors:
                        select.select([*readers, wake], writers, errors, seconds)
                    else:
                        select.select([wake], [], [], min(seconds, 0.01))
                else:
                    select.select([wake], [], [], 1.0)
                with self._lock:
                    self._waiting = False
                try:
                    while os.read(wake, 4096):
                        pass
                except BlockingIOError:
                    pass
        finally:
            self._shutdown()

    def _start(self, transfer: Transfer) -> None:
        pycurl = self._pycurl
        curl = self._free.pop() if self._free else self._new_handle()
        transfer.reset_response()
        try:
            curl.setopt(pycurl.URL, transfer.url)
            curl.setopt(pycurl.HTTPHEADER, transfer.headers)
            if transfer.method == "GET":
                curl.setopt(pycurl.HTTPGET, 1)
            else:
                curl.setopt(pycurl.CUSTOMREQUEST, transfer.method)
                curl.setopt(pycurl.POSTFIELDSIZE, len(transfer.body or b""))
                curl.setopt(pycurl.POSTFIELDS, transfer.body or b"")
            curl.setopt(pycurl.WRITEFUNCTION, _body_writer(transfer))
            curl.setopt(pycurl.HEADERFUNCTION, _header_reader(transfer))
            self._multi.add_handle(curl)
        except Exception:
            curl.close()  # its options are in an unknown state: not reused
            raise
        self._active[curl] = transfer

    def _new_handle(self) -> Any:
        pycurl = self._pycurl
        curl = pycurl.Curl()
        self._configure(curl)
        return curl

    def _configure(self, curl: Any) -> None:
        pycurl = self._pycurl
        curl.setopt(pycurl.NOSIGNAL, 1)
        curl.setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_1_1)
        curl.setopt(pycurl.CONNECTTIMEOUT, CONNECT_TIMEOUT_SECONDS)
        curl.setopt(pycurl.LOW_SPEED_LIMIT, 1024)
        curl.setopt(pycurl.LOW_SPEED_TIME, STALL_SECONDS)
        curl.setopt(pycurl.TCP_KEEPALIVE, 1)
        curl.setopt(pycurl.CAINFO, self._ca_bundle)
        curl.setopt(pycurl.USERAGENT, USER_AGENT)

    def _collect(self) -> None:
        multi = self._multi
        while True:
            queued, succeeded, failed = multi.info_read()
            for curl in succeeded:
                self._finish(curl, None)
            for curl, _code, message in failed:
                self._finish(curl, message or "transfer failed")
            if not queued:
                return

    def _finish(self, curl: Any, error: str | None) -> None:
        pycurl = self._pycurl
        self._multi.remove_handle(curl)
        transfer = self._active.pop(curl)
        if error is None:
            transfer.status = int(curl.getinfo(pycurl.RESPONSE_CODE))
        else:
            transfer.error = error
        if transfer.method != "GET":
            curl.unsetopt(pycurl.CUSTOMREQUEST)
            curl.setopt(pycurl.POSTFIELDS, b"")  # let go of the body now, not when the handle is next used
        self._free.append(curl)
        _deliver(transfer)

    def _shutdown(self) -> None:
        for curl, transfer in list(self._active.items()):
            self._multi.remove_handle(curl)
            curl.close()
            transfer.error = "the transport was closed"
            _deliver(transfer)
        self._active.clear()
        with self._lock:
            pending = list(self._queue)
            self._queue.clear()
        for transfer in pending:
            transfer.error = "the transport was closed"
            _deliver(transfer)
        for curl in self._free:
            curl.close()
        self._free.clear()
        self._multi.close()


def _body_writer(transfer: Transfer) -> Callable[[bytes], int | None]:
    into = transfer.into
    if into is None:
        chunks = transfer.chunks

        def collect(data: bytes) -> None:
            chunks.append(data)

        return collect
    view = memoryview(into)
    capacity = len(into)

    def write(data: bytes) -> int | None:
        start = transfer.length
        end = start + len(data)
        if end > capacity:
            return 0  # more than the buffer holds: libcurl aborts the transfer (CURLE_WRITE_ERROR)
        view[start:end] = data
        transfer.length = end
        return None

    return write


def _header_reader(transfer: Transfer) -> Callable[[bytes], None]:
    headers = transfer.response_headers

    def read(line: bytes) -> None:
        name, sep, value = line.partition(b":")
        if sep:
            headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
        elif line.startswith(b"HTTP/"):
            headers.clear()  # a new response (after 100 Continue or a redirect): forget the previous headers

    return read


def _deliver(transfer: Transfer) -> None:
    callback = transfer.callback
    if callback is None:
        return
    try:
        callback(transfer)
    except Exception:  # a failing callback must not take the pump down with every other transfer
        logger.exception("a transfer callback failed for %s %s", transfer.method, urlsplit(transfer.url).path)


class Urllib3Transport:
    """The fallback: a urllib3 connection pool and one worker thread per request in flight."""

    name = "urllib3"

    def __init__(self, max_in_flight: int, *, ca_bundle: str | None = None) -> None:
        import urllib3

        self._pool = urllib3.PoolManager(num_pools=4, maxsize=max_in_flight, block=False,
                                         cert_reqs="CERT_REQUIRED", ca_certs=ca_bundle_path(ca_bundle),
                                         headers={"User-Agent": USER_AGENT})
        self._timeout = urllib3.Timeout(connect=CONNECT_TIMEOUT_SECONDS, read=STALL_SECONDS)
        self._executor = ThreadPoolExecutor(max_workers=max_in_flight, thread_name_prefix="snapkeep-http")

    def submit(self, transfer: Transfer) -> None:
        self._executor.submit(self._run, transfer)

    def _run(self, transfer: Transfer) -> None:
        transfer.reset_response()
        headers = {}
        for line in transfer.headers:
            name, _, value = line.partition(":")
            if value.strip():  # `Expect:` with no value means "send no Expect header" (libcurl's convention)
                headers[name.strip()] = value.strip()
        try:
            response = self._pool.request(transfer.method, transfer.url, headers=headers, body=transfer.body,
                                          preload_content=False, retries=False, redirect=False,
                                          timeout=self._timeout)
            try:
                transfer.status = response.status
                transfer.response_headers = {name.lower(): value for name, value in response.headers.items()}
                if transfer.into is not None:
                    view = memoryview(transfer.into)
                    while transfer.length < len(view):
                        count = response.readinto(view[transfer.length:])
                        if not count:
                            break
                        transfer.length += count
                    if response.read(1):
                        transfer.error = "the response is larger than the buffer given for it"
                else:
                    transfer.chunks.append(response.read())
            finally:
                response.release_conn()
        except Exception as exc:  # urllib3's errors have no common base worth narrowing to
            transfer.error = f"{type(exc).__name__}: {exc}"
        _deliver(transfer)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=False)
        self._pool.clear()
