"""posrag's LlamaIndex LLM: a local Hugging Face causal LM with position-graduated steering."""

from posrag._extras import require

require("llama_index.core", "llama_index.llms.posrag")

from llama_index.llms.posrag.base import RAG_PROMPT, TRACE_KEY, PosragLLM, PosragTraceHandler  # noqa: E402

__all__ = ["RAG_PROMPT", "TRACE_KEY", "PosragLLM", "PosragTraceHandler"]
