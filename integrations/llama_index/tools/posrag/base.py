"""``PositionExplorerToolSpec``: retroactive position exploration as a LlamaIndex tool spec."""

from __future__ import annotations

import json
from typing import ClassVar

from llama_index.core.tools.tool_spec.base import SPEC_FUNCTION_TYPE, BaseToolSpec

from posrag.errors import PosragError
from posrag.retroactive import RetroactivePositionGenerator
from posrag.retroactive.agent import TOOL_NAME, ToolLimits, explore_for_agent


class PositionExplorerToolSpec(BaseToolSpec):
    """``to_tool_list()`` gives one FunctionTool, ``explore_token_positions``, bounded by ``limits``.

    ``generator`` defaults to the packaged Gemma 3 270M, loaded on the first call. Out-of-bounds calls return
    ``{"error": ...}`` for the agent to read and correct.
    """

    spec_functions: ClassVar[list[SPEC_FUNCTION_TYPE]] = [TOOL_NAME]

    def __init__(self, generator: RetroactivePositionGenerator | None = None, limits: ToolLimits | None = None) -> None:
        self._generator = generator
        self.limits = limits or ToolLimits()

    @property
    def generator(self) -> RetroactivePositionGenerator:
        if self._generator is None:
            self._generator = RetroactivePositionGenerator()
        return self._generator

    def explore_token_positions(self, prompt: str, gaps: list[float], top_k: int = 3) -> str:
        """Generate the next token of `prompt` once, then show how the prediction of the token after it changes
        if it sat `gap` positions further away. Returns JSON: the token, and per gap the top next tokens with
        probabilities, the entropy and the KL divergence from gap 0 (nats); or {"error": ...}.

        Args:
            prompt (str): The text whose next token is generated and explored.
            gaps (list[float]): How many positions later to place the token, e.g. [5, 10, 20]; 0 = natural position.
            top_k (int): How many of the most likely next tokens to report per gap (1 to 10).
        """
        try:
            data = explore_for_agent(self.generator, prompt, gaps, top_k, self.limits)
        except PosragError as exc:
            return json.dumps({"error": str(exc)}, ensure_ascii=False)
        return json.dumps(data, ensure_ascii=False)
