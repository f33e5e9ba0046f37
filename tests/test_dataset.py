"""The synthetic data set is deterministic and well formed."""

from __future__ import annotations

import hashlib

import numpy as np

from quantize.dataset import IMAGE_SIZE, DatasetSpec, generate, load_images


def _digest(root):
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file():
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


def test_generate_is_deterministic(tmp_path):
    spec = DatasetSpec(train_images=6, val_images=4, seed=5)
    first = generate(tmp_path / "a", spec)
    second = generate(tmp_path / "b", spec)
    assert first.root.name == second.root.name
    assert _digest(first.root) == _digest(second.root)


def test_generated_labels_are_valid(tmp_path):
    dataset = generate(tmp_path, DatasetSpec(train_images=20, val_images=10, seed=1))
    pixels, coco = load_images(dataset, "val")

    assert pixels.shape == (10, IMAGE_SIZE, IMAGE_SIZE, 3)
    assert pixels.dtype == np.uint8
    assert {c["id"] for c in coco["categories"]} == set(range(10))
    assert coco["annotations"]
    for ann in coco["annotations"]:
        x, y, w, h = ann["bbox"]
        assert 0 <= x
        assert 0 <= y
        assert x + w <= IMAGE_SIZE
        assert y + h <= IMAGE_SIZE
        assert 0 <= ann["category_id"] < 10


def test_val_split_independent_of_train_size(tmp_path):
    small = generate(tmp_path, DatasetSpec(train_images=3, val_images=4, seed=9), splits=("val",))
    large = generate(tmp_path, DatasetSpec(train_images=50, val_images=4, seed=9), splits=("val",))
    small_pixels, _ = load_images(small, "val")
    large_pixels, _ = load_images(large, "val")
    np.testing.assert_array_equal(small_pixels, large_pixels)
    assert not (small.root / "train").exists()
