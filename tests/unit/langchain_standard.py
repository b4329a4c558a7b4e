"""What ``ChatPosrag`` declares to LangChain's standard tests (``langchain-tests``), shared by the unit suite
(``ChatModelUnitTests``, tiny model) and the integration suite (``ChatModelIntegrationTests``, packaged Gemma)."""

from __future__ import annotations

from langchain_posrag import ChatPosrag


class ChatPosragDeclarations:
    """Mixed in before the standard test class, so these answers override its defaults."""

    @property
    def chat_model_class(self) -> type[ChatPosrag]:
        return ChatPosrag

    # posrag's models write text: bind_tools / with_structured_output are overridden only to raise an error that
    # says what to use instead.
    @property
    def has_tool_calling(self) -> bool:
        return False

    @property
    def has_structured_output(self) -> bool:
        return False
