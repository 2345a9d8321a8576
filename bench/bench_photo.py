"""Built-in keypoints and masks (the photo extra) against OpenPose JSON and alpha masks.

For every ``<stem>.png`` (RGBA: the alpha is the reference mask) with ``<stem>_keypoints.json``
(OpenPose BODY_25 + hands) in ``--photos``:

* keypoints: pixel error of each of the 31 2K2K keypoints, detected vs OpenPose, at the photo's
  resolution, as median and 90th percentile per joint group; missing points counted apart;
* part matrices: the 12 similarities of both keypoint sets (:func:`utils.keypoints.part_matrices`
  at 2048); a part differs when its rotation differs by more than 5 degrees or its scale by more
  than 5 %;
* masks: IoU of the segmenter's mask against the alpha (> 127), on the photo's own black
  background and composited onto a cluttered synthetic background (a plain photo's situation);
* time per photo of detection + segmentation (one MediaPipe call) at the photo's size and
  resized to ``--time_res`` (2048) on CPU;
* with ``--checkpoint``: the Predictor on each photo twice, OpenPose keypoints + alpha vs
  ``--keypoints auto --mask auto`` on the cluttered plain photo; silhouette IoU, depth difference
  on the common silhouette (median, p99; mm at a person's size, 1 D = 570 mm) and merged-normal
  angle difference; and a picture (``--out``/panel.png).

Example (the photos are read in place, never copied):
    python -m bench.bench_photo --photos ../shared/data/sith_examples \\
        --checkpoint checkpoints/demo_w025_512.pt --out outputs/bench_photo
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from bench.common import MM_PER_D, cpu_line, iou, prediction_difference
from inference.batch import segmenter_mask
from inference.detect import KeypointDetector, draw_overlay
from inference.io import image_stem, list_images, read_image
from utils.keypoints import (
    KEYPOINT_NAMES,
    PART_NAMES,
    load_openpose_json,
    pad_and_scale_keypoints,
    part_matrices,
)

GROUPS: dict[str, tuple[int, ...]] = {
    "face": (0, 1, 2, 3, 4),
    "torso": (5, 6, 11, 12),
    "arms": (7, 8, 9, 10),
    "legs": (13, 14, 15, 16),
    "feet": (17, 18, 19, 20, 21, 22),
    "fingers": tuple(range(23, 31)),
}


def clutter_background(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A deterministic cluttered scene: smooth colour field, shapes and grain. [H, W, 3] uint8."""
    rng = np.random.default_rng(seed)
    field = rng.uniform(40, 220, size=(6, 6, 3)).astype(np.float32)
    bg = cv2.resize(field, (width, height), interpolation=cv2.INTER_CUBIC)
    for _ in range(14):
        color = tuple(float(c) for c in rng.uniform(0, 255, 3))
        x0, y0 = int(rng.uniform(0, width)), int(rng.uniform(0, height))
        x1, y1 = x0 + int(rng.uniform(0.05, 0.4) * width), y0 + int(rng.uniform(0.05, 0.5) * height)
        if rng.uniform() < 0.5:
            cv2.rectangle(bg, (x0, y0), (x1, y1), color, -1)
        else:
            axes = ((x1 - x0) // 2, (y1 - y0) // 2)
            cv2.ellipse(bg, (x0, y0), axes, float(rng.uniform(0, 180)), 0, 360, color, -1)
    bg += rng.normal(0, 6, bg.shape).astype(np.float32)
    return np.clip(bg, 0, 255).astype(np.uint8)


def composite(rgba: np.ndarray, background: np.ndarray) -> np.ndarray:
    """The RGBA person over ``background``: a plain [H, W, 3] uint8 photo."""
    a = rgba[:, :, 3:4].astype(np.float32) / 255.0
    out = rgba[:, :, :3].astype(np.float32) * a + background.astype(np.float32) * (1.0 - a)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def part_differences(
    ref: np.ndarray, det: np.ndarray, height: int, width: int, res: int = 2048
) -> tuple[np.ndarray, np.ndarray]:
    """Rotation difference (degrees) and scale ratio (det / ref) of the 12 part similarities."""
    m_ref, _ = part_matrices(pad_and_scale_keypoints(ref, height, width, res), res)
    m_det, _ = part_matrices(pad_and_scale_keypoints(det, height, width, res), res)
    angle = np.degrees(
        np.arctan2(m_det[:, 1, 0], m_det[:, 0, 0]) - np.arctan2(m_ref[:, 1, 0], m_ref[:, 0, 0])
    )
    angle = (angle + 180.0) % 360.0 - 180.0
    scale = np.hypot(m_det[:, 0, 0], m_det[:, 1, 0]) / np.hypot(m_ref[:, 0, 0], m_ref[:, 1, 0])
    return angle, scale


def keypoint_report(errors: np.ndarray, missing: np.ndarray) -> list[str]:
    """Rows of the per-group table; ``errors`` (photos, 31) px with NaN where not compared."""
    rows = [f"{'group':<8} {'median px':>9} {'p90 px':>7} {'pairs':>5} {'missing':>7}"]
    for name, idx in GROUPS.items():
        e = errors[:, idx].ravel()
        e = e[np.isfinite(e)]
        med = f"{np.median(e):.1f}" if e.size else "-"
        p90 = f"{np.percentile(e, 90):.1f}" if e.size else "-"
        rows.append(f"{name:<8} {med:>9} {p90:>7} {e.size:>5} {int(missing[:, idx].sum()):>7}")
    return rows


def pipeline_comparison(
    checkpoint: str, items: list[dict], out: Path | None
) -> tuple[list[str], dict[str, dict[str, float]]]:
    """Predictor outputs, OpenPose + alpha vs detected keypoints + segmenter mask."""
    from inference import Predictor
    from utils.visualize import grid, label, normal_rgb8, write_png

    def normal_tile(normal: np.ndarray, keep: np.ndarray) -> np.ndarray:
        tile = normal_rgb8(torch.from_numpy(normal), "front", normal.shape[-1])
        return tile * keep[:, :, None]

    predictor = Predictor(checkpoint)
    rows = [
        f"{'photo':<8} {'variant':<9} {'sil IoU':>7} {'dF med':>7} {'dF p99':>7} {'dB med':>7}"
        f" {'dB p99':>7} {'nF deg':>7} {'nB deg':>7}"
    ]
    stats: dict[str, dict[str, float]] = {}
    tiles = []
    for it in items:
        a = predictor.predict(it["rgba"], it["ref"], source=it["stem"])
        variants = {
            "kp": predictor.predict(it["rgba"], it["det"], source=it["stem"]),
            "kp+mask": predictor.predict(it["plain"], it["det"], it["mask"], source=it["stem"]),
        }
        for name, b in variants.items():
            row = prediction_difference(a, b)
            stats[f"{it['stem']} {name}"] = row
            rows.append(
                f"{it['stem']:<8} {name:<9} {row['silhouette_iou']:>7.3f}"
                f" {row['depth_front_median_mm']:>7.1f} {row['depth_front_p99_mm']:>7.1f}"
                f" {row['depth_back_median_mm']:>7.1f} {row['depth_back_p99_mm']:>7.1f}"
                f" {row['normal_front_mean_deg']:>7.1f} {row['normal_back_mean_deg']:>7.1f}"
            )
        b = variants["kp+mask"]
        if out is not None:
            res = a.res
            over = cv2.resize(draw_overlay(it["plain"], it["detection"]), (res, res))
            tiles += [
                label(over[:, :, ::-1], f"{it['stem']} detected"),
                label(normal_tile(a.normal_front, a.depth_front > 0), "OpenPose + alpha"),
                label(normal_tile(b.normal_front, b.depth_front > 0), "auto + auto"),
            ]
    if out is not None and tiles:
        write_png(str(out / "panel.png"), grid(tiles, 6))
    return rows, stats


def main(args: argparse.Namespace) -> None:
    photos = [
        p for p in list_images(args.photos) if (p.parent / f"{p.stem}_keypoints.json").is_file()
    ]
    if not photos:
        raise SystemExit(f"error: {args.photos}: no <stem>.png with <stem>_keypoints.json")
    detector = KeypointDetector()
    errors, missing, items = [], [], []
    angles, scales, ious_black, ious_clutter, t_native, t_big = [], [], [], [], [], []
    for k, path in enumerate(photos):
        stem = image_stem(path)
        rgba = read_image(path)
        if rgba.shape[2] != 4:
            raise SystemExit(f"error: {path}: needs an alpha channel (the reference mask)")
        h, w = rgba.shape[:2]
        ref = load_openpose_json(path.parent / f"{stem}_keypoints.json")
        alpha = rgba[:, :, 3] > 127
        plain = composite(rgba, clutter_background(h, w, seed=k))
        start = time.perf_counter()
        det_black = detector(np.ascontiguousarray(rgba[:, :, :3]), stem)
        t_native.append(time.perf_counter() - start)
        det = detector(plain, stem)
        big = cv2.resize(plain, (args.time_res, args.time_res), interpolation=cv2.INTER_CUBIC)
        start = time.perf_counter()
        detector(big, stem)
        t_big.append(time.perf_counter() - start)
        kp = det.keypoints31(stem)
        both = (kp[:, 2] > 0) & (ref[:, 2] > 0)
        errors.append(np.where(both, np.linalg.norm(kp[:, :2] - ref[:, :2], axis=1), np.nan))
        missing.append((ref[:, 2] > 0) & (kp[:, 2] <= 0))
        angle, scale = part_differences(ref, kp, h, w)
        angles.append(angle)
        scales.append(scale)
        ious_black.append(iou(segmenter_mask(det_black, stem), alpha))
        mask = segmenter_mask(det, stem)
        ious_clutter.append(iou(mask, alpha))
        items.append(
            {"stem": stem, "rgba": rgba, "ref": ref, "plain": plain, "det": kp, "mask": mask,
             "detection": det}
        )  # fmt: skip
        missed = [KEYPOINT_NAMES[i] for i in np.flatnonzero(missing[-1])]
        print(f"{stem}: missing {missed or 'none'}; warnings {det.warnings or 'none'}")
    detector.close()
    errors, missing = np.array(errors), np.array(missing)
    angles, scales = np.array(angles), np.array(scales)
    print(f"\nkeypoints ({len(photos)} photos, {w}x{h} px, detected on the cluttered plain photo)")
    print("\n".join(keypoint_report(errors, missing)))
    off = (np.abs(angles) > 5.0) | (np.abs(scales - 1.0) > 0.05)
    print(
        f"\npart matrices differing by > 5 deg or > 5 % scale: {int(off.sum())} of {off.size}"
        f" (rotation |diff| median {np.median(np.abs(angles)):.1f} deg, max"
        f" {np.abs(angles).max():.1f}; scale ratio median {np.median(scales):.3f},"
        f" range {scales.min():.3f}-{scales.max():.3f})"
    )
    for j, name in enumerate(PART_NAMES):
        if off[:, j].any():
            deg = ", ".join(f"{v:.1f}" for v in angles[off[:, j], j])
            ratio = ", ".join(f"{v:.3f}" for v in scales[off[:, j], j])
            print(f"  {name:<12} {int(off[:, j].sum())} photo(s): deg [{deg}] scale [{ratio}]")
    print(
        f"\nmask IoU vs alpha: black background mean {np.mean(ious_black):.3f} "
        f"(min {np.min(ious_black):.3f}); cluttered background mean {np.mean(ious_clutter):.3f}"
        f" (min {np.min(ious_clutter):.3f})"
    )
    print(
        f"time per photo (detection + segmentation, CPU): {w}x{h} median "
        f"{np.median(t_native):.3f} s; {args.time_res}x{args.time_res} median "
        f"{np.median(t_big):.3f} s"
    )
    print(cpu_line())
    summary = {
        "photos": len(photos),
        "keypoint_groups": {
            name: {
                "median_px": float(np.nanmedian(errors[:, idx])),
                "p90_px": float(np.nanpercentile(errors[:, idx], 90)),
                "missing": int(missing[:, idx].sum()),
            }
            for name, idx in GROUPS.items()
        },
        "parts_off": int(off.sum()),
        "parts_total": int(off.size),
        "mask_iou_black": float(np.mean(ious_black)),
        "mask_iou_clutter": float(np.mean(ious_clutter)),
        "seconds_native": float(np.median(t_native)),
        "seconds_time_res": float(np.median(t_big)),
    }
    out = Path(args.out) if args.out else None
    if args.checkpoint:
        rows, stats = pipeline_comparison(args.checkpoint, items, out)
        print(
            "\nPredictor vs OpenPose + alpha: kp = detected keypoints + alpha; kp+mask ="
            " --keypoints auto --mask auto on the cluttered photo (depth in mm, 1 D ="
            f" {MM_PER_D:.0f} mm; normals: mean angle)"
        )
        print("\n".join(rows))
        summary["pipeline"] = stats
        for name in ("kp", "kp+mask"):
            sel = [v for k, v in stats.items() if k.endswith(f" {name}")]
            means = {key: float(np.mean([v[key] for v in sel])) for key in sel[0]}
            summary[f"pipeline_mean {name}"] = means
            print(f"mean {name}: " + ", ".join(f"{k} {v:.3f}" for k, v in means.items()))
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "summary.json").write_text(json.dumps(summary, indent=2))


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--photos", required=True, help="folder of RGBA photos with OpenPose JSON")
    p.add_argument("--checkpoint", help="phase-2 checkpoint: also compare the Predictor's outputs")
    p.add_argument("--time_res", type=int, default=2048, help="size of the timing run")
    p.add_argument("--out", help="folder for summary.json and panel.png")
    return p


if __name__ == "__main__":
    main(get_parser().parse_args())
