"""The ``Accelerator`` API: quantize pixels, run them on a device, decode detections."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Iterable

import numpy as np

from .devices import EmulatedDevice, PynqDevice, XdmaDevice, XrtDevice
from .errors import DeviceUnavailableError, InvalidInputError
from .frames import FRAME_FORMAT, FrameEncoder, frame_words, is_frontend, pack_frames
from .images import letterbox, load_image
from .stream import StreamFormat, pack, quantize_pixels, stream_format, unpack

try:
    # The copy that codesign.bitstream writes beside this file in a project's host/ folder.
    from .boxes import DETECT_SCORE_THRESHOLD, Detections, decode
except ImportError:
    # The codesign source tree, where the decoder lives in the quantize package.
    from quantize.boxes import DETECT_SCORE_THRESHOLD, Detections, decode

META_FILE = "codesign.json"
META_VERSION = 1
# Written by codesign.bitstream: the shell, file names and IP names of the hardware.
HARDWARE_FILE = Path("host") / "accelerator.json"
DEVICES = ("emulated", "pynq", "xrt", "xdma")
# The shell whose bitstream each hardware device drives.
DEVICE_SHELLS = {"pynq": "zynq-ps", "xrt": "xrt", "xdma": "xdma"}
NMS_IOU_THRESHOLD = inspect.signature(decode).parameters["iou_threshold"].default


def load_metadata(project_dir: Path) -> dict:
    """Read and check a project's codesign.json."""
    path = Path(project_dir) / META_FILE
    if not path.is_file():
        raise InvalidInputError(f"{project_dir} is not a codesign project: {META_FILE} is missing")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise InvalidInputError(f"{path}: invalid JSON ({error})") from error
    if meta.get("version") != META_VERSION:
        raise InvalidInputError(f"{path}: unsupported project version {meta.get('version')!r}")
    for key in ("input", "output"):
        layout = meta.get(key, {}).get("layout")
        if layout != "NHWC":
            raise InvalidInputError(f"{path}: {key} layout {layout!r} is not supported, expected NHWC")
    return meta


def load_hardware(project_dir: Path) -> dict:
    """Read host/accelerator.json, which describes the project's bitstream."""
    path = Path(project_dir) / HARDWARE_FILE
    if not path.is_file():
        raise DeviceUnavailableError(
            f"{path} is missing: the project has no bitstream project (codesign.bitstream.write_bitstream_project)"
        )
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise InvalidInputError(f"{path}: invalid JSON ({error})") from error


class Accelerator:
    """A project's accelerator on one device.

    Open it with ``Accelerator.open``. ``run`` returns the raw detector output
    and ``detect`` the decoded boxes after non-maximum suppression. For a
    project with the JPEG front-end, both encode the images into frames
    (frames.py), and ``run_frames`` runs frames prepared elsewhere.
    """

    def __init__(self, project_dir: Path, meta: dict, device, input_format: StreamFormat,
                 output_format: StreamFormat):
        self.project_dir = Path(project_dir)
        self.meta = meta
        self.device = device
        self.input_format = input_format
        self.output_format = output_format
        self.frame_encoder = FrameEncoder(project_dir, meta) if is_frontend(meta) else None

    @classmethod
    def open(
        cls,
        project_dir: Path | str,
        device: str = "emulated",
        *,
        jobs: int | None = None,
        device_index: int = 0,
        xdma_device: str = "/dev/xdma0",
    ) -> "Accelerator":
        """Open the accelerator of the project in project_dir on one device.

        device is one of:
          emulated  the project's C simulation (csim/codesign_tb) in ``jobs`` child processes
          pynq      a Zynq board under PYNQ, with deploy/<name>.bit and .hwh from `make bitstream`
          xrt       an Alveo card or AWS F1 FPGA, with deploy/<name>.xclbin, card number ``device_index``
          xdma      a PCIe card with the XDMA design, through ``xdma_device``_h2c_0 and _c2h_0
        """
        project_dir = Path(project_dir)
        if device not in DEVICES:
            raise InvalidInputError(f"unknown device {device!r}, expected one of {', '.join(DEVICES)}")
        meta = load_metadata(project_dir)
        # A front-end project's input stream carries frame bytes, one slot per image.
        input_format = FRAME_FORMAT if is_frontend(meta) else stream_format(meta["input"])
        output_format = stream_format(meta["output"])
        if device == "emulated":
            backend = EmulatedDevice(project_dir, input_format, output_format, jobs=jobs)
            return cls(project_dir, meta, backend, input_format, output_format)

        hardware = load_hardware(project_dir)
        if hardware.get("shell") != DEVICE_SHELLS[device]:
            raise DeviceUnavailableError(
                f"the bitstream project is for {hardware.get('board')} (shell {hardware.get('shell')}); "
                f"device {device!r} needs shell {DEVICE_SHELLS[device]}"
            )
        for name, fmt in (("input_stream", input_format), ("output_stream", output_format)):
            if hardware.get(name) != fmt.to_dict():
                raise InvalidInputError(
                    f"{project_dir / HARDWARE_FILE}: {name} differs from the one that {META_FILE} gives; "
                    "write the bitstream project again (codesign.bitstream.write_bitstream_project)"
                )
        if device == "pynq":
            backend = PynqDevice(project_dir / hardware["bitstream"], hardware["dma"], input_format, output_format)
        elif device == "xrt":
            backend = XrtDevice(project_dir / hardware["xclbin"], hardware["kernel"], input_format, output_format,
                                device_index=device_index)
        else:
            backend = XdmaDevice(xdma_device, input_format, output_format)
        return cls(project_dir, meta, backend, input_format, output_format)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Model input as (height, width, channels)."""
        return tuple(self.meta["input"]["shape"][1:])

    @property
    def output_shape(self) -> tuple[int, ...]:
        """Raw output of one image, channels last."""
        return tuple(self.meta["output"]["shape"][1:])

    @property
    def class_names(self) -> list[str]:
        detector = self._detector()
        return detector.get("class_names") or [str(index) for index in range(detector["num_classes"])]

    def quantize(self, pixels: np.ndarray) -> np.ndarray:
        """Return the input codes (N x values) of uint8 N x H x W x C pixels."""
        self._reject_frontend("quantize")
        pixels = np.asarray(pixels)
        if pixels.ndim != 4 or pixels.shape[1:] != self.input_shape:
            raise InvalidInputError(
                f"expected pixels of shape (images, {', '.join(map(str, self.input_shape))}), got {pixels.shape}"
            )
        codes = quantize_pixels(pixels, self.meta["input"]["quantizer"])
        return codes.reshape(codes.shape[0], -1)

    def run_codes(self, codes: np.ndarray) -> np.ndarray:
        """Run N x values input codes on the device; return N x values output codes."""
        self._reject_frontend("run_codes")
        words = pack(codes, self.input_format)
        return unpack(self.device.transfer(words), self.output_format)

    def run_frames(self, frames: list[bytes]) -> np.ndarray:
        """Run JPEG frames (2-byte big-endian payload length, then the payload) on a front-end project's device.

        Returns N x values output codes. Only the words that each frame takes
        travel over a streaming link.
        """
        if self.frame_encoder is None:
            raise InvalidInputError(f"{self.project_dir} has no JPEG front-end; use run() or run_codes()")
        frames = [bytes(frame) for frame in frames]
        for index, frame in enumerate(frames):
            if len(frame) < 2 or int.from_bytes(frame[:2], "big") != len(frame) - 2:
                raise InvalidInputError(f"frame {index}: the length field does not match the {len(frame)}-byte frame")
        if not frames:
            return np.zeros((0, self.output_format.values), dtype=np.int64)
        words = pack_frames(frames)
        return unpack(self.device.transfer_frames(words, [frame_words(frame) for frame in frames]), self.output_format)

    def run(self, pixels: np.ndarray) -> np.ndarray:
        """Run uint8 N x H x W x C pixels (one H x W x C image also works); return float64 N x outputs, NHWC.

        Output values are the exact fixed-point values: code * 2**-frac.
        """
        pixels = np.asarray(pixels)
        if pixels.ndim == 3:
            pixels = pixels[None]
        if self.frame_encoder is not None:
            codes = self.run_frames(self.frame_encoder.encode(pixels))
        else:
            codes = self.run_codes(self.quantize(pixels))
        values = np.ldexp(codes.astype(np.float64), -int(self.meta["output"]["frac"]))
        return values.reshape(codes.shape[0], *self.output_shape)

    def detect(
        self,
        images: Iterable[np.ndarray | Path | str],
        score_threshold: float = DETECT_SCORE_THRESHOLD,
        iou_threshold: float = NMS_IOU_THRESHOLD,
    ) -> list[Detections]:
        """Detect objects in images: file paths or H x W x 3 uint8 RGB arrays of any size.

        Images of another size than the model input are letterboxed (see
        images.py), and the boxes come back as (x, y, w, h) in each image's own
        pixels, not clipped to the image.
        """
        detector = self._detector()
        height, width, _ = self.input_shape
        batch, transforms = [], []
        for image in images:
            if isinstance(image, (str, Path)):
                image = load_image(image)
            pixels, transform = letterbox(image, width, height)
            batch.append(pixels)
            transforms.append(transform)
        if not batch:
            return []

        outputs = self.run(np.stack(batch))
        results = []
        for output, transform in zip(outputs, transforms):
            found = decode(output, detector["stride"], detector["anchor"], score_threshold, iou_threshold)
            if not transform.is_identity:
                found = Detections(transform.to_image(found.boxes), found.scores, found.classes)
            results.append(found)
        return results

    def _reject_frontend(self, method: str) -> None:
        if self.frame_encoder is not None:
            raise InvalidInputError(
                f"{self.project_dir} reads JPEG frames, not pixel codes, so {method}() does not apply; "
                "use run() or run_frames()"
            )

    def _detector(self) -> dict:
        detector = self.meta.get("detector")
        if not detector:
            raise InvalidInputError(f"{self.project_dir / META_FILE} records no detector (stride, anchor); use run()")
        return detector

    def close(self) -> None:
        self.device.close()

    def __enter__(self) -> "Accelerator":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
