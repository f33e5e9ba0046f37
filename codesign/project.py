"""Stage 4, project: write the HLS project folder and its testbench data.

Folder layout:

    DIR/codesign.json         what csim and later stages need (layouts, types, board, data)
    DIR/model.qonnx.onnx      the QONNX reference model (NCHW)
    DIR/model.channels_last.onnx  the form hls4ml was given
    DIR/precision.md          the precision table: every type and why
    DIR/hls/                  the hls4ml Vitis project, plus codesign_tb.cpp
    DIR/hls/tb_data/inputs.bin, expected.bin   testbench data from val JPEGs
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from codesign import tensorfile
from codesign.boards import Board
from codesign.errors import CodesignError, InputError, UnsupportedModelError
from codesign.inputs import RANDOM_SEED, from_pixels, pixels_to_model_input, random_inputs, to_design_order  # noqa: F401
from codesign.export import QonnxModel
from codesign.lower import PROJECT_NAME, LoweredModel
from codesign.precision import format_table
from codesign.reference import Reference
from codesign.templating import TEMPLATE_DIR, render_file
from codesign.thresholds import output_meta, precision_notes, scale_to_codes
from codesign.trace import trace_map
from quantize.dataset import DatasetSpec

log = logging.getLogger(__name__)

META_FILE = "codesign.json"
META_VERSION = 1
TESTBENCH = "codesign_tb.cpp"
TESTBENCH_HEADER = "codesign_tb_common.h"
VENDOR_CSIM_SCRIPT = "vendor_csim.tcl"


@dataclass
class Project:
    """A project folder written by ``write_project``."""

    root: Path
    meta: dict

    @property
    def hls_dir(self) -> Path:
        return self.root / "hls"

    @property
    def reference_model(self) -> Path:
        return self.root / self.meta["reference_model"]

    @property
    def output_frac(self) -> int:
        return self.meta["output"]["frac"]


def fixed_point_description(precision) -> dict:
    """Return a JSON-able description of an hls4ml fixed type."""
    return {
        "type": str(precision),
        "width": precision.width,
        "integer": precision.integer,
        "signed": bool(precision.signed),
        "frac": precision.width - precision.integer,
    }


def reference_codes(
    reference: Reference, inputs: np.ndarray, frac: int, raw: list | None = None, meta: dict | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Run the reference; return (design-order output values, the values scaled by 2**frac).

    The scaled values are the output codes when the outputs are exact. The
    output order comes from ``meta`` (a project's codesign.json); without it,
    a 4-D output is taken to be NCHW. When ``raw`` is a list, the
    reference-order outputs are appended to it.
    """
    outputs = reference.run(inputs)
    if raw is not None:
        raw.append(outputs)
    if meta is not None:
        outputs = to_design_order(outputs, meta["output"])
    elif outputs.ndim == 4:
        outputs = outputs.transpose(0, 2, 3, 1)
    carried_scale = meta["output"].get("scale") if meta is not None else None
    if carried_scale is not None:
        # Float-scale lowering: the design outputs quantizer codes, not values.
        scaled = np.ldexp(scale_to_codes(outputs, carried_scale), frac)
    else:
        scaled = np.ldexp(outputs.astype(np.float64), frac)
    return outputs, scaled


def traced_layers(hls_model) -> list[tuple[str, str]]:
    """Return (layer name, C++ size expression) of every layer whose output hls4ml saves when tracing."""
    layers = []
    for layer in hls_model.get_layers():
        if layer.get_attr("function_cpp", None) and layer.get_attr("trace", False):
            for variable in layer.get_variables():
                layers.append((layer.name, variable.size_cpp()))
    return layers


def _traced_layers_cpp(hls_model) -> str:
    rows = [f'    {{"{name}", {size}}},' for name, size in traced_layers(hls_model)]
    # An empty array is not valid C++; a zero-size entry is skipped by the testbench.
    return "\n".join(rows) if rows else '    {"", 0},'


def check_weight_files(hls_model, hls_dir: Path) -> None:
    """Check that every weights/*.txt file reads back to the exact constants.

    hls4ml prints constants with six decimals. Read back with round-to-nearest
    (the constant types use ``AP_RND_CONV``), that recovers every value whose
    LSB is at least 2**-19; a finer LSB would silently change a weight.
    """
    for layer in hls_model.get_layers():
        for variable in layer.weights.values():
            path = hls_dir / "firmware" / "weights" / f"{variable.name}.txt"
            if not path.is_file():
                raise CodesignError(f"hls4ml did not write {path}")
            precision = variable.type.precision
            frac = precision.width - precision.integer
            written = np.array([float(v) for v in path.read_text().replace("\n", "").split(",") if v.strip()])
            exact = np.ldexp(np.asarray(variable.data, dtype=np.float64).ravel(), frac)
            if written.size != exact.size or not np.array_equal(np.rint(np.ldexp(written, frac)), exact):
                raise CodesignError(
                    f"{path} does not hold the exact values of {variable.name} ({precision}); "
                    "its LSB is too fine for hls4ml's six-decimal weight files"
                )


def write_project(
    lowered: LoweredModel,
    qonnx: QonnxModel,
    board: Board,
    root: Path,
    source: str,
    detector: dict | None,
    dataset_spec: DatasetSpec | None,
    tb_pixels: np.ndarray | None,
    tb_items: int = 20,
) -> Project:
    """Write the hls4ml project, testbench, reference models and metadata into root."""
    hls_dir = root / "hls"
    trace = io.StringIO()
    with contextlib.redirect_stdout(trace):
        lowered.hls_model.write()
    log.debug("hls4ml write output:\n%s", trace.getvalue())
    check_weight_files(lowered.hls_model, hls_dir)

    input_values = int(np.prod(lowered.input_shape[1:]))
    output_values = int(np.prod(lowered.output_shape[1:]))
    testbench = render_file(
        TESTBENCH,
        {
            "PROJECT": PROJECT_NAME,
            "INPUT_VALUES": input_values,
            "OUTPUT_VALUES": output_values,
            "TRACED_LAYERS": _traced_layers_cpp(lowered.hls_model),
        },
    )
    (hls_dir / TESTBENCH).write_text(testbench)
    shutil.copyfile(TEMPLATE_DIR / TESTBENCH_HEADER, hls_dir / TESTBENCH_HEADER)
    vendor_script = render_file(
        VENDOR_CSIM_SCRIPT,
        {"TOP": PROJECT_NAME, "PROJECT": PROJECT_NAME, "EXTRA_SOURCES": "", "PART": board.part,
         "CLOCK_PERIOD_NS": round(1000.0 / board.clock_mhz, 3)},
    )
    (hls_dir / VENDOR_CSIM_SCRIPT).write_text(vendor_script)

    if qonnx.path.resolve() != (root / "model.qonnx.onnx").resolve():
        shutil.copyfile(qonnx.path, root / "model.qonnx.onnx")
    lowered.channels_last.save(str(root / "model.channels_last.onnx"))
    (root / "precision.md").write_text(
        f"# Precision table\n\nEvery type of the generated C++, derived by interval analysis.\n\n"
        f"{format_table(lowered.precision_table)}{precision_notes(lowered.float_scales)}"
    )

    quantizer = lowered.input_quantizer
    meta = {
        "version": META_VERSION,
        "project_name": PROJECT_NAME,
        "source": source,
        "board": board.to_dict(),
        "reference_model": "model.qonnx.onnx",
        "input": {
            "shape": list(lowered.input_shape),
            "reference_shape": list(qonnx.model.get_tensor_shape(qonnx.input_name)),
            "reference_channels_first": lowered.reference_channels_first,
            "layout": lowered.input_layout,
            "quantizer": {
                "scale": quantizer.params.scale.tolist(),
                "zero_point": quantizer.params.zero_point.tolist(),
                "bit_width": quantizer.params.bit_width,
                "signed": quantizer.params.signed,
                "narrow": quantizer.params.narrow,
            },
            **fixed_point_description(quantizer.precision),
        },
        "output": {
            "shape": list(lowered.output_shape),
            "reference_shape": list(qonnx.model.get_tensor_shape(qonnx.output_name)),
            "reference_channels_first": lowered.reference_channels_first,
            "layout": lowered.output_layout,
            **fixed_point_description(lowered.output_precision),
            **output_meta(lowered.float_scales),
        },
        "detector": detector,
        "dataset": dataset_spec.__dict__ if dataset_spec else None,
        "precision": [
            {"layer": e.layer, "tensor": e.tensor, "type": e.type, "reason": e.reason,
             "min": e.interval.value_range()[0], "max": e.interval.value_range()[1]}
            for e in lowered.precision_table
        ],
        "testbench": None,
        "trace": trace_map(lowered.hls_model, lowered.channels_last, float_scales=lowered.float_scales is not None),
        "weight_files": {
            layer.name: {role: f"hls/firmware/weights/{variable.name}.txt" for role, variable in layer.weights.items()}
            for layer in lowered.hls_model.get_layers()
            if layer.weights
        },
    }

    inputs = from_pixels(meta, tb_pixels) if tb_pixels is not None else random_inputs(meta, tb_items)
    frac = lowered.output_precision.width - lowered.output_precision.integer
    _, scaled = reference_codes(Reference(qonnx.model), inputs.reference, frac, meta=meta)
    if "error_bound_lsb" not in meta["output"] and not np.array_equal(scaled, np.rint(scaled)):
        raise UnsupportedModelError(
            "reference outputs are not multiples of the output type's LSB: the last layer's output is not "
            "a fixed-point value (a float scale or an unquantized operation follows the last quantizer)"
        )
    tb_dir = hls_dir / "tb_data"
    tb_dir.mkdir(exist_ok=True)
    tensorfile.write(tb_dir / "inputs.bin", inputs.codes)
    tensorfile.write(tb_dir / "expected.bin", np.rint(scaled).astype(np.int64))
    meta["testbench"] = {
        "images": int(len(inputs.codes)),
        "inputs": "hls/tb_data/inputs.bin",
        "expected": "hls/tb_data/expected.bin",
        "source": "val" if tb_pixels is not None else f"random codes, seed {RANDOM_SEED}",
    }

    (root / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    log.info("wrote project %s", root)
    return Project(root=root, meta=meta)


def load_project(root: Path) -> Project:
    """Open a project folder; raise InputError when it is not one."""
    root = Path(root)
    meta_path = root / META_FILE
    if root.exists() and not root.is_dir():
        raise InputError(f"{root} is not a folder; expected a project folder written by codesign convert")
    if not root.is_dir():
        raise InputError(f"project folder not found: {root}")
    if not meta_path.is_file():
        raise InputError(f"{root} is not a codesign project: {META_FILE} is missing (run codesign convert first)")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as error:
        raise InputError(f"{meta_path}: invalid JSON ({error})") from error
    if meta.get("version") != META_VERSION:
        raise InputError(f"{meta_path}: unsupported project version {meta.get('version')!r}")
    return Project(root=root, meta=meta)
