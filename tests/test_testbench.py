"""The generated testbench on its own: data-file checks and self-comparison."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from codesign import tensorfile

pytestmark = pytest.mark.slow


def _run(binary, *args):
    return subprocess.run([str(binary), *map(str, args)], capture_output=True, text=True)


def test_testbench_matches_expected_data(bundled_project, tmp_path):
    binary = bundled_project / "csim" / "codesign_tb"
    tb = bundled_project / "hls" / "tb_data"

    result = _run(binary, tb / "inputs.bin", 0, 8, tmp_path / "out.bin", tb / "expected.bin")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 mismatches" in result.stdout
    np.testing.assert_array_equal(tensorfile.read(tmp_path / "out.bin"), tensorfile.read(tb / "expected.bin"))


def test_testbench_reports_wrong_expected_value(bundled_project, tmp_path):
    binary = bundled_project / "csim" / "codesign_tb"
    tb = bundled_project / "hls" / "tb_data"
    expected = tensorfile.read(tb / "expected.bin")
    expected[1, 7] += 3
    tensorfile.write(tmp_path / "expected.bin", expected)

    result = _run(binary, tb / "inputs.bin", 0, 2, tmp_path / "out.bin", tmp_path / "expected.bin")

    assert result.returncode == 1
    assert "item 1 output 7" in result.stdout
    assert "difference -3 LSB" in result.stdout


def test_testbench_rejects_missing_file(bundled_project, tmp_path):
    binary = bundled_project / "csim" / "codesign_tb"

    result = _run(binary, tmp_path / "absent.bin", 0, 1, tmp_path / "out.bin")

    assert result.returncode == 2
    assert "absent.bin" in result.stderr


def test_testbench_rejects_short_file(bundled_project, tmp_path):
    binary = bundled_project / "csim" / "codesign_tb"
    data = (bundled_project / "hls" / "tb_data" / "inputs.bin").read_bytes()
    (tmp_path / "short.bin").write_bytes(data[:-10])

    result = _run(binary, tmp_path / "short.bin", 0, 1, tmp_path / "out.bin")

    assert result.returncode == 2
    assert "shorter" in result.stderr


def test_testbench_rejects_range_beyond_data(bundled_project, tmp_path):
    binary = bundled_project / "csim" / "codesign_tb"
    tb = bundled_project / "hls" / "tb_data"

    result = _run(binary, tb / "inputs.bin", 5, 10, tmp_path / "out.bin")

    assert result.returncode == 2
    assert "holds 8" in result.stderr
