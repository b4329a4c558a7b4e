"""torch.compile for decoding, measured: plain fp32 greedy decode tokens/s, eager then compiled, same run.

The packaged Gemma 3 270M, the first question of the shipped synthetic set with 18 of its documents (389 tokens), 24 new
tokens (fixed), torch's default threads; ``model.forward`` wrapped in ``torch.compile(dynamic=True)``. Prints
each run's decode rate, the first compiled run's time (compilation included) and whether the tokens match.

    python benchmarks/compile_decode.py
"""

import time

import torch

from posrag.bench.data import load_records, packaged_dataset
from posrag.documents import ScoredDocument
from posrag.models import load_causal_lm
from posrag.prompts import build_prompt

lm = load_causal_lm(progress=False)
rec = load_records(packaged_dataset())[0]
prompt = build_prompt(
    rec.question, [ScoredDocument(d.text, {}, None, str(i)) for i, d in enumerate(rec.documents[:18])]
).text
ids = lm.tokenizer(prompt, return_tensors="pt")
print("prompt tokens", ids["input_ids"].shape[1])


def run(label):
    times = []

    class S:
        def put(self, v):
            times.append(time.perf_counter())

        def end(self):
            pass

    with torch.inference_mode():
        out = lm.model.generate(**ids, max_new_tokens=24, min_new_tokens=24, do_sample=False, streamer=S())
    dec = (len(times) - 2) / (times[-1] - times[1])
    print(
        label,
        f"decode {dec:.2f} tok/s",
        repr(lm.tokenizer.decode(out[0, ids["input_ids"].shape[1] :])[:40]),
        flush=True,
    )
    return out


a = run("eager")
run("eager")
t = time.perf_counter()
lm.model.forward = torch.compile(lm.model.forward, dynamic=True)
b = run("compiled (first, includes compile)")
print("first compiled run took", time.perf_counter() - t)
c = run("compiled")
c = run("compiled")
print("same tokens:", torch.equal(a, c))
