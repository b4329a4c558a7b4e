"""The examples under ``examples/`` run offline on the packaged models, in the patterns users write them, and
every request steers its best document (the Marrowvale lighthouse fact) and gets a non-empty answer.

One packaged model per session (the examples' own loads are handed the session's copy, same files); few new
tokens; each pattern run once or twice.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any
from uuid import UUID

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.outputs import ChatGeneration, LLMResult
from llama_index.core.instrumentation import get_dispatcher
from llama_index.llms.posrag import PosragTraceHandler

from posrag.demo import DEMO_QUESTION
from posrag.steering import hook_counts

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
GOLD = "marrowvale-02"  # "The Marrowvale lighthouse was built in 1887 by the engineer Ottoline Brisk ..."
ANSWER = "Ottoline Brisk"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"posrag_example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # as `python examples/<name>.py` would: typing resolves its annotations there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module", autouse=True)
def _shared_model(real_lm: Any) -> Any:
    """The examples load the packaged model themselves; hand them the session's copy (same files, no reload)."""
    import posrag.models

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(posrag.models, "load_causal_lm", lambda *args, **kwargs: real_lm)
        yield
    assert hook_counts(real_lm.model) == {"forward": 0, "forward_pre": 0}


def steered(trace: list[dict[str, Any]]) -> list[str]:
    return [t["doc_id"] for t in trace if t["mechanism"] != "none"]


class Steered(BaseCallbackHandler):
    """What every LLM run of the requests it watches steered (its trace as ``on_llm_end`` saw it)."""

    def __init__(self) -> None:
        self.runs: dict[UUID, list[str]] = {}

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        generation = response.generations[0][0]
        chat = isinstance(generation, ChatGeneration)
        info = generation.message.response_metadata if chat else generation.generation_info
        self.runs[run_id] = steered((info or {})["posrag_trace"])


# ----------------------------------------------------------------------------- LangChain and LangGraph


@pytest.fixture(scope="module")
def lcel() -> ModuleType:
    return _load("langchain_lcel")


def test_langchain_lcel_example_answers_right(lcel: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    answer = lcel.main()
    assert ANSWER in answer and answer == answer.strip()
    assert capsys.readouterr().out.count(ANSWER) == 2  # the completion chain and the streamed chat chain


def test_langchain_chat_chain_steers_the_lighthouse_in_every_entry_point(lcel: ModuleType) -> None:
    chain = lcel.build_chat_chain(lcel.build_retriever())
    handler = Steered()
    config = {"callbacks": [handler]}
    answers = [chain.invoke(DEMO_QUESTION, config).content]
    answers += [m.content for m in chain.batch([DEMO_QUESTION, DEMO_QUESTION], config)]
    answers.append("".join(c.content for c in chain.stream(DEMO_QUESTION, config)))

    async def streamed() -> list[str]:
        astream = "".join([c.content async for c in chain.astream(DEMO_QUESTION, config)])
        events = [e async for e in chain.astream_events(DEMO_QUESTION, config, version="v2")]
        chunks = "".join(e["data"]["chunk"].content for e in events if e["event"] == "on_chat_model_stream")
        return [astream, chunks]

    answers += asyncio.run(streamed())
    assert list(handler.runs.values()) == [[GOLD]] * 6
    assert all(ANSWER in answer for answer in answers), answers


def test_langgraph_example_streams_messages_steered_toward_the_lighthouse() -> None:
    graph = _load("langgraph_rag").build_graph()
    handler = Steered()
    chunks = list(graph.stream({"question": DEMO_QUESTION}, {"callbacks": [handler]}, stream_mode="messages"))
    assert list(handler.runs.values()) == [[GOLD]]
    assert ANSWER in "".join(chunk.content for chunk, _ in chunks)


# ----------------------------------------------------------------------------- LlamaIndex


@pytest.fixture
def li_traces() -> Any:
    handler = PosragTraceHandler()
    get_dispatcher().add_event_handler(handler)
    yield handler.traces
    get_dispatcher().event_handlers.remove(handler)


@pytest.fixture(scope="module")
def li_query() -> tuple[ModuleType, Any]:
    example = _load("llama_index_query_engine")
    return example, example.build_index()


def _steered_texts(index: Any, traces: list[list[dict[str, Any]]]) -> set[str]:
    return {index.docstore.get_node(doc_id).get_content() for trace in traces for doc_id in steered(trace)}


GOLD_TEXT = "The Marrowvale lighthouse was built in 1887 by the engineer Ottoline Brisk"


def test_llama_index_query_engine_example_answers_right(li_query: tuple[ModuleType, Any], li_traces: list) -> None:
    example, _ = li_query
    response = example.main()
    assert ANSWER in str(response)
    assert [steered(trace) for trace in li_traces] != [] and all(len(steered(t)) == 1 for t in li_traces)
    (steered_id,) = steered(li_traces[0])
    assert GOLD_TEXT in next(n.node.get_content() for n in response.source_nodes if n.node.node_id == steered_id)


@pytest.mark.parametrize("mode", ["compact", "refine", "tree_summarize", "streaming"])
def test_llama_index_response_modes_steer_only_the_lighthouse(
    mode: str, li_query: tuple[ModuleType, Any], li_traces: list
) -> None:
    example, index = li_query
    llm = example.build_llm(max_new_tokens=16)
    options = {"streaming": True} if mode == "streaming" else {"response_mode": mode}
    engine = example.build_engine(index, llm, similarity_top_k=3, **options)
    response = engine.query(DEMO_QUESTION)
    answer = "".join(response.response_gen) if mode == "streaming" else str(response)
    assert answer.strip() and answer != "Empty Response"
    assert li_traces and {GOLD_TEXT in text for text in _steered_texts(index, li_traces)} == {True}
    if mode != "refine":  # refine rewrites its first answer with LlamaIndex's own refine prompt
        assert ANSWER in answer


def test_llama_index_chat_engine_example_two_turns(li_traces: list) -> None:
    example = _load("llama_index_chat_engine")
    first, second = example.main()
    assert ANSWER in str(first) and "1887" in str(second)
    # each turn's answering call steered the lighthouse fact (the second turn's condense call has no documents)
    texts = {n.node.node_id: n.node.get_content() for answer in (first, second) for n in answer.source_nodes}
    answering = [steered(trace) for trace in li_traces if steered(trace)]
    assert len(answering) == 2 and all(GOLD_TEXT in texts[doc_id] for ids in answering for doc_id in ids)


# ----------------------------------------------------------------------------- the README, as written


def _readme_block(heading: str) -> str:
    readme = (EXAMPLES.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split(f"### {heading}\n", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readmes_snippets_answer_right_as_written(capsys: pytest.CaptureFixture[str], li_traces: list) -> None:
    namespace: dict[str, Any] = {"__name__": "readme"}
    exec(_readme_block("LangChain (LCEL)"), namespace)  # defines `texts`, which the LlamaIndex snippet reuses
    exec(_readme_block("LlamaIndex"), namespace)
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].strip() == ANSWER and ANSWER in printed[1]
    (trace,) = namespace["response"].metadata["posrag_trace"]
    (steered_id,) = steered(trace)
    assert GOLD_TEXT in namespace["index"].docstore.get_node(steered_id).get_content()
