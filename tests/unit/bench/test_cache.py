"""The benchmark's generation cache: a stopped run resumes, a re-run generates only what changed, and an entry is
never reused for a generation it does not decide."""

from __future__ import annotations

import sqlite3
from dataclasses import replace

import pytest

from posrag.bench.cache import GenerationCache
from posrag.bench.conditions import LitmConfig
from posrag.bench.data import parse_record
from posrag.bench.runner import LitmBenchmark
from posrag.bench.synthetic import make_synthetic_records
from posrag.errors import ConfigurationError
from posrag.generation import GenerationConfig
from posrag.testing import tiny_model
from tests.unit.hashing_embedder import HashingEmbedder

GEN = GenerationConfig(max_new_tokens=3, stop=("\n",))
CONDITIONS = ("baseline", "recency", "steer-attention")
COSTS = {"latency_s", "peak_memory_mb", "memory_delta_mb", "cached"}


class Stop(Exception):
    """Ends a run part-way, as a session's end or Ctrl-C would."""


@pytest.fixture(scope="module")
def tiny():
    return tiny_model("llama")


@pytest.fixture(scope="module")
def records():
    return [parse_record(r, f"s{i}") for i, r in enumerate(make_synthetic_records(3, 4, seed=0))]


def _run(model, records, cache=None, *, on_trial=None, embedder=None, **config):
    config.setdefault("generation", GEN)
    config.setdefault("positions", (1, 4))
    config.setdefault("conditions", CONDITIONS)
    embedder = embedder or HashingEmbedder()
    bench = LitmBenchmark.from_model(
        model.model, model.tokenizer, LitmConfig(**config), embedder=embedder, model_name="tiny", cache=cache
    )
    return bench.run(records, progress=False, keep_records=True, on_trial=on_trial)


def _trials(result):
    return [{k: v for k, v in t.to_dict().items() if k not in COSTS} for t in result.records]


@pytest.fixture(scope="module")
def uncached(tiny, records):
    return _run(tiny, records)


def test_a_second_run_reads_every_generation_from_the_cache(tiny, records, uncached, tmp_path):
    with GenerationCache(tmp_path / "c.sqlite") as cache:
        first = _run(tiny, records, cache)
        assert len(cache) == first.timing["generations"] > 0 and not any(t.cached for t in first.records)
    assert _trials(first) == _trials(uncached)
    # What the second run reports comes from the stored entries: change one and the trial that reads it changes.
    db = sqlite3.connect(tmp_path / "c.sqlite")
    db.execute("UPDATE generations SET text = 'stored answer'")
    db.commit()
    db.close()
    with GenerationCache(tmp_path / "c.sqlite") as cache:
        second = _run(tiny, records, cache)
    assert second.timing["generations"] == 0 and second.timing["cached"] == first.timing["generations"]
    assert all(t.cached for t in second.records)
    assert {t.prediction for t in second.records} == {"stored answer"}
    assert [t.latency_s for t in second.records] == [t.latency_s for t in first.records]  # the generating run's


def test_a_stopped_run_resumes_where_it_stopped(tiny, records, uncached, tmp_path):
    seen = []

    def stop_after_five(trial):
        seen.append(trial)
        if len(seen) == 5:
            raise Stop

    with GenerationCache(tmp_path / "c.sqlite") as cache, pytest.raises(Stop):
        _run(tiny, records, cache, on_trial=stop_after_five)
    with GenerationCache(tmp_path / "c.sqlite") as cache:
        stored = len(cache)
        resumed = _run(tiny, records, cache)
    assert 0 < stored < uncached.timing["generations"]
    assert resumed.timing["cached"] == stored
    assert resumed.timing["generations"] == uncached.timing["generations"] - stored
    assert _trials(resumed) == _trials(uncached)


def test_only_generations_with_the_same_prompt_model_and_settings_are_shared(tiny, records, tmp_path):
    with GenerationCache(tmp_path / "c.sqlite") as cache:
        _run(tiny, records, cache)
        # Another steering setting: the unsteered trials are read, every steered one is generated.
        restrung = _run(tiny, records, cache, steering={"attention_bias": 7.5})
        assert {t.condition for t in restrung.records if t.cached} == {"baseline", "recency"}
        assert not any(t.cached for t in restrung.records if t.condition == "steer-attention")
        # Another generation length, other weights, another tokenizer: nothing is read.
        longer = _run(tiny, records, cache, generation=replace(GEN, max_new_tokens=4))
        other = tiny_model("llama", seed=1)
        retrained = _run(other, records, cache)
        other.tokenizer.add_tokens(["<extra>"])
        retokenized = _run(replace(other, model=tiny_model("llama", seed=1).model), records, cache)
    for result in (longer, retrained, retokenized):
        assert not any(t.cached for t in result.records)


def test_retrieval_scores_are_stored_and_read_for_the_same_embedder(tiny, records, uncached, tmp_path):
    first, again, other = HashingEmbedder(), HashingEmbedder(), HashingEmbedder(dimension=128)
    with GenerationCache(tmp_path / "c.sqlite") as cache:
        _run(tiny, records, cache, embedder=first)
        resumed = _run(tiny, records, cache, embedder=again)
        _run(tiny, records, cache, embedder=other)
    assert first.calls and not again.calls  # the second run embedded nothing: every question's scores were read
    assert [t.gold_rank for t in resumed.records] == [t.gold_rank for t in uncached.records]
    assert _trials(resumed) == _trials(uncached)
    assert other.calls  # another embedder scores afresh


def test_paths_that_are_not_a_cache_are_refused_and_left_alone(tiny, records, tmp_path):
    with pytest.raises(ConfigurationError, match="is a directory"):
        GenerationCache(tmp_path)
    text = tmp_path / "notes.txt"
    text.write_text("my notes\n")
    with pytest.raises(ConfigurationError, match="not a posrag generation cache"):
        GenerationCache(text)
    assert text.read_text() == "my notes\n"
    other = tmp_path / "app.sqlite"
    db = sqlite3.connect(other)
    db.execute("CREATE TABLE users (name TEXT)")
    db.commit()
    db.close()
    with pytest.raises(ConfigurationError, match="not a posrag generation cache"):
        GenerationCache(other)
    db = sqlite3.connect(other)
    assert [r[0] for r in db.execute("SELECT name FROM sqlite_master")] == ["users"]
    db.close()
    with GenerationCache(tmp_path / "c.sqlite") as cache, pytest.raises(ConfigurationError, match="greedy"):
        _run(tiny, records, cache, generation=replace(GEN, temperature=0.7))


def test_a_cache_of_another_format_is_refused(tmp_path):
    with GenerationCache(tmp_path / "c.sqlite"):
        pass
    db = sqlite3.connect(tmp_path / "c.sqlite")
    db.execute("UPDATE posrag_cache SET value = '0' WHERE name = 'format'")
    db.commit()
    db.close()
    with pytest.raises(ConfigurationError, match="cache format 0"):
        GenerationCache(tmp_path / "c.sqlite")
