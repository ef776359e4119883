"""Long-running processes: the server (scheduler + workers, optionally with the lab) and the lab alone."""

from __future__ import annotations

import logging
import os
import signal
import threading
from types import FrameType

from snapkeep.app import Snapkeep
from snapkeep.cli.output import console
from snapkeep.config import LAB_FILE, Settings, write_lab_file


def _wait_for_signal() -> None:
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    while not stop.wait(0.5):
        pass


def protect_lab_fleet(sk: Snapkeep, fleet_accounts: dict[str, str | None], regions: list[str]) -> None:
    for account_id, role_arn in fleet_accounts.items():
        sk.service.put_protected_account(account_id, regions, role_arn)


def run_server(settings: Settings, *, lab: bool, lab_port: int, workers: bool, threads: int | None,
               host: str = "127.0.0.1", port: int = 8480) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    lab_server = None
    if lab:
        from snapkeep.lab.fleet import seed_fleet
        from snapkeep.lab.server import LabServer

        lab_server = LabServer(port=lab_port, snapshot_seconds=2.0)
        lab_server.start()
        settings = settings.with_lab(lab_server.endpoint)
        fleet = seed_fleet(lab_server.endpoint)
        write_lab_file(settings.home, lab_server.endpoint)
    sk = Snapkeep.open(settings)
    if lab_server is not None:
        protect_lab_fleet(sk, fleet.account_roles(), list(fleet.regions))
        console.print(f"AWS lab:  {lab_server.endpoint}")
    console.print(f"Catalog:  {settings.database_url}")
    from snapkeep.api.server import ApiServer

    api = ApiServer(sk.api(os.environ), host, port).start()
    console.print(f"AWS Backup API: {api.endpoint}")
    pool = sk.workers(threads) if workers else None
    if pool is not None:
        pool.start()
    console.print("Snapkeep server running (Ctrl-C to stop)", highlight=False)
    try:
        _wait_for_signal()
    finally:
        api.stop()
        if pool is not None:
            pool.stop()
        sk.close()
        if lab_server is not None:
            (settings.home / LAB_FILE).unlink(missing_ok=True)
            lab_server.stop()


def run_lab(port: int, seed: bool, snapshot_seconds: float) -> None:
    from snapkeep.lab.fleet import seed_fleet
    from snapkeep.lab.server import LabServer

    server = LabServer(port=port, snapshot_seconds=snapshot_seconds)
    server.start()
    try:
        console.print(f"AWS lab listening on {server.endpoint}")
        if seed:
            fleet = seed_fleet(server.endpoint)
            console.print_json(fleet.to_json())
        _wait_for_signal()
    finally:
        server.stop()
