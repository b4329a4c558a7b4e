"""Tiny random models and a tiny tokenizer, built in-process from a config (no downloads, milliseconds).

They execute the real architectures (RoPE, sliding windows, GQA, learned positions), so tests of model
code are real tests; only the weights are random. Public so that users can test their own posrag code
the same way (as ``transformers.testing_utils`` is).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerFast

from posrag.errors import ConfigurationError

TinyArch = Literal["llama", "gemma3", "gpt2", "qwen2", "mistral"]
TINY_ARCHS: tuple[TinyArch, ...] = ("llama", "gemma3", "gpt2", "qwen2", "mistral")

_CORPUS = [
    "Paris is the capital of France. Berlin is the capital of Germany. Rome is the capital of Italy.",
    "Question: What is the capital of France? Answer: Paris.",
    "Document [1] Title: Mount Everest. Everest is the highest mountain on Earth.",
    "The quick brown fox jumps over the lazy dog. Once upon a time there was a small model.",
    "Use the documents below to answer the question. If the answer is not there, say so.",
    "0 1 2 3 4 5 6 7 8 9 , . ; : ! ? ' \" ( ) [ ] - the a an of in on at to is was were and or",
]

#: A minimal chat template so chat-model code paths run on the tiny tokenizer too.
TINY_CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


@lru_cache(maxsize=1)
def _tokenizer_json() -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=["<pad>", "<eos>", "<bos>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS, trainer=trainer)
    return str(tok.to_str())


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer (fast, with offsets) trained in-process on a fixed corpus."""
    from tokenizers import Tokenizer

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_tokenizer_json()),
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
    )
    tokenizer.chat_template = TINY_CHAT_TEMPLATE
    return tokenizer


@dataclass(frozen=True)
class TinyModel:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerFast
    arch: str

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the model and its tokenizer to ``path`` (a model directory, loadable by path); return it."""
        path = Path(path)
        self.model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)
        return path


def tiny_config(arch: TinyArch, *, num_layers: int = 2, vocab_size: int = 320, sliding_window: int = 8):
    """The transformers config of a tiny model of family ``arch``."""
    import transformers as tf

    common = dict(vocab_size=vocab_size, bos_token_id=2, eos_token_id=1, pad_token_id=0)
    rope = dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        **common,
    )
    if arch == "llama":
        return tf.LlamaConfig(**rope)
    if arch == "qwen2":
        return tf.Qwen2Config(**rope)
    if arch == "mistral":
        return tf.MistralConfig(**rope, sliding_window=None)
    if arch == "gemma3":
        # Alternate sliding and full layers like the real Gemma 3 (5:1 there), with a tiny window so
        # that tests can exceed it.
        types = ["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(num_layers)]
        return tf.Gemma3TextConfig(
            **rope, head_dim=8, sliding_window=sliding_window, layer_types=types, query_pre_attn_scalar=8
        )
    if arch == "gpt2":
        return tf.GPT2Config(n_embd=32, n_layer=num_layers, n_head=4, n_positions=512, **common)
    raise ConfigurationError(f"Unknown tiny architecture {arch!r}; choose one of {', '.join(TINY_ARCHS)}.")


def tiny_model(
    arch: TinyArch = "llama",
    *,
    num_layers: int = 2,
    seed: int = 0,
    sliding_window: int = 8,
    attn_implementation: str = "sdpa",
) -> TinyModel:
    """A tiny random causal LM of family ``arch`` with :func:`tiny_tokenizer`, in eval mode, fp32."""
    from transformers import AutoModelForCausalLM

    tokenizer = tiny_tokenizer()
    config = tiny_config(arch, num_layers=num_layers, vocab_size=len(tokenizer), sliding_window=sliding_window)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, attn_implementation=attn_implementation)
    model.eval()
    return TinyModel(model=model, tokenizer=tokenizer, arch=arch)


__all__ = ["TINY_ARCHS", "TinyModel", "tiny_config", "tiny_model", "tiny_tokenizer"]
