"""Checks of the arguments of :class:`~posrag.retrieval.DocumentIndex`'s verbs, before any work is done.

Every text, id and metadata value is saved as UTF-8 JSON, so a string that UTF-8 cannot encode (a lone
surrogate such as ``"\\ud800"``, typically from a bad decode) is rejected here, naming the document, rather
than accepted and left to break every later ``save()`` or the tokenizer. posrag does not clean such text:
silently changing a document would make its stored text differ from the one the caller indexed.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from posrag.errors import ConfigurationError
from posrag.retrieval.options import check_int

#: The most documents one search may ask for; FAISS allocates ``k`` results per query up front.
MAX_K = 1 << 20


def preview(values: Sequence[object], limit: int = 5) -> str:
    """The first few values, repr'd, and how many more there are."""
    shown = ", ".join(repr(v) for v in values[:limit])
    return shown + (f" and {len(values) - limit} more" if len(values) > limit else "")


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _unencodable_message(what: str, text: str) -> str:
    bad = next(i for i, ch in enumerate(text) if not _encodable(ch))
    return (
        f"{what} contains {text[bad]!r} at character {bad}, a lone surrogate that UTF-8 cannot encode (usually "
        "from decoding bytes with errors='surrogateescape'); it could not be saved or tokenized. Decode the "
        "source with the right encoding, or clean it, e.g. text.encode('utf-8', 'replace').decode('utf-8')."
    )


def check_k(k: object) -> int:
    check_int("k", k, 1, MAX_K, fix="It is the number of documents per query.")
    return int(k)  # type: ignore[call-overload]


def check_queries(queries: object) -> list[str]:
    if isinstance(queries, str):
        raise ConfigurationError("search_many takes a list of queries; for one query string use search.")
    if not isinstance(queries, Iterable):
        raise ConfigurationError(f"queries must be a list of strings; got {type(queries).__name__}.")
    queries = list(queries)
    for position, query in enumerate(queries):
        if not isinstance(query, str):
            raise ConfigurationError(f"every query must be a string; queries[{position}] is {type(query).__name__}.")
        if not _encodable(query):
            raise ConfigurationError(_unencodable_message(f"queries[{position}]", query))
    return queries


def check_delete_ids(ids: object) -> list[str]:
    """``delete``'s argument: one id or an iterable of ids, every one a string."""
    if isinstance(ids, str):
        return [ids]
    if not isinstance(ids, Iterable) or isinstance(ids, (bytes, Mapping)):
        raise ConfigurationError(
            f"delete takes a document id or a list of ids (strings); got {ids!r}. See index.ids for the ids."
        )
    id_list = list(ids)
    bad = [i for i in id_list if not isinstance(i, str)]
    if bad:
        raise ConfigurationError(f"ids to delete must be strings; got {preview(bad)}. Nothing was deleted.")
    return id_list


def check_batch(texts: object, metadatas: object, ids: object) -> tuple[list[str], list[dict[str, Any]], list[str]]:
    """``add``'s arguments as three lists of one length; ``ids`` default to random hex strings."""
    if isinstance(texts, (str, bytes)) or not isinstance(texts, Iterable):
        raise ConfigurationError(
            f"texts must be a list of strings; got {type(texts).__name__}. Wrap a single text: [text]."
        )
    text_list = list(texts)
    n = len(text_list)
    for position, text in enumerate(text_list):
        if not isinstance(text, str) or not text.strip():
            raise ConfigurationError(
                f"texts[{position}] is {text!r}; every text must be a non-empty string (an empty document "
                "cannot be retrieved meaningfully). Drop it or give it content."
            )
    metadata_list = _check_metadatas(metadatas, n)
    id_list = _check_ids(ids, n)
    for position, (text, doc_id, metadata) in enumerate(zip(text_list, id_list, metadata_list, strict=True)):
        if not _encodable(doc_id):
            raise ConfigurationError(_unencodable_message(f"The id of texts[{position}]", doc_id))
        if not _encodable(text):
            raise ConfigurationError(_unencodable_message(f"The text of document {doc_id!r}", text))
        try:
            encoded = json.dumps(metadata, ensure_ascii=False)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(
                f"The metadata of document {doc_id!r} is not JSON-serializable ({exc}). posrag saves "
                "metadata as JSON, never pickle: use str, int, float, bool, None, lists and dicts."
            ) from exc
        if not _encodable(encoded):
            raise ConfigurationError(_unencodable_message(f"The metadata of document {doc_id!r}", encoded))
    return text_list, metadata_list, id_list


def _check_metadatas(metadatas: object, n: int) -> list[dict[str, Any]]:
    if metadatas is None:
        return [{} for _ in range(n)]
    if isinstance(metadatas, (Mapping, str, bytes)) or not isinstance(metadatas, Iterable):
        raise ConfigurationError(f"metadatas must be a list with one mapping per text; got {type(metadatas).__name__}.")
    metadata_list = []
    for position, metadata in enumerate(metadatas):
        if not isinstance(metadata, Mapping):
            raise ConfigurationError(f"metadatas[{position}] is a {type(metadata).__name__}; each must be a mapping.")
        metadata_list.append(dict(metadata))
    if len(metadata_list) != n:
        raise ConfigurationError(
            f"Got {n} texts but {len(metadata_list)} metadatas; pass one metadata mapping per text (or none at all)."
        )
    return metadata_list


def _check_ids(ids: object, n: int) -> list[str]:
    if ids is None:
        return [uuid.uuid4().hex for _ in range(n)]
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
        raise ConfigurationError(f"ids must be a list of strings, one per text; got {type(ids).__name__}.")
    id_list = list(ids)
    if len(id_list) != n:
        raise ConfigurationError(f"Got {n} texts but {len(id_list)} ids; pass one id per text.")
    bad = [i for i in id_list if not isinstance(i, str) or not i]
    if bad:
        raise ConfigurationError(f"ids must be non-empty strings; got {preview(bad)}.")
    duplicates = [i for i, count in Counter(id_list).items() if count > 1]
    if duplicates:
        raise ConfigurationError(f"Duplicate ids in this batch: {preview(duplicates)}.")
    return id_list


__all__ = ["MAX_K", "check_batch", "check_delete_ids", "check_k", "check_queries", "preview"]
