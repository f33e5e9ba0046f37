"""codesign's fast ap types model against AMD's headers.

tests/ap_types_check.cpp hashes the results of exhaustive small-width and
random wide-width conversions and arithmetic. Built against both header
sets, every line must be identical. The csim tests check that a fast run
also runs images through the AMD-header build, that a disagreement between
the two stops the run, and that a project the fast model cannot compile
falls back to AMD's headers.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import hls4ml
import pytest

from codesign import csim as csim_module
from codesign.csim import FAST_AP_TYPES, csim
from codesign.errors import SimulationError
from codesign.project import load_project

CHECK_SOURCE = Path(__file__).with_name("ap_types_check.cpp")
AMD_AP_TYPES = Path(hls4ml.__file__).parent / "templates" / "vivado" / "ap_types"


def _run_check(tmp_path: Path, name: str, include: list[Path]) -> list[str]:
    binary = tmp_path / name
    flags = [flag for folder in include for flag in ("-I", str(folder))]
    subprocess.run(["g++", "-O1", "-std=c++20", "-w", *flags, str(CHECK_SOURCE), "-o", str(binary)], check=True)
    return subprocess.run([str(binary)], check=True, capture_output=True, text=True).stdout.splitlines()


def test_fast_model_equals_amd_headers(tmp_path):
    amd = _run_check(tmp_path, "amd", [AMD_AP_TYPES])
    fast = _run_check(tmp_path, "fast", [FAST_AP_TYPES, AMD_AP_TYPES])

    assert len(amd) == 243
    different = [(a, f) for a, f in zip(amd, fast) if a != f]
    assert different == []
    assert len(fast) == len(amd)


def test_fast_model_refuses_unmodelled_overflow_mode(tmp_path):
    source = tmp_path / "wrap_sm.cpp"
    source.write_text('#include "ap_fixed.h"\nint main() { ap_fixed<8, 4, AP_TRN, AP_WRAP_SM> x = 1.5; return x.to_int(); }\n')
    result = subprocess.run(["g++", "-std=c++20", "-I", str(FAST_AP_TYPES), "-I", str(AMD_AP_TYPES), str(source),
                             "-o", str(tmp_path / "wrap_sm")], capture_output=True, text=True)

    assert result.returncode != 0
    assert "AP_WRAP_SM is not modelled" in result.stderr


def test_csim_runs_fast_model_with_amd_check(bundled_project):
    report = csim(load_project(bundled_project), count=3)

    assert report.ap_types == "fast"
    assert report.amd_check_images == 1
    assert report.exact_fraction == 1.0


def _patched_fast_headers(tmp_path: Path, old: str, new: str) -> Path:
    folder = tmp_path / "fast_ap_types"
    shutil.copytree(FAST_AP_TYPES, folder)
    core = folder / "codesign_ap_core.h"
    text = core.read_text()
    assert old in text
    core.write_text(text.replace(old, new))
    return folder


def test_csim_stops_when_fast_model_disagrees_with_amd(project_copy, tmp_path, monkeypatch):
    # Round ties up instead of to even: the quantized activations change.
    broken = _patched_fast_headers(tmp_path, "add = qb && ((f & 1) || r);", "add = qb;")
    monkeypatch.setattr(csim_module, "FAST_AP_TYPES", broken)

    with pytest.raises(SimulationError, match="disagree on image 0"):
        csim(load_project(project_copy), count=2)


def test_csim_falls_back_to_amd_headers(project_copy, tmp_path, monkeypatch, caplog):
    broken = _patched_fast_headers(tmp_path, "#define CODESIGN_FAST_AP_TYPES 1", "#error not buildable")
    monkeypatch.setattr(csim_module, "FAST_AP_TYPES", broken)

    report = csim(load_project(project_copy), count=2)

    assert report.ap_types == "amd"
    assert report.exact_fraction == 1.0
    assert "cannot build this project" in caplog.text
