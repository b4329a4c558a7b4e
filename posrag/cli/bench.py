"""``posrag bench``: the "Lost in the Middle" benchmark (``litm``) and its data (``make-synthetic``)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer

from posrag.cli._common import comma_list, fail
from posrag.errors import ConfigurationError, PosragError

bench_app = typer.Typer(
    name="bench",
    help="Benchmarks: accuracy by document position for every ordering and steering condition.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(bench_app, name="bench")


@bench_app.command("litm")
def litm(
    data: Annotated[
        Path | None,
        typer.Option(
            help="Records in the Lost-in-the-Middle format (.jsonl or .jsonl.gz); default: the shipped "
            "synthetic set (100 questions, 20 documents)."
        ),
    ] = None,
    positions: Annotated[str, typer.Option(help="1-based gold positions, comma-separated.")] = "1,5,10,15,20",
    conditions: Annotated[
        str,
        typer.Option(
            help="Comma-separated conditions or 'all': baseline, recency, graduated, sandwich, "
            "long_context, none, steer-activation, steer-attention, steer-confident, steer-unscored, hybrid, "
            "control-activation, control-attention, and the reference rows gold-alone (the gold document "
            "alone) and closed-book (no documents)."
        ),
    ] = "all",
    regimes: Annotated[str, typer.Option(help="oracle, retrieval or both (comma-separated).")] = "oracle,retrieval",
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the full result as JSON here.")] = None,
    plot: Annotated[Path | None, typer.Option(help="Write the accuracy-vs-position plot (PNG) here.")] = None,
    table: Annotated[Path | None, typer.Option(help="Also write the markdown table here.")] = None,
    limit: Annotated[int | None, typer.Option(help="Use only the first N questions (quick runs).", min=1)] = None,
    num_docs: Annotated[
        int | None,
        typer.Option(
            help="Documents per question; records with fewer get distractors drawn from the other records "
            "(default: the records' own count, at least the largest position).",
            min=1,
        ),
    ] = None,
    model: Annotated[str | None, typer.Option(help="LLM: default packaged Gemma 3 270M, or a local path.")] = None,
    steering: Annotated[
        str,
        typer.Option(help='SteeringConfig overrides as JSON for every steered condition, e.g. \'{"curve": "flat"}\'.'),
    ] = "{}",
    hybrid_strategy: Annotated[
        str | None,
        typer.Option(
            help="Reorder strategy of 'hybrid', or 'auto' (the model's saved `posrag profile`; "
            "default: the steering preset's pairing)"
        ),
    ] = None,
    hybrid_mechanism: Annotated[
        str | None, typer.Option(help="Steering mechanism of 'hybrid' (default: SteeringConfig's).")
    ] = None,
    max_new_tokens: Annotated[int, typer.Option(help="Greedy tokens per answer (first line is scored).", min=1)] = 20,
    seed: Annotated[int, typer.Option(help="Seed for distractor filling and control targets.")] = 0,
    records: Annotated[
        Path | None,
        typer.Option(
            help="Write every trial (prediction, correctness, latency) here, one JSON object a line "
            "(.jsonl, or .jsonl.gz to compress)."
        ),
    ] = None,
    chat_template: Annotated[
        str,
        typer.Option(
            help="Wrap each prompt as one user turn through the tokenizer's chat template: on, auto (when the "
            "tokenizer has one) or off (the prompt as is; the published numbers)."
        ),
    ] = "off",
    memory: Annotated[
        bool,
        typer.Option(
            "--memory",
            help="Also sample peak memory during each generation (psutil every 5 ms on CPU; costs CPU next to torch).",
        ),
    ] = False,
    reuse_prefix: Annotated[
        bool,
        typer.Option(
            "--reuse-prefix/--no-reuse-prefix",
            help="Prefill the prompt up to the question once per document order and continue it for the plain "
            "and attention-steered conditions (same output, less compute); --no-reuse-prefix runs every prompt "
            "whole.",
        ),
    ] = True,
    shard: Annotated[
        str | None,
        typer.Option(
            help="Run only shard i/N (0-based) of the questions (index mod N); merge the JSON files with "
            "`posrag bench merge`. The JSON keeps its trial records."
        ),
    ] = None,
    quantize: Annotated[
        str | None,
        typer.Option(help="'int8': dynamic int8 linear layers (CPU; faster, slightly different numerics)."),
    ] = None,
    jobs: Annotated[
        int,
        typer.Option(
            help="Run as N local worker processes (shards of the questions, merged into one result with the "
            "same statistics); each loads its own copy of the model. On a small CPU, --jobs <cores> with one "
            "thread each is faster than one process (decoding gains little from a second thread).",
            min=1,
        ),
    ] = 1,
    threads: Annotated[
        int | None,
        typer.Option(
            help="Threads per process, torch's or llama.cpp's (default: torch's choice, llama.cpp's the CPU count; "
            "with --jobs, the cores / N).",
            min=1,
        ),
    ] = None,
    prompt: Annotated[
        str,
        typer.Option(
            help="How the benchmark asks: litm (the paper's prompt, default), litm-reply-cue, instruction-last, "
            "instruction-last-reply-cue (for chat-templated models that continue the document list; "
            "`posrag bench choose-prompt` picks one on calibration questions)."
        ),
    ] = "litm",
    executor: Annotated[
        str,
        typer.Option(
            help="local (one process, or --jobs N local processes) or ray (--jobs N Ray actors, one model load "
            "each; needs pip install 'posrag[ray]')."
        ),
    ] = "local",
    address: Annotated[
        str | None,
        typer.Option(help="--executor ray: an existing Ray cluster ('auto', 'ray://head:10001'); default: local Ray."),
    ] = None,
    shards: Annotated[
        int | None,
        typer.Option(help="--executor ray: split into this many shards (default: --jobs); more balance better.", min=1),
    ] = None,
    backend: Annotated[
        str,
        typer.Option(
            help="What runs the model: torch (the reference), llama.cpp (a .gguf file, or the packaged Gemma's; "
            "needs pip install 'posrag[llamacpp]'; --threads are its threads per decode) or auto (llama.cpp for a "
            "GGUF file when its extra is installed, torch otherwise)."
        ),
    ] = "torch",
    cache: Annotated[
        Path | None,
        typer.Option(
            help="Store every generation in this file (created if missing) and reuse those an earlier run stored "
            "under the same posrag code, model, settings and prompt: a stopped run resumes where it stopped, and a "
            "re-run with other settings generates only the prompts that changed (trials marked 'cached').",
        ),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Accuracy by gold-document position for every ordering and steering condition, with 95% intervals.

    The gold document of each question is moved to each requested position (the distractors keep their
    order); each condition answers greedily; a table goes to stdout, the full result to --json, the figure to
    --plot. Identical prompts and steering plans are generated once and reused.
    """
    from posrag.bench.conditions import config_from_options
    from posrag.bench.report import format_tables, write_outputs
    from posrag.bench.runner import run_litm
    from posrag.bench.shards import Shard

    try:
        part = Shard.parse(shard) if shard is not None else None
        config = config_from_options(
            positions=positions,
            conditions=conditions,
            regimes=regimes,
            num_docs=num_docs,
            max_new_tokens=max_new_tokens,
            steering=steering,
            hybrid_strategy=hybrid_strategy,
            hybrid_mechanism=hybrid_mechanism,
            seed=seed,
            chat_template=chat_template,
            measure_memory=memory,
            reuse_prefix=reuse_prefix,
            prompt=prompt,
        )
        command = "posrag " + shlex.join(sys.argv[1:]) if sys.argv[1:] else None
        if executor not in ("local", "ray"):
            raise ConfigurationError(f"--executor {executor!r} must be 'local' or 'ray'.")
        if executor == "local" and (address is not None or shards is not None):
            raise ConfigurationError("--address and --shards go with --executor ray; add it, or drop them.")
        if executor == "ray":
            if part is not None:
                raise ConfigurationError(f"--executor ray splits the run into shards itself; drop --shard {shard}.")
            from posrag.bench.ray_runner import run_litm_ray

            result = run_litm_ray(
                config,
                workers=jobs,
                shards=shards,
                address=address,
                threads=threads or 1,
                data=data,
                model=model,
                limit=limit,
                progress=progress,
                command=command,
                quantize=quantize,
                backend=backend,
                cache=cache,
            )
        elif jobs > 1:
            if part is not None:
                raise ConfigurationError(
                    f"--jobs {jobs} splits the run into shards itself; drop --shard {shard} (or run that shard "
                    "with --jobs 1)."
                )
            from posrag.bench.parallel import run_litm_parallel

            result = run_litm_parallel(
                config,
                jobs=jobs,
                threads=threads,
                data=data,
                model=model,
                limit=limit,
                progress=progress,
                command=command,
                quantize=quantize,
                backend=backend,
                cache=cache,
            )
        else:
            if threads is not None:
                import torch

                torch.set_num_threads(threads)
            result = run_litm(
                config,
                data=data,
                model=model,
                limit=limit,
                progress=progress,
                keep_records=records is not None,
                command=command,
                shard=part,
                quantize=quantize,
                backend=backend,
                threads=threads,
                cache=cache,
            )
        typer.echo(format_tables(result))
        write_outputs(result, json_path=json_out, table_path=table, plot_path=plot, records_path=records)
        if part is not None and json_out is None:
            typer.echo("Note: a shard is merged from its --json file; none was written.", err=True)
    except PosragError as exc:
        raise fail(exc) from None
    timing = result.timing
    cached = f", {timing['cached']} read from --cache" if timing.get("cached") else ""
    typer.echo(
        f"\n{timing['generations']} generations{cached} for {timing['trials']} trials in {timing['wall_s']:.0f} s "
        f"({timing['total_s_with_model_load']:.0f} s with model loading).",
        err=True,
    )


@bench_app.command("merge")
def merge(
    out: Annotated[Path, typer.Argument(help="Where to write the merged result (JSON, with every trial record).")],
    shards: Annotated[list[Path], typer.Argument(help="The --json file of every shard of one run.")],
    plot: Annotated[Path | None, typer.Option(help="Write the accuracy-vs-position plot (PNG) here.")] = None,
    table: Annotated[Path | None, typer.Option(help="Also write the markdown table here.")] = None,
    records: Annotated[
        Path | None,
        typer.Option(help="Write the trial records here (.jsonl or .jsonl.gz) instead of into the JSON."),
    ] = None,
) -> None:
    """Merge the shards of one `posrag bench litm --shard i/N` run into one result with the same statistics.

    Refuses shards of different runs (model, data, settings) and duplicate or missing shards.
    """
    from posrag.bench.report import format_tables, write_outputs
    from posrag.bench.shards import merge_results, read_result

    try:
        result = merge_results([read_result(path) for path in shards], labels=[str(path) for path in shards])
        typer.echo(format_tables(result))
        write_outputs(result, json_path=out, table_path=table, plot_path=plot, records_path=records)
    except PosragError as exc:
        raise fail(exc) from None
    typer.echo(
        f"\nMerged {len(shards)} shards: {result.data['questions']} questions, {len(result.records)} trials.", err=True
    )


@bench_app.command("make-synthetic")
def make_synthetic(
    out: Annotated[Path, typer.Argument(help="Where to write the records (.jsonl, or .jsonl.gz to compress).")],
    questions: Annotated[int, typer.Option(help="Number of questions.", min=1)] = 100,
    docs: Annotated[
        int, typer.Option(help="Documents per question (one gold, the rest distractors).", min=2, max=20)
    ] = 20,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same file).")] = 0,
    kinds: Annotated[
        str, typer.Option(help="Attribute kinds, comma-separated: birthplace, company, profession.")
    ] = "birthplace,company,profession",
    hard: Annotated[
        bool,
        typer.Option(
            "--hard",
            help='Ask each fact through a second one ("the person who founded X"), with a decoy that names X: '
            "the retriever's top-1 is often wrong.",
        ),
    ] = False,
) -> None:
    """Write a seeded synthetic Lost-in-the-Middle data set offline: fictional people, one fact each."""
    from posrag.bench.synthetic import make_hard_synthetic_records, make_synthetic_records, write_jsonl

    make = make_hard_synthetic_records if hard else make_synthetic_records
    try:
        written = write_jsonl(make(questions, docs, seed=seed, kinds=comma_list(kinds)), out)
    except PosragError as exc:
        raise fail(exc) from None
    typer.echo(f"Wrote {questions} questions with {docs} documents each to {written}.")


@bench_app.command("make-nq")
def make_nq(
    out: Annotated[Path, typer.Argument(help="Where to write the records (.jsonl, or .jsonl.gz to compress).")],
    num_docs: Annotated[int, typer.Option(help="Documents per question (gold + mined distractors).", min=2)] = 20,
    split: Annotated[str, typer.Option(help="calibration, evaluation or all.")] = "evaluation",
    limit: Annotated[int | None, typer.Option(help="Only the first N questions of the split.", min=1)] = None,
    calibration: Annotated[int, typer.Option(help="Questions in the calibration split.", min=0)] = 200,
    seed: Annotated[int, typer.Option(help="Seed of the calibration/evaluation split.")] = 0,
    source: Annotated[
        Path | None, typer.Option(help="NQ-open oracle file (default: ../shared/data/nq-open-oracle.jsonl.gz).")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """NQ-open with mined distractors: each question's gold passage and the nearest other gold passages."""
    from posrag.bench.nq import make_nq_records
    from posrag.bench.synthetic import write_jsonl

    try:
        records = make_nq_records(
            source,
            num_docs,
            split=None if split == "all" else split,
            limit=limit,
            calibration=calibration,
            seed=seed,
            progress=progress,
        )
        written = write_jsonl(records, out)
    except PosragError as exc:
        raise fail(exc) from None
    typer.echo(f"Wrote {len(records)} {split} questions with {num_docs} documents each to {written}.")
