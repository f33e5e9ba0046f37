"""Result files of a JPEG sweep: results.csv, results.json, pareto.png and report.md."""

from __future__ import annotations

from pathlib import Path

from codesign.boards import Board

RESOURCES = ("lut", "ff", "dsp", "bram_18k")
# One row per point. bytes_per_image is the mean frame size in bytes (2-byte
# length field plus payload; raw RGB: H x W x 3), ratio is raw RGB bytes over
# it, and map50 is mAP@0.5 in 0..1 on the val images (after fine-tuning when
# finetune_epochs > 0; map50_before_finetune is the checkpoint's).
# map_change_points is 100 x (map50 - raw RGB map50). frontend_* are
# estimated resources of the decoder layer and their share of the board.
# decoder_cycles and cnn_cycles are estimated cycles per image, and the fps
# columns are the throughput model, the slowest rate named by bottleneck.
JPEG_COLUMNS = (
    "key", "format", "quality", "tables", "subsampling", "bytes_per_image", "max_bytes", "ratio",
    "map50", "map50_before_finetune", "map_change_points", "finetune_epochs", "finetune_loss",
    *(f"frontend_{key}" for key in RESOURCES), *(f"frontend_{key}_percent" for key in RESOURCES),
    "decoder_cycles", "cnn_cycles", "cnn_lut_percent", "link_fps", "decoder_fps", "cnn_fps", "fps", "bottleneck",
    "checkpoint", "seconds", "error",
)


def add_map_change(rows: list[dict]) -> None:
    """Set each row's map_change_points against the raw RGB row, in place."""
    from codesign.sweep.jpeg import RAW_KEY

    raw = next((row for row in rows if row["key"] == RAW_KEY), None)
    for row in rows:
        if raw is not None and row.get("map50") is not None:
            row["map_change_points"] = 100.0 * (row["map50"] - raw["map50"])


def best_ratio(rows: list[dict], max_loss_points: float) -> dict | None:
    """Return the compressed row with the largest ratio whose mAP is at most max_loss_points below raw RGB."""
    from codesign.sweep.jpeg import RAW_KEY

    within = [row for row in rows if row["key"] != RAW_KEY and row.get("map_change_points") is not None
              and -row["map_change_points"] <= max_loss_points]
    return max(within, key=lambda row: (row["ratio"], row["map50"]), default=None)


def summary_lines(rows: list[dict], board: Board) -> list[str]:
    """Return the lines that the CLI prints and report.md opens with: best ratio and front-end share."""
    from codesign.sweep.jpeg import MAX_MAP_LOSS_POINTS, RAW_KEY

    raw = next((row for row in rows if row["key"] == RAW_KEY), None)
    best = best_ratio(rows, MAX_MAP_LOSS_POINTS)
    lines = []
    if raw is not None:
        lines.append(f"raw RGB: {raw['bytes_per_image']:,.0f} bytes per image, mAP@0.5 {raw['map50']:.4f}, "
                     f"{raw['fps']:,.0f} fps (limited by the {raw['bottleneck']})")
    if best is None:
        lines.append(f"no JPEG format stays within {MAX_MAP_LOSS_POINTS} points of the raw RGB mAP@0.5")
    else:
        lines.append(
            f"best ratio within {MAX_MAP_LOSS_POINTS} points of mAP@0.5: {best['ratio']:.1f}x ({best['key']}, "
            f"{best['bytes_per_image']:,.0f} bytes, mAP@0.5 {best['map50']:.4f}, {best['map_change_points']:+.2f} "
            f"points, {best['fps']:,.0f} fps limited by the {best['bottleneck']})"
        )
    shares = [row["frontend_lut_percent"] for row in rows if row.get("frontend_lut_percent") is not None]
    if shares:
        lines.append(f"front-end LUTs: at most {max(shares):.2f}% of {board.name} ({board.part}), estimate")
    return lines


def write_jpeg_results(out: Path, rows: list[dict], spec, board: Board) -> None:
    """Write every result file into out, each through a temporary file and a rename."""
    from codesign.sweep.report import format_csv_columns
    from codesign.sweep.runner import write_json_atomic, write_text_atomic

    add_map_change(rows)
    write_json_atomic(out / "results.json", [{key: row.get(key) for key in JPEG_COLUMNS} for row in rows])
    write_text_atomic(out / "results.csv", format_csv_columns(rows, JPEG_COLUMNS))
    write_text_atomic(out / "report.md", format_markdown(rows, spec, board))
    plot_formats(rows, board, out / "pareto.png")


def format_markdown(rows: list[dict], spec, board: Board) -> str:
    """Render the sweep's settings, the summary and one table row per format."""
    axes = spec.jpeg
    finetune = (
        f"fine-tuned for {axes.finetune_epochs} epochs on "
        f"{'all' if axes.finetune_images is None else axes.finetune_images} train images per format "
        "(JPEG-coded in that format)"
        if axes.finetune_epochs else "the checkpoint as it is, without fine-tuning"
    )
    lines = [
        f"# JPEG front-end sweep on {board.name}",
        "",
        f"- model: `{spec.model}` (w{spec.weight_bits[0]}a{spec.act_bits[0]})",
        f"- board: {board.name} ({board.part}, {board.clock_mhz:g} MHz, host link {board.host_link.kind} "
        f"{board.host_link.bandwidth_mb_s:g} MB/s)",
        f"- mAP@0.5 on {spec.val_images} val images, JPEG-coded, decoded by the bit-exact decoder model and run "
        f"through the Brevitas model: {finetune}",
        "- bytes per image are frame bytes (2-byte length field plus payload), the mean over the val images",
        "- front-end resources, cycles and fps are analytical estimates (codesign.estimate.jpeg and "
        f"codesign.estimate, strategy {axes.strategy}, reuse factor {axes.reuse_factor or 'fitted'}), "
        "not synthesis results",
        "- fps = min(host link bandwidth / bytes per image, decoder rate, CNN rate)",
        "",
        "## Summary",
        "",
        *(f"- {line}" for line in summary_lines(rows, board)),
        "",
        "## All points",
        "",
        "![mAP@0.5 against bytes per image](pareto.png)",
        "",
        "| point | format | bytes per image (max) | ratio | mAP@0.5 | change (points) | before fine-tune | "
        "front-end LUT | decoder cycles | fps (bottleneck) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        lines.append(
            f"| `{row['key']}` | {row['format']} | {row['bytes_per_image']:,.0f} ({row['max_bytes']:,}) | "
            f"{row['ratio']:.1f}x | {row['map50']:.4f} | {_signed(row.get('map_change_points'))} | "
            f"{_value(row.get('map50_before_finetune'), '.4f')} | {_lut(row)} | "
            f"{_value(row.get('decoder_cycles'), ',')} | {row['fps']:,.0f} ({row['bottleneck']}) |"
        )
    errors = [row for row in rows if row.get("error")]
    if errors:
        lines += ["", "## Errors", ""]
        lines += [f"- `{row['key']}`: {row['error']}" for row in errors]
    return "\n".join(lines) + "\n"


def plot_formats(rows: list[dict], board: Board, path: Path) -> None:
    """Draw mAP@0.5 against bytes per image, one marker per format, with the raw RGB level."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from codesign.sweep.jpeg import RAW_KEY

    figure, axis = plt.subplots(figsize=(8, 5.5), constrained_layout=True)
    for row in rows:
        marker = "s" if row["key"] == RAW_KEY else "o"
        axis.scatter(row["bytes_per_image"], row["map50"], marker=marker, color="tab:blue")
        axis.annotate(row["key"], (row["bytes_per_image"], row["map50"]), fontsize=7, xytext=(3, 3),
                      textcoords="offset points")
        before = row.get("map50_before_finetune")
        if before is not None:
            axis.plot([row["bytes_per_image"]] * 2, [before, row["map50"]], color="tab:gray", linewidth=1)
            axis.scatter(row["bytes_per_image"], before, marker="x", color="tab:gray")
    raw = next((row for row in rows if row["key"] == RAW_KEY), None)
    if raw is not None:
        axis.axhline(raw["map50"], color="black", linewidth=1, label="raw RGB mAP@0.5")
        axis.axhline(raw["map50"] - 0.003, color="black", linestyle="--", linewidth=1, label="0.3 points below")
        axis.legend(fontsize=8, loc="best")
    axis.set_xscale("log")
    axis.set_xlabel("bytes per image (frame bytes, log scale)")
    axis.set_ylabel("mAP@0.5 (val)")
    axis.set_title(f"JPEG front-end sweep on {board.name}: {len(rows)} points (x: before fine-tuning)")
    axis.grid(True, alpha=0.3)
    temporary = path.with_name(f".{path.name}.tmp")
    figure.savefig(temporary, format="png", dpi=110)
    plt.close(figure)
    temporary.replace(path)


def _signed(value) -> str:
    return "-" if value is None else f"{value:+.2f}"


def _value(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _lut(row: dict) -> str:
    if row.get("frontend_lut") is None:
        return "-"
    return f"{row['frontend_lut']:,} ({row['frontend_lut_percent']:.2f}%)"
