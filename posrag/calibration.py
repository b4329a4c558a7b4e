"""A model's calibrated steering settings: the attention bias by position band, the layers, and what was measured.

``posrag calibrate`` (:mod:`posrag.bench.calibrate`) measures them on a synthetic calibration set and stores a
:class:`SteeringCalibration` inside the model's :class:`~posrag.profiles.BiasProfile`; ``SteeringConfig()``'s
unset fields follow it (:func:`posrag.steering.config.resolve_steering`).

Bands, in a form that carries over between document counts: the **first** and the **last** document are bands
of their own (p = 0 and p = 1 for any count: a model's primacy and recency effects belong to those documents,
whatever their relative position is called), and the documents between them fall in thirds of the relative
position (``early`` p < 1/3, ``middle`` p < 2/3, ``late``). A band's bias of 0 means "do not steer there":
the calibrated form of ``no_steer_above``, which as a relative threshold (0.9) meant "the last two" of 20
documents but "the last one" of 10.

Pure data, no torch: the core's steering configuration reads it, the benchmark writes it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from posrag._validation import check_number
from posrag.errors import ConfigurationError

Band = Literal["first", "early", "middle", "late", "last"]
BANDS: tuple[Band, ...] = ("first", "early", "middle", "late", "last")
#: The largest attention bias (log scale, added to attention scores) a calibration or a ``SteeringConfig`` may
#: hold: far beyond what helps, small enough that a curve's multiplier (<= 100) keeps every product finite.
MAX_ATTENTION_BIAS = 100.0
#: Step-curve thresholds (p below the threshold → that band): first, early, middle, late; the rest is last.
_EPS = 1e-9
_THRESHOLDS = (_EPS, 1.0 / 3.0, 2.0 / 3.0, 1.0 - _EPS)


def band_of(relative_position: float) -> Band:
    """The band of a document at relative position p (0 = first, 1 = last)."""
    p = float(relative_position)
    for band, threshold in zip(BANDS, _THRESHOLDS, strict=False):
        if p < threshold:
            return band
    return "last"


def probe_positions(num_docs: int) -> tuple[int, ...]:
    """One 1-based position per band for ``num_docs`` documents (5 for 20: 1, 5, 10, 15, 20)."""
    if num_docs < 5:
        raise ConfigurationError(f"Calibration needs >= 5 documents (one per band); got num_docs={num_docs}.")
    n = num_docs - 1
    interior = [1 + round(n * f) for f in (0.21, 0.47, 0.74)]
    return (1, *interior, num_docs)


@dataclass(frozen=True)
class SteeringCalibration:
    """Calibrated attention steering for one model.

    ``band_bias``: the attention bias (log scale, added to attention scores from the question on) per band; 0
    = not steered. ``attention_layers``: the decoder layers the bias acts on (``None`` = all). ``activation_helps``:
    whether activation steering on top added accuracy in the calibration (posrag steers by attention only
    unless it did). ``details``: what was measured (score tables, budget, seconds), kept for the record.
    """

    band_bias: Mapping[str, float]
    attention_layers: tuple[int, ...] | None = None
    num_layers: int | None = None
    activation_helps: bool = False
    questions: int = 0
    num_docs: int | None = None
    details: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.band_bias, Mapping) or set(self.band_bias) != set(BANDS):
            got = sorted(self.band_bias) if isinstance(self.band_bias, Mapping) else self.band_bias
            raise ConfigurationError(f"A calibration's band_bias needs exactly the bands {list(BANDS)}; got {got!r}.")
        object.__setattr__(
            self,
            "band_bias",
            {
                b: check_number(f"Calibration band_bias[{b!r}]", self.band_bias[b], 0.0, MAX_ATTENTION_BIAS)
                for b in BANDS
            },
        )
        if self.attention_layers is not None:
            layers = self.attention_layers
            if (
                isinstance(layers, (str, bytes))
                or not isinstance(layers, Sequence)
                or not layers
                or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in layers)
            ):
                raise ConfigurationError(
                    f"A calibration's attention_layers={layers!r} must be a non-empty list of layer indices (>= 0), "
                    "or null for all layers."
                )
            object.__setattr__(self, "attention_layers", tuple(sorted(set(layers))))
        if not isinstance(self.activation_helps, bool):
            raise ConfigurationError(f"activation_helps={self.activation_helps!r} must be true or false.")

    @property
    def attention_bias(self) -> float:
        """The largest band bias: the steering configuration's ``attention_bias`` (the curve scales it per band)."""
        return max(self.band_bias.values())

    def curve_points(self) -> tuple[tuple[float, float], ...]:
        """A step curve's ``(threshold, multiplier)`` points giving each band its bias as a fraction of
        :attr:`attention_bias` (all zeros when no band is steered)."""
        top = self.attention_bias
        return tuple(
            (threshold, self.band_bias[band] / top if top else 0.0)
            for band, threshold in zip(BANDS, (*_THRESHOLDS, 1.0), strict=True)
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "band_bias": dict(self.band_bias),
            "attention_layers": None if self.attention_layers is None else list(self.attention_layers),
            "num_layers": self.num_layers,
            "activation_helps": self.activation_helps,
            "questions": self.questions,
            "num_docs": self.num_docs,
            "details": dict(self.details),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SteeringCalibration:
        if not isinstance(data, Mapping) or "band_bias" not in data:
            raise ConfigurationError(
                "A profile's 'steering' section must be an object with 'band_bias' (one bias per band: "
                f"{', '.join(BANDS)}); recreate it with `posrag calibrate`."
            )
        layers = data.get("attention_layers")
        return cls(
            band_bias=data["band_bias"],
            attention_layers=None if layers is None else tuple(layers),
            num_layers=None if data.get("num_layers") is None else int(data["num_layers"]),
            activation_helps=data.get("activation_helps", False),
            questions=int(data.get("questions") or 0),
            num_docs=None if data.get("num_docs") is None else int(data["num_docs"]),
            details=dict(data.get("details") or {}),
        )


#: What an uncalibrated model gets (``SteeringConfig()`` with no calibration for the model): a moderate bias
#: everywhere, halved on the last document (the one band where steering cost accuracy in posrag's measurements:
#: the model already reads it well, docs/litm.md).
UNCALIBRATED = SteeringCalibration(
    band_bias={"first": 2.0, "early": 2.0, "middle": 2.0, "late": 2.0, "last": 1.0},
    details={"source": "uncalibrated preset"},
)

__all__ = ["BANDS", "MAX_ATTENTION_BIAS", "UNCALIBRATED", "Band", "SteeringCalibration", "band_of", "probe_positions"]
