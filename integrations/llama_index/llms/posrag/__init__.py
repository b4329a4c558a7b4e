"""posrag's LlamaIndex LLM: a local Hugging Face causal LM with position-graduated steering."""

from llama_index.llms.posrag.base import RAG_PROMPT, TRACE_KEY, PosragLLM, PosragTraceHandler

__all__ = ["RAG_PROMPT", "TRACE_KEY", "PosragLLM", "PosragTraceHandler"]
