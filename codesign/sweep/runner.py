"""Run a sweep: check the output folder, skip finished points, and schedule the rest.

Layout of the output folder::

    sweep.json            the sweep's arguments; a rerun must match them unless --force
    points/<key>.json     one finished point, written atomically as soon as it completes
    points/<key>/project  the --verify project of the first point of a bit-width combination
    results.csv, results.json, pareto.png, report.md

Points run on local worker processes (``concurrent.futures`` with the
forkserver start method), or on an existing Dask distributed cluster through
``dask.distributed.Client``.
"""

from __future__ import annotations

import concurrent.futures
import fcntl
import hashlib
import json
import logging
import multiprocessing
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from codesign.boards import Board
from codesign.errors import InputError
from codesign.sweep.grid import Point, SweepSpec
from codesign.sweep.worker import ModelTask, TaskSettings, compute_points, init_worker, serialize_weights

log = logging.getLogger(__name__)

SWEEP_FORMAT = "codesign-sweep"
SWEEP_FORMAT_VERSION = 1
# Modules that every worker process needs, imported once by the fork server.
WORKER_PRELOAD = (
    "codesign.sweep.worker", "torch", "brevitas.nn", "quantize.ptq", "quantize.train", "codesign.export",
    "codesign.lower", "codesign.estimate",
)
# Seconds to wait for a Dask scheduler before giving up.
SCHEDULER_TIMEOUT_S = 20


@dataclass
class SweepResult:
    """Rows of every point in grid order, and the keys that this run computed."""

    out: Path
    rows: list[dict]
    computed: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def best_fitting(self) -> dict | None:
        """Return the fitting point with the highest mAP (ties: higher fps, then fewer LUTs), or None."""
        from codesign.sweep.report import best_fitting

        return best_fitting(self.rows)


def settings_digest(spec: SweepSpec) -> str:
    """Return a SHA-256 over the settings that every point's values depend on."""
    return hashlib.sha256(json.dumps(spec.settings(), sort_keys=True).encode()).hexdigest()


def run_sweep(
    spec: SweepSpec,
    out: Path,
    board: Board,
    weights,
    *,
    jobs: int | None = None,
    scheduler: str | None = None,
    force: bool = False,
    progress: bool = True,
    on_point: Callable[[dict], None] | None = None,
) -> SweepResult:
    """Compute the points of spec that out lacks, write every result file, and return all rows.

    ``weights`` is the checkpoint's ``quantize.ptq.FloatWeights``. ``jobs`` is
    the number of local worker processes (default: all cores; 1 runs in this
    process). ``scheduler`` is a Dask scheduler address such as
    ``tcp://127.0.0.1:8786``, which replaces the local processes.
    ``on_point`` is called in this process with each row as it is written.
    """
    from codesign.sweep.report import write_results

    started = time.monotonic()
    out = Path(out).absolute()
    if jobs is not None and jobs < 1:
        raise InputError(f"--jobs must be at least 1, got {jobs}")
    prepare_output_folder(out)
    with _FolderLock(out):
        _check_arguments(out, spec, force)
        digest = settings_digest(spec)
        points = spec.points()
        done = load_finished_points(out, digest, {point.key for point in points})
        missing = [point for point in points if point.key not in done]
        log.info("%d of %d points already finished in %s", len(done), len(points), out)

        computed: list[str] = []
        tasks = _model_tasks(missing, spec, board, weights, out)
        if tasks and not scheduler:
            # Generate missing data here once, so that local workers do not all generate it at the same time.
            prepare_data()
        with tqdm(total=len(points), initial=len(points) - len(missing), unit="point", desc="sweep",
                  disable=not progress) as bar:

            def finish(rows: list[dict]) -> None:
                for row in rows:
                    row["settings_sha256"] = digest
                    write_json_atomic(out / "points" / f"{row['key']}.json", row)
                    done[row["key"]] = row
                    computed.append(row["key"])
                    if on_point is not None:
                        on_point(row)
                    bar.update(1)

            if scheduler:
                _run_dask(tasks, scheduler, finish)
            elif (jobs or os.cpu_count() or 1) == 1 or len(tasks) <= 1:
                for task in tasks:
                    finish(compute_points(task))
            else:
                _run_processes(tasks, jobs or os.cpu_count() or 1, finish)

        rows = [_public_row(done[point.key]) for point in points]
        write_results(out, rows, spec, board)
    return SweepResult(out=out, rows=rows, computed=computed, seconds=time.monotonic() - started)


def prepare_data() -> None:
    """Generate the val split and the PTQ train split unless they exist."""
    from quantize.dataset import DatasetSpec, generate
    from quantize.ptq import PTQ_TRAIN_SPEC

    generate(spec=DatasetSpec(), splits=("val",))
    generate(spec=PTQ_TRAIN_SPEC, splits=("train",))


def _public_row(row: dict) -> dict:
    return {key: value for key, value in row.items() if key != "settings_sha256"}


def _model_tasks(points: list[Point], spec: SweepSpec, board: Board, weights, out: Path) -> list[ModelTask]:
    """Group points by bit-widths, so each group quantizes, evaluates and lowers its model once."""
    if not points:
        return []
    if spec.jpeg is not None:
        # A JPEG sweep measures the checkpoint itself, so its tasks carry the file.
        blob = Path(spec.model).read_bytes()
    else:
        blob = serialize_weights(weights)
    digest = hashlib.sha256(blob).hexdigest()
    settings = TaskSettings(
        val_images=spec.val_images,
        calibration_images=spec.calibration_images,
        finetune_steps=spec.finetune_steps,
        verify=spec.verify,
        margin=spec.margin,
        jpeg=spec.jpeg,
    )
    groups: dict[str, list[Point]] = {}
    for point in points:
        groups.setdefault(point.model_key, []).append(point)
    return [
        ModelTask(weights=blob, weights_digest=digest, board=board, settings=settings, points=tuple(group),
                  out_dir=str(out))
        for group in groups.values()
    ]


def _run_processes(tasks: list[ModelTask], jobs: int, finish: Callable[[list[dict]], None]) -> None:
    """Run tasks on local spawned processes; write each result as soon as its task ends."""
    # The fork server imports the heavy modules once and forks every worker from that clean,
    # single-threaded process, which is faster than spawning and safer than forking this one.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(WORKER_PRELOAD))
    workers = min(jobs, len(tasks))
    executor = concurrent.futures.ProcessPoolExecutor(workers, mp_context=context, initializer=init_worker,
                                                      initargs=(os.getpid(),))
    try:
        futures = [executor.submit(compute_points, task) for task in tasks]
        for future in concurrent.futures.as_completed(futures):
            finish(future.result())
    except concurrent.futures.process.BrokenProcessPool as error:
        executor.shutdown(wait=False, cancel_futures=True)
        raise RuntimeError(
            "a sweep worker process died, for example because it ran out of memory; the finished points "
            "are saved, so rerun the same command to compute the rest"
        ) from error
    except BaseException:
        # Finished points are already on disk. Dropping the queued tasks lets a rerun compute them.
        executor.shutdown(wait=False, cancel_futures=True)
        raise
    executor.shutdown(wait=True)


def _run_dask(tasks: list[ModelTask], address: str, finish: Callable[[list[dict]], None]) -> None:
    """Send tasks to an existing Dask distributed scheduler; write each result as soon as its task ends."""
    from dask.distributed import Client, as_completed

    try:
        client = Client(address, timeout=f"{SCHEDULER_TIMEOUT_S}s")
    except (OSError, TimeoutError, ValueError) as error:
        raise InputError(f"failed to connect to the Dask scheduler at {address}: {error}") from error
    try:
        futures = [client.submit(compute_points, task, pure=False) for task in tasks]
        for future in as_completed(futures):
            finish(future.result())
    finally:
        client.close()


def check_output_folder(out: Path) -> None:
    """Raise InputError unless out is a new, empty or sweep folder that can be created and written.

    A sweep never writes into a folder that another tool owns: an existing
    folder must be empty or hold a sweep.json that a sweep wrote. Creates nothing.
    """
    out = Path(out).absolute()
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a folder")
    if out.is_dir() and not _is_empty_sweep_folder(out) and read_sweep_record(out) is None:
        raise InputError(
            f"--out {out} is not empty and contains no sweep.json written by codesign sweep; "
            "choose a new or empty folder"
        )
    ancestor = out
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise InputError(f"--out {out} cannot be created: {ancestor} is not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise InputError(f"--out {out} is not writable: no write permission on {ancestor}")


def prepare_output_folder(out: Path) -> None:
    """Create out after ``check_output_folder`` accepts it, and test that a file can be written there."""
    check_output_folder(out)
    try:
        (out / "points").mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise InputError(f"--out {out} is not writable: {error.strerror or error}") from error


def _is_empty_sweep_folder(out: Path) -> bool:
    """Return whether out is empty or contains only what a sweep creates before it writes sweep.json."""
    for path in out.iterdir():
        if path.name == ".lock" and path.is_file():
            continue
        if path.name == "points" and path.is_dir() and not any(path.iterdir()):
            continue
        return False
    return True


def read_sweep_record(out: Path) -> dict | None:
    """Return the contents of out/sweep.json, or None when it is missing or not written by a sweep."""
    path = out / "sweep.json"
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("format") != SWEEP_FORMAT:
        return None
    return record


def _check_arguments(out: Path, spec: SweepSpec, force: bool) -> None:
    """Compare spec with sweep.json; reject a difference unless force, then record spec.

    With force and different settings, the old point files are deleted,
    because their values depend on those settings. Points of changed axes
    alone stay, since their keys name every parameter they depend on.
    """
    record = read_sweep_record(out)
    arguments = spec.arguments()
    if record is not None and record.get("arguments") != arguments:
        previous = record.get("arguments") or {}
        changed = sorted(key for key in set(previous) | set(arguments) if previous.get(key) != arguments.get(key))
        if not force:
            details = ", ".join(f"{key} {previous.get(key)!r} -> {arguments.get(key)!r}" for key in changed[:3])
            more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
            raise InputError(
                f"{out} contains a sweep with other arguments ({details}{more}); "
                "pass --force to replace it or choose another --out"
            )
        if record.get("settings_sha256") != settings_digest(spec):
            log.info("settings changed; deleting the points of the previous sweep in %s", out)
            _delete_points(out)
    write_json_atomic(
        out / "sweep.json",
        {
            "format": SWEEP_FORMAT,
            "version": SWEEP_FORMAT_VERSION,
            "arguments": arguments,
            "settings_sha256": settings_digest(spec),
        },
    )


def _delete_points(out: Path) -> None:
    """Delete the point files and verify projects in out/points, which only a sweep writes."""
    points = out / "points"
    for path in points.iterdir():
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()


def load_finished_points(out: Path, digest: str, keys: set[str]) -> dict[str, dict]:
    """Return the valid point files of out whose key is in keys, by key.

    A file from other settings or one that does not parse counts as missing,
    so its point is computed again. Leftover temporary files of a killed run
    are deleted.
    """
    finished: dict[str, dict] = {}
    for path in (out / "points").glob(".*.tmp-*"):
        path.unlink(missing_ok=True)
    for key in keys:
        path = out / "points" / f"{key}.json"
        if not path.is_file():
            continue
        try:
            row = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            log.warning("ignoring %s, which does not parse (%s); computing the point again", path, error)
            continue
        if isinstance(row, dict) and row.get("key") == key and row.get("settings_sha256") == digest:
            finished[key] = row
    return finished


def write_json_atomic(path: Path, data) -> None:
    """Write JSON to path through a temporary file and a rename, so readers never see half a file."""
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")


def write_text_atomic(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(temporary, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


class _FolderLock:
    """Exclusive lock on out/.lock, so two sweeps never write into one folder at once."""

    def __init__(self, out: Path):
        self.path = out / ".lock"
        self.handle = None

    def __enter__(self):
        self.handle = open(self.path, "w")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.close()
            raise InputError(f"another codesign sweep is writing to {self.path.parent}; wait for it to finish")
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()
