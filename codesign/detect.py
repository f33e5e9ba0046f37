"""The detect job: run image files through a project's emulated accelerator and annotate them.

Each JPEG or PNG file is read as 8-bit RGB. Greyscale, palette, CMYK and
16-bit images are converted, and transparency is composited onto white.
The image is then letterboxed to the model's input size. It is scaled with
Pillow's bilinear filter by min(model width / width, model height / height),
so the aspect ratio is kept, and centred on a mid-grey canvas. Boxes are
mapped back to the original image's pixels and are not clipped to it. The images run on the
runtime's emulated device, which is the project's C simulation.

Written into the output folder:

    detections.json     {"images": [...], "categories": [...], "results": [...]}, where results
                        is a COCO detection results list: image_id, category_id, bbox [x, y, w, h], score
    annotated/<file>    each image with its boxes, class names and scores drawn
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from codesign.errors import InputError
from codesign.flow import check_output_folder
from codesign.runtime import Accelerator, Detections, InvalidInputError, load_image
from codesign.runtime.accelerator import DETECT_SCORE_THRESHOLD, NMS_IOU_THRESHOLD
from codesign.runtime.errors import DeviceUnavailableError
from codesign.runtime.images import PAD_VALUE

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
DETECTIONS_FILE = "detections.json"
ANNOTATED_DIR = "annotated"
# Images decoded and simulated together. It bounds memory: 16 decoded 12-megapixel
# photos take about 0.6 GB.
BATCH_IMAGES = 16
JPEG_QUALITY = 90
# Box colours by class id, distinct on photographs.
PALETTE = [
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
]


@dataclass
class ImageResult:
    """Detections of one input image."""

    image_id: int
    path: Path
    width: int
    height: int
    detections: Detections
    annotated: Path


@dataclass
class DetectResult:
    """Outcome of one detect job."""

    out: Path
    detections_file: Path
    images: list[ImageResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def detection_count(self) -> int:
        return sum(len(image.detections) for image in self.images)


def find_images(images: Path) -> list[Path]:
    """Return the JPEG and PNG files of a folder (not its subfolders), sorted, or the one file given."""
    images = Path(images)
    if images.is_file():
        if images.suffix.lower() not in IMAGE_SUFFIXES:
            raise InputError(f"{images} is not a JPEG or PNG file (expected {', '.join(IMAGE_SUFFIXES)})")
        return [images]
    if not images.is_dir():
        raise InputError(f"image file or folder not found: {images}")
    found = sorted(p for p in images.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not found:
        raise InputError(f"no JPEG or PNG files in {images}")
    return found


def detect(
    project_dir: Path, images: Path, out: Path, force: bool = False, jobs: int | None = None
) -> DetectResult:
    """Detect objects in the images (a folder or one file) and write the results into out.

    An existing non-empty out is replaced only with force. Everything is
    written to a staging folder first, so a failure leaves out untouched.
    Raises InputError for a missing project or image, an unreadable image, or
    an output folder that is not empty (without force) or contains the inputs.
    """
    started = time.monotonic()
    project_dir, images, out = Path(project_dir), Path(images), Path(out).resolve()
    if jobs is not None and jobs < 0:
        raise InputError(f"--jobs must be 0 (all cores) or more, got {jobs}")
    paths = find_images(images)
    _check_output(out, force, images, project_dir)
    try:
        accelerator = Accelerator.open(project_dir, "emulated", jobs=jobs)
    except (InvalidInputError, DeviceUnavailableError) as error:
        raise InputError(str(error)) from error

    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    (staging / ANNOTATED_DIR).mkdir(parents=True)
    try:
        with accelerator:
            results = _detect_into(accelerator, paths, staging, out)
        _write_detections(staging / DETECTIONS_FILE, accelerator, project_dir, results)
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)

    result = DetectResult(out=out, detections_file=out / DETECTIONS_FILE, images=results,
                          seconds=time.monotonic() - started)
    log.info("detected %d objects in %d images in %.1f s", result.detection_count, len(results), result.seconds)
    return result


def _check_output(out: Path, force: bool, images: Path, project_dir: Path) -> None:
    for name, path in (("the input images", images), ("the project", project_dir)):
        if path.resolve().is_relative_to(out):
            raise InputError(f"output folder {out} contains {name} ({path}); choose another folder")
    check_output_folder(out, force, marker=DETECTIONS_FILE, kind="codesign detect output folder")


def _detect_into(accelerator: Accelerator, paths: list[Path], staging: Path, out: Path) -> list[ImageResult]:
    results = []
    for first in range(0, len(paths), BATCH_IMAGES):
        batch = paths[first : first + BATCH_IMAGES]
        try:
            pixels = [load_image(path) for path in batch]
        except InvalidInputError as error:
            raise InputError(str(error)) from error
        found = accelerator.detect(pixels)
        for offset, (path, image, detections) in enumerate(zip(batch, pixels, found)):
            annotated = Path(ANNOTATED_DIR) / path.name
            _save(annotate(image, detections, accelerator.class_names), staging / annotated)
            height, width = image.shape[:2]
            results.append(ImageResult(first + offset + 1, path, width, height, detections, out / annotated))
    return results


def annotate(image: np.ndarray, detections: Detections, class_names: list[str]) -> Image.Image:
    """Draw each box with its class name and score onto a copy of an RGB image."""
    canvas = Image.fromarray(image)
    draw = ImageDraw.Draw(canvas)
    line_width = max(1, round(min(canvas.size) / 200))
    font = ImageFont.load_default(size=max(10, round(min(canvas.size) / 30)))
    for box, score, class_id in zip(detections.boxes, detections.scores, detections.classes):
        x, y, w, h = (float(v) for v in box)
        colour = PALETTE[int(class_id) % len(PALETTE)]
        draw.rectangle([x, y, x + w, y + h], outline=colour, width=line_width)

        label = f"{class_names[int(class_id)]} {score:.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
        label_height = bottom - top + 4
        # The label sits above the box, or inside it at the top edge of the image.
        label_y = y - label_height if y - label_height >= 0 else y
        draw.rectangle([x, label_y, x + right - left + 4, label_y + label_height], fill=colour)
        draw.text((x + 2, label_y + 2 - top), label, fill=(0, 0, 0), font=font)
    return canvas


def _save(image: Image.Image, path: Path) -> None:
    if path.suffix.lower() in (".jpg", ".jpeg"):
        image.save(path, quality=JPEG_QUALITY)
    else:
        image.save(path)


def _write_detections(path: Path, accelerator: Accelerator, project_dir: Path, results: list[ImageResult]) -> None:
    height, width, _ = accelerator.input_shape
    document = {
        "project": str(Path(project_dir).resolve()),
        "device": "emulated",
        "input_size": {"width": width, "height": height},
        "resize": {"method": "letterbox", "filter": "bilinear", "pad_value": PAD_VALUE},
        "score_threshold": DETECT_SCORE_THRESHOLD,
        "iou_threshold": NMS_IOU_THRESHOLD,
        "categories": [{"id": index, "name": name} for index, name in enumerate(accelerator.class_names)],
        "images": [
            {
                "id": image.image_id,
                "file_name": image.path.name,
                "path": str(image.path.resolve()),
                "width": image.width,
                "height": image.height,
                "annotated": f"{ANNOTATED_DIR}/{image.annotated.name}",
            }
            for image in results
        ],
        "results": [row for image in results for row in image.detections.to_coco(image.image_id)],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
