"""Result files of a sweep: results.csv, results.json, pareto.png and report.md."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from codesign.boards import Board
from codesign.sweep.grid import SweepSpec

RESOURCES = ("lut", "ff", "dsp", "bram_18k", "uram")
RESOURCE_LABELS = {"lut": "LUT", "ff": "FF", "dsp": "DSP", "bram_18k": "BRAM_18K", "uram": "URAM"}
# One row per point. map50 is mAP@0.5 in 0..1 on the val images. Resources are
# estimated counts, and <resource>_percent is the share of the board (None for a
# resource the board lacks). latency_cycles and ii_cycles are clock cycles per
# image, and fps is images per second at the board clock. fits compares every
# resource with margin x the board. verified is None without --verify. seconds
# is the point's share of worker time, because points with the same bit-widths
# share one model.
COLUMNS = (
    "key", "weight_bits", "act_bits", "layer_bits", "strategy", "reuse", "map50",
    *RESOURCES, *(f"{key}_percent" for key in RESOURCES),
    "latency_cycles", "ii_cycles", "fps", "fits", "verified", "project", "seconds", "error", "note",
)


def write_results(out: Path, rows: list[dict], spec: SweepSpec, board: Board) -> None:
    """Write every result file into out, each through a temporary file and a rename."""
    from codesign.sweep.runner import write_json_atomic, write_text_atomic

    if spec.jpeg is not None:
        from codesign.sweep.jpeg_report import write_jpeg_results

        write_jpeg_results(out, rows, spec, board)
        return

    write_json_atomic(out / "results.json", [{key: row.get(key) for key in COLUMNS} for row in rows])
    write_text_atomic(out / "results.csv", format_csv(rows))
    write_text_atomic(out / "report.md", format_markdown(rows, spec, board))
    plot_pareto(rows, board, spec.margin, out / "pareto.png")


def format_csv(rows: list[dict]) -> str:
    """Render one CSV line per row. A fitted reuse dict becomes JSON text, and None an empty cell."""
    return format_csv_columns(rows, COLUMNS)


def format_csv_columns(rows: list[dict], columns: tuple[str, ...]) -> str:
    """Render the given columns of each row as one CSV line, dicts as JSON text and None as an empty cell."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        cells = []
        for key in columns:
            value = row.get(key)
            if isinstance(value, dict):
                value = json.dumps(value, sort_keys=True)
            cells.append("" if value is None else value)
        writer.writerow(cells)
    return buffer.getvalue()


def pareto_front(rows: list[dict], resource: str) -> list[dict]:
    """Return the rows that no other row beats on both mAP (higher) and resource (lower), by resource."""
    candidates = [row for row in rows if row.get(resource) is not None and row.get("map50") is not None]
    candidates.sort(key=lambda row: (row[resource], -row["map50"]))
    front: list[dict] = []
    for row in candidates:
        if not front or row["map50"] > front[-1]["map50"]:
            front.append(row)
    return front


def best_fitting(rows: list[dict]) -> dict | None:
    """Return the fitting row with the highest mAP, or None when none fits.

    Points with the same bit-widths share one mAP, so ties are common. They
    go to the higher fps, then to fewer LUTs.
    """
    fitting = [row for row in rows if row.get("fits")]
    if not fitting:
        return None
    return min(fitting, key=lambda row: (-row["map50"], -row["fps"], row["lut"], row["key"]))


def plot_pareto(rows: list[dict], board: Board, margin: float, path: Path) -> None:
    """Draw mAP against LUT and against DSP, with the Pareto front and the board's capacity."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(13, 5.5), constrained_layout=True)
    for axis, resource in zip(axes, ("lut", "dsp")):
        _plot_panel(axis, rows, board, margin, resource)
    figure.suptitle(f"Bit-width sweep on {board.name}: mAP@0.5 against estimated resources ({len(rows)} points)")
    temporary = path.with_name(f".{path.name}.tmp")
    figure.savefig(temporary, format="png", dpi=110)
    plt.close(figure)
    temporary.replace(path)


def _plot_panel(axis, rows: list[dict], board: Board, margin: float, resource: str) -> None:
    from matplotlib.ticker import FuncFormatter

    label = RESOURCE_LABELS[resource]
    capacity = board.capacity(resource)
    estimated = [row for row in rows if row.get(resource) is not None]
    for fits, marker, name in ((True, "o", "fits"), (False, "x", "does not fit")):
        chosen = [row for row in estimated if bool(row.get("fits")) == fits]
        if chosen:
            axis.scatter([row[resource] for row in chosen], [row["map50"] for row in chosen], marker=marker,
                         color="tab:blue" if fits else "tab:gray", alpha=0.7, label=f"{name} at {margin:.0%}")
    front = pareto_front(estimated, resource)
    if front:
        axis.step([row[resource] for row in front], [row["map50"] for row in front], where="post",
                  color="tab:red", linewidth=1.5)
        axis.scatter([row[resource] for row in front], [row["map50"] for row in front], s=60,
                     facecolors="none", edgecolors="tab:red", linewidths=1.5, label="Pareto front")
        for row in _labelled(front):
            axis.annotate(_short_key(row, rows), (row[resource], row["map50"]), fontsize=7, xytext=(3, 3),
                          textcoords="offset points")
    axis.axvline(capacity, color="black", linewidth=1.2, label=f"{board.name} capacity ({capacity:,})")
    axis.axvline(margin * capacity, color="black", linestyle="--", linewidth=1, label=f"{margin:.0%} of capacity")

    # A logarithmic axis keeps small designs apart when the values span decades. Symlog also
    # shows the designs that use none of the resource, such as DSPs at narrow widths.
    positive = [row[resource] for row in estimated if row[resource] > 0] + [capacity]
    if max(positive) / min(positive) > 50:
        if len(positive) - 1 < len(estimated):
            axis.set_xscale("symlog", linthresh=min(positive))
        else:
            axis.set_xscale("log")
    axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
    axis.set_xlabel(f"{label} (estimate)")
    axis.set_ylabel("mAP@0.5 (val)")
    axis.set_title(f"mAP@0.5 vs {label}")
    axis.margins(x=0.1)
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=8, loc="best")


def _labelled(front: list[dict], max_labels: int = 10) -> list[dict]:
    """Return at most about max_labels front rows, evenly spaced and always with the last one."""
    step = max(1, -(-len(front) // max_labels))
    chosen = front[::step]
    if front[-1] not in chosen:
        chosen.append(front[-1])
    return chosen


def _short_key(row: dict, rows: list[dict]) -> str:
    """Return the row's model key when every row has the same strategy and reuse, else its full key."""
    suffixes = {row_["key"][len(_model_key(row_)):] for row_ in rows}
    return _model_key(row) if len(suffixes) == 1 else row["key"]


def _model_key(row: dict) -> str:
    strategy_start = row["key"].rindex(f"-{row['strategy']}-")
    return row["key"][:strategy_start]


def format_markdown(rows: list[dict], spec: SweepSpec, board: Board) -> str:
    """Render the sweep's settings, the best fitting point, the LUT Pareto front and a table of every point."""
    settings = spec.arguments()
    lines = [
        f"# Bit-width sweep on {board.name}",
        "",
        f"- model: `{settings['model']}`",
        f"- board: {board.name} ({board.part}, {board.clock_mhz:g} MHz)",
        f"- weight bits {_span(spec.weight_bits)}, act bits {_span(spec.act_bits)}"
        + (f", per-layer overrides `{settings['layer_bits']}`" if settings["layer_bits"] else ""),
        f"- strategies {', '.join(spec.strategies)}; reuse factors "
        + ("chosen per point by fit_reuse_factors" if spec.fit else ", ".join(map(str, spec.reuse_factors))),
        f"- mAP@0.5 on {spec.val_images} val images with the Brevitas model; calibration on "
        f"{spec.calibration_images} train images; {spec.finetune_steps} fine-tune steps",
        f"- a point fits when every resource stays under {spec.margin:.0%} of the board",
        "- resources, latency and fps are analytical estimates (codesign.estimate), not synthesis results",
    ]
    if spec.verify:
        lines.append(f"- verified: g++ C simulation of {spec.verify} val images per bit-width combination, "
                     "compared bit for bit with onnxruntime")
    lines += ["", "## Best point that fits", ""]

    best = best_fitting(rows)
    if best is None:
        lines.append(f"No point fits {board.name} under {spec.margin:.0%} of every resource.")
    else:
        lines.append(
            f"`{best['key']}`: mAP@0.5 {best['map50']:.4f}, {_percent(best['lut_percent'])} LUT, "
            f"{_percent(best['dsp_percent'])} DSP, {_percent(best['bram_18k_percent'])} BRAM_18K, "
            f"II {best['ii_cycles']:,} cycles, {best['fps']:,.1f} fps, reuse {_reuse(best['reuse'])}."
        )

    lines += ["", "## Pareto front: mAP@0.5 against LUT", ""]
    lines += _table(pareto_front(rows, "lut"))
    lines += ["", "## All points", "", "![Pareto plot](pareto.png)", ""]
    lines += _table(rows)

    errors = [row for row in rows if row.get("error") or row.get("note")]
    if errors:
        lines += ["", "## Errors and notes", ""]
        lines += [f"- `{row['key']}`: {row.get('error') or row.get('note')}" for row in errors]
    return "\n".join(lines) + "\n"


def _table(rows: list[dict]) -> list[str]:
    header = ["point", "mAP@0.5", "LUT", "FF", "DSP", "BRAM_18K", "URAM", "II", "latency", "fps", "fits",
              "verified", "reuse"]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * 9 + "---|---|---|"]
    for row in rows:
        cells = [
            f"`{row['key']}`",
            f"{row['map50']:.4f}",
            *(_percent(row.get(f"{key}_percent")) for key in RESOURCES),
            _count(row.get("ii_cycles")),
            _count(row.get("latency_cycles")),
            "-" if row.get("fps") is None else f"{row['fps']:,.1f}",
            "yes" if row.get("fits") else "no",
            {None: "-", True: "yes", False: "NO"}[row.get("verified")],
            _reuse(row.get("reuse")),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _span(values: tuple[int, ...]) -> str:
    if len(values) > 1 and list(values) == list(range(values[0], values[-1] + 1)):
        return f"{values[0]}-{values[-1]}"
    return ",".join(map(str, values))


def _percent(value) -> str:
    return "-" if value is None else f"{value:.1f}%"


def _count(value) -> str:
    return "-" if value is None else f"{value:,}"


def _reuse(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        return ", ".join(f"{name}={factor}" for name, factor in value.items())
    return str(value)
