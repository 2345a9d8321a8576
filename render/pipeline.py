"""Render scans into the training layout: depth, NOSHADING and SHADED images per view.

The unit of work is one item (scan): it is loaded once, its acceleration structure and OpenGL mesh
are built once, and every missing view is rendered and encoded in memory; only then are the item's
files written, each atomically (:mod:`utils.fileio`). An item that fails anywhere (bad scan, a view
that cannot be encoded, an unexpected exception, a failed write) leaves nothing of this run under
its name (what it had written is removed) and the batch goes on (:func:`utils.batch.run_item`).
Views whose files all exist are skipped, so an interrupted run resumes: a killed run leaves whole
files (and at most stray ``.*.tmp`` files nothing reads), and a view with a file missing is
rendered again. Each view draws its lights from its own seed (dataset seed, item, view), so a
resumed or sharded run writes byte for byte what one run would.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from render.layout import DEFAULT_YAWS, list_line, list_path, view_files, view_name
from render.mesh import Scan, load_scan
from render.raycast import RayCaster
from render.shading import ShadedRenderer, gl_platform
from utils.batch import run_item
from utils.camera import MAX_ENCODABLE_RANGE, range_to_png
from utils.fileio import encode_png, write_all, write_json, write_text
from utils.scans import DATASETS, RenderInputError, list_items

log = logging.getLogger(__name__)

MAX_RADIUS = MAX_ENCODABLE_RANGE - 1.0
"""Depth PNGs encode ranges in ``(1 - MAX_RADIUS, 1 + MAX_RADIUS)``."""


@dataclass(frozen=True)
class RenderOptions:
    """What to render.

    Attributes:
        res: image side in pixels (2048 = the authors').
        yaws: view yaws in degrees.
        ortho: also render the orthographic ``ORTH/`` counterparts.
        supersample: SHADED anti-aliasing factor (render larger, average down); ``None`` = 2
            under OSMesa (no multisampling), 1 under EGL (pyrender's 4x MSAA, as the authors).
        seed: base seed of the light draws.
        mesh_format: ``ply`` (vertex colours) or ``obj`` (+ texture) for 2K2K / ANNY.
        overwrite: re-render views whose files already exist.
    """

    res: int = 2048
    yaws: Sequence[int] = DEFAULT_YAWS
    ortho: bool = False
    supersample: int | None = None
    seed: int = 0
    mesh_format: str = "ply"
    overwrite: bool = False


@dataclass
class RenderReport:
    """Outcome of a batch: item names rendered, already complete, and failed (item -> its one
    line, :func:`utils.batch.failure_line`)."""

    rendered: list[str] = field(default_factory=list)
    complete: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def view_seed(seed: int, item: str, view: str) -> int:
    """Seed of one view's light draw: independent of the order and sharding of the batch."""
    return (seed * 1_000_003 + zlib.crc32(f"{item}/{view}".encode())) % 2**63


def face_colors(scan: Scan) -> np.ndarray:
    """[F + 1, 3] uint8 BGR flat face colours, the truncated mean of the three vertex colours
    (trimesh's ``vertex_to_face_color``), plus a black last row for "no hit" (index -1)."""
    vc = np.asarray(scan.mesh.visual.vertex_colors)[:, :3].astype(np.float64)
    rgb = vc[np.asarray(scan.mesh.faces)].mean(axis=1).astype(np.uint8)
    return np.concatenate((rgb[:, ::-1], np.zeros((1, 3), np.uint8)))


def colour_image(colors: np.ndarray, face_ids: np.ndarray) -> np.ndarray:
    """[H, W, 3] uint8 BGR image of hit-face colours from :func:`face_colors` (-1 = black)."""
    return colors[face_ids]


class ScanRenderer:
    """Renders views of scans with one ray caster per scan and one reused OpenGL context.

    Args:
        data_path: dataset root (outputs go under ``PERS/`` and ``ORTH/``).
        data_name: dataset name (``RP``, ``THuman2``, ``2K2K``, ``ANNY``).
        options: :class:`RenderOptions`.
        platform: OpenGL back end (``osmesa``/``egl``/``None`` = environment or osmesa).
    """

    def __init__(
        self,
        data_path: str | os.PathLike,
        data_name: str,
        options: RenderOptions,
        platform: str | None = None,
    ) -> None:
        self.data_path = Path(data_path)
        self.data_name = data_name
        self.options = options
        self.platform = gl_platform(platform)
        self.supersample = options.supersample or (2 if self.platform == "osmesa" else 1)
        self._shaders: dict[str, ShadedRenderer] = {}

    def settings(self) -> dict[str, object]:
        """What the written files depend on besides the item and view (checked on resume)."""
        return {
            "res": self.options.res,
            "supersample": self.supersample,
            "seed": self.options.seed,
            "mesh_format": self.options.mesh_format,
        }

    def check_settings(self) -> None:
        """Record the settings in ``list/<DS>_render.json``, or refuse to mix with earlier ones.

        Raises:
            RenderInputError: the data set was rendered with other settings (rerun with the same
                ones, or with ``overwrite`` to re-render everything).
        """
        path = self.data_path / "list" / f"{self.data_name}_render.json"
        if path.is_file() and not self.options.overwrite:
            try:
                earlier = json.loads(path.read_text(encoding="utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise RenderInputError(
                    f"{path}: unreadable settings record ({e}); remove it or use --overwrite"
                ) from e
            if earlier != self.settings():
                raise RenderInputError(
                    f"{path}: this data set was rendered with {earlier}, not {self.settings()}; "
                    "use the same settings to resume, or --overwrite to re-render it all"
                )
            return
        write_json(path, self.settings())

    def projections(self) -> tuple[str, ...]:
        return ("PERS", "ORTH") if self.options.ortho else ("PERS",)

    def missing_views(self, item: str) -> list[tuple[str, int]]:
        """(projection, yaw) pairs of ``item`` with at least one file missing."""
        out = []
        for projection in self.projections():
            for yaw in self.options.yaws:
                files = view_files(self.data_path, self.data_name, item, yaw, projection)
                if self.options.overwrite or not all(p.is_file() for p in files.image_files):
                    out.append((projection, yaw))
        return out

    def _shader(self, projection: str) -> ShadedRenderer:
        if projection not in self._shaders:
            self._shaders[projection] = ShadedRenderer(
                self.options.res,
                supersample=self.supersample,
                ortho=projection == "ORTH",
                platform=self.platform,
            )
        return self._shaders[projection]

    def render_item(self, item: str) -> bool:
        """Render the missing views of one item, then write their files; returns False when it
        was already complete.

        Raises:
            RenderInputError: the scan cannot be loaded or a view cannot be encoded. Whatever
                fails, nothing of this call is left on disk for the item.
        """
        todo = self.missing_views(item)
        if not todo:
            return False
        scan = load_scan(self.data_path, self.data_name, item, self.options.mesh_format)
        write_all(self.render_views(scan, todo))
        return True

    def render_views(self, scan: Scan, views: Sequence[tuple[str, int]]) -> dict[Path, bytes]:
        """Render the given (projection, yaw) views of a loaded scan, encoded, not written.

        Returns:
            The PNG bytes of each view's five files (:attr:`ViewFiles.image_files`) by path.
        Raises:
            RenderInputError: some view's ranges would not fit the depth PNG encoding (checked
                for every view before anything is rendered).
        """
        caster = RayCaster(scan.mesh.vertices, scan.mesh.faces)
        for projection, yaw in views:
            lo, hi = caster.range_bounds(scan.view_rotation(yaw), ortho=projection == "ORTH")
            if lo <= 1.0 - MAX_RADIUS or hi >= 1.0 + MAX_RADIUS:
                raise RenderInputError(
                    f"{scan.name}: {projection} yaw {yaw} spans ranges {lo:.3f}..{hi:.3f}; depth "
                    f"PNGs encode 1 +- {MAX_RADIUS:.3f} only (is this a normalised human scan?)"
                )
        res = self.options.res
        colors = face_colors(scan)
        out: dict[Path, bytes] = {}
        for projection, yaw in views:
            rotation = scan.view_rotation(yaw)
            hits = caster.cast(res, rotation, ortho=projection == "ORTH")
            try:
                depth_front, depth_back = range_to_png(hits.front), range_to_png(hits.back)
            except ValueError as e:
                raise RenderInputError(f"{scan.name}: {projection} yaw {yaw}: {e}") from e
            rng = np.random.default_rng(
                view_seed(self.options.seed, scan.name, view_name(scan.data_name, yaw))
            )
            shaded = self._shader(projection).render(scan.mesh, rotation, rng)[:, :, ::-1].copy()
            shaded[depth_front == 0] = 0
            files = view_files(self.data_path, scan.data_name, scan.name, yaw, projection)
            out[files.noshading_front] = encode_png(colour_image(colors, hits.front_face))
            out[files.noshading_back] = encode_png(colour_image(colors, hits.back_face))
            out[files.depth_back] = encode_png(depth_back)
            out[files.depth_front] = encode_png(depth_front)
            out[files.shaded] = encode_png(shaded)
        return out

    def close(self) -> None:
        for shader in self._shaders.values():
            shader.close()
        self._shaders.clear()


def add_dataset_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments ``render.py`` and ``render_keypoint.py`` share: dataset, views, item selection
    and sharding, resume."""
    p.add_argument("--data_path", required=True, help="dataset root (obj/, Joint3D/, PERS/)")
    p.add_argument("--data_name", required=True, choices=DATASETS, help="dataset name")
    p.add_argument("--res", type=positive_int, default=2048, help="image side in pixels")
    p.add_argument("--yaws", type=int, nargs="+", default=list(DEFAULT_YAWS), help="view yaws")
    p.add_argument("--mesh_format", choices=("ply", "obj"), default="ply", help="2K2K/ANNY meshes")
    p.add_argument("--items", nargs="+", help="only these items (default: all under obj/<DS>)")
    p.add_argument("--overwrite", action="store_true", help="redo outputs that already exist")
    p.add_argument("--num_shards", type=int, default=1, help="split the items into N shards")
    p.add_argument("--shard_id", type=int, default=0, help="which shard this process handles")


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def selected_items(args: argparse.Namespace) -> list[str]:
    """This process's items: ``--items`` or every item of the dataset, then its shard."""
    items = args.items or list_items(args.data_path, args.data_name)
    return shard(items, args.num_shards, args.shard_id)


def shard(items: Sequence[str], num_shards: int, shard_id: int) -> list[str]:
    """Items ``i`` with ``i % num_shards == shard_id`` (a job array splits the scans this way)."""
    if num_shards < 1 or not 0 <= shard_id < num_shards:
        raise ValueError(f"need 0 <= shard_id < num_shards, got {shard_id}, {num_shards}")
    return [it for i, it in enumerate(items) if i % num_shards == shard_id]


def write_list(data_path: str | os.PathLike, data_name: str, yaws: Sequence[int]) -> Path:
    """(Re)write ``list/<DS>_all.txt`` with every item whose PERS views are all on disk.

    Items are sorted and each has one line per yaw. After a job array, run ``render.py
    --list_only`` once all shards are done (shards do not write the list).
    """
    lines = []
    for item in list_items(data_path, data_name):
        files = [view_files(data_path, data_name, item, y) for y in yaws]
        if all(p.is_file() for f in files for p in f.image_files):
            lines.extend(list_line(data_name, item, y) for y in yaws)
    path = list_path(data_path, data_name)
    write_text(path, "\n".join(lines) + ("\n" if lines else ""))
    return path


def run_items(
    items: Sequence[str],
    work: Callable[[str], bool],
    desc: str,
    progress: bool = True,
    debug: bool = False,
) -> RenderReport:
    """Apply ``work(item)`` (True = done, False = already complete) to every item through
    :func:`utils.batch.run_item`: an item that raises anything is one logged line (traceback with
    ``debug``) in ``report.failed``, and the batch goes on."""
    report = RenderReport()
    failures: list[tuple[str, str]] = []
    for item in tqdm(items, desc=desc, disable=not progress):
        done = run_item(item, functools.partial(work, item), failures, debug=debug, logger=log)
        if done is None:
            report.failed[item] = failures[-1][1]
        else:
            (report.rendered if done else report.complete).append(item)
    return report


def render_dataset(
    renderer: ScanRenderer,
    items: Sequence[str],
    progress: bool = True,
    debug: bool = False,
) -> RenderReport:
    """Render every item; a scan that fails is reported and the batch goes on.

    Raises:
        RenderInputError: the data set was rendered with other settings before
            (:meth:`ScanRenderer.check_settings`).
        OSError: the settings record cannot be written (output folder not writable).
    """
    renderer.check_settings()
    return run_items(
        items, renderer.render_item, f"render {renderer.data_name}", progress=progress, debug=debug
    )
