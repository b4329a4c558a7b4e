"""Cost of steering: tokens per second and added latency per query, steered vs unsteered, side by side.

On the embedded Gemma 3 270M with a 10-document prompt (posrag's "Lost in the Middle" template), every
document a steering target (the default ``top_k=1`` steers the best-scored one; ``--all-targets`` all ten).
Each repeat runs every variant (unsteered, activation, attention, both) in a
shuffled order, so machine noise hits all of them alike; the figures are medians over repeats and ratios to the
unsteered run of the same repeat. Generation length is fixed (``min_new_tokens = max_new_tokens``) so that the
variants generate the same number of tokens.

    python benchmarks/steering.py                 # prints a Markdown table
    python benchmarks/steering.py --json out.json # and writes the raw figures
    python benchmarks/steering.py --all-targets   # steer all ten documents

Two more variants measure what the LLM classes add on top of attention steering (issue 10): ``selected``
finds the request's documents in the prompt, ranks them per request and weighs the best by the ranking's
confidence (:func:`posrag.steering.selection.select_targets`, scored documents); ``relevance`` does the same
with the scores withheld, so the packaged embedder scores the documents against the query first.

Budget (the seed's): at most 10 % slower generation and at most 100 ms added per query.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import random
import statistics
import time
from typing import Any

import torch

from posrag.chat import format_completion
from posrag.documents import ScoredDocument
from posrag.engine import Engine
from posrag.generation import GenerationConfig, generate_text
from posrag.models import load_causal_lm, load_embedder
from posrag.pipeline import steering_targets
from posrag.prompts import build_prompt
from posrag.steering import SteeringConfig

VARIANTS = ("unsteered", "activation", "attention", "both", "selected", "relevance")
MECHANISMS = ("activation", "attention", "both")


def make_prompt(n_docs: int):
    docs = [
        ScoredDocument(
            text=f"Person {i} was born in City {i}. They studied history and later worked as a librarian for "
            f"{i + 3} years before moving abroad.",
            metadata={"title": f"Person {i}"},
            score=1.0 - i / (2 * n_docs),
            id=str(i),
        )
        for i in range(n_docs)
    ]
    return build_prompt(f"Where was Person {n_docs // 2} born?", docs)


def run(args: argparse.Namespace) -> dict[str, Any]:
    lm = load_causal_lm(progress=False)
    prompt = make_prompt(args.docs)
    targets = steering_targets(prompt)
    top_k = None if args.all_targets else 1
    generators = {
        name: Engine.from_model(
            lm.model,
            lm.tokenizer,
            SteeringConfig(mechanism=name, top_k=top_k),  # type: ignore[arg-type]
        )
        for name in MECHANISMS
    }
    selecting = Engine.from_model(lm.model, lm.tokenizer, SteeringConfig(top_k=top_k), embedder=load_embedder())
    formatted = format_completion(lm.tokenizer, prompt.text)
    scored = list(prompt.documents)
    unscored = [ScoredDocument(d.text, d.metadata, None, d.id) for d in scored]
    fixed = GenerationConfig(max_new_tokens=args.tokens, min_new_tokens=args.tokens)
    first = GenerationConfig(max_new_tokens=1)

    def once(name: str, config: GenerationConfig) -> float:
        start = time.perf_counter()
        if name == "unsteered":
            generate_text(lm.model, lm.tokenizer, prompt.text, config)
        elif name in MECHANISMS:
            generators[name].generate(prompt.text, targets, config)
        else:
            selecting.complete(formatted, config, documents=scored if name == "selected" else unscored)
        return time.perf_counter() - start

    for name in VARIANTS:  # warm-up
        once(name, first)
    totals: dict[str, list[float]] = {name: [] for name in VARIANTS}
    prefill: dict[str, list[float]] = {name: [] for name in VARIANTS}
    rng = random.Random(0)
    for _ in range(args.repeats):
        order = list(VARIANTS)
        rng.shuffle(order)
        for name in order:
            prefill[name].append(once(name, first))
            totals[name].append(once(name, fixed))
    prompt_tokens = len(lm.tokenizer(prompt.text)["input_ids"])
    base_total = statistics.median(totals["unsteered"])
    base_prefill = statistics.median(prefill["unsteered"])
    rows = []
    for name in VARIANTS:
        total = statistics.median(totals[name])
        # Per-repeat ratios to the unsteered run of the same repeat, then the median.
        ratio = statistics.median(t / u for t, u in zip(totals[name], totals["unsteered"], strict=True))
        rows.append(
            {
                "variant": name,
                "latency_s": total,
                "tokens_per_s": args.tokens / total,
                "prefill_s": statistics.median(prefill[name]),
                "added_ms_per_query": 1000 * (total - base_total),
                "added_prefill_ms": 1000 * (statistics.median(prefill[name]) - base_prefill),
                "slowdown_pct": 100 * (ratio - 1),
            }
        )
    return {
        "date": dt.date.today().isoformat(),
        "model": lm.name,
        "docs": args.docs,
        "prompt_tokens": prompt_tokens,
        "new_tokens": args.tokens,
        "repeats": args.repeats,
        "steered_documents": args.docs if args.all_targets else 1,
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "rows": rows,
    }


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"{result['docs']} documents, {result['prompt_tokens']} prompt tokens, {result['new_tokens']} new tokens, "
        f"{result['steered_documents']} document(s) steered, "
        f"median of {result['repeats']} interleaved repeats, torch {result['torch']} on "
        f"{result['torch_threads']} threads, {result['date']}.",
        "",
        "| variant | latency / query | tokens/s | time to first token | added / query | slowdown |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['variant']} | {row['latency_s'] * 1000:.0f} ms | {row['tokens_per_s']:.1f} | "
            f"{row['prefill_s'] * 1000:.0f} ms | {row['added_ms_per_query']:+.0f} ms | {row['slowdown_pct']:+.1f} % |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=10)
    parser.add_argument("--tokens", type=int, default=32, help="new tokens per query (fixed)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--all-targets",
        action="store_true",
        help="steer all documents (top_k=None) instead of the default top_k=1 (the best-scored one)",
    )
    parser.add_argument("--json", help="also write the raw figures here")
    args = parser.parse_args()
    result = run(args)
    print(markdown(result))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
