"""Procedural background images to composite behind training renders.

The authors composite indoor photographs (IndoorCVPR09) behind every training render
(``datasets.augment.background_crop``); we have no photographs that we may ship, so this module
paints varied scenes from shapes and noise with NumPy and OpenCV:

* ``room``: a wall above a floor seen in perspective (tiles, wood planks or carpet) with windows,
  doors, shelves of books, pictures, furniture boxes, plants and lamp light;
* ``wall``: a wall filling the frame (bricks, tiles, wood panels, concrete or wallpaper) with a
  picture or a shelf;
* ``studio``: a plain photographic backdrop with a radial light and a floor sweep;
* ``outdoor``: sky with clouds, hills, trees, buildings and grass, pavement or sand.

Every image then gets a light gradient, a colour cast, vignetting, blur, sensor noise and JPEG
compression at a random quality. An image is a pure function of ``(seed, index, size)``.

Sizes: ``size`` is the long side; the short side is :data:`SHORT_SIDE` of it (4:3, landscape or
portrait). ``background_crop`` scales a background by ``max(2 res / 2048, res / short)`` before
cropping ``res`` pixels: a 1024 image (short side 768) is scaled 0.67x at res 512, 1.33x at 1024
and 2.67x at 2048 (the authors' factor there is 2 for photos at least 1024 on the short side);
``size`` 1366 or more gives exactly the authors' factor at every resolution.
"""

from __future__ import annotations

import colorsys
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from utils.batch import run_item
from utils.fileio import atomic_write_bytes, check_writable_dir

SCENES: tuple[str, ...] = ("room", "wall", "studio", "outdoor")
"""The kinds of scene :func:`make_background` paints."""

_SCENE_ODDS = (0.45, 0.15, 0.12, 0.28)
"""Probability of each of :data:`SCENES`, in that order."""

SHORT_SIDE = 0.75
"""Short side of an image as a fraction of its long side (4:3)."""

PORTRAIT_SHARE = 0.25
"""Fraction of images that are taller than wide."""

MIN_SIZE = 64
"""Smallest long side in pixels that :func:`make_background` accepts."""

REFERENCE_SIZE = 1024
"""Long side in pixels at which the sizes in pixels below (lines, blur) hold; they scale with
the image."""

JPEG_QUALITY = (75, 95)
"""Range of the JPEG quality drawn per image (both ends included)."""

MIN_FEATURE_PX = 3.0
"""A floor pattern fades out where its features are under this many pixels (they would alias)."""

NOISE_TILE = 128
"""Side in pixels of the sensor-noise tile repeated over an image."""

Image = np.ndarray
"""``[H, W, 3]`` float32 RGB in [0, 1] while painting."""


def _hsv(hue: float, saturation: float, value: float) -> np.ndarray:
    """``[3]`` float32 RGB in [0, 1] of an HSV colour."""
    return np.array(colorsys.hsv_to_rgb(hue % 1.0, saturation, value), dtype=np.float32)


def _color(rng: np.random.Generator, kind: str = "any") -> np.ndarray:
    """``[3]`` float32 RGB: a wall paint (mostly whites, beiges, greys, pastels), a wood, a
    stone/grey, a foliage green or any colour."""
    if kind == "wall":
        if rng.random() < 0.6:  # off-whites, beiges and greys
            return _hsv(rng.uniform(0.05, 0.15), rng.uniform(0.0, 0.2), rng.uniform(0.55, 0.95))
        return _hsv(rng.random(), rng.uniform(0.1, 0.45), rng.uniform(0.45, 0.9))
    if kind == "wood":
        return _hsv(rng.uniform(0.05, 0.1), rng.uniform(0.35, 0.7), rng.uniform(0.25, 0.8))
    if kind == "stone":
        return _hsv(rng.uniform(0.0, 0.15), rng.uniform(0.0, 0.15), rng.uniform(0.3, 0.85))
    if kind == "green":
        return _hsv(rng.uniform(0.2, 0.38), rng.uniform(0.35, 0.8), rng.uniform(0.15, 0.55))
    return _hsv(rng.random(), rng.uniform(0.0, 0.9), rng.uniform(0.1, 0.95))


def _noise(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
    """``[h, w]`` float32 smooth noise of unit standard deviation with features about ``cell``
    pixels wide (random values on a coarse grid, bicubically enlarged)."""
    coarse = rng.standard_normal((max(2, round(h / cell) + 2), max(2, round(w / cell) + 2)))
    field = cv2.resize(coarse.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    sample = field[::8, ::8]  # the statistics of a subsample: 1/64 of the cost
    field -= sample.mean()
    field /= max(float(sample.std()), 1e-6)
    return field


def _texture(rng: np.random.Generator, h: int, w: int, scale: float) -> np.ndarray:
    """``[h, w]`` float32 multi-scale noise (features of 200, 40 and 8 px at 1024), unit std."""
    field = sum(
        weight * _noise(rng, h, w, cell * scale)
        for weight, cell in ((1.0, 200.0), (0.5, 40.0), (0.25, 8.0))
    )
    return field / 1.15


def _shade(image: Image, amount: np.ndarray) -> None:
    """Multiply ``image`` in place by ``1 + amount`` (``[H, W]``)."""
    image *= (1.0 + amount)[..., None]


def _box(image: Image, x0: int, y0: int, x1: int, y1: int, color: np.ndarray) -> None:
    """Fill the rectangle ``[y0:y1, x0:x1]`` (clipped to the image) with ``color``, lit from
    above (a vertical gradient, 10 % darker at the bottom)."""
    h, w = image.shape[:2]
    x0, x1, y0, y1 = max(0, x0), min(w, x1), max(0, y0), min(h, y1)
    if x1 <= x0 or y1 <= y0:
        return
    ramp = np.linspace(1.0, 0.9, y1 - y0, dtype=np.float32)[:, None, None]
    image[y0:y1, x0:x1] = color * ramp


def _outline(
    image: Image, x0: int, y0: int, x1: int, y1: int, color: np.ndarray, width: int
) -> None:
    """Draw a rectangle's frame ``width`` pixels wide."""
    cv2.rectangle(image, (x0, y0), (x1, y1), tuple(float(c) for c in color), max(1, width))


def _floor(rng: np.random.Generator, image: Image, horizon: int, scale: float) -> None:
    """Paint rows below ``horizon`` as a floor in perspective (a camera 1-1.6 m high, focal
    length one image width): tiles, wood planks or carpet. A pattern fades out where its
    features would be under :data:`MIN_FEATURE_PX` pixels (towards the horizon, where it would
    alias)."""
    h, w = image.shape[:2]
    rows = h - horizon
    if rows <= 0:
        return
    kind = rng.choice(["tiles", "planks", "carpet"], p=[0.35, 0.4, 0.25])
    base = _color(rng, "wood" if kind == "planks" else "stone")
    camera = rng.uniform(1.0, 1.6)
    yy = np.arange(1, rows + 1, dtype=np.float32)[:, None] / w  # below the horizon, > 0
    xx = (np.arange(w, dtype=np.float32)[None, :] - rng.uniform(0.2, 0.8) * w) / w
    depth = camera / yy  # metres from the camera
    lateral = xx * depth

    def fade(feature: float, foreshortened: bool) -> np.ndarray:
        """``[rows, 1]`` pattern contrast of features ``feature`` metres wide (across the view
        or, foreshortened, along it): 0 under MIN_FEATURE_PX pixels, 1 from 3 times that."""
        pixels = feature * yy * w / camera * (yy if foreshortened else 1.0)
        return np.clip(0.5 * (pixels / MIN_FEATURE_PX - 1.0), 0.0, 1.0)

    pattern = np.zeros((rows, w), dtype=np.float32)
    if kind == "tiles":
        tile = rng.uniform(0.3, 0.6)
        u, v = lateral / tile, depth / tile
        checker = (np.floor(u) + np.floor(v)) % 2
        pattern += rng.uniform(0.0, 0.15) * (checker - 0.5)
        grout = np.minimum(np.abs(u - np.round(u)), np.abs(v - np.round(v))) < 0.03
        pattern -= 0.25 * grout
        pattern *= fade(tile, foreshortened=True)
    elif kind == "planks":
        plank, length = rng.uniform(0.1, 0.2), rng.uniform(1.0, 2.0)
        index = np.floor(lateral / plank).astype(np.int64) % 4096
        tones, offsets = rng.uniform(-0.12, 0.12, size=4096), rng.uniform(0.0, length, size=4096)
        edge = np.abs(lateral / plank - np.round(lateral / plank)) < 0.04
        end = np.abs(np.mod(depth + offsets[index], length) / length - 0.5) > 0.49
        pattern += (tones[index] - 0.2 * edge) * fade(plank, foreshortened=False)
        pattern -= 0.2 * end * fade(0.05 * length, foreshortened=True)
    pattern += 0.05 * _noise(rng, rows, w, 30.0 * scale) + 0.04 * _noise(rng, rows, w, 3.0 * scale)
    lit = np.linspace(rng.uniform(0.7, 1.0), rng.uniform(0.8, 1.15), rows, dtype=np.float32)
    pattern += 1.0
    pattern *= lit[:, None]
    image[horizon:] = base * pattern[..., None]


def _window(
    rng: np.random.Generator, image: Image, x0: int, y0: int, x1: int, y1: int, scale: float
) -> None:
    """A window: a bright sky-to-greenery view behind a frame with bars, maybe curtains."""
    h, w = image.shape[:2]
    x0, x1, y0, y1 = max(0, x0), min(w, x1), max(0, y0), min(h, y1)
    if x1 - x0 < 4 or y1 - y0 < 4:
        return
    sky = _hsv(rng.uniform(0.52, 0.62), rng.uniform(0.05, 0.45), rng.uniform(0.85, 1.0))
    view = np.linspace(1.0, 0.8, y1 - y0, dtype=np.float32)[:, None, None] * sky
    view = np.broadcast_to(view, (y1 - y0, x1 - x0, 3)).copy()
    if rng.random() < 0.6:  # trees or buildings outside
        split = int((y1 - y0) * rng.uniform(0.4, 0.8))
        view[split:] = (
            _color(rng, "green")
            * (1.0 + 0.2 * _noise(rng, y1 - y0 - split, x1 - x0, 12 * scale))[..., None]
        )
    image[y0:y1, x0:x1] = view
    frame = _color(rng, "wall") * rng.choice([0.6, 1.1])
    width = round(rng.uniform(6, 14) * scale)
    _outline(image, x0, y0, x1, y1, frame, width)
    for _ in range(int(rng.integers(0, 3))):
        xm = int(rng.uniform(x0, x1))
        cv2.line(image, (xm, y0), (xm, y1), tuple(float(c) for c in frame), max(1, width // 2))
    ym = int(rng.uniform(y0, y1))
    cv2.line(image, (x0, ym), (x1, ym), tuple(float(c) for c in frame), max(1, width // 2))
    if rng.random() < 0.5:  # curtains with folds
        cloth = _color(rng)
        span = int((x1 - x0) * rng.uniform(0.15, 0.3))
        folds = np.cos(np.arange(span, dtype=np.float32) / (rng.uniform(6, 14) * scale))
        shade = (0.85 + 0.15 * folds)[None, :, None] * cloth
        top, bottom = max(0, y0 - width), min(h, y1 + 3 * width)
        image[top:bottom, max(0, x0 - width) : max(0, x0 - width) + span] = shade[:, : min(span, w)]
        right = min(w, x1 + width)
        image[top:bottom, max(0, right - span) : right] = shade[:, : right - max(0, right - span)]


def _shelf(
    rng: np.random.Generator, image: Image, x0: int, y0: int, x1: int, y1: int, scale: float
) -> None:
    """A bookcase: a wooden frame with boards and rows of books of random colours and heights."""
    wood = _color(rng, "wood")
    _box(image, x0, y0, x1, y1, wood * 0.55)
    board = max(2, round(8 * scale))
    _outline(image, x0, y0, x1, y1, wood, board)
    rows = int(rng.integers(2, 6))
    edges = np.linspace(y0, y1, rows + 1).astype(int)
    for top, bottom in zip(edges[:-1], edges[1:], strict=True):
        _box(image, x0, bottom - board, x1, bottom, wood)
        x = x0 + board
        while x < x1 - board:
            book = max(2, round(rng.uniform(6, 22) * scale))
            if rng.random() < 0.15:  # a gap
                x += 3 * book
                continue
            height = int((bottom - top - board) * rng.uniform(0.55, 0.92))
            _box(
                image,
                x,
                bottom - board - height,
                min(x + book, x1 - board),
                bottom - board,
                _color(rng),
            )
            x += book + 1


def _picture(
    rng: np.random.Generator, image: Image, x0: int, y0: int, x1: int, y1: int, scale: float
) -> None:
    """A framed picture: smooth colour blobs inside a frame."""
    h, w = image.shape[:2]
    x0, x1, y0, y1 = max(0, x0), min(w, x1), max(0, y0), min(h, y1)
    if x1 - x0 < 8 or y1 - y0 < 8:
        return
    a, b = _color(rng), _color(rng)
    mix = np.clip(0.5 + 0.5 * _noise(rng, y1 - y0, x1 - x0, 40 * scale), 0.0, 1.0)[..., None]
    image[y0:y1, x0:x1] = a + mix * (b - a)
    _outline(image, x0, y0, x1, y1, _color(rng, "wood"), round(rng.uniform(4, 12) * scale))


def _door(
    rng: np.random.Generator, image: Image, x0: int, y0: int, x1: int, y1: int, scale: float
) -> None:
    """A door: a slab with two inset panels, a frame and a knob."""
    color = _color(rng, "wood") if rng.random() < 0.5 else _color(rng, "wall")
    _box(image, x0, y0, x1, y1, color)
    inset = round(0.15 * (x1 - x0))
    mid = (y0 + y1) // 2
    for top, bottom in ((y0 + inset, mid - inset // 2), (mid + inset // 2, y1 - inset)):
        _outline(image, x0 + inset, top, x1 - inset, bottom, color * 0.8, round(3 * scale))
    _outline(image, x0, y0, x1, y1, color * 0.7, round(rng.uniform(5, 12) * scale))
    knob = (x1 - inset // 2, mid)
    cv2.circle(image, knob, max(2, round(6 * scale)), (0.8, 0.75, 0.5), -1)


def _furniture(rng: np.random.Generator, image: Image, x0: int, y0: int, x1: int, y1: int) -> None:
    """A box in oblique view (a sofa, a cabinet, a table): a front face and a lighter top."""
    color = _color(rng)
    depth = int(0.25 * (y1 - y0))
    shift = int(rng.uniform(-0.2, 0.2) * (x1 - x0))
    top = np.array([[x0, y0 + depth], [x1, y0 + depth], [x1 + shift, y0], [x0 + shift, y0]])
    cv2.fillPoly(image, [top.astype(np.int32)], tuple(float(c) for c in color * 1.15))
    _box(image, x0, y0 + depth, x1, y1, color * 0.85)
    if rng.random() < 0.5:  # legs or cushions: a darker band
        _box(image, x0, y1 - depth // 2, x1, y1, color * 0.5)


def _plant(rng: np.random.Generator, image: Image, x: int, base: int, size: int) -> None:
    """A potted plant: a pot and a cluster of green leaf discs."""
    pot = max(4, size // 3)
    _box(image, x - pot // 2, base - pot, x + pot // 2, base, _color(rng))
    for _ in range(int(rng.integers(8, 20))):
        cx = int(x + rng.normal(0, size / 4))
        cy = int(base - pot - abs(rng.normal(size / 2, size / 4)))
        color = tuple(float(c) for c in _color(rng, "green"))
        cv2.circle(image, (cx, cy), max(2, int(rng.uniform(0.08, 0.18) * size)), color, -1)


def _light_blobs(rng: np.random.Generator, image: Image, count: int, scale: float) -> None:
    """Add ``count`` soft warm or cool light glows (blurred ellipses)."""
    h, w = image.shape[:2]
    small = max(8, min(h, w) // 8)
    glow = np.zeros((small * h // min(h, w), small * w // min(h, w)), dtype=np.float32)
    for _ in range(count):
        centre = (int(rng.uniform(0, glow.shape[1])), int(rng.uniform(0, glow.shape[0])))
        axes = (int(rng.uniform(0.03, 0.15) * small) + 1, int(rng.uniform(0.03, 0.15) * small) + 1)
        cv2.ellipse(glow, centre, axes, rng.uniform(0, 180), 0, 360, rng.uniform(0.3, 0.9), -1)
    glow = cv2.GaussianBlur(glow, (0, 0), small * 0.04)
    glow = cv2.resize(glow, (w, h), interpolation=cv2.INTER_LINEAR)
    tint = _hsv(rng.uniform(0.05, 0.6), rng.uniform(0.0, 0.4), 1.0)
    image += glow[..., None] * tint


def _room(rng: np.random.Generator, image: Image, scale: float) -> None:
    """A wall above a perspective floor with furniture, openings and decoration."""
    h, w = image.shape[:2]
    horizon = int(h * rng.uniform(0.5, 0.85))
    wall = _color(rng, "wall")
    image[:horizon] = wall
    _shade(image[:horizon], 0.04 * _texture(rng, horizon, w, scale))
    if rng.random() < 0.25:  # wallpaper stripes
        period = rng.uniform(20, 80) * scale
        stripes = np.sin(np.arange(w, dtype=np.float32) * 2 * np.pi / period) > rng.uniform(
            -0.5, 0.5
        )
        image[:horizon, stripes] *= rng.uniform(0.8, 0.95)
    if rng.random() < 0.2:  # wainscot: a darker or lighter lower wall with a rail
        rail = int(horizon - rng.uniform(0.15, 0.3) * h)
        image[rail:horizon] *= rng.choice([0.75, 1.15])
        _box(image, 0, rail, w, rail + round(6 * scale), wall * 0.7)
    _floor(rng, image, horizon, scale)
    _box(
        image,
        0,
        horizon - round(rng.uniform(4, 16) * scale),
        w,
        horizon,
        _color(rng, "wall") * rng.choice([0.5, 1.0]),
    )
    for _ in range(int(rng.integers(1, 6))):
        kind = rng.choice(["window", "door", "shelf", "picture", "furniture", "plant"])
        width = int(w * rng.uniform(0.1, 0.35))
        x0 = int(rng.uniform(-0.1, 0.95) * w)
        if kind == "window":
            y0 = int(rng.uniform(0.05, 0.3) * horizon)
            _window(
                rng, image, x0, y0, x0 + width, y0 + int(rng.uniform(0.35, 0.6) * horizon), scale
            )
        elif kind == "door":
            _door(
                rng,
                image,
                x0,
                int(horizon * rng.uniform(0.05, 0.3)),
                x0 + int(width * 0.6),
                horizon,
                scale,
            )
        elif kind == "shelf":
            top = int(horizon * rng.uniform(0.0, 0.5))
            _shelf(rng, image, x0, top, x0 + width, horizon + int(0.02 * h), scale)
        elif kind == "picture":
            y0 = int(rng.uniform(0.1, 0.5) * horizon)
            _picture(
                rng, image, x0, y0, x0 + width // 2, y0 + int(width * rng.uniform(0.3, 0.8)), scale
            )
        elif kind == "furniture":
            base = horizon + int(rng.uniform(0.0, 0.8) * (h - horizon))
            _furniture(rng, image, x0, base - int(width * rng.uniform(0.3, 0.7)), x0 + width, base)
        else:
            _plant(rng, image, x0, horizon + int(rng.uniform(0.0, 0.5) * (h - horizon)), width)
    _light_blobs(rng, image, int(rng.integers(0, 4)), scale)


def _wall(rng: np.random.Generator, image: Image, scale: float) -> None:
    """A wall filling the frame: bricks, tiles, wood panels, concrete or wallpaper."""
    h, w = image.shape[:2]
    kind = rng.choice(["bricks", "tiles", "panels", "concrete", "wallpaper"])
    base = _color(rng, "wood" if kind == "panels" else "wall")
    if kind == "bricks":
        base = _hsv(rng.uniform(0.0, 0.08), rng.uniform(0.3, 0.7), rng.uniform(0.35, 0.75))
    yy = np.arange(h, dtype=np.float32)[:, None] / scale  # [h, 1], pixels at 1024
    xx = np.arange(w, dtype=np.float32)[None, :] / scale  # [1, w]
    pattern = 0.08 * _texture(rng, h, w, scale)
    if kind in ("bricks", "tiles"):
        height = rng.uniform(25, 45) if kind == "bricks" else rng.uniform(40, 110)
        length = 2.5 * height if kind == "bricks" else height
        row = np.floor(yy / height)
        shifted = xx + (0.5 * length * (row % 2) if kind == "bricks" else 0.0)
        column = np.floor(shifted / length)
        table = rng.uniform(-0.12, 0.12, size=(64, 64)).astype(np.float32)
        pattern += table[row.astype(np.int64) % 64, column.astype(np.int64) % 64]
        joint = min(height, length) * 0.08
        mortar = (np.mod(yy, height) < joint) | (np.mod(shifted, length) < joint)
        pattern[mortar] = rng.uniform(0.1, 0.4) if kind == "bricks" else -0.3
    elif kind == "panels":
        board = rng.uniform(60, 160)
        pattern += rng.uniform(-0.1, 0.1, size=256).astype(np.float32)[
            (xx // board).astype(np.int64) % 256
        ]
        pattern -= 0.3 * (np.mod(xx, board) < 3.0)
        pattern += 0.05 * np.sin(xx * 0.3 + 4.0 * _noise(rng, h, w, 80 * scale))
    elif kind == "wallpaper":
        period = rng.uniform(30, 90)
        if rng.random() < 0.5:
            pattern += 0.12 * (np.sin(2 * np.pi * xx / period) > 0)
        else:
            u, v = np.mod(xx, period) - period / 2, np.mod(yy, period) - period / 2
            pattern += 0.15 * (np.hypot(u, v) < period * 0.2)
    else:
        pattern *= 2.0
    image[:] = base * (1.0 + pattern)[..., None]
    if rng.random() < 0.5:
        x0, y0 = int(rng.uniform(0, 0.7) * w), int(rng.uniform(0, 0.5) * h)
        if rng.random() < 0.5:
            _picture(rng, image, x0, y0, x0 + int(0.25 * w), y0 + int(0.2 * w), scale)
        else:
            _shelf(rng, image, x0, y0, x0 + int(0.35 * w), y0 + int(0.25 * h), scale)
    if rng.random() < 0.3:  # the floor's edge at the bottom
        _floor(rng, image, int(h * rng.uniform(0.8, 0.95)), scale)
    _light_blobs(rng, image, int(rng.integers(0, 3)), scale)


def _studio(rng: np.random.Generator, image: Image, scale: float) -> None:
    """A plain backdrop: one colour, lighter around a random centre, a darker floor sweep."""
    h, w = image.shape[:2]
    if rng.random() < 0.5:
        color = _hsv(0.0, 0.0, rng.uniform(0.15, 0.95))
    else:
        color = _hsv(rng.random(), rng.uniform(0.15, 0.7), rng.uniform(0.3, 0.9))
    yy, xx = np.ogrid[0:h, 0:w]
    cx, cy = rng.uniform(0.3, 0.7) * w, rng.uniform(0.2, 0.6) * h
    radial = np.sqrt(((xx - cx) / w) ** 2 + ((yy - cy) / h) ** 2).astype(np.float32)
    light = 1.15 - rng.uniform(0.3, 0.8) * radial
    sweep = np.clip((yy / h - rng.uniform(0.6, 0.85)) * 3.0, 0.0, 1.0).astype(np.float32)
    light = light - rng.uniform(0.05, 0.25) * sweep
    image[:] = color * light[..., None]
    _shade(image, 0.02 * _noise(rng, h, w, 100 * scale))


def _outdoor(rng: np.random.Generator, image: Image, scale: float) -> None:
    """Sky with clouds above hills, trees or buildings on grass, pavement or sand."""
    h, w = image.shape[:2]
    horizon = int(h * rng.uniform(0.35, 0.7))
    top = _hsv(rng.uniform(0.55, 0.64), rng.uniform(0.3, 0.8), rng.uniform(0.55, 0.95))
    low = _hsv(rng.uniform(0.08, 0.6), rng.uniform(0.0, 0.25), rng.uniform(0.8, 1.0))
    ramp = np.linspace(0.0, 1.0, horizon, dtype=np.float32)[:, None, None] ** 0.7
    image[:horizon] = top + ramp * (low - top)
    if rng.random() < 0.7:
        cloud = _noise(rng, horizon, w, 120 * scale) + 0.5 * _noise(rng, horizon, w, 30 * scale)
        cover = np.clip(cloud - rng.uniform(0.0, 1.2), 0.0, 1.0)[..., None]
        image[:horizon] += cover * (rng.uniform(0.85, 1.0) - image[:horizon])
    if rng.random() < 0.6:  # hills
        ridge = (
            horizon - (0.5 + 0.5 * _noise(rng, 1, w, 300 * scale)[0]) * rng.uniform(0.03, 0.2) * h
        )
        hill = np.arange(h, dtype=np.float32)[:, None] > ridge[None, :]
        image[hill] = _color(rng, "green") * rng.uniform(0.6, 1.2) + 0.1 * low
    if rng.random() < 0.5:  # buildings
        x = int(rng.uniform(-0.1, 0.3) * w)
        while x < w:
            width = int(rng.uniform(0.08, 0.3) * w)
            top_y = int(horizon - rng.uniform(0.1, 0.5) * h)
            color = _color(rng, "stone")
            _box(image, x, top_y, x + width, horizon, color)
            pane = max(3, round(rng.uniform(12, 30) * scale))
            for wy in range(top_y + pane, horizon - pane, 2 * pane):
                for wx in range(x + pane, x + width - pane, 2 * pane):
                    _box(image, wx, wy, wx + pane, wy + pane, color * rng.uniform(0.3, 0.7))
            x += width + int(rng.uniform(0.0, 0.1) * w)
    ground = _color(rng, rng.choice(["green", "stone", "wood"]))
    if rng.random() < 0.5:
        _floor(rng, image, horizon, scale)
        image[horizon:] *= ground / max(float(ground.mean()), 0.05) * 0.6
    else:
        rows = h - horizon
        image[horizon:] = ground * (1.0 + 0.15 * _texture(rng, rows, w, scale))[..., None]
    for _ in range(int(rng.integers(0, 7))):  # trees: trunk and a canopy of discs
        x, size = int(rng.uniform(0, w)), int(rng.uniform(0.05, 0.25) * h)
        base = int(horizon + rng.uniform(0.0, 0.3) * (h - horizon))
        trunk = max(2, size // 8)
        _box(image, x - trunk // 2, base - size, x + trunk // 2, base, _color(rng, "wood") * 0.5)
        for _ in range(12):
            cx, cy = int(x + rng.normal(0, size / 3)), int(base - size - rng.normal(0, size / 3))
            color = tuple(float(c) for c in _color(rng, "green"))
            cv2.circle(image, (cx, cy), max(2, int(rng.uniform(0.2, 0.4) * size)), color, -1)


def _finish(rng: np.random.Generator, image: Image, scale: float) -> np.ndarray:
    """Photographic look: a light gradient, colour cast, vignetting, blur and sensor noise
    (a random :data:`NOISE_TILE` pixel tile of it repeated); returns ``[H, W, 3]`` uint8 BGR."""
    h, w = image.shape[:2]
    ys = (np.arange(h, dtype=np.float32) / h - 0.5)[:, None]
    xs = (np.arange(w, dtype=np.float32) / w - 0.5)[None, :]
    angle = rng.uniform(0, 2 * np.pi)
    gain = rng.uniform(0.0, 0.3) * (xs * np.cos(angle) + ys * np.sin(angle))
    gain -= rng.uniform(0.0, 1.0) * (xs**2 + ys**2)  # vignetting
    gain += 1.0
    image *= gain[..., None]
    image *= rng.uniform(0.9, 1.1, size=3).astype(np.float32) * rng.uniform(0.7, 1.15)
    image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.3, 3.0) * scale)
    tile = rng.uniform(0.003, 0.02) * rng.standard_normal((NOISE_TILE, NOISE_TILE, 3))
    reps = (-(-h // NOISE_TILE), -(-w // NOISE_TILE), 1)
    image += np.tile(tile.astype(np.float32), reps)[:h, :w]
    np.clip(image, 0.0, 1.0, out=image)
    image *= 255.0
    image += 0.5
    return cv2.cvtColor(image.astype(np.uint8), cv2.COLOR_RGB2BGR)


def make_background(seed: int, index: int, size: int) -> tuple[np.ndarray, int]:
    """Paint background ``index`` of the set ``seed``.

    Args:
        seed: the set's seed.
        index: the image's index in the set.
        size: long side in pixels (at least :data:`MIN_SIZE`); the short side is
            :data:`SHORT_SIDE` of it.
    Returns:
        ``[H, W, 3]`` uint8 BGR image (landscape, or portrait for :data:`PORTRAIT_SHARE` of the
        images) and the JPEG quality to store it with (:data:`JPEG_QUALITY`).
    Raises:
        ValueError: ``size`` is below :data:`MIN_SIZE`.
    """
    if size < MIN_SIZE:
        raise ValueError(f"background size {size} is below {MIN_SIZE} pixels")
    rng = np.random.default_rng([seed, index])
    long, short = size, round(size * SHORT_SIDE)
    h, w = (long, short) if rng.random() < PORTRAIT_SHARE else (short, long)
    scale = size / REFERENCE_SIZE
    image = np.zeros((h, w, 3), dtype=np.float32)
    scene = SCENES[rng.choice(len(SCENES), p=_SCENE_ODDS)]
    {"room": _room, "wall": _wall, "studio": _studio, "outdoor": _outdoor}[scene](rng, image, scale)
    quality = int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1))
    return _finish(rng, image, scale), quality


def encode_background(image: np.ndarray, quality: int) -> bytes:
    """JPEG bytes of a ``[H, W, 3]`` uint8 BGR image at ``quality`` (0-100).

    Raises:
        OSError: OpenCV could not encode it.
    """
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise OSError(f"OpenCV could not encode a {image.dtype} image of {image.shape} as JPEG")
    return buf.tobytes()


def background_path(out: Path, index: int) -> Path:
    """``<out>/bg_<index:05d>.jpg``."""
    return out / f"bg_{index:05d}.jpg"


def write_backgrounds(
    out: Path,
    num: int,
    size: int,
    seed: int,
    failures: list[tuple[str, str]],
    *,
    debug: bool = False,
    progress: bool = True,
) -> list[Path]:
    """Write backgrounds ``0 .. num-1`` of the set ``seed`` as JPEG files into ``out``.

    Each file (:func:`background_path`) is written atomically; files already there are kept, so
    an interrupted run resumes. A failed image is one line in ``failures`` (:func:`run_item`)
    and the run goes on.

    Args:
        out: output folder (created).
        num: number of images.
        size: long side in pixels (:func:`make_background`).
        seed: the set's seed.
        failures: ``(file, line)`` of each failed image are appended here.
        debug: log the traceback of a failed image.
        progress: show a progress bar.
    Returns:
        The files written by this call.
    Raises:
        OSError: ``out`` cannot be created or written (before any image).
        ValueError: ``size`` is below :data:`MIN_SIZE` (before any image).
    """
    if size < MIN_SIZE:
        raise ValueError(f"background size {size} is below {MIN_SIZE} pixels")
    check_writable_dir(out)
    written = []
    for index in tqdm(range(num), desc="backgrounds", disable=not progress):
        path = background_path(out, index)
        if path.is_file():
            continue

        def work(path: Path = path, index: int = index) -> Path:
            image, quality = make_background(seed, index, size)
            atomic_write_bytes(path, encode_background(image, quality))
            return path

        if run_item(path, work, failures, debug=debug) is not None:
            written.append(path)
    return written
