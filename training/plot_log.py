"""Loss and validation curves of a training run as a PNG (OpenCV only, no plotting library).

Usage::

    python -m training.plot_log --run outputs/train/p1 --out outputs/train/p1/curves.png
    python -m training.plot_log --run outputs/train/p1 outputs/train/p2 --out curves.png  # stacked
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from utils.fileio import write_image

COLORS = ((200, 90, 30), (40, 140, 230), (60, 170, 60), (180, 60, 180))  # BGR


def read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def line_chart(
    series: dict[str, tuple[Sequence[float], Sequence[float]]],
    title: str,
    size: tuple[int, int] = (640, 360),
    log_y: bool = False,
) -> np.ndarray:
    """[H, W, 3] uint8 BGR chart of named (x, y) series with axes, ticks and a legend."""
    w, h = size
    left, right, top, bottom = 70, 20, 30, 40
    img = np.full((h, w, 3), 255, np.uint8)
    xs = np.concatenate([np.asarray(x, float) for x, _ in series.values()])
    ys = np.concatenate([np.asarray(y, float) for _, y in series.values()])
    ys = np.log10(np.maximum(ys, 1e-12)) if log_y else ys
    x0, x1 = float(xs.min()), float(xs.max()) if xs.max() > xs.min() else float(xs.min()) + 1
    y0, y1 = float(ys.min()), float(ys.max()) if ys.max() > ys.min() else float(ys.min()) + 1

    def to_px(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        px = left + (x - x0) / (x1 - x0) * (w - left - right)
        py = h - bottom - (y - y0) / (y1 - y0) * (h - top - bottom)
        return np.stack((px, py), axis=1).round().astype(np.int32)

    cv2.rectangle(img, (left, top), (w - right, h - bottom), (0, 0, 0), 1)
    for k in range(5):
        yv = y0 + (y1 - y0) * k / 4
        py = int(round(h - bottom - k / 4 * (h - top - bottom)))
        text = f"{10**yv:.3g}" if log_y else f"{yv:.3g}"
        cv2.putText(
            img, text, (4, py + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA
        )
        xv = x0 + (x1 - x0) * k / 4
        px = int(round(left + k / 4 * (w - left - right)))
        cv2.putText(
            img, f"{xv:.0f}", (px - 10, h - bottom + 16), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
            (0, 0, 0), 1, cv2.LINE_AA,
        )  # fmt: skip
    for i, (name, (x, y)) in enumerate(series.items()):
        yy = np.log10(np.maximum(np.asarray(y, float), 1e-12)) if log_y else np.asarray(y, float)
        pts = to_px(np.asarray(x, float), yy)
        color = COLORS[i % len(COLORS)]
        cv2.polylines(img, [pts], False, color, 2, cv2.LINE_AA)
        cv2.putText(
            img, name, (left + 8, top + 16 + 16 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.45, color, 1,
            cv2.LINE_AA,
        )  # fmt: skip
    cv2.putText(img, title, (left, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return img


def run_curves(run: Path) -> np.ndarray:
    """Training loss per step (moving mean over 10 steps) and validation errors per epoch."""
    train = read_jsonl(run / "train_log.jsonl")
    val = read_jsonl(run / "val_log.jsonl")
    if not train:
        raise FileNotFoundError(f"{run / 'train_log.jsonl'}: no training log")
    steps = np.array([r["global_step"] for r in train], float)
    total = np.array([r["total"] for r in train], float)
    kernel = np.ones(min(10, len(total))) / min(10, len(total))
    smooth = np.convolve(total, kernel, mode="valid")
    charts = [
        line_chart({"train loss (10-step mean)": (steps[len(steps) - len(smooth) :], smooth)},
                   "training loss", log_y=True)
    ]  # fmt: skip
    if val:
        x = [r["global_step"] for r in val]
        charts.append(
            line_chart(
                {
                    "normal angle error [deg]": (x, [r["normal_err_deg"] for r in val]),
                    "depth error [mm]": (x, [r["depth_err_mm"] / 10 for r in val]),
                },
                "validation (depth error / 10), by step",
            )
        )
    return np.concatenate(charts, axis=1)


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--run", nargs="+", required=True, help="train.py --out_dir(s), one row each")
    p.add_argument("--out", required=True, help="output PNG")
    return p


def main(args: argparse.Namespace) -> None:
    rows = [run_curves(Path(run)) for run in args.run]
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    write_image(args.out, np.concatenate(rows, axis=0))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main(get_parser().parse_args())
