"""Fixtures shared by the benchmark's tests."""

from __future__ import annotations

import pytest

from posrag.testing import tiny_model


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    """A tiny random Llama saved as a model directory, for commands that take ``--model <path>``."""
    return tiny_model("llama").save(tmp_path_factory.mktemp("tiny-llama"))
