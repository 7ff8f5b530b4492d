"""The configs of the MLP families (no torch: ``interp train --help`` reads them).

:class:`MLPConfig` is the paper's two-layer MLP, :class:`DeepMLPConfig` the same network
with more hidden layers (:mod:`interp.models.mlp.paper`, :mod:`interp.models.mlp.deep`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ClassVar

from interp.models.config import ModelConfig, setting
from interp.validate import check_bool, check_int, check_positive, fail

WIDTH_HELP = "Hidden width N (the last hidden layer's, for a deep MLP)."
INIT_SCALE_HELP = "Initial weights' scale (the MLPs: std init_scale / (2 N)^(1/3))."
BIAS_HELP = "Biases on every layer (foreign networks; the paper's have none)."


@dataclass(frozen=True, kw_only=True)
class MLPConfig(ModelConfig):
    """The paper's two-layer MLP (no biases unless ``bias``).

    ``act`` is ``"x^K"`` (K a positive integer; ``"x^2"`` is the paper's default) or a
    named activation (:data:`interp.validate.ACT_RE`). Dropout acts on the pre-activation;
    BatchNorm (with scale ``gamma`` and shift ``beta``) acts after the activation; with
    ``bias``, ``b1`` (N,) is added to the pre-activation and ``bW`` (p,) to the logits.
    Weights are drawn from a normal distribution with std ``init_scale / (2 * width) **
    (1/3)``; biases start at 0.
    """

    model: ClassVar[str] = "mlp"
    init_fields: ClassVar[tuple[str, ...]] = ("init_seed", "init_scale")
    width: int = setting(500, WIDTH_HELP)
    batchnorm: bool = setting(False, "BatchNorm after the activation.")
    init_scale: float = setting(0.5, INIT_SCALE_HELP)
    bias: bool = setting(False, BIAS_HELP)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("width", self.width, 1)
        check_bool("bias", self.bias)
        check_bool("batchnorm", self.batchnorm)
        check_positive("init_scale", self.init_scale)

    def to_dict(self) -> dict[str, Any]:
        """The fields without ``model``, and without ``bias`` when it is false: an MLP's
        config reads as in format version 1."""
        return {k: v for k, v in super().to_dict().items()
                if k != "model" and not (k == "bias" and not v)}

    @property
    def n_neurons(self) -> int:
        return self.width

    def tag(self) -> str:
        return f"N{self.width}"

    def batch_statistics(self) -> str | None:
        return "batchnorm (BatchNorm needs two examples to normalize)" if self.batchnorm \
            else None

    def regularizers(self) -> dict[str, str]:
        return super().regularizers() | ({"bn": "BatchNorm"} if self.batchnorm else {})

    def with_batchnorm(self) -> MLPConfig:
        return replace(self, batchnorm=True)


@dataclass(frozen=True, kw_only=True)
class DeepMLPConfig(ModelConfig):
    """``depth`` hidden layers of ``width`` neurons (:mod:`interp.models.mlp.deep`)."""

    model: ClassVar[str] = "deep_mlp"
    init_fields: ClassVar[tuple[str, ...]] = ("init_seed", "init_scale")
    depth: int = setting(2, "Hidden layers of a deep MLP (>= 2).")
    width: int = setting(500, WIDTH_HELP)
    init_scale: float = setting(0.5, INIT_SCALE_HELP)
    bias: bool = setting(False, BIAS_HELP)
    inner_widths: tuple[int, ...] = setting((), "Widths of hidden layers 1..depth-1 of a "
                                                "deep MLP, e.g. 64,32 (default: width).")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("depth", self.depth, 2)
        check_int("width", self.width, 1)
        check_bool("bias", self.bias)
        inner = self.inner_widths
        if not isinstance(inner, (tuple, list)) or (
                inner and (len(inner) != self.depth - 1 or not all(
                    isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in inner))):
            fail("inner_widths", f"empty or {self.depth - 1} integers >= 1 (the widths of "
                 "hidden layers 1..depth-1)", inner)
        object.__setattr__(self, "inner_widths", tuple(inner))
        check_positive("init_scale", self.init_scale)

    @property
    def n_neurons(self) -> int:
        return self.width

    def tag(self) -> str:
        return f"D{self.depth}N{self.width}"

    @property
    def widths(self) -> tuple[int, ...]:
        """The width of every hidden layer, 1..depth."""
        return (self.inner_widths or (self.width,) * (self.depth - 1)) + (self.width,)

    def to_dict(self) -> dict[str, Any]:
        """The fields; ``bias`` and ``inner_widths`` only when they are not the defaults
        (a config without them reads as before they existed)."""
        d = super().to_dict()
        if not d["bias"]:
            del d["bias"]
        if d["inner_widths"]:
            d["inner_widths"] = list(d["inner_widths"])
        else:
            del d["inner_widths"]
        return d
