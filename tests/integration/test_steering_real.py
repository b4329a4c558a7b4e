"""Steering on the embedded Gemma 3 270M: both frameworks' standard RAG paths, the trace, and a lift in accuracy."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.output_parsers import StrOutputParser
from langchain_core.outputs import LLMResult
from langchain_core.prompts import PromptTemplate
from langchain_core.runnables import RunnableLambda, RunnablePassthrough
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from posrag import architectures
from posrag.engine import Engine
from posrag.generation import GenerationConfig, generate_text
from posrag.steering import SteeringConfig, hook_counts
from tests.integration.lost_in_the_middle import synthetic_prompt

FACTS = {
    "mira": ("Mira Novak was born in Tartu and works as a glassblower.", 0.82),
    "lars": ("Lars Okafor was born in Cusco and repairs old clocks.", 0.35),
    "uma": ("Uma Haddad was born in Bergen and teaches chemistry.", 0.55),
    "olga": ("Olga Petrov was born in Varna and writes crime novels.", 0.41),
    "hiro": ("Hiro Silva was born in Ghent and builds wooden boats.", 0.27),
}
QUESTION = "Where was Mira Novak born?"


def _trace_checks(trace: list[dict[str, Any]], prompt_tokens: int, num_layers: int) -> None:
    # posrag's PositionReorder (recency) puts the best-scoring document last.
    ranked = sorted(FACTS, key=lambda key: FACTS[key][1])
    assert [t["doc_id"] for t in trace] == ranked
    assert [t["relative_position"] for t in trace] == [i / (len(FACTS) - 1) for i in range(len(FACTS))]
    spans = [(t["token_span"]["start"], t["token_span"]["end"]) for t in trace]
    assert all(0 < s < e <= prompt_tokens for s, e in spans)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))
    # top_k=1 (default): only the best-scored document, last after the recency reorder, is steered.
    assert [entry["tier"] for entry in trace] == ["off"] * (len(trace) - 1) + ["full"]
    assert [entry["mechanism"] for entry in trace] == ["none"] * (len(trace) - 1) + ["both"]
    best = trace[-1]
    assert best["layers"] and all(0 <= layer < num_layers for layer in best["layers"])
    assert best["attention_layers"] and best["intensity"] > 0 and best["attention_bias"] > 0


def test_llama_index_retriever_query_engine_with_reorder_and_steering(real_lm: Any) -> None:
    from llama_index.llms.posrag import PosragLLM, PosragTraceHandler
    from llama_index.postprocessor.posrag import PositionReorder

    class FixedRetriever(BaseRetriever):
        def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
            return [NodeWithScore(node=TextNode(text=t, id_=k), score=s) for k, (t, s) in FACTS.items()]

    handler = PosragTraceHandler()
    dispatcher = get_dispatcher()
    dispatcher.add_event_handler(handler)
    try:
        llm = PosragLLM(model=real_lm, max_new_tokens=16, steering=SteeringConfig(mechanism="both"))
        engine = RetrieverQueryEngine.from_args(FixedRetriever(), llm=llm, node_postprocessors=[PositionReorder()])
        response = engine.query(QUESTION)
    finally:
        dispatcher.event_handlers.remove(handler)
    # The answer itself is up to a 270M base model under LlamaIndex's template; the accuracy claim is tested
    # below in the oracle regime. Here: the standard path runs, steers the right spans and reports it.
    assert str(response).strip()
    assert [n.node.node_id for n in response.source_nodes] == sorted(FACTS, key=lambda key: FACTS[key][1])
    (trace,) = handler.traces
    _trace_checks(trace, 10_000, architectures.num_layers(real_lm.model))
    assert hook_counts(real_lm.model) == {"forward": 0, "forward_pre": 0}


def test_langchain_lcel_chain_with_reorder_and_steering(real_lm: Any) -> None:
    from langchain_posrag import PositionReorder, PosragLLM

    class Catcher(BaseCallbackHandler):
        def __init__(self) -> None:
            self.infos: list[dict[str, Any]] = []

        def on_llm_end(self, response: LLMResult, **kwargs: Any) -> None:
            self.infos.extend(g.generation_info or {} for gens in response.generations for g in gens)

    docs = [Document(t, metadata={"score": s}, id=k) for k, (t, s) in FACTS.items()]
    prompt = PromptTemplate.from_template(
        "Answer the question using the documents.\n\n{context}\n\nQuestion: {question}\nAnswer:"
    )
    llm = PosragLLM(model=real_lm, max_tokens=16, stop=["\n"], steering=SteeringConfig(mechanism="both"))
    chain = (
        {
            "context": RunnableLambda(lambda q: docs)
            | PositionReorder()
            | (lambda ds: "\n".join(d.page_content for d in ds)),
            "question": RunnablePassthrough(),
        }
        | prompt
        | llm
        | StrOutputParser()
    )
    catcher = Catcher()
    answer = chain.invoke(QUESTION, config={"callbacks": [catcher]})
    assert "Tartu" in answer and "\n" not in answer
    (info,) = catcher.infos
    _trace_checks(info["posrag_trace"], info["prompt_tokens"], architectures.num_layers(real_lm.model))
    assert "".join(chain.stream(QUESTION)) == answer
    assert hook_counts(real_lm.model) == {"forward": 0, "forward_pre": 0}


def test_attention_steering_lifts_lost_in_the_middle_accuracy(real_lm: Any) -> None:
    """Oracle regime, gold document at position 15 of 20 (the benchmark engineer's call pattern).

    24 tokens: steered with the shipped calibration the model tends to restate the sentence ("Person 4617-14 was
    born in Quito."), whose digit-by-digit name alone takes ~10 tokens (8 cut every such answer short)."""
    generation = GenerationConfig(max_new_tokens=24)
    generator = Engine.from_model(real_lm.model, real_lm.tokenizer, SteeringConfig(mechanism="attention"))
    base_hits = steered_hits = 0
    for seed in range(10):
        prompt, target, question, answer = synthetic_prompt(seed)
        plain = generate_text(real_lm.model, real_lm.tokenizer, prompt, generation)
        assert generator.generate(prompt, [], generation).text == plain
        steered = generator.generate(prompt, [target], generation, steer_from=question)
        base_hits += answer in plain.split("\n")[0]
        steered_hits += answer in steered.text.split("\n")[0]
        assert steered.trace[0].attention_layers
    assert steered_hits >= base_hits + 2, (base_hits, steered_hits)
    assert hook_counts(real_lm.model) == {"forward": 0, "forward_pre": 0}


@pytest.mark.parametrize("mechanism", ["activation", "attention", "both"])
def test_stream_equals_generate_and_leaves_no_hooks(real_lm: Any, mechanism: str) -> None:
    prompt, target, question, _ = synthetic_prompt(0, n_docs=10, position=5)
    generator = Engine.from_model(real_lm.model, real_lm.tokenizer, SteeringConfig(mechanism=mechanism))  # type: ignore[arg-type]
    generation = GenerationConfig(max_new_tokens=12)
    text = generator.generate(prompt, [target], generation, steer_from=question).text
    assert "".join(generator.stream(prompt, [target], generation, steer_from=question)) == text
    assert hook_counts(real_lm.model) == {"forward": 0, "forward_pre": 0}
