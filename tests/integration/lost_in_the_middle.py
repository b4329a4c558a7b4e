"""The lost-in-the-middle prompt the real-model steering tests share (torch and llama.cpp backends alike)."""

from __future__ import annotations

import random

from posrag.documents import ScoredDocument
from posrag.prompts import build_prompt
from posrag.steering import SteeringTarget


def synthetic_prompt(seed: int, n_docs: int = 20, position: int = 15) -> tuple[str, SteeringTarget, int, str]:
    """``n_docs`` one-line biographies, the asked one at ``position``: the prompt, the gold document's target, the
    character where the question starts, and the answer."""
    rng = random.Random(seed)
    people = [f"Person {rng.randrange(10_000)}-{i}" for i in range(n_docs)]
    cities = rng.sample(["Lisbon", "Oslo", "Krakow", "Nairobi", "Lima", "Osaka", "Tbilisi", "Quito", "Dublin",
                         "Hanoi", "Tunis", "Porto", "Riga", "Bergen", "Cusco", "Izmir", "Leipzig", "Nantes", "Turin",
                         "Seville", "Utrecht", "Tartu"], n_docs)  # fmt: skip
    docs = [ScoredDocument(f"{p} was born in {c}.", {"title": p}) for p, c in zip(people, cities, strict=True)]
    gold = position - 1
    prompt = build_prompt(f"Where was {people[gold]} born?", docs)
    span = prompt.spans[gold]
    target = SteeringTarget(span.start, span.end, span.position.relative)
    return prompt.text, target, prompt.text.rindex("\n\nQuestion:"), cities[gold]
