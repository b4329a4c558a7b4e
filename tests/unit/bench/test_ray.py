"""``--executor ray`` on a local Ray instance with a tiny model saved to disk: the same trials as one process, also
after a worker's process dies mid-run; a shard that fails for good fails the run with its error."""

from __future__ import annotations

import pytest

from posrag.bench.conditions import LitmConfig
from posrag.bench.runner import run_litm
from posrag.bench.synthetic import make_synthetic_records, write_jsonl
from posrag.errors import PosragError
from posrag.generation import GenerationConfig

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.ray

CONFIG = LitmConfig(
    positions=(1, 3),
    conditions=("baseline", "steer-attention"),
    regimes=("oracle",),
    generation=GenerationConfig(max_new_tokens=3, stop=("\n",)),
    steering={"attention_bias": 2.0},
)


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_jsonl(make_synthetic_records(5, 3, seed=2), tmp_path_factory.mktemp("ray-data") / "d.jsonl")


@pytest.fixture(scope="module")
def one_process(tiny_dir, data):
    return run_litm(CONFIG, data=data, model=str(tiny_dir), progress=False, keep_records=True)


def _trials(result):
    return [
        (t.question_id, t.position, t.condition, t.regime, t.correct, t.prediction, t.reused, t.format_failure)
        for t in result.records
    ]


def _ray(tiny_dir, data, **options):
    from posrag.bench.ray_runner import run_litm_ray

    return run_litm_ray(CONFIG, workers=2, shards=3, data=data, model=str(tiny_dir), progress=False, **options)


def test_ray_gives_the_one_process_result_trial_for_trial(local_ray, tiny_dir, data, one_process):
    result = _ray(tiny_dir, data)
    assert _trials(result) == _trials(one_process)
    assert [r.to_dict()["positions"] for r in result.results] == [r.to_dict()["positions"] for r in one_process.results]
    assert result.timing["executor"] == "ray" and result.timing["shards"] == 3 and result.timing["workers"] == 2


def test_a_killed_worker_is_retried_and_the_result_is_identical(
    local_ray, tiny_dir, data, one_process, tmp_path, monkeypatch
):
    from posrag.bench.ray_runner import EXIT_ONCE_ENV

    marker = tmp_path / "exited"
    monkeypatch.setenv(EXIT_ONCE_ENV, str(marker))
    result = _ray(tiny_dir, data)
    assert marker.exists(), "no worker process died: the test did not exercise a retry"
    assert _trials(result) == _trials(one_process)


def test_with_a_cache_the_retried_shard_reuses_what_the_killed_worker_generated(
    local_ray, tiny_dir, data, one_process, tmp_path, monkeypatch
):
    from posrag.bench.ray_runner import EXIT_ONCE_ENV

    marker = tmp_path / "exited"
    monkeypatch.setenv(EXIT_ONCE_ENV, str(marker))
    result = _ray(tiny_dir, data, cache=tmp_path / "generations.sqlite")
    assert marker.exists(), "no worker process died: the test did not exercise a retry"
    assert _trials(result) == _trials(one_process)
    assert result.timing["cached"] >= 1  # the dead worker's first generation, stored before it died
    assert result.timing["cached"] == sum(t.cached for t in result.records)


def test_a_shard_that_fails_for_good_fails_the_run_with_its_error(local_ray, tmp_path, data):
    with pytest.raises(PosragError, match=r"Shard \d/3 failed on Ray"):
        _ray(tmp_path / "no-such-model", data, retries=0)
