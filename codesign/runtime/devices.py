"""Devices that move stream words through the accelerator.

Every device has ``transfer(words) -> words``: it takes N x input-words uint64
words (the format of stream.py), runs the N images and returns N x
output-words uint64 words. ``transfer_frames(words, lengths)`` does the same
for JPEG frames in slots (frames.py), of which a streaming link sends only
the first ``lengths[i]`` words. The PYNQ, XRT and XDMA drivers are imported only
when such a device is opened, so the runtime imports without them.
"""

from __future__ import annotations

import logging
import os
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .errors import AcceleratorError, DeviceUnavailableError
from .frames import is_frontend
from .stream import StreamFormat, pack, unpack

log = logging.getLogger(__name__)

# Images per testbench process of the emulated device, as codesign csim chunks them.
EMULATED_CHUNK_IMAGES = 25


class EmulatedDevice:
    """The project's C simulation, run in child processes through tensor files.

    It feeds the testbench binary ``csim/codesign_tb`` the codes that the
    hardware would receive and packs its output codes back into stream words.
    It needs the codesign package, which compiles that binary with
    ``codesign.csim.build`` (reusing it while the sources are unchanged).
    """

    name = "emulated"

    def __init__(self, project_dir: Path, input_format: StreamFormat, output_format: StreamFormat,
                 jobs: int | None = None):
        try:
            from codesign import tensorfile
            from codesign.csim import BuildError, build
            from codesign.project import load_project
        except ImportError as error:
            raise DeviceUnavailableError(
                f"the emulated device needs the codesign package, which failed to import ({error}); "
                "install codesign or use device='pynq', 'xrt' or 'xdma'"
            ) from error
        self._tensorfile = tensorfile
        self.input_format = input_format
        self.output_format = output_format
        self.jobs = max(1, jobs or os.cpu_count() or 1)
        project = load_project(project_dir)
        if not (project.hls_dir / "codesign_tb.cpp").is_file():
            raise DeviceUnavailableError(
                f"the emulated device needs {project.hls_dir}/codesign_tb.cpp, which is missing; "
                "copy the whole project folder or re-run codesign convert"
            )
        self.frontend = is_frontend(project.meta)
        try:
            # The fast ap types model computes what AMD's headers compute; codesign csim checks it.
            self.binary, seconds = build(project, self.jobs, ap_types="fast")
        except BuildError as error:
            log.warning("the fast ap types model cannot build %s (%s); using AMD's headers",
                        project.root, str(error).strip().splitlines()[0])
            self.binary, seconds = build(project, self.jobs)
        if seconds:
            log.info("compiled %s in %.1f s", self.binary, seconds)

    def transfer(self, words: np.ndarray) -> np.ndarray:
        return self._run_codes(unpack(words, self.input_format))

    def transfer_frames(self, words: np.ndarray, lengths: list[int]) -> np.ndarray:
        """Run frames in the front-end testbench, whose items are the bytes JPGF, then the frame, then zeros."""
        from codesign.jpeg.frontend import TESTBENCH_ITEM_MARKER

        if not self.frontend:
            raise AcceleratorError("transfer_frames needs a project with the JPEG front-end")
        codes = unpack(words, self.input_format)[:, : 8 * max(lengths, default=1)]
        marker = np.frombuffer(TESTBENCH_ITEM_MARKER, dtype=np.uint8).astype(np.int64)
        return self._run_codes(np.hstack([np.tile(marker, (codes.shape[0], 1)), codes]))

    def _run_codes(self, codes: np.ndarray) -> np.ndarray:
        count = codes.shape[0]
        if count == 0:
            return np.zeros((0, self.output_format.words), dtype=np.uint64)
        chunk = max(1, min(EMULATED_CHUNK_IMAGES, -(-count // self.jobs)))
        ranges = [(first, min(chunk, count - first)) for first in range(0, count, chunk)]
        with tempfile.TemporaryDirectory(prefix="codesign-emulated-") as work:
            work = Path(work)
            inputs = work / "inputs.bin"
            self._tensorfile.write(inputs, codes)
            with ThreadPoolExecutor(max_workers=self.jobs) as pool:
                results = list(pool.map(lambda item: self._run(inputs, work, *item), enumerate(ranges)))
        return pack(np.concatenate(results), self.output_format)

    def _run(self, inputs: Path, work: Path, index: int, first_and_size: tuple[int, int]) -> np.ndarray:
        first, size = first_and_size
        outputs = work / f"outputs_{index}.bin"
        command = [str(self.binary), str(inputs), str(first), str(size), str(outputs)]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            message = (result.stderr or result.stdout).strip()
            raise AcceleratorError(
                f"{self.binary} failed on images {first}..{first + size - 1} with exit status "
                f"{result.returncode}: {message[-2000:]}"
            )
        return self._tensorfile.read(outputs)

    def close(self) -> None:
        pass


class PynqDevice:
    """A Zynq board running PYNQ: the bitstream's AXI DMA streams each image through the accelerator."""

    name = "pynq"

    def __init__(self, bitstream: Path, dma_name: str, input_format: StreamFormat, output_format: StreamFormat):
        try:
            import pynq
        except ImportError as error:
            raise DeviceUnavailableError(
                "the pynq device needs the pynq package, which ships with the PYNQ image of the board "
                f"and failed to import here ({error})"
            ) from error
        if not bitstream.is_file() or not bitstream.with_suffix(".hwh").is_file():
            raise DeviceUnavailableError(
                f"{bitstream} and {bitstream.with_suffix('.hwh').name} are required: run `make bitstream` "
                "and copy the project's deploy/ folder to the board"
            )
        self.input_format = input_format
        self.output_format = output_format
        self._overlay = pynq.Overlay(str(bitstream))
        if not hasattr(self._overlay, dma_name):
            raise DeviceUnavailableError(f"{bitstream} has no IP named {dma_name}")
        self._dma = getattr(self._overlay, dma_name)
        self._input = pynq.allocate(shape=(input_format.words,), dtype=np.uint64)
        self._output = pynq.allocate(shape=(output_format.words,), dtype=np.uint64)

    def transfer(self, words: np.ndarray) -> np.ndarray:
        results = np.zeros((words.shape[0], self.output_format.words), dtype=np.uint64)
        for index, image_words in enumerate(words):
            self._input[:] = image_words
            self._input.flush()
            # Start the receive channel first, so that the DMA takes the output as soon as it arrives.
            self._dma.recvchannel.transfer(self._output)
            self._dma.sendchannel.transfer(self._input)
            self._dma.sendchannel.wait()
            self._dma.recvchannel.wait()
            self._output.invalidate()
            results[index] = self._output
        return results

    def transfer_frames(self, words: np.ndarray, lengths: list[int]) -> np.ndarray:
        """Send each frame's own words only, so that the DMA moves compressed bytes."""
        results = np.zeros((words.shape[0], self.output_format.words), dtype=np.uint64)
        for index, (image_words, length) in enumerate(zip(words, lengths)):
            self._input[:length] = image_words[:length]
            self._input.flush()
            self._dma.recvchannel.transfer(self._output)
            # NOTE: nbytes limits the transfer to the frame; PYNQ's DMA API has
            # it since 2.7. Not run on a board here.
            self._dma.sendchannel.transfer(self._input, nbytes=8 * length)
            self._dma.sendchannel.wait()
            self._dma.recvchannel.wait()
            self._output.invalidate()
            results[index] = self._output
        return results

    def close(self) -> None:
        self._input.freebuffer()
        self._output.freebuffer()


class XrtDevice:
    """An Alveo card or AWS F1 FPGA driven through XRT's Python binding pyxrt."""

    name = "xrt"

    def __init__(self, xclbin: Path, kernel_name: str, input_format: StreamFormat, output_format: StreamFormat,
                 device_index: int = 0):
        try:
            import pyxrt
        except ImportError as error:
            raise DeviceUnavailableError(
                "the xrt device needs pyxrt, XRT's Python binding: source /opt/xilinx/xrt/setup.sh "
                f"(it failed to import: {error})"
            ) from error
        if not xclbin.is_file():
            raise DeviceUnavailableError(f"{xclbin} not found: run `make bitstream` and copy deploy/ to the host")
        self._pyxrt = pyxrt
        self.input_format = input_format
        self.output_format = output_format
        self._device = pyxrt.device(device_index)
        self._uuid = self._device.load_xclbin(pyxrt.xclbin(str(xclbin)))
        self._kernel_name = kernel_name
        self._kernel = pyxrt.kernel(self._device, self._uuid, kernel_name)

    def transfer(self, words: np.ndarray) -> np.ndarray:
        pyxrt = self._pyxrt
        count = words.shape[0]
        input_bytes = count * self.input_format.words * 8
        output_bytes = count * self.output_format.words * 8
        input_buffer = pyxrt.bo(self._device, input_bytes, pyxrt.bo.normal, self._kernel.group_id(0))
        output_buffer = pyxrt.bo(self._device, output_bytes, pyxrt.bo.normal, self._kernel.group_id(1))
        input_buffer.write(np.ascontiguousarray(words, dtype="<u8").tobytes(), 0)
        input_buffer.sync(pyxrt.xclBOSyncDirection.XCL_BO_SYNC_BO_TO_DEVICE, input_bytes, 0)
        run = self._kernel(input_buffer, output_buffer, count)
        state = run.wait()
        if state != pyxrt.ert_cmd_state.ERT_CMD_STATE_COMPLETED:
            raise AcceleratorError(f"kernel {self._kernel_name} failed: XRT reports run state {state}")
        output_buffer.sync(pyxrt.xclBOSyncDirection.XCL_BO_SYNC_BO_FROM_DEVICE, output_bytes, 0)
        data = np.asarray(output_buffer.read(output_bytes, 0)).view("<u8")
        return data.reshape(count, self.output_format.words).astype(np.uint64)

    def transfer_frames(self, words: np.ndarray, lengths: list[int]) -> np.ndarray:
        """Run frames in fixed slots: the kernel reads each slot's length field and only that frame's words."""
        return self.transfer(words)

    def close(self) -> None:
        pass


class XdmaDevice:
    """A PCIe card with the XDMA stream design, through the character devices of AMD's XDMA driver.

    ``device`` is the node prefix, for example /dev/xdma0: images go to
    ``<device>_h2c_0`` and results come from ``<device>_c2h_0``. Both stay
    open until ``close``.
    """

    name = "xdma"

    def __init__(self, device: str, input_format: StreamFormat, output_format: StreamFormat):
        self.input_format = input_format
        self.output_format = output_format
        h2c, c2h = f"{device}_h2c_0", f"{device}_c2h_0"
        for node in (h2c, c2h):
            if not os.path.exists(node):
                raise DeviceUnavailableError(
                    f"{node} not found: load AMD's XDMA driver (dma_ip_drivers) after programming the bitstream"
                )
        self._h2c = open(h2c, "wb", buffering=0)
        self._c2h = open(c2h, "rb", buffering=0)
        self._reader = ThreadPoolExecutor(max_workers=1)

    def transfer(self, words: np.ndarray) -> np.ndarray:
        return self.transfer_frames(words, [words.shape[1]] * words.shape[0])

    def transfer_frames(self, words: np.ndarray, lengths: list[int]) -> np.ndarray:
        """Write the first ``lengths[i]`` words of each image, then read its output words."""
        results = np.zeros((words.shape[0], self.output_format.words), dtype=np.uint64)
        output_bytes = self.output_format.words * 8
        for index, (image_words, length) in enumerate(zip(words, lengths)):
            image_words = image_words[:length]
            # Read concurrently: while the card-to-host stream is not read,
            # the accelerator stalls and the write never finishes.
            pending = self._reader.submit(self._c2h.read, output_bytes)
            data = memoryview(np.ascontiguousarray(image_words, dtype="<u8").tobytes())
            while data:
                data = data[self._h2c.write(data) :]
            # NOTE: no timeout here. If the accelerator stalls, the read
            # waits as long as the XDMA driver lets it.
            received = pending.result()
            if len(received) != output_bytes:
                raise AcceleratorError(f"{self._c2h.name} returned {len(received)} of {output_bytes} bytes")
            results[index] = np.frombuffer(received, dtype="<u8")
        return results

    def close(self) -> None:
        self._reader.shutdown()
        self._h2c.close()
        self._c2h.close()
