"""Host runtime of a codesign project: run the accelerator and decode its detections.

``codesign.bitstream`` copies this package into each project as
``host/codesign_runtime``, together with the box decoder, so it runs on a
board without the codesign repository. It needs numpy and Pillow, plus the
driver of the device it opens:

    from codesign_runtime import Accelerator

    with Accelerator.open("path/to/project", device="pynq") as accelerator:
        raw = accelerator.run(pixels)            # uint8 N x H x W x C -> float64 NHWC outputs
        found = accelerator.detect(["a.jpg"])    # list of Detections in image pixels
"""

from .accelerator import DEVICES, Accelerator, Detections
from .errors import AcceleratorError, DeviceUnavailableError, InvalidInputError
from .images import letterbox, load_image
from .stream import StreamFormat, pack, quantize_pixels, unpack

__all__ = [
    "DEVICES",
    "Accelerator",
    "AcceleratorError",
    "Detections",
    "DeviceUnavailableError",
    "InvalidInputError",
    "StreamFormat",
    "letterbox",
    "load_image",
    "pack",
    "quantize_pixels",
    "unpack",
]
