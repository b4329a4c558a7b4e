"""The verified cache on a COPY of the real converted Gemma 3 270M (the user's cache is never written to).

The copy starts as a legacy cache (no manifest) when the real one is; it gets its manifest on first load, and
8 KB overwritten inside its weights are found by ``verify=True`` and repaired. The repair's conversion is
stood in for by copying the pristine files again (the real GGUF conversion takes ~45 s and is covered by the
first load of the packaged model).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from posrag import model_cache, models
from posrag.generation import GenerationConfig, generate_text

PROMPT = "Paris is"


@pytest.fixture
def cache_copy(tmp_path, monkeypatch):
    real_root = models.cache_dir() / "models"
    real = next((p for p in sorted(real_root.glob("gemma-3-270m-*")) if model_cache._is_complete(p)), None)
    if real is None:
        pytest.skip("the real converted model cache is not there")
    monkeypatch.setenv(models.CACHE_DIR_ENV, str(tmp_path / "cache"))
    copy = tmp_path / "cache" / "models" / real.name
    shutil.copytree(real, copy)
    marker = json.loads((copy / model_cache._COMPLETE_MARKER).read_text())
    marker.pop("files", None)  # as made by the previous posrag version
    (copy / model_cache._COMPLETE_MARKER).write_text(json.dumps(marker))
    calls: list[Path] = []

    def convert(package, out, progress):
        calls.append(out)
        for item in real.iterdir():
            shutil.copy2(item, out / item.name)

    monkeypatch.setattr(model_cache, "_convert_packaged_gemma", convert)
    return copy, calls


def test_a_corrupted_copy_of_the_real_cache_is_found_and_repaired(cache_copy):
    copy, calls = cache_copy
    config = GenerationConfig(max_new_tokens=5)
    first = models.load_causal_lm(cache=False)
    expected = generate_text(first.model, first.tokenizer, PROMPT, config)
    # Cloned: the loaded tensors may be memory-mapped from the file that is about to be damaged.
    pristine = {name: param.clone() for name, param in first.model.state_dict().items()}
    del first
    assert not calls and "files" in json.loads((copy / model_cache._COMPLETE_MARKER).read_text())  # legacy: recorded

    weights = copy / "model.safetensors"
    with weights.open("r+b") as handle:
        handle.seek(weights.stat().st_size // 2)
        handle.write(b"\x7f" * 8192)
    assert models.verify_model_cache(copy) == []  # same sizes
    assert any("model.safetensors" in p for p in models.verify_model_cache(copy, full=True))

    repaired = models.load_causal_lm(cache=False, verify=True)
    assert len(calls) == 1
    assert generate_text(repaired.model, repaired.tokenizer, PROMPT, config) == expected
    for name, param in repaired.model.state_dict().items():
        assert torch.equal(param, pristine[name]), name
