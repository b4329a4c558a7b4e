"""Bad arguments to DocumentIndex and hostile saved files: a clear PosragError, never another exception."""

from __future__ import annotations

import contextlib
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from posrag.errors import ConfigurationError, PosragError
from posrag.retrieval import CONFIG_FILE, DocumentIndex
from tests.unit.hashing_embedder import HashingEmbedder

TEXTS = ["Paris is in France", "Berlin is in Germany", "Cats purr"]
IDS = ["paris", "berlin", "cats"]


def build(**kwargs) -> DocumentIndex:
    return DocumentIndex.from_texts(TEXTS, ids=IDS, embedder=HashingEmbedder(), **kwargs)


# ------------------------------------------------------------------------------------------- text UTF-8 can't hold


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda i: i.add(["x \ud800"], ids=["bad"]), r"text of document 'bad' contains '\\ud800' at character 2"),
        (lambda i: i.add(["fine"], ids=["b\udcffd"]), r"id of texts\[0\] contains '\\udcff'"),
        (lambda i: i.add(["fine"], [{"k": "\ud83d"}], ids=["m"]), r"metadata of document 'm' contains '\\ud83d'"),
        (lambda i: i.search("what \udc80"), r"queries\[0\] contains '\\udc80'"),
    ],
)
def test_lone_surrogates_are_rejected_naming_the_document(tmp_path, call, message):
    index = build()
    with pytest.raises(ConfigurationError, match=message):
        call(index)
    assert index.ids == IDS
    index.save(tmp_path / "idx")  # the index stays saveable
    assert DocumentIndex.load(tmp_path / "idx", embedder=HashingEmbedder()).ids == IDS


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda i: i.add([1]), r"texts\[0\] is 1; every text must be a non-empty string"),
        (lambda i: i.add([b"bytes"]), r"texts\[0\] is b'bytes'"),
        (lambda i: i.add(["ok", None]), r"texts\[1\] is None"),
        (lambda i: i.add(None), "texts must be a list of strings; got NoneType"),
        (lambda i: i.add(["a"], ids="a"), "ids must be a list of strings, one per text; got str"),
        (lambda i: i.add(["a"], ids=[1]), "ids must be non-empty strings; got 1"),
        (lambda i: i.add(["a"], metadatas={"a": 1}), "metadatas must be a list with one mapping per text; got dict"),
        (lambda i: i.add(["a"], show_progress_bar="yes"), "show_progress_bar must be True, False or None"),
        (lambda i: i.delete(None), r"delete takes a document id or a list of ids \(strings\); got None"),
        (lambda i: i.delete(5), "got 5"),
        (lambda i: i.delete([1, "paris"]), "ids to delete must be strings; got 1. Nothing was deleted"),
        (lambda i: i.search("q", k="2"), "k must be an integer from 1 to 1048576; got '2'"),
        (lambda i: i.search("q", k=1.5), "got 1.5"),
        (lambda i: i.search("q", k=10**12), "got 1000000000000"),
        (lambda i: i.search_many("q"), "for one query string use search"),
        (lambda i: i.search_many([1]), r"queries\[0\] is int"),
        (lambda i: i.search_many(None), "queries must be a list of strings; got NoneType"),
    ],
)
def test_bad_arguments_name_the_value(call, message):
    index = build()
    with pytest.raises(ConfigurationError, match=message):
        call(index)
    assert index.ids == IDS


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "batch_size must be an integer >= 1; got 0"),
        ({"batch_size": "8"}, "batch_size must be an integer >= 1; got '8'"),
        ({"hnsw_m": 10**9}, "hnsw_m must be an integer from 2 to 512; got 1000000000"),
        ({"hnsw_ef_search": True}, "hnsw_ef_search must be an integer from 1 to 65536; got True"),
        ({"ivf_nlist": 0}, "ivf_nlist must be an integer from 1 to .*got 0. Or pass None"),
        ({"index_type": None}, "index_type must be one of 'flat', 'hnsw', 'ivf'; got None"),
    ],
)
def test_bad_constructor_arguments_name_the_value(kwargs, message):
    with pytest.raises(ConfigurationError, match=message):
        DocumentIndex(HashingEmbedder(), **kwargs)


@pytest.mark.parametrize("path", [None, 5, "", b"idx"])
def test_save_and_load_need_a_path(path):
    with pytest.raises(ConfigurationError, match="save takes a directory path"):
        build().save(path)
    with pytest.raises(ConfigurationError, match="load takes a directory path"):
        DocumentIndex.load(path, embedder=HashingEmbedder())


def test_from_texts_rejects_non_lists():
    for texts in (None, 5, "one text"):
        with pytest.raises(ConfigurationError, match="texts must be a list of strings"):
            DocumentIndex.from_texts(texts, embedder=HashingEmbedder())


# ------------------------------------------------------------------------------------------- properties

ANY = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(max_size=5),
    st.binary(max_size=3),
    st.lists(st.integers(-3, 3), max_size=2),
)
SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, exclude_categories=())
TEXT = st.text(st.one_of(st.characters(), SURROGATES), max_size=12)  # lone surrogates too
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(
    index_type=st.one_of(st.sampled_from(["flat", "hnsw", "ivf"]), ANY),
    hnsw_m=ANY,
    hnsw_ef_search=ANY,
    ivf_nlist=ANY,
    ivf_nprobe=ANY,
    batch_size=ANY,
)
def test_the_constructor_builds_or_raises_a_posrag_error(
    index_type, hnsw_m, hnsw_ef_search, ivf_nlist, ivf_nprobe, batch_size
):
    kwargs = {
        "index_type": index_type,
        "hnsw_m": hnsw_m,
        "hnsw_ef_search": hnsw_ef_search,
        "ivf_nlist": ivf_nlist,
        "ivf_nprobe": ivf_nprobe,
        "batch_size": batch_size,
    }
    try:
        index = DocumentIndex(HashingEmbedder(16), **kwargs)
    except PosragError:
        return
    try:
        index.add(["a small text", "another small text"])
    except ConfigurationError as exc:  # an IVF index asked for more lists than two texts can train
        assert index_type == "ivf" and "needs at least" in str(exc)
        return
    assert len(index.search("small", k=2)) == 2  # what was accepted works


@FAST
@given(
    texts=st.one_of(st.lists(st.one_of(TEXT, ANY), max_size=4), ANY),
    ids=st.one_of(st.none(), st.lists(st.one_of(TEXT, ANY), max_size=4), ANY),
    metadatas=st.one_of(st.none(), st.lists(st.dictionaries(TEXT, st.one_of(TEXT, ANY), max_size=2), max_size=4), ANY),
    k=st.one_of(st.integers(1, 10), ANY),
    doomed=st.one_of(TEXT, st.lists(TEXT, max_size=2), ANY),
)
def test_add_search_delete_then_save_and_load_never_raise_anything_else(texts, ids, metadatas, k, doomed):
    index = DocumentIndex(HashingEmbedder(16))
    try:
        added = index.add(texts, metadatas, ids)
    except PosragError:
        added = []
    for call in (lambda: index.search("text", k=k), lambda: index.delete(doomed)):
        with contextlib.suppress(PosragError):
            call()
    with tempfile.TemporaryDirectory() as tmp:  # whatever was accepted can be saved and loaded back
        index.save(Path(tmp) / "idx")
        loaded = DocumentIndex.load(Path(tmp) / "idx", embedder=HashingEmbedder(16))
    assert loaded.documents() == index.documents() and set(index.ids) <= set(added)


JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**65), 2**65), st.floats(allow_nan=False), st.text(max_size=6)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=6,
)


@pytest.fixture(scope="module")
def saved_config(tmp_path_factory):
    target = tmp_path_factory.mktemp("saved") / "idx"
    build(index_type="hnsw").save(target)
    return target, (target / CONFIG_FILE).read_text()


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_any_edit_of_one_config_field_loads_or_raises_a_posrag_error(saved_config, data):
    target, original = saved_config
    config = json.loads(original)
    # pick a field, at the top or one level down, and give it any JSON value
    key = data.draw(st.sampled_from(sorted(config)))
    holder = config
    if isinstance(config[key], dict) and data.draw(st.booleans()):
        holder = config[key]
        key = data.draw(st.sampled_from(sorted(holder)))
        if isinstance(holder[key], dict) and data.draw(st.booleans()):
            holder = holder[key]
            key = data.draw(st.sampled_from(sorted(holder)))
    holder[key] = data.draw(JSON)
    (target / CONFIG_FILE).write_text(json.dumps(config))
    try:
        DocumentIndex.load(target, embedder=HashingEmbedder())
    except PosragError:
        pass
    finally:
        (target / CONFIG_FILE).write_text(original)
