"""Quick evidence for steering defaults: exact-answer accuracy on a synthetic multi-document QA task.

Each question asks where one person was born; the prompt (posrag's "Lost in the Middle" template) holds
``--docs`` one-sentence biographies, the gold one at ``--position`` (1-based). Baseline vs each steering
configuration (``--configs``: ``baseline`` and SteeringConfig keyword JSON objects, separated by ``;``) on the
embedded Gemma 3 270M, steering from the question on, with the gold document as the only target (oracle
regime) or every document a target, the gold one scored highest (retrieval regime). Not a test: a tuning aid
whose numbers are quoted in docs/steering.md.

    python benchmarks/steering_tuning.py --docs 20 --position 15 --questions 20 \
        --configs 'baseline;{"mechanism": "attention"}' [--regime retrieval]
"""

from __future__ import annotations

import argparse
import json
import random
import time

from posrag.documents import ScoredDocument
from posrag.engine import Engine
from posrag.generation import GenerationConfig, generate_text
from posrag.models import load_causal_lm
from posrag.prompts import build_prompt
from posrag.steering import SteeringConfig
from posrag.steering.targets import targets_from_spans

FIRST = [
    "Alice",
    "Bruno",
    "Chiara",
    "Dmitri",
    "Elena",
    "Farid",
    "Greta",
    "Hiro",
    "Ines",
    "Jonas",
    "Kavya",
    "Lars",
    "Mira",
    "Nikolai",
    "Olga",
    "Pablo",
    "Quinn",
    "Rosa",
    "Sven",
    "Tomas",
    "Uma",
    "Viktor",
    "Wanda",
    "Yusuf",
    "Zara",
]
LAST = [
    "Albrecht",
    "Moreau",
    "Tanaka",
    "Okafor",
    "Lindqvist",
    "Petrov",
    "Haddad",
    "Castillo",
    "Novak",
    "Brennan",
    "Iyer",
    "Kowalski",
    "Rossi",
    "Dubois",
    "Schmidt",
    "Fischer",
    "Nakamura",
    "Silva",
    "Larsen",
    "Kruger",
]
CITIES = [
    "Lisbon",
    "Oslo",
    "Krakow",
    "Nairobi",
    "Lima",
    "Osaka",
    "Tbilisi",
    "Quito",
    "Dublin",
    "Hanoi",
    "Tunis",
    "Porto",
    "Riga",
    "Bergen",
    "Cusco",
    "Izmir",
    "Leipzig",
    "Nantes",
    "Turin",
    "Seville",
    "Utrecht",
    "Tartu",
    "Varna",
    "Split",
    "Lyon",
    "Graz",
    "Bilbao",
    "Malmo",
    "Ghent",
    "Brno",
]


def make_questions(n_questions: int, n_docs: int, seed: int = 0) -> list[tuple[list[tuple[str, str]], int]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n_questions):
        names = rng.sample([f"{f} {last}" for f in FIRST for last in LAST], n_docs)
        cities = [rng.choice(CITIES) for _ in names]
        gold = rng.randrange(n_docs)
        while cities.count(cities[gold]) > 1:  # the gold city must identify the answer uniquely
            cities[gold] = rng.choice(CITIES)
        out.append((list(zip(names, cities, strict=True)), gold))
    return out


def build(people: list[tuple[str, str]], gold: int, position: int):
    order = [i for i in range(len(people)) if i != gold]
    order.insert(position - 1, gold)
    rng = random.Random(gold * 7919 + len(people))
    docs = [
        ScoredDocument(
            text=f"{people[i][0]} was born in {people[i][1]}.",
            metadata={"title": people[i][0]},
            score=1.0 if i == gold else rng.uniform(0.3, 0.8),
            id=str(i),
        )
        for i in order
    ]
    prompt = build_prompt(f"Where was {people[gold][0]} born?", docs)
    targets = targets_from_spans(prompt.spans)
    question_start = prompt.text.rindex("\n\nQuestion:")
    return prompt.text, targets, question_start, people[gold][1]


def correct(text: str, answer: str) -> bool:
    return answer.lower() in text.strip().split("\n")[0].lower()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=20)
    parser.add_argument("--position", type=int, nargs="+", default=[15])
    parser.add_argument("--questions", type=int, default=20)
    parser.add_argument("--configs", default="baseline")
    parser.add_argument(
        "--regime",
        choices=["oracle", "retrieval"],
        default="oracle",
        help="oracle: the gold document is the only target; retrieval: every document is, gold scored highest",
    )
    args = parser.parse_args()
    lm = load_causal_lm(progress=False)
    generation = GenerationConfig(max_new_tokens=8)
    configs: dict[str, SteeringConfig | None] = {}
    for spec in args.configs.split(";"):
        if spec:
            configs[spec] = None if spec == "baseline" else SteeringConfig(**json.loads(spec))
    questions = make_questions(args.questions, args.docs)
    for position in args.position:
        for name, config in configs.items():
            t0 = time.perf_counter()
            hits = 0
            for people, gold in questions:
                prompt, targets, question_start, answer = build(people, gold, position)
                if args.regime == "oracle":
                    targets = [targets[position - 1]]
                if config is None:
                    text = generate_text(lm.model, lm.tokenizer, prompt, generation)
                else:
                    gen = Engine.from_model(lm.model, lm.tokenizer, config)
                    text = gen.generate(prompt, targets, generation, steer_from=question_start).text
                hits += correct(text, answer)
            print(
                f"pos {position:>2}/{args.docs}  {hits / len(questions):5.0%}  {name}  "
                f"({time.perf_counter() - t0:.0f}s)",
                flush=True,
            )


if __name__ == "__main__":
    main()
