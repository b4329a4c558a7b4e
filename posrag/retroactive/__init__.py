"""Retroactive position exploration: a generated token re-run at later positions, all in one batched pass.

``RetroactivePositionGenerator(model, tokenizer).generate_and_explore(prompt, gaps)``; see
:mod:`posrag.retroactive.generator` for the semantics.
"""

from posrag.retroactive.analyzers import (
    TokenAnalyzer,
    classify_token,
    default_token_analyzer,
    gaps_from_entropy,
    normalized_entropy,
)
from posrag.retroactive.generator import Prompt, PromptState, RetroactivePositionGenerator
from posrag.retroactive.results import ExplorationResult, GapExploration, PathExpansion

__all__ = [
    "ExplorationResult",
    "GapExploration",
    "PathExpansion",
    "Prompt",
    "PromptState",
    "RetroactivePositionGenerator",
    "TokenAnalyzer",
    "classify_token",
    "default_token_analyzer",
    "gaps_from_entropy",
    "normalized_entropy",
]
