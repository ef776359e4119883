"""The `snapkeep` command line (Typer + rich)."""
