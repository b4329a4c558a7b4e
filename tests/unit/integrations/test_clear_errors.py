"""Failures users meet first say what to do: tool calling, wrong model paths, missing extras, first-time model
preparation without a terminal."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from langchain_core.tools import tool
from langchain_posrag import ChatPosrag
from pydantic import BaseModel

from posrag import models
from posrag.errors import ModelNotFoundError, UnsupportedFeatureError
from posrag.testing import tiny_model

ROOT = Path(__file__).resolve().parents[3]


@tool
def lookup(query: str) -> str:
    """Look something up."""
    return query


class Answer(BaseModel):
    text: str


def test_tool_binding_and_structured_output_say_how_to_use_posrag_with_an_agent() -> None:
    chat = ChatPosrag(model=tiny_model("llama", num_layers=1))
    with pytest.raises(UnsupportedFeatureError, match="tool-calling model as the agent and posrag for the RAG step"):
        chat.bind_tools([lookup])
    with pytest.raises(NotImplementedError, match=r"chain\.as_tool"):  # still what LangChain code expects
        chat.with_structured_output(Answer)


@pytest.mark.parametrize("path", ["./models/gemma", "/no/such/model", "~/models/gemma", "a/b/c", "model.gguf"])
def test_a_local_path_that_does_not_exist_is_not_looked_up_as_a_hub_id(path: str) -> None:
    with pytest.raises(ModelNotFoundError, match=r"No model at .*nothing exists there"):
        models.load_causal_lm(path, cache=False)


def test_a_missing_framework_extra_names_the_install_command() -> None:
    code = "import sys\nsys.modules['llama_index.core'] = None\nimport llama_index.llms.posrag\n"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "integrations")])}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "MissingDependencyError" in done.stderr and "pip install 'posrag[llama-index]'" in done.stderr


def test_first_time_preparation_from_a_framework_class_logs_a_line_without_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.unit.tiny_gguf import write_tiny_llama_gguf

    monkeypatch.setenv(models.CACHE_DIR_ENV, str(tmp_path / "cache"))
    path = write_tiny_llama_gguf(tmp_path / "tiny-llama.gguf")
    with caplog.at_level(logging.WARNING, logger="posrag"):
        ChatPosrag(model=str(path), steering=None)
    assert any("preparing tiny-llama.gguf once" in r.getMessage() for r in caplog.records)


def test_the_exploration_tools_share_the_model_their_llm_loaded() -> None:
    from langchain_posrag import PositionExplorerTool
    from llama_index.llms.posrag import PosragLLM as LILLM
    from llama_index.tools.posrag import PositionExplorerToolSpec

    tiny = tiny_model("llama", num_layers=1)
    chat = ChatPosrag(model=tiny, steering=None)
    assert PositionExplorerTool.for_llm(chat).generator.model is tiny.model
    spec = PositionExplorerToolSpec.for_llm(LILLM(model=tiny, steering=None))
    assert spec.generator.model is tiny.model and spec.generator.tokenizer is tiny.tokenizer
    with pytest.raises(ValueError, match="for_llm\\(\\) takes a posrag LLM"):
        PositionExplorerTool.for_llm(object())
