"""Quantization-aware training of the detector on the CPU."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from quantize.boxes import EVAL_SCORE_THRESHOLD, Detections, decode, mean_average_precision
from quantize.dataset import Dataset, load_images
from quantize.detector import DetectorConfig, TinyYolo, save_checkpoint

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser settings; the defaults train the bundled checkpoint."""

    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 0
    threads: int = 2


def to_model_input(pixels: np.ndarray) -> torch.Tensor:
    """Map uint8 N x H x W x 3 pixels to the model's float N x 3 x H x W input (value / 256)."""
    return torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 256.0


def augment(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Apply label-preserving colour changes: a random channel order and, for half the images, inversion.

    Boxes stay where they are, so targets need no change.
    """
    order = torch.randperm(3, generator=generator)
    batch = batch[:, order]
    invert = torch.rand(batch.shape[0], generator=generator) < 0.5
    # Inverted pixels stay on the input grid: 255/256 - x keeps every code exact.
    batch[invert] = 255.0 / 256.0 - batch[invert]
    return batch


def build_targets(coco: dict, count: int, config: DetectorConfig) -> np.ndarray:
    """Return N x grid x grid x 6 targets: [has_object, x offset, y offset, log w, log h, class]."""
    grid, stride = config.grid, config.stride
    targets = np.zeros((count, grid, grid, 6), dtype=np.float32)
    for ann in coco["annotations"]:
        if ann["image_id"] >= count:
            continue
        x, y, w, h = ann["bbox"]
        cx, cy = x + w / 2, y + h / 2
        col, row = min(int(cx // stride), grid - 1), min(int(cy // stride), grid - 1)
        targets[ann["image_id"], row, col] = [
            1.0,
            cx / stride - col,
            cy / stride - row,
            math.log(w / config.anchor),
            math.log(h / config.anchor),
            ann["category_id"],
        ]
    return targets


def detection_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """YOLO-style loss; output is N x C x grid x grid, target N x grid x grid x 6."""
    output = output.permute(0, 2, 3, 1)
    has_object = target[..., 0]
    objectness = F.binary_cross_entropy_with_logits(output[..., 0], has_object, reduction="sum")
    positive = has_object > 0
    if positive.any():
        chosen, wanted = output[positive], target[positive]
        centre = F.mse_loss(torch.sigmoid(chosen[:, 1:3]), wanted[:, 1:3], reduction="sum")
        size = F.mse_loss(chosen[:, 3:5], wanted[:, 3:5], reduction="sum")
        classes = F.cross_entropy(chosen[:, 5:], wanted[:, 5].long(), reduction="sum")
    else:
        centre = size = classes = output.sum() * 0
    return (objectness + 5 * centre + 2 * size + classes) / output.shape[0]


def predict_outputs(model: TinyYolo, pixels: np.ndarray, batch_size: int = 100) -> np.ndarray:
    """Run the Brevitas model; return channels-last outputs N x grid x grid x C."""
    model.eval()
    outputs = []
    with torch.no_grad():
        for start in range(0, len(pixels), batch_size):
            out = model(to_model_input(pixels[start : start + batch_size]))
            outputs.append(out.permute(0, 2, 3, 1).numpy())
    return np.concatenate(outputs)


def evaluate_map(model: TinyYolo, pixels: np.ndarray, coco: dict) -> float:
    """Return mAP@0.5 of the quantized model on the given images."""
    config = model.config
    outputs = predict_outputs(model, pixels)
    detections: dict[int, Detections] = {
        image_id: decode(out, config.stride, config.anchor, EVAL_SCORE_THRESHOLD)
        for image_id, out in enumerate(outputs)
    }
    return mean_average_precision(detections, coco, config.num_classes)


def train(
    dataset: Dataset,
    out: Path,
    config: DetectorConfig = DetectorConfig(),
    settings: TrainConfig = TrainConfig(),
    progress: bool = True,
) -> dict:
    """Train with QAT, keep the checkpoint with the best val mAP@0.5, return its metrics."""
    torch.manual_seed(settings.seed)
    torch.set_num_threads(settings.threads)
    train_pixels, train_coco = load_images(dataset, "train")
    val_pixels, val_coco = load_images(dataset, "val")
    targets = torch.from_numpy(build_targets(train_coco, len(train_pixels), config))
    inputs = to_model_input(train_pixels)

    model = TinyYolo(config)
    optimiser = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    steps_per_epoch = math.ceil(len(inputs) / settings.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=settings.learning_rate, total_steps=settings.epochs * steps_per_epoch
    )
    generator = torch.Generator().manual_seed(settings.seed)
    best = {"val_map50": -1.0}
    started = time.monotonic()
    for epoch in range(settings.epochs):
        model.train()
        order = torch.randperm(len(inputs), generator=generator)
        total = 0.0
        batches = range(0, len(inputs), settings.batch_size)
        for start in tqdm(batches, desc=f"epoch {epoch + 1}/{settings.epochs}", disable=not progress, leave=False):
            index = order[start : start + settings.batch_size]
            loss = detection_loss(model(augment(inputs[index], generator)), targets[index])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total += loss.item() * len(index)
        val_map = evaluate_map(model, val_pixels, val_coco)
        log.info("epoch %d: loss %.3f, val mAP@0.5 %.4f", epoch + 1, total / len(inputs), val_map)
        if val_map > best["val_map50"]:
            best = {
                "val_map50": val_map,
                "epoch": epoch + 1,
                "val_images": len(val_pixels),
                "train_images": len(train_pixels),
                "train_seconds": round(time.monotonic() - started, 1),
            }
            save_checkpoint(model, out, best)
    best["total_seconds"] = round(time.monotonic() - started, 1)
    return best


def fine_tune(
    model: TinyYolo,
    pixels: np.ndarray,
    coco: dict,
    epochs: int,
    learning_rate: float = 3e-4,
    batch_size: int = 32,
    seed: int = 0,
) -> list[float]:
    """Continue QAT of a trained model for whole epochs over the given images; return the mean loss per epoch.

    The learning rate decays from ``learning_rate`` to zero on a cosine, and
    batches get the colour augmentation of ``train``. The model is left in
    eval mode.
    """
    if epochs < 1:
        raise ValueError(f"fine_tune needs at least 1 epoch, got {epochs}")
    generator = torch.Generator().manual_seed(seed)
    inputs = to_model_input(pixels)
    targets = torch.from_numpy(build_targets(coco, len(pixels), model.config))
    optimiser = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=1e-4)
    steps_per_epoch = math.ceil(len(inputs) / batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=epochs * steps_per_epoch)
    losses = []
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(inputs), generator=generator)
        total = 0.0
        for start in range(0, len(inputs), batch_size):
            index = order[start : start + batch_size]
            loss = detection_loss(model(augment(inputs[index], generator)), targets[index])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total += loss.item() * len(index)
        losses.append(total / len(inputs))
        log.info("fine-tune epoch %d/%d: loss %.3f", epoch + 1, epochs, losses[-1])
    model.eval()
    return losses
