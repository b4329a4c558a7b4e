"""position_bias="auto" and strategy="auto": a model's saved profile drives steering curves and ordering."""

from __future__ import annotations

import pytest

from posrag.documents import ScoredDocument
from posrag.engine import Engine
from posrag.errors import ConfigurationError
from posrag.ordering import Reorderer, reorder
from posrag.profiles import BiasProfile, save_profile
from posrag.steering import SteeringConfig, SteeringTarget, plan_steering, resolve_steering

U_SHAPE = (1.0, 0.4, 0.3, 0.5, 1.0)  # reads both ends well: long_context ordering, most help mid-context
RECENCY_SHAPE = (0.3, 0.35, 0.4, 0.7, 1.0)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POSRAG_CACHE_DIR", str(tmp_path))
    return tmp_path


def _save(model: str, accuracy) -> BiasProfile:
    profile = BiasProfile.measured(model=model, positions=(1, 5, 10, 15, 20), num_docs=20, accuracy=accuracy)
    save_profile(profile)
    return profile


DOCS = [ScoredDocument(f"doc {i}", score=s, id=str(i)) for i, s in enumerate([0.9, 0.1, 0.5, 0.7, 0.3])]


def test_auto_steering_config_must_be_resolved_before_planning():
    config = SteeringConfig(position_bias="auto")
    assert config.needs_profile
    assert config.to_dict()["position_bias"] == "auto"
    with pytest.raises(ConfigurationError, match="resolve_steering"):
        plan_steering([SteeringTarget(0, 5, 0.5)], config, 18)


def test_auto_resolves_to_the_models_saved_profile(cache):
    profile = _save("tiny-u", U_SHAPE)
    config = resolve_steering(SteeringConfig(position_bias="auto"), "tiny-u")
    assert not config.needs_profile
    assert config.reorder_strategy == profile.reorder_strategy() == "long_context"
    curve = config.resolved_curve
    # Most help where the model reads worst (the middle), least at the ends it reads well.
    assert curve(0.5) > curve(0.0) and curve(0.5) > curve(1.0)
    assert resolve_steering(SteeringConfig(position_bias="recency"), "tiny-u").position_bias == "recency"


def test_auto_without_a_profile_names_the_fix(cache):
    with pytest.raises(ConfigurationError, match="posrag profile"):
        resolve_steering(SteeringConfig(position_bias="auto"), "never-profiled")
    with pytest.raises(ConfigurationError, match="name"):
        resolve_steering(SteeringConfig(position_bias="auto"), None)


def test_steered_generator_resolves_auto_by_model_name(cache, tiny_llama):
    _save("tiny-recency", RECENCY_SHAPE)
    generator = Engine.from_model(
        tiny_llama.model, tiny_llama.tokenizer, SteeringConfig(position_bias="auto"), model_name="tiny-recency"
    )
    assert generator.config.reorder_strategy == "recency"
    assert generator.config.resolved_curve(0.0) > generator.config.resolved_curve(1.0)


def test_reorder_auto_follows_the_profile(cache):
    _save("tiny-u", U_SHAPE)
    _save("tiny-recency", RECENCY_SHAPE)
    assert Reorderer("auto", model_name="tiny-u").strategy == "long_context"
    ids = [d.id for d in Reorderer("auto", model_name="tiny-recency")(DOCS)]
    assert ids == [d.id for d in reorder(DOCS, "recency")]
    with pytest.raises(ConfigurationError, match="posrag profile"):
        Reorderer("auto", model_name="never-profiled")


# docs/calibration/gemma3-270m.json (`posrag calibrate`, 12 questions per position), shipped as package data
SHIPPED = (11 / 12, 1 / 12, 1 / 12, 1 / 12, 9 / 12)


def test_the_packaged_model_works_with_auto_on_a_fresh_machine(cache):
    from posrag.models import DEFAULT_LLM
    from posrag.profiles import model_profile, profile_path, shipped_profile_path

    assert not profile_path(DEFAULT_LLM).exists()  # nothing measured in this cache
    shipped = model_profile(DEFAULT_LLM)
    assert shipped.accuracy == pytest.approx(SHIPPED) and shipped.model == DEFAULT_LLM
    assert shipped.steering is not None  # and calibrated steering settings
    assert shipped == BiasProfile.load(shipped_profile_path(DEFAULT_LLM))
    reorderer = Reorderer("auto")  # model_name defaults to the packaged model
    assert (reorderer.strategy, reorderer.best_at) == ("long_context", "start")
    config = resolve_steering(SteeringConfig(position_bias="auto"), DEFAULT_LLM)
    assert config.position_bias == shipped and config.reorder_strategy == "long_context"
    assert config.resolved_curve.name == "measured"


def test_a_users_saved_profile_wins_over_the_shipped_one(cache):
    from posrag.models import DEFAULT_LLM
    from posrag.profiles import model_profile, shipped_profile_path

    mine = _save(DEFAULT_LLM, RECENCY_SHAPE)
    found = model_profile(DEFAULT_LLM)
    assert found.accuracy == mine.accuracy  # the user's curve; the shipped calibration, which it does not replace
    assert found.steering == BiasProfile.load(shipped_profile_path(DEFAULT_LLM)).steering is not None
    assert Reorderer("auto").strategy == "recency"
    assert resolve_steering(SteeringConfig(position_bias="auto"), DEFAULT_LLM).reorder_strategy == "recency"
    assert shipped_profile_path(DEFAULT_LLM).is_file()  # still there, just not used


def test_framework_adapters_accept_auto(cache):
    from langchain_core.documents import Document
    from langchain_posrag import PositionReorder as LCReorder
    from llama_index.core.schema import NodeWithScore, TextNode
    from llama_index.postprocessor.posrag import PositionReorder as LIReorder

    _save("tiny-u", U_SHAPE)
    expected = [d.id for d in reorder(DOCS, "long_context")]
    docs = [Document(d.text, metadata={"score": d.score}, id=d.id) for d in DOCS]
    assert [d.id for d in LCReorder(strategy="auto", model_name="tiny-u").transform_documents(docs)] == expected
    nodes = [NodeWithScore(node=TextNode(text=d.text, id_=d.id), score=d.score) for d in DOCS]
    out = LIReorder(strategy="auto", model_name="tiny-u").postprocess_nodes(nodes)
    assert [n.node.node_id for n in out] == expected


PRIMACY_U = (0.8, 0.15, 0.2, 0.3, 0.55)  # what `posrag profile` measured on the embedded Gemma 3 270M


def test_auto_puts_the_best_document_at_the_end_the_model_reads_better(cache):
    profile = _save("tiny-primacy-u", PRIMACY_U)
    assert (profile.shape(), profile.best_at()) == ("u_curve", "start")
    ordered = Reorderer("auto", model_name="tiny-primacy-u")(DOCS)
    assert ordered[0].id == "0"  # the best-scored document first, where this model reads best
    assert [d.id for d in ordered] == [d.id for d in reorder(DOCS, "long_context", best_at="start")]
    assert _save("tiny-u", U_SHAPE).best_at() == "end"  # a tie goes to the end, as before


def test_benchmark_hybrid_auto_follows_the_profile(cache, tiny_gemma3):
    from posrag.bench.conditions import LitmConfig
    from posrag.bench.data import parse_record
    from posrag.bench.runner import LitmBenchmark
    from posrag.bench.synthetic import make_synthetic_records
    from posrag.generation import GenerationConfig
    from tests.unit.hashing_embedder import HashingEmbedder

    _save("tiny-primacy-u", PRIMACY_U)
    config = LitmConfig(
        positions=(1, 3),
        conditions=("baseline", "hybrid"),
        regimes=("retrieval",),
        hybrid_strategy="auto",
        steering={"position_bias": "auto"},
        generation=GenerationConfig(max_new_tokens=2),
    )
    bench = LitmBenchmark.from_model(
        tiny_gemma3.model, tiny_gemma3.tokenizer, config, embedder=HashingEmbedder(), model_name="tiny-primacy-u"
    )
    records = [parse_record(r, f"s{i}") for i, r in enumerate(make_synthetic_records(1, 3, seed=0))]
    result = bench.run(records, progress=False)
    (hybrid,) = [c for c in result.settings["conditions_resolved"] if c["name"] == "hybrid"]
    assert (hybrid["resolved_strategy"], hybrid["best_at"]) == ("long_context", "start")
    steering = result.settings["steering_configs"]["attention"]
    assert steering["reorder_strategy"] == "long_context" and steering["curve"]["name"] == "measured"
