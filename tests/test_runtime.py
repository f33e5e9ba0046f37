"""The host runtime (codesign.runtime and its copy in host/) and the detect job."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from codesign import tensorfile
from codesign.bitstream import write_bitstream_project
from codesign.boards import load_board
from codesign.csim import _input_quantizer, load_val_pixels
from codesign.detect import detect
from codesign.errors import InputError
from codesign.export import load_qonnx
from codesign.project import load_project, pixels_to_model_input, reference_codes
from codesign.reference import QuantParams, Reference
from codesign.runtime import (
    Accelerator,
    DeviceUnavailableError,
    InvalidInputError,
    StreamFormat,
    letterbox,
    load_image,
    pack,
    quantize_pixels,
    unpack,
)
from codesign.runtime.devices import EmulatedDevice
from codesign.runtime.images import PAD_VALUE, Letterbox
from codesign.runtime.stream import stream_format
from quantize.boxes import decode

REPO = Path(__file__).resolve().parent.parent
JPEG_SAMPLES = REPO.parent / "shared" / "jpeg-samples"


def software_outputs(project_dir: Path, pixels: np.ndarray) -> np.ndarray:
    """Run the QONNX reference on uint8 NHWC pixels; return float64 NHWC outputs, as codesign csim does."""
    project = load_project(project_dir)
    reference = Reference(load_qonnx(project.reference_model).model)
    values, _ = reference_codes(reference, pixels_to_model_input(pixels), project.output_frac)
    return values.astype(np.float64)


def software_detections(project_dir: Path, pixels: np.ndarray):
    detector = load_project(project_dir).meta["detector"]
    return [decode(output, detector["stride"], detector["anchor"]) for output in software_outputs(project_dir, pixels)]


# Stream format


@pytest.mark.parametrize(
    "fmt",
    [
        StreamFormat(values=27648, value_bits=8, signed=False),
        StreamFormat(values=540, value_bits=16, signed=True),
        StreamFormat(values=7, value_bits=12, signed=True),
        StreamFormat(values=9, value_bits=1, signed=False),
        StreamFormat(values=5, value_bits=33, signed=True),
        StreamFormat(values=3, value_bits=64, signed=True),
    ],
)
def test_stream_pack_round_trip(fmt):
    rng = np.random.default_rng(fmt.values)
    codes = rng.integers(fmt.code_min, fmt.code_max, size=(3, fmt.values), endpoint=True, dtype=np.int64)
    codes[0, 0], codes[-1, -1] = fmt.code_min, fmt.code_max

    words = pack(codes, fmt)

    assert words.dtype == np.uint64
    assert words.shape == (3, fmt.words)
    np.testing.assert_array_equal(unpack(words, fmt), codes)


def test_stream_pack_layout():
    fmt = StreamFormat(values=5, value_bits=12, signed=True)

    words = pack(np.array([[1436, 560, 45, -943, -1]]), fmt)

    assert fmt.container_bits == 16
    assert [hex(int(word)) for word in words[0]] == ["0xc51002d0230059c", "0xfff"]


def test_stream_pack_rejects_out_of_range():
    fmt = StreamFormat(values=2, value_bits=8, signed=False)

    with pytest.raises(InvalidInputError, match="outside the 8-bit range 0..255"):
        pack(np.array([[0, 256]]), fmt)


# Input quantization


def test_quantize_matches_project_quantizer(bundled_project):
    project = load_project(bundled_project)
    rng = np.random.default_rng(7)
    pixels = np.concatenate([load_val_pixels(project, 4), rng.integers(0, 256, (2, 96, 96, 3), dtype=np.uint8)])
    expected = _input_quantizer(project).quantize_codes(pixels_to_model_input(pixels)).transpose(0, 2, 3, 1)

    codes = quantize_pixels(pixels, project.meta["input"]["quantizer"])

    np.testing.assert_array_equal(codes, expected)


@pytest.mark.parametrize(
    "quantizer",
    [
        {"scale": 0.0123, "zero_point": 3.0, "bit_width": 6.0, "signed": False, "narrow": False},
        {"scale": 0.0078125, "zero_point": 0.0, "bit_width": 8.0, "signed": True, "narrow": True},
        {"scale": 0.003, "zero_point": -2.0, "bit_width": 4.0, "signed": True, "narrow": False},
    ],
)
def test_quantize_matches_qonnx_quant(quantizer):
    pixels = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1)
    params = QuantParams(
        scale=np.float32(quantizer["scale"]), zero_point=np.float32(quantizer["zero_point"]),
        bit_width=quantizer["bit_width"], signed=quantizer["signed"], narrow=quantizer["narrow"],
        rounding_mode="ROUND",
    )

    codes = quantize_pixels(pixels, quantizer)

    np.testing.assert_array_equal(codes, params.quantize_codes(pixels.astype(np.float32) / 256.0))


# Images


def test_letterbox_maps_boxes_back():
    image = np.zeros((96, 192, 3), dtype=np.uint8)

    pixels, transform = letterbox(image, 96, 96)
    boxes = transform.to_image(np.array([[10.0, 30.0, 20.0, 10.0]]))

    assert pixels.shape == (96, 96, 3)
    assert transform == Letterbox(scale_x=2.0, scale_y=2.0, pad_x=0, pad_y=24)
    assert (pixels[:24] == PAD_VALUE).all()
    assert (pixels[72:] == PAD_VALUE).all()
    np.testing.assert_array_equal(boxes, [[20.0, 12.0, 40.0, 20.0]])


def test_letterbox_keeps_model_sized_image():
    image = np.random.default_rng(3).integers(0, 256, (96, 96, 3), dtype=np.uint8)

    pixels, transform = letterbox(image, 96, 96)

    assert transform.is_identity
    assert pixels is image


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "LA", "CMYK", "I;16", "1"])
def test_load_image_converts_mode_to_rgb(tmp_path, mode):
    source = Image.new("RGB", (20, 10), (200, 40, 90)).convert(mode)
    path = tmp_path / ("image.jpg" if mode in ("L", "CMYK") else "image.png")
    source.save(path)

    pixels = load_image(path)

    assert pixels.shape == (10, 20, 3)
    assert pixels.dtype == np.uint8


def test_load_image_composites_transparency_on_white(tmp_path):
    image = Image.new("RGBA", (4, 4), (255, 0, 0, 255))
    image.putpixel((0, 0), (0, 0, 0, 0))
    image.save(tmp_path / "alpha.png")

    pixels = load_image(tmp_path / "alpha.png")

    assert tuple(pixels[0, 0]) == (255, 255, 255)
    assert tuple(pixels[1, 1]) == (255, 0, 0)


def test_load_image_scales_16_bit_grey(tmp_path):
    Image.fromarray(np.array([[0, 65535, 257 * 100]], dtype=np.uint16)).save(tmp_path / "grey16.png")

    pixels = load_image(tmp_path / "grey16.png")

    np.testing.assert_array_equal(pixels[0, :, 0], [0, 255, 100])


@pytest.mark.parametrize("content", [b"", b"not an image at all", b"\xff\xd8\xff\xe0" + b"\x00" * 40])
def test_load_image_rejects_corrupt_file(tmp_path, content):
    path = tmp_path / "broken.jpg"
    path.write_bytes(content)

    with pytest.raises(InvalidInputError) as caught:
        load_image(path)

    assert str(path) in str(caught.value)
    assert "\n" not in str(caught.value)


# Emulated device against the software reference


@pytest.mark.slow
def test_emulated_detections_equal_reference(bundled_project):
    pixels = load_val_pixels(load_project(bundled_project), 8)
    expected_outputs = software_outputs(bundled_project, pixels)
    expected = software_detections(bundled_project, pixels)

    with Accelerator.open(bundled_project, "emulated") as accelerator:
        outputs = accelerator.run(pixels)
        found = accelerator.detect(list(pixels))

    np.testing.assert_array_equal(outputs, expected_outputs)
    assert sum(len(d) for d in expected) > 0
    assert len(found) == len(expected)
    for index, (got, want) in enumerate(zip(found, expected)):
        assert got.equals(want), f"val image {index}: {got} != {want}"


@pytest.mark.slow
def test_emulated_codes_equal_testbench_data(bundled_project):
    codes = tensorfile.read(bundled_project / "hls" / "tb_data" / "inputs.bin")
    expected = tensorfile.read(bundled_project / "hls" / "tb_data" / "expected.bin")

    with Accelerator.open(bundled_project, "emulated", jobs=2) as accelerator:
        got = accelerator.run_codes(codes)

    np.testing.assert_array_equal(got, expected)


@pytest.mark.slow
def test_emulated_detect_letterboxes_large_image(bundled_project):
    rng = np.random.default_rng(11)
    image = rng.integers(0, 256, (150, 300, 3), dtype=np.uint8)
    pixels, transform = letterbox(image, 96, 96)
    (want,) = software_detections(bundled_project, pixels[None])

    with Accelerator.open(bundled_project) as accelerator:
        (got,) = accelerator.detect([image])

    np.testing.assert_array_equal(got.boxes, transform.to_image(want.boxes))
    np.testing.assert_array_equal(got.scores, want.scores)
    np.testing.assert_array_equal(got.classes, want.classes)


def test_run_rejects_wrong_shape(bundled_project):
    with Accelerator.open(bundled_project) as accelerator:
        with pytest.raises(InvalidInputError, match=r"expected pixels of shape \(images, 96, 96, 3\)"):
            accelerator.run(np.zeros((1, 64, 64, 3), dtype=np.uint8))
        with pytest.raises(InvalidInputError, match="pixels must be uint8"):
            accelerator.run(np.zeros((1, 96, 96, 3), dtype=np.float32))


def test_open_rejects_unknown_device(bundled_project):
    with pytest.raises(InvalidInputError, match="unknown device 'fpga'"):
        Accelerator.open(bundled_project, "fpga")


def test_open_rejects_missing_project(tmp_path):
    with pytest.raises(InvalidInputError, match="codesign.json is missing"):
        Accelerator.open(tmp_path, "emulated")


def test_open_hardware_without_bitstream_project(project_copy):
    (project_copy / "host" / "accelerator.json").unlink()

    with pytest.raises(DeviceUnavailableError, match="accelerator.json is missing"):
        Accelerator.open(project_copy, "pynq")


# Hardware devices, driven through stand-ins for their drivers


def retarget(bundled_project: Path, tmp_path: Path, board_name: str) -> Path:
    root = tmp_path / f"project-{board_name}"
    shutil.copytree(bundled_project, root, symlinks=True)
    write_bitstream_project(load_project(root), load_board(board_name))
    return root


def fake_card(bundled_project: Path):
    """Return a function that computes output words from input words, as the card would."""
    meta = load_project(bundled_project).meta
    return EmulatedDevice(bundled_project, stream_format(meta["input"]), stream_format(meta["output"])).transfer


def fake_pynq_module(card, events: list[str]) -> types.ModuleType:
    """A stand-in for PYNQ: buffers with a device-side copy and an AXI DMA whose channels run the card."""
    module = types.ModuleType("pynq")

    class Buffer(np.ndarray):
        def flush(self):
            events.append("flush")
            self.device_copy = np.array(self)

        def invalidate(self):
            events.append("invalidate")
            self[:] = self.device_copy

        def freebuffer(self):
            events.append("freebuffer")

    def allocate(shape, dtype):
        buffer = np.zeros(shape, dtype=dtype).view(Buffer)
        buffer.device_copy = np.zeros(shape, dtype=dtype)
        return buffer

    class Channel:
        def __init__(self, name):
            self.name = name

        def transfer(self, buffer):
            events.append(f"{self.name}.transfer")
            if self.name == "recv":
                dma.receive_buffer = buffer
            else:
                if dma.receive_buffer is None:
                    raise RuntimeError("send started before a receive buffer was set: the stream would stall")
                dma.receive_buffer.device_copy = card(buffer.device_copy[None])[0]
                dma.receive_buffer = None

        def wait(self):
            events.append(f"{self.name}.wait")

    class Dma:
        def __init__(self):
            self.receive_buffer = None
            self.sendchannel = Channel("send")
            self.recvchannel = Channel("recv")

    dma = Dma()

    class Overlay:
        def __init__(self, path):
            events.append(f"overlay {Path(path).name}")
            self.axi_dma_0 = dma

    module.allocate = allocate
    module.Overlay = Overlay
    return module


def test_pynq_device_with_stand_in_driver(bundled_project, tmp_path, monkeypatch):
    root = retarget(bundled_project, tmp_path, "pynq-z2")
    (root / "deploy").mkdir()
    (root / "deploy" / "codesign.bit").write_bytes(b"bit")
    (root / "deploy" / "codesign.hwh").write_text("<hwh/>")
    events: list[str] = []
    monkeypatch.setitem(sys.modules, "pynq", fake_pynq_module(fake_card(bundled_project), events))
    pixels = load_val_pixels(load_project(bundled_project), 2)

    with Accelerator.open(root, "pynq") as accelerator:
        found = accelerator.detect(list(pixels))

    assert events[0] == "overlay codesign.bit"
    assert events[1:8] == ["flush", "recv.transfer", "send.transfer", "send.wait", "recv.wait", "invalidate", "flush"]
    assert events[-2:] == ["freebuffer", "freebuffer"]
    for got, want in zip(found, software_detections(bundled_project, pixels)):
        assert got.equals(want)


def test_pynq_device_without_pynq(bundled_project, tmp_path, monkeypatch):
    root = retarget(bundled_project, tmp_path, "pynq-z2")
    monkeypatch.setitem(sys.modules, "pynq", None)

    with pytest.raises(DeviceUnavailableError, match="needs the pynq package"):
        Accelerator.open(root, "pynq")


def test_pynq_device_without_bitstream(bundled_project, tmp_path, monkeypatch):
    root = retarget(bundled_project, tmp_path, "pynq-z2")
    monkeypatch.setitem(sys.modules, "pynq", types.ModuleType("pynq"))

    with pytest.raises(DeviceUnavailableError, match="run `make bitstream`"):
        Accelerator.open(root, "pynq")


def fake_pyxrt_module(card, events: list[str]) -> types.ModuleType:
    """A stand-in for pyxrt: buffer objects with a device-side copy and a kernel that runs the card."""
    module = types.ModuleType("pyxrt")
    module.xclBOSyncDirection = types.SimpleNamespace(XCL_BO_SYNC_BO_TO_DEVICE="to", XCL_BO_SYNC_BO_FROM_DEVICE="from")
    module.ert_cmd_state = types.SimpleNamespace(ERT_CMD_STATE_COMPLETED="completed")

    class Bo:
        normal = "normal"

        def __init__(self, device, size, flags, group):
            events.append(f"bo {size} group {group}")
            self.host = bytearray(size)
            self.device = bytearray(size)

        def write(self, data, offset):
            self.host[offset : offset + len(data)] = data

        def sync(self, direction, size, offset):
            events.append(f"sync {direction} {size}")
            if direction == "to":
                self.device[offset : offset + size] = self.host[offset : offset + size]
            else:
                self.host[offset : offset + size] = self.device[offset : offset + size]

        def read(self, size, offset):
            return np.frombuffer(bytes(self.host[offset : offset + size]), dtype=np.int8)

    class Run:
        def wait(self):
            return "completed"

    class Kernel:
        def __init__(self, device, uuid, name):
            events.append(f"kernel {name}")

        def group_id(self, index):
            return index

        def __call__(self, input_bo, output_bo, count):
            events.append(f"run {count}")
            words = np.frombuffer(bytes(input_bo.device), dtype="<u8").reshape(count, -1)
            output_bo.device[:] = card(words).astype("<u8").tobytes()
            return Run()

    class Device:
        def __init__(self, index):
            events.append(f"device {index}")

        def load_xclbin(self, xclbin):
            events.append(f"load {xclbin.path.name}")
            return "uuid"

    module.bo = Bo
    module.kernel = Kernel
    module.device = Device
    module.xclbin = lambda path: types.SimpleNamespace(path=Path(path))
    return module


def test_xrt_device_with_stand_in_driver(bundled_project, tmp_path, monkeypatch):
    root = retarget(bundled_project, tmp_path, "alveo-u50")
    (root / "deploy").mkdir()
    (root / "deploy" / "codesign.xclbin").write_bytes(b"xclbin")
    events: list[str] = []
    monkeypatch.setitem(sys.modules, "pyxrt", fake_pyxrt_module(fake_card(bundled_project), events))
    pixels = load_val_pixels(load_project(bundled_project), 3)

    with Accelerator.open(root, "xrt", device_index=1) as accelerator:
        outputs = accelerator.run(pixels)

    np.testing.assert_array_equal(outputs, software_outputs(bundled_project, pixels))
    assert events[:3] == ["device 1", "load codesign.xclbin", "kernel codesign_kernel"]
    assert "run 3" in events
    assert f"sync to {3 * 3456 * 8}" in events
    assert f"sync from {3 * 135 * 8}" in events


def test_xrt_device_without_pyxrt(bundled_project, tmp_path, monkeypatch):
    root = retarget(bundled_project, tmp_path, "aws-f1")
    monkeypatch.setitem(sys.modules, "pyxrt", None)

    with pytest.raises(DeviceUnavailableError, match="needs pyxrt"):
        Accelerator.open(root, "xrt")


def test_device_must_match_shell(bundled_project, tmp_path):
    root = retarget(bundled_project, tmp_path, "zcu102")

    with pytest.raises(DeviceUnavailableError, match="device 'xrt' needs shell xrt"):
        Accelerator.open(root, "xrt")


def test_xdma_device_through_fifos(bundled_project, tmp_path):
    root = retarget(bundled_project, tmp_path, "vcu118")
    prefix = tmp_path / "xdma0"
    os.mkfifo(f"{prefix}_h2c_0")
    os.mkfifo(f"{prefix}_c2h_0")
    card = fake_card(bundled_project)
    meta = load_project(root).meta
    input_bytes = stream_format(meta["input"]).words * 8
    pixels = load_val_pixels(load_project(bundled_project), 2)
    failures: list[BaseException] = []

    def serve(images: int) -> None:
        # The card: for each image read from H2C, write its result to C2H.
        try:
            with open(f"{prefix}_h2c_0", "rb") as h2c, open(f"{prefix}_c2h_0", "wb", buffering=0) as c2h:
                for _ in range(images):
                    data = h2c.read(input_bytes)
                    assert len(data) == input_bytes
                    result = card(np.frombuffer(data, dtype="<u8")[None])[0]
                    c2h.write(result.astype("<u8").tobytes())
        except BaseException as error:  # reported by the main thread
            failures.append(error)

    server = threading.Thread(target=serve, args=(2,), daemon=True)
    server.start()
    with Accelerator.open(root, "xdma", xdma_device=str(prefix)) as accelerator:
        outputs = accelerator.run(pixels)
    server.join(timeout=60)

    assert not failures
    np.testing.assert_array_equal(outputs, software_outputs(bundled_project, pixels))


def test_xdma_device_without_driver(bundled_project, tmp_path):
    root = retarget(bundled_project, tmp_path, "vcu118")

    with pytest.raises(DeviceUnavailableError, match="xdma7_h2c_0 not found"):
        Accelerator.open(root, "xdma", xdma_device=str(tmp_path / "xdma7"))


def test_host_copy_runs_without_codesign(bundled_project, tmp_path):
    root = retarget(bundled_project, tmp_path, "pynq-z2")
    script = """
import sys
sys.path.insert(0, "host")
import numpy as np
import codesign_runtime
from codesign_runtime import Accelerator, DeviceUnavailableError, pack, unpack
from codesign_runtime.accelerator import decode
assert decode.__module__ == "codesign_runtime.boxes", decode.__module__
assert "codesign" not in sys.modules
assert "quantize" not in sys.modules
try:
    Accelerator.open(".", "pynq")
except DeviceUnavailableError as error:
    print(error)
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True)

    assert result.returncode == 0, result.stderr
    assert "needs the pynq package" in result.stdout


# The detect job


@pytest.mark.slow
@pytest.mark.skipif(not JPEG_SAMPLES.is_dir(), reason="../shared/jpeg-samples is not present beside the repository")
def test_detect_jpeg_samples(bundled_project, tmp_path):
    out = tmp_path / "detections"
    files = sorted(p for p in JPEG_SAMPLES.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))

    result = detect(bundled_project, JPEG_SAMPLES, out)
    document = json.loads((out / "detections.json").read_text())

    assert [image["file_name"] for image in document["images"]] == [p.name for p in files]
    assert [image["id"] for image in document["images"]] == list(range(1, len(files) + 1))
    assert "Blender_Suzanne1.jpg" in [p.name for p in files]
    assert {row["image_id"] for row in document["results"]} <= {image["id"] for image in document["images"]}
    assert len(document["results"]) == result.detection_count
    for image, entry in zip(result.images, document["images"]):
        with Image.open(image.path) as original, Image.open(out / entry["annotated"]) as annotated:
            assert (entry["width"], entry["height"]) == original.size
            assert annotated.size == original.size
            assert annotated.mode == "RGB"
        pixels, transform = letterbox(load_image(image.path), 96, 96)
        (want,) = software_detections(bundled_project, pixels[None])
        want_boxes = transform.to_image(want.boxes)
        np.testing.assert_array_equal(image.detections.boxes, want_boxes, err_msg=image.path.name)
        np.testing.assert_array_equal(image.detections.scores, want.scores, err_msg=image.path.name)
        rows = [row for row in document["results"] if row["image_id"] == entry["id"]]
        assert [row["bbox"] for row in rows] == want_boxes.tolist()


def test_detect_rejects_nonempty_output(bundled_project, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (40, 30), (10, 200, 30)).save(images / "green.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("user data")

    with pytest.raises(InputError, match="no detections.json"):
        detect(bundled_project, images, out, force=True)
    assert (out / "keep.txt").read_text() == "user data"

    (out / "keep.txt").unlink()
    detect(bundled_project, images, out)
    (out / "annotated" / "old.png").write_bytes(b"")
    with pytest.raises(InputError, match="pass --force"):
        detect(bundled_project, images, out)
    detect(bundled_project, images, out, force=True)
    assert not (out / "annotated" / "old.png").exists()
    assert (out / "annotated" / "green.png").is_file()


def test_detect_rejects_unreadable_image(bundled_project, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (40, 30)).save(images / "a_good.jpg")
    (images / "b_broken.jpg").write_bytes(b"\xff\xd8\xff" + b"garbage" * 10)
    out = tmp_path / "out"

    with pytest.raises(InputError) as caught:
        detect(bundled_project, images, out)

    assert "b_broken.jpg" in str(caught.value)
    assert "\n" not in str(caught.value)
    assert not out.exists()
    assert not list(tmp_path.glob(".out.partial-*"))


def test_detect_converts_image_modes(bundled_project, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    colour = Image.new("RGB", (64, 48), (220, 180, 20))
    colour.convert("L").save(images / "grey.jpg")
    colour.convert("CMYK").save(images / "cmyk.jpg")
    colour.convert("RGBA").save(images / "rgba.png")
    colour.convert("P").save(images / "palette.png")

    result = detect(bundled_project, images, tmp_path / "out")

    assert [image.path.name for image in result.images] == ["cmyk.jpg", "grey.jpg", "palette.png", "rgba.png"]
    for image in result.images:
        with Image.open(image.annotated) as annotated:
            assert annotated.mode == "RGB"
            assert annotated.size == (64, 48)


def test_detect_single_file(bundled_project, tmp_path):
    path = tmp_path / "one.png"
    Image.new("RGB", (96, 96), (128, 128, 128)).save(path)

    result = detect(bundled_project, path, tmp_path / "out")

    assert [image.path for image in result.images] == [path]
    assert json.loads(result.detections_file.read_text())["images"][0]["file_name"] == "one.png"


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("empty-folder", "no JPEG or PNG files in"),
        ("missing", "image file or folder not found"),
        ("text-file", "is not a JPEG or PNG file"),
        ("out-is-images", "contains the input images"),
    ],
)
def test_detect_rejects_bad_paths(bundled_project, tmp_path, setup, message):
    images = tmp_path / "images"
    out = tmp_path / "out"
    if setup == "empty-folder":
        images.mkdir()
    elif setup == "text-file":
        images = tmp_path / "notes.txt"
        images.write_text("hello")
    elif setup == "out-is-images":
        images.mkdir()
        Image.new("RGB", (8, 8)).save(images / "x.png")
        out = images

    with pytest.raises(InputError, match=message):
        detect(bundled_project, images, out, force=True)
    if setup == "out-is-images":
        assert (images / "x.png").is_file()
