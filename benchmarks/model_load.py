"""Cold vs cached load of the packaged Gemma 3 270M, each in a fresh process.

Cold = assemble the GGUF, de-quantize it with transformers and write posrag's cache (into an empty temporary
cache directory); cached = load the converted Hugging Face directory. Also times the packaged embedder.

    python benchmarks/model_load.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

LOAD_LLM = "from posrag.models import load_causal_lm; load_causal_lm(progress=False)"
LOAD_EMBEDDER = "from posrag.models import load_embedder; load_embedder().encode(['warm up'])"
IMPORT_ONLY = "import posrag.models, transformers, sentence_transformers"


def timed(code: str, cache: str) -> float:
    env = {**os.environ, "POSRAG_CACHE_DIR": cache, "HF_HUB_OFFLINE": "1"}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        imports = statistics.median(timed(IMPORT_ONLY, cache) for _ in range(args.repeats))
        cold = timed(LOAD_LLM, cache)
        cached = statistics.median(timed(LOAD_LLM, cache) for _ in range(args.repeats))
        embedder = statistics.median(timed(LOAD_EMBEDDER, cache) for _ in range(args.repeats))
    print(f"process start + imports          {imports:7.2f} s")
    print(f"LLM cold (convert + cache + load) {cold:7.2f} s   ({cold - imports:.2f} s beyond imports)")
    print(f"LLM cached load                   {cached:7.2f} s   ({cached - imports:.2f} s beyond imports)")
    print(f"embedder load + first encode      {embedder:7.2f} s   ({embedder - imports:.2f} s beyond imports)")
    print(
        f"cold / cached                     {cold / cached:7.1f}x  (beyond imports: "
        f"{(cold - imports) / max(cached - imports, 1e-9):.1f}x)"
    )


if __name__ == "__main__":
    main()
