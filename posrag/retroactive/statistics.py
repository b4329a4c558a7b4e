"""From next-token log-probs at each gap to an :class:`~posrag.retroactive.results.ExplorationResult`.

Per gap: the tokens above the selection threshold ("parallel tokens"), the ``top_k`` most likely, the entropy,
and KL(P_gap ‖ P_gap0) against the distribution at the token's natural position. Computed one chunk of gaps at
a time, so memory stays at ``chunk_size x vocab`` whatever the number of gaps.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import torch

from posrag.retroactive.branches import PromptState
from posrag.retroactive.results import ExplorationResult, GapExploration, Number, normalize_number


def summarize(
    state: PromptState,
    all_gaps: Sequence[Number],
    chunks: Iterable[torch.Tensor],
    *,
    wanted: Sequence[Number],
    threshold: float,
    top_k: int,
    decode: Callable[[int], str],
) -> ExplorationResult:
    """The result for ``wanted`` gaps from ``chunks``: ``(chunk, vocab)`` log-probs for ``all_gaps`` in order.

    ``all_gaps[0]`` must be 0: its distribution is the baseline of the KL divergences and of
    ``baseline_token_prob``.
    """
    if not all_gaps or all_gaps[0] != 0:
        raise ValueError("summarize needs gap 0 first: it is the baseline of every comparison.")
    explorations: dict[Number, GapExploration] = {}
    base_lp: torch.Tensor | None = None
    baseline_token = 0
    done = 0
    for log_probs in chunks:
        if base_lp is None:  # gap 0 is the first row of the first chunk
            base_lp = log_probs[0].clone()
            baseline_token = int(base_lp.argmax())
        probs = log_probs.exp()
        # Few passes over the (chunk, vocab) block, none with a logarithm: H(P) = -P . log P, a row-wise dot
        # product with the log-probs already at hand; KL(P || P0) = -H(P) - P . log P0, a matrix-vector product.
        # (A -inf log-prob has probability 0 and adds nothing; the clamp keeps 0 x -inf from making NaN.)
        entropy = -torch.linalg.vecdot(probs, log_probs.clamp_min(torch.finfo(log_probs.dtype).min))
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
        explorations=tuple(explorations[g] for g in wanted),
    )


__all__ = ["summarize"]
