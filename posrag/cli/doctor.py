"""``posrag doctor``: check (and repair) the converted model cache against the manifest made at conversion."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from posrag import models


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)


def doctor(
    repair: Annotated[
        bool, typer.Option(help="Convert the default model again if its files do not match their manifest.")
    ] = True,
    progress: Annotated[bool, typer.Option(help="Show a progress bar while converting.")] = True,
) -> None:
    """Verify the converted default LLM (sizes and sha256 of every file) and repair it if it is damaged."""
    typer.echo(f"posrag cache: {models.cache_dir()}")
    path = models.default_llm_path(progress=progress)
    problems = models.verify_model_cache(path, full=True)
    if not problems:
        typer.echo(f"ok: {path} matches its manifest ({_count(path)} files, sha256 checked)")
        return
    for problem in problems:
        typer.echo(f"damaged: {problem}", err=True)
    if not repair:
        typer.echo("Run `posrag doctor` (without --no-repair) to convert it again.", err=True)
        raise typer.Exit(1)
    path = models.default_llm_path(progress=progress, verify=True)
    typer.echo(f"repaired: {path} was converted again and matches its manifest")


def _count(path: Path) -> int:
    files = models._read_marker(path).get("files")
    return len(files) if isinstance(files, dict) else 0
