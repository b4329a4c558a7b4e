"""The agent tools: LangChain's standard tool suites, tool-calling schemas, bounds, and real calls on a tiny model."""

from __future__ import annotations

import json
import re
from functools import cache

import pytest
from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_posrag import PositionExplorerTool
from langchain_tests.integration_tests import ToolsIntegrationTests
from langchain_tests.unit_tests import ToolsUnitTests
from llama_index.core.tools import FunctionTool
from llama_index.core.tools.calling import acall_tool, call_tool
from llama_index.core.tools.tool_spec.base import BaseToolSpec
from llama_index.tools.posrag import PositionExplorerToolSpec

from posrag.errors import ConfigurationError
from posrag.retroactive import RetroactivePositionGenerator
from posrag.retroactive.agent import (
    TOOL_NAME,
    ExplorePositionsInput,
    ToolLimits,
    args_schema,
    compact,
    explore_for_agent,
)
from posrag.testing import tiny_model

PROMPT = "Once upon a time"


@cache
def generator() -> RetroactivePositionGenerator:
    tiny = tiny_model("gemma3")
    return RetroactivePositionGenerator(tiny.model, tiny.tokenizer)


class TestPositionExplorerToolUnit(ToolsUnitTests):
    @property
    def tool_constructor(self) -> type[BaseTool]:
        return PositionExplorerTool

    @property
    def tool_constructor_params(self) -> dict:
        return {"generator": generator()}

    @property
    def tool_invoke_params_example(self) -> dict:
        return {"prompt": PROMPT, "gaps": [1, 5, 20], "top_k": 2}


class TestPositionExplorerToolCalls(ToolsIntegrationTests):
    """The invoke / ToolCall half of LangChain's suite, on a tiny real model (milliseconds)."""

    @property
    def tool_constructor(self) -> type[BaseTool]:
        return PositionExplorerTool

    @property
    def tool_constructor_params(self) -> dict:
        return {"generator": generator()}

    @property
    def tool_invoke_params_example(self) -> dict:
        return {"prompt": PROMPT, "gaps": [1, 5, 20], "top_k": 2}


def langchain_tool(**kwargs) -> PositionExplorerTool:
    return PositionExplorerTool(generator=generator(), **kwargs)


def test_langchain_schema_converts_to_openai_tool_format():
    spec = convert_to_openai_tool(langchain_tool())
    assert spec["type"] == "function" and spec["function"]["name"] == TOOL_NAME
    params = spec["function"]["parameters"]
    assert set(params["properties"]) == {"prompt", "gaps", "top_k"}
    assert sorted(params["required"]) == ["gaps", "prompt"]
    assert params["properties"]["gaps"]["items"] == {"type": "number", "minimum": 0, "maximum": 2048}
    assert params["properties"]["gaps"]["maxItems"] == 16 and params["properties"]["prompt"]["maxLength"] == 512 * 32
    assert params["properties"]["top_k"]["maximum"] == 10
    assert all(p.get("description") for p in params["properties"].values())


def test_langchain_call_returns_the_core_result_compactly():
    out = json.loads(langchain_tool().invoke({"prompt": PROMPT, "gaps": [2, 7.5], "top_k": 2}))
    expected = compact(generator().generate_and_explore(PROMPT, [2, 7.5], top_k=2), top_k=2)
    assert out == json.loads(json.dumps(expected))
    assert [g["gap"] for g in out["gaps"]] == [2, 7.5]
    assert all(len(g["top"]) == 2 for g in out["gaps"]) and out["baseline"]["kl"] == 0


def test_constructing_a_tool_loads_no_model():
    assert PositionExplorerTool().generator is None
    assert PositionExplorerToolSpec()._generator is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"prompt": PROMPT, "gaps": list(range(5))}, "gaps: List should have at most 4 items"),
        ({"prompt": PROMPT, "gaps": [100]}, "gaps.0: Input should be less than or equal to 64"),
        ({"prompt": PROMPT, "gaps": [True]}, "gaps.0: Input should be a valid number"),
        ({"prompt": PROMPT, "gaps": ["5"]}, "gaps.0: Input should be a valid number"),
        ({"prompt": PROMPT, "gaps": [1], "top_k": "2"}, "top_k: Input should be a valid integer"),
        ({"prompt": PROMPT, "gaps": [1], "temperature": 1}, "temperature: Extra inputs are not permitted"),
        ({"prompt": PROMPT}, "gaps: Field required"),
        ({"prompt": "x" * 600, "gaps": [1]}, "prompt: String should have at most 512 characters"),
        ({"prompt": PROMPT, "gaps": [-1]}, "greater than or equal to 0"),
        ({"prompt": PROMPT, "gaps": []}, "gaps"),
        ({"prompt": PROMPT, "gaps": [1], "top_k": 11}, "top_k"),
        ({"prompt": "word " * 40, "gaps": [1]}, "limit of 16"),
        ({"prompt": "   ", "gaps": [1]}, "empty"),
    ],
)
def test_langchain_bounds_come_back_as_messages(args, message):
    tool = langchain_tool(max_gaps=4, max_gap=64, max_prompt_tokens=16)
    out = tool.invoke({"name": TOOL_NAME, "args": args, "id": "call-1", "type": "tool_call"})
    assert isinstance(out, ToolMessage) and out.status == "error"
    assert message in out.content


def test_llama_index_spec_converts_and_calls():
    spec = PositionExplorerToolSpec(generator(), limits=ToolLimits(max_gaps=4))
    assert isinstance(spec, BaseToolSpec)
    (tool,) = spec.to_tool_list()
    assert isinstance(tool, FunctionTool) and tool.metadata.name == TOOL_NAME
    openai = tool.metadata.to_openai_tool()
    params = openai["function"]["parameters"]
    assert openai["function"]["name"] == TOOL_NAME
    assert params["properties"]["gaps"]["type"] == "array" and sorted(params["required"]) == ["gaps", "prompt"]
    assert all(p.get("description") for p in params["properties"].values())
    output = tool.call(prompt=PROMPT, gaps=[3, 9])
    assert not output.is_error
    data = json.loads(output.content)
    expected = compact(generator().generate_and_explore(PROMPT, [3, 9], top_k=3), top_k=3)
    assert data == json.loads(json.dumps(expected))


def test_both_frameworks_share_one_bounded_schema():
    limits = ToolLimits(max_gaps=4, max_gap=64, max_prompt_tokens=16)
    (tool,) = PositionExplorerToolSpec(generator(), limits=limits).to_tool_list()
    llama = tool.metadata.fn_schema
    assert llama is langchain_tool(max_gaps=4, max_gap=64, max_prompt_tokens=16).args_schema is args_schema(limits)
    params = tool.metadata.get_parameters_dict()
    assert params["properties"]["gaps"]["maxItems"] == 4 and params["properties"]["gaps"]["items"]["maximum"] == 64
    assert params["properties"]["top_k"]["maximum"] == 10 and params["properties"]["prompt"]["maxLength"] == 16 * 32
    assert PositionExplorerToolSpec(generator()).to_tool_list()[0].metadata.fn_schema is ExplorePositionsInput


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"prompt": PROMPT, "gaps": [1, 2, 3, 4, 5]}, "gaps: List should have at most 4 items"),
        ({"prompt": PROMPT, "gaps": [-2]}, "gaps.0: Input should be greater than or equal to 0"),
        ({"prompt": PROMPT, "gaps": [True]}, "gaps.0: Input should be a valid number"),
        ({"prompt": PROMPT}, "gaps: Field required"),
        ({"prompt": PROMPT, "gaps": [1], "seed": 3}, "seed: Extra inputs are not permitted"),
        ({"prompt": "word " * 40, "gaps": [1]}, "limit of 16"),
    ],
)
async def test_llama_index_bad_calls_are_tool_errors(args, message):
    (tool,) = PositionExplorerToolSpec(generator(), limits=ToolLimits(max_gaps=4, max_prompt_tokens=16)).to_tool_list()
    for output in (call_tool(tool, args), await acall_tool(tool, args)):
        assert output.is_error and message in output.content
        assert isinstance(output.exception, ConfigurationError)
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        tool.call(**args)


class CountingGenerator(RetroactivePositionGenerator):
    """Records how many characters it was asked to tokenize."""

    tokenized: list[int]

    def count_tokens(self, prompt):
        self.tokenized.append(len(prompt))
        return super().count_tokens(prompt)


def test_a_huge_prompt_is_rejected_by_its_length_before_tokenizing():
    tiny = tiny_model("gemma3")
    counting = CountingGenerator(tiny.model, tiny.tokenizer)
    counting.tokenized = []
    huge = "word " * 2_000_000  # 10M characters
    with pytest.raises(ConfigurationError, match="10000000 characters, more than this tool's limit of 16384"):
        explore_for_agent(counting, huge, [1])
    assert counting.tokenized == []
    explore_for_agent(counting, PROMPT, [1])
    assert counting.tokenized == [len(PROMPT)]
    with pytest.raises(ConfigurationError, match="Every gap must be a finite number, got True"):
        explore_for_agent(counting, PROMPT, [True])


async def test_llama_index_async_call():
    (tool,) = PositionExplorerToolSpec(generator()).to_tool_list()
    output = await tool.acall(prompt=PROMPT, gaps=[4])
    assert json.loads(output.content)["gaps"][0]["gap"] == 4


def test_tool_limits_are_validated():
    with pytest.raises(ConfigurationError, match="max_gaps"):
        ToolLimits(max_gaps=0)
