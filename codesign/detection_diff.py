"""Compare the detections of two raw detector outputs that may differ by rounding.

A float-scale detector head has no output quantizer, so its C++ output is the
nearest value of a fixed type, not the reference's float32 value (see
``codesign.thresholds``). Exact equality of the decoded detections is then
not expected; this module measures how far they differ.
"""

from __future__ import annotations

import numpy as np

from quantize.boxes import decode


def compare_detections(hardware: np.ndarray, software: np.ndarray, stride: int, anchor: float) -> dict:
    """Decode both N x grid x grid x C outputs image by image; return how their detections differ.

    ``same_detections`` counts images with the same number of detections and
    the same classes in the same order. The maximum score and box
    differences (pixels) are taken over those images.
    """
    same = 0
    max_score = 0.0
    max_box = 0.0
    for h, s in zip(hardware, software):
        got = decode(h, stride, anchor)
        expected = decode(s, stride, anchor)
        if len(got) != len(expected) or not np.array_equal(got.classes, expected.classes):
            continue
        same += 1
        if len(got):
            max_score = max(max_score, float(np.abs(got.scores - expected.scores).max()))
            max_box = max(max_box, float(np.abs(got.boxes - expected.boxes).max()))
    return {"images": int(len(hardware)), "same_detections": same, "max_score_difference": max_score,
            "max_box_difference_px": max_box}
