"""``posrag bench compare``: two runs of one benchmark (two backends, two versions), trial for trial."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from posrag.cli._common import comma_list, fail
from posrag.errors import ConfigurationError, PosragError


def register(bench_app: typer.Typer) -> None:
    bench_app.command("compare")(compare_command)


def compare_command(
    first: Annotated[Path, typer.Argument(help="A result JSON with its trial records (--json with --records).")],
    second: Annotated[Path, typer.Argument(help="Another run of the same benchmark (another backend or version).")],
    names: Annotated[str, typer.Option(help="What to call the two runs in the table, comma-separated.")] = "A,B",
    table: Annotated[Path | None, typer.Option(help="Also write the markdown table here.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the differences as JSON here.")] = None,
) -> None:
    """Trial for trial, the second run against the first: per condition, regime and position the paired accuracy
    difference with its 95 % interval, the trials won and lost, and how many answers changed at all.

    For two backends (`--backend torch` and `--backend llama.cpp`) or two versions on the same data and settings.
    """
    import json

    from posrag.bench.paired import format_run_differences, paired_runs
    from posrag.bench.shards import read_result

    labels = comma_list(names)
    try:
        if len(labels) != 2:
            raise ConfigurationError(f"--names needs two names, comma-separated; got {names!r}.")
        runs = [read_result(path) for path in (first, second)]
        for path, run in zip((first, second), runs, strict=True):
            if not run.records:
                raise ConfigurationError(
                    f"{path} has no trial records; run `posrag bench litm` with --records (or --shard) to keep them."
                )
        differences = paired_runs(runs[0].records, runs[1].records)
    except PosragError as exc:
        raise fail(exc) from None
    text = format_run_differences(differences, (labels[0], labels[1]))
    typer.echo(text)
    if table is not None:
        table.parent.mkdir(parents=True, exist_ok=True)
        table.write_text(text, encoding="utf-8")
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "runs": [str(first), str(second)],
            "names": list(labels),
            "differences": [d.to_dict() for d in differences],
        }
        json_out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
