"""The packaged models, loaded for real: the converted Gemma 3 270M and all-MiniLM-L6-v2."""

from __future__ import annotations

import numpy as np

from posrag import architectures
from posrag.generation import GenerationConfig, generate_text
from posrag.models import DEFAULT_LLM, load_causal_lm


def test_packaged_llm_loads_from_the_cache_and_is_recognised(real_lm):
    assert real_lm.name == DEFAULT_LLM and real_lm.source.startswith("packaged")
    model = real_lm.model
    assert model.config.model_type == "gemma3_text" and not model.training
    assert architectures.num_layers(model) == 18
    assert architectures.hidden_size(model) == 640
    assert architectures.position_encoding(model) == "rope"
    assert architectures.sliding_window(model) == 512
    assert architectures.layer_types(model).count("full_attention") == 3
    assert load_causal_lm() is real_lm  # one shared instance per process


def test_packaged_llm_tokenizer_has_offsets(real_lm):
    encoded = real_lm.tokenizer("Document [1] Paris.", return_offsets_mapping=True)
    assert real_lm.tokenizer.is_fast
    assert encoded["offset_mapping"][0] == (0, 0)  # BOS
    assert encoded["offset_mapping"][1][0] == 0


def test_packaged_llm_copies_a_fact_from_its_context(real_lm):
    prompt = (
        "Document [1] The Marrowvale lighthouse was built in 1887 by the engineer Ottoline Brisk.\n\n"
        "Question: Who built the Marrowvale lighthouse?\nAnswer:"
    )
    answer = generate_text(real_lm.model, real_lm.tokenizer, prompt, GenerationConfig(max_new_tokens=24, stop=("\n",)))
    assert "Ottoline Brisk" in answer


def test_packaged_embedder_ranks_by_meaning(real_embedder):
    vectors = real_embedder.encode(
        ["Who built the lighthouse?", "The lighthouse was built by an engineer.", "Puffins nest on cliffs."],
        normalize_embeddings=True,
    )
    assert vectors.shape == (3, 384)
    similarities = vectors[1:] @ vectors[0]
    assert np.argmax(similarities) == 0
