"""``posrag calibrate``'s measurement on tiny random models: exact prefix reuse, resumption, the saved profile."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from posrag.bench.calibrate import CalibrateConfig, Calibrator, _pick, guard_band
from posrag.calibration import BANDS
from posrag.cli.main import app
from posrag.errors import ConfigurationError
from posrag.profiles import BiasProfile, model_profile
from posrag.steering import SteeringConfig, resolve_steering
from posrag.testing import TinyModel, tiny_model

SMALL = CalibrateConfig(questions=2, num_docs=5, biases=(2.0, 6.0), layer_groups=3, transfer_docs=(6,))


@pytest.fixture(scope="module")
def tiny() -> TinyModel:
    model = tiny_model("gemma3", num_layers=6, sliding_window=64)
    model.model.config.max_position_embeddings = 4096  # the synthetic prompts are long in the byte-level tokenizer
    return model


def _full_pass_probability(calibrator: Calibrator, probe, bias: float) -> float:
    """P(answer) from one pass over the whole prompt (no reused prefix), steered by the same generator."""
    frame, answer = calibrator.continuation(probe)
    full = torch.cat([probe.prompt_ids, frame, answer[:, :-1]], dim=1)
    with torch.inference_mode(), calibrator._session(probe, bias, None, 0.0, 0, True):
        logits = calibrator.model(input_ids=full).logits[0, -answer.shape[1] :].float()
    return float(torch.exp(torch.log_softmax(logits, -1).gather(1, answer[0][:, None]).sum()))


@pytest.mark.parametrize("bias", [0.0, 6.0])
def test_a_reused_prefix_scores_exactly_like_a_whole_prompt(tiny: TinyModel, bias: float) -> None:
    calibrator = Calibrator(tiny.model, tiny.tokenizer, SMALL, model_name="tiny-calibration")
    probe = calibrator._probe(calibrator.records(5)[0], 3)
    assert 0 < probe.prefix_length < probe.prompt_ids.shape[1]
    reused = calibrator.score(probe, bias)
    expected = _full_pass_probability(calibrator, probe, bias) if bias else None
    if expected is None:
        frame, answer = calibrator.continuation(probe)
        full = torch.cat([probe.prompt_ids, frame, answer[:, :-1]], dim=1)
        with torch.inference_mode():
            logits = tiny.model(input_ids=full).logits[0, -answer.shape[1] :].float()
        expected = float(torch.exp(torch.log_softmax(logits, -1).gather(1, answer[0][:, None]).sum()))
    assert reused == pytest.approx(expected, rel=1e-3, abs=0)
    if bias:
        assert reused != pytest.approx(calibrator.score(probe, 0.0), rel=1e-3, abs=0), "the bias must change the score"


def test_layer_subsets_are_groups_pairs_and_the_full_attention_layers(tiny: TinyModel) -> None:
    subsets = Calibrator(tiny.model, tiny.tokenizer, SMALL, model_name="tiny-calibration").layer_subsets()
    assert tiny.model.config.layer_types == ["sliding_attention", "full_attention"] * 3  # the tiny model's mix
    assert subsets == {
        "g0": (0, 1),
        "g1": (2, 3),
        "g2": (4, 5),
        "g0+g1": (0, 1, 2, 3),
        "g0+g2": (0, 1, 4, 5),
        "g1+g2": (2, 3, 4, 5),
        "full": (1, 3, 5),  # the layers without a sliding window, which see the whole context
    }


def test_a_model_without_sliding_windows_gets_no_full_attention_subset() -> None:
    llama = tiny_model("llama", num_layers=4)
    subsets = Calibrator(llama.model, llama.tokenizer, SMALL, model_name="tiny-llama").layer_subsets()
    assert "full" not in subsets and set(subsets) == {"g0", "g1", "g2", "g0+g1", "g0+g2", "g1+g2"}


def test_pick_prefers_no_steering_unless_a_bias_clearly_helps_and_then_the_smallest_good_one() -> None:
    assert _pick({0.0: 0.50, 2.0: 0.505, 6.0: 0.50}, 0.01) == 0.0
    assert _pick({0.0: 0.20, 2.0: 0.60, 6.0: 0.604, 8.0: 0.61}, 0.02) == 2.0
    assert _pick({0.0: 0.20, 2.0: 0.40, 6.0: 0.61, 8.0: 0.60}, 0.01) == 6.0


def test_the_guard_halves_a_bias_that_answers_less_and_drops_one_worse_than_not_steering() -> None:
    def by_bias(table: dict[float, float]):
        asked: list[float] = []

        def measure(bias: float) -> float:
            asked.append(bias)
            return table[bias]

        return measure, asked

    # Gemma's late band (budget 12): 5 answers 0.67 with the best band at 0.92; half of it answers 0.75.
    measure, asked = by_bias({2.5: 0.75})
    assert guard_band(5.0, 0.67, 0.08, measure, best=0.92) == (2.5, 0.75) and asked == [2.5]
    # Within 15 points of the best band: left as chosen (one answer in twelve is noise).
    measure, asked = by_bias({})
    assert guard_band(5.0, 0.83, 0.08, measure, best=0.92) == (5.0, 0.83) and asked == []
    # Half answers no more: the chosen bias stays.
    measure, asked = by_bias({4.0: 0.83})
    assert guard_band(8.0, 0.83, 0.0, measure, best=1.0) == (8.0, 0.83) and asked == [4.0]
    # Worse than not steering, and half is no cure: not steered, at the unsteered accuracy already measured.
    measure, asked = by_bias({1.5: 0.3})
    assert guard_band(3.0, 0.38, 0.7, measure, best=0.75) == (0.0, 0.7) and asked == [1.5]
    # Worse than not steering, half better than both: half.
    measure, asked = by_bias({1.5: 0.8})
    assert guard_band(3.0, 0.38, 0.7, measure, best=0.75) == (1.5, 0.8) and asked == [1.5]
    # A band that is not steered is left alone.
    measure, asked = by_bias({})
    assert guard_band(0.0, 0.4, 0.4, measure, best=1.0) == (0.0, 0.4) and asked == []


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="biases"):
        CalibrateConfig(biases=(0.0,))
    with pytest.raises(ConfigurationError, match="num_docs"):
        CalibrateConfig(num_docs=4)


def test_a_run_measures_every_band_and_resumes_without_recomputing(tiny: TinyModel, tmp_path: Path) -> None:
    checkpoint = tmp_path / "calibration.jsonl"
    first = Calibrator(tiny.model, tiny.tokenizer, SMALL, model_name="tiny-calibration", checkpoint=checkpoint)
    run = first.run(progress=False)
    steering = run.profile.steering
    assert steering is not None and set(steering.band_bias) == set(BANDS)
    assert steering.num_layers == 6 and steering.questions == 2 and steering.num_docs == 5
    details = steering.details
    assert set(details["bias_grid"]) == {"1", "2", "3", "4", "5"}
    assert set(details["accuracy_baseline"]) == set(details["accuracy_calibrated"])
    assert set(details["transfer"]["6"]) == {"1", "3", "6"}
    assert run.profile.positions == (1, 2, 3, 4, 5) and run.profile.questions == 2
    assert checkpoint.read_text().count("\n") > 20
    # The tiny Gemma 3 mixes sliding-window and full layers, so the greedy check also ran on the full-attention
    # layers, and the layers kept are the ones whose greedy accuracy the rule prefers.
    greedy = details["greedy_layers"]
    assert set(greedy) == {"chosen", "full"}
    full_wins = greedy["full"] > greedy["chosen"] + SMALL.margin
    by_score = details["layers_by_score"]
    assert steering.attention_layers == ((1, 3, 5) if full_wins else by_score and tuple(by_score))

    calls = []
    handle = tiny.model.register_forward_pre_hook(lambda *_: calls.append(1))
    try:
        again = Calibrator(tiny.model, tiny.tokenizer, SMALL, model_name="tiny-calibration", checkpoint=checkpoint)
        rerun = again.run(progress=False)
    finally:
        handle.remove()
    assert calls == [], "a resumed run recomputes nothing it already measured"
    assert rerun.profile.steering == steering
    other = CalibrateConfig(**{**SMALL.__dict__, "biases": (3.0,)})
    assert (
        Calibrator(tiny.model, tiny.tokenizer, other, model_name="tiny-calibration", checkpoint=checkpoint)._done == {}
    )


def test_the_cli_saves_a_profile_that_steering_then_follows(
    tiny: TinyModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POSRAG_CACHE_DIR", str(tmp_path / "cache"))
    model_dir = tmp_path / "tiny-gemma3"
    tiny.save(model_dir)
    args = ["calibrate", "--model", str(model_dir), "--budget", "1", "--docs", "5", "--biases", "2,6"]
    result = CliRunner().invoke(app, [*args, "--transfer-docs", "", "--no-progress", "--json"])
    assert result.exit_code == 0, result.output
    saved = json.loads(result.stdout)
    profile = model_profile(saved["model"])
    assert Path(saved["path"]).is_file() and profile.steering is not None
    assert isinstance(profile, BiasProfile)
    config = resolve_steering(SteeringConfig(), saved["model"])
    assert not config.needs_calibration
    assert config.attention_bias == profile.steering.attention_bias
    bad = CliRunner().invoke(app, ["calibrate", "--model", str(model_dir), "--biases", "two"])
    assert bad.exit_code != 0 and "--biases takes comma-separated numbers" in bad.output


def test_the_answer_is_scored_after_the_models_own_wording(tiny: TinyModel) -> None:
    calibrator = Calibrator(tiny.model, tiny.tokenizer, SMALL, model_name="tiny-calibration")
    record = calibrator.records(5)[0]
    answer = record.answers[0]
    bare = calibrator._probe(record, 3)
    frame, ids = calibrator.continuation(bare)
    assert tiny.tokenizer.decode(frame[0]).strip() == "" and tiny.tokenizer.decode(ids[0]).strip() == answer
    calibrator._learn_frame(bare, f"In the city of {answer}.")
    framed = calibrator._probe(record, 4)
    frame, ids = calibrator.continuation(framed)
    assert tiny.tokenizer.decode(frame[0]).strip() == "In the city of"
    assert tiny.tokenizer.decode(ids[0]).strip() == answer


def test_a_resumed_checkpoint_never_appends_onto_a_truncated_last_line(tiny: TinyModel, tmp_path: Path) -> None:
    checkpoint = tmp_path / "calibration.jsonl"
    fingerprint = Calibrator(tiny.model, tiny.tokenizer, SMALL, model_name="tiny-calibration")._fingerprint()
    whole = json.dumps({"fingerprint": fingerprint, "key": "before", "value": {"score": 0.5}})
    checkpoint.write_text(whole + "\n" + whole[:25])  # the run was killed in the middle of writing a record
    resumed = Calibrator(tiny.model, tiny.tokenizer, SMALL, model_name="tiny-calibration", checkpoint=checkpoint)
    resumed._record("after", {"score": 0.7})  # what a resumed run's first measurement writes
    lines = checkpoint.read_text().splitlines()
    assert [json.loads(line)["key"] for line in lines] == ["before", "after"]  # before: the record glued to the cut
    again = Calibrator(tiny.model, tiny.tokenizer, SMALL, model_name="tiny-calibration", checkpoint=checkpoint)
    assert set(again._done) == {"before", "after"}
