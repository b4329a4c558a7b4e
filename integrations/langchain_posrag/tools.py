"""``PositionExplorerTool``: retroactive position exploration as a LangChain tool with a typed args schema."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

from langchain_core.callbacks import CallbackManagerForToolRun
from langchain_core.tools import BaseTool, ToolException
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from posrag.errors import PosragError
from posrag.retroactive import RetroactivePositionGenerator
from posrag.retroactive.agent import TOOL_DESCRIPTION, TOOL_NAME, ToolLimits, explore_for_agent


class ExplorePositionsInput(BaseModel):
    """Arguments of one exploration call."""

    prompt: str = Field(min_length=1, description="The text whose next token is generated and explored.")
    gaps: list[Annotated[float, Field(ge=0)]] = Field(
        min_length=1,
        description="How many positions later to place the generated token, e.g. [5, 10, 20]; 0 is its natural "
        "position. Fractions are allowed on RoPE models.",
    )
    top_k: int = Field(default=3, ge=1, le=10, description="How many of the most likely next tokens to report per gap.")


def validation_message(error: ValidationError) -> str:
    """The agent-readable reason a call's arguments were rejected (instead of a bare "validation error")."""
    problems = "; ".join(f"{'.'.join(str(part) for part in e['loc']) or 'input'}: {e['msg']}" for e in error.errors())
    return f"Invalid arguments for {TOOL_NAME}: {problems}."


class PositionExplorerTool(BaseTool):
    """Explore how a generated token's position changes what the model predicts next.

    Runs :func:`posrag.retroactive.agent.explore_for_agent` (bounded by ``max_gaps``, ``max_gap``,
    ``max_prompt_tokens``) and returns its compact JSON. Out-of-bounds calls come back to the agent as an error
    message (``handle_tool_error``), not as an exception. ``generator`` defaults to the packaged Gemma 3 270M,
    loaded on the first call.
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
