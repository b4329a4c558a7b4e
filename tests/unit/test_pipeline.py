"""The core pipeline on a tiny model: retrieval order → reordered prompt → generation, with a trace."""

from __future__ import annotations

import asyncio

import pytest

from posrag.documents import ScoredDocument
from posrag.errors import ConfigurationError
from posrag.generation import GenerationConfig, generate_text
from posrag.pipeline import RAGPipeline


class ListIndex:
    """A stand-in index returning fixed scored documents (the pipeline, not retrieval, is under test)."""

    def __init__(self, documents):
        self.documents = documents
        self.queries = []

    def search(self, query, k=4):
        self.queries.append((query, k))
        return sorted(self.documents, key=lambda d: -d.score)[:k]


DOCS = [
    ScoredDocument("Paris is the capital of France.", {"title": "France"}, score=0.9, id="fr"),
    ScoredDocument("Berlin is the capital of Germany.", {"title": "Germany"}, score=0.5, id="de"),
    ScoredDocument("Rome is the capital of Italy.", {}, score=0.7, id="it"),
]


@pytest.fixture
def pipeline(tiny_llama):
    from posrag.models import LoadedModel

    llm = LoadedModel(tiny_llama.model, tiny_llama.tokenizer, "tiny-llama", "in-process")
    return RAGPipeline(ListIndex(DOCS), llm, k=3, generation=GenerationConfig(max_new_tokens=5))


def test_run_orders_documents_and_traces_positions(pipeline):
    result = pipeline.run("What is the capital of France?")
    assert [d.id for d in result.documents] == ["de", "it", "fr"]  # recency: best last
    assert [s.position.relative for s in result.spans] == [0.0, 0.5, 1.0]
    for span in result.spans:
        assert result.prompt[span.start : span.end] == span.document.text
    assert result.prompt.endswith("Question: What is the capital of France?\nAnswer:")
    assert pipeline.index.queries == [("What is the capital of France?", 3)]
    # The answer is exactly what plain generation gives for that prompt.
    expected = generate_text(pipeline.llm.model, pipeline.llm.tokenizer, result.prompt, pipeline.generation)
    assert result.answer == expected.strip()
    as_dict = result.to_dict()
    assert [d["id"] for d in as_dict["documents"]] == ["de", "it", "fr"]
    assert set(as_dict["timings"]) == {"retrieve_s", "reorder_s", "generate_s"}


def test_async_and_stream_agree_with_run(pipeline):
    result = pipeline.run("capital?")
    assert asyncio.run(pipeline.arun("capital?")).answer == result.answer
    streamed = "".join(pipeline.stream("capital?"))
    assert streamed.strip() == result.answer


def test_strategy_is_configurable(tiny_llama):
    from posrag.models import LoadedModel

    llm = LoadedModel(tiny_llama.model, tiny_llama.tokenizer, "tiny", "in-process")
    result = RAGPipeline(ListIndex(DOCS), llm, k=3, reorder="none", generation=GenerationConfig(max_new_tokens=2)).run(
        "q?"
    )
    assert [d.id for d in result.documents] == ["fr", "it", "de"]  # retrieval order kept
    with pytest.raises(ConfigurationError, match="k must be >= 1"):
        RAGPipeline(ListIndex(DOCS), llm, k=0)
    with pytest.raises(ConfigurationError, match="strategy="):
        RAGPipeline(ListIndex(DOCS), llm, reorder="bogus")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": "5"}, r"k must be an int >= 1 .* got '5' \(str\)"),
        ({"k": 2.0}, r"k must be an int >= 1 .* got 2.0 \(float\)"),
        ({"k": True}, r"k must be an int >= 1 .* got True \(bool\)"),
        ({"k": -1}, r"k must be >= 1 .* got -1"),
        ({"reorder": 3}, r"reorder must be .* recency.* got 3 \(int\)"),
        ({"template": "Q: {question}"}, r"template must be a posrag.prompts.PromptTemplate, got str"),
        ({"generation": {"max_new_tokens": 4}}, r"generation must be a posrag.generation.GenerationConfig, got dict"),
        ({"steering": {"mechanism": "attention"}}, r"steering must be a posrag.steering.SteeringConfig or None"),
    ],
)
def test_constructor_arguments_are_validated_up_front(tiny_llama, kwargs, message):
    from posrag.models import LoadedModel

    llm = LoadedModel(tiny_llama.model, tiny_llama.tokenizer, "tiny", "in-process")
    with pytest.raises(ConfigurationError, match=message):
        RAGPipeline(ListIndex(DOCS), llm, **kwargs)


def test_index_and_llm_are_validated_up_front(tiny_llama):
    from posrag.models import LoadedModel

    llm = LoadedModel(tiny_llama.model, tiny_llama.tokenizer, "tiny", "in-process")
    with pytest.raises(ConfigurationError, match=r"index=list has no search\(query, k\) method"):
        RAGPipeline(DOCS, llm)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"llm=str has no .model and .tokenizer"):
        RAGPipeline(ListIndex(DOCS), "gemma")  # type: ignore[arg-type]


def test_steering_follows_the_calibration_of_the_pipelines_model(tiny_llama, tmp_path, monkeypatch):
    """The pipeline names its model to the steering generator, so a calibration saved for that name applies
    (the loaded model's own config only knows the folder it was read from)."""
    from posrag.calibration import SteeringCalibration
    from posrag.models import LoadedModel
    from posrag.profiles import BiasProfile, save_profile
    from posrag.steering import SteeringConfig

    monkeypatch.setenv("POSRAG_CACHE_DIR", str(tmp_path))
    bands = {"first": 0.0, "early": 7.0, "middle": 7.0, "late": 7.0, "last": 7.0}
    curve = BiasProfile.measured("pipeline-model", [1, 2, 3], 3, [0.9, 0.2, 0.6])
    save_profile(BiasProfile(**{**curve.__dict__, "steering": SteeringCalibration(band_bias=bands)}))
    llm = LoadedModel(tiny_llama.model, tiny_llama.tokenizer, "pipeline-model", "in-process")
    steered = RAGPipeline(
        ListIndex(DOCS), llm, k=3, generation=GenerationConfig(max_new_tokens=3), steering=SteeringConfig(top_k=None)
    )
    trace = steered.run("What is the capital of France?").steering
    assert [t["attention_bias"] for t in trace] == [0.0, 7.0, 7.0]  # first document: its band is not steered
