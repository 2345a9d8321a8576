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
