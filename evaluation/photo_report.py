"""Figures of reconstructions of real photos (no ground truth), read back from the files the
scripts wrote: is the mesh one piece, does it cover the input's silhouette, is it as thick from
the side as a body.

Run from the repository root as a module, after ``test_02_model.py`` and ``test_03_poisson.py``::

    python -m evaluation.photo_report --save_path outputs/sith --save_name demo \\
        --images ../shared/data/sith_examples --reference data/demo

Per photo (every mesh in ``<save_path>/<save_name>/output_objs/``, ``--mesh_dir`` for another
folder) and on average:

* **one piece**: the share of the mesh's vertices in its largest connected component
  (:func:`meshing.vertex_components`; issue 19's target: >= 99 %).
* **silhouette IoU** of the mesh against the input's alpha > 0. The mesh is seen by the camera
  its point cloud was made with (:mod:`utils.camera`: perspective, 50 degrees, the camera at
  ``(0, 0, 1)``, ``res`` = the side of the run's depth maps; clouds written with
  ``--authors_scale`` are scaled back): a pixel is covered when the ray through its centre hits the
  mesh (Open3D ray casting, the renderer's rays). The alpha of the photo in ``--images`` is brought
  into the same square frame as the network's input (:func:`inference.io.square_mask`). This is
  the mesh's silhouette, not the predicted mask: it counts what meshing adds (fragments, Poisson
  bulges beyond the silhouette) or loses. ``IoU depth`` is the same for the depth maps' silhouette
  (front depth > 0), i.e. before meshing.
* **thickness from the side**: chest depth / shoulder width. The chest level is the image row
  :data:`CHEST_LEVEL` of the way from the shoulders' to the hips' keypoints (those the run used:
  ``keypoints/`` of a ``--keypoints auto`` run, else the photo's file); on the pixels of a band
  around it (:data:`CHEST_BAND` of the torso's length high, :data:`CHEST_HALF_WIDTH` of the
  shoulder width to each side of the shoulders' midpoint, clear of the arms) the mesh's extent
  along each pixel ray (last hit - first hit) is taken, and its :data:`CHEST_PERCENTILE`-th
  percentile is the chest depth (the sternum-to-spine line, robust to a single spike). Shoulder
  width = the distance of the shoulder keypoints in pixels at the chest's distance from the
  camera. ``same, depth maps``: the ratio of the run's front and back depth maps (before
  meshing; equal to the mesh's when meshing keeps the thickness the network predicted). The
  ratio needs no scale, so real photos and scans compare: ``--reference`` measures
  it the same way on the ground-truth scans of a render layout (``data/demo``: ``obj/ANNY/`` with
  ``images/<item>_keypoints.npy`` of the yaw-0 renders).

Prints a table and writes ``photo_report.json`` (``--out``) beside the meshes' folder. A photo
whose files cannot be read is one line naming the file (``--debug`` adds the traceback); the
others go on and the exit status is 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
from pathlib import Path

import cv2
import numpy as np
import open3d as o3d

from evaluation.geometry import load_mesh, scan_ground_truth
from inference.io import image_stem, keypoint_file, load_keypoints, read_image, square_mask
from inference.pointcloud import AUTHORS_PLY_SCALE
from meshing.poisson import vertex_components
from utils.batch import add_debug_argument, exit_on_failures, run_item
from utils.camera import (
    CAMERA_Z,
    depth_units_to_range,
    focal_length,
    pixel_rays,
    png_to_depth_units,
    view_rotation,
)
from utils.errors import BadInputError
from utils.fileio import check_writable_dir, write_json
from utils.keypoints import KEYPOINT_NAMES, pad_and_scale_keypoints
from utils.scans import list_items

log = logging.getLogger("photo_report")

ONE_PIECE_TARGET = 0.99
"""Issue 19's rule: the largest connected component holds at least 99 % of the vertices."""
CHEST_LEVEL = 0.3
"""Chest row: this fraction of the way from the shoulders' mean row to the hips' (the nipple line
lies about a third of the way down the torso)."""
CHEST_BAND = 0.05
"""Half-height of the chest band, as a fraction of the shoulder-to-hip distance in pixels."""
CHEST_HALF_WIDTH = 0.25
"""Half-width of the chest band, as a fraction of the shoulder width (keeps the arms out)."""
CHEST_PERCENTILE = 90.0
"""Percentile of the band's ray extents taken as the chest depth."""
FAR_RANGE = 3.0
"""Ray length beyond every body (a normalised person lies within 0.36 of the origin, the camera
is at distance 1): the last hit is found by casting back from here."""
SHOULDERS = (KEYPOINT_NAMES.index("l_shoulder"), KEYPOINT_NAMES.index("r_shoulder"))
HIPS = (KEYPOINT_NAMES.index("l_hip"), KEYPOINT_NAMES.index("r_hip"))
COLUMNS = (
    ("largest_component", "one piece", "{:.2%}"),
    ("components", "pieces", "{:d}"),
    ("iou_mesh", "IoU mesh", "{:.3f}"),
    ("iou_depth", "IoU depth", "{:.3f}"),
    ("thickness_ratio", "chest depth / shoulders", "{:.3f}"),
    ("thickness_ratio_depth", "same, depth maps", "{:.3f}"),
)


class ReportInputError(BadInputError):
    """A result file that cannot be used; the message names it."""


def largest_component_share(vertices: np.ndarray, faces: np.ndarray) -> tuple[float, int]:
    """Share of the vertices [V, 3] in the connected component of ``faces`` [F, 3] with the most
    vertices, and the number of components."""
    counts = np.bincount(vertex_components(len(vertices), faces))
    return float(counts.max() / len(vertices)), len(counts)


def mesh_range_maps(
    vertices: np.ndarray, faces: np.ndarray, res: int
) -> tuple[np.ndarray, np.ndarray]:
    """First and last hit of the mesh along every pixel ray of the ``res`` camera.

    Args:
        vertices: [V, 3] in the :mod:`utils.camera` world frame; faces: [F, 3].
        res: image side.
    Returns:
        front, back: [res, res] ranges from the camera centre (0 where the ray misses), the
        mesh's own depth maps in the encoding's units.
    """
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(
        o3d.core.Tensor(np.asarray(vertices, np.float32)),
        o3d.core.Tensor(np.asarray(faces, np.uint32)),
    )
    rays = pixel_rays(res).reshape(-1, 3)  # [res², 3]
    camera = np.array([0.0, 0.0, CAMERA_Z])
    forward = np.hstack((np.broadcast_to(camera, rays.shape), rays)).astype(np.float32)
    far = camera + FAR_RANGE * rays
    backward = np.hstack((far, -rays)).astype(np.float32)
    t_front = scene.cast_rays(o3d.core.Tensor(forward))["t_hit"].numpy()
    t_back = scene.cast_rays(o3d.core.Tensor(backward))["t_hit"].numpy()
    hit = np.isfinite(t_front) & np.isfinite(t_back)
    front = np.where(hit, t_front, 0.0).reshape(res, res)
    back = np.where(hit, FAR_RANGE - np.where(hit, t_back, 0.0), 0.0).reshape(res, res)
    return front.astype(np.float64), back.astype(np.float64)


def silhouette_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two [H, W] bool masks (1 when both are empty)."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def chest_thickness(front: np.ndarray, back: np.ndarray, keypoints: np.ndarray) -> dict[str, float]:
    """Chest depth, shoulder width and their ratio of a body's range maps (module docstring).

    Args:
        front, back: [res, res] first and last range along each pixel ray (0 = none).
        keypoints: (31, 3) ``(u, v, confidence)`` in the same ``res`` frame.
    Returns:
        ``chest_depth`` and ``shoulder_width`` in the maps' units and ``thickness_ratio``; NaN
        when a shoulder or hip keypoint is missing or the band holds no body pixel.
    """
    nan = {"chest_depth": math.nan, "shoulder_width": math.nan, "thickness_ratio": math.nan}
    kp = np.asarray(keypoints, dtype=np.float64)
    if (kp[[*SHOULDERS, *HIPS], 2] <= 0).any():
        return nan
    res = front.shape[0]
    (u_l, v_l), (u_r, v_r) = kp[SHOULDERS[0], :2], kp[SHOULDERS[1], :2]
    v_shoulders, v_hips = (v_l + v_r) / 2, kp[list(HIPS), 1].mean()
    v_chest = v_shoulders + CHEST_LEVEL * (v_hips - v_shoulders)
    width_px = abs(u_l - u_r)
    centre = np.arange(res) + 0.5
    rows = np.abs(centre - v_chest) <= CHEST_BAND * abs(v_hips - v_shoulders)
    cols = np.abs(centre - (u_l + u_r) / 2) <= CHEST_HALF_WIDTH * width_px
    band = rows[:, None] & cols[None, :] & (front > 0) & (back > 0)
    if not band.any():
        return nan
    depth = float(np.percentile((back - front)[band], CHEST_PERCENTILE))
    # distance from the camera along -z of the chest's middle, where the shoulder joints lie
    along_z = -pixel_rays(res)[band][:, 2] * (front[band] + back[band]) / 2
    width = width_px * float(np.median(along_z)) / focal_length(res)
    return {"chest_depth": depth, "shoulder_width": width, "thickness_ratio": depth / width}


def run_settings(result_dir: Path) -> dict:
    """``args.json`` that ``test_02_model.py`` wrote in ``result_dir`` ({} when absent)."""
    path = result_dir / "args.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ReportInputError(f"{path}: not a JSON file ({e})") from e


def photo_figures(
    result_dir: Path, mesh_path: Path, image_path: Path, settings: dict
) -> dict[str, float | int | str]:
    """The figures of one photo (module docstring).

    Args:
        result_dir: ``<save_path>/<save_name>`` of the run.
        mesh_path: its mesh.
        image_path: the photo (its alpha is the reference silhouette).
        settings: the run's :func:`run_settings` (``authors_scale``, ``keypoint_dir``).
    """
    stem = mesh_path.stem
    depth_file = result_dir / "depth" / f"{stem}_front.png"
    depth_png = cv2.imread(str(depth_file), cv2.IMREAD_UNCHANGED)
    if depth_png is None or depth_png.ndim != 2 or depth_png.shape[0] != depth_png.shape[1]:
        raise ReportInputError(f"{depth_file}: missing or not a square 16-bit depth map")
    res = depth_png.shape[0]
    image = read_image(image_path)
    if image.shape[2] != 4:
        raise ReportInputError(f"{image_path}: no alpha channel to compare the silhouette with")
    alpha = square_mask(image[:, :, 3] > 0, res)
    detected = result_dir / "keypoints" / f"{stem}_keypoints.json"
    kp_file = (
        detected if detected.is_file() else keypoint_file(image_path, settings.get("keypoint_dir"))
    )
    keypoints = pad_and_scale_keypoints(load_keypoints(kp_file), *image.shape[:2], res=res)
    vertices, faces = load_mesh(mesh_path)
    if settings.get("authors_scale"):
        vertices = vertices * AUTHORS_PLY_SCALE
    share, pieces = largest_component_share(vertices, faces)
    front, back = mesh_range_maps(vertices, faces, res)
    back_file = result_dir / "depth" / f"{stem}_back.png"
    back_png = cv2.imread(str(back_file), cv2.IMREAD_UNCHANGED)
    if back_png is None or back_png.shape != depth_png.shape:
        raise ReportInputError(f"{back_file}: missing or not the front depth map's size")
    depth_ratio = chest_thickness(
        *(depth_units_to_range(png_to_depth_units(png)) for png in (depth_png, back_png)),
        keypoints,
    )["thickness_ratio"]
    return {
        "photo": stem,
        "largest_component": share,
        "components": pieces,
        "iou_mesh": silhouette_iou(front > 0, alpha),
        "iou_depth": silhouette_iou(png_to_depth_units(depth_png) > 0, alpha),
        **chest_thickness(front, back, keypoints),
        "thickness_ratio_depth": depth_ratio,
        "keypoints": str(kp_file),
    }


def reference_figures(data_path: Path, data_name: str = "ANNY") -> list[dict[str, float | str]]:
    """:func:`chest_thickness` of the ground-truth scans of a render layout, seen as their yaw-0
    render (keypoints ``<data_path>/images/<item>_keypoints.npy``, at the res of that image)."""
    rows = []
    for item in list_items(data_path, data_name):
        vertices, faces, _, transform, facing = scan_ground_truth(data_path, data_name, item)
        world = transform.apply(vertices) @ view_rotation(0.0, facing).T
        image = Path(data_path) / "images" / f"{item}.png"
        res = read_image(image).shape[0]
        keypoints = load_keypoints(Path(data_path) / "images" / f"{item}_keypoints.npy")
        front, back = mesh_range_maps(world, faces, res)
        figures = chest_thickness(front, back, keypoints)
        figures["chest_depth_cm"] = figures["chest_depth"] * transform.scale * 100.0
        rows.append({"item": item, **figures})
    return rows


def format_table(rows: list[dict], mean: dict) -> str:
    """Markdown table of the rows and their mean."""
    head = "| photo | " + " | ".join(title for _, title, _ in COLUMNS) + " |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 1)]
    for row, name in [*((r, r["photo"]) for r in rows), (mean, "**mean**")]:
        cells = []
        for key, _, fmt in COLUMNS:
            value = row[key]
            missing = isinstance(value, float) and math.isnan(value)
            cells.append("n/a" if missing else fmt.format(value))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--save_path", type=Path, default=Path("result"), help="as test_02_model.py")
    p.add_argument("--save_name", default="test", help="as test_02_model.py")
    p.add_argument("--mesh_dir", default="output_objs", help="meshes' folder under the run")
    p.add_argument(
        "--images", type=Path, help="the photos, with alpha (default: the run's --data_path)"
    )
    p.add_argument("--reference", type=Path, help="render layout with GT scans (e.g. data/demo)")
    p.add_argument("--out", type=Path, help="JSON (default <run>/photo_report.json)")
    add_debug_argument(p)
    return p


def main(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    result_dir = args.save_path / args.save_name
    mesh_dir = result_dir / args.mesh_dir
    out = args.out or result_dir / "photo_report.json"
    try:
        settings = run_settings(result_dir)
        images = args.images or (Path(settings["data_path"]) if "data_path" in settings else None)
        if images is None or not images.is_dir():
            raise ReportInputError(f"{images}: not a folder of photos (give --images)")
        meshes = sorted(mesh_dir.glob("*.obj")) if mesh_dir.is_dir() else []
        if not meshes:
            raise ReportInputError(f"{mesh_dir}: no meshes (run test_03_poisson.py)")
        check_writable_dir(out.parent)
    except BadInputError as e:
        raise SystemExit(f"error: {e}") from e
    by_stem = {image_stem(p): p for p in images.iterdir() if p.suffix.lower() == ".png"}
    failures: list[tuple[str, str]] = []
    rows = []
    for mesh in meshes:

        def work(mesh: Path = mesh) -> dict:
            if mesh.stem not in by_stem:
                raise ReportInputError(f"{mesh}: no photo {mesh.stem}.png in {images}")
            return photo_figures(result_dir, mesh, by_stem[mesh.stem], settings)

        row = run_item(mesh, work, failures, args.debug, log)
        if row is not None:
            rows.append(row)
    mean = {
        key: float(np.nanmean([r[key] for r in rows])) if rows else math.nan
        for key, _, _ in COLUMNS
    }
    if rows:
        mean["components"] = int(round(mean["components"]))
        print(format_table(rows, mean))
        share_ok = sum(r["largest_component"] >= ONE_PIECE_TARGET for r in rows)
        print(f"{share_ok} of {len(rows)} meshes one piece (>= {ONE_PIECE_TARGET:.0%} of vertices)")
    reference = reference_figures(args.reference) if args.reference else []
    for ref in reference:
        print(
            f"reference {ref['item']}: chest depth / shoulders {ref['thickness_ratio']:.3f} "
            f"(chest depth {ref['chest_depth_cm']:.1f} cm)"
        )
    report = {
        "run": os.fspath(result_dir),
        "meshes": os.fspath(mesh_dir),
        "images": os.fspath(images),
        "photos": rows,
        "mean": mean,
        "reference": reference,
        "failed": [line for _, line in failures],
    }
    write_json(out, report)
    print(f"wrote {out}")
    exit_on_failures(line for _, line in failures)


if __name__ == "__main__":
    main(get_parser().parse_args())
