"""posrag's LlamaIndex instrumentation: request-scoped tracking of the nodes each query retrieved."""

from posrag._extras import require

require("llama_index.core", "llama_index.callbacks.posrag")

from llama_index.callbacks.posrag.base import (  # noqa: E402
    PosragRequestSpanHandler,
    current_request_id,
    install,
    node_to_document,
    record_call,
    request_documents,
)

__all__ = [
    "PosragRequestSpanHandler",
    "current_request_id",
    "install",
    "node_to_document",
    "record_call",
    "request_documents",
]
