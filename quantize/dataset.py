"""Synthetic object-detection data set built from scikit-learn's handwritten digits.

Each image is an RGB JPEG with 1 to 4 digits (10 classes) pasted at random
positions and sizes on a cluttered background. Labels are COCO-style JSON.
The generator is deterministic for a given seed and downloads nothing: the
digits are the 1,797 real 8x8 scans that scikit-learn ships.

Train and val images use disjoint sets of digit scans, so val measures how the
detector does on handwriting it never saw.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

log = logging.getLogger(__name__)

IMAGE_SIZE = 96
NUM_CLASSES = 10
CLASS_NAMES = [str(d) for d in range(NUM_CLASSES)]
MIN_DIGIT_SIZE = 16
MAX_DIGIT_SIZE = 40
JPEG_QUALITY = 90
# Scans 0..1399 feed the train split, 1400..1796 the val split.
TRAIN_SCAN_COUNT = 1400
DATA_VERSION = 2



@dataclass(frozen=True)
class DatasetSpec:
    """Sizes and seed of a data set. The same spec always yields the same files."""

    train_images: int = 12000
    val_images: int = 1000
    seed: int = 2020


@dataclass(frozen=True)
class Dataset:
    """A generated data set on disk: ``root/<split>/`` contains the JPEGs and ``annotations.json``."""

    root: Path
    spec: DatasetSpec

    def split_dir(self, split: str) -> Path:
        return self.root / split

    def annotations(self, split: str) -> dict:
        with open(self.root / split / "annotations.json") as f:
            return json.load(f)


def default_root() -> Path:
    """Return the data cache folder: $CODESIGN_DATA, else .data/ in the repository."""
    env = os.environ.get("CODESIGN_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / ".data"


def _background(rng: np.random.Generator) -> np.ndarray:
    """Draw a cluttered background: a colour gradient, noise, lines and blobs."""
    size = IMAGE_SIZE
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    base = rng.uniform(0, 160, size=3)
    slope = rng.uniform(-80, 80, size=(2, 3))
    image = base + xx[..., None] * slope[0] + yy[..., None] * slope[1]
    image += rng.normal(0, rng.uniform(4, 20), size=(size, size, 3))

    # Straight strokes and filled blobs in random colours act as distractors.
    for _ in range(rng.integers(2, 7)):
        colour = rng.uniform(0, 255, size=3)
        if rng.random() < 0.5:
            x0, y0, x1, y1 = rng.uniform(0, size, size=4)
            steps = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
            xs = np.linspace(x0, x1, steps).astype(int).clip(0, size - 1)
            ys = np.linspace(y0, y1, steps).astype(int).clip(0, size - 1)
            image[ys, xs] = colour
        else:
            cx, cy = rng.uniform(0, size, size=2)
            radius = rng.uniform(2, 7)
            mask = (xx * size - cx) ** 2 + (yy * size - cy) ** 2 < radius**2
            image[mask] = colour
    return image


def _paste_digit(image, scan, box, rng):
    """Blend one 8x8 scan (values 0..16) into image at box = (x, y, w, h)."""
    x, y, w, h = box
    alpha = Image.fromarray((scan * (255.0 / 16.0)).astype(np.uint8)).resize((w, h), Image.BILINEAR)
    alpha = np.asarray(alpha, dtype=np.float32)[..., None] / 255.0
    region = image[y : y + h, x : x + w]
    # The digit colour contrasts with the local background so it stays legible.
    local = region.mean(axis=(0, 1))
    colour = np.where(local > 128, rng.uniform(0, 60, size=3), rng.uniform(190, 255, size=3))
    image[y : y + h, x : x + w] = region * (1 - alpha) + colour * alpha


def _overlaps(box, boxes) -> bool:
    x, y, w, h = box
    for bx, by, bw, bh in boxes:
        if x < bx + bw and bx < x + w and y < by + bh and by < y + h:
            return True
    return False


def _make_image(rng, scans, targets):
    image = _background(rng)
    boxes, labels = [], []
    for _ in range(rng.integers(1, 5)):
        for _attempt in range(20):
            w = int(rng.integers(MIN_DIGIT_SIZE, MAX_DIGIT_SIZE + 1))
            h = int(np.clip(w * rng.uniform(0.8, 1.25), MIN_DIGIT_SIZE, MAX_DIGIT_SIZE))
            box = (int(rng.integers(0, IMAGE_SIZE - w + 1)), int(rng.integers(0, IMAGE_SIZE - h + 1)), w, h)
            if not _overlaps(box, boxes):
                index = rng.integers(0, len(scans))
                _paste_digit(image, scans[index], box, rng)
                boxes.append(box)
                labels.append(int(targets[index]))
                break
    return np.clip(image, 0, 255).astype(np.uint8), boxes, labels


def _write_split(folder: Path, split: str, count: int, rng, scans, targets) -> None:
    folder.mkdir(parents=True)
    images, annotations = [], []
    for image_id in range(count):
        pixels, boxes, labels = _make_image(rng, scans, targets)
        file_name = f"{split}_{image_id:05d}.jpg"
        Image.fromarray(pixels).save(folder / file_name, quality=JPEG_QUALITY)
        images.append({"id": image_id, "file_name": file_name, "width": IMAGE_SIZE, "height": IMAGE_SIZE})
        for box, label in zip(boxes, labels):
            annotations.append(
                {
                    "id": len(annotations),
                    "image_id": image_id,
                    "category_id": label,
                    "bbox": [float(v) for v in box],
                    "area": float(box[2] * box[3]),
                    "iscrowd": 0,
                }
            )
    categories = [{"id": i, "name": name} for i, name in enumerate(CLASS_NAMES)]
    with open(folder / "annotations.json", "w") as f:
        json.dump({"images": images, "annotations": annotations, "categories": categories}, f)


def generate(
    root: Path | None = None, spec: DatasetSpec = DatasetSpec(), splits: tuple[str, ...] = ("train", "val")
) -> Dataset:
    """Write the requested splits unless they are already there; return the data set.

    Each spec gets its own folder under root, and each split is written to a
    temporary folder and renamed into place, so concurrent runs never see a
    half-written split. Each split has its own random stream: the val images
    do not depend on the size of the train split.
    """
    from sklearn.datasets import load_digits

    base = Path(root) if root is not None else default_root()
    folder = base / f"digits-v{DATA_VERSION}-seed{spec.seed}-train{spec.train_images}-val{spec.val_images}"
    dataset = Dataset(folder, spec)
    digits = None
    for split in splits:
        target = folder / split
        if (target / "annotations.json").is_file():
            continue
        if digits is None:
            digits = load_digits()
        count = spec.train_images if split == "train" else spec.val_images
        scans = slice(0, TRAIN_SCAN_COUNT) if split == "train" else slice(TRAIN_SCAN_COUNT, None)
        log.info("generating %d %s images in %s", count, split, target)
        staging = folder / f".{split}.partial-{os.getpid()}"
        if staging.exists():
            shutil.rmtree(staging)
        rng = np.random.default_rng([spec.seed, 0 if split == "train" else 1])
        _write_split(staging, split, count, rng, digits.images[scans], digits.target[scans])
        try:
            staging.rename(target)
        except OSError:
            # Another process finished the same split first; its files are identical.
            shutil.rmtree(staging)
    return dataset


def load_images(dataset: Dataset, split: str, count: int | None = None) -> tuple[np.ndarray, dict]:
    """Return (uint8 images of shape N x H x W x 3, COCO annotations) for a split."""
    coco = dataset.annotations(split)
    entries = coco["images"][:count] if count is not None else coco["images"]
    folder = dataset.split_dir(split)
    pixels = np.stack([np.asarray(Image.open(folder / e["file_name"]).convert("RGB")) for e in entries])
    return pixels, coco
