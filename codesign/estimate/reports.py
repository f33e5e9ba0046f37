"""Read Vitis HLS and Vivado reports of a project and compare them with an estimate.

Two report kinds are read when present anywhere below the project folder:

- Vitis HLS C synthesis XML: ``syn/report/csynth.xml`` or ``syn/report/<top>_csynth.xml``
  (one per solution; the per-module ``*_csynth.xml`` files are skipped). Resources
  come from ``AreaEstimates/Resources`` (``DSP`` in Vitis HLS, ``DSP48E`` in
  Vivado HLS) and cycles from ``PerformanceEstimates/SummaryOfOverallLatency``.
- Vivado ``report_utilization`` text: ``*utilization*.rpt``, and ``vivado_synth.rpt``
  that hls4ml's ``vivado_synth.tcl`` writes. The parser reads the "Used" column of
  the rows Slice/CLB LUTs, Slice/CLB Registers, Block RAM Tile, URAM and DSPs.
  A Block RAM Tile is 36 Kb, so it counts as two BRAM_18K.
"""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path

from codesign.errors import InputError
from codesign.estimate.design import RESOURCE_LABELS, RESOURCES, Estimate

CSYNTH = "Vitis HLS csynth"
UTILIZATION = "Vivado utilization"

_XML_RESOURCES = {
    "lut": ("LUT",),
    "ff": ("FF",),
    "dsp": ("DSP", "DSP48E"),
    "bram_18k": ("BRAM_18K",),
    "uram": ("URAM",),
}
_UTILIZATION_ROWS = (
    (re.compile(r"^(Slice|CLB) LUTs$"), "lut"),
    (re.compile(r"^(Slice|CLB) Registers$"), "ff"),
    (re.compile(r"^Block RAM Tile$"), "bram_18k"),
    (re.compile(r"^URAM$"), "uram"),
    (re.compile(r"^DSPs$"), "dsp"),
)


@dataclass
class VendorReport:
    """Resources and cycles read from one vendor report file; None where the report has no value."""

    path: Path
    tool: str
    lut: int | None = None
    ff: int | None = None
    dsp: int | None = None
    bram_18k: int | None = None
    uram: int | None = None
    available: dict[str, int] = field(default_factory=dict)
    latency_best: int | None = None
    latency_worst: int | None = None
    interval_min: int | None = None
    interval_max: int | None = None
    estimated_clock_ns: float | None = None

    def resources(self) -> dict[str, int | None]:
        return {key: getattr(self, key) for key in RESOURCES}


def parse_vendor_reports(project_dir: Path | str) -> list[VendorReport]:
    """Find and parse every csynth XML and utilization report below project_dir.

    Returns an empty list when there is none. Raises InputError when the folder
    does not exist or a report is malformed.
    """
    root = Path(project_dir)
    if not root.is_dir():
        raise InputError(f"project folder not found: {root}")
    top = _top_name(root)
    reports = []
    for path in _csynth_files(root, top):
        reports.append(parse_csynth_xml(path))
    utilization = {path for path in root.rglob("*utilization*.rpt") if path.is_file()}
    utilization |= {path for path in root.rglob("vivado_synth.rpt") if path.is_file()}
    for path in sorted(utilization):
        reports.append(parse_utilization_report(path))
    return reports


def _top_name(root: Path) -> str:
    meta = root / "codesign.json"
    if meta.is_file():
        try:
            return json.loads(meta.read_text()).get("project_name", "myproject")
        except json.JSONDecodeError:
            pass
    return "myproject"


def _csynth_files(root: Path, top: str) -> list[Path]:
    """Return one top-level csynth XML per report folder, preferring csynth.xml."""
    chosen: dict[Path, Path] = {}
    for name in (f"{top}_csynth.xml", "csynth.xml"):
        for path in root.rglob(name):
            if path.is_file():
                chosen[path.parent] = path
    return [chosen[folder] for folder in sorted(chosen)]


def parse_csynth_xml(path: Path) -> VendorReport:
    """Read the top-level resources and latency of a Vitis HLS csynth XML report."""
    try:
        root = ElementTree.parse(path).getroot()
    except (ElementTree.ParseError, OSError) as error:
        raise InputError(f"{path}: cannot read the csynth XML report ({error})") from error
    report = VendorReport(path=path, tool=CSYNTH)
    resources = root.find("./AreaEstimates/Resources")
    available = root.find("./AreaEstimates/AvailableResources")
    if resources is None:
        raise InputError(f"{path}: no AreaEstimates/Resources element; is this a csynth report?")
    for key, tags in _XML_RESOURCES.items():
        setattr(report, key, _xml_int(resources, tags, path))
        if available is not None:
            value = _xml_int(available, tags, path)
            if value is not None:
                report.available[key] = value
    latency = root.find("./PerformanceEstimates/SummaryOfOverallLatency")
    if latency is not None:
        report.latency_best = _xml_int(latency, ("Best-caseLatency",), path)
        report.latency_worst = _xml_int(latency, ("Worst-caseLatency",), path)
        report.interval_min = _xml_int(latency, ("Interval-min",), path)
        report.interval_max = _xml_int(latency, ("Interval-max",), path)
    clock = root.find("./PerformanceEstimates/SummaryOfTimingAnalysis/EstimatedClockPeriod")
    if clock is not None and clock.text:
        try:
            report.estimated_clock_ns = float(clock.text)
        except ValueError:
            report.estimated_clock_ns = None
    return report


def _xml_int(parent, tags: tuple[str, ...], path: Path) -> int | None:
    """Return the integer text of the first present tag; None when absent or "undef"."""
    for tag in tags:
        node = parent.find(tag)
        if node is None or node.text is None:
            continue
        text = node.text.strip()
        if text in ("", "undef", "-"):
            return None
        try:
            return int(text)
        except ValueError:
            raise InputError(f"{path}: <{tag}> is {text!r}, expected an integer") from None
    return None


def parse_utilization_report(path: Path) -> VendorReport:
    """Read the "Used" and "Available" columns of a Vivado report_utilization file."""
    try:
        text = path.read_text(errors="replace")
    except OSError as error:
        raise InputError(f"{path}: cannot read the utilization report ({error.strerror})") from error
    report = VendorReport(path=path, tool=UTILIZATION)
    found = set()
    for line in text.splitlines():
        if not line.startswith("|"):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 4:
            continue
        label = cells[0].rstrip("*").strip()
        for pattern, key in _UTILIZATION_ROWS:
            if key in found or not pattern.match(label):
                continue
            used = _number(cells[1])
            available = _number(cells[-2])
            if used is None:
                continue
            scale = 2 if key == "bram_18k" else 1
            setattr(report, key, int(round(used * scale)))
            if available is not None:
                report.available[key] = int(round(available * scale))
            found.add(key)
    if not found:
        raise InputError(f"{path}: no LUT, register, block RAM or DSP rows found; is this a report_utilization file?")
    return report


def _number(text: str) -> float | None:
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return None


def format_comparison(estimate: Estimate, reports: list[VendorReport], root: Path | str | None = None) -> str:
    """Render a Markdown table of estimate against each report, with estimate / report ratios."""
    if not reports:
        return "No vendor reports found: run C synthesis (csynth) or Vivado synthesis first.\n"
    header = ["quantity", "estimate"]
    for report in reports:
        display_path = report.path
        if root is not None:
            try:
                display_path = report.path.relative_to(root)
            except ValueError:
                pass
        header += [f"{report.tool} ({display_path})", "estimate / report"]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]

    quantities = [(RESOURCE_LABELS[key], estimate.totals[key], [report.resources()[key] for report in reports])
                  for key in RESOURCES]
    quantities.append(("II (cycles)", estimate.ii_cycles, [report.interval_max for report in reports]))
    quantities.append(("latency (cycles)", estimate.latency_cycles, [report.latency_worst for report in reports]))
    for label, ours, theirs in quantities:
        cells = [label, f"{ours:,}"]
        for value in theirs:
            cells += ["-" if value is None else f"{value:,}", _ratio(ours, value)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _ratio(ours: int, theirs: int | None) -> str:
    if theirs is None:
        return "-"
    if theirs == 0:
        return "-" if ours == 0 else "inf"
    ratio = ours / theirs
    return f"{ratio:.2f}" if math.isfinite(ratio) else "-"
