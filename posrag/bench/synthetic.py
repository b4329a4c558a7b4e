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


def write_jsonl(records: Sequence[dict[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Write records one JSON object a line (``.gz`` suffix: gzip-compressed); returns the path."""
    import gzip

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    lines = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
    if target.suffix == ".gz":
        with gzip.open(target, "wt", encoding="utf-8") as handle:
            handle.write(lines)
    else:
        target.write_text(lines, encoding="utf-8")
    return target


__all__ = ["ATTRIBUTE_KINDS", "AttributeKind", "make_synthetic_records", "write_jsonl"]
