"""``posrag explore``: generate a token once, then see its next-token predictions at later positions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from posrag.errors import PosragError

DEFAULT_GAPS = "1,5,10,20,50,100"


def register(app: typer.Typer) -> None:
    app.command("explore")(explore)


def parse_numbers(text: str, option: str) -> list[int | float]:
    """``"5,10,20.5"`` → ``[5, 10, 20.5]``; a clear error naming the option otherwise."""
    values: list[int | float] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            number = float(part)
        except ValueError:
            raise typer.BadParameter(f"{part!r} is not a number; give e.g. 5,10,20.", param_hint=option) from None
        values.append(int(number) if number.is_integer() else number)
    if not values:
        raise typer.BadParameter("give at least one number, e.g. 5,10,20.", param_hint=option)
    return values


def _fmt(value: float) -> str:
    return f"{value:.3f}"


def explore(
    prompt: Annotated[str, typer.Argument(help="Text whose next token is generated and explored.")],
    gaps: Annotated[
        str | None, typer.Option(help=f"Comma-separated gaps after the natural position [default: {DEFAULT_GAPS}].")
    ] = None,
    positions: Annotated[
        str | None, typer.Option(help="Comma-separated absolute positions instead of gaps (position = tokens + gap).")
    ] = None,
    adaptive: Annotated[
        bool,
        typer.Option("--adaptive", help="Let the generated token choose the gaps (punctuation: far, short: near)."),
    ] = False,
    dynamic: Annotated[
        bool, typer.Option("--dynamic", help="Choose gaps from the model's uncertainty (higher entropy → larger gaps).")
    ] = False,
    threshold: Annotated[
        float, typer.Option(help="Probability above which next tokens count as parallel candidates.", min=0, max=1)
    ] = 0.05,
    top_k: Annotated[int, typer.Option(help="Predictions kept per gap (the table shows two).", min=2, max=50)] = 5,
    path: Annotated[
        int, typer.Option(help="Also continue the token greedily for this many tokens at each gap.", min=0, max=64)
    ] = 0,
    model: Annotated[
        str | None, typer.Option(help="Model directory, .gguf file or cached hub id [default: packaged Gemma 3 270M].")
    ] = None,
    special_tokens: Annotated[
        bool,
        typer.Option(help="Add the tokenizer's special tokens (Gemma's BOS, which counts as position 0)."),
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    plot: Annotated[
        Path | None, typer.Option(help="Save a plot of how the top next-token probabilities shift with the gap.")
    ] = None,
) -> None:
    """Generate the next token once, then place it at later positions and show what the model predicts next.

    All gaps cost about one forward pass: the prompt runs once and every explored copy of the token shares
    one batched pass. Example: posrag explore "Once upon a time" --gaps 5,10,20
    """
    from rich.console import Console
    from rich.table import Table

    from posrag.retroactive import RetroactivePositionGenerator

    chosen = [
        name
        for name, on in (("--gaps", gaps), ("--positions", positions), ("--adaptive", adaptive), ("--dynamic", dynamic))
        if on
    ]
    if len(chosen) > 1:
        raise typer.BadParameter(f"use one of --gaps, --positions, --adaptive, --dynamic (got {', '.join(chosen)}).")
    console = Console(stderr=as_json)
    try:
        with console.status("Loading the model…", spinner="dots"):
            generator = RetroactivePositionGenerator(model, top_k=top_k, add_special_tokens=special_tokens)
        if positions:
            result = generator.compare_positions(prompt, parse_numbers(positions, "--positions"), threshold)
        elif adaptive:
            result = generator.adaptive_exploration(prompt, selection_threshold=threshold)
        elif dynamic:
            result = generator.dynamic_exploration(prompt, selection_threshold=threshold)
        else:
            result = generator.generate_and_explore(prompt, parse_numbers(gaps or DEFAULT_GAPS, "--gaps"), threshold)
        paths = generator.expand_paths(prompt, result.gaps(), length=path) if path else []
        plotted = None
        if plot is not None:
            from posrag.retroactive.plotting import plot_exploration

            plotted = plot_exploration(result, plot)
    except PosragError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None

    if as_json:
        data = result.to_dict()
        if paths:
            data["paths"] = [p.to_dict() for p in paths]
        if plotted is not None:
            data["plot"] = str(plotted)
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    console.print(
        f"Generated token [bold]{result.original_token!r}[/bold] (p={_fmt(result.original_prob)}) after a "
        f"{result.prompt_length}-token prompt; natural position {result.original_position}."
    )
    table = Table(title="Next-token prediction with the token moved to later positions")
    for column in ("position", "gap", "top prediction", "prob", "second prediction", "prob", "entropy", "KL"):
        table.add_column(column, justify="right" if column in ("position", "gap", "prob", "entropy", "KL") else "left")
    rows = list(result.explorations)
    if 0 not in result.gaps():
        rows.insert(0, result.baseline)
    for e in rows:
        second = (repr(e.top_tokens[1]), _fmt(e.top_probs[1])) if len(e.top_tokens) > 1 else ("", "")
        style = "dim" if e is result.baseline and e not in result.explorations else None
        table.add_row(
            str(e.position),
            str(e.gap),
            repr(e.top_next_token),
            _fmt(e.top_next_prob),
            *second,
            _fmt(e.entropy),
            _fmt(e.kl_divergence),
            style=style,
        )
    console.print(table)
    for p in paths:
        console.print(f"gap {p.gap}: {p.text!r}")
    if plotted is not None:
        console.print(f"Plot saved to {plotted}")
