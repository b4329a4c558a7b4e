"""DocumentIndex on a hashed bag-of-words embedder: ranking, index types, add/delete, persistence, corruption."""

from __future__ import annotations

import json
import threading

import faiss
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import posrag.retrieval as retrieval
from posrag.documents import ScoredDocument
from posrag.errors import ConfigurationError, IndexCorruptedError
from posrag.retrieval import CONFIG_FILE, FORMAT_VERSION, INDEX_TYPES, DocumentIndex, persistence
from tests.unit.hashing_embedder import HashingEmbedder

TEXTS = [
    "Paris is the capital of France and sits on the Seine",
    "Berlin is the capital of Germany",
    "Mount Everest is the highest mountain on Earth",
    "Cats are small furry animals that purr",
    "The Pacific is the largest ocean",
    "Photosynthesis turns sunlight into sugar in plants",
]
IDS = ["paris", "berlin", "everest", "cats", "pacific", "plants"]
METAS = [{"topic": t, "n": i, "tags": ["a", "b"]} for i, t in enumerate(["geo", "geo", "geo", "pets", "sea", "bio"])]


def build(index_type="flat", embedder=None, **kwargs) -> DocumentIndex:
    return DocumentIndex.from_texts(
        TEXTS, METAS, IDS, embedder=embedder or HashingEmbedder(), index_type=index_type, **kwargs
    )


def brute_force_scores(embedder, query, texts):
    vectors = embedder.encode(texts, normalize_embeddings=True)
    q = embedder.encode([query], normalize_embeddings=True)[0]
    return vectors @ q


# ------------------------------------------------------------------------------------------------ search


def test_scores_are_cosine_similarities_best_first():
    embedder = HashingEmbedder()
    index = build(embedder=embedder)
    query = "capital of France"
    results = index.search(query, k=len(TEXTS))
    expected = brute_force_scores(embedder, query, TEXTS)
    assert results[0].id == "paris"
    assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)
    for doc in results:
        assert doc.score == pytest.approx(float(expected[IDS.index(doc.id)]), abs=1e-5)
        assert doc.text == TEXTS[IDS.index(doc.id)] and dict(doc.metadata) == METAS[IDS.index(doc.id)]


@pytest.mark.parametrize("index_type", INDEX_TYPES)
def test_every_index_type_finds_the_exact_match_with_similarity_one(index_type):
    index = build(index_type)
    for doc_id, text in zip(IDS, TEXTS, strict=True):
        best = index.search(text, k=2)[0]
        assert best.id == doc_id
        assert best.score == pytest.approx(1.0, abs=1e-5)
        assert isinstance(best, ScoredDocument)


@pytest.mark.parametrize("index_type", ["hnsw", "ivf"])
def test_approximate_indexes_agree_with_exact_on_a_larger_corpus(index_type):
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(300)]
    texts = [" ".join(rng.choice(words, size=8)) for _ in range(160)]
    kwargs = {"ivf_nlist": 4, "ivf_nprobe": 4} if index_type == "ivf" else {}
    approx = DocumentIndex.from_texts(texts, embedder=HashingEmbedder(64), index_type=index_type, **kwargs)
    exact = DocumentIndex.from_texts(texts, ids=approx.ids, embedder=HashingEmbedder(64))
    queries = texts[:40]
    assert [r[0].id for r in approx.search_many(queries, k=1)] == [r[0].id for r in exact.search_many(queries, k=1)]
    if index_type == "ivf":
        assert approx._index.nlist == 4


def test_scores_stay_cosine_when_the_embedder_ignores_normalize_embeddings():
    index = build(embedder=HashingEmbedder(normalizes=False))
    best = index.search(TEXTS[0] + " " + TEXTS[0], k=1)[0]  # doubled counts: an unnormalized dot would be ~2x
    assert best.id == "paris" and best.score == pytest.approx(1.0, abs=1e-5)


def test_k_larger_than_the_corpus_and_empty_index():
    index = build()
    assert len(index.search("anything", k=100)) == len(TEXTS)
    empty = DocumentIndex(HashingEmbedder())
    assert empty.search("anything") == [] and len(empty) == 0 and empty.dimension is None


def test_search_many_matches_search():
    index = build()
    queries = ["capital of Germany", "furry cats", "largest ocean"]
    assert index.search_many(queries, k=3) == [index.search(q, k=3) for q in queries]


def test_progress_bar_only_for_large_batches():
    embedder = HashingEmbedder()
    index = DocumentIndex(embedder)
    index.add(TEXTS)
    index.add([f"text number {i}" for i in range(retrieval.PROGRESS_BAR_MIN_TEXTS)])
    index.search("query")
    assert [c["show_progress_bar"] for c in embedder.calls] == [False, True, False]
    assert all(c["normalize_embeddings"] for c in embedder.calls)


@settings(max_examples=40, deadline=None)
@given(
    docs=st.lists(st.lists(st.sampled_from("abcdefghijklmnop"), min_size=1, max_size=6), min_size=1, max_size=12),
    query=st.lists(st.sampled_from("abcdefghijklmnop"), min_size=1, max_size=4),
    k=st.integers(1, 15),
)
def test_flat_search_returns_the_brute_force_top_k(docs, query, k):
    embedder = HashingEmbedder(dimension=32)
    texts = [" ".join(f"word{c}" for c in doc) for doc in docs]
    query_text = " ".join(f"word{c}" for c in query)
    index = DocumentIndex.from_texts(texts, embedder=embedder)
    results = index.search(query_text, k=k)
    expected = np.sort(brute_force_scores(embedder, query_text, texts))[::-1][:k]
    np.testing.assert_allclose([r.score for r in results], expected, atol=1e-5)


# ------------------------------------------------------------------------------------------------ add / delete


@pytest.mark.parametrize("index_type", INDEX_TYPES)
def test_deleted_documents_are_never_returned(index_type):
    index = build(index_type)
    index.delete(["paris", "cats"])
    assert len(index) == 4 and "paris" not in index and "berlin" in index
    everything = {d.id for d in index.search("capital of France furry cats", k=10)}
    assert everything == {"berlin", "everest", "pacific", "plants"}
    assert index.search(TEXTS[0], k=1)[0].id != "paris"
    # the id can be reused; the new document is found, the old one stays gone
    index.add(["Lyon is a city in France"], [{"topic": "geo"}], ["paris"])
    hits = index.search("Lyon city", k=1)
    assert hits[0].id == "paris" and hits[0].text == "Lyon is a city in France"
    assert all(d.text != TEXTS[0] for d in index.search(TEXTS[0], k=10))


@pytest.mark.parametrize("index_type", INDEX_TYPES)
def test_deleting_everything_and_adding_again(index_type):
    index = build(index_type)
    index.delete(IDS)
    assert len(index) == 0 and index.search("capital") == []
    index.add(["a brand new document"], ids=["new"])
    assert [d.id for d in index.search("brand new", k=5)] == ["new"]


def test_hnsw_tombstones_are_compacted_when_they_outnumber_live_documents():
    index = build("hnsw")
    index.delete(["paris", "berlin"])
    assert index._index.ntotal == len(TEXTS)  # tombstoned, still in the graph
    index.delete(["everest", "cats"])  # 4 dead > 2 live: rebuilt
    assert index._index.ntotal == 2
    assert {d.id for d in index.search("ocean plants", k=10)} == {"pacific", "plants"}
    index.delete("pacific")
    index.compact()
    assert index._index.ntotal == 1 and [d.id for d in index.search("sunlight", k=3)] == ["plants"]


def test_delete_unknown_id_deletes_nothing():
    index = build()
    with pytest.raises(ConfigurationError, match=r"unknown id\(s\): 'nope'"):
        index.delete(["paris", "nope"])
    assert len(index) == len(TEXTS) and "paris" in index


def test_add_returns_ids_and_generates_unique_ones():
    index = DocumentIndex(HashingEmbedder())
    generated = index.add(["first text here", "second text here"])
    assert len(set(generated)) == 2 and index.ids == generated
    assert index.add(["third"], ids=["x3"]) == ["x3"]
    assert index.add([]) == []


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda i: i.add(["dup a", "dup b"], ids=["d", "d"]), "Duplicate ids in this batch: 'd'"),
        (lambda i: i.add(["again"], ids=["paris"]), "already in the index: 'paris'"),
        (lambda i: i.search("q", k=0), "k must be an integer from 1 to .*got 0"),
        (lambda i: i.search("q", k=-2), "got -2"),
        (lambda i: i.search("q", k=True), "got True"),
        (lambda i: i.add(["ok", "  "]), r"texts\[1\] is '  '"),
        (lambda i: i.add("just one string"), "Wrap a single text"),
        (lambda i: i.add(["a", "b"], metadatas=[{}]), "2 texts but 1 metadatas"),
        (lambda i: i.add(["a", "b"], ids=["only"]), "2 texts but 1 ids"),
        (lambda i: i.add(["a"], metadatas=[{"when": object()}]), "not JSON-serializable"),
        (lambda i: i.search(["q"]), "query must be a string"),
    ],
)
def test_bad_arguments_raise_configuration_errors(call, message):
    index = build()
    with pytest.raises(ConfigurationError, match=message):
        call(index)
    assert len(index) == len(TEXTS)


def test_bad_construction_arguments():
    with pytest.raises(ConfigurationError, match="at least one text"):
        DocumentIndex.from_texts([], embedder=HashingEmbedder())
    with pytest.raises(ConfigurationError, match="index_type must be one of 'flat', 'hnsw', 'ivf'; got 'annoy'"):
        DocumentIndex(HashingEmbedder(), index_type="annoy")
    with pytest.raises(ConfigurationError, match=r"ivf_nlist=50 needs at least 50 vectors.*first batch has 6"):
        build("ivf", ivf_nlist=50)
    with pytest.raises(ConfigurationError, match="encode"):
        DocumentIndex(embedder=object())


def test_concurrent_searches_and_writes():
    index = build("hnsw")
    errors: list[BaseException] = []
    seen: set[str] = set()

    def reader():
        try:
            for _ in range(60):
                for doc in index.search("capital extra document", k=5):
                    seen.add(doc.id)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def writer():
        try:
            for i in range(40):
                index.add([f"extra document {i} capital"], ids=[f"extra{i}"])
                if i % 2:
                    index.delete([f"extra{i - 1}"])
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(3)] + [threading.Thread(target=writer)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(index) == len(TEXTS) + 20
    assert seen <= set(IDS) | {f"extra{i}" for i in range(40)}


# ------------------------------------------------------------------------------------------------ persistence


@pytest.mark.parametrize("index_type", INDEX_TYPES)
def test_save_load_round_trip(tmp_path, index_type):
    index = build(index_type)
    index.delete(["cats"])  # hnsw: a tombstone travels with the index
    index.save(tmp_path / "idx")
    loaded = DocumentIndex.load(tmp_path / "idx", embedder=HashingEmbedder())
    assert loaded.index_type == index_type and loaded.dimension == index.dimension
    assert loaded.documents() == index.documents()
    for query in ["capital of France", TEXTS[3], "ocean"]:
        assert loaded.search(query, k=5) == index.search(query, k=5)
    assert "cats" not in {d.id for d in loaded.search(TEXTS[3], k=10)}
    loaded.add(["New York is a large city"], ids=["ny"])  # labels continue; nothing collides
    assert loaded.search("New York", k=1)[0].id == "ny" and len(loaded) == len(TEXTS)


def test_save_writes_json_and_a_faiss_file_not_pickle(tmp_path):
    build().save(tmp_path / "idx")
    config = json.loads((tmp_path / "idx" / CONFIG_FILE).read_text())
    assert config["format_version"] == FORMAT_VERSION and config["count"] == len(TEXTS)
    assert config["embedder"] == "hashing-bow-256" and config["dimension"] == 256
    index_file = tmp_path / "idx" / config["files"]["index"]["name"]
    assert faiss.read_index(str(index_file)).ntotal == len(TEXTS)
    docs = json.loads((tmp_path / "idx" / config["files"]["documents"]["name"]).read_text())
    assert [d["id"] for d in docs["documents"]] == IDS
    assert sorted(p.name for p in (tmp_path / "idx").iterdir()) == sorted(
        [CONFIG_FILE, index_file.name, config["files"]["documents"]["name"]]
    )


def test_empty_index_round_trip(tmp_path):
    DocumentIndex(HashingEmbedder()).save(tmp_path / "empty")
    loaded = DocumentIndex.load(tmp_path / "empty", embedder=HashingEmbedder())
    assert len(loaded) == 0 and loaded.search("q") == []
    loaded.add(["now it has one"], ids=["one"])
    assert loaded.search("one", k=1)[0].id == "one"


def _crashing_write(fail_on: str):
    """A ``_write_json`` that dies half-way through the documents or the config file (after writing half)."""
    original = persistence.write_json

    def write(path, data):
        if fail_on in data:  # "documents" is a key of the documents file, "format" of the config
            text = json.dumps(data)
            path.write_text(text[: len(text) // 2])
            raise OSError(f"disk full while writing {path.name}")
        original(path, data)

    return write


@pytest.mark.parametrize("fail_on", ["documents", "format"])
def test_a_failed_save_leaves_the_previous_index_intact(tmp_path, monkeypatch, fail_on):
    target = tmp_path / "idx"
    old = build()
    old.save(target)
    before = sorted(p.name for p in target.iterdir())
    new = DocumentIndex.from_texts(["an entirely different corpus"], ids=["other"], embedder=HashingEmbedder())
    monkeypatch.setattr(persistence, "write_json", _crashing_write(fail_on))
    with pytest.raises(OSError, match="disk full"):
        new.save(target)
    monkeypatch.undo()
    assert sorted(p.name for p in target.iterdir()) == before  # nothing half-written left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == [".idx.lock", "idx"]  # the writers' lock stays
    loaded = DocumentIndex.load(target, embedder=HashingEmbedder())
    assert loaded.documents() == old.documents()
    new.save(target)  # and a later save still works
    assert DocumentIndex.load(target, embedder=HashingEmbedder()).ids == ["other"]


def test_a_failed_first_save_leaves_no_directory(tmp_path, monkeypatch):
    monkeypatch.setattr(persistence, "write_json", _crashing_write("documents"))
    with pytest.raises(OSError, match="disk full"):
        build().save(tmp_path / "idx")
    assert [p.name for p in tmp_path.iterdir()] == [".idx.lock"]  # neither the target nor a staging directory


def test_leftovers_of_a_killed_save_are_ignored_then_cleaned(tmp_path):
    target = tmp_path / "idx"
    build().save(target)
    # what a save killed before its commit leaves: data files config.json does not reference
    (target / "index-deadbeef.faiss").write_bytes(b"\x00" * 10)
    (target / "documents-deadbeef.json").write_text('{"documents": [')
    (target / ".config.json.tmp-deadbeef").write_text("{")
    assert DocumentIndex.load(target, embedder=HashingEmbedder()).ids == IDS
    build().save(target)
    assert not any("deadbeef" in p.name for p in target.iterdir())
    assert len(list(target.iterdir())) == 3


def test_save_refuses_to_overwrite_foreign_files(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me")
    with pytest.raises(ConfigurationError, match="not empty and does not hold a posrag index"):
        build().save(tmp_path / "notes")
    assert [p.name for p in (tmp_path / "notes").iterdir()] == ["todo.txt"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigurationError, match="it is a file"):
        build().save(tmp_path / "file")


# ------------------------------------------------------------------------------------------------ corruption


@pytest.fixture
def saved(tmp_path):
    target = tmp_path / "idx"
    build().save(target)
    return target


def _config(target):
    return json.loads((target / CONFIG_FILE).read_text())


def _data_file(target, role):
    return target / _config(target)["files"][role]["name"]


def _replace_consistently(target, role, data: bytes):
    """Replace a data file and update its size and hash, so that the deeper checks are reached."""
    path = _data_file(target, role)
    path.write_bytes(data)
    config = _config(target)
    config["files"][role] = persistence.file_record(path).to_dict()
    (target / CONFIG_FILE).write_text(json.dumps(config))


def load(target, embedder=None):
    return DocumentIndex.load(target, embedder=embedder or HashingEmbedder())


def test_truncated_faiss_file(saved):
    path = _data_file(saved, "index")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(IndexCorruptedError, match=rf"{path.name}.*truncated or replaced.*rebuild"):
        load(saved)


def test_modified_documents_file(saved):
    path = _data_file(saved, "documents")
    path.write_text(path.read_text().replace("Berlin", "Bonn!!"))  # same size, different contents
    with pytest.raises(IndexCorruptedError, match=rf"{path.name}.*SHA-256"):
        load(saved)


def test_garbage_json(saved):
    (saved / CONFIG_FILE).write_text("{not json")
    with pytest.raises(IndexCorruptedError, match=r"config.json is not valid JSON"):
        load(saved)


def test_garbage_documents_json_with_a_matching_hash(saved):
    _replace_consistently(saved, "documents", b'{"documents": [{"label": 0')
    with pytest.raises(IndexCorruptedError, match=r"documents-.*not valid JSON"):
        load(saved)


def test_foreign_config(saved):
    (saved / CONFIG_FILE).write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(IndexCorruptedError, match="not a posrag index config"):
        load(saved)


def test_foreign_faiss_file(saved):
    _replace_consistently(saved, "index", b"this is not a faiss index at all" * 10)
    with pytest.raises(IndexCorruptedError, match=r"index-.*is FAISS type b'this', expected 'IxM2'"):
        load(saved)


def test_faiss_file_from_another_index(saved, tmp_path):
    other = DocumentIndex.from_texts(TEXTS[:2], embedder=HashingEmbedder())
    other.save(tmp_path / "other")
    _replace_consistently(saved, "index", _data_file(tmp_path / "other", "index").read_bytes())
    with pytest.raises(IndexCorruptedError, match=r"holds 2 vectors but config\.json and the documents account for 6"):
        load(saved)


def test_count_mismatch(saved):
    config = _config(saved)
    config["count"] = 99
    (saved / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(IndexCorruptedError, match=r"records 99 documents but .* holds 6"):
        load(saved)


def test_newer_format_version(saved):
    config = _config(saved)
    config["format_version"] = FORMAT_VERSION + 1
    (saved / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(IndexCorruptedError, match=r"newer than this posrag reads.*Upgrade posrag"):
        load(saved)


def test_missing_files(saved, tmp_path):
    _data_file(saved, "index").unlink()
    with pytest.raises(IndexCorruptedError, match=r"index file listed in config.json is missing"):
        load(saved)
    (saved / CONFIG_FILE).unlink()
    with pytest.raises(IndexCorruptedError, match=r"no config.json, so it is not a posrag index"):
        load(saved)
    with pytest.raises(ConfigurationError, match="does not exist"):
        load(tmp_path / "nowhere")


def test_wrong_embedder_dimension(saved):
    with pytest.raises(
        ConfigurationError, match=r"'hashing-bow-256' \(dimension 256\).*given is 'hashing-bow-256' \(dimension 64\)"
    ):
        load(saved, HashingEmbedder(dimension=64, name="hashing-bow-256"))


def test_wrong_embedder_name(saved):
    with pytest.raises(ConfigurationError, match=r"built with embedder 'hashing-bow-256'.*given is 'other-model'"):
        load(saved, HashingEmbedder(name="other-model"))
