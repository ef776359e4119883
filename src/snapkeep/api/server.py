"""Serving the API with uvicorn in a background thread of the Snapkeep process (beside the workers)."""

from __future__ import annotations

import threading
import time
from typing import Any

import uvicorn


class ApiServer:
    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        self._config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off",
                                      access_log=False)
        self._server = uvicorn.Server(self._config)
        self._thread: threading.Thread | None = None
        self.endpoint = ""

    def start(self, timeout: float = 30.0) -> ApiServer:
        self._thread = threading.Thread(target=self._server.run, name="snapkeep-api", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"the API server could not listen on {self._config.host}:{self._config.port}")
            if time.monotonic() > deadline:
                raise RuntimeError("the API server did not start in time")
            time.sleep(0.02)
        host, port = self._server.servers[0].sockets[0].getsockname()[:2]
        self.endpoint = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(30)

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
