"""``posrag demo`` on the embedded models, as a user runs it."""

from __future__ import annotations

import importlib.util
import json

import pytest
from typer.testing import CliRunner

from posrag.cli.main import app

LLAMA_CPP = pytest.mark.skipif(
    importlib.util.find_spec("ik_llama_cpp") is None,
    reason="the llama.cpp extra is not installed: pip install 'posrag[llamacpp]'",
)


@pytest.mark.parametrize("backend", ["torch", pytest.param("llama.cpp", marks=LLAMA_CPP)])
def test_demo_answers_from_the_reordered_documents(backend):
    result = CliRunner().invoke(app, ["demo", "--json", "--backend", backend])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout[result.stdout.index("{") :])
    documents = payload["documents"]
    assert len(documents) == 5
    assert [d["position"]["index"] for d in documents] == list(range(5))
    scores = [d["score"] for d in documents]
    assert scores == sorted(scores)  # recency: relevance rises toward the question
    assert documents[-1]["id"] == "marrowvale-02"  # the lighthouse document, retrieved first, placed last
    assert "Ottoline Brisk" in payload["answer"]
    # Steered by default (attention bias), only the best-scored document (SteeringConfig.top_k=1).
    assert [entry["tier"] for entry in payload["steering"]] == ["off"] * 4 + ["full"]
    assert payload["steering"][-1]["doc_id"] == "marrowvale-02" and payload["steering"][-1]["attention_bias"] > 0


def test_demo_table_shows_positions_scores_steering_and_the_answer():
    result = CliRunner().invoke(app, ["demo", "--steer", "attention"])
    assert result.exit_code == 0, result.output
    assert "Retrieved documents in prompt order" in result.output
    assert "full, bias" in result.output and "1 document(s) steered" in result.output
    output = " ".join(result.output.split())  # the console wraps long lines
    answer = output[output.index("Answer:") : output.index("models loaded")]
    assert "Ottoline Brisk" in answer


def test_demo_rejects_an_unknown_strategy_with_the_choices():
    result = CliRunner().invoke(app, ["demo", "--strategy", "middle"])
    assert result.exit_code != 0
    assert "recency" in result.output and "middle" in result.output
