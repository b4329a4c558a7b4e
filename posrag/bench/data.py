"""The "Lost in the Middle" record format: reading it, scoring answers, moving the gold document.

A record is one JSON object a line (plain ``.jsonl`` or gzip-compressed ``.jsonl.gz``)::

    {"question": "...", "answers": ["..."], "ctxs": [{"title": "...", "text": "...", "isgold": true}, ...]}

The gold document is the one with ``isgold``. Scoring follows the paper (Liu et al., 2023): the first line
of the model's output is normalized (lowercase, punctuation and the articles a/an/the removed, whitespace
collapsed, as in SQuAD) and a prediction is correct when any normalized gold answer is a substring of it.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import re
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from posrag.documents import passage_text
from posrag.errors import ConfigurationError

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lowercase, drop punctuation and articles, collapse whitespace (the paper's / SQuAD's normalization)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def first_line(output: str) -> str:
    """The first line of a model output, the part the paper scores."""
    return output.strip().split("\n")[0].strip()


#: Outputs that are no answer at all, whatever the question: a continuation of the document list
#: (``Document [21](Title: ...``), nothing, or cut off by the token budget before any answer.
FORMAT_FAILURES: tuple[str, ...] = ("document-list", "empty", "cut-off")
_DOCUMENT_LIST = re.compile(r"^(document\s*\[\d+\]|\(?title:)", re.IGNORECASE)


def format_failure(output: str, *, new_tokens: int, max_new_tokens: int, correct: bool) -> str | None:
    """Which of :data:`FORMAT_FAILURES` ``output`` is, or ``None`` for an answer (right or wrong).

    ``document-list``: the first line starts like a document of the prompt (``Document [21]``, ``(Title:``), even
    if it happens to contain the answer. ``empty``: no text on the first line. ``cut-off``: a wrong first line
    that the token budget (``max_new_tokens``) ended before any line break, so no answer was finished.
    """
    line = first_line(output)
    if _DOCUMENT_LIST.match(line):
        return "document-list"
    if not line:
        return "empty"
    if not correct and new_tokens >= max_new_tokens and "\n" not in output.strip():
        return "cut-off"
    return None


def is_correct(output: str, answers: Iterable[str]) -> bool:
    """Whether any normalized gold answer occurs in the normalized first line of ``output``."""
    prediction = normalize_answer(first_line(output))
    return any(norm and norm in prediction for norm in map(normalize_answer, answers))


@dataclass(frozen=True)
class LitmDocument:
    """One context document of a record."""

    title: str
    text: str
    isgold: bool = False

    @property
    def passage(self) -> str:
        """What a retriever indexes of this document: its title and text (:func:`posrag.documents.passage_text`)."""
        return passage_text(self.text, self.title)

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "text": self.text, "isgold": self.isgold}


@dataclass(frozen=True)
class LitmRecord:
    """A multi-document question: the question, its gold answers and its documents (exactly one gold)."""

    id: str
    question: str
    answers: tuple[str, ...]
    documents: tuple[LitmDocument, ...]

    def __post_init__(self) -> None:
        golds = sum(doc.isgold for doc in self.documents)
        if golds != 1:
            raise ConfigurationError(
                f'Record {self.id!r} has {golds} gold documents; exactly one ctx must have "isgold": true.'
            )
        if not self.answers:
            raise ConfigurationError(f'Record {self.id!r} has no answers; give at least one in "answers".')

    @property
    def gold_index(self) -> int:
        return next(i for i, doc in enumerate(self.documents) if doc.isgold)

    @property
    def gold(self) -> LitmDocument:
        return self.documents[self.gold_index]

    @property
    def distractors(self) -> tuple[LitmDocument, ...]:
        return tuple(doc for doc in self.documents if not doc.isgold)

    def with_gold_at(self, index: int) -> tuple[LitmDocument, ...]:
        """The documents with the gold one moved to 0-based ``index``; the distractors keep their order."""
        n = len(self.documents)
        if not 0 <= index < n:
            raise ConfigurationError(
                f"Gold position {index + 1} is outside 1..{n} for record {self.id!r} ({n} documents)."
            )
        docs = list(self.distractors)
        docs.insert(index, self.gold)
        return tuple(docs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "question": self.question,
            "answers": list(self.answers),
            "ctxs": [doc.to_dict() for doc in self.documents],
        }


def _open_text(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")


def parse_record(data: Any, where: str) -> LitmRecord:
    """A :class:`LitmRecord` from one decoded JSON object; ``where`` names it in error messages."""
    if not isinstance(data, dict):
        raise ConfigurationError(f"{where}: expected a JSON object, got {type(data).__name__}.")
    missing = [key for key in ("question", "answers", "ctxs") if key not in data]
    if missing:
        raise ConfigurationError(
            f'{where}: missing key(s) {missing}; each line needs "question", "answers" and "ctxs".'
        )
    answers = data["answers"]
    if isinstance(answers, str):
        answers = [answers]
    ctxs = data["ctxs"]
    if not isinstance(ctxs, list) or not ctxs:
        raise ConfigurationError(f'{where}: "ctxs" must be a non-empty list of {{title, text, isgold}} objects.')
    documents = []
    for j, ctx in enumerate(ctxs):
        if not isinstance(ctx, dict) or "text" not in ctx:
            raise ConfigurationError(f'{where}: ctx {j} must be an object with at least "text".')
        documents.append(LitmDocument(str(ctx.get("title") or ""), str(ctx["text"]), bool(ctx.get("isgold"))))
    try:
        return LitmRecord(
            id=str(data.get("id", where)),
            question=str(data["question"]),
            answers=tuple(str(a) for a in answers),
            documents=tuple(documents),
        )
    except ConfigurationError as exc:
        raise ConfigurationError(f"{where}: {exc}") from None


def load_records(path: str | os.PathLike[str], *, limit: int | None = None) -> list[LitmRecord]:
    """Read records from a ``.jsonl`` or ``.jsonl.gz`` file (the first ``limit`` if given)."""
    file = Path(path)
    if not file.is_file():
        raise ConfigurationError(
            f"No data file at {file}. Pass a .jsonl(.gz) file in the Lost-in-the-Middle format, or create "
            "one with `posrag bench make-synthetic`."
        )
    records: list[LitmRecord] = []
    with _open_text(file) as handle:
        for number, line in enumerate(handle, 1):
            if limit is not None and len(records) >= limit:
                break
            if not line.strip():
                continue
            where = f"{file.name}:{number}"
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigurationError(f"{where}: not valid JSON ({exc.msg}).") from None
            record = parse_record(data, where)
            if "id" not in data:
                record = replace(record, id=f"{file.name.split('.')[0]}-{number}")
            records.append(record)
    if not records:
        raise ConfigurationError(f"{file} holds no records.")
    return records


def packaged_dataset(name: str = "litm-synthetic-20") -> Path:
    """Path of a data set shipped in ``posrag/data``: ``litm-synthetic-20`` (100 questions, 20 documents) or
    ``litm-synthetic-hard-20`` (the same size, questions through a second fact, see ``make-synthetic --hard``)."""
    from importlib.resources import files

    path = Path(str(files("posrag").joinpath(f"data/{name}.jsonl")))
    if not path.is_file():
        raise ConfigurationError(f"posrag ships no data set {name!r} (looked for {path}).")
    return path


def fit_documents(
    records: Sequence[LitmRecord],
    num_docs: int,
    *,
    seed: int = 0,
    pool: Sequence[LitmDocument] | None = None,
) -> list[LitmRecord]:
    """Give every record exactly ``num_docs`` documents.

    A record with more keeps its gold document and its first ``num_docs - 1`` distractors (in order). A record
    with fewer (e.g. the paper's *oracle* files, gold passage only) gets distractors drawn, seeded per record,
    from the other records' documents (``pool``: all documents of ``records`` by default), never one that
    contains any of the question's answers (as whole words after normalization, so a one-letter answer
    such as "S" does not exclude every passage), and never one already in the record.
    """
    if num_docs < 1:
        raise ConfigurationError(f"num_docs must be >= 1, got {num_docs}.")
    candidates = list(pool) if pool is not None else [doc for record in records for doc in record.documents]
    fitted = []
    for i, record in enumerate(records):
        docs = list(record.documents)
        if len(docs) > num_docs:
            keep = list(record.distractors[: num_docs - 1])
            keep.insert(min(record.gold_index, len(keep)), record.gold)
            docs = keep
        elif len(docs) < num_docs:
            answers = [a for a in map(normalize_answer, record.answers) if a]
            seen = {(d.title, d.text) for d in docs}
            rng = random.Random(f"{seed}:{i}:{record.id}")
            order = list(range(len(candidates)))
            rng.shuffle(order)
            for j in order:
                if len(docs) == num_docs:
                    break
                doc = candidates[j]
                if (doc.title, doc.text) in seen:
                    continue
                text = f" {normalize_answer(f'{doc.title} {doc.text}')} "
                if any(f" {answer} " in text for answer in answers):
                    continue
                seen.add((doc.title, doc.text))
                docs.append(LitmDocument(doc.title, doc.text, isgold=False))
            if len(docs) < num_docs:
                raise ConfigurationError(
                    f"Record {record.id!r}: only {len(docs)} documents available for num_docs={num_docs}; "
                    "use fewer documents or a larger data file (distractors come from the other records)."
                )
        fitted.append(replace(record, documents=tuple(docs)))
    return fitted


__all__ = [
    "FORMAT_FAILURES",
    "LitmDocument",
    "LitmRecord",
    "first_line",
    "fit_documents",
    "format_failure",
    "is_correct",
    "load_records",
    "normalize_answer",
    "packaged_dataset",
    "parse_record",
]
