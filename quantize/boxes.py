"""Host-side box decoding, non-maximum suppression and mAP@0.5, in numpy.

The detector's raw output for one image is a grid of cells in channels-last
order, ``(grid, grid, 5 + num_classes)``, holding
``[objectness, tx, ty, tw, th, class logits...]`` per cell:

- centre x = (column + sigmoid(tx)) * stride, likewise y with the row;
- width = anchor * exp(tw), height = anchor * exp(th);
- score = sigmoid(objectness) * max softmax(class logits).
"""

from __future__ import annotations

from dataclasses import dataclass

# Detections kept for mAP: a low threshold, as detection benchmarks use, so
# the precision-recall curve reaches high recall.
EVAL_SCORE_THRESHOLD = 0.05
# Detections reported to users.
DETECT_SCORE_THRESHOLD = 0.3

import numpy as np


@dataclass(frozen=True)
class Detections:
    """Boxes of one image as (x, y, w, h) in pixels, with scores and class ids."""

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)

    def equals(self, other: "Detections") -> bool:
        return (
            np.array_equal(self.boxes, other.boxes)
            and np.array_equal(self.scores, other.scores)
            and np.array_equal(self.classes, other.classes)
        )

    def to_coco(self, image_id: int) -> list[dict]:
        return [
            {"image_id": image_id, "category_id": int(c), "bbox": [float(v) for v in b], "score": float(s)}
            for b, s, c in zip(self.boxes, self.scores, self.classes)
        ]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Return the IoU of every (x, y, w, h) box in a against every box in b."""
    ax0, ay0 = a[:, 0:1], a[:, 1:2]
    ax1, ay1 = ax0 + a[:, 2:3], ay0 + a[:, 3:4]
    bx0, by0 = b[:, 0], b[:, 1]
    bx1, by1 = bx0 + b[:, 2], by0 + b[:, 3]
    inter_w = np.clip(np.minimum(ax1, bx1) - np.maximum(ax0, bx0), 0, None)
    inter_h = np.clip(np.minimum(ay1, by1) - np.maximum(ay0, by0), 0, None)
    inter = inter_w * inter_h
    union = a[:, 2:3] * a[:, 3:4] + b[:, 2] * b[:, 3] - inter
    return inter / np.maximum(union, 1e-12)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Return the indices kept by greedy non-maximum suppression, best first."""
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        best = order[0]
        keep.append(best)
        if order.size == 1:
            break
        overlap = iou_matrix(boxes[best : best + 1], boxes[order[1:]])[0]
        order = order[1:][overlap <= iou_threshold]
    return np.array(keep, dtype=np.int64)


def decode(
    output: np.ndarray,
    stride: int,
    anchor: float,
    score_threshold: float = DETECT_SCORE_THRESHOLD,
    iou_threshold: float = 0.45,
) -> Detections:
    """Decode one image's (grid, grid, 5 + classes) output into detections after NMS."""
    # numpy's exp gives results that differ in the last bit between contiguous
    # and strided inputs, so decoding always works on a contiguous copy.
    output = np.ascontiguousarray(output, dtype=np.float64)
    rows, cols, _ = output.shape
    grid_y, grid_x = np.mgrid[0:rows, 0:cols]
    objectness = _sigmoid(output[..., 0])
    logits = output[..., 5:]
    probabilities = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probabilities /= probabilities.sum(axis=-1, keepdims=True)
    classes = probabilities.argmax(axis=-1)
    scores = objectness * probabilities.max(axis=-1)

    centre_x = (grid_x + _sigmoid(output[..., 1])) * stride
    centre_y = (grid_y + _sigmoid(output[..., 2])) * stride
    width = anchor * np.exp(np.clip(output[..., 3], -8, 8))
    height = anchor * np.exp(np.clip(output[..., 4], -8, 8))
    boxes = np.stack([centre_x - width / 2, centre_y - height / 2, width, height], axis=-1)

    selected = scores.ravel() >= score_threshold
    boxes = boxes.reshape(-1, 4)[selected]
    scores = scores.ravel()[selected]
    classes = classes.ravel()[selected]
    keep = nms(boxes, scores, iou_threshold)
    return Detections(boxes[keep], scores[keep], classes[keep])


def average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    """Return the area under the precision envelope (all-point interpolation)."""
    recall = np.concatenate([[0.0], recall, [1.0]])
    precision = np.concatenate([[0.0], precision, [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.nonzero(recall[1:] != recall[:-1])[0]
    return float(np.sum((recall[steps + 1] - recall[steps]) * precision[steps + 1]))


def mean_average_precision(
    detections: dict[int, Detections],
    coco: dict,
    num_classes: int,
    iou_threshold: float = 0.5,
) -> float:
    """Return mAP at one IoU threshold over the images in ``detections``.

    Ground truth comes from COCO-style annotations; only the images present in
    ``detections`` count, and classes without ground truth there are skipped.
    """
    truth: dict[int, list[tuple[np.ndarray, int]]] = {}
    for ann in coco["annotations"]:
        if ann["image_id"] in detections:
            truth.setdefault(ann["image_id"], []).append((np.array(ann["bbox"]), ann["category_id"]))

    precisions = []
    for cls in range(num_classes):
        gt = {
            image_id: np.array([b for b, c in items if c == cls]).reshape(-1, 4)
            for image_id, items in truth.items()
        }
        total = sum(len(v) for v in gt.values())
        if total == 0:
            continue
        candidates = []
        for image_id, det in detections.items():
            for box, score in zip(det.boxes[det.classes == cls], det.scores[det.classes == cls]):
                candidates.append((score, image_id, box))
        candidates.sort(key=lambda item: -item[0])
        matched = {image_id: np.zeros(len(v), bool) for image_id, v in gt.items()}
        hits = np.zeros(len(candidates))
        for index, (_, image_id, box) in enumerate(candidates):
            boxes = gt.get(image_id, np.zeros((0, 4)))
            if len(boxes) == 0:
                continue
            overlap = iou_matrix(box[None], boxes)[0]
            best = int(overlap.argmax())
            if overlap[best] >= iou_threshold and not matched[image_id][best]:
                matched[image_id][best] = True
                hits[index] = 1
        true_positives = np.cumsum(hits)
        recall = true_positives / total
        precision = true_positives / np.arange(1, len(candidates) + 1)
        precisions.append(average_precision(recall, precision) if len(candidates) else 0.0)
    return float(np.mean(precisions)) if precisions else 0.0
