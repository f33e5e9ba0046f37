"""Choose per-layer reuse factors that fit a board with the highest estimated fps."""

from __future__ import annotations

import math
from dataclasses import dataclass

from codesign.boards import Board
from codesign.errors import InputError
from codesign.estimate.costs import DEFAULT_COST_MODEL, CostModel, LayerEstimate, estimate_fifo, estimate_layer
from codesign.estimate.design import RESOURCE_LABELS, RESOURCES, apply_strategy, resolve_board
from codesign.estimate.sources import load_layer_specs
from codesign.estimate.spec import MATMUL_KINDS, LayerSpec, Strategy, resource_reuse_factor_valid

# Reweighting rounds per target II, and the factor applied to an over-budget
# resource's weight in each round.
_REWEIGHT_ROUNDS = 12
_REWEIGHT_FACTOR = 4.0


class DesignDoesNotFitError(InputError):
    """Error raised when no choice of reuse factors fits the board. ``resource`` names the limiting resource."""

    def __init__(self, message: str, resource: str, required: int, allowed: float):
        super().__init__(message)
        self.resource = resource
        self.required = required
        self.allowed = allowed


def valid_reuse_factors(n_in: int, n_out: int, strategy: Strategy | str) -> list[int]:
    """Return the reuse factors that the fitter tries for an n_in x n_out kernel.

    Resource strategy: those that hls4ml 1.3.0 accepts (``resource_reuse_factor_valid``).
    Latency strategy: hls4ml checks nothing, so the divisors of n_in x n_out are
    used, which share every multiplier equally.
    """
    products = n_in * n_out
    divisors = [reuse for reuse in range(1, products + 1) if products % reuse == 0]
    if Strategy(strategy) is Strategy.LATENCY:
        return divisors
    return [reuse for reuse in divisors if resource_reuse_factor_valid(n_in, n_out, reuse)]


@dataclass
class _Option:
    reuse_factor: int
    ii_cycles: int
    usage: tuple[int, ...]


def fit_reuse_factors(
    source,
    board: Board | str,
    margin: float = 0.8,
    *,
    strategy: Strategy | str | None = None,
    cost_model: CostModel = DEFAULT_COST_MODEL,
) -> dict[str, int]:
    """Choose a reuse factor per dense and convolution layer that fits margin x the board.

    The design's throughput is set by its slowest layer, so the search walks
    candidate II targets from fastest to slowest. For each target, every layer
    takes the cheapest valid reuse factor that meets it, where "cheapest" weighs
    each resource by its budget. Resources that stay over budget get a heavier
    weight and the choice is repeated. The first target that fits is returned,
    which gives the highest estimated fps that this search finds. ``strategy``
    (latency or resource) replaces the strategy of every dense and convolution
    layer first, as in ``estimate``.

    Raises DesignDoesNotFitError, an InputError, naming the limiting resource when
    no choice fits, for example when the FIFOs alone exceed the block RAM budget.
    """
    if not 0 < margin <= 1:
        raise InputError(f"margin must be in (0, 1], got {margin}")
    board = resolve_board(board)
    specs = apply_strategy(load_layer_specs(source, board), strategy)
    budget = tuple(margin * board.capacity(key) for key in RESOURCES)

    fixed_usage = [0] * len(RESOURCES)
    fixed_ii = 0
    tunable: list[tuple[LayerSpec, list[_Option]]] = []
    for spec in specs:
        fifo = estimate_fifo(spec, cost_model)
        if fifo is not None:
            _add(fixed_usage, fifo)
        if spec.kind in MATMUL_KINDS:
            tunable.append((spec, _options(spec, board, cost_model)))
        else:
            row = estimate_layer(spec, board.dsp_slice, board.clock_mhz, cost_model)
            _add(fixed_usage, row)
            fixed_ii = max(fixed_ii, row.ii_cycles)

    latency_layers = [spec.name for spec, _ in tunable if spec.strategy is Strategy.LATENCY]
    _check_lower_bounds(fixed_usage, tunable, budget, board, margin, latency_layers)

    layer_targets = {option.ii_cycles for _, options in tunable for option in options}
    targets = sorted({fixed_ii} | {ii for ii in layer_targets if ii >= fixed_ii})
    last_totals = None
    for target in targets:
        choice, totals = _choose(fixed_usage, tunable, budget, target)
        if choice is None:
            continue
        last_totals = totals
        if all(total <= limit for total, limit in zip(totals, budget)):
            return {spec.name: option.reuse_factor for (spec, _), option in zip(tunable, choice)}
    _raise_no_fit(last_totals or fixed_usage, budget, board, margin)


def _options(spec: LayerSpec, board: Board, cost_model: CostModel) -> list[_Option]:
    options = []
    for reuse in valid_reuse_factors(spec.n_in, spec.n_out, spec.strategy):
        row = estimate_layer(spec.with_reuse_factor(reuse), board.dsp_slice, board.clock_mhz, cost_model)
        options.append(_Option(reuse, row.ii_cycles, tuple(getattr(row, key) for key in RESOURCES)))
    return options


def _add(usage: list[int], row: LayerEstimate) -> None:
    for index, key in enumerate(RESOURCES):
        usage[index] += getattr(row, key)


def _choose(fixed_usage, tunable, budget, target):
    """Pick one option per layer with II <= target and return the choice with its totals."""
    weights = [1.0 / limit if limit > 0 else 1e12 for limit in budget]
    best = None
    for _ in range(_REWEIGHT_ROUNDS):
        choice = []
        for _, options in tunable:
            allowed = [option for option in options if option.ii_cycles <= target]
            if not allowed:
                return None, None
            choice.append(min(allowed, key=lambda option: sum(w * u for w, u in zip(weights, option.usage))))
        totals = list(fixed_usage)
        for option in choice:
            totals = [total + used for total, used in zip(totals, option.usage)]
        best = (choice, totals)
        over = [index for index, (total, limit) in enumerate(zip(totals, budget)) if total > limit]
        if not over:
            break
        for index in over:
            weights[index] *= _REWEIGHT_FACTOR
    return best


def _check_lower_bounds(fixed_usage, tunable, budget, board: Board, margin: float, latency_layers: list[str]) -> None:
    """Raise when a resource is over budget even with each layer at its own minimum of it."""
    worst = None
    for index, key in enumerate(RESOURCES):
        minimum = fixed_usage[index] + sum(min(option.usage[index] for option in options) for _, options in tunable)
        if minimum > budget[index]:
            ratio = math.inf if budget[index] == 0 else minimum / budget[index]
            if worst is None or ratio > worst[0]:
                worst = (ratio, key, minimum, fixed_usage[index])
    if worst is None:
        return
    _, key, minimum, fixed = worst
    label = RESOURCE_LABELS[key]
    allowed = budget[RESOURCES.index(key)]
    message = (
        f"the design does not fit {board.name} at any reuse factor: {label} needs at least {minimum:,}, "
        f"but {margin:.0%} of the board's {board.capacity(key):,} is {allowed:,.0f}. "
        f"{fixed:,} of it is fixed by FIFOs, activations, padding and pooling"
    )
    if key == "bram_18k":
        message += "; shrink the FIFO depths (hls4ml sets each to one image's pixel count) or pick a larger board"
    elif key == "lut" and latency_layers:
        message += (
            f". The Latency strategy of {', '.join(latency_layers)} keeps one adder per product at every reuse "
            "factor; try the Resource strategy, a larger board or narrower types"
        )
    else:
        message += "; pick a larger board or narrower types"
    raise DesignDoesNotFitError(message, resource=label, required=minimum, allowed=allowed)


def _raise_no_fit(totals, budget, board: Board, margin: float):
    ratios = [
        (total / limit if limit > 0 else math.inf, index)
        for index, (total, limit) in enumerate(zip(totals, budget))
        if total > limit
    ]
    _, index = max(ratios) if ratios else (0, 0)
    key = RESOURCES[index]
    label = RESOURCE_LABELS[key]
    message = (
        f"no combination of reuse factors found that fits {board.name}: {label} stays at {totals[index]:,} "
        f"against {budget[index]:,.0f} ({margin:.0%} of {board.capacity(key):,}); pick a larger board or narrower types"
    )
    raise DesignDoesNotFitError(message, resource=label, required=totals[index], allowed=budget[index])
