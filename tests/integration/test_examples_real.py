"""The README's framework examples run offline on the embedded models and answer the demo question."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from posrag.steering import hook_counts

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"posrag_example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _shared_model(monkeypatch, real_lm):
    """Both examples load the packaged model themselves; hand them the session's copy (same files, no reload)."""
    import posrag.models

    monkeypatch.setattr(posrag.models, "load_causal_lm", lambda *args, **kwargs: real_lm)


def test_langchain_lcel_example(capsys, real_lm):
    answer = _load("langchain_lcel").main()
    assert "Ottoline Brisk" in answer
    assert "Ottoline Brisk" in capsys.readouterr().out
    assert hook_counts(real_lm.model) == {"forward": 0, "forward_pre": 0}


def test_llama_index_query_engine_example(capsys, real_lm):
    response = _load("llama_index_query_engine").main()
    assert "Ottoline Brisk" in str(response)
    positions = [node.node.metadata["posrag_position"] for node in response.source_nodes]
    assert positions == sorted(positions)
    assert "Ottoline Brisk" in capsys.readouterr().out
    assert hook_counts(real_lm.model) == {"forward": 0, "forward_pre": 0}
