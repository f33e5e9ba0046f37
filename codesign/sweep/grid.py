"""The sweep's parameters: option parsing, the grid of points and their keys.

A point is one (weight bits, act bits, strategy, reuse factor) combination,
with the per-layer overrides that every point of a sweep shares. Points with
the same bit-widths share one quantized model, so the runner groups them into
one ``ModelGroup`` and computes the model once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from codesign.errors import InputError

MIN_BITS = 1
MAX_BITS = 16
STRATEGIES = ("latency", "resource")

_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")
_LAYER_BITS = re.compile(r"^([a-z][a-z0-9_]*)=(\d*)(?::(\d*))?$")


def parse_bits(text: str, option: str) -> tuple[int, ...]:
    """Parse a bit-width list such as ``2-8``, ``6`` or ``2,4,8`` into sorted distinct values.

    Raises InputError for a descending range or a width outside 1..16.
    """
    values: set[int] = set()
    for part in str(text).split(","):
        part = part.strip()
        match = _RANGE.match(part)
        if not match:
            raise InputError(f"{option} {text!r}: expected a width or a range such as 2-8, got {part!r}")
        low = int(match.group(1))
        high = int(match.group(2)) if match.group(2) is not None else low
        if low > high:
            raise InputError(f"{option} {text!r}: range {part} is descending; write it as {high}-{low}")
        for bits in (low, high):
            if not MIN_BITS <= bits <= MAX_BITS:
                raise InputError(f"{option} {text!r}: {bits} bits is outside {MIN_BITS}..{MAX_BITS}")
        values.update(range(low, high + 1))
    return tuple(sorted(values))


def parse_reuse_factors(text: str) -> tuple[int, ...]:
    """Parse ``--reuse-factors 1,2,4`` into distinct positive integers in the given order."""
    values: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part.isdigit() or int(part) < 1:
            raise InputError(f"--reuse-factors {text!r}: {part!r} is not a positive integer")
        if int(part) not in values:
            values.append(int(part))
    return tuple(values)


def parse_strategies(text: str) -> tuple[str, ...]:
    """Parse ``--strategy latency,resource`` into distinct hls4ml strategy names."""
    values: list[str] = []
    for part in str(text).split(","):
        name = part.strip().lower()
        if name not in STRATEGIES:
            raise InputError(f"--strategy {text!r}: unknown strategy {part.strip()!r}; expected latency or resource")
        if name not in values:
            values.append(name)
    return tuple(values)


def parse_layer_bits(items: list[str] | tuple[str, ...]) -> tuple[dict[str, int], dict[str, int]]:
    """Parse ``--layer-bits`` values ``NAME=W:A`` into (weight bits, act bits) per layer.

    Either width may be left out: ``conv0=8:`` or ``conv0=8`` sets only the
    weights, ``conv0=:4`` only the activations. Several overrides may be
    given comma-separated or by repeating the option.
    """
    weight_bits: dict[str, int] = {}
    act_bits: dict[str, int] = {}
    for item in items:
        for part in str(item).split(","):
            part = part.strip()
            match = _LAYER_BITS.match(part)
            if not match or (not match.group(2) and not match.group(3)):
                raise InputError(
                    f"--layer-bits {part!r}: expected NAME=W:A such as conv0=8:8 (either width may be omitted)"
                )
            name = match.group(1)
            for text, target, kind in ((match.group(2), weight_bits, "weight"), (match.group(3), act_bits, "act")):
                if not text:
                    continue
                bits = int(text)
                if not MIN_BITS <= bits <= MAX_BITS:
                    raise InputError(f"--layer-bits {part!r}: {kind} width {bits} is outside {MIN_BITS}..{MAX_BITS}")
                if name in target and target[name] != bits:
                    raise InputError(f"--layer-bits: {kind} width of {name} given twice ({target[name]} and {bits})")
                target[name] = bits
    return weight_bits, act_bits


def format_layer_bits(weight_bits: dict[str, int], act_bits: dict[str, int]) -> str:
    """Render per-layer overrides in the ``--layer-bits`` syntax, sorted by layer: ``conv0=8:8,head=8:``."""
    names = sorted(set(weight_bits) | set(act_bits))
    return ",".join(f"{name}={weight_bits.get(name, '')}:{act_bits.get(name, '')}" for name in names)


def check_layer_names(weight_bits: dict[str, int], act_bits: dict[str, int], conv_names: list[str]) -> None:
    """Raise InputError for an override of a layer the detector lacks, or of the head's activations.

    The detection head has no output quantizer, so it has weight bits only.
    """
    known = [*conv_names, "head"]
    for name in sorted(set(weight_bits) | set(act_bits)):
        if name not in known:
            raise InputError(f"--layer-bits: the detector has no layer {name!r}; its layers are {', '.join(known)}")
    if "head" in act_bits:
        raise InputError("--layer-bits: the head has no activation quantizer; give its weight width only, as head=8")


@dataclass(frozen=True)
class Point:
    """One sweep point. ``reuse_factor`` is None when ``fit_reuse_factors`` chooses them."""

    weight_bits: int
    act_bits: int
    strategy: str
    reuse_factor: int | None
    layer_weight_bits: tuple[tuple[str, int], ...] = ()
    layer_act_bits: tuple[tuple[str, int], ...] = ()

    @property
    def model_key(self) -> str:
        """Key of the quantized model, shared by every point with these bit-widths."""
        key = f"w{self.weight_bits}a{self.act_bits}"
        weights, acts = dict(self.layer_weight_bits), dict(self.layer_act_bits)
        for name in sorted(set(weights) | set(acts)):
            key += f"-{name}"
            key += f"w{weights[name]}" if name in weights else ""
            key += f"a{acts[name]}" if name in acts else ""
        return key

    @property
    def key(self) -> str:
        """File-name-safe key from every parameter of the point, such as ``w6a6-latency-r1``."""
        reuse = "fit" if self.reuse_factor is None else f"r{self.reuse_factor}"
        return f"{self.model_key}-{self.strategy}-{reuse}"


@dataclass(frozen=True)
class SweepSpec:
    """Everything that determines a sweep's results.

    ``reuse_factors`` is None when ``fit`` is set. ``model_digest`` is the
    SHA-256 of the checkpoint file, so a replaced checkpoint counts as new
    arguments. ``board_digest`` does the same for the board description.
    """

    model: str
    model_digest: str
    board: str
    board_digest: str
    weight_bits: tuple[int, ...]
    act_bits: tuple[int, ...]
    layer_weight_bits: dict[str, int] = field(default_factory=dict)
    layer_act_bits: dict[str, int] = field(default_factory=dict)
    strategies: tuple[str, ...] = ("latency",)
    reuse_factors: tuple[int, ...] | None = (1,)
    fit: bool = False
    margin: float = 0.8
    val_images: int = 500
    calibration_images: int = 256
    finetune_steps: int = 0
    verify: int = 0
    # The JPEG grid (codesign.sweep.jpeg.JpegAxes); it replaces the bit-width grid when set.
    jpeg: object | None = None

    def __post_init__(self) -> None:
        if not self.weight_bits or not self.act_bits:
            raise InputError("the sweep needs at least one weight width and one act width")
        if self.fit == (self.reuse_factors is not None):
            raise InputError("give either --reuse-factors or --fit, not both")
        if not 0 < self.margin <= 1:
            raise InputError(f"--margin must be in (0, 1], got {self.margin}")
        if self.val_images < 1:
            raise InputError(f"--val-images must be at least 1, got {self.val_images}")
        if self.calibration_images < 1:
            raise InputError(f"--calibration-images must be at least 1, got {self.calibration_images}")
        if self.finetune_steps < 0:
            raise InputError(f"--finetune-steps must be at least 0, got {self.finetune_steps}")
        if self.verify < 0:
            raise InputError(f"--verify must be at least 0, got {self.verify}")

    def points(self) -> list[Point]:
        """Return every point in grid order: weight bits, act bits, strategy, reuse factor.

        A JPEG sweep returns its raw RGB point, then its stream formats.
        """
        if self.jpeg is not None:
            return self.jpeg.points()
        overrides = {
            "layer_weight_bits": tuple(sorted(self.layer_weight_bits.items())),
            "layer_act_bits": tuple(sorted(self.layer_act_bits.items())),
        }
        reuse_axis = (None,) if self.fit else self.reuse_factors
        return [
            Point(weight, act, strategy, reuse, **overrides)
            for weight in self.weight_bits
            for act in self.act_bits
            for strategy in self.strategies
            for reuse in reuse_axis
        ]

    def settings(self) -> dict:
        """Return the arguments that every point's values depend on but its key does not show."""
        jpeg = self.jpeg.settings() if self.jpeg is not None else {}
        return jpeg | {
            "model": self.model,
            "model_sha256": self.model_digest,
            "board": self.board,
            "board_sha256": self.board_digest,
            "margin": self.margin,
            "val_images": self.val_images,
            "calibration_images": self.calibration_images,
            "finetune_steps": self.finetune_steps,
            "verify": self.verify,
        }

    def arguments(self) -> dict:
        """Return the settings and the grid axes, as recorded in sweep.json."""
        return self.settings() | {
            "layer_bits": format_layer_bits(self.layer_weight_bits, self.layer_act_bits),
            "weight_bits": list(self.weight_bits),
            "act_bits": list(self.act_bits),
            "strategies": list(self.strategies),
            "reuse_factors": None if self.reuse_factors is None else list(self.reuse_factors),
            "fit": self.fit,
        } | (self.jpeg.arguments() if self.jpeg is not None else {})
