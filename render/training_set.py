"""A complete synthetic training set in one call: humans, renders, keypoints and train/val lists.

The steps are those of ``make_synthetic``, ``render`` and ``render_keypoint`` (facts sheet §6),
followed by the list the authors' training script expects but never produced (facts §8 item 21),
split by item into ``list/train.txt`` and ``list/val.txt``::

    <data_path>/obj/ANNY/anny_000i/anny_000i.ply, Joint3D/ANNY/anny_000i.json   humans
    <data_path>/PERS/{COLOR,DEPTH,keypoint,keypoint_sample}/ANNY_0_y_<yaw>_x/...  views
    <data_path>/list/ANNY_all.txt, train.txt, val.txt                           lists

Every step skips what is already on disk, so an interrupted build resumes; the lists are rewritten
(they are cheap and a pure function of the files on disk). A human that fails at any step is one
line and is left out of the lists; the others are built.
"""

from __future__ import annotations

import functools
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import torch
from tqdm import tqdm

from render.keypoints3d import keypoint_dataset
from render.layout import DEFAULT_YAWS
from render.pipeline import RenderOptions, ScanRenderer, render_dataset, write_list
from render.synthetic.human import generate
from utils.batch import run_item
from utils.fileio import write_text
from utils.scans import RenderInputError

DATA_NAME = "ANNY"


def item_of_line(line: str) -> str:
    """The item of a list line (``.../<view>/<item>_front.png ...``), e.g. ``anny_0003``."""
    return Path(line.split()[0]).name.removesuffix("_front.png")


def split_by_item(lines: Sequence[str], val_items: int) -> tuple[list[str], list[str]]:
    """Split list lines by item, never by view: the last ``val_items`` items (sorted) go to val.

    Raises:
        ValueError: ``val_items`` is negative or leaves no training item.
    """
    items = sorted({item_of_line(line) for line in lines})
    if not 0 <= val_items < len(items):
        raise ValueError(f"val_items must be in [0, {len(items)}) for {len(items)} items")
    val = set(items[len(items) - val_items :])
    return (
        [line for line in lines if item_of_line(line) not in val],
        [line for line in lines if item_of_line(line) in val],
    )


def _build_shard(
    data_path: Path,
    num: int,
    options: RenderOptions,
    clothes: str,
    num_shards: int,
    shard_id: int,
    progress: bool,
    debug: bool,
) -> tuple[list[str], list[tuple[str, str]]]:
    """Humans ``i % num_shards == shard_id``: generate, render, keypoints (each human may fail
    alone). Returns the complete humans and the ``(item, line)`` failures."""
    if num_shards > 1:
        torch.set_num_threads(1)  # one core per worker process
    failed: list[tuple[str, str]] = []
    names = []
    indices = range(shard_id, num, num_shards)
    for index in tqdm(indices, desc=f"{DATA_NAME} humans", disable=not progress):
        name = f"{DATA_NAME.lower()}_{index:04d}"
        made = functools.partial(
            generate, data_path, num, options.seed, DATA_NAME, num, index, False, clothes
        )
        if run_item(name, made, failed, debug=debug) is not None:
            names.append(name)
    renderer = ScanRenderer(data_path, DATA_NAME, options)
    try:
        report = render_dataset(renderer, names, progress=progress, debug=debug)
    finally:
        renderer.close()
    rendered = [name for name in names if name not in report.failed]
    kp_report = keypoint_dataset(
        data_path,
        DATA_NAME,
        rendered,
        progress=progress,
        debug=debug,
        yaws=options.yaws,
        res=options.res,
    )
    failed += list(report.failed.items()) + list(kp_report.failed.items())
    return [name for name in rendered if name not in kp_report.failed], failed


def build_synthetic_training_set(
    data_path: Path,
    num: int = 8,
    res: int = 512,
    yaws: Sequence[int] = DEFAULT_YAWS,
    seed: int = 0,
    val_items: int = 1,
    progress: bool = True,
    failures: list[tuple[str, str]] | None = None,
    debug: bool = False,
    clothes: str = "geometry",
    workers: int = 1,
) -> tuple[Path, Path]:
    """Generate ``num`` anny humans, render them, project their keypoints and write the lists.

    Each human goes through every step in its own :func:`utils.batch.run_item`: a human that fails
    at any step (generation, rendering, keypoints; any exception) is one line and is left out of
    the later steps and of the train/val lists; the others go on.

    Args:
        data_path: dataset root (created if needed).
        num: number of humans ``anny_0000`` ... (human ``i`` uses seed ``seed * 100003 + i``).
        res: image side in pixels of every render and keypoint file.
        yaws: view yaws in degrees (one list line per item and yaw).
        seed: seed of the humans and of the render lights; a data set built with another seed
            (recorded in ``list/ANNY_render.json`` with ``res``) is refused, not mixed.
        val_items: how many items (the last ones in sorted order) form ``list/val.txt``.
        progress: show progress bars of rendering and keypoints.
        failures: where the failed humans' ``(item, line)`` pairs go; the lists are then written
            with the other humans. ``None``: any failure raises instead (no list is written).
        debug: log the traceback of each failure.
        clothes: garments with geometry or painted on (:func:`render.synthetic.human.make_human`).
        workers: processes, each building the humans ``i % workers == k`` with one thread and
            its own renderer (1 = in this process). Every human and view has its own seed, so
            the files are the same for any number of workers.
    Returns:
        The paths of ``list/train.txt`` and ``list/val.txt`` (``/``-led lines relative to
        ``data_path``: SHADED, NOSHADING, front DEPTH; see :mod:`render.layout`).
    Raises:
        RenderInputError: the data set was built with other settings, or (``failures`` None) some
            human failed (every failure is named; the other humans' files are written).
        ValueError: ``val_items`` leaves no training item, or ``workers`` < 1.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    data_path = Path(data_path)
    options = RenderOptions(res=res, yaws=tuple(yaws), seed=seed)
    ScanRenderer(data_path, DATA_NAME, options).check_settings()  # refuse other settings first
    shard = functools.partial(_build_shard, data_path, num, options, clothes, workers)
    good: list[str] = []
    failed: list[tuple[str, str]] = []
    if workers == 1:
        good, failed = shard(0, progress, debug)
    else:
        # spawn: each worker starts clean (no OpenGL context or thread pool from a fork)
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            jobs = [pool.submit(shard, k, False, debug) for k in range(workers)]
            for job in tqdm(as_completed(jobs), total=workers, desc="shards", disable=not progress):
                names, lines = job.result()
                good += names
                failed += lines
    if failed and failures is None:
        raise RenderInputError("; ".join(line for _, line in sorted(failed)))
    if failures is not None:
        failures.extend(sorted(failed))
    lines = write_list(data_path, DATA_NAME, options.yaws).read_text().splitlines()
    complete = set(good)
    train, val = split_by_item(
        [line for line in lines if item_of_line(line) in complete], val_items
    )
    paths = data_path / "list" / "train.txt", data_path / "list" / "val.txt"
    for path, part in zip(paths, (train, val), strict=True):
        write_text(path, "".join(f"{line}\n" for line in part))
    return paths
