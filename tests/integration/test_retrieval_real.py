"""DocumentIndex with the packaged all-MiniLM-L6-v2: semantic ranking, persistence, embedder checks."""

from __future__ import annotations

import pytest

from posrag.errors import ConfigurationError
from posrag.models import DEFAULT_EMBEDDER
from posrag.retrieval import DocumentIndex
from tests.unit.hashing_embedder import HashingEmbedder

CORPUS = {
    "paris": "Paris has been the capital and largest city of France since the Middle Ages.",
    "everest": "Mount Everest, on the border of Nepal and China, is Earth's highest peak above sea level.",
    "photosynthesis": "Plants use chlorophyll to turn sunlight, water and carbon dioxide into glucose and oxygen.",
    "python": "Python is a programming language known for readable syntax and a large standard library.",
    "whales": "The blue whale is the largest animal known to have ever lived, reaching 30 metres.",
    "insulin": "Insulin is a hormone made by the pancreas that regulates blood sugar.",
    "tokyo": "Tokyo is Japan's capital and one of the most populous metropolitan areas in the world.",
    "chess": "In chess, a player who cannot escape check is checkmated and loses the game.",
}
# Paraphrases that share few words with their document: the embedder, not word overlap, must rank them.
QUERIES = {
    "Which city is the French seat of government?": "paris",
    "What is the tallest mountain in the world?": "everest",
    "How do green leaves make food from light?": "photosynthesis",
    "What is the biggest creature that ever existed?": "whales",
    "Which organ produces the hormone controlling glucose levels?": "insulin",
}


@pytest.fixture(scope="module")
def real_index(real_embedder):
    return DocumentIndex.from_texts(list(CORPUS.values()), ids=list(CORPUS), embedder=real_embedder)


@pytest.mark.parametrize("index_type", ["flat", "hnsw"])
def test_the_relevant_document_ranks_first(real_embedder, index_type):
    index = DocumentIndex.from_texts(
        list(CORPUS.values()), ids=list(CORPUS), embedder=real_embedder, index_type=index_type
    )
    results = index.search_many(list(QUERIES), k=3)
    assert [r[0].id for r in results] == list(QUERIES.values())
    for row in results:
        assert -1.0 <= row[-1].score <= row[0].score <= 1.0
        assert row[0].score > row[1].score


def test_save_and_load_with_the_real_embedder(real_index, real_embedder, tmp_path):
    real_index.save(tmp_path / "idx")
    loaded = DocumentIndex.load(tmp_path / "idx")  # embedder=None: the packaged default, as built
    assert loaded.embedder_name == DEFAULT_EMBEDDER and loaded.dimension == 384
    assert loaded.search_many(list(QUERIES), k=4) == real_index.search_many(list(QUERIES), k=4)


def test_loading_with_an_embedder_of_another_dimension_fails_clearly(real_index, tmp_path):
    real_index.save(tmp_path / "idx")
    impostor = HashingEmbedder(dimension=64, name=DEFAULT_EMBEDDER)
    with pytest.raises(ConfigurationError, match=r"dimension 384\).*given is .*\(dimension 64\)"):
        DocumentIndex.load(tmp_path / "idx", embedder=impostor)
    with pytest.raises(ConfigurationError, match=r"built with embedder 'all-MiniLM-L6-v2'.*'hashing-bow-384'"):
        DocumentIndex.load(tmp_path / "idx", embedder=HashingEmbedder(dimension=384))


def test_a_lone_surrogate_is_refused_before_the_tokenizer_sees_it(real_index):
    # MiniLM's tokenizer raised a raw TypeError on such text; posrag names the document instead
    with pytest.raises(ConfigurationError, match=r"document 'broken' contains '\\ud800'"):
        real_index.add(["x \ud800"], ids=["broken"])
    with pytest.raises(ConfigurationError, match=r"queries\[0\] contains '\\ud800'"):
        real_index.search("capital \ud800")
    assert "broken" not in real_index and len(real_index) == len(CORPUS)
