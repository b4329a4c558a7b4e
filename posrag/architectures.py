"""Where each model family keeps its decoder layers, attention modules and position encoding.

This is the one place that knows architectures. Everything that hooks a model (steering, activation
recording, retroactive exploration) asks this module instead of testing ``"llama" in name``.
Add a family with :func:`register_architecture`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from torch import nn

from posrag.errors import UnsupportedArchitectureError

PositionEncoding = Literal["rope", "learned"]


@dataclass(frozen=True)
class ArchitectureSpec:
    """How to find the parts of one model family.

    ``layers_path`` and ``attention_attr`` are dotted attribute paths, from the causal-LM model and from
    one decoder layer respectively. ``position_embedding_path`` is set for learned absolute positions
    (GPT-2's ``wpe``); ``max_positions_attr`` names the config attribute with the position limit.
    """

    model_types: tuple[str, ...]
    layers_path: str
    attention_attr: str
    position_encoding: PositionEncoding
    max_positions_attr: str = "max_position_embeddings"
    position_embedding_path: str | None = None


_ROPE_DECODER_TYPES = (
    "llama",
    "mistral",
    "qwen2",
    "qwen3",
    "gemma",
    "gemma2",
    "gemma3_text",
    "phi3",
    "olmo",
    "olmo2",
    "granite",
    "smollm3",
)

_REGISTRY: dict[str, ArchitectureSpec] = {}


def register_architecture(spec: ArchitectureSpec) -> None:
    """Teach posrag a model family (or override a built-in one)."""
    for model_type in spec.model_types:
        _REGISTRY[model_type] = spec


register_architecture(
    ArchitectureSpec(
        model_types=_ROPE_DECODER_TYPES,
        layers_path="model.layers",
        attention_attr="self_attn",
        position_encoding="rope",
    )
)
register_architecture(
    ArchitectureSpec(
        model_types=("gpt2",),
        layers_path="transformer.h",
        attention_attr="attn",
        position_encoding="learned",
        max_positions_attr="n_positions",
        position_embedding_path="transformer.wpe",
    )
)


def supported_model_types() -> list[str]:
    return sorted(_REGISTRY)


def _model_type(model: nn.Module) -> str:
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type is None:
        raise UnsupportedArchitectureError(
            f"{type(model).__name__} has no `config.model_type`; posrag needs a Hugging Face causal LM "
            "(a transformers `PreTrainedModel`)."
        )
    return str(model_type)


def get_spec(model: nn.Module) -> ArchitectureSpec:
    """The :class:`ArchitectureSpec` for ``model``; a clear error naming the fix if it is unknown."""
    model_type = _model_type(model)
    try:
        return _REGISTRY[model_type]
    except KeyError:
        raise UnsupportedArchitectureError(
            f"posrag does not know where model_type={model_type!r} ({type(model).__name__}) keeps its "
            f"decoder layers. Known: {', '.join(supported_model_types())}. Register it with "
            "posrag.architectures.register_architecture(ArchitectureSpec(model_types=("
            f"{model_type!r},), layers_path='model.layers', attention_attr='self_attn', "
            "position_encoding='rope'))."
        ) from None


def _resolve(root: Any, path: str, what: str, model: nn.Module) -> Any:
    obj = root
    for part in path.split("."):
        if not hasattr(obj, part):
            raise UnsupportedArchitectureError(
                f"{type(model).__name__}: expected {what} at `{path}` but `{part}` is missing. If this "
                "model family lays its modules out differently, register an ArchitectureSpec for it."
            )
        obj = getattr(obj, part)
    return obj


def decoder_layers(model: nn.Module) -> Sequence[nn.Module]:
    """The model's decoder layers, in order (index = physical layer index)."""
    layers = _resolve(model, get_spec(model).layers_path, "the decoder layers", model)
    return list(layers)


def attention_modules(model: nn.Module) -> list[nn.Module]:
    """The self-attention module of every decoder layer, in layer order."""
    spec = get_spec(model)
    return [_resolve(layer, spec.attention_attr, "the attention module", model) for layer in decoder_layers(model)]


def num_layers(model: nn.Module) -> int:
    return len(decoder_layers(model))


def hidden_size(model: nn.Module) -> int:
    config = model.config
    for attr in ("hidden_size", "n_embd", "d_model"):
        if getattr(config, attr, None):
            return int(getattr(config, attr))
    raise UnsupportedArchitectureError(f"{type(model).__name__}: cannot find the hidden size in its config.")


def position_encoding(model: nn.Module) -> PositionEncoding:
    return get_spec(model).position_encoding


def max_positions(model: nn.Module) -> int:
    """The largest number of positions the model's position encoding is defined for."""
    value = getattr(model.config, get_spec(model).max_positions_attr, None)
    if value is None:
        raise UnsupportedArchitectureError(
            f"{type(model).__name__}: config has no `{get_spec(model).max_positions_attr}`."
        )
    return int(value)


#: Config attributes that hold a model's maximum number of positions, most common first.
_WINDOW_ATTRS = ("max_position_embeddings", "n_positions", "n_ctx", "max_seq_len", "seq_length", "max_sequence_length")


def context_window(model: nn.Module) -> int | None:
    """The most tokens (prompt + generated) the model has positions for, from its config; ``None`` if unknown.

    Unlike :func:`max_positions` this works for unregistered families too (the common config attributes are
    tried), so that generation can guard any Hugging Face causal LM.
    """
    config = getattr(model, "config", None)
    if config is None:
        return None
    if hasattr(config, "get_text_config"):  # multimodal configs keep the language model's limits apart
        config = config.get_text_config()
    spec = _REGISTRY.get(str(getattr(config, "model_type", "")))
    attrs = (spec.max_positions_attr, *_WINDOW_ATTRS) if spec else _WINDOW_ATTRS
    for attr in attrs:
        value = getattr(config, attr, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def layer_types(model: nn.Module) -> list[str]:
    """Per-layer attention kind (``"full_attention"`` or ``"sliding_attention"``)."""
    types = getattr(model.config, "layer_types", None)
    if types:
        return list(types)
    window = getattr(model.config, "sliding_window", None)
    kind = "sliding_attention" if window and getattr(model.config, "use_sliding_window", True) else "full_attention"
    if model.config.model_type in ("llama", "gpt2", "qwen2"):
        kind = "full_attention"  # these configs may carry a sliding_window that is not used
    return [kind] * num_layers(model)


@dataclass(frozen=True)
class ModelLayout:
    """What planning needs to know of a model's layers, whatever runs it (torch module or GGUF file)."""

    num_layers: int
    hidden_size: int
    layer_types: tuple[str, ...]
    sliding_window: int | None

    def window(self, layer: int) -> int | None:
        """The attention window of ``layer``: the sliding window on sliding layers, ``None`` on full ones."""
        return self.sliding_window if self.layer_types[layer] == "sliding_attention" else None

    @property
    def full_attention_layers(self) -> tuple[int, ...]:
        """The layers whose attention sees the whole context (every layer on a model without sliding windows)."""
        return tuple(layer for layer in range(self.num_layers) if self.window(layer) is None)


def layout(model: nn.Module) -> ModelLayout:
    """The :class:`ModelLayout` of a Hugging Face causal LM."""
    return ModelLayout(num_layers(model), hidden_size(model), tuple(layer_types(model)), sliding_window(model))


def sliding_window(model: nn.Module) -> int | None:
    """The sliding-window length of the model's sliding layers, ``None`` if it has none."""
    if "sliding_attention" not in layer_types(model):
        return None
    window = getattr(model.config, "sliding_window", None)
    return int(window) if window else None


__all__ = [
    "ArchitectureSpec",
    "ModelLayout",
    "PositionEncoding",
    "attention_modules",
    "context_window",
    "decoder_layers",
    "get_spec",
    "hidden_size",
    "layer_types",
    "layout",
    "max_positions",
    "num_layers",
    "position_encoding",
    "register_architecture",
    "sliding_window",
    "supported_model_types",
]
