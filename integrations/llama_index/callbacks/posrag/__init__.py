"""posrag's LlamaIndex instrumentation: request-scoped tracking of the nodes each query retrieved."""

from llama_index.callbacks.posrag.base import (
    PosragRequestSpanHandler,
    current_request_id,
    install,
    node_to_document,
    request_documents,
)

__all__ = ["PosragRequestSpanHandler", "current_request_id", "install", "node_to_document", "request_documents"]
