"""Sharded benchmark runs (``--shard i/N``) merge to exactly the unsharded result, on a tiny random model."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from posrag.bench._targets import evaluate_targets
from posrag.bench.conditions import LitmConfig
from posrag.bench.data import parse_record
from posrag.bench.report import write_outputs
from posrag.bench.results import LitmResult
from posrag.bench.runner import LitmBenchmark
from posrag.bench.shards import Shard, merge_results, read_result
from posrag.bench.synthetic import make_synthetic_records
from posrag.cli.main import app
from posrag.errors import ConfigurationError
from posrag.generation import GenerationConfig
from tests.unit.hashing_embedder import HashingEmbedder

CONFIG = LitmConfig(
    positions=(1, 2, 4),
    conditions=("baseline", "recency", "steer-attention", "steer-confident", "control-attention"),
    generation=GenerationConfig(max_new_tokens=3, stop=("\n",)),
)
#: What differs between two runs of the same trials: wall-clock measurements.
CLOCK = {"latency_s", "mean_latency_s", "added_latency_s", "added_latency_same_length_s"}


@pytest.fixture(scope="module")
def tiny():
    from posrag.testing import tiny_model

    return tiny_model("gemma3")


@pytest.fixture(scope="module")
def records():
    # 5 questions over 3 shards: 2, 2 and 1; 3 documents each, filled to 4 from the others.
    return [parse_record(r, f"q{i}") for i, r in enumerate(make_synthetic_records(5, 3, seed=2))]


def _bench(tiny) -> LitmBenchmark:
    return LitmBenchmark.from_model(tiny.model, tiny.tokenizer, CONFIG, embedder=HashingEmbedder(), model_name="tiny")


@pytest.fixture(scope="module")
def whole(tiny, records) -> LitmResult:
    return _bench(tiny).run(records, progress=False, keep_records=True, data_info={"path": "synthetic"})


@pytest.fixture(scope="module")
def shards(tiny, records) -> list[LitmResult]:
    bench = _bench(tiny)
    return [bench.run(records, progress=False, data_info={"path": "synthetic"}, shard=Shard(i, 3)) for i in range(3)]


def _without_clock(value):
    if isinstance(value, dict):
        return {k: _without_clock(v) for k, v in value.items() if k not in CLOCK}
    if isinstance(value, list):
        return [_without_clock(v) for v in value]
    return value


def test_shards_split_the_questions_round_robin(shards, records):
    ids = [r.id for r in records]
    assert [list(dict.fromkeys(t.question_id for t in s.records)) for s in shards] == [
        [ids[0], ids[3]],
        [ids[1], ids[4]],
        [ids[2]],
    ]
    for i, s in enumerate(shards):
        assert s.data["questions"] == len(ids[i::3])
        assert s.data["shard"]["index"] == i and s.data["shard"]["questions_total"] == 5
        assert s.data["num_docs"] == 4 and s.data["distractors_filled"] is True  # decided over all records


def test_merged_shards_equal_the_unsharded_run(whole, shards):
    merged = merge_results([shards[2], shards[0], shards[1]])  # in any order
    a, b = whole.to_dict(), merged.to_dict()
    for key in ("results", "records", "settings", "retrieval", "model", "embedder"):
        assert _without_clock(b[key]) == _without_clock(a[key]), key
    # Targets judged on the same accuracies (overhead checks are timings: their verdict may differ).
    timed = ("overhead",)
    a_targets, b_targets = evaluate_targets(whole), evaluate_targets(merged)
    assert [t for t in b_targets if not any(w in t.name for w in timed)] == [
        t for t in a_targets if not any(w in t.name for w in timed)
    ]
    assert {k: v for k, v in b["data"].items() if k != "merged_from"} == a["data"]
    assert [m["shard"] for m in b["data"]["merged_from"]] == ["0/3", "1/3", "2/3"]
    assert b["timing"]["trials"] == a["timing"]["trials"] and b["timing"]["generations"] == a["timing"]["generations"]
    # Every trial's correctness and prediction, in the unsharded order.
    key = lambda t: (t.question_id, t.position, t.condition, t.regime, t.correct, t.prediction, t.reused)  # noqa: E731
    assert [key(t) for t in merged.records] == [key(t) for t in whole.records]
    # Paired added latency is recomputed from the merged trials, not averaged over shards.
    steer = merged.result("steer-attention", "oracle")
    base = {(t.question_id, t.position): t.latency_s for t in merged.records if t.condition == "baseline"}
    mine = [t for t in merged.records if (t.condition, t.regime) == ("steer-attention", "oracle")]
    assert steer.added_latency_s == pytest.approx(
        sum(t.latency_s - base[(t.question_id, t.position)] for t in mine) / len(mine)
    )


def test_merge_refuses_shards_that_do_not_belong_together(whole, shards):
    with pytest.raises(ConfigurationError, match=r"Shard 1/3 given twice"):
        merge_results([shards[0], shards[1], shards[1]])
    with pytest.raises(ConfigurationError, match=r"Missing shard\(s\) 2/3"):
        merge_results(shards[:2])
    with pytest.raises(ConfigurationError, match="not a shard"):
        merge_results([whole, *shards])
    other = LitmResult.from_dict({**shards[1].to_dict(), "settings": {**shards[1].settings, "seed": 7}})
    with pytest.raises(ConfigurationError, match=r"different runs: the settings of b differs from a's"):
        merge_results([shards[0], other, shards[2]], labels=["a", "b", "c"])
    changed = LitmResult.from_dict({**shards[2].to_dict(), "data": {**shards[2].data, "sha256": "0" * 64}})
    with pytest.raises(ConfigurationError, match="the data of"):
        merge_results([shards[0], shards[1], changed])
    with pytest.raises(ConfigurationError, match="the model of"):
        merge_results([shards[0], shards[1], LitmResult.from_dict({**shards[2].to_dict(), "model": "other"})])


def test_shard_parsing_and_empty_shards(records):
    assert Shard.parse("2/4") == Shard(2, 4) and str(Shard(2, 4)) == "2/4"
    for bad in ("4/4", "-1/4", "1/0", "x", "1/2/3"):
        with pytest.raises(ConfigurationError, match="i/N"):
            Shard.parse(bad)
    with pytest.raises(ConfigurationError, match="has no questions"):
        Shard(5, 6).select(records)


def test_cli_merge_reads_shard_files_and_their_records_files(tmp_path, whole, shards):
    paths = []
    for i, s in enumerate(shards):
        path = tmp_path / f"s{i}.json"
        # shard 1 keeps its trials in a side file (--records): merge reads it from there.
        write_outputs(s, json_path=path, records_path=tmp_path / "s1.jsonl.gz" if i == 1 else None)
        paths.append(str(path))
    out = CliRunner().invoke(app, ["bench", "merge", str(tmp_path / "all.json"), *paths])
    assert out.exit_code == 0, out.output
    assert "| baseline |" in out.stdout
    merged = read_result(tmp_path / "all.json")
    assert _without_clock(merged.to_dict()["results"]) == _without_clock(whole.to_dict()["results"])
    assert len(json.loads((tmp_path / "all.json").read_text())["records"]) == len(whole.records)
    refused = CliRunner().invoke(app, ["bench", "merge", str(tmp_path / "x.json"), paths[0], paths[0], paths[2]])
    assert refused.exit_code == 2 and "given twice" in refused.output
