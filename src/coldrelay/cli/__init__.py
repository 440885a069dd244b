"""The ``coldrelay`` command line: one Typer group per package."""
