"""``posrag demo``: retrieve, reorder and answer over the shipped corpus with the embedded models."""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer

from posrag.errors import PosragError
from posrag.ordering import STRATEGIES


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo(
    question: Annotated[str | None, typer.Option("--question", "-q", help="Question to ask the demo corpus.")] = None,
    k: Annotated[int, typer.Option(help="Documents to retrieve.", min=1, max=16)] = 5,
    strategy: Annotated[str, typer.Option(help=f"Reorder strategy: {', '.join(STRATEGIES)}.")] = "recency",
    steer: Annotated[
        str, typer.Option(help="Steering mechanism toward the documents: none, activation, attention or both.")
    ] = "attention",
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    backend: Annotated[
        str,
        typer.Option(help="What runs the model: torch (default) or llama.cpp (needs pip install 'posrag[llamacpp]')."),
    ] = "torch",
) -> None:
    """Run retrieve → reorder → prompt → generate on the embedded models over a small shipped corpus.

    The first run prepares the packaged Gemma 3 270M once (about a minute on 2 cores, with progress);
    later runs load it from the cache in seconds.
    """
    from rich.console import Console
    from rich.table import Table

    from posrag.demo import DEMO_QUESTION, build_demo_pipeline

    if strategy not in STRATEGIES:
        raise typer.BadParameter(f"{strategy!r} is not a strategy; choose one of {', '.join(STRATEGIES)}.")
    steering = None
    if steer != "none":
        from posrag.steering import SteeringConfig

        if steer not in ("activation", "attention", "both"):
            raise typer.BadParameter(f"--steer {steer!r}: choose none, activation, attention or both.")
        steering = SteeringConfig(mechanism=steer)  # type: ignore[arg-type]
    console = Console(stderr=as_json)
    started = time.perf_counter()
    with console.status("Loading the embedded models…", spinner="dots"):
        try:
            pipeline = build_demo_pipeline(k=k, strategy=strategy, steering=steering, backend=backend)
        except PosragError as exc:
            raise typer.BadParameter(str(exc)) from None
    loaded = time.perf_counter() - started
    result = pipeline.run(question or DEMO_QUESTION)
    if as_json:
        typer.echo(json.dumps({**result.to_dict(), "load_s": loaded}, indent=2))
        return
    console.print(f"[bold]Question:[/bold] {result.question}")
    table = Table(title=f"Retrieved documents in prompt order (strategy: {result.strategy})")
    table.add_column("#", justify="right")
    table.add_column("rel. pos", justify="right")
    table.add_column("score", justify="right")
    table.add_column("title", max_width=22)
    table.add_column("text", ratio=1, overflow="fold")
    if result.steering:
        table.add_column("steering", max_width=16)
    steered = list(result.steering)
    for i, span in enumerate(result.spans):
        doc = span.document
        row = [
            str(span.position.index + 1),
            f"{span.position.relative:.2f}",
            "-" if doc.score is None else f"{doc.score:.3f}",
            str(doc.metadata.get("title", "")),
            doc.text,
        ]
        if steered:
            row.append(_steering_cell(steered[i]))
        table.add_row(*row)
    console.print(table)
    if steered:
        count = sum(entry["tier"] != "off" for entry in steered)
        console.print(f"[bold]Steering:[/bold] {count} document(s) steered ({steer}; see docs/steering.md).")
    console.print(f"[bold]Answer:[/bold] {result.answer}")
    timings = ", ".join(f"{name} {value:.2f}s" for name, value in result.timings.items())
    console.print(f"[dim]models loaded in {loaded:.1f}s; {timings}[/dim]")


def _steering_cell(entry: dict) -> str:
    """One document's steering, as the table shows it: tier, attention bias and/or activation intensity."""
    if entry["tier"] == "off":
        return "-"
    parts = [entry["tier"]]
    if entry["attention_bias"]:
        parts.append(f"bias {entry['attention_bias']:.1f}")
    if entry["intensity"]:
        parts.append(f"act {entry['intensity']:.3f}")
    return ", ".join(parts)
