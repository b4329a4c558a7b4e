"""``posrag profile``: measure a model's position bias on a short synthetic run and save the profile."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from posrag.bias import DEFAULT_TOLERANCE
from posrag.cli._common import fail
from posrag.errors import PosragError


def register(app: typer.Typer) -> None:
    app.command("profile")(profile)


def profile(
    model: Annotated[str | None, typer.Option(help="LLM: default packaged Gemma 3 270M, or a local path.")] = None,
    questions: Annotated[int, typer.Option(help="Synthetic questions per position.", min=1)] = 20,
    positions: Annotated[str, typer.Option(help="1-based gold positions, comma-separated.")] = "1,5,10,15,20",
    docs: Annotated[int, typer.Option(help="Documents per question.", min=2, max=20)] = 20,
    seed: Annotated[int, typer.Option(help="Seed of the probe questions.")] = 1,
    tolerance: Annotated[
        float,
        typer.Option(help="Accuracy difference (0-1) below which the curve counts as flat / ends as level."),
    ] = DEFAULT_TOLERANCE,
    out: Annotated[
        Path | None,
        typer.Option(help="Where to save the profile (default: posrag's cache, profiles/<model>.json)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the profile as JSON.")] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Probe a model with a short synthetic run and classify its position bias (recency, u_curve, flat).

    The saved profile is what position_bias="auto" resolves to for this model (it takes precedence over a
    profile shipped with posrag), and its recommended reorder strategy is the one the reorder step pairs with it.
    """
    from posrag._files import check_writable
    from posrag.bench.runner import profile_bias
    from posrag.models import load_causal_lm
    from posrag.profiles import profile_path, save_profile

    try:
        parsed = tuple(int(p) for p in positions.split(",") if p.strip())
    except ValueError:
        raise typer.BadParameter(f"--positions takes comma-separated integers; got {positions!r}.") from None
    try:
        lm = load_causal_lm(model, progress=progress)
        check_writable(
            (out or profile_path(lm.name)).parent,
            hint="pass --out to a writable file, or set POSRAG_CACHE_DIR to a writable folder",
        )
        result = profile_bias(
            lm.model,
            lm.tokenizer,
            model_name=lm.name,
            questions=questions,
            positions=parsed,
            num_docs=docs,
            seed=seed,
            tolerance=tolerance,
            progress=progress,
        )
        path = save_profile(result, out)
    except PosragError as exc:
        raise fail(exc) from None
    if as_json:
        typer.echo(json.dumps({**result.to_dict(), "path": str(path)}, indent=2))
        return
    curve = ", ".join(f"{p}: {100 * a:.0f}%" for p, a in zip(result.positions, result.accuracy, strict=True))
    typer.echo(f"Model: {result.model}")
    typer.echo(f"Accuracy by gold position (of {result.num_docs}, {result.questions} questions): {curve}")
    typer.echo(
        f"Position bias: {result.shape()} (tolerance {result.tolerance:.2f}); "
        f"recommended reorder strategy: {result.reorder_strategy()}"
    )
    typer.echo(f"Saved to {path}")
