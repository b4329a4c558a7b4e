"""Retroactive exploration as an agent tool call: bounded inputs in, compact JSON-ready data out.

The LangChain and LlamaIndex tools are thin adapters over one arguments schema (:func:`args_schema`, strict
pydantic types with the bounds of :class:`ToolLimits`) and :func:`explore_for_agent`; the bounds live here so
both frameworks advertise and enforce the same ones, and an agent cannot make a call run away.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from posrag.errors import ConfigurationError
from posrag.retroactive.results import ExplorationResult, normalize_number

if TYPE_CHECKING:
    from posrag.retroactive.generator import RetroactivePositionGenerator

TOOL_NAME = "explore_token_positions"
TOOL_DESCRIPTION = (
    "Generate the next token of a text once, then show how the model's prediction of the token after it "
    "changes if that token were placed `gap` positions further away. Returns JSON: the token, and per gap the "
    "top next tokens with probabilities, the entropy and the KL divergence from gap 0 (nats)."
)


#: No tokenizer posrag supports makes a token of more characters than this, so a prompt longer than
#: ``max_prompt_tokens * MAX_CHARS_PER_TOKEN`` characters is rejected before it is tokenized.
MAX_CHARS_PER_TOKEN = 32


@dataclass(frozen=True)
class ToolLimits:
    """What one tool call may ask for: at most ``max_gaps`` gaps, each <= ``max_gap``, a prompt of at most
    ``max_prompt_tokens`` tokens (and :attr:`max_prompt_chars` characters), and ``top_k`` <= ``max_top_k``."""

    max_gaps: int = 16
    max_gap: int = 2048
    max_prompt_tokens: int = 512
    max_top_k: int = 10

    def __post_init__(self) -> None:
        for name in ("max_gaps", "max_gap", "max_prompt_tokens", "max_top_k"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"ToolLimits.{name} must be a positive integer, got {value!r}.")

    @property
    def max_prompt_chars(self) -> int:
        return self.max_prompt_tokens * MAX_CHARS_PER_TOKEN


class ExplorePositionsInput(BaseModel):
    """Arguments of one exploration call."""

    # The default ToolLimits' bounds (args_schema() builds one per limits). Strict: `gaps: [true]` or
    # `top_k: "2"` are rejected, not coerced; unknown arguments are rejected.

    model_config = ConfigDict(strict=True, extra="forbid")

    prompt: str = Field(
        min_length=1,
        max_length=ToolLimits().max_prompt_chars,
        description="The text whose next token is generated and explored.",
    )
    gaps: list[Annotated[float, Field(ge=0, le=ToolLimits.max_gap, allow_inf_nan=False)]] = Field(
        min_length=1,
        max_length=ToolLimits.max_gaps,
        description="How many positions later to place the generated token, e.g. [5, 10, 20]; 0 is its natural "
        "position. Fractions are allowed on RoPE models.",
    )
    top_k: int = Field(
        default=3,
        ge=1,
        le=ToolLimits.max_top_k,
        description="How many of the most likely next tokens to report per gap.",
    )


@lru_cache(maxsize=32)
def args_schema(limits: ToolLimits | None = None) -> type[ExplorePositionsInput]:
    """The arguments schema of a tool bounded by ``limits`` (the JSON schema an agent sees carries the bounds)."""
    limits = limits or ToolLimits()
    if limits == ToolLimits():
        return ExplorePositionsInput
    fields = ExplorePositionsInput.model_fields
    gap = Annotated[float, Field(ge=0, le=limits.max_gap, allow_inf_nan=False)]
    return create_model(  # type: ignore[call-overload,no-any-return]
        "ExplorePositionsInput",
        __base__=ExplorePositionsInput,
        __doc__=ExplorePositionsInput.__doc__,
        prompt=(str, Field(min_length=1, max_length=limits.max_prompt_chars, description=fields["prompt"].description)),
        gaps=(list[gap], Field(min_length=1, max_length=limits.max_gaps, description=fields["gaps"].description)),
        top_k=(int, Field(default=3, ge=1, le=limits.max_top_k, description=fields["top_k"].description)),
    )


def validation_message(error: ValidationError) -> str:
    """The agent-readable reason a call's arguments were rejected (instead of a bare "validation error")."""
    problems = "; ".join(f"{'.'.join(str(part) for part in e['loc']) or 'input'}: {e['msg']}" for e in error.errors())
    return f"Invalid arguments for {TOOL_NAME}: {problems}."


def parse_tool_call(arguments: Mapping[str, Any], limits: ToolLimits | None = None) -> ExplorePositionsInput:
    """A call's raw arguments checked against :func:`args_schema`; :class:`~posrag.errors.ConfigurationError`
    with an agent-readable message for a missing, extra, mistyped or out-of-bounds argument."""
    try:
        return args_schema(limits).model_validate(dict(arguments))
    except ValidationError as exc:
        raise ConfigurationError(validation_message(exc)) from None


def validate_tool_call(
    generator: RetroactivePositionGenerator, prompt: str, gaps: Sequence[float], top_k: int, limits: ToolLimits
) -> None:
    """Raise :class:`~posrag.errors.ConfigurationError` with an agent-readable message if the call is out of bounds."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise ConfigurationError("`prompt` is empty; pass the text whose next token should be explored.")
    if not isinstance(gaps, Sequence) or isinstance(gaps, str) or not gaps:
        raise ConfigurationError("`gaps` must be a non-empty list of numbers, e.g. [5, 10, 20].")
    if len(gaps) > limits.max_gaps:
        raise ConfigurationError(f"Too many gaps: {len(gaps)} given, at most {limits.max_gaps} per call.")
    for gap in gaps:
        if isinstance(gap, bool) or not isinstance(gap, (int, float)) or not math.isfinite(gap):
            raise ConfigurationError(f"Every gap must be a finite number, got {gap!r}.")
        if not 0 <= gap <= limits.max_gap:
            raise ConfigurationError(
                f"Gap {normalize_number(gap)} is out of range: gaps must be between 0 and {limits.max_gap}."
            )
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= limits.max_top_k:
        raise ConfigurationError(f"`top_k` must be an integer from 1 to {limits.max_top_k}, got {top_k!r}.")
    if len(prompt) > limits.max_prompt_chars:  # before tokenizing: a huge prompt must not cost its tokenization
        raise ConfigurationError(
            f"The prompt has {len(prompt)} characters, more than this tool's limit of {limits.max_prompt_chars} "
            f"(at most {limits.max_prompt_tokens} tokens); pass a shorter prompt (e.g. only its end)."
        )
    n_tokens = generator.count_tokens(prompt)
    if n_tokens > limits.max_prompt_tokens:
        raise ConfigurationError(
            f"The prompt has {n_tokens} tokens, more than this tool's limit of {limits.max_prompt_tokens}; "
            "pass a shorter prompt (e.g. only its end)."
        )


def compact(result: ExplorationResult, top_k: int, digits: int = 4) -> dict[str, Any]:
    """The small JSON an agent reads: token, and per gap the top tokens, entropy and KL from gap 0."""

    def entry(e: Any) -> dict[str, Any]:
        return {
            "gap": e.gap,
            "position": e.position,
            "top": [[t, round(p, digits)] for t, p in zip(e.top_tokens[:top_k], e.top_probs[:top_k], strict=True)],
            "entropy": round(e.entropy, digits),
            "kl": round(e.kl_divergence, digits),
        }

    return {
        "token": result.original_token,
        "token_position": result.original_position,
        "token_prob": round(result.original_prob, digits),
        "baseline": entry(result.baseline),
        "gaps": [entry(e) for e in result.explorations],
    }


def explore_for_agent(
    generator: RetroactivePositionGenerator,
    prompt: str,
    gaps: Sequence[float],
    top_k: int = 3,
    limits: ToolLimits | None = None,
) -> dict[str, Any]:
    """Validate a tool call against ``limits``, run it, and return :func:`compact` data."""
    limits = limits or ToolLimits()
    validate_tool_call(generator, prompt, gaps, top_k, limits)
    result = generator.generate_and_explore(prompt, list(gaps), top_k=top_k)
    return compact(result, top_k)


def shared_generator(llm: Any) -> Any:
    """A :class:`~posrag.retroactive.RetroactivePositionGenerator` over the model and tokenizer a posrag LLM
    (either framework's: anything with a ``generator`` holding ``model`` and ``tokenizer``) already loaded."""
    from posrag.retroactive.generator import RetroactivePositionGenerator

    steered = getattr(llm, "generator", None)
    if steered is None or not hasattr(steered, "model") or not hasattr(steered, "tokenizer"):
        raise ConfigurationError(
            f"for_llm() takes a posrag LLM (PosragLLM, ChatPosrag), got {type(llm).__name__}. For another model "
            "pass generator=RetroactivePositionGenerator(model, tokenizer)."
        )
    return RetroactivePositionGenerator(steered.model, steered.tokenizer)


__all__ = [
    "MAX_CHARS_PER_TOKEN",
    "TOOL_DESCRIPTION",
    "TOOL_NAME",
    "ExplorePositionsInput",
    "ToolLimits",
    "args_schema",
    "compact",
    "explore_for_agent",
    "parse_tool_call",
    "shared_generator",
    "validate_tool_call",
    "validation_message",
]
