"""Retroactive position exploration: how would the next token change if this token sat further away?

Semantics. The prompt has ``L`` tokens at positions ``0..L-1``. The generated token ``t`` is the greedy
argmax of the prompt's last logits; it normally sits at position ``L`` (gap 0). "Gap ``g``" places the same
token id at position ``L + g`` while it stays at sequence index ``L``: it attends to the whole prefix and to
itself, exactly as in a plain forward pass of ``prompt + [t]`` with position ids ``[0..L-1, L+g]``. The model
only sees token ids, position ids and an attention mask, so the skipped positions need no tokens.
:meth:`~RetroactivePositionGenerator.compare_positions` takes absolute positions (``L + gap``). Path
expansion continues from ``t`` at its gap: the next tokens sit at ``L+g+1, L+g+2, …`` (greedy).

The attention mask follows sequence order, not position values: a sliding-window layer (Gemma 3) lets the
explored token see the last ``window - 1`` prefix tokens in sequence order, whatever its position id.

How it is fast. The prefix runs once (KV cache kept, logits for its last token only). Then all ``N``
explored copies of ``t`` go through one batched pass as ``N`` new tokens of one sequence, each with its own
position id and a 4D mask that lets copy ``i`` see the prefix and itself only; logits are computed for the
``N`` copies alone. The prefix cache is never mutated: every pass builds a new cache from its tensors.

Positions may be floats where the position encoding allows it (RoPE); learned absolute tables (GPT-2) need
integer positions below ``n_positions``.

This module is the public API; the two passes and their masks live in :mod:`posrag.retroactive.branches`, the
per-gap statistics in :mod:`posrag.retroactive.statistics`, the checks on requested gaps in
:mod:`posrag.retroactive.validation`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import torch

from posrag import architectures
from posrag.errors import ConfigurationError, PositionOutOfRangeError
from posrag.retroactive.analyzers import TokenAnalyzer, default_token_analyzer, gaps_from_entropy
from posrag.retroactive.branches import Prompt, PromptState, branch_step, chunked, new_cache, run_prefix
from posrag.retroactive.results import ExplorationResult, Number, PathExpansion, normalize_number
from posrag.retroactive.statistics import summarize
from posrag.retroactive.validation import check_gaps, check_threshold

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

DEFAULT_MAX_GAPS = 256
DEFAULT_CHUNK_SIZE = 128
DEFAULT_SELECTION_THRESHOLD = 0.05
_MASKABLE_ATTENTION = ("sdpa", "eager")


class RetroactivePositionGenerator:
    """Explore many positions of a generated token at about the cost of one forward pass.

    ``model`` is a Hugging Face causal LM (RoPE or learned absolute positions) with its ``tokenizer``, a model
    name or path for :func:`posrag.models.load_causal_lm`, or ``None`` for the packaged Gemma 3 270M.
    ``max_gaps`` bounds one call; ``chunk_size`` bounds how many copies share one batched pass (memory).
    """

    def __init__(
        self,
        model: PreTrainedModel | str | os.PathLike[str] | None = None,
        tokenizer: PreTrainedTokenizerBase | None = None,
        *,
        max_gaps: int = DEFAULT_MAX_GAPS,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        top_k: int = 5,
        max_prompt_tokens: int | None = None,
        add_special_tokens: bool = True,
        progress: bool = False,
    ) -> None:
        if model is None or isinstance(model, (str, os.PathLike)):
            from posrag.models import load_causal_lm

            loaded = load_causal_lm(model, progress=progress)
            model, tokenizer = loaded.model, tokenizer or loaded.tokenizer
        if tokenizer is None:
            raise ConfigurationError(
                "RetroactivePositionGenerator(model, tokenizer): a model object needs its tokenizer."
            )
        for name, value in (("max_gaps", max_gaps), ("chunk_size", chunk_size), ("top_k", top_k)):
            if not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"{name} must be a positive integer, got {value!r}.")
        self.model = model
        self.tokenizer = tokenizer
        self.max_gaps = max_gaps
        self.chunk_size = chunk_size
        self.top_k = top_k
        self.add_special_tokens = add_special_tokens
        self.progress = progress
        self.position_encoding = architectures.position_encoding(model)
        self.max_positions = architectures.max_positions(model)
        self.max_prompt_tokens = min(max_prompt_tokens or self.max_positions, self.max_positions)
        self._layer_types = architectures.layer_types(model)
        self._window = architectures.sliding_window(model)
        attn = getattr(model.config, "_attn_implementation", None) or "eager"
        if attn not in _MASKABLE_ATTENTION:
            raise ConfigurationError(
                f"Retroactive exploration passes a custom 4D attention mask, which attn_implementation={attn!r} "
                "does not take. Load the model with attn_implementation='sdpa' (or 'eager')."
            )

    # ------------------------------------------------------------------ prompts and the prefix pass

    def _encode(self, prompt: str | Sequence[int]) -> tuple[tuple[int, ...], str | None]:
        if isinstance(prompt, str):
            if not prompt.strip():
                raise ConfigurationError("The prompt is empty; give some text to generate the explored token from.")
            ids = self.tokenizer(prompt, add_special_tokens=self.add_special_tokens)["input_ids"]
            return tuple(int(i) for i in ids), prompt
        ids = tuple(int(i) for i in prompt)
        if not ids:
            raise ConfigurationError("The prompt is empty (no token ids); give at least one token.")
        return ids, None

    def count_tokens(self, prompt: str | Sequence[int]) -> int:
        """How many tokens ``prompt`` has as the model sees it (special tokens included)."""
        return len(self._encode(prompt)[0])

    def prefill(self, prompt: Prompt) -> PromptState:
        """Run the prompt once and keep its KV cache; the result can be explored many times."""
        if isinstance(prompt, PromptState):
            return prompt
        ids, text = self._encode(prompt)
        if len(ids) > self.max_prompt_tokens:
            raise ConfigurationError(
                f"The prompt has {len(ids)} tokens, more than max_prompt_tokens={self.max_prompt_tokens}. "
                "Shorten it, or raise max_prompt_tokens."
            )
        if len(ids) >= self.max_positions:
            raise PositionOutOfRangeError(
                f"The prompt has {len(ids)} tokens, so the generated token would sit at position {len(ids)}, "
                f"past the model's last position {self.max_positions - 1}. Shorten the prompt."
            )
        if self.model.training:
            raise ConfigurationError("The model is in training mode (dropout on); call model.eval() first.")
        return run_prefix(self.model, ids, text, self._layer_types)

    # ------------------------------------------------------------------ validation

    def _check_threshold(self, threshold: float) -> float:
        return check_threshold(threshold)

    def _check_gaps(self, gaps: Iterable[Number], state: PromptState, *, what: str = "gap") -> list[Number]:
        bos = self.add_special_tokens and getattr(self.tokenizer, "bos_token_id", None) == state.input_ids[0]
        return check_gaps(
            gaps,
            prompt_length=state.length,
            max_gaps=self.max_gaps,
            max_positions=self.max_positions,
            position_encoding=self.position_encoding,
            what=what,
            counts_bos=bos,
        )

    # ------------------------------------------------------------------ the batched pass

    def _step(
        self, state: PromptState, cache: Any, token_ids: torch.Tensor, positions: Sequence[Number], step: int
    ) -> torch.Tensor:
        """One batched pass of the branches (see :func:`~posrag.retroactive.branches.branch_step`)."""
        return branch_step(
            self.model, state, cache, token_ids, positions, step, layer_types=self._layer_types, window=self._window
        )

    @torch.inference_mode()
    def _iter_log_probs(self, state: PromptState, gaps: Sequence[Number]) -> Iterator[torch.Tensor]:
        """Next-token log-probs after the token at each gap, one ``(chunk, vocab)`` tensor per batched pass."""
        token = torch.tensor([state.token_id])
        for chunk in chunked(gaps, self.chunk_size):
            positions = [normalize_number(state.length + g) for g in chunk]
            yield self._step(state, new_cache(state), token.repeat(len(chunk)), positions, step=0)

    def position_log_probs(self, prompt: Prompt, positions: Iterable[Number]) -> torch.Tensor:
        """Next-token log-probs (``(len(positions), vocab)``, fp32) after the generated token at each absolute
        position. Row ``i`` equals a separate forward pass of ``prompt + [token]`` with position ids
        ``[0..L-1, positions[i]]``."""
        state = self.prefill(prompt)
        gaps = self._check_gaps(positions, state, what="position")
        by_gap = dict(zip(gaps, torch.cat(list(self._iter_log_probs(state, gaps))), strict=True))
        return torch.stack([by_gap[normalize_number(p - state.length)] for p in positions])

    # ------------------------------------------------------------------ building results

    def _decode(self, token_ids: Sequence[int]) -> str:
        return str(self.tokenizer.decode(list(token_ids)))

    def _decoder(self) -> Callable[[int], str]:
        """A memoizing one-token decoder for one call (the same ids recur across gaps)."""
        cache: dict[int, str] = {}

        def decode(token_id: int) -> str:
            if token_id not in cache:
                cache[token_id] = self._decode([token_id])
            return cache[token_id]

        return decode

    def _explore(
        self, state: PromptState, gaps: Sequence[Number], threshold: float, top_k: int | None
    ) -> ExplorationResult:
        top_k = self.top_k if top_k is None else top_k
        if not isinstance(top_k, int) or top_k < 1:
            raise ConfigurationError(f"top_k must be a positive integer, got {top_k!r}.")
        all_gaps = [0, *[g for g in gaps if g != 0]]
        chunks = self._iter_log_probs(state, all_gaps)
        return summarize(state, all_gaps, chunks, wanted=gaps, threshold=threshold, top_k=top_k, decode=self._decoder())

    # ------------------------------------------------------------------ the seed's API

    def generate_and_explore(
        self,
        prompt: Prompt,
        gaps: Iterable[Number],
        selection_threshold: float = DEFAULT_SELECTION_THRESHOLD,
        *,
        top_k: int | None = None,
    ) -> ExplorationResult:
        """Generate the next token once, then see its next-token distribution at each ``gap`` after the prompt."""
        threshold = self._check_threshold(selection_threshold)
        state = self.prefill(prompt)
        return self._explore(state, self._check_gaps(gaps, state), threshold, top_k)

    def compare_positions(
        self,
        prompt: Prompt,
        positions: Iterable[Number],
        selection_threshold: float = DEFAULT_SELECTION_THRESHOLD,
        *,
        top_k: int | None = None,
    ) -> ExplorationResult:
        """Like :meth:`generate_and_explore` with absolute positions (``len(prompt tokens) + gap``).

        Look explorations up with ``result.at_position(p)`` or ``result.by_position()``.
        """
        threshold = self._check_threshold(selection_threshold)
        state = self.prefill(prompt)
        gaps = self._check_gaps(positions, state, what="position")
        return self._explore(state, gaps, threshold, top_k)

    def adaptive_exploration(
        self,
        prompt: Prompt,
        token_analyzer: TokenAnalyzer | None = None,
        selection_threshold: float = DEFAULT_SELECTION_THRESHOLD,
        *,
        top_k: int | None = None,
    ) -> ExplorationResult:
        """Let ``token_analyzer(token_text) -> gaps`` choose the gaps from the generated token.

        The default (:func:`~posrag.retroactive.analyzers.default_token_analyzer`) is the seed's: punctuation →
        large gaps, short tokens → small, long tokens → medium. The prefix still runs only once.
        """
        threshold = self._check_threshold(selection_threshold)
        state = self.prefill(prompt)
        analyzer = token_analyzer or default_token_analyzer
        gaps = analyzer(self._decode([state.token_id]))
        return self._explore(state, self._check_gaps(gaps, state), threshold, top_k)

    def dynamic_exploration(
        self,
        prompt: Prompt,
        *,
        num_gaps: int = 8,
        min_gap: int = 1,
        max_gap: int = 128,
        selection_threshold: float = DEFAULT_SELECTION_THRESHOLD,
        top_k: int | None = None,
    ) -> ExplorationResult:
        """Choose gaps from the model's own uncertainty about the token (higher entropy → larger gaps).

        See :func:`~posrag.retroactive.analyzers.gaps_from_entropy`; ``max_gap`` is capped to the positions
        the model has left after the prompt.
        """
        threshold = self._check_threshold(selection_threshold)
        state = self.prefill(prompt)
        room = self.max_positions - 1 - state.length
        if room < min_gap:
            raise PositionOutOfRangeError(
                f"The {state.length}-token prompt leaves room for gaps up to {room} only, less than min_gap={min_gap}."
            )
        gaps = gaps_from_entropy(
            state.entropy,
            state.log_probs.numel(),
            num_gaps=num_gaps,
            min_gap=min_gap,
            max_gap=min(max_gap, room),
        )
        return self._explore(state, self._check_gaps(gaps, state), threshold, top_k)

    def batch_generate_and_explore(
        self,
        prompts: Sequence[Prompt],
        gaps: Iterable[Number],
        selection_threshold: float = DEFAULT_SELECTION_THRESHOLD,
        *,
        top_k: int | None = None,
    ) -> list[ExplorationResult]:
        """:meth:`generate_and_explore` for several prompts (each: one prefix pass + one batched pass)."""
        from tqdm.auto import tqdm

        if isinstance(prompts, str):
            raise ConfigurationError("batch_generate_and_explore takes a list of prompts; use generate_and_explore.")
        gap_list = list(gaps)
        threshold = self._check_threshold(selection_threshold)
        states = [self.prefill(p) for p in prompts]  # fail on a bad prompt before any exploring
        checked = [self._check_gaps(gap_list, s) for s in states]
        return [
            self._explore(state, g, threshold, top_k)
            for state, g in tqdm(
                list(zip(states, checked, strict=True)),
                desc="posrag: exploring",
                disable=not self.progress or len(states) < 2,
            )
        ]

    # ------------------------------------------------------------------ path expansion

    @torch.inference_mode()
    def expand_paths(self, prompt: Prompt, gaps: Iterable[Number], length: int = 8) -> list[PathExpansion]:
        """Continue the token into a ``length``-token greedy path at each gap, all gaps in the same passes.

        Each path is an independent branch: it sees the prefix and its own tokens only, at positions
        ``L+g, L+g+1, …``; the ``length`` passes are batched over the gaps.
        """
        if not isinstance(length, int) or length < 1:
            raise ConfigurationError(f"length must be a positive integer, got {length!r}.")
        state = self.prefill(prompt)
        checked = self._check_gaps(gaps, state)
        last = self.max_positions - 1
        for gap in checked:
            if state.length + gap + length > last:
                raise PositionOutOfRangeError(
                    f"A {length}-token path from gap {gap} reaches position "
                    f"{normalize_number(state.length + gap + length)}, "
                    f"past the model's last position {last}. Use a shorter path or a smaller gap."
                )
        cache = new_cache(state)
        token_ids = torch.full((len(checked),), state.token_id)
        chosen: list[list[int]] = []
        chosen_probs: list[list[float]] = []
        for step in range(length):
            positions = [normalize_number(state.length + g + step) for g in checked]
            log_probs = self._step(state, cache, token_ids, positions, step)
            best_lp, token_ids = log_probs.max(-1)
            chosen.append(token_ids.tolist())
            chosen_probs.append(best_lp.exp().tolist())
            token_ids = token_ids.cpu()
        eos = getattr(self.tokenizer, "eos_token_id", None)
        decode = self._decoder()
        paths = []
        for b, gap in enumerate(checked):
            ids = [chosen[s][b] for s in range(length)]
            probs = [chosen_probs[s][b] for s in range(length)]
            if eos is not None and eos in ids:
                cut = ids.index(eos) + 1
                ids, probs = ids[:cut], probs[:cut]
            start = normalize_number(state.length + gap)
            paths.append(
                PathExpansion(
                    gap=gap,
                    start_position=start,
                    token=decode(state.token_id),
                    token_id=state.token_id,
                    tokens=tuple(decode(i) for i in ids),
                    token_ids=tuple(ids),
                    probs=tuple(probs),
                    positions=tuple(normalize_number(start + i + 1) for i in range(len(ids))),
                    text=self._decode([state.token_id, *ids]),
                )
            )
        return paths

    def expand_path(self, prompt: Prompt, gap: Number, length: int = 8) -> PathExpansion:
        """Continue the token into a ``length``-token greedy path while it sits ``gap`` positions later."""
        return self.expand_paths(prompt, [gap], length)[0]


__all__ = ["Prompt", "PromptState", "RetroactivePositionGenerator"]
