"""The verified cache on a COPY of the real converted Gemma 3 270M (the user's cache is never written to).

The copy starts as a legacy cache (no manifest) when the real one is; it gets its manifest on first load, and
8 KB overwritten inside its weights are found by ``verify=True`` and repaired. The repair's conversion is
stood in for by copying the pristine files again (the real GGUF conversion takes ~45 s and is covered by the
first load of the packaged model).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from posrag import model_cache, models
from posrag._files import sha256_file
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


def test_a_gguf_file_left_partial_by_a_killed_run_is_assembled_again(tmp_path):
    package = model_cache._gemma_package()
    target = tmp_path / "gguf" / package.MODEL_NAME
    target.parent.mkdir()
    target.write_bytes(b"GGUF" + b"\0" * 4096)  # what a run killed mid-assembly leaves behind
    (target.parent / f".{target.name}.tmp-1-dead").write_bytes(b"\0" * 10)  # and its staging file

    assert model_cache.packaged_gguf_file(target) == target
    assert sha256_file(target) == package.EXPECTED_SHA256
    assert sorted(p.name for p in target.parent.iterdir()) == [".assemble.lock", target.name]


def test_processes_that_start_at_once_on_an_empty_cache_all_get_the_intact_gguf_file(tmp_path):
    # Two benchmark shards (or Ray workers) on a fresh machine: before, one of them read the file the other was
    # still writing and failed with "already exists with an unexpected sha256".
    target = tmp_path / "gguf" / model_cache._gemma_package().MODEL_NAME
    code = "import sys; from pathlib import Path; from posrag.model_cache import packaged_gguf_file; "
    code += "print(packaged_gguf_file(Path(sys.argv[1])))"
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(target)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(3)
    ]
    outcomes = [proc.communicate(timeout=300) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0], [err.decode()[-500:] for _, err in outcomes]
    assert {out.decode().strip() for out, _ in outcomes} == {str(target)}
    assert sha256_file(target) == model_cache._gemma_package().EXPECTED_SHA256
    assert not list(target.parent.glob(".*.tmp-*"))
