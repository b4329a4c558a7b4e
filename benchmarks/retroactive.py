"""Retroactive exploration, side by side: the seed's method, per-gap cached passes, and posrag's batched pass.

On the packaged Gemma 3 270M with a ~512-token prompt and N = 4, 8, 16, 32, 64 gaps, every method is timed in
the same run, interleaved within each repeat, and reported as the median over repeats divided by the median of
one **last-logit prefill** of the prompt (``model(input_ids, logits_to_keep=1)``: what any generation pays
before its first token). posrag's column is also given against a full-logits forward pass
(``model(input_ids)``, what a plain call returns and what the seed's passes are), as a second column.

* seed: 1 + N full forward passes (the prompt, then ``prompt + [token]`` once per gap with its position ids).
  Its passes all cost the same, so beyond ``--seed-literal`` gaps it is computed as
  ``plain + N x (one gap pass)`` from passes timed in the same repeats; up to ``--seed-literal`` it is run
  literally (and printed next to the computed figure, as a check of that model).
* per-gap cached: the prompt once (KV cache kept, last logits only), then one single-token pass per gap
  (posrag's generator with ``chunk_size=1``). Run literally up to ``--cached-literal`` gaps; beyond, computed
  as ``prefix pass + (N + 1) x (one cached pass)`` (gap 0 included, as in the literal run) from passes timed
  in the same repeats.
* posrag: the prompt once, then all gaps in one batched pass (``generate_and_explore``).

    python benchmarks/retroactive.py [--prompt-tokens 512] [--gaps 4,8,16,32,64] [--repeats 3] [--seed-literal 4]
                                     [--cached-literal 16] [--threads N]

posrag's batched pass is always run literally, at every N.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from importlib import resources

import torch

from posrag.models import load_causal_lm
from posrag.retroactive import RetroactivePositionGenerator


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def prompt_ids(tokenizer, n_tokens: int) -> list[int]:
    """The shipped demo corpus, repeated as needed, cut to ``n_tokens`` tokens (BOS included)."""
    lines = resources.files("posrag").joinpath("data/demo_corpus.jsonl").read_text().splitlines()
    text = "\n\n".join(json.loads(line)["text"] for line in lines if line.strip())
    ids: list[int] = tokenizer(text)["input_ids"]
    while len(ids) < n_tokens:
        ids += tokenizer(text, add_special_tokens=False)["input_ids"]
    return ids[:n_tokens]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompt-tokens", type=int, default=512)
    parser.add_argument("--gaps", default="4,8,16,32,64", help="The numbers of gaps N to time.")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed-literal", type=int, default=4, help="Run the seed literally up to this many gaps.")
    parser.add_argument(
        "--cached-literal", type=int, default=16, help="Run per-gap cached passes literally up to this many gaps."
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice).")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    counts = [int(n) for n in args.gaps.split(",")]
    started = time.perf_counter()

    lm = load_causal_lm(progress=False)
    model, tokenizer = lm.model, lm.tokenizer
    ids = prompt_ids(tokenizer, args.prompt_tokens)
    length = len(ids)
    ours = RetroactivePositionGenerator(model, tokenizer, max_gaps=max(counts))
    per_gap = RetroactivePositionGenerator(model, tokenizer, chunk_size=1, max_gaps=max(counts))
    prompt = torch.tensor([ids])

    def gaps_for(n: int) -> list[int]:
        return [1 + 7 * i for i in range(n)]  # spread out; the cost does not depend on the values

    @torch.inference_mode()
    def plain() -> None:
        model(input_ids=prompt)

    @torch.inference_mode()
    def last_logit() -> None:
        model(input_ids=prompt, logits_to_keep=1)

    @torch.inference_mode()
    def seed_gap_pass(token: int, gap: int) -> torch.Tensor:
        positions = torch.tensor([[*range(length), length + gap]])
        logits = model(
            input_ids=torch.tensor([[*ids, token]]), position_ids=positions, attention_mask=torch.ones_like(positions)
        ).logits
        return logits[0, -1].softmax(-1)

    @torch.inference_mode()
    def seed(n: int) -> float:
        """The seed's method, run literally; each of its gap passes is also kept as a sample of one."""
        begin = time.perf_counter()
        token = int(model(input_ids=prompt).logits[0, -1].argmax())
        for gap in gaps_for(n):
            samples["seed_gap_pass"].append(timed(lambda gap=gap: seed_gap_pass(token, gap)))
        return time.perf_counter() - begin

    samples: dict[str, list[float]] = defaultdict(list)
    state = ours.prefill(ids)
    token = state.token_id
    model_cached = any(n > args.cached_literal for n in counts)
    # Warm up every code path once (allocator, lazy imports) before timing.
    plain()
    last_logit()
    seed_gap_pass(token, 3)
    ours.generate_and_explore(ids, gaps_for(4))
    per_gap.generate_and_explore(ids, [1])
    for repeat in range(args.repeats):
        samples["last_logit"].append(timed(last_logit))
        samples["plain"].append(timed(plain))
        for n in counts:
            samples[f"ours/{n}"].append(timed(lambda n=n: ours.generate_and_explore(ids, gaps_for(n))))
            if n <= args.cached_literal:
                samples[f"cached/{n}"].append(timed(lambda n=n: per_gap.generate_and_explore(ids, gaps_for(n))))
            if n <= args.seed_literal:
                samples[f"seed/{n}"].append(seed(n))
        samples["seed_gap_pass"].append(timed(lambda: seed_gap_pass(token, 11)))
        if model_cached:  # the pieces of the per-gap cached method, for the N it does not run literally
            samples["prefix_pass"].append(timed(lambda: ours.prefill(ids)))
            for gap in (11, 23, 47):
                samples["cached_pass"].append(timed(lambda gap=gap: per_gap.position_log_probs(state, [length + gap])))
        samples["plain"].append(timed(plain))
        samples["last_logit"].append(timed(last_logit))
        print(f"repeat {repeat + 1}/{args.repeats} done ({time.perf_counter() - started:.0f} s)", flush=True)

    med = {name: statistics.median(values) for name, values in samples.items()}
    unit, full, gap_pass = med["last_logit"], med["plain"], med["seed_gap_pass"]
    print()
    print(f"date: {datetime.date.today().isoformat()}; model: {lm.name} ({lm.source}), {model.dtype}")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPU cores visible, torch {torch.__version__} "
        f"with {torch.get_num_threads()} threads; prompt: {length} tokens; repeats: {args.repeats} (medians)"
    )
    print(
        f"the unit, one last-logit prefill of the prompt: {unit:.2f} s; one full-logits forward pass: {full:.2f} s "
        f"({full / unit:.2f}x); one seed gap pass: {gap_pass:.2f} s"
    )
    print()
    print(
        "| N gaps | seed: 1 + N full passes | per-gap cached passes | posrag: one batched pass "
        "| posrag / full-logits forward | seed / posrag |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for n in counts:
        computed = (full + n * gap_pass) / unit
        seed_cell = f"{computed:.1f}x"
        if f"seed/{n}" in med:
            seed_cell += f" (run literally: {med[f'seed/{n}'] / unit:.1f}x)"
        if f"cached/{n}" in med:
            cached_cell = f"{med[f'cached/{n}'] / unit:.2f}x"
        else:
            cached_cell = f"{(med['prefix_pass'] + (n + 1) * med['cached_pass']) / unit:.2f}x (computed)"
        batched = med[f"ours/{n}"] / unit
        print(
            f"| {n} | {seed_cell} | {cached_cell} | {batched:.2f}x | {med[f'ours/{n}'] / full:.2f}x "
            f"| {computed / batched:.0f}x |"
        )
    print()
    print("medians in seconds: " + ", ".join(f"{name} {value:.2f}" for name, value in sorted(med.items())))
    if 32 in counts:
        ratio = med["ours/32"] / unit
        speedup = (full + 32 * gap_pass) / med["ours/32"]
        print(f"target, 32 gaps <= 1.2x one last-logit prefill: {ratio:.2f}x -> {'met' if ratio <= 1.2 else 'NOT met'}")
        print(f"target, >= 15x less than the seed's method: {speedup:.0f}x -> {'met' if speedup >= 15 else 'NOT met'}")
    print(f"total benchmark time: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
