"""``PositionExplorerTool``: retroactive position exploration as a LangChain tool with a typed args schema."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from langchain_core.callbacks import CallbackManagerForToolRun
from langchain_core.tools import BaseTool, ToolException
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from posrag.errors import PosragError
from posrag.retroactive import RetroactivePositionGenerator
from posrag.retroactive.agent import (
    TOOL_DESCRIPTION,
    TOOL_NAME,
    ExplorePositionsInput,
    ToolLimits,
    args_schema,
    explore_for_agent,
    shared_generator,
    validation_message,
)


class PositionExplorerTool(BaseTool):
    """Explore how a generated token's position changes what the model predicts next.

    Runs :func:`posrag.retroactive.agent.explore_for_agent` (bounded by ``max_gaps``, ``max_gap``,
    ``max_prompt_tokens``; the args schema carries the same bounds) and returns its compact JSON. Bad calls
    come back to the agent as an error message (``handle_tool_error``), not as an exception. ``generator``
    defaults to the packaged Gemma 3 270M, loaded on the first call.
    """

    name: str = TOOL_NAME
    description: str = TOOL_DESCRIPTION
    args_schema: type[BaseModel] = ExplorePositionsInput
    handle_tool_error: bool = True
    handle_validation_error: bool | str | Callable[[ValidationError], str] | None = validation_message
    generator: RetroactivePositionGenerator | None = Field(default=None, exclude=True)
    max_gaps: int = Field(default=ToolLimits.max_gaps, ge=1, description="Most gaps per call.")
    max_gap: int = Field(default=ToolLimits.max_gap, ge=1, description="Largest gap allowed.")
    max_prompt_tokens: int = Field(default=ToolLimits.max_prompt_tokens, ge=1, description="Longest prompt allowed.")
    model_config = ConfigDict(arbitrary_types_allowed=True)
    _limits: ToolLimits = PrivateAttr()

    def model_post_init(self, context: Any, /) -> None:
        self._limits = ToolLimits(
            max_gaps=self.max_gaps, max_gap=self.max_gap, max_prompt_tokens=self.max_prompt_tokens
        )
        self.args_schema = args_schema(self._limits)

    @classmethod
    def for_llm(cls, llm: Any, **kwargs: Any) -> PositionExplorerTool:
        """The tool over the model a posrag LLM already loaded (``PosragLLM`` / ``ChatPosrag``): one copy in memory.
        (The packaged default is shared anyway: posrag loads each model once per process.)"""
        return cls(generator=shared_generator(llm), **kwargs)

    def _generator(self) -> RetroactivePositionGenerator:
        if self.generator is None:
            self.generator = RetroactivePositionGenerator()
        return self.generator

    def _run(
        self,
        prompt: str,
        gaps: list[float],
        top_k: int = 3,
        run_manager: CallbackManagerForToolRun | None = None,
    ) -> str:
        try:
            data = explore_for_agent(self._generator(), prompt, gaps, top_k, self._limits)
        except PosragError as exc:
            raise ToolException(str(exc)) from exc
        return json.dumps(data, ensure_ascii=False)


__all__ = ["ExplorePositionsInput", "PositionExplorerTool"]
