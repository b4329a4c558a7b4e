"""Generation settings: stop sequences, with and without leading whitespace stripped."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from posrag.errors import ConfigurationError
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


# ----------------------------------------------------------------------------- validation at construction

_ANY = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=4),
    st.lists(st.text(max_size=2), max_size=2),
)
_FIELDS = {
    "max_new_tokens": lambda v: type(v) is int and v >= 1,
    "temperature": lambda v: type(v) in (int, float) and math.isfinite(v) and v >= 0,
    "top_p": lambda v: type(v) in (int, float) and math.isfinite(v) and 0 < v <= 1,
    "min_new_tokens": lambda v: type(v) is int and 0 <= v <= 64,
    "strip_leading": lambda v: type(v) is bool,
    "stop": lambda v: type(v) is list,
}


@given(field=st.sampled_from(sorted(_FIELDS)), value=_ANY)
def test_generation_config_accepts_exactly_the_valid_values_and_names_the_field(field, value):
    valid = _FIELDS[field](value)
    if valid:
        config = GenerationConfig(**{field: value})
        assert config.to_dict()[field] == value
        return
    with pytest.raises(ConfigurationError) as info:
        GenerationConfig(**{field: value})
    assert field in str(info.value) and repr(value) in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "allowed"),
    [
        ({"max_new_tokens": "5"}, ">= 1"),
        ({"temperature": float("nan")}, "[0, inf)"),
        ({"top_p": 0}, "(0, 1]"),
        ({"top_p": 5}, "(0, 1]"),
        ({"min_new_tokens": 65}, "max_new_tokens=64"),
        ({"stop": "\n"}, "stop=("),
    ],
)
def test_generation_config_messages_name_the_allowed_range(kwargs, allowed):
    with pytest.raises(ConfigurationError, match=re.escape(allowed)):
        GenerationConfig(**kwargs)


def test_held_pieces_hold_what_may_start_a_stop_or_a_character():
    from posrag.streaming import held_pieces

    config = GenerationConfig(stop=("\nQ:",))
    stopped = list(held_pieces(["Paris", "Paris\n", "Paris\nQ", "Paris\nQ:", "Paris\nQ: more"], config))
    # The last two characters wait (they may start "\nQ:"); "\n" and "\nQ" never go out, the stop drops them.
    assert stopped == ["Par", "i", "s"]
    assert "".join(held_pieces(["Paris", "Paris\n", "Paris\nis"], config)) == "Paris\nis"
    assert list(held_pieces(["caf", "caf\ufffd", "café"], GenerationConfig())) == ["caf", "é"]
    cancelled = list(held_pieces(["Paris", "Paris\n"], config, keep_tail=lambda: False))
    assert "".join(cancelled) == "Pari"  # a cancelled generation ends without its held tail ("s\n")
