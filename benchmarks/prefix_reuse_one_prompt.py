"""Prefix reuse on one prompt of the benchmark, the work measured: three conditions generated whole, then from
one shared prefix.

The first question of the shipped synthetic set with its gold document at position 10; ``baseline``,
``steer-attention`` and ``control-attention`` (the conditions that share the prompt up to the question) are
generated (a) each from its whole prompt and (b) from one prefill of the prompt up to the question, continued
three times (``posrag.prefix``; attention steering via ``past_length``). One torch thread, so the CPU seconds
are the work itself however busy the machine is (wall-clock seconds are printed too, but on a shared machine
they measure the other jobs); the outputs of (a) and (b) are compared.

    python benchmarks/prefix_reuse_one_prompt.py
"""

import time

import torch

from posrag.bench.conditions import config_from_options
from posrag.bench.data import load_records, packaged_dataset
from posrag.bench.runner import LitmBenchmark
from posrag.generation import encode_prompt, generate_from_inputs
from posrag.models import load_causal_lm
from posrag.prefix import prefill
from posrag.steering.spans import encode_with_offsets, first_token_at_or_after

torch.set_num_threads(1)
lm = load_causal_lm(progress=False)
rec = load_records(packaged_dataset())[0]
config = config_from_options(positions="10", conditions="baseline,steer-attention,control-attention", regimes="oracle")
bench = LitmBenchmark.from_model(lm.model, lm.tokenizer, config, model_name=lm.name)
n = len(rec.documents)
scores = [1.0 if i == rec.gold_index else 0.0 for i in range(n)]
distractors = [i for i in range(n) if i != rec.gold_index]
order = [*distractors[:9], rec.gold_index, *distractors[9:]]
variants = [(c, bench.variant(rec, order, c, "oracle", scores, 10)) for c in bench.conditions]
gen_cfg = config.generation
v0 = variants[0][1]
footer = config.template.footer.format(question=v0.prompt.question)
steer_from = v0.offset + len(v0.prompt.text) - len(footer)
enc = encode_with_offsets(lm.tokenizer, v0.text)
cut = first_token_at_or_after(enc, steer_from, lm.tokenizer)
print("prompt tokens", enc.num_tokens, "prefix tokens", cut, flush=True)


def whole(c, v):
    if c.mechanism is None:
        return generate_from_inputs(
            lm.model, lm.tokenizer, encode_prompt(lm.tokenizer, v.text, lm.model.device), gen_cfg
        )
    s = bench._generators[c.mechanism].generate(v.text, list(v.targets), gen_cfg, steer_from=steer_from)
    return s.text, s.generated_tokens


def reused(prefix, c, v):
    if c.mechanism is None:
        inputs = prefix.inputs_for(encode_prompt(lm.tokenizer, v.text, lm.model.device))
        return generate_from_inputs(lm.model, lm.tokenizer, inputs, gen_cfg)
    with bench._generators[c.mechanism].session(
        v.text, list(v.targets), steer_from=steer_from, past_length=prefix.length
    ) as (p, _):
        return generate_from_inputs(lm.model, lm.tokenizer, prefix.inputs_for(p.inputs), gen_cfg)


res = {}
for mode in ("reuse", "whole"):
    c0, w0 = time.process_time(), time.perf_counter()
    if mode == "whole":
        out = [whole(c, v) for c, v in variants]
    else:
        prefix = prefill(lm.model, enc.input_ids[0, :cut])
        out = [reused(prefix, c, v) for c, v in variants]
    res[mode] = (time.process_time() - c0, time.perf_counter() - w0, out)
    print(mode, "cpu {:.1f} s, wall {:.1f} s".format(*res[mode][:2]), out, flush=True)
print("identical:", res["reuse"][2] == res["whole"][2])
print("cpu speed-up {:.2f}x, wall {:.2f}x".format(res["whole"][0] / res["reuse"][0], res["whole"][1] / res["reuse"][1]))
