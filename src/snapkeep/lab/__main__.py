"""`python -m snapkeep.lab [--host 127.0.0.1] [--port N] [--snapshot-seconds S] [--seed]`

Prints the endpoint on the first line of stdout once the lab is listening (and seeded, with --seed; the
fleet's JSON follows on one line), then serves until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import sys

from snapkeep.lab.server import DEFAULT_HOST, serve_forever
from snapkeep.lab.settings import SNAPSHOT_SECONDS_ENV, parse_snapshot_seconds, snapshot_seconds_from_env


def _seconds(raw: str) -> float:
    try:
        return parse_snapshot_seconds(raw, field="--snapshot-seconds")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m snapkeep.lab", description="Run the offline AWS lab.")
    parser.add_argument("--host", default=DEFAULT_HOST, help="loopback address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port (default 0: any free port)")
    parser.add_argument(
        "--snapshot-seconds",
        type=_seconds,
        default=None,
        help=f"seconds a new snapshot stays pending (default ${SNAPSHOT_SECONDS_ENV} or 0)",
    )
    parser.add_argument("--seed", action="store_true", help="create the sample fleet before reporting ready")
    args = parser.parse_args(argv)
    try:
        seconds = args.snapshot_seconds if args.snapshot_seconds is not None else snapshot_seconds_from_env()
    except ValueError as exc:
        parser.error(str(exc))

    def ready(endpoint: str) -> None:
        fleet_json = None
        if args.seed:
            from snapkeep.lab.fleet import seed_fleet

            fleet_json = json.dumps(seed_fleet(endpoint).to_dict())
        print(endpoint, flush=True)
        if fleet_json is not None:
            print(fleet_json, flush=True)

    try:
        serve_forever(args.host, args.port, seconds, ready)
    except (ValueError, RuntimeError) as exc:
        print(f"snapkeep lab: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
