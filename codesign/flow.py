"""The convert job: quantize -> export -> lower -> project, into a fresh folder.

Everything is written to a staging folder beside the output first and moved
into place only when every stage succeeded, so a failed conversion leaves
nothing behind and never touches an existing folder without ``force``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from codesign.bitstream import write_bitstream_project
from codesign.boards import load_board
from codesign.errors import InputError
from codesign.export import QonnxModel, export, load_qonnx
from codesign.graph_passes import host_step_notes, parse_fixed_type, prepare_onnx
from codesign.jpeg.encode import JpegSettings
from codesign.lower import lower
from codesign.project import META_FILE, Project, write_project
from codesign.quantize import quantize
from codesign.sources import is_factory_spec, load_module_source
from codesign.sources_cli import SourceOptions

log = logging.getLogger(__name__)


def check_output_folder(
    out: Path, force: bool, inputs: tuple[Path, ...] = (), marker: str = META_FILE,
    kind: str = "codesign project folder",
) -> None:
    """Reject an output folder that codesign must not replace.

    A non-empty folder is replaced only with force, and only when it contains
    ``marker`` (the file codesign wrote there), so that --force never deletes
    a folder that another tool or the user owns. A folder that contains one
    of the input files or folders is always rejected.
    """
    out = Path(out).resolve()
    if out.exists() and not out.is_dir():
        raise InputError(f"output path {out} exists and is not a folder")
    for path in inputs:
        if Path(path).resolve().is_relative_to(out):
            raise InputError(f"output folder {out} contains the input {path}; choose another --out")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not (out / marker).is_file():
        raise InputError(f"output folder {out} is not empty and is not a {kind} (no {marker}); "
                         "choose another --out")
    if not force:
        raise InputError(f"output folder {out} is not empty; pass --force to replace it")


def _input_paths(model: str | None, board_name: str, options: SourceOptions | None) -> tuple[Path, ...]:
    """Return the files and folders that convert reads, which the output folder must not contain."""
    from codesign.quantize import BUNDLED_CHECKPOINT

    paths = [BUNDLED_CHECKPOINT if model is None else Path(model)]
    if model is not None and str(model).endswith(".onnx"):
        paths.append(Path(f"{model}.data"))
    if Path(board_name).is_file():
        paths.append(Path(board_name))
    if options is not None:
        paths += [path for path in (options.state_dict, options.calibrate) if path is not None]
    return tuple(path for path in paths if path.exists())


def _fix_paths(root: Path, staging: Path) -> None:
    """Point paths that hls4ml recorded in the staging folder at the final folder."""
    for path in (root / "hls").glob("*"):
        if path.is_file() and path.suffix in (".yml", ".tcl", ".sh"):
            text = path.read_text()
            if str(staging) in text:
                path.write_text(text.replace(str(staging), str(root)))


def convert(
    model: str | None,
    out: Path,
    board_name: str = "pynq-z2",
    force: bool = False,
    tb_images: int = 20,
    reuse_factor: int = 1,
    strategy: str = "Latency",
    jpeg_frontend: JpegSettings | None = None,
    source_options: SourceOptions | None = None,
) -> Project:
    """Convert a detector checkpoint, an ONNX file or a ``pkg.module:factory`` module into an HLS project folder.

    ONNX files may be QONNX or QCDQ; ``codesign.graph_passes`` describes what
    runs on the host instead of in the design. ``codesign.sources`` describes
    the module source and its ``source_options``.

    With ``jpeg_frontend``, the project gains a top level that decodes JPEG
    frames of that stream format in front of the detector (see
    ``codesign.jpeg.frontend_project``).
    """
    out = Path(out).resolve()
    if model is not None and Path(model).is_dir():
        raise InputError(f"model path {model} is a folder; expected a checkpoint, an ONNX file or pkg.module:factory")
    check_output_folder(out, force, _input_paths(model, board_name, source_options))
    if source_options is not None:
        parse_fixed_type(source_options.input_type)
    board = load_board(board_name)
    if reuse_factor < 1:
        raise InputError(f"--reuse-factor must be at least 1, got {reuse_factor}")
    if strategy not in ("Latency", "Resource"):
        raise InputError(f"--strategy must be Latency or Resource, got {strategy!r}")
    if tb_images < 1:
        raise InputError(f"--tb-images must be at least 1, got {tb_images}")

    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    try:
        project = _convert_into(model, staging, board, tb_images, reuse_factor, strategy, jpeg_frontend,
                                source_options or SourceOptions())
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
        _fix_paths(out, staging)
        project.root = out
        return project
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def _convert_into(
    model, root: Path, board, tb_images: int, reuse_factor: int, strategy: str, jpeg_frontend: JpegSettings | None,
    options: SourceOptions,
) -> Project:
    from quantize.dataset import DatasetSpec, generate, load_images

    is_onnx = model is not None and str(model).endswith(".onnx")
    is_module = is_factory_spec(model)
    if (is_onnx or is_module) and jpeg_frontend is not None:
        raise InputError(f"{model}: the JPEG front-end needs a detector checkpoint, whose data set supplies test images")
    if not is_module and (options.state_dict or options.input_shape or options.calibrate):
        raise InputError("--state-dict, --input-shape and --calibrate apply only to a pkg.module:factory model")
    if is_onnx:
        path = Path(model)
        if not path.is_file():
            raise InputError(f"model file not found: {path}")
        return _convert_onnx(load_qonnx(path), root, board, str(path.resolve()), tb_images, reuse_factor, strategy,
                             options)
    if is_module:
        qonnx = export(load_module_source(model, options), root)
        return _convert_onnx(qonnx, root, board, model, tb_images, reuse_factor, strategy, options)

    quantized = quantize(model)
    qonnx = export(quantized, root)
    config = quantized.config
    detector = {
        "stride": config.stride,
        "anchor": config.anchor,
        "num_classes": config.num_classes,
        "image_size": config.image_size,
    }
    dataset_spec = DatasetSpec()
    dataset = generate(spec=dataset_spec, splits=("val",))
    pixels, _ = load_images(dataset, "val", tb_images)
    source = quantized.source

    front_end = None
    if jpeg_frontend is not None:
        # JPEG front-end: the testbench runs the frames, and its expected outputs come from the decoded pixels.
        from codesign.jpeg.frontend import build_frontend, encode_frames

        front_end = build_frontend(jpeg_frontend, config.image_size, config.image_size)
        frames, pixels = encode_frames(front_end, pixels)

    lowered = lower(qonnx, board, root / "hls", reuse_factor=reuse_factor, strategy=strategy)
    if front_end is not None:
        from codesign.jpeg.frontend_project import attach_frontend

        attach_frontend(lowered, front_end)
    project = write_project(lowered, qonnx, board, root, source, detector, dataset_spec, pixels)
    if front_end is not None:
        from codesign.jpeg.frontend_project import write_frontend

        write_frontend(project, lowered, front_end, frames)
    write_bitstream_project(project, board)
    return project


def _convert_onnx(
    qonnx: QonnxModel, root: Path, board, source: str, tb_images: int, reuse_factor: int, strategy: str,
    options: SourceOptions,
) -> Project:
    """Convert an ONNX model that ships no data; the testbench uses random codes in the input quantizer's range."""
    model, preparation = prepare_onnx(qonnx.model, options.input_type)
    qonnx = QonnxModel(path=root / "model.qonnx.onnx", model=model)
    model.save(str(qonnx.path))
    for step in preparation.host_steps:
        step.model.save(str(root / step.file))
    lowered = lower(qonnx, board, root / "hls", reuse_factor=reuse_factor, strategy=strategy)
    project = write_project(lowered, qonnx, board, root, source, None, None, None, tb_items=tb_images)
    # codesign.json and precision.md record what runs on the host, so that users and later stages can read it.
    project.meta["source_model"] = preparation.to_dict()
    (root / META_FILE).write_text(json.dumps(project.meta, indent=2) + "\n")
    notes = host_step_notes(preparation)
    if notes:
        with (root / "precision.md").open("a") as precision:
            precision.write(notes)
    write_bitstream_project(project, board)
    return project
