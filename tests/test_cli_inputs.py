"""Input handling of the codesign CLI: --force rules, output files and one-line errors.

Every error here is raised before any conversion or simulation, so the tests
need no converted project. Where only load_project reads the project, a folder
with a minimal codesign.json is used instead.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from codesign.cli import main
from codesign.errors import InputError
from codesign.flow import check_output_folder
from codesign.output_files import check_output_file
from codesign.project import META_FILE, META_VERSION

PEER_MODELS = Path(__file__).resolve().parents[1].parent / "shared" / "peer-models"


def _error_line(capsys) -> str:
    """Return stderr after checking that it is exactly one line."""
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def _minimal_project(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / META_FILE).write_text(json.dumps({"version": META_VERSION}))
    return root


def _text_model(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("not an ONNX model\n")
    return path


# --force and output folders


def test_convert_force_keeps_user_folder(tmp_path, capsys):
    model = _text_model(tmp_path / "model.onnx")
    user = tmp_path / "userdir"
    user.mkdir()
    (user / "notes.txt").write_text("keep me")

    assert main(["convert", str(model), "--out", str(user), "--force"]) == 2
    line = _error_line(capsys)
    assert "is not a codesign project folder (no codesign.json)" in line
    assert "choose another --out" in line
    assert (user / "notes.txt").read_text() == "keep me"


def test_convert_without_force_names_foreign_folder(tmp_path, capsys):
    model = _text_model(tmp_path / "model.onnx")
    user = tmp_path / "userdir"
    user.mkdir()
    (user / "notes.txt").write_text("keep me")

    assert main(["convert", str(model), "--out", str(user)]) == 2
    assert "no codesign.json" in _error_line(capsys)
    assert (user / "notes.txt").is_file()


@pytest.mark.parametrize("with_meta", [False, True])
def test_convert_force_keeps_source_model(tmp_path, capsys, with_meta):
    source = tmp_path / "src"
    model = _text_model(source / "model.onnx")
    if with_meta:
        (source / META_FILE).write_text("{}")

    assert main(["convert", str(model), "--out", str(source), "--force"]) == 2
    assert "contains the input" in _error_line(capsys)
    assert model.read_text() == "not an ONNX model\n"


@pytest.mark.parametrize("option", ["--state-dict", "--calibrate"])
def test_convert_force_keeps_module_inputs(tmp_path, capsys, option):
    out = _minimal_project(tmp_path / "project")
    input_path = out / "weights.pt" if option == "--state-dict" else out / "calibration"
    if option == "--state-dict":
        input_path.write_bytes(b"weights")
    else:
        input_path.mkdir()

    status = main(["convert", "nomodule.anywhere:factory", "--out", str(out), "--force", option, str(input_path)])
    assert status == 2
    assert "contains the input" in _error_line(capsys)
    assert input_path.exists()


def test_check_output_folder_rules(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    check_output_folder(empty, force=False)
    check_output_folder(tmp_path / "new", force=False)

    project = _minimal_project(tmp_path / "project")
    check_output_folder(project, force=True)
    with pytest.raises(InputError, match="pass --force"):
        check_output_folder(project, force=False)

    (tmp_path / "file").write_text("")
    with pytest.raises(InputError, match="not a folder"):
        check_output_folder(tmp_path / "file", force=True)


def test_detect_force_keeps_user_folder(tmp_path, capsys):
    image = tmp_path / "image.png"
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(image)
    user = tmp_path / "userdir"
    user.mkdir()
    (user / "notes.txt").write_text("keep me")

    status = main(["detect", str(tmp_path / "project"), str(image), "--out", str(user), "--force"])
    assert status == 2
    assert "is not a codesign detect output folder (no detections.json)" in _error_line(capsys)
    assert (user / "notes.txt").is_file()


def test_detect_negative_jobs(tmp_path, capsys):
    status = main(["detect", str(tmp_path), str(tmp_path), "--out", str(tmp_path / "out"), "--jobs", "-2"])
    assert status == 2
    assert "--jobs must be 0 (all cores) or more" in _error_line(capsys)


def test_train_rejects_folder_out(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path), "--force"]) == 2
    assert "is a folder" in _error_line(capsys)


# Unreadable model files


@pytest.mark.parametrize("kind", ["text", "truncated", "empty"])
def test_convert_unreadable_onnx(tmp_path, capsys, kind):
    model = tmp_path / "model.onnx"
    if kind == "text":
        model.write_text("hello\n")
    elif kind == "truncated":
        model.write_bytes((PEER_MODELS / "tfc_2w2a.onnx").read_bytes()[:300])
    else:
        model.write_bytes(b"")

    assert main(["convert", str(model), "--out", str(tmp_path / "out")]) == 2
    assert str(model) in _error_line(capsys)
    assert not (tmp_path / "out").exists()


def test_convert_non_checkpoint_file(tmp_path, capsys):
    readme = tmp_path / "readme.txt"
    readme.write_text("# notes\n")

    assert main(["convert", str(readme), "--out", str(tmp_path / "out")]) == 2
    assert "not a codesign detector checkpoint" in _error_line(capsys)


def test_convert_folder_as_model(tmp_path, capsys):
    calibration = tmp_path / "calib"
    calibration.mkdir()

    assert main(["convert", f"{calibration}/", "--out", str(tmp_path / "out")]) == 2
    assert "is a folder" in _error_line(capsys)


def test_convert_bad_state_dict_one_line(tmp_path, capsys, monkeypatch):
    import fractions

    import torch

    (tmp_path / "tinymodule.py").write_text("import torch\n\ndef factory():\n    return torch.nn.Linear(2, 2)\n")
    monkeypatch.chdir(tmp_path)
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"weight": fractions.Fraction(1, 2)}, unsafe)
    text = tmp_path / "text.pt"
    text.write_text("not a state dict\n")

    for state_dict in (unsafe, text):
        status = main(["convert", "tinymodule:factory", "--out", str(tmp_path / "out"), "--state-dict", str(state_dict)])
        assert status == 2
        line = _error_line(capsys)
        assert str(state_dict) in line
        assert "weights_only" not in line


def test_convert_input_type_checked_first(tmp_path, capsys):
    model = _text_model(tmp_path / "model.onnx")

    assert main(["convert", str(model), "--out", str(tmp_path / "out"), "--input-type", "bogus"]) == 2
    assert "invalid fixed-point type 'bogus'" in _error_line(capsys)


# csim and estimate options


def test_csim_file_as_project(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("# readme\n")

    assert main(["csim", str(readme)]) == 2
    assert "is not a folder" in _error_line(capsys)


def test_csim_negative_jobs(tmp_path, capsys):
    project = _minimal_project(tmp_path / "project")

    assert main(["csim", str(project), "--jobs", "-2"]) == 2
    assert "--jobs must be 0 (all cores) or more" in _error_line(capsys)


def test_csim_amd_check_with_amd_types(tmp_path, capsys):
    project = _minimal_project(tmp_path / "project")

    assert main(["csim", str(project), "--ap-types", "amd", "--amd-check", "3"]) == 2
    assert "--amd-check applies only to --ap-types fast" in _error_line(capsys)


@pytest.mark.parametrize("case", ["missing folder", "folder", "existing"])
def test_csim_json_checked_first(tmp_path, capsys, case):
    project = _minimal_project(tmp_path / "project")
    target = {"missing folder": tmp_path / "nodir" / "x.json", "folder": tmp_path,
              "existing": tmp_path / "r.json"}[case]
    if case == "existing":
        target.write_text("old")

    assert main(["csim", str(project), "--json", str(target)]) == 2
    assert _error_line(capsys).startswith(f"codesign: error: --json {target}")
    if case == "existing":
        assert target.read_text() == "old"


def test_estimate_json_existing(tmp_path, capsys):
    target = tmp_path / "estimate.json"
    target.write_text("old")

    assert main(["estimate", "--json", str(target)]) == 2
    assert "exists; pass --force" in _error_line(capsys)
    assert target.read_text() == "old"


def test_jpeg_frames_out_checked_first(tmp_path, capsys):
    image = tmp_path / "frame.jpg"
    image.write_bytes(b"jpeg")
    existing = tmp_path / "frames.bin"
    existing.write_bytes(b"old")
    project = str(tmp_path / "project")

    assert main(["jpeg-frames", project, str(image), "--out", str(existing)]) == 2
    assert "exists; pass --force" in _error_line(capsys)
    assert main(["jpeg-frames", project, str(image), "--out", str(image), "--force"]) == 2
    assert "is also an input file" in _error_line(capsys)
    assert image.read_bytes() == b"jpeg"


def test_check_output_file_rules(tmp_path):
    check_output_file(tmp_path / "new.json", force=False, option="--json")
    existing = tmp_path / "old.json"
    existing.write_text("")
    check_output_file(existing, force=True, option="--json")
    with pytest.raises(InputError, match="exists"):
        check_output_file(existing, force=False, option="--json")
