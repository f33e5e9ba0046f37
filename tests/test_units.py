"""Unit tests of the small building blocks: templating, tensor files, boxes, precision."""

from __future__ import annotations

import numpy as np
import pytest
from hls4ml.model.types import FixedPrecisionType, SaturationMode

from codesign import tensorfile
from codesign.errors import InputError
from codesign.precision import Interval, exact_type, type_interval
from codesign.templating import TemplateError, render
from quantize.boxes import Detections, decode, iou_matrix, mean_average_precision, nms


def test_render_fills_placeholders():
    assert render("a {{X}} b {{Y_2}}", {"X": 1, "Y_2": "z"}) == "a 1 b z"


def test_render_rejects_missing_value():
    with pytest.raises(TemplateError, match="no value"):
        render("{{X}} {{Y}}", {"X": 1})


def test_render_rejects_unused_value():
    with pytest.raises(TemplateError, match="no placeholder"):
        render("{{X}}", {"X": 1, "Z": 2})


@pytest.mark.parametrize("values", [
    np.array([[0, 255], [7, 1]]),
    np.array([[-128, 127]]),
    np.array([[-70000, 3]]),
    np.array([[2**40, -(2**40)]]),
])
def test_tensorfile_round_trip(tmp_path, values):
    tensorfile.write(tmp_path / "t.bin", values)
    np.testing.assert_array_equal(tensorfile.read(tmp_path / "t.bin"), values)


def test_tensorfile_rejects_truncated(tmp_path):
    tensorfile.write(tmp_path / "t.bin", np.arange(100).reshape(4, 25))
    data = (tmp_path / "t.bin").read_bytes()
    (tmp_path / "t.bin").write_bytes(data[:-1])
    with pytest.raises(InputError, match="shorter"):
        tensorfile.read(tmp_path / "t.bin")


def test_tensorfile_rejects_missing(tmp_path):
    with pytest.raises(InputError, match="not found"):
        tensorfile.read(tmp_path / "absent.bin")


@pytest.mark.parametrize("interval, signed, expected", [
    (Interval(0, 255, 8), False, (8, 0)),
    (Interval(-128, 127, 4), True, (8, 4)),
    (Interval(-129, 127, 4), True, (9, 5)),
    (Interval(-1, 0, 0), True, (1, 1)),
    (Interval(0, 1, 3), None, (1, -2)),
    (Interval(-5, 1000, 2), None, (11, 9)),
])
def test_exact_type_is_narrowest(interval, signed, expected):
    precision = exact_type(interval, signed)
    assert (precision.width, precision.integer) == expected
    limits = type_interval(precision)
    assert limits.lo <= interval.lo
    assert interval.hi <= limits.hi
    narrower = FixedPrecisionType(precision.width - 1, precision.integer - 1, precision.signed) if precision.width > 1 else None
    if narrower is not None:
        smaller = type_interval(narrower)
        assert interval.lo < smaller.lo or interval.hi > smaller.hi


def test_type_interval_symmetric_saturation():
    precision = FixedPrecisionType(4, 1, True, saturation_mode=SaturationMode.SAT_SYM)
    assert (type_interval(precision).lo, type_interval(precision).hi) == (-7, 7)


def test_iou_matrix_known_values():
    a = np.array([[0.0, 0.0, 10.0, 10.0]])
    b = np.array([[0.0, 0.0, 10.0, 10.0], [5.0, 0.0, 10.0, 10.0], [20.0, 20.0, 5.0, 5.0]])
    np.testing.assert_allclose(iou_matrix(a, b)[0], [1.0, 50 / 150, 0.0])


def test_nms_suppresses_overlap():
    boxes = np.array([[0.0, 0, 10, 10], [1.0, 1, 10, 10], [30.0, 30, 10, 10]])
    scores = np.array([0.9, 0.8, 0.7])
    assert nms(boxes, scores, 0.45).tolist() == [0, 2]


def test_decode_strided_and_contiguous_agree():
    rng = np.random.default_rng(1)
    channels_first = rng.normal(size=(15, 6, 6))
    strided = channels_first.transpose(1, 2, 0)
    assert decode(strided, 16, 28.0, 0.0).equals(decode(np.ascontiguousarray(strided), 16, 28.0, 0.0))


def test_map_perfect_and_wrong_class():
    coco = {"annotations": [
        {"image_id": 0, "category_id": 1, "bbox": [10, 10, 20, 20]},
        {"image_id": 1, "category_id": 2, "bbox": [40, 40, 20, 20]},
    ]}
    perfect = {
        0: Detections(np.array([[10.0, 10, 20, 20]]), np.array([0.9]), np.array([1])),
        1: Detections(np.array([[41.0, 40, 20, 20]]), np.array([0.8]), np.array([2])),
    }
    assert mean_average_precision(perfect, coco, 10) == pytest.approx(1.0)
    wrong = dict(perfect)
    wrong[1] = Detections(np.array([[41.0, 40, 20, 20]]), np.array([0.8]), np.array([3]))
    assert mean_average_precision(wrong, coco, 10) == pytest.approx(0.5)
