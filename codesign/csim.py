"""Stage 5, csim: build the generated C++ with g++ and compare it with the reference.

The testbench runs in child processes, never through ctypes in this process:
an assertion in hls4ml's templates would otherwise abort Python itself. The
images are split into shards that run in parallel, one per core.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from codesign import tensorfile
from codesign.detection_diff import compare_detections
from codesign.errors import CodesignError, InputError, SimulationError
from codesign.export import load_qonnx
from codesign.lower import PROJECT_NAME
from codesign.inputs import input_quantizer, project_inputs
from codesign.jpeg.frontend_project import extra_units as frontend_units
from codesign.jpeg.frontend_project import is_frontend_project, prepare_csim_inputs
from codesign.project import TESTBENCH, TESTBENCH_HEADER, Project, reference_codes
from codesign.reference import QuantParams, Reference
from codesign.references import compare_references
from codesign.trace import trace_image
from quantize.boxes import decode

log = logging.getLogger(__name__)

CXXFLAGS = ["-O2", "-std=c++20", "-w"]
# The fast build compiles the same sources against hls_templates/fast_ap_types,
# codesign's bit-accurate model of AMD's ap_int/ap_fixed (13x to 23x faster on the
# bundled detector, measured by benchmarks/csim_speed.py).
FAST_CXXFLAGS = ["-O3", "-march=native", "-std=c++20", "-w"]
FAST_AP_TYPES = Path(__file__).resolve().parents[1] / "hls_templates" / "fast_ap_types"
AP_TYPES = ("fast", "amd")
# Images that the AMD-header build also runs in a fast csim, compared bit for bit.
DEFAULT_AMD_CHECK = 1
# AddressSanitizer and UndefinedBehaviorSanitizer; any report aborts the run.
SANITIZE_FLAGS = ["-O1", "-g", "-std=c++20", "-w", "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
                  "-fno-omit-frame-pointer"]
MAX_REPORTED_MISMATCHES = 10
# A sanitizer finding must not look like a mismatch (exit status 1).
_SANITIZER_ENV = dict(
    os.environ,
    ASAN_OPTIONS="exitcode=99:detect_leaks=1:abort_on_error=0",
    UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1",
)
# Items per testbench process: small enough for a smooth progress bar, large
# enough that process start-up (reading the weight files) stays negligible.
MAX_CHUNK_ITEMS = 25


class BuildError(SimulationError):
    """g++ failed on the generated project."""


@dataclass
class CsimReport:
    """Outcome of one C simulation run against the reference."""

    images: int
    values: int
    exact_values: int
    exact_fraction: float
    max_abs_lsb: float
    detections_identical: bool | None
    mismatches: list[dict] = field(default_factory=list)
    build_seconds: float = 0.0
    reference_seconds: float = 0.0
    run_seconds: float = 0.0
    jobs: int = 1
    trace: dict | None = None
    references: list[dict] | None = None
    jpeg_frontend: dict | None = None  # frame statistics of a JPEG front-end project
    # Bound in LSB for outputs rounded to their fixed type (a float-scale output without
    # a quantizer). The project records it.
    error_bound_lsb: float | None = None
    within_bound_values: int | None = None
    # With a bound, detections cannot be identical; codesign.detection_diff measures the difference.
    detection_differences: dict | None = None
    # "fast" (codesign's ap types model) or "amd" (AMD's headers), and how many
    # images the AMD-header build also ran with identical outputs.
    ap_types: str = "amd"
    amd_check_images: int = 0

    @property
    def references_agree(self) -> bool:
        return all(row["identical"] is not False for row in self.references or [])

    @property
    def passed(self) -> bool:
        accepted = self.exact_values if self.error_bound_lsb is None else self.within_bound_values
        return (
            accepted == self.values
            and self.detections_identical is not False
            and self.references_agree
        )

    def to_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed}


def _source_files(project: Project) -> list[Path]:
    firmware = project.hls_dir / "firmware"
    files = [p for p in sorted(firmware.rglob("*")) if p.is_file() and p.suffix in (".h", ".cpp", ".hpp", ".txt")]
    return files + [project.hls_dir / TESTBENCH, project.hls_dir / TESTBENCH_HEADER]


_HEADER_ARRAY = re.compile(r"#else\s*\n[^\[]*\[(\d+)\]\s*=\s*\{([^}]*)\}", re.S)


def _parse_numbers(text: str, path: Path) -> np.ndarray:
    values = [token.strip() for token in text.replace("\n", "").split(",") if token.strip()]
    try:
        return np.array([float(token) for token in values], dtype=np.float64)
    except ValueError as error:
        raise InputError(f"{path}: {error}; re-run codesign convert to restore it") from None


def check_weight_pair(text_file: Path) -> None:
    """Raise InputError unless a weights .txt file and its .h file contain the same values.

    C simulation reads the .txt file, and synthesis compiles the array in the
    .h file. A difference would make csim test other weights than the bitstream's.
    """
    header = text_file.with_suffix(".h")
    if not header.is_file():
        raise InputError(f"project file missing: {header} (re-run codesign convert to restore it)")
    match = _HEADER_ARRAY.search(header.read_text())
    if match is None:
        raise InputError(f"{header}: no initialized weight array found; re-run codesign convert to restore it")
    declared = int(match.group(1))
    synthesized = _parse_numbers(match.group(2), header)
    simulated = _parse_numbers(text_file.read_text(), text_file)
    for path, values in ((header, synthesized), (text_file, simulated)):
        if values.size != declared:
            raise InputError(f"{path} contains {values.size} values, but the array has {declared}; "
                             "re-run codesign convert to restore it")
    differs = np.nonzero(synthesized != simulated)[0]
    if differs.size:
        index = int(differs[0])
        raise InputError(
            f"{header.name} and {text_file.name} differ at value {index} ({synthesized[index]:g} vs "
            f"{simulated[index]:g}): synthesis compiles the .h file and C simulation reads the .txt file; "
            "re-run codesign convert to restore them"
        )


def check_project_files(project: Project) -> None:
    """Raise InputError naming the first project file that is missing, damaged or inconsistent."""
    listed = [project.reference_model]
    weight_files = []
    for files in project.meta.get("weight_files", {}).values():
        weight_files += [project.root / path for path in files.values()]
    listed += weight_files
    testbench = project.meta.get("testbench") or {}
    data_files = [project.root / testbench[key] for key in ("inputs", "expected") if key in testbench]
    listed += data_files
    for path in listed:
        if not path.is_file():
            raise InputError(f"project file missing: {path} (re-run codesign convert to restore it)")
    for path in weight_files:
        check_weight_pair(path)
    # The vendor testbench (make csim, --vendor) reads these; tensorfile.read rejects damaged files.
    images = testbench.get("images")
    for path in data_files:
        data = tensorfile.read(path)
        if images is not None and len(data) != images:
            raise InputError(f"{path} contains {len(data)} items, but codesign.json lists {images}; "
                             "re-run codesign convert to restore it")


def build(project: Project, jobs: int = 2, sanitize: bool = False, ap_types: str = "amd") -> tuple[Path, float]:
    """Compile the testbench and the design; reuse the binary when no source changed.

    ``ap_types`` is "amd" (the AMD headers shipped in the project, into
    csim/) or "fast" (codesign's bit-accurate model, into csim/fast/).
    With ``sanitize`` the AMD-header binary is built with AddressSanitizer
    and UndefinedBehaviorSanitizer into csim/sanitize/.
    Returns (binary path, seconds spent compiling; 0 when reused).
    """
    if ap_types not in AP_TYPES:
        raise InputError(f"--ap-types must be one of {', '.join(AP_TYPES)}, got {ap_types!r}")
    fast = ap_types == "fast" and not sanitize
    flags, folder = CXXFLAGS, ""
    if sanitize:
        flags, folder = SANITIZE_FLAGS, "sanitize"
    elif fast:
        flags, folder = FAST_CXXFLAGS, "fast"
    testbench = project.hls_dir / TESTBENCH
    if not testbench.is_file():
        raise InputError(f"testbench {testbench} is missing; re-run codesign convert")
    build_dir = project.root / "csim" / folder
    build_dir.mkdir(parents=True, exist_ok=True)
    binary = build_dir / "codesign_tb"
    digest = hashlib.sha256(" ".join(flags).encode() + str(project.root.resolve()).encode())
    sources = _source_files(project)
    if fast:
        sources += sorted(FAST_AP_TYPES.glob("*.h"))
    for path in sources:
        digest.update(path.name.encode() if fast and path.parent == FAST_AP_TYPES
                      else str(path.relative_to(project.root)).encode())
        digest.update(path.read_bytes())
    stamp = build_dir / "codesign_tb.sha256"
    if binary.is_file() and stamp.is_file() and stamp.read_text() == digest.hexdigest():
        return binary, 0.0

    started = time.monotonic()
    # Outside synthesis, hls4ml's firmware reads its weights from the text
    # files in WEIGHTS_DIR; the project stage checked they hold exact values.
    weights_dir = (project.hls_dir / "firmware" / "weights").resolve()
    include = [f'-DWEIGHTS_DIR="{weights_dir}"', "-I", str(project.hls_dir), "-I", str(project.hls_dir / "firmware"),
               "-I", str(project.hls_dir / "firmware" / "ap_types")]
    if fast:
        # First on the path: its headers shadow AMD's ap_int.h, ap_fixed.h and hls_math.h.
        include = ["-I", str(FAST_AP_TYPES), *include]
    units = [project.hls_dir / "firmware" / f"{PROJECT_NAME}.cpp", testbench]
    units += frontend_units(project)
    commands = [["g++", *flags, *include, "-c", str(unit), "-o", str(build_dir / (unit.stem + ".o"))] for unit in units]
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        results = list(pool.map(lambda cmd: subprocess.run(cmd, capture_output=True, text=True), commands))
    for command, result in zip(commands, results):
        if result.returncode != 0:
            raise BuildError(f"g++ failed on {command[-3]}:\n{result.stderr[-4000:]}")
    link = ["g++", *(flags if sanitize else []), *[str(build_dir / (u.stem + ".o")) for u in units], "-o", str(binary)]
    result = subprocess.run(link, capture_output=True, text=True)
    if result.returncode != 0:
        raise BuildError(f"linking the testbench failed:\n{result.stderr[-4000:]}")
    stamp.write_text(digest.hexdigest())
    return binary, time.monotonic() - started


def _build_both(project: Project, jobs: int, ap_types: str, amd_check: int) -> tuple[Path, Path | None, str, float]:
    """Build the binaries a csim run needs, in parallel.

    Returns (binary to simulate with, AMD-header binary or None, the ap types
    that binary uses, wall seconds spent compiling).
    """
    if ap_types not in AP_TYPES:
        raise InputError(f"--ap-types must be one of {', '.join(AP_TYPES)}, got {ap_types!r}")
    if ap_types == "amd":
        binary, seconds = build(project, jobs, ap_types="amd")
        return binary, binary, "amd", seconds
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=2) as pool:
        fast = pool.submit(build, project, jobs, False, "fast")
        amd = pool.submit(build, project, jobs, False, "amd") if amd_check > 0 else None
        try:
            binary, fast_seconds = fast.result()
        except BuildError as error:
            # A feature the fast model does not cover (AP_WRAP_SM, saturation
            # bits, very wide types) stops its build; AMD's headers still work.
            reason = str(error).strip().splitlines()[0]
            log.warning("the fast ap types model cannot build this project (%s); simulating with AMD's headers",
                        reason)
            amd_binary, _ = (amd or pool.submit(build, project, jobs, False, "amd")).result()
            return amd_binary, amd_binary, "amd", time.monotonic() - started
        amd_binary = amd.result()[0] if amd is not None else None
        reused = fast_seconds == 0 and (amd is None or amd.result()[1] == 0)
    return binary, amd_binary, "fast", 0.0 if reused else time.monotonic() - started


def _check_against_amd(amd_binary: Path, work: Path, fast_outputs: np.ndarray, jobs: int) -> None:
    """Run the first images through the AMD-header build; raise unless its outputs equal the fast build's."""
    count = len(fast_outputs)
    amd_outputs = _run_chunks(amd_binary, work / "inputs.bin", work / "expected.bin", count, jobs, work, False)
    differs = np.nonzero((amd_outputs != fast_outputs).any(axis=1))[0]
    if differs.size:
        raise SimulationError(
            f"codesign's fast ap types model and AMD's headers disagree on image {int(differs[0])}; "
            "this is a codesign bug: rerun with --ap-types amd and report it"
        )


def _input_quantizer(project: Project) -> QuantParams:
    return input_quantizer(project.meta)


def load_val_pixels(project: Project, count: int) -> np.ndarray:
    """Return the first ``count`` val images of the project's data set, generating it if needed."""
    from quantize.dataset import DatasetSpec, generate, load_images

    spec = project.meta.get("dataset")
    if spec is None:
        raise InputError(f"{project.root}: project records no data set to take images from")
    dataset = generate(spec=DatasetSpec(**spec), splits=("val",))
    available = len(dataset.annotations("val")["images"])
    if count > available:
        raise InputError(f"--count {count} exceeds the {available} val images of the data set")
    pixels, _ = load_images(dataset, "val", count)
    return pixels


def _run_chunks(
    binary: Path, inputs: Path, expected: Path, count: int, jobs: int, work: Path, progress: bool
) -> np.ndarray:
    """Run the testbench over all items in chunks, ``jobs`` processes at a time."""
    chunk = max(1, min(MAX_CHUNK_ITEMS, -(-count // jobs)))
    ranges = [(first, min(chunk, count - first)) for first in range(0, count, chunk)]

    def run(index_range):
        index, (first, size) = index_range
        out = work / f"outputs_{index}.bin"
        command = [str(binary), str(inputs), str(first), str(size), str(out), str(expected)]
        result = subprocess.run(command, capture_output=True, text=True, env=_SANITIZER_ENV)
        return out, result

    outputs = []
    with ThreadPoolExecutor(max_workers=jobs) as pool, tqdm(
        total=count, unit="image", desc="C simulation", disable=not progress, leave=False
    ) as bar:
        for (first, size), (out, result) in zip(ranges, pool.map(run, enumerate(ranges))):
            if result.returncode == 2:
                lines = result.stderr.strip().splitlines()
                raise InputError(lines[-1] if lines else "testbench rejected its data")
            if result.returncode not in (0, 1):
                raise SimulationError(
                    f"testbench failed on items {first}..{first + size - 1} with exit status "
                    f"{result.returncode}:\n{(result.stderr or result.stdout)[-3000:]}"
                )
            log.debug("testbench output for items %d..%d:\n%s", first, first + size - 1, result.stdout)
            if not out.is_file():
                raise SimulationError(
                    f"testbench wrote no outputs for items {first}..{first + size - 1} (exit status "
                    f"{result.returncode}):\n{(result.stderr or result.stdout)[-3000:]}"
                )
            outputs.append(tensorfile.read(out))
            out.unlink()
            bar.update(size)
    return np.concatenate(outputs)


def csim(
    project: Project,
    count: int = 20,
    jobs: int | None = None,
    progress: bool = False,
    trace_on_mismatch: bool = True,
    sanitize: bool = False,
    all_references: bool = False,
    ap_types: str = "fast",
    amd_check: int = DEFAULT_AMD_CHECK,
) -> CsimReport:
    """Run ``count`` val images through the C++ and the reference; compare every output value.

    With ``ap_types="fast"`` the C++ is compiled against codesign's fast
    model of the ap types, and the first ``amd_check`` images also run in a
    build with AMD's headers, whose outputs must be identical. On a
    mismatch, the first mismatching image is run again with the layer trace
    on, and the report names the first layer that differs.
    """
    if count < 1:
        raise InputError(f"--count must be at least 1, got {count}")
    if amd_check < 0:
        raise InputError(f"--amd-check must be 0 or more, got {amd_check}")
    if jobs is not None and jobs < 0:
        raise InputError(f"--jobs must be 0 (all cores) or more, got {jobs}")
    jobs = jobs or os.cpu_count() or 1
    check_project_files(project)
    if sanitize:
        ap_types = "amd"
        binary, build_seconds = build(project, jobs, sanitize=True)
        amd_binary = None
    else:
        binary, amd_binary, ap_types, build_seconds = _build_both(project, jobs, ap_types, amd_check)

    started = time.monotonic()
    frames = frame_statistics = None
    if is_frontend_project(project):
        # JPEG front-end: the C++ reads frames, and the reference runs on the pixels they decode to.
        frames, test_inputs, frame_statistics = prepare_csim_inputs(project, load_val_pixels(project, count))
    else:
        test_inputs = project_inputs(project.meta, count)
    inputs, codes = test_inputs.reference, test_inputs.codes
    reference = Reference(load_qonnx(project.reference_model).model)
    frac = project.output_frac
    raw: list = []
    values, scaled = reference_codes(reference, inputs, frac, raw, meta=project.meta)
    references = None
    if all_references:
        references = [asdict(row) for row in compare_references(project, inputs, raw[0])]
    expected = np.rint(scaled).astype(np.int64).reshape(count, -1)
    reference_seconds = time.monotonic() - started

    work = project.root / "csim"
    tensorfile.write(work / "inputs.bin", codes if frames is None else frames)
    tensorfile.write(work / "expected.bin", expected)
    started = time.monotonic()
    got = _run_chunks(binary, work / "inputs.bin", work / "expected.bin", count, jobs, work, progress)
    amd_check_images = 0
    if ap_types == "fast" and amd_binary is not None:
        amd_check_images = min(amd_check, count)
        _check_against_amd(amd_binary, work, got[:amd_check_images], jobs)
    run_seconds = time.monotonic() - started

    difference = np.abs(got - scaled.reshape(count, -1))
    exact = got == scaled.reshape(count, -1)
    bound = project.meta["output"].get("error_bound_lsb")
    within = exact if bound is None else difference <= bound
    mismatches = [
        {"image": int(i), "output": int(j), "got": int(got[i, j]), "expected": float(scaled.reshape(count, -1)[i, j]),
         "difference_lsb": float(got[i, j] - scaled.reshape(count, -1)[i, j])}
        for i, j in zip(*np.nonzero(~within))
    ][:MAX_REPORTED_MISMATCHES]

    trace = None
    if not within.all() and trace_on_mismatch:
        image = int(np.nonzero(~within.all(axis=1))[0][0])
        # Real input values: codes times the input quantizer's scale (2**-frac, or a float scale that
        # the design carries in its thresholds).
        input_nhwc = codes[image].astype(np.float64) * float(np.unique(project.meta["input"]["quantizer"]["scale"])[0])
        trace = trace_image(project, binary, work / "inputs.bin", image, input_nhwc).to_dict()

    detections_identical = None
    detection_differences = None
    detector = project.meta.get("detector")
    if detector and bound is not None:
        shape = (count, *project.meta["output"]["shape"][1:])
        hardware = np.ldexp(got.astype(np.float64), -frac).reshape(shape)
        detection_differences = compare_detections(hardware, values.astype(np.float64).reshape(shape),
                                                   detector["stride"], detector["anchor"])
    elif detector:
        shape = (count, *project.meta["output"]["shape"][1:])
        hardware = np.ldexp(got.astype(np.float64), -frac).reshape(shape)
        software = values.astype(np.float64).reshape(shape)
        detections_identical = all(
            decode(h, detector["stride"], detector["anchor"]).equals(decode(s, detector["stride"], detector["anchor"]))
            for h, s in zip(hardware, software)
        )

    report = CsimReport(
        images=count,
        values=int(exact.size),
        exact_values=int(exact.sum()),
        exact_fraction=float(exact.mean()),
        max_abs_lsb=float(difference.max()),
        detections_identical=detections_identical,
        mismatches=mismatches,
        build_seconds=round(build_seconds, 2),
        reference_seconds=round(reference_seconds, 2),
        run_seconds=round(run_seconds, 2),
        jobs=min(jobs, count),
        trace=trace,
        references=references,
        jpeg_frontend=frame_statistics,
        error_bound_lsb=bound,
        ap_types=ap_types,
        amd_check_images=amd_check_images,
        within_bound_values=None if bound is None else int(within.sum()),
        detection_differences=detection_differences,
    )
    write_report(project, report)
    return report


def _ap_types_line(report: CsimReport) -> str:
    if report.ap_types == "fast":
        return (f"codesign fast model; the first {report.amd_check_images} image(s) also ran with AMD's headers, "
                "identical") if report.amd_check_images else "codesign fast model (no AMD-header check)"
    return "AMD headers"


def _detection_differences_row(differences: dict) -> str:
    return (f"| detections of rounded outputs | same classes in {differences['same_detections']} of "
            f"{differences['images']} images; max score difference {differences['max_score_difference']:.3g}, "
            f"max box difference {differences['max_box_difference_px']:.3g} px |")


def format_markdown(report: CsimReport) -> str:
    """Render a csim report as Markdown."""
    lines = [
        "# C simulation report",
        "",
        f"Result: **{'PASS' if report.passed else 'FAIL'}**",
        "",
        "| measure | value |",
        "|---|---|",
        f"| images | {report.images} |",
        f"| output values | {report.values} |",
        f"| exact values | {report.exact_values} ({report.exact_fraction:.6f}) |",
        f"| max abs difference | {report.max_abs_lsb:g} LSB |",
        *([f"| within the stated bound of {report.error_bound_lsb:g} LSB (rounded float-scale output) | "
           f"{report.within_bound_values} of {report.values} |"] if report.error_bound_lsb is not None else []),
        *([_detection_differences_row(report.detection_differences)] if report.detection_differences else []),
        f"| detections identical | {report.detections_identical} |",
        f"| ap types | {_ap_types_line(report)} |",
        f"| build / reference / C++ seconds | {report.build_seconds} / {report.reference_seconds} / "
        f"{report.run_seconds} ({report.jobs} processes) |",
        "",
    ]
    if report.references:
        lines += ["## References", "", "| reference | identical to onnxruntime | max difference (LSB) |", "|---|---|---|"]
        lines += [f"| {r['name']} | {r['identical']} | {r['max_abs_lsb']} |" for r in report.references]
        lines.append("")
    if report.mismatches:
        lines += ["## First mismatches", "", "| image | output | got | expected | difference (LSB) |", "|---|---|---|---|---|"]
        lines += [f"| {m['image']} | {m['output']} | {m['got']} | {m['expected']:g} | {m['difference_lsb']:+g} |"
                  for m in report.mismatches]
        lines.append("")
    if report.trace:
        lines += [f"## Layer trace of image {report.trace['image']}", "",
                  f"First diverging layer: **{report.trace['first_diverging_layer']}**", "",
                  "| layer | reference tensor | values | differing | max difference (LSB) |", "|---|---|---|---|---|"]
        lines += [f"| {r['layer']} | {r['tensor']} | {r['values']} | {r['differing']} | {r['max_abs_lsb']:g} |"
                  for r in report.trace["layers"]]
        lines.append("")
    return "\n".join(lines)


def write_report(project: Project, report: CsimReport) -> None:
    """Write csim/report.json and csim/report.md into the project folder."""
    folder = project.root / "csim"
    (folder / "report.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    (folder / "report.md").write_text(format_markdown(report))
