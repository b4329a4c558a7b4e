"""``PositionExplorerToolSpec``: retroactive position exploration as a LlamaIndex tool spec."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from llama_index.core.tools.tool_spec.base import SPEC_FUNCTION_TYPE, BaseToolSpec
from llama_index.core.tools.types import ToolMetadata

from posrag.retroactive.agent import (
    TOOL_DESCRIPTION,
    TOOL_NAME,
    ToolLimits,
    args_schema,
    explore_for_agent,
    parse_tool_call,
    shared_generator,
)


class PositionExplorerToolSpec(BaseToolSpec):
    """``to_tool_list()`` gives one FunctionTool, ``explore_token_positions``, bounded by ``limits``.

    Its ``fn_schema`` is posrag's shared arguments schema, carrying those bounds. A bad call (a missing, extra,
    mistyped or out-of-bounds argument) raises :class:`~posrag.errors.ConfigurationError` with an agent-readable
    message, which LlamaIndex's agents report back as a ``ToolOutput`` with ``is_error=True``.
    ``generator`` defaults to the packaged Gemma 3 270M, loaded on the first call.
    """

    spec_functions: ClassVar[list[SPEC_FUNCTION_TYPE]] = [TOOL_NAME]

    def __init__(self, generator: Any = None, limits: ToolLimits | None = None) -> None:
        self._generator = generator
        self.limits = limits or ToolLimits()

    @classmethod
    def for_llm(cls, llm: Any, limits: ToolLimits | None = None) -> PositionExplorerToolSpec:
        """The tool spec over the model a posrag ``PosragLLM`` already loaded: one copy in memory. (The packaged
        default is shared anyway: posrag loads each model once per process.)"""
        return cls(generator=shared_generator(llm), limits=limits)

    @property
    def generator(self) -> Any:
        """The ``RetroactivePositionGenerator`` the tool runs (loaded on first use)."""
        if self._generator is None:
            from posrag.retroactive import RetroactivePositionGenerator

            self._generator = RetroactivePositionGenerator()
        return self._generator

    def get_metadata_from_fn_name(
        self, fn_name: str, spec_functions: list[SPEC_FUNCTION_TYPE] | None = None
    ) -> ToolMetadata | None:
        if fn_name != TOOL_NAME:
            return super().get_metadata_from_fn_name(fn_name, spec_functions)
        return ToolMetadata(name=TOOL_NAME, description=TOOL_DESCRIPTION, fn_schema=args_schema(self.limits))

    def explore_token_positions(self, **arguments: Any) -> str:
        """Generate the next token of `prompt` once, then show how the prediction of the token after it changes
        if it sat `gap` positions further away. Returns JSON: the token, and per gap the top next tokens with
        probabilities, the entropy and the KL divergence from gap 0 (nats)."""
        call = parse_tool_call(arguments, self.limits)
        data = explore_for_agent(self.generator, call.prompt, call.gaps, call.top_k, self.limits)
        return json.dumps(data, ensure_ascii=False)
