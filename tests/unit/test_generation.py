"""Generation settings: stop sequences, with and without leading whitespace stripped."""

from __future__ import annotations

import pytest

from posrag.generation import GenerationConfig, generate_text, stream_text, truncate_at_stop


def test_truncate_at_stop_cuts_at_the_earliest_stop():
    assert truncate_at_stop("Paris.\nBerlin", ["\n"]) == ("Paris.", True)
    assert truncate_at_stop("a;b,c", [",", ";"]) == ("a", True)
    assert truncate_at_stop("no stop here", ["\n"]) == ("no stop here", False)


def test_strip_leading_lets_a_completion_that_opens_with_a_newline_keep_its_answer():
    assert truncate_at_stop("\n Ottoline Brisk\nmore", ["\n"]) == ("", True)
    assert truncate_at_stop("\n Ottoline Brisk\nmore", ["\n"], strip_leading=True) == ("Ottoline Brisk", True)
    assert truncate_at_stop("  \n\t ", ["\n"], strip_leading=True) == ("", False)


def test_strip_leading_generation_matches_the_stripped_unstopped_completion(tiny_llama):
    model, tokenizer = tiny_llama.model, tiny_llama.tokenizer
    prompt = "The lighthouse keeper said"
    full = generate_text(model, tokenizer, prompt, GenerationConfig(max_new_tokens=12))
    stripped = full.lstrip()
    if len(stripped) < 2:
        pytest.skip("the tiny model's completion is too short to pick a stop sequence from")
    stop = stripped[1]
    expected, hit = truncate_at_stop(stripped, [stop])
    assert hit
    config = GenerationConfig(max_new_tokens=12, stop=(stop,), strip_leading=True)
    assert generate_text(model, tokenizer, prompt, config) == expected
    assert "".join(stream_text(model, tokenizer, prompt, config)) == expected
    assert config.to_dict()["strip_leading"] is True
