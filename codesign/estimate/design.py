"""Whole-design estimate: per-layer rows, totals, board utilization, II, latency and fps."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from codesign.boards import Board, load_board
from codesign.errors import InputError
from codesign.estimate.costs import DEFAULT_COST_MODEL, CostModel, LayerEstimate, estimate_fifo, estimate_layer
from codesign.estimate.spec import MATMUL_KINDS, LayerSpec, Strategy
from codesign.estimate.sources import load_layer_specs

RESOURCES = ("lut", "ff", "dsp", "bram_18k", "uram")
RESOURCE_LABELS = {"lut": "LUT", "ff": "FF", "dsp": "DSP", "bram_18k": "BRAM_18K", "uram": "URAM"}


@dataclass
class Estimate:
    """Estimated resources and performance of one design on one board.

    ``ii_cycles`` is the slowest dataflow process's cycles per image, which limits
    throughput. ``latency_cycles`` is the time from the first input word to the
    last output word of one image. ``fps`` is images per second at ``clock_mhz``.
    """

    board: str
    part: str
    dsp_slice: str
    clock_mhz: float
    layers: list[LayerEstimate]
    totals: dict[str, int]
    capacity: dict[str, int]
    ii_cycles: int
    latency_cycles: int
    bottleneck: str
    cost_model: CostModel = field(default_factory=CostModel)

    @property
    def fps(self) -> float:
        return self.clock_mhz * 1e6 / self.ii_cycles

    @property
    def latency_us(self) -> float:
        return self.latency_cycles / self.clock_mhz

    @property
    def utilization(self) -> dict[str, float | None]:
        """Percent of the board used per resource, None where the board has none."""
        return {
            key: (100.0 * self.totals[key] / self.capacity[key] if self.capacity[key] else None)
            for key in RESOURCES
        }

    def over_capacity(self, margin: float = 1.0) -> list[str]:
        """Return the resources whose total exceeds margin x the board's capacity."""
        return [key for key in RESOURCES if self.totals[key] > margin * self.capacity[key]]

    def fits(self, margin: float = 1.0) -> bool:
        return not self.over_capacity(margin)

    def layer(self, name: str) -> LayerEstimate:
        for row in self.layers:
            if row.name == name:
                return row
        raise KeyError(name)

    def to_dict(self) -> dict:
        """Return a JSON-serializable mapping of the whole estimate."""
        return {
            "board": self.board,
            "part": self.part,
            "dsp_slice": self.dsp_slice,
            "clock_mhz": self.clock_mhz,
            "ii_cycles": self.ii_cycles,
            "latency_cycles": self.latency_cycles,
            "latency_us": self.latency_us,
            "fps": self.fps,
            "bottleneck": self.bottleneck,
            "totals": dict(self.totals),
            "capacity": dict(self.capacity),
            "utilization_percent": self.utilization,
            "layers": [dataclasses.asdict(row) for row in self.layers],
            "cost_model": dataclasses.asdict(self.cost_model),
        }

    def format_table(self) -> str:
        """Render one Markdown row per layer and FIFO, then totals and percent of the board."""
        header = ["layer", "kind", "template", "R", "mult", "LUT", "FF", "DSP", "BRAM_18K", "URAM",
                  "latency", "II", "notes"]
        lines = [
            "| " + " | ".join(header) + " |",
            "|" + "|".join(["---"] * 3 + ["---:"] * 9 + ["---"]) + "|",
        ]
        for row in self.layers:
            cells = [
                row.name, row.kind, row.template,
                _text(row.reuse_factor), _text(row.multipliers or None),
                f"{row.lut:,}", f"{row.ff:,}", f"{row.dsp:,}", f"{row.bram_18k:,}", f"{row.uram:,}",
                _text(row.latency_cycles), _text(row.ii_cycles), "; ".join(row.notes),
            ]
            lines.append("| " + " | ".join(cells) + " |")

        totals = [f"{self.totals[key]:,}" for key in RESOURCES]
        lines.append(
            "| **total** | | | | | " + " | ".join(totals)
            + f" | {self.latency_cycles:,} | {self.ii_cycles:,} | slowest: {self.bottleneck} |"
        )
        capacity = [f"{self.capacity[key]:,}" for key in RESOURCES]
        lines.append(f"| **{self.board}** | | | | | " + " | ".join(capacity) + " | | | board capacity |")
        percent = [_percent(self.utilization[key]) for key in RESOURCES]
        lines.append("| **% used** | | | | | " + " | ".join(percent) + " | | | |")

        over = ", ".join(RESOURCE_LABELS[key] for key in self.over_capacity())
        summary = (
            f"\nII {self.ii_cycles:,} cycles per image (slowest layer {self.bottleneck}), "
            f"latency {self.latency_cycles:,} cycles = {self.latency_us:,.1f} us, "
            f"{self.fps:,.1f} fps at {self.clock_mhz:g} MHz on {self.board} ({self.part}, {self.dsp_slice})."
        )
        if over:
            summary += f" Over capacity: {over}."
        return "\n".join(lines) + "\n" + summary + "\n"


def _text(value) -> str:
    return "-" if value is None else f"{value:,}"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"


def resolve_board(board: Board | str) -> Board:
    return board if isinstance(board, Board) else load_board(board)


def apply_reuse_factors(specs: list[LayerSpec], reuse_factors: dict[str, int] | None) -> list[LayerSpec]:
    """Return specs with the given per-layer reuse factors; raise InputError for an unknown layer."""
    if not reuse_factors:
        return specs
    tunable = {spec.name for spec in specs if spec.kind in MATMUL_KINDS}
    unknown = sorted(set(reuse_factors) - tunable)
    if unknown:
        raise InputError(
            f"reuse factor given for {', '.join(unknown)}, which is not a dense or convolution layer; "
            f"layers with a reuse factor: {', '.join(sorted(tunable)) or 'none'}"
        )
    updated = []
    for spec in specs:
        if spec.name in reuse_factors:
            reuse = reuse_factors[spec.name]
            if isinstance(reuse, bool) or not isinstance(reuse, int) or reuse < 1:
                raise InputError(f"layer {spec.name!r}: reuse factor must be a positive integer, got {reuse!r}")
            spec = spec.with_reuse_factor(reuse)
        updated.append(spec)
    return updated


def apply_strategy(specs: list[LayerSpec], strategy: Strategy | str | None) -> list[LayerSpec]:
    """Return specs with every dense and convolution layer set to strategy; None keeps them."""
    if strategy is None:
        return specs
    try:
        strategy = Strategy(str(strategy).lower())
    except ValueError:
        raise InputError(f"unknown strategy {strategy!r}; expected latency or resource") from None
    return [dataclasses.replace(spec, strategy=strategy) if spec.kind in MATMUL_KINDS else spec for spec in specs]


def estimate(
    source,
    board: Board | str,
    *,
    reuse_factors: dict[str, int] | None = None,
    strategy: Strategy | str | None = None,
    cost_model: CostModel = DEFAULT_COST_MODEL,
) -> Estimate:
    """Estimate the resources, II, latency and fps of an hls4ml io_stream design on a board.

    ``source`` is an hls4ml ``ModelGraph``, a ``LoweredModel``, a project folder
    written by ``codesign convert``, a QONNX ``.onnx`` file, a detector checkpoint,
    None for the bundled detector, or a list of ``LayerSpec``. ``board`` is a
    ``Board`` or a board name or YAML path. ``strategy`` (latency or resource)
    replaces the strategy of every dense and convolution layer, and
    ``reuse_factors`` the reuse factor of the named ones.
    """
    board = resolve_board(board)
    specs = load_layer_specs(source, board)
    specs = apply_strategy(specs, strategy)
    specs = apply_reuse_factors(specs, reuse_factors)
    return estimate_specs(specs, board, cost_model)


def estimate_specs(specs: list[LayerSpec], board: Board, cost_model: CostModel = DEFAULT_COST_MODEL) -> Estimate:
    """Estimate a design given as layer specs, in dataflow order."""
    if not specs:
        raise InputError("the model has no layers to estimate")
    rows: list[LayerEstimate] = []
    processes: list[LayerEstimate] = []
    for spec in specs:
        row = estimate_layer(spec, board.dsp_slice, board.clock_mhz, cost_model)
        rows.append(row)
        processes.append(row)
        fifo = estimate_fifo(spec, cost_model)
        if fifo is not None:
            rows.append(fifo)
    return assemble_estimate(rows, processes, board, cost_model)


def assemble_estimate(rows: list[LayerEstimate], processes: list[LayerEstimate], board: Board,
                      cost_model: CostModel) -> Estimate:
    """Sum the rows and derive the design's II and latency from the dataflow processes."""
    totals = {key: sum(getattr(row, key) for row in rows) for key in RESOURCES}
    capacity = {key: board.capacity(key) for key in RESOURCES}
    slowest = max(processes, key=lambda row: row.ii_cycles)
    return Estimate(
        board=board.name,
        part=board.part,
        dsp_slice=str(board.dsp_slice),
        clock_mhz=float(board.clock_mhz),
        layers=rows,
        totals=totals,
        capacity=capacity,
        ii_cycles=slowest.ii_cycles,
        latency_cycles=dataflow_latency(processes),
        bottleneck=slowest.name,
        cost_model=cost_model,
    )


def dataflow_latency(processes: list[LayerEstimate]) -> int:
    """Return the cycles from the first input word to the last output word of one image.

    A process starts when its producer's first output arrives. It ends either at
    its own pace (start + its cycles) or when its producer ends plus its drain
    time, whichever is later.
    """
    start = 0
    end = 0
    previous: LayerEstimate | None = None
    for row in processes:
        if previous is None:
            end = row.latency_cycles
        else:
            start += previous.first_output_cycles
            end = max(start + row.latency_cycles, end + row.drain_cycles)
        previous = row
    return end
