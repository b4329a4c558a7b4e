"""Retroactive exploration on the packaged Gemma 3 270M: the seed's example, exactness past the sliding
window, and the agent tools called end to end."""

from __future__ import annotations

import json

import pytest
import torch
from langchain_core.tools import BaseTool
from langchain_posrag import PositionExplorerTool
from langchain_tests.integration_tests import ToolsIntegrationTests
from llama_index.tools.posrag import PositionExplorerToolSpec
from typer.testing import CliRunner

from posrag import architectures
from posrag.cli.main import app
from posrag.errors import ConfigurationError
from posrag.retroactive import RetroactivePositionGenerator

SEED_PROMPT = "Once upon a time"
SEED_POSITIONS = [4, 10, 20, 50, 100]


@pytest.fixture(scope="module")
def generator(real_lm):
    return RetroactivePositionGenerator(real_lm.model, real_lm.tokenizer)


def test_the_seed_example_runs_verbatim_and_prints_its_table():
    # The seed counted "Once upon a time" as 4 tokens (no BOS), so position 4 is the token's natural one.
    result = CliRunner().invoke(
        app,
        ["explore", SEED_PROMPT, "--positions", ",".join(map(str, SEED_POSITIONS)), "--no-special-tokens"],
        env={"COLUMNS": "160"},
    )
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("│")]
    assert [int(line.split("│")[1]) for line in lines] == SEED_POSITIONS
    assert [int(line.split("│")[2]) for line in lines] == [p - 4 for p in SEED_POSITIONS]


def test_with_gemmas_bos_position_4_is_a_clear_error(generator):
    with pytest.raises(ConfigurationError, match="includes the BOS token"):
        generator.compare_positions(SEED_PROMPT, SEED_POSITIONS)
    result = generator.compare_positions(SEED_PROMPT, [5, 10, 20, 50, 100])
    assert result.prompt_length == 5 and result.get_exploration(0).position == 5
    assert result.original_token == ","  # "Once upon a time," — the model knows the phrase
    assert result.baseline.top_next_token == " there"


def test_gaps_equal_separate_forward_passes_past_the_sliding_window(real_lm, generator):
    window = architectures.sliding_window(real_lm.model)
    text = " ".join(f"Item {i} is a {'red' if i % 3 else 'blue'} box." for i in range(120))
    ids = real_lm.tokenizer(text)["input_ids"][: window + 24]
    state = generator.prefill(ids)
    assert state.length > window
    near, far = generator.position_log_probs(state, [state.length + 7, state.length + 300.5])
    # One reference pass (each costs a full forward pass of >512 tokens): the fractional, far position.
    positions = torch.tensor([[*range(state.length), state.length + 300.5]], dtype=torch.float32)
    with torch.inference_mode():
        logits = real_lm.model(
            input_ids=torch.tensor([[*ids, state.token_id]]),
            position_ids=positions,
            attention_mask=torch.ones(1, state.length + 1, dtype=torch.long),
        ).logits[0, -1]
    assert (far.exp() - logits.float().softmax(-1)).abs().max() < 1e-4
    assert (near.exp() - far.exp()).abs().max() > 1e-2  # the position matters here, so the check can fail


class TestPositionExplorerToolOnTheEmbeddedModel(ToolsIntegrationTests):
    """LangChain's tool suite with the tool's default generator: the packaged Gemma 3 270M."""

    @property
    def tool_constructor(self) -> type[BaseTool]:
        return PositionExplorerTool

    @property
    def tool_invoke_params_example(self) -> dict:
        return {"prompt": SEED_PROMPT, "gaps": [5, 10, 20]}


def test_llama_index_tool_call_on_the_embedded_model():
    (tool,) = PositionExplorerToolSpec().to_tool_list()
    data = json.loads(tool.call(prompt=SEED_PROMPT, gaps=[5, 10], top_k=2).content)
    assert data["token"] == "," and [g["gap"] for g in data["gaps"]] == [5, 10]
    assert data["baseline"]["top"][0][0] == " there"
    assert all(len(g["top"]) == 2 and g["kl"] >= 0 for g in data["gaps"])
