"""posrag.adapters: what the LangChain and LlamaIndex adapters share, tested without either framework."""

from __future__ import annotations

from pathlib import Path

import pytest

from posrag.adapters import (
    TRACE_KEY,
    ReorderSettings,
    check_call_options,
    generation_config,
    model_reference,
    steering_from_kwargs,
    steering_kwargs,
)
from posrag.errors import ConfigurationError
from posrag.models import LoadedModel
from posrag.steering import SteeringConfig
from posrag.testing import tiny_model


def test_stop_sequences_merge_in_order_once_each() -> None:
    config = generation_config(7, 0.5, 0.9, ["\n", "###"], ["###", "Q:"])
    assert config.stop == ("\n", "###", "Q:")
    assert (config.max_new_tokens, config.temperature, config.top_p) == (7, 0.5, 0.9)
    assert generation_config(3, 0.0, 1.0).stop == ()


def test_unknown_call_options_are_named_with_the_accepted_ones() -> None:
    check_call_options({"max_tokens": 3}, ("max_tokens", "top_p"), "PosragLLM")
    with pytest.raises(
        ConfigurationError, match=r"unknown call option\(s\) \('max_token': did you mean 'max_tokens'"
    ) as e:
        check_call_options({"max_token": 3, "seed": 1, "top_k": 3}, ("max_tokens", "top_p"), "PosragLLM")
    assert "'seed': posrag decodes greedily" in str(e.value) and "top_k is not supported (use top_p)" in str(e.value)


def test_model_reference_names_what_loads_the_model_again() -> None:
    tiny = tiny_model("llama")
    assert model_reference(None) is None
    assert model_reference("some/model") == "some/model" and model_reference(Path("/m")) == "/m"
    assert model_reference(LoadedModel(tiny.model, tiny.tokenizer, "my/model", "hub id")) == "my/model"
    with pytest.raises(ConfigurationError, match="no name or path"):
        model_reference(tiny)
    with pytest.raises(ConfigurationError, match="no name or path"):
        model_reference((tiny.model, tiny.tokenizer))
    tiny.model.config.name_or_path = "/models/tiny"
    assert model_reference((tiny.model, tiny.tokenizer)) == "/models/tiny"


def test_steering_round_trips_through_its_constructor_arguments() -> None:
    config = SteeringConfig(mechanism="both", top_k=None, base_intensity=0.05)
    assert steering_from_kwargs(steering_kwargs(config)) == config
    assert steering_kwargs(None) is None and steering_from_kwargs(None) is None


def test_reorder_settings_build_the_reorderer() -> None:
    reorderer = ReorderSettings(strategy="long_context", best_at="start").build_reorderer()
    assert reorderer.plan([0.1, 0.9, 0.5])[0] == 1
    assert TRACE_KEY == "posrag_trace"


def test_explicit_documents_accepts_one_or_many_and_names_what_it_takes() -> None:
    from posrag.adapters import explicit_documents
    from posrag.documents import ScoredDocument
    from posrag.errors import ConfigurationError

    class Node:
        def __init__(self, text: str) -> None:
            self.text = text

    converters = {Node: lambda n: ScoredDocument(n.text, score=1.0)}
    assert explicit_documents("one text", converters, "Nodes") == [ScoredDocument("one text")]
    converted = explicit_documents([Node("a"), ScoredDocument("b", score=0.5), "c"], converters, "Nodes")
    assert [(d.text, d.score) for d in converted] == [("a", 1.0), ("b", 0.5), ("c", None)]
    with pytest.raises(ConfigurationError, match="holds a int; pass Nodes, posrag ScoredDocuments"):
        explicit_documents([3], converters, "Nodes")


def test_one_stop_string_is_one_stop_sequence_not_its_characters() -> None:
    assert generation_config(3, 0.0, 1.0, None, "abc").stop == ("abc",)  # before: ('a', 'b', 'c')
    assert generation_config(3, 0.0, 1.0, "\n", ["abc"]).stop == ("\n", "abc")


@pytest.mark.parametrize("documents", [5, {"a document text as a key": 0.9}, b"bytes of a document"])
def test_documents_that_are_not_documents_are_refused_naming_the_value(documents: object) -> None:
    from posrag.adapters import explicit_documents

    # before: 5 raised a raw TypeError, a dict silently became its keys
    with pytest.raises(ConfigurationError, match=rf"documents=.* is a {type(documents).__name__}; pass one document"):
        explicit_documents(documents, {}, "Nodes")
