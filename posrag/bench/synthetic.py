"""A synthetic "Lost in the Middle" data set, generated offline and seeded.

Every question asks one attribute of one fictional person; its documents are one-sentence biographies of
people *of the same kind* (same attribute, different values), so every distractor is a plausible answer
and only reading the right document helps. Names and most values are invented (the model cannot know
them), values within a question are distinct and never contain one another after normalization, so the
substring metric cannot credit a wrong document. Records use the paper's format (``question``,
``answers``, ``ctxs`` with ``title``, ``text``, ``isgold``, ``hasanswer``), so they run through the same
loader as real data.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from posrag.bench.data import normalize_answer
from posrag.errors import ConfigurationError


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_FIRST_HEADS = _words(
    "Vel Ori Tam Bra Ise Cor Lun Mer Fen Dar Syl Quo Ely Rho Kal Nym Zen Ter Hal Wyn Ama Bex Cai Dov Esk Fyn "
    "Gal Hes Ivo Jor"
)
_FIRST_TAILS = _words("mora ven dric lia wen ric sanne thea dor nia len ros bel tis rain mund")
_LAST_HEADS = _words("Cast Brom Ash Thorn Quill Hollo Mar Wend Fal Grey Stor Pell Vand Rook Sel Orm Tarr Lisk")
_LAST_TAILS = _words("aine wick ley field more by ford ery ton ridge holt well")
_PLACE_HEADS = _words(
    "Quill Amber Bram Cinder Dusk Elder Frost Gilt Heron Ivy Juniper Kestrel Lark Moss Nettle Oak Pike Rowan "
    "Sable Thistle Umber Vole Willow Yarrow"
)
_PLACE_TAILS = _words("brook haven ford mere wick stead holm gate fall port crest vale")
_COMPANY_HEADS = _words("Zent Vor Cal Nex Bry Quant Lum Sor Tav Ost Myr Kel Drav Pax Hel Jun Fyr Gor")
_COMPANY_TAILS = _words("rix ora ant ium exa ica onic ara ello ivo")
_PROFESSIONS = _words(
    "baker carpenter pilot surgeon librarian architect chemist journalist plumber sculptor astronomer "
    "florist geologist translator veterinarian electrician photographer accountant blacksmith lawyer "
    "violinist beekeeper cartographer dentist"
)


def _fictional(rng: random.Random, heads: Sequence[str], tails: Sequence[str]) -> str:
    return rng.choice(heads) + rng.choice(tails)


def _article(word: str) -> str:
    return "an" if word[0].lower() in "aeiou" else "a"


@dataclass(frozen=True)
class AttributeKind:
    """One kind of fact: how to state it, how to ask it, and where its values come from."""

    name: str
    statement: str  # formatted with name, value, article
    question: str  # formatted with name
    values: Callable[[random.Random], str]


ATTRIBUTE_KINDS: tuple[AttributeKind, ...] = (
    AttributeKind(
        "birthplace",
        "{name} was born in the city of {value}.",
        "In which city was {name} born?",
        lambda rng: _fictional(rng, _PLACE_HEADS, _PLACE_TAILS),
    ),
    AttributeKind(
        "company",
        "{name} founded a company called {value}.",
        "What company did {name} found?",
        lambda rng: _fictional(rng, _COMPANY_HEADS, _COMPANY_TAILS),
    ),
    AttributeKind(
        "profession",
        "{name} works as {article} {value}.",
        "What is the profession of {name}?",
        lambda rng: rng.choice(_PROFESSIONS),
    ),
)


def _distinct(rng: random.Random, draw: Callable[[random.Random], str], n: int, what: str) -> list[str]:
    """``n`` values from ``draw`` none of which contains another after normalization."""
    chosen: list[str] = []
    normalized: list[str] = []
    for _ in range(200 * n):
        value = draw(rng)
        norm = normalize_answer(value)
        if all(norm not in other and other not in norm for other in normalized):
            chosen.append(value)
            normalized.append(norm)
            if len(chosen) == n:
                return chosen
    raise ConfigurationError(f"Could not draw {n} distinct {what}; use fewer documents per question (at most 20).")


def make_synthetic_records(
    num_questions: int = 100,
    num_docs: int = 20,
    *,
    seed: int = 0,
    kinds: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """``num_questions`` records of ``num_docs`` documents each, in the paper's JSON record format.

    Deterministic for a given ``(num_questions, num_docs, seed, kinds)``. The gold document sits at a
    seeded random position; the benchmark moves it anyway.
    """
    if num_questions < 1:
        raise ConfigurationError(f"num_questions must be >= 1, got {num_questions}.")
    if not 2 <= num_docs <= 20:
        raise ConfigurationError(f"num_docs must be between 2 and 20 (one gold, the rest distractors), got {num_docs}.")
    by_name = {kind.name: kind for kind in ATTRIBUTE_KINDS}
    selected = list(kinds) if kinds else list(by_name)
    unknown = [k for k in selected if k not in by_name]
    if unknown:
        raise ConfigurationError(f"Unknown attribute kind(s) {unknown}; choose from {', '.join(by_name)}.")
    rng = random.Random(seed)
    records = []
    for q in range(num_questions):
        kind = by_name[selected[q % len(selected)]]
        names = _distinct(
            rng,
            lambda r: f"{_fictional(r, _FIRST_HEADS, _FIRST_TAILS)} {_fictional(r, _LAST_HEADS, _LAST_TAILS)}",
            num_docs,
            "names",
        )
        values = _distinct(rng, kind.values, num_docs, f"{kind.name} values")
        gold = rng.randrange(num_docs)
        ctxs = [
            {
                "title": name,
                "text": kind.statement.format(name=name, value=value, article=_article(value)),
                "isgold": i == gold,
                "hasanswer": i == gold,
            }
            for i, (name, value) in enumerate(zip(names, values, strict=True))
        ]
        records.append(
            {
                "id": f"synthetic-{seed}-{q}",
                "kind": kind.name,
                "question": kind.question.format(name=names[gold]),
                "answers": [values[gold]],
                "ctxs": ctxs,
            }
        )
    return records


@dataclass(frozen=True)
class _HardForm:
    """How the hard set states, names and asks one kind of fact inside a two-fact biography."""

    clause: str  # the fact, after the person's name: "founded a company called {value}"
    key: str  # the fact as a description of its person: "founded {value}"
    ask: str  # the question through another fact's description ``{key}``
    decoy: str  # another relation to the same value: "once worked for the founder of {value}"


_HARD_FORMS: dict[str, _HardForm] = {
    "birthplace": _HardForm(
        "was born in the city of {value}",
        "was born in {value}",
        "In which city was the person who {key} born?",
        "once visited the city of {value}",
    ),
    "company": _HardForm(
        "founded a company called {value}",
        "founded {value}",
        "What company did the person who {key} found?",
        "once worked for the founder of {value}",
    ),
    "profession": _HardForm(
        "works as {article} {value}",
        "works as {article} {value}",
        "What is the profession of the person who {key}?",
        "is married to {article} {value}",
    ),
}


def _distinct_from(
    rng: random.Random, draw: Callable[[random.Random], str], n: int, taken: list[str], what: str
) -> list[str]:
    """``n`` values none of which contains, or is contained in, another one or any of ``taken`` (normalized).

    ``taken`` grows with the chosen values, so successive calls keep every value of a record apart.
    """
    chosen: list[str] = []
    for _ in range(200 * n):
        value = draw(rng)
        norm = normalize_answer(value)
        if all(norm not in other and other not in norm for other in taken):
            chosen.append(value)
            taken.append(norm)
            if len(chosen) == n:
                return chosen
    raise ConfigurationError(f"Could not draw {n} distinct {what}; use fewer documents per question (at most 20).")


def _fact(template: str, value: str) -> str:
    return template.format(value=value, article=_article(value))


def make_hard_synthetic_records(
    num_questions: int = 100,
    num_docs: int = 20,
    *,
    seed: int = 0,
    kinds: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Records whose questions do not name the answer's person: they ask one fact through another.

    Every biography states two facts ("Hesbel Rookaine founded a company called Dravica and was born in the
    city of Elderstead."); the question asks one (``kind``) of the person described by the other (``key``):
    "In which city was the person who founded Dravica born?". One distractor, the *decoy*, mentions the key
    value under another relation ("... once worked for the founder of Dravica"), as a retrieved passage that
    names the right entity for the wrong reason would; the retriever often ranks it first, a reader who
    checks the relation does not. Every name and value of a record is distinct and none contains another
    after normalization, so the substring metric credits only the gold document. ``kinds``: the asked kinds
    (cycled); the key kind cycles over the others. Deterministic for the same arguments.
    """
    if num_questions < 1:
        raise ConfigurationError(f"num_questions must be >= 1, got {num_questions}.")
    if not 2 <= num_docs <= 20:
        raise ConfigurationError(f"num_docs must be between 2 and 20 (one gold, the rest distractors), got {num_docs}.")
    by_name = {kind.name: kind for kind in ATTRIBUTE_KINDS}
    selected = list(kinds) if kinds else list(by_name)
    unknown = [k for k in selected if k not in by_name]
    if unknown:
        raise ConfigurationError(f"Unknown attribute kind(s) {unknown}; choose from {', '.join(by_name)}.")
    rng = random.Random(f"hard:{seed}")
    records = []
    for q in range(num_questions):
        asked = by_name[selected[q % len(selected)]]
        others = [name for name in by_name if name != asked.name]
        key = by_name[others[(q // len(selected)) % len(others)]]
        taken: list[str] = []
        names = _distinct_from(
            rng,
            lambda r: f"{_fictional(r, _FIRST_HEADS, _FIRST_TAILS)} {_fictional(r, _LAST_HEADS, _LAST_TAILS)}",
            num_docs,
            taken,
            "names",
        )
        keys = _distinct_from(rng, key.values, num_docs, taken, f"{key.name} values")
        values = _distinct_from(rng, asked.values, num_docs, taken, f"{asked.name} values")
        gold = rng.randrange(num_docs)
        decoy = (gold + rng.randrange(1, num_docs)) % num_docs
        key_first = rng.random() < 0.5
        ctxs = []
        for i, (name, key_value, value) in enumerate(zip(names, keys, values, strict=True)):
            described = _fact(_HARD_FORMS[key.name].decoy, keys[gold]) if i == decoy else None
            key_fact = described or _fact(_HARD_FORMS[key.name].clause, key_value)
            asked_fact = _fact(_HARD_FORMS[asked.name].clause, value)
            facts = (key_fact, asked_fact) if key_first else (asked_fact, key_fact)
            ctxs.append(
                {
                    "title": name,
                    "text": f"{name} {facts[0]} and {facts[1]}.",
                    "isgold": i == gold,
                    "hasanswer": i == gold,
                }
            )
        question = _HARD_FORMS[asked.name].ask.format(key=_fact(_HARD_FORMS[key.name].key, keys[gold]))
        records.append(
            {
                "id": f"synthetic-hard-{seed}-{q}",
                "kind": asked.name,
                "key": key.name,
                "question": question,
                "answers": [values[gold]],
                "ctxs": ctxs,
            }
        )
    return records


def write_jsonl(records: Sequence[dict[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Write records one JSON object a line (``.gz`` suffix: gzip-compressed); returns the path."""
    import gzip

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    lines = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
    if target.suffix == ".gz":  # mtime 0: the same records give the same bytes
        with gzip.GzipFile(target, "wb", mtime=0) as handle:
            handle.write(lines.encode("utf-8"))
    else:
        target.write_text(lines, encoding="utf-8")
    return target


__all__ = ["ATTRIBUTE_KINDS", "AttributeKind", "make_hard_synthetic_records", "make_synthetic_records", "write_jsonl"]
