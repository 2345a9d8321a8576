"""Procedural backgrounds (``render.synthetic.backgrounds``, ``render.make_backgrounds``)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from datasets.augment import background_crop, find_backgrounds, load_background
from render import make_backgrounds
from render.synthetic.backgrounds import (
    MIN_SIZE,
    SHORT_SIDE,
    background_path,
    encode_background,
    make_background,
)

SIZE = 256
INDICES = range(16)


def edge_share(image: np.ndarray) -> float:
    """Share of neighbouring 4 x 4 pixel blocks (both directions) whose mean grey levels differ
    by more than 8 (0-255) in an ``[H, W, 3]`` uint8 BGR image: edges and textures count, sensor
    noise averages out."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    small = cv2.resize(grey, (grey.shape[1] // 4, grey.shape[0] // 4), interpolation=cv2.INTER_AREA)
    small = small.astype(np.float32)
    steps = [np.abs(np.diff(small, axis=axis)) > 8.0 for axis in (0, 1)]
    return float(np.mean([step.mean() for step in steps]))


def run(tmp_path, *argv: str) -> None:
    """``python -m render.make_backgrounds --out <tmp_path>/bg <argv>``."""
    args = make_backgrounds.get_parser().parse_args(["--out", str(tmp_path / "bg"), *argv])
    make_backgrounds.main(args)


def test_make_background_deterministic_sized_and_varied():
    images = [make_background(0, i, SIZE)[0] for i in INDICES]
    again, quality = make_background(0, 5, SIZE)
    np.testing.assert_array_equal(images[5], again)
    assert 75 <= quality <= 95
    assert not np.array_equal(make_background(1, 5, SIZE)[0], again)  # the seed matters
    short = round(SIZE * SHORT_SIDE)
    shapes = {image.shape for image in images}
    assert shapes == {(short, SIZE, 3), (SIZE, short, 3)}  # landscape and portrait
    for index, image in enumerate(images):
        assert image.dtype == np.uint8
        assert image.std() > 8.0, index  # not a flat fill
    # Structure (edges, textures), not only gradients and sensor noise, in all but the plain
    # studio backdrops: share of steps over 8 levels between 4 x 4 pixel block means.
    structured = [edge_share(image) > 0.05 for image in images]
    assert sum(structured) >= 0.75 * len(images), structured
    means = np.array([image.reshape(-1, 3).mean(axis=0) for image in images])
    assert means.std(axis=0).min() > 10.0  # the images differ in colour
    with pytest.raises(ValueError, match="below"):
        make_background(0, 0, MIN_SIZE - 1)


def test_cli_writes_resumes_and_feeds_training(tmp_path, capsys):
    out = tmp_path / "bg"
    run(tmp_path, "--num", "5", "--size", str(SIZE), "--seed", "3")
    files = sorted(out.iterdir())
    assert [f.name for f in files] == [f"bg_{i:05d}.jpg" for i in range(5)]
    image, quality = make_background(3, 2, SIZE)
    assert files[2].read_bytes() == encode_background(image, quality)
    assert "wrote 5 new" in capsys.readouterr().out

    stamps = {f: f.stat().st_mtime_ns for f in files}
    files[1].unlink()
    run(tmp_path, "--num", "5", "--size", str(SIZE), "--seed", "3")
    assert "wrote 1 new" in capsys.readouterr().out
    assert all(f.stat().st_mtime_ns == stamps[f] for f in files if f != files[1])
    assert sorted(out.iterdir()) == files  # no temporary file left

    assert find_backgrounds(out) == files
    rng = np.random.default_rng(0)
    for res in (128, 512):  # smaller and larger than the images
        crop = background_crop(load_background(files[0]), res, rng)
        assert crop.shape == (res, res, 3) and crop.dtype == np.float32
        assert 0.0 <= crop.min() and crop.max() <= 1.0 and crop.std() > 0.01


def test_cli_failures(tmp_path, capsys):
    out = tmp_path / "bg"
    background_path(out, 1).mkdir(parents=True)  # a folder where an image should go
    with pytest.raises(SystemExit) as exit_info:
        run(tmp_path, "--num", "3", "--size", "96")
    assert exit_info.value.code == 1
    assert sorted(f.name for f in out.iterdir()) == ["bg_00000.jpg", "bg_00001.jpg", "bg_00002.jpg"]
    assert background_path(out, 1).is_dir()
    err = capsys.readouterr().err.splitlines()
    assert [line.split(":")[0] for line in err if line.startswith("FAILED")] == [
        f"FAILED {background_path(out, 1)}"
    ]

    with pytest.raises(SystemExit, match="below"):
        run(tmp_path, "--size", str(MIN_SIZE - 1))
    blocked = tmp_path / "file"
    blocked.write_text("")
    args = make_backgrounds.get_parser().parse_args(["--out", str(blocked / "bg"), "--num", "2"])
    with pytest.raises(SystemExit, match="cannot be written"):
        make_backgrounds.main(args)
