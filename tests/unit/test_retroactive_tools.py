"""The agent tools: LangChain's standard tool suites, tool-calling schemas, bounds, and real calls on a tiny model."""

from __future__ import annotations

import json
from functools import cache

import pytest
from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_posrag import PositionExplorerTool
from langchain_tests.integration_tests import ToolsIntegrationTests
from langchain_tests.unit_tests import ToolsUnitTests
from llama_index.core.tools import FunctionTool
from llama_index.core.tools.tool_spec.base import BaseToolSpec
from llama_index.tools.posrag import PositionExplorerToolSpec

from posrag.retroactive import RetroactivePositionGenerator
from posrag.retroactive.agent import TOOL_NAME, ToolLimits, compact
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
    assert params["properties"]["gaps"]["items"] == {"type": "number", "minimum": 0}
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
        ({"prompt": PROMPT, "gaps": list(range(5))}, "Too many gaps: 5 given, at most 4"),
        ({"prompt": PROMPT, "gaps": [100]}, "between 0 and 64"),
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
    data = json.loads(output.content)
    expected = compact(generator().generate_and_explore(PROMPT, [3, 9], top_k=3), top_k=3)
    assert data == json.loads(json.dumps(expected))
    too_many = json.loads(tool.call(prompt=PROMPT, gaps=[1, 2, 3, 4, 5]).content)
    assert "at most 4" in too_many["error"]
    negative = json.loads(tool.call(prompt=PROMPT, gaps=[-2]).content)
    assert "between 0 and" in negative["error"]


async def test_llama_index_async_call():
    (tool,) = PositionExplorerToolSpec(generator()).to_tool_list()
    output = await tool.acall(prompt=PROMPT, gaps=[4])
    assert json.loads(output.content)["gaps"][0]["gap"] == 4


def test_tool_limits_are_validated():
    from posrag.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="max_gaps"):
        ToolLimits(max_gaps=0)
