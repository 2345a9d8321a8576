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
from collections.abc import Sequence
from pathlib import Path

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
    Returns:
        The paths of ``list/train.txt`` and ``list/val.txt`` (``/``-led lines relative to
        ``data_path``: SHADED, NOSHADING, front DEPTH; see :mod:`render.layout`).
    Raises:
        RenderInputError: the data set was built with other settings, or (``failures`` None) some
            human failed (every failure is named; the other humans' files are written).
        ValueError: ``val_items`` leaves no training item.
    """
    data_path = Path(data_path)
    yaws = tuple(yaws)
    renderer = ScanRenderer(data_path, DATA_NAME, RenderOptions(res=res, yaws=yaws, seed=seed))
    renderer.check_settings()  # before generating: refuse a data set with another seed or res
    failed: list[tuple[str, str]] = []
    names = []
    # one shard per human: each human is generated (and may fail) on its own
    for index in tqdm(range(num), desc=f"{DATA_NAME} humans", disable=not progress):
        name = f"{DATA_NAME.lower()}_{index:04d}"
        made = functools.partial(
            generate, data_path, num, seed, DATA_NAME, num, index, False, clothes
        )
        if run_item(name, made, failed, debug=debug) is not None:
            names.append(name)
    try:
        report = render_dataset(renderer, names, progress=progress, debug=debug)
    finally:
        renderer.close()
    rendered = [name for name in names if name not in report.failed]
    kp_report = keypoint_dataset(
        data_path, DATA_NAME, rendered, progress=progress, debug=debug, yaws=yaws, res=res
    )
    failed += list(report.failed.items()) + list(kp_report.failed.items())
    if failed and failures is None:
        raise RenderInputError("; ".join(line for _, line in sorted(failed)))
    if failures is not None:
        failures.extend(sorted(failed))
    good = set(rendered) - set(kp_report.failed)
    lines = write_list(data_path, DATA_NAME, yaws).read_text().splitlines()
    train, val = split_by_item([line for line in lines if item_of_line(line) in good], val_items)
    paths = data_path / "list" / "train.txt", data_path / "list" / "val.txt"
    for path, part in zip(paths, (train, val), strict=True):
        write_text(path, "".join(f"{line}\n" for line in part))
    return paths
