"""Board catalogue: the FPGA boards that codesign can target, read from YAML files.

Each bundled board is ``boards/<name>.yaml`` at the repository root, and a user's own
board file uses the same schema. Every field is required unless marked optional, and
any key not listed here is rejected:

    name                       str     board name, equal to the file name without .yaml/.yml
    description                str     one-line description for listings
    part                       str     full AMD part as Vivado and Vitis expect it
    family                     str     zynq7000, zynquplus, virtexuplus or alveo
    dsp_slice                  str     DSP48E1 for zynq7000, DSP48E2 for every other family
    resources.lut              int     CLB LUTs in the whole device
    resources.ff               int     CLB flip-flops in the whole device
    resources.dsp              int     DSP slices in the whole device
    resources.bram_18k         int     block RAM in 18 Kb units (a 36 Kb block counts 2)
    resources.uram             int     288 Kb UltraRAM blocks, 0 where the part has none
    clock_mhz                  number  default accelerator clock for HLS, in MHz
    host_link.kind             str     axi-hp, axi-hpc, axi-acp or pcie-gen<G>x<W>
    host_link.bandwidth_mb_s   number  sustained host-to-accelerator rate, in MB/s (10^6 B/s)
    shell                      str     zynq-ps, xrt or xdma
    platform (optional)        str     Vitis platform name, required for xrt and rejected otherwise

The shells are:

- ``zynq-ps``: a Vivado block design with the Zynq processing system and an AXI DMA.
- ``xrt``: a Vitis kernel linked into an Alveo or AWS F1 shell and driven through XRT.
- ``xdma``: a Vivado block design with the PCIe XDMA bridge, for a board that has
  no Vitis platform, such as the VCU118.

Besides the type and range of each field, the loader checks that fields agree with
each other. The part prefix must belong to the family, dsp_slice must be the family's
slice, and a zynq-ps shell needs an AXI link on a Zynq family while xrt and xdma need
a PCIe link. Every failure raises ``InputError`` with one line that names the file and
the field.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from codesign.errors import InputError

BOARDS_DIR = Path(__file__).resolve().parent.parent / "boards"

_BOARD_SUFFIXES = (".yaml", ".yml")
_NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]*")
# "xc", device and package, then speed grade and optional temperature grade after
# hyphens, for example xc7z020clg400-1, xczu3eg-sbva484-1-i or xck26-sfvc784-2LV-c.
_PART_PATTERN = re.compile(r"xc[a-z0-9]+(-[A-Za-z0-9]+)+")
_LINK_PATTERN = re.compile(r"axi-hp|axi-hpc|axi-acp|pcie-gen[1-5]x(1|2|4|8|16)")
_LINK_KINDS = "axi-hp, axi-hpc, axi-acp or pcie-gen<G>x<W> such as pcie-gen3x16"
_MAX_SHOWN_VALUE = 60


class Family(StrEnum):
    """Device family, which fixes the DSP slice and the part prefixes."""

    ZYNQ7000 = "zynq7000"
    ZYNQ_ULTRASCALE_PLUS = "zynquplus"
    VIRTEX_ULTRASCALE_PLUS = "virtexuplus"
    ALVEO = "alveo"


class DspSlice(StrEnum):
    """DSP primitive that HLS maps multipliers onto."""

    DSP48E1 = "DSP48E1"
    DSP48E2 = "DSP48E2"


class Shell(StrEnum):
    """Infrastructure that the accelerator is integrated into."""

    ZYNQ_PS = "zynq-ps"
    XRT = "xrt"
    XDMA = "xdma"


_FAMILY_DSP_SLICE = {
    Family.ZYNQ7000: DspSlice.DSP48E1,
    Family.ZYNQ_ULTRASCALE_PLUS: DspSlice.DSP48E2,
    Family.VIRTEX_ULTRASCALE_PLUS: DspSlice.DSP48E2,
    Family.ALVEO: DspSlice.DSP48E2,
}

# xck26 is the Zynq UltraScale+ device of the Kria K26 module.
_FAMILY_PART_PREFIXES = {
    Family.ZYNQ7000: ("xc7z",),
    Family.ZYNQ_ULTRASCALE_PLUS: ("xczu", "xck"),
    Family.VIRTEX_ULTRASCALE_PLUS: ("xcvu",),
    Family.ALVEO: ("xcu",),
}

_ZYNQ_FAMILIES = (Family.ZYNQ7000, Family.ZYNQ_ULTRASCALE_PLUS)


@dataclass(frozen=True)
class Resources:
    """Whole-device resource totals of a part."""

    lut: int
    ff: int
    dsp: int
    bram_18k: int
    uram: int


@dataclass(frozen=True)
class HostLink:
    """Data path between the host and the accelerator."""

    kind: str
    bandwidth_mb_s: float


@dataclass(frozen=True)
class Board:
    """A validated board description, as returned by ``load_board``."""

    name: str
    description: str
    part: str
    family: Family
    dsp_slice: DspSlice
    resources: Resources
    clock_mhz: float
    host_link: HostLink
    shell: Shell
    platform: str | None
    source: Path

    @property
    def clock_period_ns(self) -> float:
        """Default accelerator clock period in ns, the unit hls4ml's ClockPeriod uses."""
        return 1000.0 / self.clock_mhz

    def capacity(self, resource: str) -> int:
        """Return the device total of one resource: lut, ff, dsp, bram_18k or uram.

        The name is case-insensitive, so the column names of Vivado reports
        (``LUT``, ``BRAM_18K``) work too. Raises ValueError for any other name.
        """
        key = resource.lower()
        names = [field.name for field in dataclasses.fields(Resources)]
        if key not in names:
            raise ValueError(f"unknown resource {resource!r}, expected one of {', '.join(names)}")
        return getattr(self.resources, key)

    def to_dict(self) -> dict[str, Any]:
        """Return the board as a mapping in the YAML schema, with enums as plain strings.

        ``source`` is left out, so the mapping written to ``<name>.yaml`` loads
        again with ``load_board`` and yields an equal board.
        """
        data: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "part": self.part,
            "family": self.family.value,
            "dsp_slice": self.dsp_slice.value,
            "resources": dataclasses.asdict(self.resources),
            "clock_mhz": self.clock_mhz,
            "host_link": dataclasses.asdict(self.host_link),
            "shell": self.shell.value,
        }
        if self.platform is not None:
            data["platform"] = self.platform
        return data


def load_board(name_or_path: str) -> Board:
    """Load and validate one board, by bundled name or by path to a YAML file.

    A value that contains a path separator or ends in .yaml or .yml is read as a
    file. Any other value is the name of a bundled board in ``BOARDS_DIR``.
    Raises InputError when the board is not found, unreadable or invalid.
    """
    if _is_path(name_or_path):
        path = Path(name_or_path)
        display = name_or_path
    else:
        path = BOARDS_DIR / f"{name_or_path}.yaml"
        display = _display_path(path)
        if not path.is_file():
            available = ", ".join(_bundled_names()) or "none"
            raise InputError(
                f"board {name_or_path!r} not found: {display} does not exist. "
                f"Available boards: {available}. "
                "To use your own board, pass the path of its .yaml file."
            )
    return _parse_board(path, display)


def list_boards() -> list[Board]:
    """Load every bundled board, sorted by name.

    Raises InputError if a bundled file is invalid, because a broken catalogue
    should fail loudly instead of hiding a board.
    """
    boards = [load_board(name) for name in _bundled_names()]
    return sorted(boards, key=lambda board: board.name)


def _is_path(name_or_path: str) -> bool:
    separators = {"/", os.sep, os.altsep} - {None}
    if any(separator in name_or_path for separator in separators):
        return True
    return name_or_path.lower().endswith(_BOARD_SUFFIXES)


def _bundled_names() -> list[str]:
    return sorted(path.stem for path in BOARDS_DIR.glob("*.yaml"))


def _display_path(path: Path) -> str:
    """Return the path relative to the working directory when it is below it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _parse_board(path: Path, display: str) -> Board:
    document = _read_yaml(path, display)
    if not isinstance(document, dict):
        got = "an empty file" if document is None else _type_name(document)
        raise InputError(
            f"{display}: the top level must be a mapping of field names to values, got {got}"
        )
    reader = _MappingReader(display, document)
    board = _read_board(reader, path)
    _check_consistency(reader, board, path)
    return board


def _read_yaml(path: Path, display: str) -> Any:
    if not path.exists():
        raise InputError(f"{display}: board file not found")
    if not path.is_file():
        raise InputError(f"{display}: board path is not a regular file")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise InputError(f"{display}: failed to read board file: {error.strerror}") from error
    except UnicodeDecodeError as error:
        message = f"{display}: board file is not valid UTF-8 text: {error.reason}"
        raise InputError(message) from error

    try:
        return yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as error:
        raise InputError(f"{display}: invalid YAML: {_describe_yaml_error(error)}") from error


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key repeated in one mapping.

    Plain PyYAML keeps the last value of a repeated key, which would hide an edit
    made to the wrong copy.
    """


def _construct_unique_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    # Check before flatten_mapping, so a key that overrides one brought in by a
    # YAML merge key (<<) is not reported as a duplicate.
    first_lines: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            first_line = first_lines.get(key)
        except TypeError:
            # An unhashable key: construct_mapping below raises a clear error for it.
            continue
        if first_line is not None:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r}, first defined on line {first_line}",
                key_node.start_mark,
            )
        first_lines[key] = key_node.start_mark.line + 1

    loader.flatten_mapping(node)
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping
)


def _describe_yaml_error(error: yaml.YAMLError) -> str:
    """Flatten a PyYAML error into one line with its line and column."""
    if not isinstance(error, yaml.MarkedYAMLError):
        return " ".join(str(error).split())
    problem = error.problem or error.context or "syntax error"
    mark = error.problem_mark or error.context_mark
    if mark is None:
        return problem
    return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"


def _read_board(reader: _MappingReader, path: Path) -> Board:
    reader.check_keys(
        required=(
            "name",
            "description",
            "part",
            "family",
            "dsp_slice",
            "resources",
            "clock_mhz",
            "host_link",
            "shell",
        ),
        optional=("platform",),
    )

    name = reader.matching_text("name", _NAME_PATTERN, "lowercase letters, digits, '-' and '_'")
    description = reader.text("description")
    part = reader.matching_text("part", _PART_PATTERN, "an AMD part such as xc7z020clg400-1")
    family = reader.choice("family", Family)
    dsp_slice = reader.choice("dsp_slice", DspSlice)

    resources_reader = reader.section("resources")
    resource_names = tuple(field.name for field in dataclasses.fields(Resources))
    resources_reader.check_keys(required=resource_names)
    resources = Resources(**{key: resources_reader.count(key) for key in resource_names})

    clock_mhz = reader.positive_number("clock_mhz")

    link_reader = reader.section("host_link")
    link_reader.check_keys(required=("kind", "bandwidth_mb_s"))
    host_link = HostLink(
        kind=link_reader.matching_text("kind", _LINK_PATTERN, _LINK_KINDS),
        bandwidth_mb_s=link_reader.positive_number("bandwidth_mb_s"),
    )

    shell = reader.choice("shell", Shell)
    platform = reader.text("platform") if "platform" in reader.mapping else None
    return Board(
        name=name,
        description=description,
        part=part,
        family=family,
        dsp_slice=dsp_slice,
        resources=resources,
        clock_mhz=clock_mhz,
        host_link=host_link,
        shell=shell,
        platform=platform,
        source=path,
    )


def _check_consistency(reader: _MappingReader, board: Board, path: Path) -> None:
    """Raise InputError where two valid fields contradict each other."""
    stem = path.name
    for suffix in _BOARD_SUFFIXES:
        stem = stem.removesuffix(suffix)
    if board.name != stem:
        message = f"must equal the file name without its suffix, {stem!r}, got {board.name!r}"
        raise reader.error("name", message)

    family = board.family.value
    prefixes = _FAMILY_PART_PREFIXES[board.family]
    if not board.part.startswith(prefixes):
        message = f"must start with {' or '.join(prefixes)} for family {family!r}"
        raise reader.error("part", f"{message}, got {board.part!r}")

    expected_slice = _FAMILY_DSP_SLICE[board.family].value
    if board.dsp_slice != expected_slice:
        message = f"must be {expected_slice} for family {family!r}"
        raise reader.error("dsp_slice", f"{message}, got {board.dsp_slice.value!r}")

    _check_shell(reader, board)


def _check_shell(reader: _MappingReader, board: Board) -> None:
    shell = board.shell.value
    kind = board.host_link.kind
    link_is_pcie = kind.startswith("pcie-")
    if board.shell is Shell.ZYNQ_PS:
        if board.family not in _ZYNQ_FAMILIES:
            message = "must not be 'zynq-ps' because only zynq7000 and zynquplus parts have a PS"
            raise reader.error("shell", f"{message}, got family {board.family.value!r}")
        if link_is_pcie:
            message = "must be axi-hp, axi-hpc or axi-acp for shell 'zynq-ps'"
            raise reader.error("host_link.kind", f"{message}, got {kind!r}")
    elif not link_is_pcie:
        message = f"must be a PCIe link such as pcie-gen3x16 for shell {shell!r}"
        raise reader.error("host_link.kind", f"{message}, got {kind!r}")

    if board.shell is Shell.XRT and board.platform is None:
        message = "is required for shell 'xrt'. Set it to the Vitis platform name"
        raise reader.error("platform", f"{message}, such as xilinx_u50_gen3x16_xdma_5_202210_1")
    if board.shell is not Shell.XRT and board.platform is not None:
        raise reader.error("platform", f"is only valid for shell 'xrt', got shell {shell!r}")


class _MappingReader:
    """Typed access to one YAML mapping, raising InputError that names the field."""

    def __init__(self, display: str, mapping: dict[Any, Any], prefix: str = "") -> None:
        self.display = display
        self.mapping = mapping
        self.prefix = prefix

    def field_name(self, key: str) -> str:
        return f"{self.prefix}{key}"

    def error(self, key: str, message: str) -> InputError:
        return InputError(f"{self.display}: field '{self.field_name(key)}' {message}")

    def check_keys(self, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> None:
        allowed = required + optional
        for key in self.mapping:
            if key not in allowed:
                key_text = key if isinstance(key, str) else repr(key)
                raise InputError(
                    f"{self.display}: unknown field '{self.prefix}{key_text}'. "
                    f"Allowed fields here: {', '.join(allowed)}"
                )
        for key in required:
            if key not in self.mapping:
                field = self.field_name(key)
                raise InputError(f"{self.display}: missing required field '{field}'")

    def section(self, key: str) -> _MappingReader:
        value = self.mapping[key]
        if not isinstance(value, dict):
            raise self.error(key, f"must be a mapping, got {_show(value)}")
        return _MappingReader(self.display, value, prefix=f"{self.field_name(key)}.")

    def text(self, key: str) -> str:
        value = self.mapping[key]
        if not isinstance(value, str) or not value.strip():
            raise self.error(key, f"must be a non-empty string, got {_show(value)}")
        return value

    def matching_text(self, key: str, pattern: re.Pattern[str], expected: str) -> str:
        value = self.text(key)
        if pattern.fullmatch(value) is None:
            raise self.error(key, f"must be {expected}, got {value!r}")
        return value

    def choice(self, key: str, choices: type[StrEnum]) -> Any:
        value = self.mapping[key]
        allowed = [member.value for member in choices]
        if not isinstance(value, str) or value not in allowed:
            raise self.error(key, f"must be one of {', '.join(allowed)}, got {_show(value)}")
        return choices(value)

    def count(self, key: str) -> int:
        value = self.mapping[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.error(key, f"must be a non-negative integer, got {_show(value)}")
        return value

    def positive_number(self, key: str) -> float:
        value = self.mapping[key]
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not is_number or not math.isfinite(value) or value <= 0:
            raise self.error(key, f"must be a positive number, got {_show(value)}")
        return value


def _type_name(value: Any) -> str:
    if value is None:
        return "empty value"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _show(value: Any) -> str:
    """Render a rejected value for an error message, with its type where that helps."""
    text = repr(value)
    if len(text) > _MAX_SHOWN_VALUE:
        text = text[: _MAX_SHOWN_VALUE - 3] + "..."
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return text
    return f"{text} ({_type_name(value)})"
