"""Small image helpers for panels of model outputs (uint8 RGB arrays, no plotting library)."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from utils.fileio import write_image


def to_rgb8(x: torch.Tensor, lo: float, hi: float, size: int) -> np.ndarray:
    """[C, H, W] (C = 1 or 3) tensor -> [size, size, 3] uint8, values mapped linearly from [lo,
    hi]."""
    a = x.detach().float().cpu().numpy()
    a = np.clip((a - lo) / (hi - lo), 0, 1)
    a = np.repeat(a, 3, axis=0) if a.shape[0] == 1 else a[:3]
    img = (a.transpose(1, 2, 0) * 255).round().astype(np.uint8)
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)


def viewer_normals(encoded: torch.Tensor, side: str) -> torch.Tensor:
    """Encoded normal map (the authors' ``get_normal`` encoding) -> the same normals for display,
    as a common normal-map viewer shows them (OpenGL colours: R = right, G = up, B = toward the
    viewer), each map seen by its own viewer: the front map from the camera, the back map from
    behind the person (ICON/ECON's back views), kept pixel-aligned with the front image.

    In the authors' encoding the front map holds ``(-n_x, n_y, n_z)`` of the outward normal in
    the camera frame (x right, y up, z toward the camera) and the back map ``(n_x, -n_y, -n_z)``
    (both from ``g_h = d(i, j) - d(i, j+1)``, ``g_v = d(i-1, j) - d(i, j)`` of the range, facts
    §4.1). Seen from behind (x' = -x, z' = -z) the back becomes ``(-n_x, n_y, -n_z)``. So: front
    x -> 1 - x; back x -> 1 - x and y -> 1 - y; z stays. A surface facing its viewer is blue
    (0.5, 0.5, 1) in both maps; the person's right side (image left) is dark red in the front map
    and light red in the back map. Background (all channels 0) stays 0. Files keep the raw
    encoding; this is for pictures only.

    Args:
        encoded: [..., 3, H, W] encoded normals, 0 = background.
        side: ``"front"`` or ``"back"``.
    Returns:
        [..., 3, H, W] display normals in [0, 1] (unclipped inputs stay unclipped).
    """
    if side not in ("front", "back"):
        raise ValueError(f"side must be 'front' or 'back', got {side!r}")
    x, y, z = encoded.unbind(-3)
    shown = torch.stack((1 - x, 1 - y if side == "back" else y, z), dim=-3)
    background = (encoded == 0).all(dim=-3, keepdim=True)
    return torch.where(background, torch.zeros_like(shown), shown)


def normal_rgb8(encoded: torch.Tensor, side: str, size: int) -> np.ndarray:
    """[3, H, W] encoded normals -> [size, size, 3] uint8 in the viewer orientation
    (:func:`viewer_normals`)."""
    return to_rgb8(viewer_normals(encoded.detach().float(), side), 0, 1, size)


def depth_rgb8(depth: torch.Tensor, size: int) -> np.ndarray:
    """[1, H, W] depth in D units -> [size, size, 3] uint8 colour map; 0 and 6 (background)
    black."""
    d = depth.detach().float().cpu().numpy()[0]
    fg = (d > 0) & (d < 6)
    out = np.zeros((*d.shape, 3), np.uint8)
    if fg.any():
        lo, hi = np.percentile(d[fg], (1, 99))
        v = np.clip((d - lo) / max(hi - lo, 1e-6), 0, 1)
        col = cv2.applyColorMap((v * 255).astype(np.uint8), cv2.COLORMAP_VIRIDIS)[:, :, ::-1]
        out[fg] = col[fg]
    return cv2.resize(out, (size, size), interpolation=cv2.INTER_AREA)


def label(img: np.ndarray, text: str) -> np.ndarray:
    img = img.copy()
    cv2.putText(img, text, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 3, cv2.LINE_AA)
    cv2.putText(img, text, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    return img


def grid(tiles: list[np.ndarray], columns: int) -> np.ndarray:
    """Tile equally sized [h, w, 3] images row by row."""
    h, w, _ = tiles[0].shape
    rows = -(-len(tiles) // columns)
    canvas = np.zeros((rows * h, columns * w, 3), np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, columns)
        canvas[r * h : (r + 1) * h, c * w : (c + 1) * w] = t
    return canvas


def write_png(path: str, rgb: np.ndarray) -> None:
    """Write an RGB uint8 image atomically (:func:`utils.fileio.write_image`)."""
    write_image(path, np.ascontiguousarray(rgb[:, :, ::-1]))
