"""What every ``posrag`` command shares: reading a comma-separated option, and failing on a posrag error."""

from __future__ import annotations

import typer

from posrag.errors import PosragError


def comma_list(value: str) -> tuple[str, ...]:
    """The non-empty, stripped items of a comma-separated option."""
    return tuple(v.strip() for v in value.split(",") if v.strip())


def fail(exc: PosragError) -> typer.Exit:
    """Print ``exc`` as the command's error and return the exit (status 2) to raise."""
    typer.echo(f"Error: {exc}", err=True)
    return typer.Exit(2)
