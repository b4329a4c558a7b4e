"""``posrag bench choose-prompt``: the prompt under which a chat-templated model answers, on calibration questions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from posrag.cli._common import comma_list, fail
from posrag.errors import PosragError


def register(bench_app: typer.Typer) -> None:
    bench_app.command("choose-prompt")(choose_prompt_command)


def choose_prompt_command(
    data: Annotated[
        Path,
        typer.Option(
            help="Calibration questions (records marked split=evaluation are refused), e.g. "
            "docs/data/nq-mined-calibration-20.jsonl.gz."
        ),
    ],
    model: Annotated[str | None, typer.Option(help="LLM: default packaged Gemma 3 270M, or a local path.")] = None,
    limit: Annotated[int | None, typer.Option(help="Use only the first N questions.", min=1)] = None,
    candidates: Annotated[str, typer.Option(help="Comma-separated prompts to try, or 'all'.")] = "all",
    chat_template: Annotated[str, typer.Option(help="on, auto or off, as for `posrag bench litm`.")] = "auto",
    max_new_tokens: Annotated[int, typer.Option(help="Greedy tokens per answer.", min=1)] = 20,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write every candidate's scores here.")] = None,
    backend: Annotated[str, typer.Option(help="torch or llama.cpp, as for `posrag bench litm`.")] = "torch",
    threads: Annotated[int | None, typer.Option(help="Threads, as for `posrag bench litm`.", min=1)] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Pick the prompt under which a model answers when the gold document is alone, on calibration questions.

    Each candidate runs gold-alone (and the baseline at position 1); the best gold-alone accuracy among those
    with at most 20% format failures wins. Pass the winner to `posrag bench litm --prompt`.
    """
    import json

    from posrag.backends import load_backend
    from posrag.bench.conditions import config_from_options
    from posrag.bench.prompts import calibration_records, choose_prompt

    try:
        records = calibration_records(data)[:limit] if limit else calibration_records(data)
        config = config_from_options(
            positions="1",
            conditions="baseline",
            regimes="oracle",
            chat_template=chat_template,
            max_new_tokens=max_new_tokens,
        )
        if threads is not None:
            import torch

            torch.set_num_threads(threads)
        choice = choose_prompt(
            load_backend(model, backend, threads=threads, progress=progress),
            records,
            candidates=None if candidates.strip() == "all" else comma_list(candidates),
            config=config,
            progress=progress,
        )
    except PosragError as exc:
        raise fail(exc) from None
    typer.echo(choice.table())
    typer.echo(f"\nChosen: --prompt {choice.chosen} ({choice.rule}; {choice.questions} calibration questions).")
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(choice.to_dict(), indent=2) + "\n", encoding="utf-8")
