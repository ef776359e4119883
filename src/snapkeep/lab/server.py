"""The lab server: moto's ThreadedMotoServer in this process, with the extension installed, on loopback only."""

from __future__ import annotations

import ipaddress
import logging
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any

DEFAULT_HOST = "127.0.0.1"


def check_loopback(host: str) -> None:
    """The lab has no authentication: it must never listen beyond this machine (no 0.0.0.0)."""
    if host == "localhost":
        return
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"host: must be a loopback address such as 127.0.0.1, got {host!r}") from None
    if not address.is_loopback:
        raise ValueError(f"host: must be a loopback address such as 127.0.0.1, got {host!r}")


class LabServer:
    """moto in server mode on 127.0.0.1 with EBS volumes that carry data.

    `port=0` picks a free port; `endpoint` tells which. `snapshot_seconds` is how long new snapshots stay
    pending (changeable at runtime with POST /_harness/config; a moto reset restores this value). The lab's
    settings and moto's backends are process-wide: two servers in one process share state.
    """

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = 0,
        snapshot_seconds: float = 0.0,
        *,
        log_requests: bool = False,
    ) -> None:
        check_loopback(host)
        if not 0 <= port <= 65535:
            raise ValueError(f"port: must be between 0 and 65535, got {port}")
        from snapkeep.lab.settings import parse_snapshot_seconds

        self._host = host
        self._port = port
        self._snapshot_seconds = parse_snapshot_seconds(snapshot_seconds, field="snapshot_seconds")
        self._log_requests = log_requests
        self._server: Any = None
        self._endpoint: str | None = None

    @property
    def endpoint(self) -> str:
        """`http://127.0.0.1:PORT`, once started."""
        if self._endpoint is None:
            raise RuntimeError("LabServer: call start() first")
        return self._endpoint

    @property
    def running(self) -> bool:
        return self._endpoint is not None

    def start(self) -> LabServer:
        if self._endpoint is not None:
            return self
        # Before any EC2 backend exists: no 1301 built-in AMIs and their snapshots per region.
        os.environ["MOTO_EC2_LOAD_DEFAULT_AMIS"] = "false"
        from snapkeep.lab.extension import install
        from snapkeep.lab.settings import SETTINGS

        install()
        SETTINGS.set_initial_snapshot_seconds(self._snapshot_seconds)
        if not self._log_requests:
            logging.getLogger("werkzeug").setLevel(logging.WARNING)
        server = _make_threaded_server(self._host, self._port)
        server.start()
        if server.startup_error is not None:
            raise RuntimeError(
                f"LabServer: cannot listen on {self._host}:{self._port}: {server.startup_error}"
            ) from server.startup_error
        self._server = server
        host, port = server.get_host_and_port()
        shown = f"[{host}]" if ":" in host else host
        self._endpoint = f"http://{shown}:{port}"
        return self

    def stop(self) -> None:
        server, self._server, self._endpoint = self._server, None, None
        if server is not None:
            server.stop()

    def __enter__(self) -> LabServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _make_threaded_server(host: str, port: int) -> Any:
    from moto.server import ThreadedMotoServer

    class _LabMotoServer(ThreadedMotoServer):  # type: ignore[misc]
        """ThreadedMotoServer that reports a failed bind instead of waiting for it forever."""

        startup_error: BaseException | None = None

        def _server_entry(self) -> None:
            try:
                super()._server_entry()
            except BaseException as exc:
                self.startup_error = exc
                self._server_ready_event.set()

    return _LabMotoServer(ip_address=host, port=port, verbose=False)


def serve_forever(
    host: str = DEFAULT_HOST,
    port: int = 0,
    snapshot_seconds: float = 0.0,
    on_ready: Callable[[str], None] | None = None,
    *,
    stop: threading.Event | None = None,
) -> None:
    """Run a lab in the foreground until SIGINT/SIGTERM (or `stop` is set); `on_ready(endpoint)` once listening."""
    stop = stop or threading.Event()
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():

        def _stop(signum: int, frame: FrameType | None) -> None:
            stop.set()

        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, _stop)
    try:
        with LabServer(host, port, snapshot_seconds) as lab:
            if on_ready is not None:
                on_ready(lab.endpoint)
            while not stop.wait(0.5):
                pass
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
