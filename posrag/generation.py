"""Plain local text generation with a Hugging Face causal LM: prompt formatting, generate, stream.

This is the unsteered engine; :mod:`posrag.steering` wraps the same calls in its hooks.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from posrag.errors import ConfigurationError


@dataclass(frozen=True)
class GenerationConfig:
    """Generation settings (greedy when ``temperature == 0``)."""

    max_new_tokens: int = 64
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ConfigurationError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}.")
        if self.temperature < 0:
            raise ConfigurationError(f"temperature must be >= 0 (0 = greedy), got {self.temperature}.")
        object.__setattr__(self, "stop", tuple(self.stop))

    def hf_kwargs(self, tokenizer: Any) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens,
            "pad_token_id": tokenizer.pad_token_id
            if tokenizer.pad_token_id is not None
            else tokenizer.eos_token_id,
        }
        if self.temperature > 0:
            kwargs.update(do_sample=True, temperature=self.temperature, top_p=self.top_p)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        return kwargs


def truncate_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Cut ``text`` at the earliest stop sequence; return the text and whether a stop was hit."""
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def encode_prompt(tokenizer: Any, prompt: str, device: torch.device) -> dict[str, torch.Tensor]:
    """Tokenize a prompt exactly as generation will see it (special tokens included)."""
    if not prompt:
        raise ConfigurationError("The prompt is empty; pass some text to generate from.")
    encoded = tokenizer(prompt, return_tensors="pt")
    return {k: v.to(device) for k, v in encoded.items() if k in ("input_ids", "attention_mask")}


@torch.inference_mode()
def generate_text(model: Any, tokenizer: Any, prompt: str, config: GenerationConfig | None = None) -> str:
    """Generate a completion of ``prompt`` (the completion only, stop sequences applied)."""
    config = config or GenerationConfig()
    inputs = encode_prompt(tokenizer, prompt, model.device)
    output = model.generate(**inputs, **config.hf_kwargs(tokenizer))
    text = tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    return truncate_at_stop(text, config.stop)[0]


def stream_text(
    model: Any, tokenizer: Any, prompt: str, config: GenerationConfig | None = None
) -> Iterator[str]:
    """Yield the completion of ``prompt`` piece by piece (stop sequences applied across pieces).

    Generation runs in a worker thread (transformers' ``TextIteratorStreamer``); closing the iterator
    early stops generation at the next token.
    """
    from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

    config = config or GenerationConfig()
    inputs = encode_prompt(tokenizer, prompt, model.device)
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    cancelled = threading.Event()

    class _Cancel(StoppingCriteria):
        def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.BoolTensor:
            return torch.full((input_ids.shape[0],), cancelled.is_set(), dtype=torch.bool)  # type: ignore[return-value]

    errors: list[BaseException] = []

    def _run() -> None:
        try:
            with torch.inference_mode():
                model.generate(
                    **inputs,
                    **config.hf_kwargs(tokenizer),
                    streamer=streamer,
                    stopping_criteria=StoppingCriteriaList([_Cancel()]),
                )
        except BaseException as exc:  # surfaced in the consumer thread below
            errors.append(exc)
            streamer.end()

    worker = threading.Thread(target=_run, daemon=True)
    worker.start()
    hold = max((len(s) - 1 for s in config.stop), default=0)
    seen = emitted = ""
    try:
        for piece in streamer:
            seen += piece
            text, stopped = truncate_at_stop(seen, config.stop)
            # Hold back a tail that might be the start of a stop sequence.
            safe = text if stopped else text[: max(len(emitted), len(text) - hold)]
            if len(safe) > len(emitted):
                yield safe[len(emitted) :]
                emitted = safe
            if stopped:
                return
        if errors:
            raise errors[0]
        text, _ = truncate_at_stop(seen, config.stop)
        if len(text) > len(emitted):
            yield text[len(emitted) :]
    finally:
        cancelled.set()
        worker.join()


__all__ = ["GenerationConfig", "encode_prompt", "generate_text", "stream_text", "truncate_at_stop"]
