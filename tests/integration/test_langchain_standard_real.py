"""LangChain's own standard integration tests for chat models (``langchain-tests``), run on ``ChatPosrag`` over
the packaged Gemma 3 270M: invoke, stream, batch, conversations, stop sequences, and the usage metadata that
callbacks and tracers count, streamed and not."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("langchain_tests")

from langchain_tests.integration_tests import ChatModelIntegrationTests

from tests.unit.langchain_standard import ChatPosragDeclarations


class TestChatPosragIntegration(ChatPosragDeclarations, ChatModelIntegrationTests):
    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"max_tokens": 24}
