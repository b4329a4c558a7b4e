"""Guest manners: importing posrag's adapters changes nothing that other code in the process receives.

Each framework's third-party components and handlers (see :mod:`tests.unit.integrations.host_events`) run in
two fresh interpreters, one with posrag's adapters imported and one without; the events must be identical.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def _events(framework: str, posrag: str) -> dict:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "integrations"), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-m", "tests.unit.integrations.host_events", framework, posrag],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    assert "Error in" not in done.stderr, done.stderr  # a handler that raised (LangChain logs and carries on)
    return json.loads(done.stdout)


@pytest.mark.parametrize("framework", ["langchain", "llama_index"])
def test_other_codes_callbacks_and_instrumentation_see_the_same_events_with_posrag_imported(framework: str) -> None:
    without, with_posrag = _events(framework, "without"), _events(framework, "with")
    assert with_posrag.keys() == without.keys()
    for entry, expected in without.items():
        assert with_posrag[entry] == expected, entry
    if framework == "langchain":  # the comparison sees the events that matter: LLM starts under async managers
        assert ["on_llm_start", "on_llm_end"] in [run[0] for run in without["llm/ainvoke"]["async"]]
        assert any(run[0] == ["llm:FakeListLLM:True:True"] for run in without["llm/ainvoke"]["collector"])
