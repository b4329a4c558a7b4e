"""Chat formatting (posrag.chat) and the model-argument resolver (posrag.models.resolve_model), at their new homes."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from posrag.chat import FormattedPrompt, format_completion, format_messages
from posrag.errors import ConfigurationError
from posrag.models import LoadedModel, resolve_model

PLAIN = SimpleNamespace(chat_template=None)  # a tokenizer without a chat template is all formatting reads


def test_messages_without_a_chat_template_become_role_lines() -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"}]
    formatted = format_messages(PLAIN, messages, None)
    assert formatted == FormattedPrompt(
        "System: Be brief.\n\nUser: Hi?\n\nAssistant:", add_special_tokens=True, segments=((8, 17), (25, 28))
    )
    # the caller's messages are found in the text the model reads: traces map back to them
    assert [formatted.text[s:e] for s, e in formatted.segments] == ["Be brief.", "Hi?"]
    assert formatted.to_caller(27, 28) == (1, 2, 3)
    assert format_messages(PLAIN, [{"role": "user", "content": "Hi?"}], None) == FormattedPrompt("Hi?", True, ((0, 3),))
    with pytest.raises(ConfigurationError, match="no chat template"):
        format_messages(PLAIN, messages, True)


def test_a_completion_prompt_is_passed_through_unless_a_template_is_asked_for() -> None:
    plain = FormattedPrompt("Q: x\nA:", add_special_tokens=True, segments=((0, 7),))
    assert format_completion(PLAIN, "Q: x\nA:") == plain
    assert format_completion(PLAIN, "Q: x\nA:", None) == plain


def test_resolve_model_accepts_loaded_models_pairs_and_rejects_the_rest(tiny_llama) -> None:
    loaded = LoadedModel(tiny_llama.model, tiny_llama.tokenizer, "tiny", "in-process")
    assert resolve_model(loaded) == (tiny_llama.model, tiny_llama.tokenizer, "tiny")
    model, tokenizer, _ = resolve_model((tiny_llama.model, tiny_llama.tokenizer))
    assert (model, tokenizer) == (tiny_llama.model, tiny_llama.tokenizer)
    with pytest.raises(ConfigurationError, match="model=int is not a model posrag can use"):
        resolve_model(3)
