"""A picture of inference results, read back from the files the scripts wrote.

Run from the repository root as a module::

    python -m inference.panel --save_path result --save_name test    # -> result/test/panel.png

For every image with a mesh in ``output_objs/`` one row: the cut-out input (``images/``), the
merged front and back normals (``normal/``, shown in the viewer orientation of
:func:`utils.visualize.viewer_normals`), the front depth (``depth/``) and the mesh's normals seen
from the front, the person's left side and the back (orthographic, framed on the mesh, camera
frame colours: R = right, G = up, B = toward the viewer). The files themselves are not changed.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import cv2
import numpy as np
import torch

from evaluation.geometry import load_mesh
from evaluation.normal_images import OrthoViews, render_normals
from utils.camera import png_to_depth_units
from utils.visualize import depth_rgb8, grid, label, normal_rgb8, write_png

log = logging.getLogger(__name__)

MESH_YAWS = (0.0, 90.0, 180.0)
"""Mesh views of a row: front, the person's left side (seen from +X), back."""
MESH_VIEW_NAMES = ("mesh, front", "mesh, side", "mesh, back")


def mesh_normal_tile(normals: np.ndarray) -> np.ndarray:
    """[H, W, 3] unit normals in a view's camera frame (0 = background) -> uint8 RGB on white."""
    covered = np.any(normals != 0, axis=-1, keepdims=True)
    return np.where(covered, np.round((normals + 1.0) * 127.5), 255).astype(np.uint8)


def mesh_views(
    vertices: np.ndarray, faces: np.ndarray, res: int, yaws: tuple[float, ...] = MESH_YAWS
) -> list[np.ndarray]:
    """[res, res, 3] uint8 normal images of a mesh at ``yaws``, framed on the mesh itself."""
    normals, _ = render_normals(vertices, faces, OrthoViews.framing(vertices, res, yaws))
    return [mesh_normal_tile(n) for n in normals]


def _read(path: Path, flags: int = cv2.IMREAD_UNCHANGED) -> np.ndarray:
    image = cv2.imread(str(path), flags)
    if image is None:
        raise FileNotFoundError(f"{path}: missing or not an image")
    return image


def _encoded_normals(path: Path) -> torch.Tensor:
    """A ``normal/`` PNG (R, G, B = channels 0, 1, 2) -> [3, H, W] encoded normals in [0, 1]."""
    rgb = _read(path, cv2.IMREAD_COLOR)[:, :, ::-1]
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float() / 255.0


def result_row(result_dir: Path, stem: str, tile: int = 256) -> list[np.ndarray]:
    """The seven tiles of one image (see the module docstring)."""
    rgba = _read(result_dir / "images" / f"{stem}.png")
    rgb = rgba[:, :, 2::-1] if rgba.shape[2] == 4 else rgba[:, :, ::-1]
    fg = rgba[:, :, 3:] > 0 if rgba.shape[2] == 4 else np.ones((*rgba.shape[:2], 1), bool)
    cutout = np.where(fg, rgb, 255).astype(np.uint8)
    depth = png_to_depth_units(_read(result_dir / "depth" / f"{stem}_front.png"))
    vertices, faces = load_mesh(result_dir / "output_objs" / f"{stem}.obj")
    tiles = [
        label(cv2.resize(cutout, (tile, tile), interpolation=cv2.INTER_AREA), stem),
        label(
            normal_rgb8(
                _encoded_normals(result_dir / "normal" / f"{stem}_front.png"), "front", tile
            ),
            "normal front",
        ),
        label(
            normal_rgb8(_encoded_normals(result_dir / "normal" / f"{stem}_back.png"), "back", tile),
            "normal back",
        ),
        label(depth_rgb8(torch.from_numpy(depth)[None], tile), "depth front"),
    ]
    views = mesh_views(vertices, faces, tile)
    tiles += [label(v, name) for v, name in zip(views, MESH_VIEW_NAMES, strict=True)]
    return tiles


def result_panel(result_dir: Path, tile: int = 256) -> np.ndarray:
    """One row per meshed image of a results folder (``<save_path>/<save_name>``)."""
    stems = sorted(p.stem for p in (result_dir / "output_objs").glob("*.obj"))
    if not stems:
        raise FileNotFoundError(f"{result_dir / 'output_objs'}: no meshes (run test_03_poisson.py)")
    rows = [t for stem in stems for t in result_row(result_dir, stem, tile)]
    return grid(rows, 4 + len(MESH_YAWS))


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--save_path", type=Path, default=Path("result"), help="as test_02_model.py")
    p.add_argument("--save_name", default="test", help="as test_02_model.py")
    p.add_argument(
        "--out", type=Path, help="panel file (default <save_path>/<save_name>/panel.png)"
    )
    p.add_argument("--tile", type=int, default=256, help="tile side in pixels")
    return p


def main(args: argparse.Namespace) -> None:
    result_dir = args.save_path / args.save_name
    out = args.out or result_dir / "panel.png"
    try:
        panel = result_panel(result_dir, args.tile)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"error: {e}") from e
    write_png(str(out), panel)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(get_parser().parse_args())
