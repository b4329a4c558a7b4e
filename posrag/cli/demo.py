"""``posrag demo``: retrieve, reorder and answer over the shipped corpus with the embedded models."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo() -> None:
    """Run the end-to-end pipeline on the embedded defaults."""
    typer.echo("demo: under construction")
