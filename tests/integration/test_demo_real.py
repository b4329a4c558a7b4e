"""``posrag demo`` on the embedded models, as a user runs it."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from posrag.cli.main import app


def test_demo_answers_from_the_reordered_documents():
    result = CliRunner().invoke(app, ["demo", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout[result.stdout.index("{") :])
    documents = payload["documents"]
    assert len(documents) == 5
    assert [d["position"]["index"] for d in documents] == list(range(5))
    scores = [d["score"] for d in documents]
    assert scores == sorted(scores)  # recency: relevance rises toward the question
    assert documents[-1]["id"] == "marrowvale-02"  # the lighthouse document, retrieved first, placed last
    assert "Ottoline Brisk" in payload["answer"]


def test_demo_rejects_an_unknown_strategy_with_the_choices():
    result = CliRunner().invoke(app, ["demo", "--strategy", "middle"])
    assert result.exit_code != 0
    assert "recency" in result.output and "middle" in result.output
