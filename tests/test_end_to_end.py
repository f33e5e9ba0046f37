"""Convert and C-simulate the bundled detector through the command line."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from codesign.cli import main

pytestmark = pytest.mark.slow


def test_csim_bundled_detector_exact(bundled_project, tmp_path, capsys):
    report_path = tmp_path / "csim.json"
    status = main(["csim", str(bundled_project), "--count", "6", "--json", str(report_path)])
    printed = capsys.readouterr().out
    report = json.loads(report_path.read_text())

    assert status == 0, printed
    assert report["images"] == 6
    assert report["values"] == 6 * 6 * 6 * 15
    assert report["exact_fraction"] == 1.0
    assert report["max_abs_lsb"] == 0
    assert report["detections_identical"] is True
    assert "exact-match fraction: 1.000000" in printed


def _negate_largest_weight(project: Path, layer: str) -> None:
    """Negate the largest weight of a layer in both its .txt (C simulation) and .h (synthesis) files."""
    meta = json.loads((project / "codesign.json").read_text())
    text_file = project / meta["weight_files"][layer]["weight"]
    values = [float(v) for v in text_file.read_text().split(",")]
    index = int(np.argmax(np.abs(values)))
    values[index] = -values[index]
    new_text = ", ".join(f"{v:.6f}" for v in values)
    text_file.write_text(new_text)
    header = text_file.with_suffix(".h")
    header.write_text(re.sub(r"= \{[^}]*\}", "= {" + new_text + "}", header.read_text()))


def test_csim_perturbed_weight_fails_and_names_layer(project_copy, tmp_path, capsys):
    _negate_largest_weight(project_copy, "Conv2D_Conv_2")

    status = main(["-q", "csim", str(project_copy), "--count", "4", "--json", str(tmp_path / "r.json")])
    printed = capsys.readouterr().out
    report = json.loads((tmp_path / "r.json").read_text())

    assert status == 1
    assert "FAIL" in printed
    assert "mismatch: image" in printed
    assert report["exact_fraction"] < 1.0
    assert report["trace"]["first_diverging_layer"] == "Conv2D_Conv_2"
    assert "first diverging layer: Conv2D_Conv_2" in printed
    earlier = [row for row in report["trace"]["layers"] if row["layer"] in ("Conv2D_Conv_0", "Relu_1", "MaxPool_1")]
    assert len(earlier) == 3
    assert all(row["differing"] == 0 for row in earlier)


@pytest.mark.parametrize("relative", ["hls/tb_data/inputs.bin", "hls/firmware/weights/b2.txt"])
def test_csim_missing_data_file_exits_2(project_copy, capsys, relative):
    meta = json.loads((project_copy / "codesign.json").read_text())
    if relative.endswith("b2.txt"):
        relative = meta["weight_files"]["Conv2D_Conv_0"]["bias"]
    (project_copy / relative).unlink()

    status = main(["csim", str(project_copy), "--count", "2"])
    error = capsys.readouterr().err

    assert status == 2
    assert relative in error
    assert len(error.strip().splitlines()) == 1


def _damage(project: Path, kind: str) -> str:
    """Damage one project file; return the file name the error must contain."""
    meta = json.loads((project / "codesign.json").read_text())
    text_file = project / meta["weight_files"]["Conv2D_Conv_1"]["weight"]
    header = text_file.with_suffix(".h")
    if kind == "header differs":
        header.write_text(re.sub(r"= \{(-?)0\.", lambda m: "= {" + m.group(1) + "1.", header.read_text(), count=1))
        return header.name
    if kind == "header missing":
        header.unlink()
        return header.name
    if kind == "text malformed":
        text_file.write_text("abc, " + text_file.read_text())
        return text_file.name
    if kind == "text short":
        text_file.write_text(", ".join(text_file.read_text().split(",")[:-10]))
        return text_file.name
    data = project / meta["testbench"]["inputs"]
    data.write_bytes(data.read_bytes()[:1000])
    return data.name


@pytest.mark.parametrize("kind", ["header differs", "header missing", "text malformed", "text short", "data truncated"])
def test_csim_damaged_project_file_exits_2(project_copy, capsys, kind):
    name = _damage(project_copy, kind)

    status = main(["csim", str(project_copy), "--count", "2"])
    error = capsys.readouterr().err

    assert status == 2
    assert name in error
    assert len(error.strip().splitlines()) == 1


def test_convert_rejects_nonempty_folder(tmp_path, capsys):
    out = tmp_path / "existing"
    out.mkdir()
    keep = out / "keep.txt"
    keep.write_text("user data")

    status = main(["convert", "--out", str(out)])
    error = capsys.readouterr().err

    assert status == 2
    assert "not empty" in error
    assert "no codesign.json" in error
    assert keep.read_text() == "user data"


def test_convert_unknown_board_exits_2(tmp_path, capsys):
    status = main(["convert", "--board", "no-such-board", "--out", str(tmp_path / "p")])
    error = capsys.readouterr().err

    assert status == 2
    assert "no-such-board" in error
    assert len(error.strip().splitlines()) == 1
    assert not (tmp_path / "p").exists()


def test_csim_missing_project_exits_2(tmp_path, capsys):
    status = main(["csim", str(tmp_path / "nothing")])

    assert status == 2
    assert "not found" in capsys.readouterr().err


def test_csim_count_zero_exits_2(bundled_project, capsys):
    status = main(["csim", str(bundled_project), "--count", "0"])

    assert status == 2
    assert "--count" in capsys.readouterr().err


def test_project_tree(bundled_project):
    meta = json.loads((bundled_project / "codesign.json").read_text())
    assert meta["input"]["layout"] == "NHWC"
    assert meta["output"]["layout"] == "NHWC"
    assert meta["input"]["type"].startswith("ufixed<8,0")
    for name in ("model.qonnx.onnx", "precision.md", "hls/codesign_tb.cpp", "hls/firmware/myproject.cpp",
                 "hls/tb_data/inputs.bin", "hls/tb_data/expected.bin", "hls/build_prj.tcl"):
        assert (bundled_project / name).is_file(), name
    assert not list(bundled_project.parent.glob(".project.partial-*"))


def test_csim_all_references_agree(bundled_project, tmp_path, capsys):
    status = main(["-q", "csim", str(bundled_project), "--count", "2", "--references", "all",
                   "--json", str(tmp_path / "r.json")])
    printed = capsys.readouterr().out
    report = json.loads((tmp_path / "r.json").read_text())

    assert status == 0, printed
    assert {row["name"]: row["identical"] for row in report["references"]} == {"qonnx": True, "brevitas": True}
    assert "reference qonnx: identical to onnxruntime" in printed


def test_csim_sanitize_runs_clean(bundled_project, capsys):
    status = main(["-q", "csim", str(bundled_project), "--count", "2", "--sanitize"])
    printed = capsys.readouterr().out

    assert status == 0, printed
    assert "PASS" in printed


def test_csim_vendor_without_tool_exits_2(bundled_project, monkeypatch, capsys):
    monkeypatch.setenv("PATH", "/nonexistent")

    status = main(["csim", str(bundled_project), "--vendor"])
    error = capsys.readouterr().err

    assert status == 2
    assert "vitis_hls" in error
    assert "PATH" in error


def test_vendor_script_parses_with_tclsh(bundled_project, tmp_path):
    stub = tmp_path / "stub.tcl"
    commands = "open_project set_top add_files open_solution set_part create_clock csim_design csynth_design cosim_design"
    stub.write_text(
        f"set calls {{}}\nforeach cmd {{{commands}}} {{ proc $cmd {{args}} \"lappend ::calls $cmd\" }}\n"
        "proc exit {args} { puts $::calls }\n"
        "set argv {cosim 8}\nsource vendor_csim.tcl\n"
    )
    result = subprocess.run(["tclsh", str(stub)], cwd=bundled_project / "hls", capture_output=True, text=True)

    assert result.returncode == 0, result.stderr
    assert "csim_design csynth_design cosim_design" in result.stdout
