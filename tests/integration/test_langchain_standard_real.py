"""LangChain's own standard integration tests for chat models (``langchain-tests``), run on ``ChatPosrag`` over
the packaged Gemma 3 270M: invoke, stream, batch, conversations, stop sequences, and the usage metadata that
callbacks and tracers count, streamed and not."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("langchain_tests")

from langchain_posrag import ChatPosrag
from langchain_tests.integration_tests import ChatModelIntegrationTests


class TestChatPosragIntegration(ChatModelIntegrationTests):
    @property
    def chat_model_class(self) -> type[ChatPosrag]:
        return ChatPosrag

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"max_tokens": 24}

    # posrag's models write text: bind_tools / with_structured_output raise an error that says what to use instead.
    @property
    def has_tool_calling(self) -> bool:
        return False

    @property
    def has_structured_output(self) -> bool:
        return False
