"""Meshing many point-cloud files: one file per task, optionally in parallel processes.

A file that cannot be meshed (unreadable or empty PLY, too few points, an empty surface, an
unwritable output, or any unexpected exception while it is meshed) is reported as one line with
the file and the reason (:func:`utils.batch.failure_line`) and the batch goes on; nothing is written
for it (outputs are written atomically).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
import traceback
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

from meshing.io import MESH_FORMATS, PointCloudError, read_point_cloud, write_mesh
from meshing.poisson import MeshingError, PoissonOptions, reconstruct
from utils.batch import failure_line

log = logging.getLogger(__name__)


@dataclass
class BatchReport:
    """Outcome of a batch: inputs meshed, skipped (output exists) and failed (with the reason)."""

    done: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)


def list_clouds(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """PLY files named directly, or found (sorted, non-recursive) in the folders named.

    Raises:
        PointCloudError: a path does not exist or a folder holds no ``.ply`` file.
    """
    files = []
    for p in map(Path, paths):
        if p.is_dir():
            # not only regular files: a broken link or a pipe fails as an item, not in silence
            found = sorted(q for q in p.iterdir() if q.suffix.lower() == ".ply" and not q.is_dir())
            if not found:
                raise PointCloudError(f"{p}: no .ply files in this folder")
            files.extend(found)
        elif p.exists():
            files.append(p)
        else:
            raise PointCloudError(f"{p}: no such file or folder")
    return files


def output_paths(inputs: Sequence[Path], out_dir: Path, fmt: str = "obj") -> list[Path]:
    """``out_dir/<name without its last suffix>.<fmt>`` per input (dots in names are kept).

    Raises:
        ValueError: unknown format, two inputs would write the same output, or an output would
            replace its input.
    """
    if fmt not in MESH_FORMATS:
        raise ValueError(f"format must be one of {MESH_FORMATS}, not {fmt!r}")
    outputs = [out_dir / f"{p.stem}.{fmt}" for p in inputs]
    seen: dict[Path, Path] = {}
    for src, dst in zip(inputs, outputs, strict=True):
        if dst.resolve() == src.resolve():
            raise ValueError(f"{src}: the mesh would replace this point cloud (use --output)")
        if dst in seen:
            raise ValueError(f"{seen[dst]} and {src} would both be written to {dst}")
        seen[dst] = src
    return outputs


def mesh_file(
    src: Path, dst: Path, options: PoissonOptions, file_normals: bool = True
) -> dict[str, float]:
    """Read a coloured point cloud, reconstruct it and write the mesh.

    Args:
        src: PLY point cloud (normals in it are used when ``file_normals``).
        dst: mesh file (``.obj`` or ``.ply``), written atomically.
        options: reconstruction settings.
    Returns:
        ``points``, ``vertices``, ``faces``, ``flipped`` and ``seconds``.
    Raises:
        PointCloudError, MeshingError: the message names ``src`` and the problem.
    """
    start = time.perf_counter()
    cloud = read_point_cloud(src)
    try:
        mesh = reconstruct(
            cloud.points, cloud.colors, cloud.normals if file_normals else None, options
        )
    except MeshingError as e:
        raise MeshingError(f"{src}: {e}") from e
    write_mesh(dst, mesh)
    return {
        "points": len(cloud.points),
        "vertices": len(mesh.vertices),
        "faces": len(mesh.faces),
        "flipped": mesh.flipped,
        "seconds": time.perf_counter() - start,
    }


def _task(
    src: Path, dst: Path, options: PoissonOptions, file_normals: bool
) -> tuple[str | None, str, dict[str, float]]:
    """One file (in a worker): ``(None, "", stats)`` on success, else ``(the failure's line, its
    traceback, {})``; any exception fails this file only."""
    try:
        return None, "", mesh_file(src, dst, options, file_normals)
    except Exception as e:  # noqa: BLE001 - one file's failure, whatever it is, ends only that file
        return failure_line(src, e), "".join(traceback.format_exception(e)).rstrip(), {}


def run_batch(
    inputs: Sequence[Path],
    outputs: Sequence[Path],
    options: PoissonOptions,
    jobs: int = 1,
    skip_existing: bool = False,
    file_normals: bool = True,
    debug: bool = False,
) -> BatchReport:
    """Mesh every input to its output; failures are reported, the batch goes on.

    Args:
        inputs, outputs: paired files (see :func:`output_paths`).
        options: reconstruction settings (``options.threads`` per job).
        jobs: parallel processes (each holds one cloud and its octree: ~1.5 GB at 2048²).
        skip_existing: leave inputs whose output exists alone.
        file_normals: use normals stored in the PLYs.
        debug: log the traceback of each failed file too.
    """
    report = BatchReport()
    todo = []
    for src, dst in zip(inputs, outputs, strict=True):
        if skip_existing and dst.exists():
            report.skipped.append(src)
        else:
            todo.append((src, dst))
    results: dict[Path, tuple[str | None, str, dict[str, float]]] = {}
    if jobs <= 1 or len(todo) <= 1:
        for src, dst in todo:
            results[src] = _task(src, dst, options, file_normals)
    else:
        # spawn: OpenMP thread pools do not survive fork
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
            futures = {pool.submit(_task, s, d, options, file_normals): s for s, d in todo}
            for future in as_completed(futures):
                try:
                    results[futures[future]] = future.result()
                except BrokenProcessPool:
                    src = futures[future]
                    results[src] = f"{src}: the worker process died (out of memory?)", "", {}
    for src, dst in todo:
        message, trace, stats = results[src]
        if message is None:
            flipped = " (was inside out: flipped)" if stats["flipped"] else ""
            log.info(
                "%s -> %s: %d points, %d vertices%s, %.1f s",
                *(src, dst, stats["points"], stats["vertices"], flipped, stats["seconds"]),
            )
            report.done.append(src)
        else:
            log.error("FAILED %s", message)
            if debug and trace:
                log.error("%s", trace)
            report.failed.append((src, message))
    return report
