"""The training data set and its augmentation, on a real rendered synthetic training set."""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import fuzz_settings
from hypothesis import given
from hypothesis import strategies as st
from torch.utils.data import DataLoader

from datasets import (
    DatasetError,
    ReconDataset,
    collate_skip_none,
    find_backgrounds,
    read_list,
    worker_error_message,
)
from datasets.augment import (
    JITTER_OPS,
    JitterParams,
    adjust_brightness,
    adjust_contrast,
    adjust_saturation,
    apply_jitter,
    background_crop,
    composite,
    draw_jitter,
    load_background,
    soften_boundary,
)
from render.make_training_set import get_parser
from render.training_set import build_synthetic_training_set, split_by_item
from utils.camera import png_to_depth_units
from utils.errors import BadInputError
from utils.keypoints import PartPlacementError, part_matrices
from utils.scans import RenderInputError

RES = 256
KEYS = {"image", "depth_front", "depth_back", "mask", "theta", "index", "path"}


def _dataset(ts: tuple[Path, Path, Path], train: bool = True, **kwargs: object) -> ReconDataset:
    root, train_list, val_list = ts
    return ReconDataset(root, train_list if train else val_list, RES, train, **kwargs)


def _png(path: Path, flags: int = cv2.IMREAD_UNCHANGED) -> np.ndarray:
    image = cv2.imread(str(path), flags)
    assert image is not None, path
    return image


def _files(root: Path, line: tuple[str, str, str]) -> dict[str, Path]:
    depth = root / line[2].lstrip("/")
    view, name = depth.parent.name, depth.name
    return {
        "shaded": root / line[0].lstrip("/"),
        "front": depth,
        "back": depth.with_name(name.replace("_front", "_back")),
        "keypoint": root / "PERS" / "keypoint" / view / name.replace(".png", ".npy"),
    }


def _band(mask: np.ndarray) -> np.ndarray:
    """Pixels with both classes in their 3x3 neighbourhood (a superset of the softened band)."""
    kernel = np.ones((3, 3), np.uint8)
    m = mask.astype(np.uint8)
    return (cv2.dilate(m, kernel) > 0) & (cv2.dilate(1 - m, kernel) > 0)


def _grey_png(path: Path, value: int, shape: tuple[int, ...] = (30, 40)) -> Path:
    cv2.imwrite(str(path), np.full(shape, value, np.uint8))
    return path


# ------------------------------------------------------------------------------------------------
# Lists


def test_lists_split_by_item_and_format(synthetic_training_set):
    root, train_list, val_list = synthetic_training_set
    train, val = read_list(train_list), read_list(val_list)
    assert (len(train), len(val)) == (6, 3)
    items = {
        name: {Path(line[0]).name.removesuffix("_front.png") for line in lines}
        for name, lines in (("train", train), ("val", val))
    }
    assert items == {"train": {"anny_0000", "anny_0001"}, "val": {"anny_0002"}}
    all_lines = read_list(root / "list" / "ANNY_all.txt")
    assert sorted(train + val) == sorted(all_lines)
    for line in train + val:
        assert line[0].startswith("/PERS/COLOR/SHADED/ANNY_0_y_")
        assert line[1].startswith("/PERS/COLOR/NOSHADING/") and line[2].startswith("/PERS/DEPTH/")
        assert all(p.is_file() for p in _files(root, line).values())
    with pytest.raises(ValueError, match="val_items"):
        split_by_item([" ".join(line) for line in all_lines], 3)


def test_build_resumes_and_refuses_other_settings(synthetic_training_set):
    root, train_list, val_list = synthetic_training_set
    png = root / "PERS" / "DEPTH" / "ANNY_0_y_0_x" / "anny_0001_front.png"
    before = (png.stat().st_mtime_ns, train_list.read_text(), val_list.read_text())
    again = build_synthetic_training_set(
        root, num=3, res=RES, yaws=(-30, 0, 30), seed=0, val_items=1, progress=False
    )
    assert again == (train_list, val_list)
    assert (png.stat().st_mtime_ns, train_list.read_text(), val_list.read_text()) == before
    with pytest.raises(RenderInputError, match="rendered with"):
        build_synthetic_training_set(root, num=3, res=RES, yaws=(0,), seed=1, progress=False)
    args = get_parser().parse_args(["--data_path", "x"])
    assert (args.num, args.res, args.yaws, args.seed, args.val_items) == (
        8,
        512,
        [-30, -20, -10, 0, 10, 20, 30],
        0,
        1,
    )


def test_read_list_errors_name_the_line(tmp_path):
    good = "/a/x_front.png /b/x_front.png /PERS/DEPTH/v/x_front.png"
    path = tmp_path / "list.txt"
    path.write_text(f"{good}\n\n{good} /extra.png\n")
    with pytest.raises(DatasetError, match=r"list\.txt: 1 malformed line\(s\), .*line 3:"):
        read_list(path)
    path.write_text(f"{good}\na/x.png b/x.png c/x.png\nnot a line\n")  # every bad line named
    with pytest.raises(DatasetError, match=r"list\.txt: 2 malformed .*line 2: .*; line 3: 'not"):
        read_list(path)
    with pytest.raises(DatasetError, match="not found"):
        read_list(tmp_path / "absent.txt")
    path.write_bytes(b"\xef\xbb\xbf" + f"{good}\r\n   \r\n{good}   \r\n".encode())  # BOM, CRLF
    assert read_list(path) == [tuple(good.split())] * 2
    path.write_bytes(b"\xff\xfe" + good.encode("utf-16-le"))
    with pytest.raises(DatasetError, match="cannot be read as a text list"):
        read_list(path)
    path.write_text("/a/x.png /b/x.png /PERS/DEPTH/v/x.png\n")  # not a _front depth
    with pytest.raises(DatasetError, match="_front.png"):
        ReconDataset(tmp_path, path, RES, False)
    path.write_text("\n")
    with pytest.raises(DatasetError, match="no samples"):
        ReconDataset(tmp_path, path, RES, False)
    path.write_text(good)
    with pytest.raises(ValueError, match="bad_samples"):
        ReconDataset(tmp_path, path, RES, False, bad_samples="ignore")


# ------------------------------------------------------------------------------------------------
# Samples


def test_build_with_two_workers_writes_the_same_files(synthetic_training_set, tmp_path):
    """Two worker processes (humans 0, 2 and 1 in two shards) write byte-identical humans, views,
    keypoints and lists to the one-process fixture's."""
    root = synthetic_training_set[0]
    build_synthetic_training_set(
        tmp_path, num=3, res=RES, yaws=(-30, 0, 30), seed=0, val_items=1, progress=False, workers=2
    )
    ours = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    theirs = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())
    assert ours == theirs and len(ours) > 30
    for rel in ours:
        assert (tmp_path / rel).read_bytes() == (root / rel).read_bytes(), rel
    with pytest.raises(ValueError, match="workers"):
        build_synthetic_training_set(tmp_path, num=3, res=RES, yaws=(0,), workers=0)


def test_sample_keys_shapes_dtypes_ranges(synthetic_training_set):
    ds = _dataset(synthetic_training_set)
    assert len(ds) == 6
    s = ds[4]
    assert set(s) == KEYS
    assert s["image"].shape == (3, RES, RES) and s["image"].dtype == torch.float32
    for key in ("depth_front", "depth_back", "mask"):
        assert s[key].shape == (1, RES, RES) and s[key].dtype == torch.float32
    assert s["theta"].shape == (12, 2, 3) and s["theta"].dtype == torch.float32
    assert s["index"] == 4 and s["path"].endswith("_front.png") and "/SHADED/" in s["path"]
    assert s["image"].min() >= -1 and s["image"].max() <= 1 and s["image"].std() > 0.05
    fg = s["mask"] > 0
    assert set(s["mask"].unique().tolist()) == {0.0, 1.0} and 0.02 < fg.float().mean() < 0.5
    assert torch.all(s["depth_front"][~fg] == 0) and torch.all(s["depth_front"][fg] > 0.4)
    assert torch.all(s["depth_back"][fg] >= s["depth_front"][fg])
    assert s["depth_front"].max() < 3.6
    assert torch.isfinite(s["theta"]).all()


def test_depth_mask_theta_match_the_files(synthetic_training_set):
    root = synthetic_training_set[0]
    for train in (True, False):
        ds = _dataset(synthetic_training_set, train=train)
        lines = read_list(synthetic_training_set[1 if train else 2])
        for index in (0, len(ds) - 1):
            s, files = ds[index], _files(root, lines[index])
            front, back = _png(files["front"]), _png(files["back"])
            assert front.dtype == np.uint16
            np.testing.assert_array_equal(s["depth_front"][0].numpy(), png_to_depth_units(front))
            np.testing.assert_array_equal(s["depth_back"][0].numpy(), png_to_depth_units(back))
            np.testing.assert_array_equal(s["mask"][0].numpy(), (front > 0).astype(np.float32))
            _, theta = part_matrices(np.load(files["keypoint"]), RES)
            np.testing.assert_array_equal(s["theta"].numpy(), theta)
            assert s["path"] == str(files["shaded"])


def test_sample_is_a_function_of_seed_epoch_index(synthetic_training_set, tmp_path):
    bg = [_grey_png(tmp_path / "bg.png", 90, (300, 200))]
    a = _dataset(synthetic_training_set, backgrounds=bg, background_prob=0.5, seed=7)
    b = _dataset(synthetic_training_set, backgrounds=bg, background_prob=0.5, seed=7)
    a.set_epoch(3)
    b.set_epoch(3)
    b[0], b[5]  # other samples first: no hidden state
    for index in (1, 4):
        sa, sb = a[index], b[index]
        for key in ("image", "depth_front", "depth_back", "mask", "theta"):
            torch.testing.assert_close(sa[key], sb[key], rtol=0, atol=0)
    first = a[1]["image"]
    a.set_epoch(4)
    assert not torch.equal(a[1]["image"], first)
    c = _dataset(synthetic_training_set, backgrounds=bg, background_prob=0.5, seed=8)
    c.set_epoch(3)
    assert not torch.equal(c[1]["image"], first)
    torch.testing.assert_close(c[1]["depth_front"], a[1]["depth_front"], rtol=0, atol=0)


def test_validation_is_deterministic_with_black_background(synthetic_training_set, tmp_path):
    bg = [_grey_png(tmp_path / "bg.png", 200)]
    ds = _dataset(synthetic_training_set, train=False, backgrounds=bg, background_prob=1.0)
    first = ds[2]
    ds.set_epoch(9)
    again = ds[2]
    torch.testing.assert_close(first["image"], again["image"], rtol=0, atol=0)
    mask = first["mask"][0].numpy() > 0
    image = first["image"].numpy()
    near = _band(mask)
    assert np.all(image[:, ~mask & ~near] == -1.0)
    shaded = _png(Path(first["path"]), cv2.IMREAD_COLOR)[:, :, ::-1].astype(np.float32) / 255
    expected = shaded.transpose(2, 0, 1) * 2 - 1  # no jitter: the SHADED render itself
    np.testing.assert_array_equal(image[:, mask & ~near], expected[:, mask & ~near])


def test_softening_band_matches_a_direct_recomputation(synthetic_training_set):
    s = _dataset(synthetic_training_set, train=False)[0]
    mask = s["mask"][0].numpy() > 0
    rgb = _png(Path(s["path"]), cv2.IMREAD_COLOR)[:, :, ::-1].astype(np.float32) / 255
    rgb[~mask] = 0
    # 3x3 Gaussian (1/4, 1/2, 1/4) with OpenCV's default reflect-101 border, written out.
    w = np.array([0.25, 0.5, 0.25])
    padded = np.pad(mask.astype(np.float64), 1, mode="reflect")
    blurred = sum(
        w[i] * w[j] * padded[i : i + RES, j : j + RES] for i in range(3) for j in range(3)
    )
    band = (blurred > 0.2) & (blurred < 0.8)
    assert band.sum() > 100 and not np.any(band & ~_band(mask))
    g = np.array([1, 4, 6, 4, 1], np.float32) / 16
    smooth = cv2.sepFilter2D(cv2.medianBlur(np.ascontiguousarray(rgb), 3), -1, g, g)
    expected = np.where(band[:, :, None], smooth, rgb).transpose(2, 0, 1) * 2 - 1
    np.testing.assert_allclose(s["image"].numpy(), expected, rtol=0, atol=1e-6)


def test_soften_boundary_of_a_straight_edge():
    mask = np.zeros((16, 16), bool)
    mask[:, 8:] = True
    image = np.random.default_rng(0).random((16, 16, 3), dtype=np.float32)
    out = soften_boundary(image, mask)
    changed_cols = np.flatnonzero(np.any(out != image, axis=(0, 2)))
    assert changed_cols.tolist() == [7, 8]  # blurred mask 0.25 and 0.75
    smooth = cv2.GaussianBlur(cv2.medianBlur(image, 3), (5, 5), 0)
    np.testing.assert_array_equal(out[:, 7:9], smooth[:, 7:9])


# ------------------------------------------------------------------------------------------------
# Augmentation functions


def test_jitter_ops_follow_torchvision_semantics():
    img = np.random.default_rng(1).uniform(0, 0.9, (8, 8, 3)).astype(np.float32)
    np.testing.assert_array_equal(adjust_brightness(img, 0.8), img * np.float32(0.8))
    assert adjust_brightness(img, 0.8).dtype == np.float32
    assert adjust_brightness(img + 0.1, 2.0).max() == 1.0  # clamped
    grey = 0.299 * img[..., 0] + 0.587 * img[..., 1] + 0.114 * img[..., 2]
    np.testing.assert_allclose(adjust_contrast(img, 0.7), 0.7 * img + 0.3 * grey.mean(), atol=1e-6)
    np.testing.assert_allclose(
        adjust_saturation(img, 0.7), 0.7 * img + 0.3 * grey[..., None], atol=1e-6
    )
    np.testing.assert_allclose(
        adjust_saturation(img, 0.0), np.repeat(grey[..., None], 3, -1), atol=1e-6
    )
    np.testing.assert_array_equal(adjust_contrast(img, 1.0), img)


def _masks(rng: np.random.Generator, size: int = 40) -> list[np.ndarray]:
    """Masks for the fast augmentation paths: blobs inside and touching each border, a corner
    pixel, empty, full."""
    yy, xx = np.mgrid[:size, :size]
    masks = [(yy - cy) ** 2 + (xx - cx) ** 2 < r**2 for cy, cx, r in rng.integers(0, size, (6, 3))]
    masks += [(yy - size / 2) ** 2 + (xx - size / 2) ** 2 < 100, yy + xx == 0]
    return [*masks, np.zeros((size, size), bool), np.ones((size, size), bool)]


def test_fast_augmentation_equals_the_plain_formulas_bit_for_bit(rng):
    # the plain formulas (boolean indexing, whole-image filters, out-of-place clips) were the
    # implementation before the in-place / bounding-box one; equality must stay exact
    image = rng.random((40, 40, 3), dtype=np.float32)
    background = rng.random((40, 40, 3), dtype=np.float32)
    for f in (0.0, 0.73, 1.0, 1.6):
        g = np.float32(f)
        grey = image @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        np.testing.assert_array_equal(adjust_brightness(image, f), np.clip(image * g, 0.0, 1.0))
        plain = np.clip(g * image + (1 - g) * grey.mean(), 0.0, 1.0)
        np.testing.assert_array_equal(adjust_contrast(image, f), plain)
        plain = np.clip(g * image + (1 - g) * grey[:, :, None], 0.0, 1.0)
        np.testing.assert_array_equal(adjust_saturation(image, f), plain)
    smooth = cv2.GaussianBlur(cv2.medianBlur(image, 3), (5, 5), 0)
    for mask in _masks(rng):
        for bg in (None, background):
            plain = image.copy()
            plain[~mask] = 0.0 if bg is None else bg[~mask]
            np.testing.assert_array_equal(composite(image, mask, bg), plain)
        blurred = cv2.GaussianBlur(mask.astype(np.float32), (3, 3), 0)
        band = (blurred > 0.2) & (blurred < 0.8)
        plain = image.copy()
        plain[band] = smooth[band]
        np.testing.assert_array_equal(soften_boundary(image, mask), plain)
    crop = background_crop(np.full((30, 50, 3), (10, 20, 30), np.uint8), 40, rng)
    np.testing.assert_array_equal(crop, np.full((40, 40, 3), (30, 20, 10), np.float32) / 255.0)


def test_jitter_draws_are_bounded_and_randomly_ordered():
    draws = [draw_jitter(np.random.default_rng(i), (0.7, 1.0)) for i in range(200)]
    factors = np.array([(d.brightness, d.contrast, d.saturation) for d in draws])
    assert factors.min() >= 0.7 and factors.max() <= 1.0 and factors.std(axis=0).min() > 0.05
    orders = {d.order for d in draws}
    assert len(orders) == 6 and all(sorted(o) == sorted(JITTER_OPS) for o in orders)
    img = np.random.default_rng(2).random((8, 8, 3), dtype=np.float32)
    p = JitterParams(("saturation", "brightness", "contrast"), 0.75, 0.8, 0.9)
    manual = adjust_contrast(adjust_brightness(adjust_saturation(img, 0.9), 0.75), 0.8)
    np.testing.assert_array_equal(apply_jitter(img, p), manual)
    other = JitterParams(("contrast", "brightness", "saturation"), 0.75, 0.8, 0.9)
    assert not np.array_equal(apply_jitter(img, other), manual)


def test_background_only_replaces_pixels_outside_the_mask(synthetic_training_set, tmp_path):
    bg = [_grey_png(tmp_path / "grey.png", 100)]  # 40 x 30: far below the crop size
    with_bg = _dataset(synthetic_training_set, backgrounds=bg, background_prob=1.0)
    black = _dataset(synthetic_training_set, backgrounds=bg, background_prob=0.0)
    a, b = with_bg[3], black[3]
    mask = a["mask"][0].numpy() > 0
    near = _band(mask)
    ia, ib = a["image"].numpy(), b["image"].numpy()
    np.testing.assert_array_equal(ia[:, mask & ~near], ib[:, mask & ~near])  # same jitter
    np.testing.assert_allclose(ia[:, ~mask & ~near], 100 / 255 * 2 - 1, atol=1e-6)
    assert np.all(ib[:, ~mask & ~near] == -1)
    raw = _png(Path(a["path"]), cv2.IMREAD_COLOR)[:, :, ::-1].astype(np.float32) / 255 * 2 - 1
    assert not np.allclose(ia[:, mask & ~near], raw.transpose(2, 0, 1)[:, mask & ~near])


def test_small_odd_backgrounds_load_and_crop(tmp_path):
    rng = np.random.default_rng(0)
    cv2.imwrite(str(tmp_path / "rgba.png"), np.full((20, 50, 4), (10, 20, 30, 0), np.uint8))
    cv2.imwrite(str(tmp_path / "deep.png"), np.full((70, 30, 3), 40000, np.uint16))
    cases = {
        _grey_png(tmp_path / "grey.png", 77): (77, 77, 77),
        tmp_path / "rgba.png": (30, 20, 10),  # RGB of BGRA (10, 20, 30), alpha dropped
        tmp_path / "deep.png": (156, 156, 156),  # 40000 >> 8
    }
    for path, rgb in cases.items():
        image = load_background(path)
        assert image is not None and image.dtype == np.uint8 and image.ndim == 3
        crop = background_crop(image, RES, rng)
        assert crop.shape == (RES, RES, 3) and crop.dtype == np.float32
        np.testing.assert_allclose(crop, np.broadcast_to(np.array(rgb) / 255, crop.shape), 1e-6)
    ramp = np.tile(np.arange(1024, dtype=np.float64)[None, :, None] / 4, (1024, 1, 3))
    ramp = ramp.astype(np.uint8)  # 1024 x 1024 at res 256: scale 2 * 256 / 2048 exactly
    expected = cv2.resize(ramp, (RES, RES), interpolation=cv2.INTER_LINEAR)[:, :, ::-1] / 255
    np.testing.assert_allclose(background_crop(ramp, RES, rng), expected, atol=1e-6)
    assert load_background(tmp_path / "absent.png") is None


def test_unreadable_background_warns_once_and_is_black(synthetic_training_set, tmp_path, caplog):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    ds = _dataset(synthetic_training_set, backgrounds=[broken], background_prob=1.0)
    with caplog.at_level(logging.WARNING, logger="datasets.recon"):
        samples = [ds[i] for i in (0, 1, 0)]
    assert [r.getMessage() for r in caplog.records if "broken.jpg" in r.getMessage()] == [
        f"{broken}: background cannot be read, using black"
    ]
    for s in samples:
        mask = s["mask"][0].numpy() > 0
        assert np.all(s["image"].numpy()[:, ~mask & ~_band(mask)] == -1)


def test_find_backgrounds_folder_and_list(tmp_path, caplog):
    indoor = tmp_path / "IndoorCVPR09"
    (indoor / "bar").mkdir(parents=True)
    (indoor / "mall").mkdir()
    a = _grey_png(indoor / "bar" / "a.jpg", 1)
    b = _grey_png(indoor / "mall" / "b.PNG", 2)
    (indoor / "notes.txt").write_text("x")
    assert find_backgrounds(indoor) == [a, b]
    lists = tmp_path / "list"
    lists.mkdir()
    listed = lists / "bg.txt"
    listed.write_text("IndoorCVPR09/bar/a.jpg\nIndoorCVPR09\\mall\\b.PNG\nextra/BG_00.png\n")
    listed.write_text(listed.read_text() + "outdoor/BG_1.jpeg\nIndoorCVPR09/bar/a.jpg")
    with caplog.at_level(logging.WARNING, logger="datasets.augment"):
        assert find_backgrounds(listed) == [a, b, a]  # repeated lines are kept
    assert len(caplog.records) == 1
    assert "2 of 5 background entries missing" in caplog.text and "BG_00.png" in caplog.text
    authors = lists / "authors.txt"  # the authors' list: <category>/<file> under IndoorCVPR09
    authors.write_text("bar/a.jpg\nmall/b.PNG")
    assert find_backgrounds(authors, root=indoor) == [a, b]
    with pytest.raises(BadInputError, match="absent: background folder or list not found"):
        find_backgrounds(tmp_path / "absent")
    with pytest.raises(BadInputError, match="no background"):
        find_backgrounds(authors)  # default root = tmp_path: nothing there


def test_dataloader_batches_match_direct_samples(synthetic_training_set):
    ds = _dataset(synthetic_training_set, seed=3)
    ds.set_epoch(2)
    batch = next(iter(DataLoader(ds, batch_size=2, num_workers=0)))
    assert batch["image"].shape == (2, 3, RES, RES) and batch["theta"].shape == (2, 12, 2, 3)
    assert batch["mask"].shape == (2, 1, RES, RES) and batch["index"].tolist() == [0, 1]
    assert isinstance(batch["path"], list) and len(batch["path"]) == 2
    parallel = list(DataLoader(ds, batch_size=2, num_workers=2))
    torch.testing.assert_close(parallel[0]["image"], batch["image"], rtol=0, atol=0)
    torch.testing.assert_close(parallel[2]["image"][1], ds[5]["image"], rtol=0, atol=0)


# ------------------------------------------------------------------------------------------------
# Bad input


def _corrupt(files: dict[str, Path], case: str) -> Path:
    """Damage one file of a copied sample; returns the file the error must name."""
    if case == "missing shaded":
        files["shaded"].unlink()
        return files["shaded"]
    if case == "truncated depth":
        data = files["front"].read_bytes()
        files["front"].write_bytes(data[: len(data) // 2])
        return files["front"]
    if case == "8-bit depth":
        cv2.imwrite(str(files["back"]), (_png(files["back"]) >> 8).astype(np.uint8))
        return files["back"]
    if case == "wrong size":
        small = cv2.resize(_png(files["shaded"]), (RES // 2, RES // 2))
        cv2.imwrite(str(files["shaded"]), small)
        return files["shaded"]
    np.save(files["keypoint"], np.zeros((31, 3), np.float32))  # "no keypoints"
    return files["keypoint"]


BAD_CASES = ("missing shaded", "truncated depth", "8-bit depth", "wrong size", "no keypoints")


def _copy_views(ts: tuple[Path, Path, Path], dest: Path, count: int = 2) -> list:
    """The first ``count`` training views' files copied under ``dest`` with ``dest/list.txt``;
    returns their list lines."""
    root, train_list, _ = ts
    lines = read_list(train_list)[:count]
    for line in lines:
        for path in _files(root, line).values():
            target = dest / path.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target)
    (dest / "list.txt").write_text("".join(" ".join(line) + "\n" for line in lines))
    return lines


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_samples_raise_or_skip(synthetic_training_set, tmp_path, caplog, case):
    lines = _copy_views(synthetic_training_set, tmp_path)
    listing = tmp_path / "list.txt"
    bad = _corrupt(_files(tmp_path, lines[0]), case)
    strict = ReconDataset(tmp_path, listing, RES, train=True)
    with pytest.raises(DatasetError, match=str(bad)) as info:
        strict[0]
    assert str(info.value).count(str(bad)) == 1
    if case == "no keypoints":
        assert isinstance(info.value.__cause__, PartPlacementError)
    lenient = ReconDataset(tmp_path, listing, RES, train=True, bad_samples="skip")
    with caplog.at_level(logging.WARNING, logger="datasets.recon"):
        assert lenient[0] is None
    assert str(bad) in caplog.text
    batch = collate_skip_none([lenient[0], lenient[1]])
    assert batch is not None and batch["index"].tolist() == [1]
    assert batch["image"].shape == (1, 3, RES, RES)
    assert collate_skip_none([lenient[0]]) is None


def test_transposed_keypoint_file_gives_the_same_theta(synthetic_training_set, tmp_path):
    root, train_list, _ = synthetic_training_set
    line = read_list(train_list)[0]
    for key, path in _files(root, line).items():
        target = tmp_path / path.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        if key == "keypoint":
            np.save(target, np.load(path).T)  # stored (3, 31)
        else:
            shutil.copy(path, target)
    listing = tmp_path / "list.txt"
    listing.write_text(" ".join(line) + "\n")
    theta = ReconDataset(tmp_path, listing, RES, train=False)[0]["theta"]
    torch.testing.assert_close(theta, _dataset(synthetic_training_set)[0]["theta"])


def test_start_up_check_finds_every_bad_case_without_decoding(synthetic_training_set, tmp_path):
    """Each damage of :data:`BAD_CASES` is found by the header-level start-up check, naming the
    same file as loading would; the intact view passes."""
    for case in BAD_CASES:
        folder = tmp_path / case.replace(" ", "_")
        lines = _copy_views(synthetic_training_set, folder)
        bad = _corrupt(_files(folder, lines[0]), case)
        dataset = ReconDataset(folder, folder / "list.txt", RES, train=True)
        problems = dataset.check_views()
        assert list(problems) == [0], case
        assert problems[0].startswith(f"{bad}: "), (case, problems[0])


def test_pixel_damage_behind_a_valid_header_fails_at_load_in_a_worker(
    synthetic_training_set, tmp_path
):
    """Damaged pixel data (header and IEND intact) passes the start-up check; loading it, in a
    DataLoader worker too, raises DatasetError naming the file."""
    lines = _copy_views(synthetic_training_set, tmp_path)
    front = _files(tmp_path, lines[1])["front"]
    data = bytearray(front.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 32] = bytes(range(32))
    front.write_bytes(bytes(data))
    dataset = ReconDataset(tmp_path, tmp_path / "list.txt", RES, train=True)
    assert dataset.check_views() == {}
    expected = f"{front}: cannot be decoded (corrupt or truncated image)"
    with pytest.raises(DatasetError, match="cannot be decoded") as direct:
        dataset[1]
    assert str(direct.value) == expected == worker_error_message(direct.value)
    loader = DataLoader(dataset, batch_size=1, num_workers=1, sampler=[1])
    with pytest.raises(DatasetError) as in_worker:
        next(iter(loader))
    assert "DataLoader worker" in str(in_worker.value)
    assert worker_error_message(in_worker.value) == expected
    several = DatasetError("ckpt.pt: checkpoint does not fit the model:\n    b.weight")
    assert worker_error_message(several) == str(several)  # not a worker's: shown whole


DAMAGES = ("truncate", "overwrite", "insert", "replace")
FILES = ("shaded", "front", "back", "keypoint")


@fuzz_settings(40)
@given(
    which=st.sampled_from(FILES),
    damage=st.sampled_from(DAMAGES),
    at=st.floats(0.0, 1.0, exclude_max=True),
    junk=st.binary(min_size=1, max_size=48),
)
def test_fuzz_damaged_files_only_ever_raise_dataset_error(
    synthetic_training_set, which, damage, at, junk
):
    """Any byte-level damage to any of a view's four files: the start-up check and the loader
    either accept it or raise DatasetError naming that file, never another exception; a file cut
    short is always caught by the start-up check; what loads has the documented shapes."""
    with tempfile.TemporaryDirectory() as folder:
        dest = Path(folder)
        lines = _copy_views(synthetic_training_set, dest, count=1)
        path = _files(dest, lines[0])[{"front": "front", "back": "back"}.get(which, which)]
        data = path.read_bytes()
        cut = int(at * len(data))
        if damage == "truncate":
            data = data[:cut]
        elif damage == "overwrite":
            data = data[:cut] + junk + data[cut + len(junk) :]
        elif damage == "insert":
            data = data[:cut] + junk + data[cut:]
        else:
            data = junk
        path.write_bytes(data)
        dataset = ReconDataset(dest, dest / "list.txt", RES, train=True)
        try:
            dataset.check_view(0)
            checked = True
        except DatasetError as e:
            assert str(e).startswith(f"{path}: "), str(e)
            checked = False
        if damage in ("truncate", "replace"):
            assert not checked, f"{damage} at {cut} of {path.name} passed the check"
        try:
            sample = dataset.load(0)
        except DatasetError as e:
            assert str(e).startswith(f"{path}: "), str(e)
        else:
            assert sample["image"].shape == (3, RES, RES)
            assert sample["theta"].shape == (12, 2, 3) and torch.isfinite(sample["theta"]).all()
