"""Model loading: the conversion cache's crash safety, local directories, and clear errors when offline.

The GGUF de-quantization itself (45 s) is exercised by the integration tests; here a tiny model stands in for
its output so that the cache protocol (temporary directory, marker, rename, stale clean-up) runs in seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from posrag import model_cache, models
from posrag._files import sha256_file
from posrag.errors import ConfigurationError, ModelNotFoundError


def _write_tiny(out_dir: Path) -> None:
    from posrag.testing import tiny_model

    tm = tiny_model("llama")
    tm.save(out_dir)
    (out_dir / model_cache._COMPLETE_MARKER).write_text("{}")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(models.CACHE_DIR_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_cache_dir_follows_the_environment(cache):
    assert models.cache_dir() == cache


def test_conversion_is_atomic_and_cleans_stale_partials(cache, monkeypatch):
    calls = []
    monkeypatch.setattr(
        model_cache, "_convert_packaged_gemma", lambda package, out, progress: (calls.append(out), _write_tiny(out))
    )
    root = cache / "models"
    stale = root / ".tmp-killed-run"
    stale.mkdir(parents=True)
    (stale / "model.safetensors").write_bytes(b"half")
    package = model_cache._gemma_package()
    partial_target = root / f"gemma-3-270m-q4_k_m-{package.EXPECTED_SHA256[:12]}"
    partial_target.mkdir()
    (partial_target / "config.json").write_text("{}")  # no completion marker: must not be trusted

    path = models.default_llm_path(progress=False)

    assert path == partial_target and model_cache._is_complete(path)
    assert not stale.exists() and not list(root.glob(".tmp-*"))
    assert calls and calls[0].parent == root and calls[0].name.startswith(".tmp-")
    assert models.default_llm_path(progress=False) == path  # cached: no second conversion
    assert len(calls) == 1


def test_a_killed_conversion_leaves_nothing_that_is_loaded(cache, monkeypatch):
    """Kill a conversion half-way (in a subprocess) and check the next call converts afresh."""
    script = textwrap.dedent(
        """
        import time
        from posrag import model_cache, models
        def slow(package, out, progress):
            (out / "config.json").write_text("{}")
            (out / "model.safetensors").write_bytes(b"partial")
            print("WRITING", flush=True)
            time.sleep(60)
        model_cache._convert_packaged_gemma = slow
        models.default_llm_path(progress=False)
        """
    )
    env = {**os.environ, models.CACHE_DIR_ENV: str(cache)}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "WRITING"
    finally:
        proc.kill()
        proc.wait()
    root = cache / "models"
    assert not [p for p in root.iterdir() if p.name.startswith("gemma") and model_cache._is_complete(p)]

    monkeypatch.setattr(model_cache, "_convert_packaged_gemma", lambda package, out, progress: _write_tiny(out))
    path = models.default_llm_path(progress=False)
    assert model_cache._is_complete(path)
    assert not list(root.glob(".tmp-*"))


def test_load_a_local_directory_and_share_instances(tmp_path):
    _write_tiny(tmp_path / "tiny")
    first = models.load_causal_lm(tmp_path / "tiny")
    assert first.source.startswith("local directory") and not first.model.training
    assert models.load_causal_lm(tmp_path / "tiny") is first
    assert models.load_causal_lm(tmp_path / "tiny", cache=False) is not first
    assert first.model.dtype == torch.float32


def test_missing_models_fail_with_the_name_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.delenv(models.ALLOW_DOWNLOAD_ENV, raising=False)
    with pytest.raises(ModelNotFoundError, match=r"'no-such-org/no-such-model' was not found locally.*allow_download"):
        models.load_causal_lm("no-such-org/no-such-model", cache=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match=r"no config\.json"):
        models.load_causal_lm(tmp_path / "empty", cache=False)
    with pytest.raises(ModelNotFoundError, match="could not be loaded locally"):
        models.load_embedder("no-such-org/no-such-embedder", cache=False)
    with pytest.raises(ConfigurationError, match=r"Unknown dtype .float7."):
        models.load_causal_lm(tmp_path / "empty", dtype="float7")


def test_conversion_waits_for_a_concurrent_converter(cache, monkeypatch):
    """Two threads asking at once convert once (the file lock serialises them)."""
    import threading

    calls = []

    def convert(package, out, progress):
        calls.append(out)
        time.sleep(0.2)
        _write_tiny(out)

    monkeypatch.setattr(model_cache, "_convert_packaged_gemma", convert)
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(models.default_llm_path(progress=False))) for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(set(results)) == 1


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    """Any connection attempt fails loudly; huggingface_hub is online as far as the environment says."""
    import socket

    from huggingface_hub import constants
    from huggingface_hub.utils import _detect_agent

    attempts: list[object] = []

    def refuse(*args, **kwargs):
        attempts.append(args[:2])
        raise AssertionError(f"network access attempted: {args[:2]!r}")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    # Nothing cached that would spare huggingface_hub its agent-registry request.
    monkeypatch.setattr(constants, "AGENT_HARNESSES_PATH", str(tmp_path / "agent-harnesses.json"), raising=False)
    monkeypatch.setattr(_detect_agent, "_registry", None, raising=False)
    monkeypatch.delenv(models.ALLOW_DOWNLOAD_ENV, raising=False)
    return attempts


def test_hub_lookups_without_download_permission_make_no_network_call(no_network):
    from huggingface_hub import constants

    with pytest.raises(ModelNotFoundError):
        models.load_causal_lm("someone/not-cached-anywhere", cache=False, allow_download=False)
    with pytest.raises(ModelNotFoundError):
        models.load_embedder("someone/not-cached-embedder", cache=False, allow_download=False)
    assert no_network == []
    assert constants.HF_HUB_OFFLINE is False  # restored afterwards


# ----------------------------------------------------------------------------- the verified cache
#
# A tiny model stands in for the conversion's output in a temporary POSRAG_CACHE_DIR; the real cache is never
# touched. Each test damages the converted copy the way issue 9 did and checks it is noticed and repaired.


def _write_tiny_weights(out_dir: Path) -> None:
    from posrag.testing import tiny_model

    tm = tiny_model("llama")
    tm.save(out_dir)
    (out_dir / model_cache._COMPLETE_MARKER).write_text('{"source": "test"}')


@pytest.fixture
def converted(cache, monkeypatch):
    """The default model's cache, converted once from a tiny model; ``calls`` counts conversions."""
    calls: list[Path] = []
    monkeypatch.setattr(
        model_cache,
        "_convert_packaged_gemma",
        lambda package, out, progress: (calls.append(out), _write_tiny_weights(out)),
    )
    path = models.default_llm_path(progress=False)
    return path, calls


def _weights(loaded) -> torch.Tensor:
    return loaded.model.get_input_embeddings().weight.detach().clone()


def test_conversion_records_sizes_and_hashes(converted):
    path, _ = converted
    files = json.loads((path / model_cache._COMPLETE_MARKER).read_text())["files"]
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(files)
    weights = path / "model.safetensors"
    assert files["model.safetensors"] == {"size": weights.stat().st_size, "sha256": sha256_file(weights)}
    assert models.verify_model_cache(path, full=True) == []


def test_overwritten_bytes_are_found_by_full_verification_and_repaired(converted):
    path, calls = converted
    good = _weights(models.load_causal_lm(cache=False))
    weights = path / "model.safetensors"
    with weights.open("r+b") as handle:  # 8 KB overwritten inside the tensor data: same size, loads silently
        handle.seek(weights.stat().st_size - 16384)
        handle.write(b"\x7f" * 8192)
    assert models.verify_model_cache(path) == []  # sizes alone cannot see it
    (problem,) = models.verify_model_cache(path, full=True)
    assert "model.safetensors" in problem and "sha256" in problem

    loaded = models.load_causal_lm(cache=False, verify=True)

    assert len(calls) == 2
    assert torch.equal(_weights(loaded), good)
    assert models.verify_model_cache(path, full=True) == []


@pytest.mark.parametrize("name", ["model.safetensors", "tokenizer.json"])
def test_truncated_or_deleted_files_are_converted_again_at_load(converted, name):
    path, calls = converted
    good = _weights(models.load_causal_lm(cache=False))
    damaged = path / name
    damaged.write_bytes(damaged.read_bytes()[:100])  # raw SafetensorError / JSONDecodeError before
    loaded = models.load_causal_lm(cache=False)
    assert len(calls) == 2 and torch.equal(_weights(loaded), good)
    damaged.unlink()  # a deleted file was not repaired before
    loaded = models.load_causal_lm(cache=False)
    assert len(calls) == 3 and torch.equal(_weights(loaded), good)


def test_a_damaged_header_that_fails_to_load_is_repaired_without_verify(converted):
    path, calls = converted
    weights = path / "model.safetensors"
    with weights.open("r+b") as handle:
        handle.write(b"\xff" * 8)  # the safetensors header length: same size, does not load
    loaded = models.load_causal_lm(cache=False)
    assert len(calls) == 2 and loaded.model is not None


def test_a_cache_from_before_the_manifest_keeps_working_and_gets_one(cache, monkeypatch):
    calls: list[Path] = []
    monkeypatch.setattr(model_cache, "_convert_packaged_gemma", lambda package, out, progress: calls.append(out))
    root = cache / "models"
    target = root / f"gemma-3-270m-q4_k_m-{model_cache._gemma_package().EXPECTED_SHA256[:12]}"
    root.mkdir(parents=True)
    _write_tiny_weights(target)  # the old layout: a marker without a file list

    assert models.default_llm_path(progress=False) == target
    assert not calls
    files = json.loads((target / model_cache._COMPLETE_MARKER).read_text())["files"]
    assert files["model.safetensors"]["size"] == (target / "model.safetensors").stat().st_size
    assert models.load_causal_lm(cache=False, verify=True).model is not None and not calls


def test_doctor_reports_and_repairs_a_damaged_cache(converted):
    from typer.testing import CliRunner

    from posrag.cli.main import app

    path, calls = converted
    runner = CliRunner()
    assert runner.invoke(app, ["doctor", "--no-progress"]).exit_code == 0
    weights = path / "model.safetensors"
    with weights.open("r+b") as handle:
        handle.seek(weights.stat().st_size - 100)
        handle.write(b"\x00" * 50)
    result = runner.invoke(app, ["doctor", "--no-repair", "--no-progress"])
    assert result.exit_code == 1 and "model.safetensors" in result.output and len(calls) == 1
    result = runner.invoke(app, ["doctor", "--no-progress"])
    assert result.exit_code == 0 and "repaired" in result.output and len(calls) == 2
    assert models.verify_model_cache(path, full=True) == []


def test_the_converted_cache_follows_the_umask(cache, monkeypatch):
    monkeypatch.setattr(model_cache, "_convert_packaged_gemma", lambda package, out, progress: _write_tiny_weights(out))
    old = os.umask(0o022)
    try:
        path = models.default_llm_path(progress=False)
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o755  # mkdtemp made it 0700


# ----------------------------------------------------------------------------- any local GGUF file, converted once
#
# The de-quantization itself is transformers' (exercised on a real SmolLM2 GGUF by the integration tests); here a
# tiny model stands in for its output, so the cache key, lookup and repair run in seconds.


@pytest.fixture
def gguf_file(cache, tmp_path, monkeypatch):
    """A local ``.gguf`` path whose conversion writes a tiny llama; ``calls`` lists the files converted."""
    calls: list[Path] = []

    def convert(gguf, out, *, progress, label, name_or_path):
        calls.append(gguf)
        _write_tiny_weights(out)

    monkeypatch.setattr(model_cache, "_convert_gguf_file", convert)
    path = tmp_path / "weights" / "Tiny-Model.Q4_1.gguf"
    path.parent.mkdir()
    path.write_bytes(b"GGUF stand-in")
    return path, calls


def test_a_local_gguf_is_converted_once_into_the_cache(gguf_file, cache):
    path, calls = gguf_file
    first = models.load_causal_lm(path, cache=False)
    second = models.load_causal_lm(path, cache=False)
    assert len(calls) == 1 and calls[0] == path
    target = model_cache.gguf_cache_target(path)
    assert target.parent == cache / "models" and target.name.startswith("gguf-tiny-model.q4_1-")
    assert first.source == f"gguf file ({path}), converted in {target}" and second.source == first.source
    assert torch.equal(_weights(first), _weights(second))
    marker = json.loads((target / model_cache._COMPLETE_MARKER).read_text())
    assert marker["source"] == str(path.resolve()) and marker["size"] == path.stat().st_size
    assert marker["sha256"] == sha256_file(path) and "model.safetensors" in marker["files"]
    assert not list((cache / "models").glob(".tmp-*"))


def test_a_changed_gguf_is_converted_again_into_its_own_directory(gguf_file):
    path, calls = gguf_file
    before = models.gguf_cache_path(path, progress=False)
    path.write_bytes(b"GGUF stand-in, edited")
    after = models.gguf_cache_path(path, progress=False)
    assert after != before and len(calls) == 2
    assert not before.exists()  # the conversion of the earlier version is removed
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))  # same size, new mtime
    assert models.gguf_cache_path(path, progress=False) not in {before, after} and len(calls) == 3
    assert not after.exists()
    other = path.with_name("Tiny-Model.Q4_1-copy.gguf")  # another file is never someone's earlier version
    other.write_bytes(b"GGUF stand-in")
    kept = models.gguf_cache_path(other, progress=False)
    path.write_bytes(b"GGUF stand-in, edited again")
    models.gguf_cache_path(path, progress=False)  # converts, and removes path's earlier conversions only
    assert kept.exists() and len(calls) == 5


def test_a_damaged_gguf_conversion_is_repaired_by_verify(gguf_file):
    path, calls = gguf_file
    good = _weights(models.load_causal_lm(path, cache=False))
    weights = model_cache.gguf_cache_target(path) / "model.safetensors"
    with weights.open("r+b") as handle:
        handle.seek(weights.stat().st_size - 16384)
        handle.write(b"\x7f" * 8192)
    loaded = models.load_causal_lm(path, cache=False, verify=True)
    assert len(calls) == 2 and torch.equal(_weights(loaded), good)


def test_a_gguf_that_transformers_cannot_read_fails_with_the_file_and_leaves_nothing(cache, tmp_path):
    path = tmp_path / "broken.gguf"
    path.write_bytes(b"not a gguf file at all")
    with pytest.raises(ModelNotFoundError, match=r"broken\.gguf could not be converted"):
        models.load_causal_lm(path, cache=False, progress=False)
    assert not [p for p in (cache / "models").iterdir() if not p.name.startswith(".convert.lock")]


def test_find_smollm2_follows_the_environment_then_the_cache(cache, tmp_path, monkeypatch):
    monkeypatch.delenv(models.SMOLLM2_GGUF_ENV, raising=False)
    assert models.find_smollm2() is None
    in_cache = models.smollm2_dir() / "SmolLM2-135M-Instruct.Q4_1.gguf"
    in_cache.parent.mkdir(parents=True)
    in_cache.write_bytes(b"x")
    assert models.find_smollm2() == in_cache
    elsewhere = tmp_path / "elsewhere.gguf"
    monkeypatch.setenv(models.SMOLLM2_GGUF_ENV, str(elsewhere))
    assert models.find_smollm2() is None  # the variable names a file that is not there
    elsewhere.write_bytes(b"x")
    assert models.find_smollm2() == elsewhere


def test_a_real_tiny_gguf_converts_once_and_loads_as_transformers_reads_it(cache, tmp_path, monkeypatch):
    """transformers' own GGUF de-quantization on a tiny Llama written in-process: the converted copy gives the
    logits of a direct GGUF load, and the second load reads the copy (a conversion would now fail)."""
    from transformers import AutoModelForCausalLM

    from tests.unit.tiny_gguf import write_tiny_llama_gguf

    path = write_tiny_llama_gguf(tmp_path / "tiny-llama.gguf")
    first = models.load_causal_lm(path, cache=False, progress=False)
    assert first.model.config.model_type == "llama" and "converted in" in first.source
    direct = AutoModelForCausalLM.from_pretrained(str(tmp_path), gguf_file=path.name).eval()
    ids = first.tokenizer("the cat sat", return_tensors="pt")["input_ids"]
    assert ids.shape[1] > 1
    with torch.no_grad():
        expected = direct(input_ids=ids).logits
        assert torch.equal(first.model(input_ids=ids).logits, expected)

    def no_conversion(*args, **kwargs):
        raise AssertionError("converted twice")

    monkeypatch.setattr(model_cache, "_convert_gguf_file", no_conversion)
    second = models.load_causal_lm(path, cache=False, progress=False)
    with torch.no_grad():
        assert torch.equal(second.model(input_ids=ids).logits, expected)
    assert second.tokenizer("the cat sat")["input_ids"] == ids[0].tolist()
