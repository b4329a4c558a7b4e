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
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from posrag import architectures
from posrag.errors import ConfigurationError, PositionOutOfRangeError, UnsupportedArchitectureError
from posrag.retroactive.analyzers import TokenAnalyzer, default_token_analyzer, gaps_from_entropy
from posrag.retroactive.results import ExplorationResult, GapExploration, Number, PathExpansion, normalize_number

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

DEFAULT_MAX_GAPS = 256
DEFAULT_CHUNK_SIZE = 128
DEFAULT_SELECTION_THRESHOLD = 0.05
_MASKABLE_ATTENTION = ("sdpa", "eager")


@dataclass(frozen=True, eq=False)
class PromptState:
    """A prompt run once through the model: its ids, its per-layer KV cache, the next-token log-probs.

    Every method of :class:`RetroactivePositionGenerator` accepts one in place of a prompt, so several
    explorations of the same prompt share one prefix pass (see :meth:`RetroactivePositionGenerator.prefill`).
    """

    input_ids: tuple[int, ...]
    text: str | None
    past: tuple[tuple[torch.Tensor, torch.Tensor], ...]
    log_probs: torch.Tensor

    @property
    def length(self) -> int:
        return len(self.input_ids)

    @property
    def token_id(self) -> int:
        """The greedy next token (the one explored)."""
        return int(self.log_probs.argmax())

    @property
    def token_prob(self) -> float:
        return float(self.log_probs.max().exp())

    @property
    def entropy(self) -> float:
        """Entropy (nats) of the distribution the token was chosen from: the model's uncertainty."""
        return float(torch.special.entr(self.log_probs.exp()).sum())


Prompt = str | Sequence[int] | PromptState


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


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

    @torch.inference_mode()
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
        device = self.model.device
        out = self.model(
            input_ids=torch.tensor([ids], device=device), use_cache=True, logits_to_keep=1, return_dict=True
        )
        past = tuple(self._cache_tensors(out.cache))
        log_probs = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
        return PromptState(input_ids=ids, text=text, past=past, log_probs=log_probs)

    def _cache_tensors(self, cache: Any) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        layers = getattr(cache, "layers", None)
        if layers is None or len(layers) != len(self._layer_types):
            raise UnsupportedArchitectureError(
                f"{type(self.model).__name__} returned a cache without one key/value layer per decoder layer; "
                "retroactive exploration needs a transformers DynamicCache."
            )
        for layer in layers:
            if getattr(layer, "keys", None) is None or layer.keys.numel() == 0:
                raise UnsupportedArchitectureError(
                    f"{type(self.model).__name__}: a cache layer holds no keys (shared or linear-attention "
                    "layers are not supported by retroactive exploration)."
                )
            yield layer.keys, layer.values

    # ------------------------------------------------------------------ validation

    def _check_threshold(self, threshold: float) -> float:
        if not _is_number(threshold) or not 0 < threshold <= 1:
            raise ConfigurationError(f"selection_threshold must be in (0, 1], got {threshold!r}.")
        return float(threshold)

    def _check_gaps(self, gaps: Iterable[Number], state: PromptState, *, what: str = "gap") -> list[Number]:
        """Normalized, de-duplicated gaps in the order given; clear errors for every way they can be wrong."""
        if isinstance(gaps, (str, bytes)) or _is_number(gaps):
            raise ConfigurationError(f"Give the {what}s as a list of numbers, got {gaps!r}.")
        values = list(gaps)
        if not values:
            raise ConfigurationError(f"No {what}s given; pass at least one.")
        if len(values) > self.max_gaps:
            raise ConfigurationError(
                f"{len(values)} {what}s requested, more than max_gaps={self.max_gaps}. Explore fewer at once "
                "(or raise max_gaps)."
            )
        length = state.length
        last = self.max_positions - 1
        out: list[Number] = []
        for value in values:
            if not _is_number(value) or not math.isfinite(value):
                raise ConfigurationError(f"Every {what} must be a finite number, got {value!r}.")
            value = int(value) if isinstance(value, numbers.Integral) else float(value)  # e.g. numpy scalars
            gap = normalize_number(value - length if what == "position" else value)
            shown = f"position {value}" if what == "position" else f"gap {value}"
            if gap < 0:
                hint = ""
                if what == "position":
                    hint = (
                        f" The prompt has {length} tokens (positions 0..{length - 1}); the explored token's natural "
                        f"position is {length}."
                    )
                    if self.add_special_tokens and getattr(self.tokenizer, "bos_token_id", None) == state.input_ids[0]:
                        hint += (
                            " That count includes the BOS token; use add_special_tokens=False (CLI: "
                            "--no-special-tokens) to leave it out."
                        )
                raise ConfigurationError(f"{shown} is a negative gap: the token cannot move before its prompt.{hint}")
            if isinstance(gap, float) and self.position_encoding != "rope":
                raise PositionOutOfRangeError(
                    f"{shown}: this model has learned absolute positions ({self.position_encoding}), which exist "
                    "at integer positions only. Use integer gaps (fractional positions need a RoPE model)."
                )
            if length + gap > last:
                raise PositionOutOfRangeError(
                    f"{shown} puts the token at position {normalize_number(length + gap)}, past the model's last "
                    f"position {last} (max positions {self.max_positions}). With this {length}-token prompt the "
                    f"largest gap is {last - length}."
                )
            if gap not in out:
                out.append(gap)
        return out

    # ------------------------------------------------------------------ the batched pass

    def _new_cache(self, state: PromptState) -> Any:
        from transformers import DynamicCache

        # Plain DynamicLayers concatenate into new tensors, so the prefix tensors are never written to.
        return DynamicCache(ddp_cache_data=[(k, v) for k, v in state.past])

    def _masks(self, state: PromptState, step: int, branches: int) -> torch.Tensor | dict[str, torch.Tensor]:
        """The 4D additive mask(s) for ``branches`` new tokens at step ``step`` of as many independent branches.

        Keys are the cached prefix, then for each earlier step one key per branch, then this step's keys. A
        query sees the prefix and its own branch, causally and within the sliding window, by sequence index.
        """
        device, dtype = self.model.device, self.model.dtype
        length = state.length
        masks: dict[str, torch.Tensor] = {}
        for kind in dict.fromkeys(self._layer_types):
            counts = {state.past[i][0].shape[-2] for i, t in enumerate(self._layer_types) if t == kind}
            if len(counts) != 1:
                raise UnsupportedArchitectureError(
                    f"{type(self.model).__name__}: {kind} layers cache different numbers of tokens ({sorted(counts)}); "
                    "retroactive exploration needs one mask per layer kind."
                )
            cached = counts.pop()
            key_seq = torch.cat(
                [
                    torch.arange(length - cached, length, device=device),
                    length + torch.arange(step + 1, device=device).repeat_interleave(branches),
                ]
            )
            key_branch = torch.cat(
                [
                    torch.full((cached,), -1, device=device),
                    torch.arange(branches, device=device).repeat(step + 1),
                ]
            )
            query_seq = torch.full((branches, 1), length + step, device=device)
            query_branch = torch.arange(branches, device=device)[:, None]
            allowed = (key_seq[None] <= query_seq) & ((key_branch[None] < 0) | (key_branch[None] == query_branch))
            if kind == "sliding_attention" and self._window:
                allowed &= key_seq[None] > query_seq - self._window
            mask = torch.zeros(allowed.shape, dtype=dtype, device=device)
            mask.masked_fill_(~allowed, torch.finfo(dtype).min)
            masks[kind] = mask[None, None]
        return masks if len(masks) > 1 else next(iter(masks.values()))

    def _step(
        self, state: PromptState, cache: Any, token_ids: torch.Tensor, positions: Sequence[Number], step: int
    ) -> torch.Tensor:
        """One batched pass of ``len(token_ids)`` branch tokens; their next-token log-probs, (B, vocab) fp32."""
        device = self.model.device
        if all(isinstance(p, int) for p in positions):
            position_ids = torch.tensor([list(positions)], dtype=torch.long, device=device)
        else:
            position_ids = torch.tensor([[float(p) for p in positions]], dtype=torch.float32, device=device)
        out = self.model(
            input_ids=token_ids[None].to(device),
            position_ids=position_ids,
            attention_mask=self._masks(state, step, len(positions)),
            cache=cache,
            use_cache=True,
            return_dict=True,
        )
        return torch.log_softmax(out.logits[0].float(), dim=-1)

    def _chunks(self, gaps: Sequence[Number]) -> list[Sequence[Number]]:
        """Split into as few passes as ``chunk_size`` allows, of (nearly) equal size."""
        n_chunks = -(-len(gaps) // self.chunk_size)
        size = -(-len(gaps) // n_chunks)
        return [gaps[i : i + size] for i in range(0, len(gaps), size)]

    @torch.inference_mode()
    def _iter_log_probs(self, state: PromptState, gaps: Sequence[Number]) -> Iterator[torch.Tensor]:
        """Next-token log-probs after the token at each gap, one ``(chunk, vocab)`` tensor per batched pass."""
        token = torch.tensor([state.token_id])
        for chunk in self._chunks(gaps):
            positions = [normalize_number(state.length + g) for g in chunk]
            yield self._step(state, self._new_cache(state), token.repeat(len(chunk)), positions, step=0)

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
        decode = self._decoder()
        explorations: dict[Number, GapExploration] = {}
        base_lp: torch.Tensor | None = None
        baseline_token = 0
        done = 0
        # Statistics per chunk, so memory stays at chunk_size x vocab whatever the number of gaps.
        for log_probs in self._iter_log_probs(state, all_gaps):
            if base_lp is None:  # gap 0 is the first row of the first chunk
                base_lp = log_probs[0].clone()
                baseline_token = int(base_lp.argmax())
            probs = log_probs.exp()
            # Few passes over the (chunk, vocab) block: KL(P || P0) = -H(P) - P . log P0, a matrix-vector product.
            entropy = torch.special.entr(probs).sum(-1)
            kl = (-entropy - probs @ base_lp).clamp_min(0)
            # At most 1/threshold tokens can reach the threshold, so one top-k gives both lists.
            k = min(probs.shape[-1], max(top_k, math.floor(1 / threshold) + 1))
            best_p, best_i = probs.topk(k, dim=-1)
            top_p, top_i = best_p[:, :top_k], best_i[:, :top_k]
            for row in range(probs.shape[0]):
                gap = all_gaps[done + row]
                keep = best_p[row] >= threshold
                parallel_ids = best_i[row][keep].tolist()
                top_ids = top_i[row].tolist()
                explorations[gap] = GapExploration(
                    gap=gap,
                    position=normalize_number(state.length + gap),
                    parallel_tokens=tuple(decode(i) for i in parallel_ids),
                    parallel_token_ids=tuple(parallel_ids),
                    parallel_probs=tuple(best_p[row][keep].tolist()),
                    top_next_token=decode(top_ids[0]),
                    top_next_token_id=top_ids[0],
                    top_next_prob=float(top_p[row, 0]),
                    top_tokens=tuple(decode(i) for i in top_ids),
                    top_token_ids=tuple(top_ids),
                    top_probs=tuple(top_p[row].tolist()),
                    entropy=float(entropy[row]),
                    kl_divergence=float(kl[row]),
                    baseline_token_prob=float(probs[row, baseline_token]),
                )
            done += probs.shape[0]
        return ExplorationResult(
            prompt=state.text,
            prompt_length=state.length,
            original_token=decode(state.token_id),
            original_token_id=state.token_id,
            original_prob=state.token_prob,
            generation_entropy=state.entropy,
            selection_threshold=threshold,
            baseline=explorations[0],
            explorations=tuple(explorations[g] for g in gaps),
        )

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
        cache = self._new_cache(state)
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
