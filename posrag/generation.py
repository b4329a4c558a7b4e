"""Plain local text generation with a Hugging Face causal LM: prompt formatting, generate, stream.

This is the unsteered engine; :mod:`posrag.steering` runs the same functions with its hooks around them
(``around``: a context manager entered in the thread that runs ``model.generate``).
"""

from __future__ import annotations

import math
import numbers
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch

from posrag.aio import stop_requested
from posrag.architectures import context_window
from posrag.errors import ConfigurationError, PositionOutOfRangeError
from posrag.prefix import check_cache
from posrag.streaming import CompletionStream, held_pieces

AroundGeneration = Callable[[], AbstractContextManager[Any]]


@dataclass(frozen=True)
class GenerationConfig:
    """Generation settings (greedy when ``temperature == 0``).

    ``stop``: strings that end the completion (generation stops as soon as one appears; it is cut off).
    ``min_new_tokens``: suppress end-of-sequence before this many tokens (benchmarks use it to fix lengths).
    ``strip_leading``: drop the completion's leading whitespace before stop sequences apply, so a completion
    that opens with a newline is not cut to nothing by ``stop=("\\n",)`` (the benchmark's first-line answers).
    """

    max_new_tokens: int = 64
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = field(default_factory=tuple)
    min_new_tokens: int = 0
    strip_leading: bool = False

    def __post_init__(self) -> None:
        _check_int("max_new_tokens", self.max_new_tokens, low=1)
        _check_real("temperature", self.temperature, "[0, inf) (0 = greedy)", lambda v: v >= 0)
        _check_real("top_p", self.top_p, "(0, 1]", lambda v: 0 < v <= 1)
        _check_int("min_new_tokens", self.min_new_tokens, low=0)
        if self.min_new_tokens > self.max_new_tokens:
            raise ConfigurationError(
                f"min_new_tokens must be in [0, max_new_tokens={self.max_new_tokens}], got {self.min_new_tokens}."
            )
        if not isinstance(self.strip_leading, bool):
            raise ConfigurationError(f"strip_leading must be True or False, got {self.strip_leading!r}.")
        if isinstance(self.stop, str) or not isinstance(self.stop, Iterable):
            raise ConfigurationError(
                f"stop must be a sequence of strings, got {self.stop!r}; for one stop write stop=({self.stop!r},)."
            )
        stop = tuple(self.stop)
        bad = [s for s in stop if not isinstance(s, str)]
        if bad:
            raise ConfigurationError(f"stop must hold strings only, got {bad[0]!r} in stop={stop!r}.")
        object.__setattr__(self, "stop", stop)
        object.__setattr__(self, "temperature", float(self.temperature))
        object.__setattr__(self, "top_p", float(self.top_p))

    def hf_kwargs(self, tokenizer: Any) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens,
            "pad_token_id": tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
        }
        if self.min_new_tokens:
            kwargs["min_new_tokens"] = self.min_new_tokens
        if self.temperature > 0:
            kwargs.update(do_sample=True, temperature=self.temperature, top_p=self.top_p)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        return kwargs

    def apply_stop(self, text: str) -> tuple[str, bool]:
        """``text`` cut at this configuration's stops (:func:`truncate_at_stop`), and whether one was hit."""
        return truncate_at_stop(text, self.stop, strip_leading=self.strip_leading)

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_new_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "stop": list(self.stop),
            "min_new_tokens": self.min_new_tokens,
            "strip_leading": self.strip_leading,
        }


def _check_int(name: str, value: Any, *, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigurationError(f"{name} must be an integer >= {low}, got {value!r} ({type(value).__name__}).")
    if value < low:
        raise ConfigurationError(f"{name} must be an integer >= {low}, got {value!r}.")


def _check_real(name: str, value: Any, allowed: str, ok: Callable[[float], bool]) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigurationError(f"{name} must be a number in {allowed}, got {value!r} ({type(value).__name__}).")
    if not math.isfinite(value) or not ok(float(value)):
        raise ConfigurationError(f"{name} must be a finite number in {allowed}, got {value!r}.")


def truncate_at_stop(text: str, stop: Sequence[str], *, strip_leading: bool = False) -> tuple[str, bool]:
    """Cut ``text`` at the earliest stop sequence; return the text and whether a stop was hit.

    ``strip_leading``: remove leading whitespace first, so stops only count once the completion has text.
    """
    if strip_leading:
        text = text.lstrip()
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def encode_prompt(
    tokenizer: Any, prompt: str, device: torch.device, *, add_special_tokens: bool = True
) -> dict[str, torch.Tensor]:
    """Tokenize a prompt exactly as generation will see it (special tokens included unless told otherwise)."""
    if not prompt:
        raise ConfigurationError("The prompt is empty; pass some text to generate from.")
    encoded = tokenizer(prompt, return_tensors="pt", add_special_tokens=add_special_tokens)
    return {k: v.to(device) for k, v in encoded.items() if k in ("input_ids", "attention_mask")}


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def apply_chat_template(tokenizer: Any, messages: Sequence[Mapping[str, str]]) -> str:
    """Format chat ``messages`` with the tokenizer's template, ready for the assistant's turn.

    The result already holds the template's special tokens: encode it with ``add_special_tokens=False``.
    """
    if not has_chat_template(tokenizer):
        raise ConfigurationError(
            f"{type(tokenizer).__name__} has no chat template; format the prompt as plain text instead "
            "(posrag's LLM classes do this automatically for base models)."
        )
    return str(tokenizer.apply_chat_template([dict(m) for m in messages], tokenize=False, add_generation_prompt=True))


def check_context_window(model: Any, prompt_tokens: int, config: GenerationConfig) -> None:
    """Raise :class:`~posrag.errors.PositionOutOfRangeError` unless the prompt plus ``config.max_new_tokens``
    fit in the model's context window (:func:`posrag.architectures.context_window`; unknown: no check).

    Past the window a model with learned positions raises a raw ``IndexError`` and a RoPE model silently
    generates garbage, so posrag refuses up front, which also bounds ``max_new_tokens`` by the window.
    """
    window = context_window(model)
    needed = prompt_tokens + config.max_new_tokens
    if window is None or needed <= window:
        return
    head = (
        f"The prompt has {prompt_tokens} tokens and max_new_tokens={config.max_new_tokens}, {needed} positions in "
        f"all, but {type(model).__name__}'s context window is {window} tokens."
    )
    if prompt_tokens >= window:
        fix = "Shorten the prompt: retrieve fewer or shorter documents (a smaller k), or use a shorter question."
    else:
        fix = (
            f"Lower max_new_tokens to at most {window - prompt_tokens}, or shorten the prompt (fewer or shorter "
            "documents, a smaller k)."
        )
    raise PositionOutOfRangeError(f"{head} {fix}")


def _stopping_criteria(tokenizer: Any, prompt_length: int, config: GenerationConfig, extra: Sequence[Any] = ()):
    from transformers import StoppingCriteriaList

    criteria = list(extra)
    if any(config.stop):  # stop once any stop string appears in the decoded completion
        criteria.append(_until(tokenizer, prompt_length, lambda text: config.apply_stop(text)[1]))
    return StoppingCriteriaList(criteria)


def _until(tokenizer: Any, prompt_length: int, until: Callable[[str], bool]) -> Any:
    """A ``StoppingCriteria`` that stops once ``until`` holds for the decoded completion so far."""
    from transformers import StoppingCriteria

    class _Until(StoppingCriteria):
        def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.BoolTensor:
            hit = bool(until(tokenizer.decode(input_ids[0, prompt_length:], skip_special_tokens=True)))
            return torch.full((input_ids.shape[0],), hit, dtype=torch.bool, device=input_ids.device)  # type: ignore[return-value]

    return _Until()


def _when(flag: Callable[[], bool]) -> Any:
    """A ``StoppingCriteria`` that stops every sequence at the next token once ``flag()`` is true."""
    from transformers import StoppingCriteria

    class _When(StoppingCriteria):
        def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.BoolTensor:
            return torch.full((input_ids.shape[0],), flag(), dtype=torch.bool, device=input_ids.device)  # type: ignore[return-value]

    return _When()


def generate_from_inputs(
    model: Any,
    tokenizer: Any,
    inputs: Mapping[str, torch.Tensor],
    config: GenerationConfig | None = None,
    *,
    around: AroundGeneration | None = None,
    until: Callable[[str], bool] | None = None,
) -> tuple[str, int]:
    """Generate from encoded ``inputs``; return the completion (stops applied) and the number of new tokens.

    ``until``: also stop as soon as it returns true for the completion so far (e.g. once a scorer's verdict
    can no longer change), saving the rest of the decode steps.
    """
    config = config or GenerationConfig()
    prompt_length = int(inputs["input_ids"].shape[1])
    check_context_window(model, prompt_length, config)
    check_cache(model, inputs.get("cache"))
    extra = [] if until is None else [_until(tokenizer, prompt_length, until)]
    external = stop_requested()  # set when an async caller is cancelled (posrag.aio.run_in_thread)
    if external is not None:
        extra.append(_when(external.is_set))
    with torch.inference_mode(), (around or nullcontext)():
        output = model.generate(
            **inputs,
            **config.hf_kwargs(tokenizer),
            stopping_criteria=_stopping_criteria(tokenizer, prompt_length, config, extra),
        )
    new_tokens = output[0, prompt_length:]
    text = tokenizer.decode(new_tokens, skip_special_tokens=True)
    return config.apply_stop(text)[0], int(new_tokens.shape[0])


def generate_text(
    model: Any,
    tokenizer: Any,
    prompt: str,
    config: GenerationConfig | None = None,
    *,
    add_special_tokens: bool = True,
) -> str:
    """Generate a completion of ``prompt`` (the completion only, stop sequences applied)."""
    inputs = encode_prompt(tokenizer, prompt, model.device, add_special_tokens=add_special_tokens)
    return generate_from_inputs(model, tokenizer, inputs, config)[0]


def stream_from_inputs(
    model: Any,
    tokenizer: Any,
    inputs: Mapping[str, torch.Tensor],
    config: GenerationConfig | None = None,
    *,
    around: AroundGeneration | None = None,
) -> CompletionStream:
    """The completion of encoded ``inputs`` piece by piece (stop sequences applied across pieces).

    Generation runs in a worker thread (transformers' ``TextIteratorStreamer``), inside ``around()`` if given,
    from the first piece asked for. Closing the stream early stops generation at the next token and waits for
    the worker, so whatever ``around`` set up is undone by the time ``close()`` returns. Under
    :func:`posrag.aio.iterate_in_thread` its stop flag (set when the async consumer is cancelled) also stops
    generation at the next token; the stream then ends without yielding the rest.
    """
    streamer = _counting_streamer(tokenizer)
    return CompletionStream(_stream(model, tokenizer, inputs, config, around, streamer), lambda: streamer.generated)


def _counting_streamer(tokenizer: Any) -> Any:
    """A ``TextIteratorStreamer`` (prompt skipped) that counts the tokens generated."""
    from transformers import TextIteratorStreamer

    class _Counting(TextIteratorStreamer):
        generated = 0

        def put(self, value: torch.Tensor) -> None:
            if not (self.skip_prompt and self.next_tokens_are_prompt):
                self.generated += int(value.numel())
            super().put(value)

    return _Counting(tokenizer, skip_prompt=True, skip_special_tokens=True)


def _stream(
    model: Any,
    tokenizer: Any,
    inputs: Mapping[str, torch.Tensor],
    config: GenerationConfig | None,
    around: AroundGeneration | None,
    streamer: Any,
) -> Iterator[str]:
    config = config or GenerationConfig()
    prompt_length = int(inputs["input_ids"].shape[1])
    check_context_window(model, prompt_length, config)
    check_cache(model, inputs.get("cache"))
    cancelled = threading.Event()
    external = stop_requested()

    def _stopped() -> bool:
        return cancelled.is_set() or (external is not None and external.is_set())

    errors: list[BaseException] = []

    def _run() -> None:
        try:
            with torch.inference_mode(), (around or nullcontext)():
                model.generate(
                    **inputs,
                    **config.hf_kwargs(tokenizer),
                    streamer=streamer,
                    stopping_criteria=_stopping_criteria(tokenizer, prompt_length, config, [_when(_stopped)]),
                )
        except BaseException as exc:  # surfaced in the consumer thread below
            errors.append(exc)
            streamer.end()

    worker = threading.Thread(target=_run, daemon=True, name="posrag-generate")
    worker.start()

    def completions() -> Iterator[str]:
        seen = ""
        for piece in streamer:
            seen += piece
            yield seen
        if errors:
            raise errors[0]

    try:
        yield from held_pieces(completions(), config, keep_tail=lambda: not _stopped())
    finally:
        cancelled.set()
        if worker is not threading.current_thread():  # a generator finalized in its own worker cannot wait for it
            worker.join()


def stream_text(
    model: Any,
    tokenizer: Any,
    prompt: str,
    config: GenerationConfig | None = None,
    *,
    add_special_tokens: bool = True,
) -> CompletionStream:
    """The completion of ``prompt`` piece by piece (stop sequences applied across pieces).

    Closing the stream early stops generation at the next token.
    """
    inputs = encode_prompt(tokenizer, prompt, model.device, add_special_tokens=add_special_tokens)
    return stream_from_inputs(model, tokenizer, inputs, config)


__all__ = [
    "GenerationConfig",
    "apply_chat_template",
    "check_context_window",
    "encode_prompt",
    "generate_from_inputs",
    "generate_text",
    "has_chat_template",
    "stream_from_inputs",
    "stream_text",
    "truncate_at_stop",
]
