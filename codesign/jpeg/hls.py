"""HLS C++ JPEG decoder: configuration headers, g++ build and C simulation.

The decoder in ``hls_templates/jpeg/jpeg_decoder.h`` is compiled for one
stream format at a time. ``config_header`` renders the ``DecoderTables`` of a
format into the C++ struct that configures it. ``build_decoder`` writes the
sources for one or more formats into a folder and compiles the C-simulation
driver there with g++. ``DecoderProgram.decode`` runs that driver in a child
process and never loads the C++ into this process (no ctypes), so a crash
there cannot take Python down with it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from codesign.errors import CodesignError, InputError
from codesign.jpeg.markers import HuffmanTable, validate_huffman_table
from codesign.jpeg.stream import DecoderTables
from codesign.templating import TEMPLATE_DIR, render_file

KERNEL_HEADER = "jpeg_decoder.h"
DRIVER_SOURCE = "jpeg_tb.cpp"
DRIVER_BINARY = "jpeg_tb"
CXXFLAGS = ["-O2", "-std=c++14", "-Wall", "-Wno-unknown-pragmas", "-Wno-unused-label"]

SUBSAMPLING_NAMES = {(1, 1): "4:4:4", (2, 1): "4:2:2", (1, 2): "4:4:0", (2, 2): "4:2:0"}
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class DecoderBuildError(CodesignError):
    """g++ failed on the decoder sources, or a build tool is missing."""


class DecoderRunError(CodesignError):
    """The C-simulation driver failed, timed out or reported a defect."""


def hardware_support_problem(tables: DecoderTables) -> str | None:
    """Return why the HLS decoder cannot decode this stream format, or None."""
    frame = tables.frame
    count = len(frame.components)
    if count not in (1, 3):
        return f"{count}-component frames are not supported (1 or 3)"
    if count == 3:
        if tables.component_indices != (0, 1, 2):
            return "the scan must list the three components in frame order"
        luma = frame.components[0]
        if (luma.h_sampling, luma.v_sampling) not in SUBSAMPLING_NAMES:
            return f"luma sampling {luma.h_sampling}x{luma.v_sampling} is not supported (1 or 2 each way)"
        for component in frame.components[1:]:
            if (component.h_sampling, component.v_sampling) != (1, 1):
                return (
                    f"component {component.component_id} is sampled "
                    f"{component.h_sampling}x{component.v_sampling}; chroma must be 1x1"
                )
    return None


def check_supported(tables: DecoderTables, name: str | None = None) -> None:
    """Raise ``InputError`` unless the HLS decoder supports the stream format."""
    problem = hardware_support_problem(tables)
    if problem is not None:
        prefix = f"{name}: " if name else ""
        raise InputError(
            f"{prefix}stream format not supported by the HLS decoder: {problem}; "
            "re-encode as greyscale, 4:4:4, 4:2:2 or 4:2:0 baseline JPEG"
        )


def canonical_decoding_table(table: HuffmanTable) -> tuple[list[int], list[int]]:
    """Return (limits, offsets) of a Huffman table for code lengths 0..16.

    ``limits[l]`` is maxcode[l] + 1 of jdhuff.c, 0 where no code has length
    ``l``, and ``offsets[l]`` is valoffset[l]: adding a code of length ``l``
    gives the index of its symbol. Index 0 of both lists is unused.
    """
    limits = [0] * 17
    offsets = [0] * 17
    code = 0
    position = 0
    for length, count in enumerate(table.counts, start=1):
        if count:
            offsets[length] = position - code
            code += count
            position += count
            limits[length] = code
        code <<= 1
    return limits, offsets


def describe_format(tables: DecoderTables) -> str:
    """Return a one-line summary such as '96x96 YCbCr 4:2:0, no restart markers'."""
    frame = tables.frame
    if len(frame.components) == 1:
        kind = "greyscale"
    else:
        luma = frame.components[0]
        space = "YCbCr" if frame.color_transform == "ycbcr" else "RGB"
        kind = f"{space} {SUBSAMPLING_NAMES.get((luma.h_sampling, luma.v_sampling), 'other sampling')}"
    restarts = (
        f"restart interval {tables.restart_interval} MCUs" if tables.restart_interval else "no restart markers"
    )
    return f"{frame.width}x{frame.height} {kind}, {restarts}"


def _format_rows(rows: Sequence[Sequence[int]], indent: str = "            ", per_line: int = 16) -> str:
    """Format integer rows as C brace initializers, ``per_line`` values a line."""
    lines = []
    for row in rows:
        chunks = [", ".join(str(v) for v in row[i : i + per_line]) for i in range(0, len(row), per_line)]
        body = (",\n" + indent + " ").join(chunks)
        lines.append(f"{indent}{{{body}}},")
    return "\n".join(lines)


def config_header(tables: DecoderTables, config_name: str, kernel_include: str = KERNEL_HEADER) -> str:
    """Render the configuration header that sets up the decoder for ``tables``.

    ``config_name`` becomes the C++ struct name, and ``kernel_include`` is
    the path by which the header includes the decoder kernel. Raises
    ``InputError`` for names that are no C++ identifier and for unsupported
    stream formats.
    """
    if not _IDENTIFIER.fullmatch(config_name):
        raise InputError(f"invalid configuration name {config_name!r}; use a C++ identifier")
    check_supported(tables, config_name)
    frame = tables.frame
    components = len(frame.components)

    huffman_tables: list[HuffmanTable] = []
    dc_indices = []
    ac_indices = []
    for dc_table, ac_table in zip(tables.dc_tables, tables.ac_tables):
        validate_huffman_table(dc_table, is_dc=True, name=config_name)
        validate_huffman_table(ac_table, is_dc=False, name=config_name)
        for table, indices in ((dc_table, dc_indices), (ac_table, ac_indices)):
            if table not in huffman_tables:
                huffman_tables.append(table)
            indices.append(huffman_tables.index(table))
    decoding_tables = [canonical_decoding_table(table) for table in huffman_tables]

    # A single-component scan codes one block per MCU whatever the frame's
    # sampling factors, so greyscale streams are configured as 1x1.
    if components == 1:
        h_sampling = v_sampling = 1
    else:
        h_sampling = frame.components[0].h_sampling
        v_sampling = frame.components[0].v_sampling

    # libjpeg-turbo stores quantization values in 16-bit signed shorts.
    quant_rows = [[value - 65536 if value > 32767 else value for value in table] for table in frame.quant_tables]
    values = {
        "NAME": config_name,
        "KERNEL_INCLUDE": kernel_include,
        "SUMMARY": describe_format(tables),
        "GUARD": f"CODESIGN_JPEG_CONFIG_{config_name.upper()}_H_",
        "WIDTH": frame.width,
        "HEIGHT": frame.height,
        "COMPONENTS": components,
        "H_SAMPLING": h_sampling,
        "V_SAMPLING": v_sampling,
        "YCBCR_TO_RGB": "true" if frame.color_transform == "ycbcr" else "false",
        "RESTART_INTERVAL": tables.restart_interval,
        "HUFFMAN_TABLES": len(huffman_tables),
        "QUANT_TABLES": _format_rows(quant_rows),
        "DC_TABLE_INDICES": ", ".join(str(i) for i in dc_indices),
        "AC_TABLE_INDICES": ", ".join(str(i) for i in ac_indices),
        "HUFFMAN_LIMITS": _format_rows([limits for limits, _ in decoding_tables], per_line=17),
        "HUFFMAN_OFFSETS": _format_rows([offsets for _, offsets in decoding_tables], per_line=17),
        "HUFFMAN_SYMBOLS": _format_rows([list(table.symbols) for table in huffman_tables]),
    }
    return render_file("jpeg/jpeg_config.h", values)


def config_header_name(config_name: str) -> str:
    """Return the file name of a configuration's header."""
    return f"jpeg_config_{config_name}.h"


def driver_source(config_names: Sequence[str]) -> str:
    """Render the C-simulation driver for configurations with the given names."""
    includes = "\n".join(f'#include "{config_header_name(name)}"' for name in config_names)
    dispatch = "\n".join(
        f'    if (config == "{name}") {{\n        return decode_files<{name}>(images, argv + 2);\n    }}'
        for name in config_names
    )
    values = {
        "CONFIG_INCLUDES": includes,
        "CONFIG_DISPATCH": dispatch,
        "CONFIG_NAMES": ", ".join(config_names),
    }
    return render_file(f"jpeg/{DRIVER_SOURCE}", values)


def ap_types_dir() -> Path:
    """Return the folder of the ap_int and hls_stream headers that hls4ml ships."""
    spec = importlib.util.find_spec("hls4ml")
    if spec is None or not spec.submodule_search_locations:
        raise DecoderBuildError("hls4ml is not installed; it provides the ap_types headers the decoder needs")
    folder = Path(next(iter(spec.submodule_search_locations))) / "templates" / "vivado" / "ap_types"
    if not (folder / "ap_int.h").is_file():
        raise DecoderBuildError(f"ap_int.h not found in {folder}; reinstall hls4ml")
    return folder


@dataclass(frozen=True)
class DecoderProgram:
    """A compiled C-simulation driver and the stream formats it decodes."""

    binary: Path
    configs: Mapping[str, DecoderTables]
    build_seconds: float  # 0 when an up-to-date binary was reused

    def decode(self, config_name: str, payloads: Sequence[bytes], timeout: float = 120.0) -> list[np.ndarray]:
        """Decode payloads of one stream format with the C++ decoder.

        The payloads travel back to back through one byte stream. Returns
        one uint8 array per payload: (H, W) for greyscale, else (H, W, 3).
        Raises ``DecoderRunError`` when the driver fails, reports a stream
        left with data, or runs longer than ``timeout`` seconds.
        """
        if config_name not in self.configs:
            raise InputError(
                f"unknown configuration {config_name!r}; the decoder was built for {', '.join(self.configs)}"
            )
        if not payloads:
            return []
        frame = self.configs[config_name].frame
        channels = len(frame.components)
        shape = (frame.height, frame.width) if channels == 1 else (frame.height, frame.width, 3)

        with tempfile.TemporaryDirectory(prefix="jpeg_tb_", dir=self.binary.parent) as folder:
            arguments = [str(self.binary), config_name]
            outputs = []
            for index, payload in enumerate(payloads):
                payload_path = Path(folder) / f"payload{index}.bin"
                payload_path.write_bytes(bytes(payload))
                outputs.append(Path(folder) / f"pixels{index}.bin")
                arguments += [str(payload_path), str(outputs[-1])]
            try:
                result = subprocess.run(arguments, capture_output=True, text=True, timeout=timeout)
            except subprocess.TimeoutExpired as error:
                raise DecoderRunError(
                    f"{self.binary.name} {config_name} timed out after {timeout:.0f} s on {len(payloads)} payloads"
                ) from error
            if result.returncode != 0:
                raise DecoderRunError(
                    f"{self.binary.name} {config_name} failed with exit status {result.returncode}: "
                    f"{(result.stderr or result.stdout).strip()[-2000:]}"
                )
            # hls::stream's C-simulation model prints a warning when a stream
            # is read while empty or destroyed with data left in it.
            if "WARNING" in result.stdout:
                raise DecoderRunError(f"{self.binary.name} {config_name}: {result.stdout.strip()[-2000:]}")
            return [np.frombuffer(path.read_bytes(), dtype=np.uint8).reshape(shape) for path in outputs]


def write_sources(configs: Mapping[str, DecoderTables], folder: Path) -> list[Path]:
    """Write the kernel header, one configuration header per format and the driver.

    The folder then contains every decoder source except the ap_types
    headers. Returns the written paths.
    """
    if not configs:
        raise InputError("no decoder configuration given")
    folder.mkdir(parents=True, exist_ok=True)
    kernel = folder / KERNEL_HEADER
    shutil.copyfile(TEMPLATE_DIR / "jpeg" / KERNEL_HEADER, kernel)
    written = [kernel]
    for name, tables in configs.items():
        path = folder / config_header_name(name)
        path.write_text(config_header(tables, name))
        written.append(path)
    driver = folder / DRIVER_SOURCE
    driver.write_text(driver_source(list(configs)))
    written.append(driver)
    return written


def build_decoder(configs: Mapping[str, DecoderTables], folder: Path | str) -> DecoderProgram:
    """Write the decoder sources into ``folder`` and compile the driver there.

    One binary serves every configuration in ``configs`` (name -> tables),
    so a set of stream formats costs one g++ run. An existing binary is
    reused when the sources and flags are unchanged.
    """
    folder = Path(folder)
    sources = write_sources(configs, folder)
    include = ap_types_dir()
    binary = folder / DRIVER_BINARY
    digest = hashlib.sha256(" ".join(CXXFLAGS).encode() + str(include).encode())
    for path in sources:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    stamp = folder / f"{DRIVER_BINARY}.sha256"
    if binary.is_file() and stamp.is_file() and stamp.read_text() == digest.hexdigest():
        return DecoderProgram(binary, dict(configs), 0.0)

    compiler = shutil.which("g++")
    if compiler is None:
        raise DecoderBuildError("g++ not found on PATH; install a C++ compiler to build the decoder")
    command = [compiler, *CXXFLAGS, "-I", str(folder), "-I", str(include), str(folder / DRIVER_SOURCE), "-o", str(binary)]
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise DecoderBuildError(f"g++ failed on {folder / DRIVER_SOURCE}:\n{result.stderr[-4000:]}")
    stamp.write_text(digest.hexdigest())
    return DecoderProgram(binary, dict(configs), time.monotonic() - started)
