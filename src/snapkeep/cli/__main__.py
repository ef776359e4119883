"""`snapkeep` and `python -m snapkeep.cli`.

The image repository commands (`repo`, `image`) go straight to their lean parser: a backup's process should cost
what the backup costs, not the import of the whole Typer app, the catalog and the API. Everything else (and
`snapkeep --help`, which lists `repo` and `image` too) goes to the Typer app.
"""

import os
import sys

LEAN_GROUPS = ("repo", "image")


def run() -> None:
    argv = sys.argv[1:]
    if argv and argv[0] in LEAN_GROUPS:
        from snapkeep.cli.early_unlock import start

        start(argv, os.environ)  # the KDF runs while the command loads and parses (early_unlock.py says why)
        from snapkeep.cli.repos import main

        code = main(argv)
        # The command has closed, synced and unlocked everything it opened; what is left is the interpreter
        # tearing down a hundred modules, which costs a small backup 10 ms more. Flush the output and leave.
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # a closed pipe: nothing more can be said
                code = code or 1
        os._exit(code)
    from snapkeep.cli.main import run as run_app

    run_app()


if __name__ == "__main__":
    run()
