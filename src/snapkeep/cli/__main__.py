"""`python -m snapkeep.cli`: the same as the `snapkeep` command."""

from snapkeep.cli.main import run

run()
