"""Tests for the bit-width sweep (codesign.sweep) and post-training quantization (quantize.ptq).

Most sweeps run a tiny detector from a float state dict on 20 val images, so
each point takes a few seconds. One test sweeps the bundled QAT checkpoint.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from codesign.cli import main
from codesign.errors import InputError
from codesign.sweep import parse_bits, parse_layer_bits, parse_reuse_factors, sweep
from quantize.detector import DetectorConfig, TinyYolo

TINY = DetectorConfig(channels=(4, 8), final_channels=8)
# Two bit-width combinations with two reuse factors each: 4 points, 2 models.
TINY_SWEEP = {
    "board": "zcu102",
    "weight_bits": "3,8",
    "act_bits": "4",
    "reuse_factors": "1,4",
    "val_images": 20,
    "calibration_images": 32,
    "progress": False,
}


def without_timing(rows: list[dict]) -> list[dict]:
    return [{key: value for key, value in row.items() if key != "seconds"} for row in rows]


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A float state dict of a tiny detector with seeded random weights."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny") / "tiny_float.pt"
    state = {key: value for key, value in TinyYolo(TINY).state_dict().items() if "quant" not in key}
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def local_sweep(tiny_checkpoint, tmp_path_factory):
    """The 4-point tiny sweep on two local worker processes."""
    out = tmp_path_factory.mktemp("local") / "sweep"
    return sweep(tiny_checkpoint, out, jobs=2, **TINY_SWEEP)


def test_parse_bits_ranges_and_lists():
    assert parse_bits("2-8", "--weight-bits") == (2, 3, 4, 5, 6, 7, 8)
    assert parse_bits("8,4,6", "--weight-bits") == (4, 6, 8)
    assert parse_bits("16", "--act-bits") == (16,)
    assert parse_reuse_factors("1,2,4,2") == (1, 2, 4)
    for text in ("9-3", "0-4", "2-17", "x", "2-", ""):
        with pytest.raises(InputError):
            parse_bits(text, "--weight-bits")


def test_parse_layer_bits_syntax():
    weights, acts = parse_layer_bits(["conv0=8:8", "conv1=:4,head=8"])
    assert weights == {"conv0": 8, "head": 8}
    assert acts == {"conv0": 8, "conv1": 4}
    for text in ("conv0", "conv0=:", "conv0=8:17", "Conv0=8:8"):
        with pytest.raises(InputError):
            parse_layer_bits([text])


def test_sweep_writes_every_result_file(local_sweep):
    out = local_sweep.out
    assert [row["key"] for row in local_sweep.rows] == [
        "w3a4-latency-r1", "w3a4-latency-r4", "w8a4-latency-r1", "w8a4-latency-r4",
    ]
    assert sorted(local_sweep.computed) == sorted(row["key"] for row in local_sweep.rows)
    for name in ("sweep.json", "results.csv", "results.json", "report.md", "pareto.png"):
        assert (out / name).is_file(), name
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len((out / "results.csv").read_text().splitlines()) == 5
    assert json.loads((out / "results.json").read_text()) == local_sweep.rows
    assert "## Best point that fits" in (out / "report.md").read_text()


def test_sweep_rows_have_estimates(local_sweep):
    by_key = {row["key"]: row for row in local_sweep.rows}
    for row in local_sweep.rows:
        assert row["error"] is None
        assert 0.0 <= row["map50"] <= 1.0
        assert row["lut"] > 0
        assert row["ii_cycles"] > 0
        assert row["fps"] > 0
        assert row["lut_percent"] == pytest.approx(100.0 * row["lut"] / 274080)
        assert row["verified"] is None
    # Points of one model share its mAP; a larger reuse factor shares multipliers and slows the design.
    assert by_key["w8a4-latency-r1"]["map50"] == by_key["w8a4-latency-r4"]["map50"]
    assert by_key["w8a4-latency-r4"]["ii_cycles"] > by_key["w8a4-latency-r1"]["ii_cycles"]
    assert by_key["w3a4-latency-r1"]["lut"] < by_key["w8a4-latency-r1"]["lut"]


def test_dask_cluster_matches_local(local_sweep, tiny_checkpoint, tmp_path):
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, host="127.0.0.1", protocol="tcp",
                      dashboard_address=None) as cluster:
        result = sweep(tiny_checkpoint, tmp_path / "dask", scheduler=cluster.scheduler_address, **TINY_SWEEP)
    assert without_timing(result.rows) == without_timing(local_sweep.rows)


def test_resume_computes_only_missing_point(local_sweep, tiny_checkpoint, tmp_path):
    out = tmp_path / "resumed"
    shutil.copytree(local_sweep.out, out)
    (out / "points" / "w8a4-latency-r4.json").unlink()
    computed = []
    result = sweep(tiny_checkpoint, out, jobs=1, on_point=lambda row: computed.append(row["key"]), **TINY_SWEEP)
    assert computed == ["w8a4-latency-r4"]
    assert result.computed == ["w8a4-latency-r4"]
    assert without_timing(result.rows) == without_timing(local_sweep.rows)
    assert len(list((out / "points").glob("*.json"))) == 4


def test_rerun_with_other_arguments(local_sweep, tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "rerun"
    shutil.copytree(local_sweep.out, out)
    base = [str(tiny_checkpoint), "--out", str(out), "--board", "zcu102", "--act-bits", "4",
            "--reuse-factors", "1,4", "--val-images", "20", "--calibration-images", "32"]
    assert main(["-q", "sweep", *base, "--weight-bits", "3"]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert "--force" in error
    assert "weight_bits" in error

    # The same settings with fewer weight widths keep every point file, so nothing is computed.
    assert main(["-q", "sweep", *base, "--weight-bits", "3", "--force"]) == 0
    assert "(0 computed, 2 from an earlier run)" in capsys.readouterr().out
    assert json.loads((out / "sweep.json").read_text())["arguments"]["weight_bits"] == [3]
    assert len(json.loads((out / "results.json").read_text())) == 2


@pytest.mark.parametrize(
    "options, message",
    [
        (["--weight-bits", "9-3"], "descending"),
        (["--act-bits", "0-4"], "outside 1..16"),
        (["--weight-bits", "4-17"], "outside 1..16"),
        (["--board", "no-such-board"], "not found"),
        (["--layer-bits", "conv9=8:8"], "no layer 'conv9'"),
        (["--reuse-factors", "1,0"], "not a positive integer"),
        (["--fit", "--reuse-factors", "2"], "--fit"),
    ],
)
def test_bad_arguments_exit_2(options, message, tmp_path, capsys):
    assert main(["-q", "sweep", "--out", str(tmp_path / "out"), *options]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert error.startswith("codesign: error:")
    assert message in error
    assert not (tmp_path / "out").exists()


def test_bad_output_folder_exits_2(tmp_path, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    assert main(["-q", "sweep", "--out", str(blocker / "sweep")]) == 2
    assert "cannot be created" in capsys.readouterr().err

    user_folder = tmp_path / "mine"
    user_folder.mkdir()
    (user_folder / "notes.txt").write_text("keep me")
    assert main(["-q", "sweep", "--out", str(user_folder), "--force"]) == 2
    assert "contains no sweep.json" in capsys.readouterr().err
    assert [path.name for path in user_folder.iterdir()] == ["notes.txt"]


def test_unreadable_model_exits_2(tmp_path, capsys):
    model = tmp_path / "model.pt"
    model.write_text("not a checkpoint")
    assert main(["-q", "sweep", str(model), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert "neither a codesign checkpoint nor a float state dict" in error


def test_ptq_8_bits_close_to_qat(tmp_path):
    """PTQ of the bundled QAT checkpoint at 8/8 bits loses little mAP against the checkpoint itself."""
    from codesign.quantize import quantize
    from quantize.dataset import generate, load_images
    from quantize.train import evaluate_map

    val_images = 100
    pixels, coco = load_images(generate(splits=("val",)), "val", val_images)
    torch.set_num_threads(1)
    qat_map = evaluate_map(quantize(None).module, pixels, coco)

    result = sweep(None, tmp_path / "bundled", board="zcu102", weight_bits="8", act_bits="8",
                   strategies="resource", fit=True, val_images=val_images, progress=False)
    row = result.rows[0]
    assert row["key"] == "w8a8-resource-fit"
    assert row["error"] is None
    assert row["map50"] == pytest.approx(qat_map, abs=0.05)
    assert row["map50"] > 0.5
    if row["fits"]:
        assert isinstance(row["reuse"], dict)
        assert all(factor >= 1 for factor in row["reuse"].values())
    else:
        assert row["reuse"] is None
        assert row["note"].startswith("no reuse factors fit")
