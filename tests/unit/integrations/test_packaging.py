"""Packaging: one extra per framework, bounded like the frameworks' own integrations, the README's commands and
CI in step, and the light adapters importable without torch or transformers."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import langchain_posrag
import pytest

ROOT = Path(__file__).resolve().parents[3]
HEAVY = ("torch", "transformers")


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _imports_in_a_fresh_interpreter(statement: str) -> list[str]:
    """Which heavy modules ``statement`` imports, run in a fresh interpreter with this checkout first on the path."""
    code = f"import sys\n{statement}\nprint(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    path = os.pathsep.join([str(ROOT), str(ROOT / "integrations"), os.environ.get("PYTHONPATH", "")])
    out = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": path}, capture_output=True, text=True, check=True
    )
    return [m for m in out.stdout.strip().split(",") if m]


LIGHT = [
    "import langchain_posrag",
    "from langchain_posrag import PositionReorder; PositionReorder().transform_documents([])",
    "from llama_index.postprocessor.posrag import PositionReorder; PositionReorder().postprocess_nodes([])",
    "import posrag.adapters",
]


def test_light_imports_load_neither_torch_nor_transformers() -> None:
    # One interpreter for all (each import is slow): nothing heavy after all of them means nothing after each.
    assert _imports_in_a_fresh_interpreter("\n".join(LIGHT)) == []


def test_model_components_still_import_from_the_package() -> None:
    from langchain_posrag.chat_models import ChatPosrag
    from langchain_posrag.tools import PositionExplorerTool

    assert langchain_posrag.ChatPosrag is ChatPosrag and langchain_posrag.PositionExplorerTool is PositionExplorerTool
    assert set(langchain_posrag.__all__) <= set(dir(langchain_posrag))
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = langchain_posrag.Nope


def test_frameworks_are_extras_with_the_frameworks_upper_bounds() -> None:
    project = _pyproject()["project"]
    core = " ".join(project["dependencies"])
    assert "langchain" not in core and "llama-index" not in core
    extras = project["optional-dependencies"]
    assert extras["langchain"] == ["langchain-core>=1.0,<2"]
    assert extras["llama-index"] == ["llama-index-core>=0.14,<0.15"]
    assert extras["all"] == ["posrag[langchain,llama-index]"]


def test_the_llama_cpp_backend_is_an_extra_the_test_suite_installs() -> None:
    extras = _pyproject()["project"]["optional-dependencies"]
    (requirement,) = extras["llamacpp"]
    assert requirement.startswith("ik-llama-cpp-python>=0.1.5,<0.2;")
    assert "posrag[llamacpp]" in extras["test"]
    assert "ik-llama" not in " ".join(_pyproject()["project"]["dependencies"])


def test_ci_runs_exactly_the_readmes_test_command() -> None:
    commands = re.findall(r"```bash\n(pip install .*?)\n```", (ROOT / "README.md").read_text())
    assert commands[:2] == [
        'pip install torch==2.13.0 -e ".[all]" && posrag demo',
        'pip install torch==2.13.0 -e ".[all,test]" && ruff check && python -m pytest',
    ]
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.startswith("pip install")]
    assert ci == [commands[1]]
