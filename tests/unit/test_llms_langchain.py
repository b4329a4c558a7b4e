"""LangChain ``PosragLLM`` and ``ChatPosrag`` on a tiny model: plain behaviour, LCEL with steering, trace, async."""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import torch
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.llms import LLM
from langchain_core.load import dumpd, dumps, load
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, trim_messages
from langchain_core.outputs import LLMResult
from langchain_core.prompts import ChatPromptTemplate, PromptTemplate
from langchain_core.runnables import RunnableLambda, RunnablePassthrough
from langchain_posrag import ChatPosrag, PositionReorder, PosragLLM
from langchain_tests.unit_tests import ChatModelUnitTests
from syrupy.assertion import SnapshotAssertion

from posrag.errors import ConfigurationError
from posrag.generation import GenerationConfig, apply_chat_template, generate_text
from posrag.steering import SteeringConfig, hook_counts
from posrag.testing import tiny_model
from tests.unit.langchain_standard import ChatPosragDeclarations

TINY = tiny_model("llama", num_layers=4)
DOCS = [
    Document("Paris is the capital of France.", metadata={"score": 0.9}, id="paris"),
    Document("Everest is the highest mountain on Earth.", metadata={"score": 0.3}, id="everest"),
    Document("Rome is the capital of Italy, a city.", metadata={"score": 0.6}, id="rome"),
]
PROMPT = PromptTemplate.from_template("Use the documents below.\n{context}\n\nQuestion: {question}\nAnswer:")
PLAIN_PROMPT = "Question: What is the capital of France? Answer:"


@pytest.fixture(autouse=True)
def _one_thread() -> Any:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    assert hook_counts(TINY.model) == {"forward": 0, "forward_pre": 0}


def _llm(**kwargs: Any) -> PosragLLM:
    return PosragLLM(model=TINY, **{"max_tokens": 8, **kwargs})


class TraceCatcher(BaseCallbackHandler):
    def __init__(self) -> None:
        self.infos: list[dict[str, Any]] = []

    def on_llm_end(self, response: LLMResult, **kwargs: Any) -> None:
        for generations in response.generations:
            self.infos.extend(g.generation_info or {} for g in generations)


def _chain(llm: Any):
    def format_docs(docs: list[Document]) -> str:
        return "\n".join(f"Document [{i + 1}] {d.page_content}" for i, d in enumerate(docs))

    retriever = RunnableLambda(lambda question: list(DOCS))
    return {"context": retriever | PositionReorder() | format_docs, "question": RunnablePassthrough()} | PROMPT | llm


def test_is_a_langchain_llm() -> None:
    llm = _llm()
    assert isinstance(llm, LLM)
    assert llm._llm_type == "posrag"
    assert llm._identifying_params["model_name"] == "llama"
    assert llm._identifying_params["steering"]["mechanism"] == SteeringConfig().mechanism


def test_without_documents_it_is_a_plain_local_llm() -> None:
    plain = generate_text(TINY.model, TINY.tokenizer, PLAIN_PROMPT, GenerationConfig(max_new_tokens=8))
    assert _llm(use_chat_template=False).invoke(PLAIN_PROMPT) == plain
    templated = apply_chat_template(TINY.tokenizer, [{"role": "user", "content": PLAIN_PROMPT}])
    expected = generate_text(
        TINY.model, TINY.tokenizer, templated, GenerationConfig(max_new_tokens=8), add_special_tokens=False
    )
    assert _llm().invoke(PLAIN_PROMPT) == expected  # the tiny tokenizer has a chat template: used by default
    result = _llm(use_chat_template=False).generate([PLAIN_PROMPT])
    assert result.generations[0][0].generation_info["posrag_trace"] == []


def test_lcel_chain_with_reorder_steers_and_reports_the_trace() -> None:
    catcher = TraceCatcher()
    llm = _llm(steering=SteeringConfig(mechanism="both"), use_chat_template=False)
    answer = _chain(llm).invoke("What is the capital of France?", config={"callbacks": [catcher]})
    assert isinstance(answer, str)
    (info,) = catcher.infos
    trace = info["posrag_trace"]
    # PositionReorder(recency) puts the best document last: everest (0.3), rome (0.6), paris (0.9).
    assert [t["doc_id"] for t in trace] == ["everest", "rome", "paris"]
    assert [t["relative_position"] for t in trace] == [0.0, 0.5, 1.0]
    # top_k=1 (default): only the best-scored document is steered.
    assert [t["tier"] for t in trace] == ["off", "off", "full"]
    assert [t["mechanism"] for t in trace] == ["none", "none", "both"]
    assert trace[2]["layers"] and trace[2]["attention_layers"]
    # The tiny model has no calibration: the uncalibrated preset halves the bias on the last document.
    assert trace[2]["multiplier"] == pytest.approx(0.5)
    assert trace[2]["rank"] == 0 and trace[2]["weight"] == 1.0
    assert info["posrag_selection"]["scores"] == "retriever" and info["posrag_selection"]["located"] == 3
    # Confidence-aware (opt-in): scores 0.9 / 0.6 / 0.3, the best leads the next by 1.22 spreads ->
    # (1.22 - 0.5) / (1.5 - 0.5) = 0.72 of full strength.
    confident = _llm(steering=SteeringConfig(mechanism="both", confidence=True), use_chat_template=False)
    catcher.infos.clear()
    _chain(confident).invoke("What is the capital of France?", config={"callbacks": [catcher]})
    margin = 0.3 / statistics.pstdev([0.9, 0.6, 0.3])
    weighed = catcher.infos[0]["posrag_trace"][2]
    assert weighed["weight"] == pytest.approx(margin - 0.5)
    assert weighed["multiplier"] == pytest.approx(0.5 * (margin - 0.5))
    everyone = _llm(steering=SteeringConfig(mechanism="both", top_k=None, confidence=False), use_chat_template=False)
    catcher.infos.clear()
    _chain(everyone).invoke("What is the capital of France?", config={"callbacks": [catcher]})
    trace = catcher.infos[0]["posrag_trace"]
    assert all(t["mechanism"] == "both" and t["layers"] and t["attention_layers"] for t in trace)
    assert trace[0]["intensity"] > trace[2]["intensity"]  # the uncalibrated preset halves the last document
    assert info["prompt_tokens"] > trace[-1]["token_span"]["end"]


def test_steering_none_is_plain_even_with_documents() -> None:
    catcher = TraceCatcher()
    steered_off = _llm(steering=None, use_chat_template=False)
    answer = _chain(steered_off).invoke("What is the capital of France?", config={"callbacks": [catcher]})
    assert catcher.infos[0]["posrag_trace"] == []
    prompt = PROMPT.format(
        context="\n".join(f"Document [{i + 1}] {d.page_content}" for i, d in enumerate([DOCS[1], DOCS[2], DOCS[0]])),
        question="What is the capital of France?",
    )
    assert answer == generate_text(TINY.model, TINY.tokenizer, prompt, GenerationConfig(max_new_tokens=8))


def test_stream_matches_invoke_and_carries_the_trace_once() -> None:
    llm = _llm(steering=SteeringConfig(mechanism="both"), use_chat_template=False, max_tokens=12)
    chain_prompt = _chain(RunnableLambda(lambda p: p.to_string())).invoke("What is the capital of France?")
    # Outside a chain there is no request to take documents from: they are passed explicitly.
    full = llm.invoke(chain_prompt, documents=DOCS)
    chunks = list(llm._stream(chain_prompt, documents=DOCS))
    assert "".join(c.text for c in chunks) == full
    assert "".join(llm.stream(chain_prompt, documents=DOCS)) == full
    # No request, no documents: nothing is steered (a process-wide memory would steer the chain's documents).
    assert llm.generate([chain_prompt]).generations[0][0].generation_info["posrag_trace"] == []
    with_trace = [c for c in chunks if c.generation_info and "posrag_trace" in c.generation_info]
    assert len(with_trace) == 1 and len(with_trace[0].generation_info["posrag_trace"]) == 3


def test_stop_sequences_cut_the_output() -> None:
    llm = _llm(use_chat_template=False, max_tokens=16)
    full = llm.invoke(PLAIN_PROMPT)
    stop = full.strip()[2:5]
    assert stop and stop in full
    cut = llm.invoke(PLAIN_PROMPT, stop=[stop])
    assert cut == full[: full.index(stop)]
    assert _llm(use_chat_template=False, max_tokens=16, stop=[stop]).invoke(PLAIN_PROMPT) == cut
    assert "".join(llm.stream(PLAIN_PROMPT, stop=[stop])) == cut
    assert llm.invoke(PLAIN_PROMPT, stop=stop) == cut  # one string is one stop sequence (before: its characters)


def test_async_matches_sync() -> None:
    llm = _llm(steering=SteeringConfig(mechanism="both"), use_chat_template=False)
    chain = _chain(llm)

    async def run() -> tuple[str, str, str]:
        answer = await chain.ainvoke("What is the capital of France?")
        streamed = "".join([piece async for piece in llm.astream(PLAIN_PROMPT)])
        return answer, streamed, await llm.ainvoke(PLAIN_PROMPT)

    answer, streamed, direct = asyncio.run(run())
    assert answer == chain.invoke("What is the capital of France?")
    assert streamed == direct == llm.invoke(PLAIN_PROMPT)


# ----------------------------------------------------------------------------- chat model


def test_chat_model_steers_in_an_lcel_chain_and_reports_in_response_metadata() -> None:
    chat = ChatPosrag(model=TINY, max_tokens=8, steering=SteeringConfig(mechanism="attention", top_k=None))
    assert isinstance(chat, BaseChatModel)
    prompt = ChatPromptTemplate.from_messages(
        [("system", "Answer from the documents."), ("human", "{context}\n\nQuestion: {question}")]
    )

    def format_docs(docs: list[Document]) -> str:
        return "\n".join(d.page_content for d in docs)

    chain = (
        {
            "context": RunnableLambda(lambda q: list(DOCS)) | PositionReorder() | format_docs,
            "question": RunnablePassthrough(),
        }
        | prompt
        | chat
    )
    message = chain.invoke("What is the capital of France?")
    assert isinstance(message, AIMessage)
    trace = message.response_metadata["posrag_trace"]
    assert [t["doc_id"] for t in trace] == ["everest", "rome", "paris"]
    assert all(t["mechanism"] == "attention" for t in trace)
    streamed = list(chat.stream([HumanMessage("hi"), SystemMessage("be brief")]))
    assert "".join(c.text for c in streamed) == chat.invoke([HumanMessage("hi"), SystemMessage("be brief")]).text


def test_a_streamed_chat_reports_the_usage_invoke_reports_to_the_callers_tracer() -> None:
    """Streaming chat UIs bill and trace by usage_metadata: the chunks add up to invoke()'s usage, and
    LangChain's usage callback sees the same counts for a stream as for a call; also when a stop cuts it."""
    from langchain_core.callbacks import get_usage_metadata_callback

    chat = ChatPosrag(model=TINY, max_tokens=10, steering=SteeringConfig(mechanism="attention", top_k=None))
    messages = [HumanMessage("\n".join(d.page_content for d in DOCS) + "\n\nQuestion: What is the capital of France?")]
    whole = chat.invoke(messages, documents=DOCS).text
    for stop in (None, [whole.strip()[2:4]]):
        invoked = chat.invoke(messages, documents=DOCS, stop=stop)
        with get_usage_metadata_callback() as usage:
            merged = None
            for chunk in chat.stream(messages, documents=DOCS, stop=stop):
                merged = chunk if merged is None else merged + chunk
        assert merged is not None and merged.text == invoked.text
        assert merged.usage_metadata == invoked.usage_metadata
        assert 0 < invoked.usage_metadata["output_tokens"] <= 10 < invoked.usage_metadata["input_tokens"]
        assert usage.usage_metadata == {invoked.response_metadata["model_name"]: invoked.usage_metadata}
        assert merged.response_metadata == invoked.response_metadata  # trace, selection, model and token counts
    llm = _llm(use_chat_template=False, max_tokens=10)
    expected = llm.generate([PLAIN_PROMPT]).generations[0][0].generation_info
    streamed = list(llm._stream(PLAIN_PROMPT))
    info = {k: v for c in streamed for k, v in (c.generation_info or {}).items()}
    counts = ("prompt_tokens", "generated_tokens")
    assert [info[k] for k in counts] == [expected[k] for k in counts]


def test_chat_model_without_documents_is_the_templated_plain_output() -> None:
    chat = ChatPosrag(model=TINY, max_tokens=8)
    templated = apply_chat_template(TINY.tokenizer, [{"role": "user", "content": "Hello there"}])
    expected = generate_text(
        TINY.model, TINY.tokenizer, templated, GenerationConfig(max_new_tokens=8), add_special_tokens=False
    )
    message = chat.invoke("Hello there")
    assert message.text == expected
    assert message.response_metadata["posrag_trace"] == []


@cache
def tiny_dir() -> str:
    """TINY saved as a model directory: a model given by path, as a serialized LLM records it."""
    path = Path(tempfile.mkdtemp(prefix="posrag-tiny-llama-"))
    TINY.save(path)
    return str(path)


class TestChatPosragStandard(ChatPosragDeclarations, ChatModelUnitTests):
    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"model": tiny_dir()}

    @pytest.fixture
    def snapshot(self, snapshot: SnapshotAssertion) -> SnapshotAssertion:
        """The standard ``test_serdes`` snapshot, with this run's temporary model directory replaced."""

        def stable_path(data: Any, path: Any) -> Any:
            return "<tiny model directory>" if data == tiny_dir() else data

        return snapshot.with_defaults(matcher=stable_path)

    @pytest.mark.xfail(
        reason="load(allowed_objects='all') admits only the classes in LangChain's own serialization mapping; "
        "the snapshot above passes, and test_serialized_by_model_path_and_settings_and_loaded_back loads it "
        "back with allowed_objects=[ChatPosrag]",
        raises=ValueError,
        strict=True,
    )
    def test_serdes(self, model: BaseChatModel, snapshot: SnapshotAssertion) -> None:
        super().test_serdes(model, snapshot)


# ----------------------------------------------------------------------------- framework conventions


@pytest.mark.parametrize("cls", [PosragLLM, ChatPosrag])
def test_serialized_by_model_path_and_settings_and_loaded_back(cls: type) -> None:
    steering = SteeringConfig(mechanism="both", top_k=None, base_intensity=0.05)
    model = cls(model=tiny_dir(), max_tokens=5, temperature=0.0, stop=["\n"], steering=steering)
    text = dumps(model)
    assert "Linear" not in text and "Embedding" not in text  # no module tree
    serialized = json.loads(text)
    assert serialized["type"] == "constructor"
    assert serialized["id"][:2] == ["langchain_posrag", "llms" if cls is PosragLLM else "chat_models"]
    kwargs = serialized["kwargs"]
    assert kwargs["model"] == tiny_dir() and kwargs["max_tokens"] == 5 and kwargs["stop"] == ["\n"]
    assert kwargs["steering"]["mechanism"] == "both" and kwargs["steering"]["top_k"] is None
    # allowed_objects="all" is LangChain's own list of integrations; posrag's classes are named explicitly.
    loaded = load(serialized, valid_namespaces=["langchain_posrag"], allowed_objects=[cls])
    assert type(loaded) is cls and loaded.steering == steering and loaded.max_tokens == 5
    answers = [m.invoke(PLAIN_PROMPT) for m in (loaded, model)]
    assert len({a if isinstance(a, str) else a.text for a in answers}) == 1
    plain = load(
        json.loads(dumps(cls(model=tiny_dir(), steering=None))),
        valid_namespaces=["langchain_posrag"],
        allowed_objects=[cls],
    )
    assert plain.steering is None


@pytest.mark.parametrize("cls", [PosragLLM, ChatPosrag])
def test_a_model_object_without_a_name_says_why_it_is_not_serializable(cls: type) -> None:
    serialized = dumpd(cls(model=TINY, max_tokens=4))
    assert serialized["type"] == "not_implemented"
    assert "no name or path" in serialized["repr"] and "model='path/or/id'" in serialized["repr"]
    assert "Linear" not in json.dumps(serialized)
    assert "Linear" not in repr(cls(model=TINY, max_tokens=4))


def test_unknown_call_options_raise_and_known_ones_apply() -> None:
    llm = _llm(use_chat_template=False)
    with pytest.raises(ConfigurationError, match=r"'max_token'.*accepts 'max_tokens'"):
        llm.invoke(PLAIN_PROMPT, max_token=3)
    with pytest.raises(ConfigurationError, match="'top_k'"):
        list(llm.stream(PLAIN_PROMPT, top_k=3))
    with pytest.raises(ConfigurationError, match="'seed'"):
        ChatPosrag(model=TINY, max_tokens=4).invoke("hi", seed=1)
    assert len(llm.generate([PLAIN_PROMPT], max_tokens=2).generations[0][0].generation_info["posrag_trace"]) == 0
    short = llm.invoke(PLAIN_PROMPT, max_tokens=2)
    assert short == generate_text(TINY.model, TINY.tokenizer, PLAIN_PROMPT, GenerationConfig(max_new_tokens=2))
    chat = ChatPosrag(model=TINY, max_tokens=4)
    assert chat.invoke("hi", stream=True).text == chat.invoke("hi").text  # LangChain passes `stream` through


def test_token_counts_use_the_models_own_tokenizer() -> None:
    text = "Paris is the capital of France."
    expected = TINY.tokenizer.encode(text, add_special_tokens=False)
    for model in (_llm(), ChatPosrag(model=TINY, max_tokens=4)):
        assert model.get_token_ids(text) == expected
        assert model.get_num_tokens(text) == len(expected)
    chat = ChatPosrag(model=TINY, max_tokens=4)
    messages = [SystemMessage("be brief"), HumanMessage(text)]
    templated = apply_chat_template(
        TINY.tokenizer, [{"role": "system", "content": "be brief"}, {"role": "user", "content": text}]
    )
    assert chat.get_num_tokens_from_messages(messages) == len(
        TINY.tokenizer.encode(templated, add_special_tokens=False)
    )
    budget = chat.get_num_tokens_from_messages(messages[-1:])
    assert trim_messages(messages, max_tokens=budget, token_counter=chat, strategy="last") == messages[-1:]


def test_models_keep_langchains_version_metadata_and_add_posrags() -> None:
    import langchain_core

    import posrag

    for model in (_llm(), ChatPosrag(model=TINY, max_tokens=4)):
        versions = (model.metadata or {})["lc_versions"]
        assert versions["langchain-core"] == langchain_core.__version__
        assert versions["posrag"] == posrag.__version__
        assert model.generator.model is TINY.model


def test_chat_model_astream_matches_invoke_and_leaves_no_hooks() -> None:
    chat = ChatPosrag(model=TINY, max_tokens=6)
    messages = [HumanMessage("What is the capital of France?")]

    async def run() -> tuple[str, str]:
        streamed = "".join([chunk.text async for chunk in chat.astream(messages)])
        return streamed, (await chat.ainvoke(messages)).text

    streamed, invoked = asyncio.run(run())
    assert streamed == invoked == chat.invoke(messages).text
    assert hook_counts(TINY.model) == {"forward": 0, "forward_pre": 0}


@pytest.mark.parametrize("cls", [PosragLLM, ChatPosrag])
def test_a_serialized_llm_over_an_int8_model_loads_back_int8(cls: type) -> None:
    from posrag.models import load_causal_lm

    def int8(llm: Any) -> bool:
        return any("quantized" in type(m).__module__ for m in llm._generator.model.modules())

    model = cls(model=load_causal_lm(tiny_dir(), quantize="int8", progress=False), max_tokens=3)
    assert int8(model)
    serialized = json.loads(dumps(model))
    assert serialized["kwargs"]["model"] == {"model": tiny_dir(), "quantize": "int8"}
    loaded = load(serialized, valid_namespaces=["langchain_posrag"], allowed_objects=[cls])
    assert int8(loaded)  # before: the model loaded back by name alone, in fp32
