"""``posrag calibrate``: measure the steering settings and the position curve that suit a model; save one profile."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from posrag.cli._common import fail
from posrag.errors import PosragError


def register(app: typer.Typer) -> None:
    app.command("calibrate")(calibrate)


_WRITABLE_HINT = "pass --out to a writable file, or set POSRAG_CACHE_DIR to a writable folder"


def _floats(text: str, option: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise typer.BadParameter(f"{option} takes comma-separated numbers; got {text!r}.") from None


def calibrate(
    model: Annotated[
        str | None, typer.Option(help="LLM: default packaged Gemma 3 270M, or a local path / .gguf.")
    ] = None,
    budget: Annotated[int, typer.Option(help="Calibration questions (per probe position).", min=1)] = 12,
    docs: Annotated[int, typer.Option(help="Documents per calibration prompt.", min=5, max=40)] = 20,
    biases: Annotated[str, typer.Option(help="Attention biases to try, comma-separated.")] = "1,2,3,5,8",
    layer_groups: Annotated[int, typer.Option(help="Contiguous layer groups to try alone and in pairs.", min=1)] = 3,
    transfer_docs: Annotated[str, typer.Option(help="Document counts to check the band rule on ('' = none).")] = "10",
    chat_template: Annotated[str, typer.Option(help="auto | on | off: prompts through the chat template.")] = "auto",
    out: Annotated[
        Path | None,
        typer.Option(help="Where to save the profile (default: posrag's cache, profiles/<model>.json)."),
    ] = None,
    resume: Annotated[bool, typer.Option(help="Reuse what an interrupted run with the same settings measured.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the profile as JSON.")] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Measure, on synthetic calibration questions, which attention bias helps at each position band (first,
    early, middle, late, last), on which layers, and whether activation steering adds anything; save them with
    the model's position curve as its profile. SteeringConfig() then uses these settings for this model (a
    profile you measure takes precedence over one shipped with posrag). About 10 minutes for the packaged
    Gemma 3 270M on 2 CPU cores at the default budget; see docs/calibration.md.
    """
    from posrag._files import check_writable
    from posrag.bench.calibrate import CalibrateConfig, Calibrator
    from posrag.models import cache_dir, load_causal_lm
    from posrag.profiles import model_identity, profile_path, save_profile

    try:
        transfer = tuple(int(x) for x in transfer_docs.split(",") if x.strip())
    except ValueError:
        raise typer.BadParameter(f"--transfer-docs takes comma-separated integers; got {transfer_docs!r}.") from None
    try:
        config = CalibrateConfig(
            questions=budget,
            num_docs=docs,
            biases=_floats(biases, "--biases"),
            layer_groups=layer_groups,
            transfer_docs=transfer,
            chat_template=chat_template,
        )
        lm = load_causal_lm(model, progress=progress)
        # Where the result goes must be writable before minutes of measuring, not found out at the final save.
        check_writable((out or profile_path(lm.name)).parent, hint=_WRITABLE_HINT)
        calibration_dir = cache_dir() / "calibration"
        checkpoint = calibration_dir / f"{model_identity(lm.name).key}.jsonl" if resume else None
        if checkpoint is not None:
            check_writable(calibration_dir, hint=_WRITABLE_HINT)
        run = Calibrator(lm.model, lm.tokenizer, config, model_name=lm.name, checkpoint=checkpoint).run(
            progress=progress
        )
        path = save_profile(run.profile, out)
    except PosragError as exc:
        raise fail(exc) from None
    profile = run.profile
    steering = profile.steering
    assert steering is not None
    if as_json:
        typer.echo(json.dumps({**profile.to_dict(), "path": str(path)}, indent=2))
        return
    details = steering.details
    typer.echo(
        f"Model: {profile.model} ({steering.num_layers} layers); {budget} calibration questions, {run.seconds:.0f} s"
    )
    typer.echo("Attention bias by band: " + ", ".join(f"{b} {v:g}" for b, v in steering.band_bias.items()))
    layers = "all" if steering.attention_layers is None else list(steering.attention_layers)
    typer.echo(f"Layers: {layers}; activation steering on top helps: {'yes' if steering.activation_helps else 'no'}")
    base, tuned = details["accuracy_baseline"], details["accuracy_calibrated"]
    typer.echo(
        "Accuracy on the calibration questions, no steering -> calibrated: "
        + ", ".join(f"{p}: {100 * base[p]:.0f}->{100 * tuned[p]:.0f}%" for p in base)
    )
    typer.echo(f"Position bias: {profile.shape()}; recommended reorder strategy: {profile.reorder_strategy()}")
    typer.echo(f"Saved to {path}")
