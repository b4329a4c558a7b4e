"""Shared fixtures: tiny in-process models for unit tests, the real packaged models for integration tests."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(params=["llama", "gemma3", "gpt2", "qwen2", "mistral"])
def tiny(request):
    """A tiny random model of each supported family (a fresh instance per test: tests may hook it)."""
    from posrag.testing import tiny_model

    return tiny_model(request.param)


@pytest.fixture
def tiny_llama():
    from posrag.testing import tiny_model

    return tiny_model("llama")


@pytest.fixture
def tiny_gemma3():
    from posrag.testing import tiny_model

    return tiny_model("gemma3")


@pytest.fixture(scope="session")
def real_lm():
    """The packaged Gemma 3 270M (converted once into the posrag cache, then shared)."""
    from posrag.models import load_causal_lm

    return load_causal_lm()


@pytest.fixture(scope="session")
def real_embedder():
    """The packaged all-MiniLM-L6-v2."""
    from posrag.models import load_embedder

    return load_embedder()
