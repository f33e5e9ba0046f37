"""JPEG sweep: codesign sweep --jpeg-quality/--jpeg-tables, fine-tuning, the fps model, resume and bad input.

One small sweep (20 val images, quality 50 and a table file at 4:2:0, one
fine-tune epoch on 64 train images) runs per module, because loading and
lowering the detector for its CNN estimate takes most of the time.
"""

from __future__ import annotations

import json

import pytest

from codesign.boards import load_board
from codesign.cli import main
from codesign.jpeg.frontend import format_qtables
from codesign.quantize import quantize

VAL_IMAGES = 20
BOARD = "aws-f1"
# libjpeg's quality-75 luminance table for both components: a valid custom format.
LUMINANCE_Q75 = (
    8, 6, 5, 8, 12, 20, 26, 31, 6, 6, 7, 10, 13, 29, 30, 28, 7, 7, 8, 12, 20, 29, 35, 28, 7, 9, 11, 15, 26, 44, 40, 31,
    9, 11, 19, 28, 34, 55, 52, 39, 12, 18, 28, 32, 41, 52, 57, 46, 25, 32, 39, 44, 52, 61, 60, 51, 36, 46, 48, 49, 56,
    50, 52, 50,
)


def _arguments(out, tables) -> list[str]:
    return ["-q", "sweep", "--jpeg-quality", "50", "--jpeg-tables", str(tables), "--jpeg-subsampling", "420",
            "--val-images", str(VAL_IMAGES), "--board", BOARD, "--finetune-epochs", "1", "--finetune-images", "64",
            "--jobs", "1", "--out", str(out)]


@pytest.fixture(scope="module")
def jpeg_sweep(tmp_path_factory):
    """Folder and rows of the module's sweep, plus its command line for reruns."""
    folder = tmp_path_factory.mktemp("jpeg_sweep")
    tables = folder / "flat75.txt"
    tables.write_text(format_qtables([LUMINANCE_Q75], "quality-75 luminance table for all components"))
    out = folder / "sweep"
    arguments = _arguments(out, tables)
    status = main(arguments)
    assert status == 0
    rows = {row["key"]: row for row in json.loads((out / "results.json").read_text())}
    return out, rows, arguments


def test_sweep_points_and_files(jpeg_sweep):
    out, rows, _ = jpeg_sweep

    assert list(rows) == ["raw-rgb", "q50-420", "t-flat75-420"]
    for name in ("results.csv", "report.md", "pareto.png", "sweep.json"):
        assert (out / name).is_file()
    report = (out / "report.md").read_text()
    # The summary states either the best ratio within 0.3 points or that no format stays within them.
    assert ("best ratio within 0.3 points" in report) != ("no JPEG format stays within 0.3 points" in report)


def test_raw_row_is_uncompressed(jpeg_sweep):
    _, rows, _ = jpeg_sweep
    raw = rows["raw-rgb"]

    assert raw["bytes_per_image"] == 96 * 96 * 3
    assert raw["ratio"] == 1.0
    assert raw["map_change_points"] == 0.0
    assert raw["frontend_lut"] is None
    assert raw["map50_before_finetune"] is None


def test_compressed_rows_ratio_and_cost(jpeg_sweep):
    _, rows, _ = jpeg_sweep
    board = load_board(BOARD)

    for key in ("q50-420", "t-flat75-420"):
        row = rows[key]
        assert row["bytes_per_image"] < 96 * 96 * 3 / 4
        assert row["max_bytes"] >= row["bytes_per_image"]
        assert row["ratio"] == pytest.approx(96 * 96 * 3 / row["bytes_per_image"])
        assert row["frontend_lut"] > 0
        assert row["frontend_lut_percent"] == pytest.approx(100 * row["frontend_lut"] / board.capacity("lut"))
        assert row["map_change_points"] == pytest.approx(100 * (row["map50"] - rows["raw-rgb"]["map50"]))
    # A coarser table compresses more: quality 50 against quality-75 tables.
    assert rows["q50-420"]["bytes_per_image"] < rows["t-flat75-420"]["bytes_per_image"]


def test_fps_is_slowest_rate(jpeg_sweep):
    _, rows, _ = jpeg_sweep
    board = load_board(BOARD)

    for row in rows.values():
        link = board.host_link.bandwidth_mb_s * 1e6 / row["bytes_per_image"]
        assert row["link_fps"] == pytest.approx(link)
        assert row["cnn_fps"] == pytest.approx(board.clock_mhz * 1e6 / row["cnn_cycles"])
        rates = [row["link_fps"], row["cnn_fps"]]
        if row["decoder_cycles"] is not None:
            assert row["decoder_fps"] == pytest.approx(board.clock_mhz * 1e6 / row["decoder_cycles"])
            rates.append(row["decoder_fps"])
        assert row["fps"] == pytest.approx(min(rates))


def test_finetune_saves_checkpoint(jpeg_sweep):
    out, rows, _ = jpeg_sweep
    row = rows["q50-420"]

    assert row["finetune_epochs"] == 1
    assert row["map50_before_finetune"] is not None
    assert row["finetune_loss"] > 0
    tuned = quantize(out / row["checkpoint"])
    assert tuned.metrics["jpeg_format"] == "q50-420"
    assert tuned.metrics["val_map50"] == pytest.approx(row["map50"])


def test_rerun_resumes(jpeg_sweep, capsys):
    out, rows, arguments = jpeg_sweep
    capsys.readouterr()

    status = main(arguments)
    output = capsys.readouterr().out

    assert status == 0
    assert "(0 computed, 3 from an earlier run)" in output
    assert json.loads((out / "results.json").read_text())[1]["map50"] == rows["q50-420"]["map50"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--jpeg-quality", "0"], "'0' is not a quality in 1..100"),
        (["--jpeg-quality", "50", "--jpeg-subsampling", "411"], "unknown subsampling '411'"),
        (["--jpeg-quality", "50", "--weight-bits", "4"], "--weight-bits applies to bit-width sweeps"),
        (["--jpeg-quality", "50", "--strategy", "latency,resource"], "give one --strategy"),
        (["--finetune-epochs", "2"], "--finetune-epochs applies to JPEG sweeps"),
        (["--jpeg-quality", "50", "--finetune-images", "10"], "--finetune-images needs --finetune-epochs"),
        (["--jpeg-tables", "missing.txt"], "quantization table file not found"),
    ],
)
def test_bad_input_exits_2(tmp_path, capsys, options, message):
    out = tmp_path / "sweep"

    status = main(["-q", "sweep", *options, "--out", str(out)])
    error = capsys.readouterr().err

    assert status == 2
    assert message in error
    assert len(error.strip().splitlines()) == 1
    assert not out.exists()
