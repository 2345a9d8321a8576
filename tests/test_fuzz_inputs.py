"""Property-based fuzzing of every inference-side reader (issue 18, item 3).

Each reader either returns valid values or raises a :class:`~utils.errors.BadInputError` whose
first line names the file it read; never another exception type (no OverflowError, TypeError,
IndexError, MemoryError, cv2.error, UnpicklingError ...). "Valid" is stated per reader:

* OpenPose JSON (:func:`inference.io.load_keypoints`): any JSON tree, numbers of any size and
  type, truncated and deeply nested text -> ``(31, 3)`` float64, finite, confidence >= 0;
* keypoint ``.npy``: every dtype (complex, object, bool, strings, records, dates), any shape,
  pickles, ``.npz``, lying headers, truncation -> ``(31, 3)`` float64 finite; the Predictor's
  own keypoint argument (:func:`inference.predictor.prepare_input`) alike;
* images (:func:`inference.io.decode_image`): random bytes; PNGs of every colour type and bit
  depth, with and without ``tRNS``, whole, truncated or with a flipped byte; JPEG, GIF, WebP,
  BMP, TIFF, JPEG 2000 from OpenCV -> [H, W, 3|4] uint8 of an accepted size; a whole PNG decodes
  to exactly the values its samples mean (our own reference decoder, below); EXIF orientation as
  ``cv2.imread`` applies it;
* masks (:func:`inference.background.read_mask`, :func:`~inference.background.find_mask_file`)
  -> [H, W] bool with a foreground pixel; a mask file path that exists and is not the image;
* point-cloud PLYs (:func:`meshing.io.read_point_cloud`): random headers, huge counts, truncated
  bodies, NaN / inf -> N >= 1 finite points, colours in [0, 1], finite normals;
* meshes (:func:`evaluation.geometry.load_mesh`): OBJ / PLY / STL / OFF, garbage and mixed lines
  -> [V, 3] float64 and [F, 3] int64 in range, used vertices finite, area finite and > 0;
* checkpoints (:func:`models.checkpoint.load_checkpoint`,
  :func:`inference.predictor.load_phase2_model`): random bytes, foreign pickles and zip files,
  truncated and bit-flipped real checkpoints, state dicts with wrong keys, shapes, kinds, NaN,
  ``args`` of any JSON -> a model whose weights are the file's, all finite.

The example budget is ``FUZZ_EXAMPLES`` per test (default 40; the Predictor-building checkpoint
test a quarter of it), derandomised so CI is reproducible; ``FUZZ_EXAMPLES=5000 pytest
tests/test_fuzz_inputs.py`` is the long run.
"""

from __future__ import annotations

import io
import json
import pickle
import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np
import pytest
import torch
from conftest import fuzz_settings
from hypothesis import assume, event, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from test_inference import syn_item

from evaluation.geometry import load_mesh
from inference.background import find_mask_file, read_mask
from inference.io import MAX_ASPECT, MIN_LONG_SIDE, decode_image, load_keypoints
from inference.predictor import load_phase2_model, prepare_input
from meshing.io import read_point_cloud
from models import Model2K2K, build_model
from models.checkpoint import load_checkpoint
from utils.errors import BadInputError
from utils.keypoints import openpose_to_keypoints31

T = TypeVar("T")

FUZZ = fuzz_settings(40)
FUZZ_SLOW = settings(FUZZ, max_examples=max(5, FUZZ.max_examples // 4))
"""Tests that build a phase-2 model per example (0.2 s each)."""

SPECIALS = [float("nan"), float("inf"), float("-inf"), 1e308, -1e308, 1e-320, 0.0, -0.0]
HUGE_COUNTS = [0, 1, 2, 2**31, 2**32 + 3, 10**12, 10**30, -1]
RES = 256
"""Working resolution of the Predictor-side checks (the tests' tiny model)."""


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz_inputs")


def outcome(path: Path, read: Callable[[], T]) -> T | None:
    """``read()``'s value, or None when it raised a BadInputError naming ``path`` in its first
    line; any other exception propagates (and fails the test)."""
    try:
        value = read()
    except BadInputError as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        assert path.name in first, f"error does not name {path.name}: {first!r}"
        event("refused")
        return None
    event("valid")
    return value


# ------------------------------------------------------------------------------------------------
# keypoints: OpenPose JSON and .npy
# ------------------------------------------------------------------------------------------------

NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-3000, max_value=3000),
    st.integers(min_value=-(10**1000), max_value=10**1000),  # the user's 400-digit integer
    st.sampled_from([*SPECIALS, 10**400, -(10**400), True, False, None, "1.5", []]),
)
JSON_TREES = st.recursive(
    st.one_of(st.none(), st.booleans(), NUMBERS, st.text(max_size=8)),
    lambda children: st.one_of(
        st.lists(children, max_size=6), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=30,
)


def number_lists(draw: st.DrawFn, size: int) -> list:
    """``size`` plausible pixel values with up to two entries replaced by any JSON value."""
    values: list = draw(st.lists(st.floats(0, 500), min_size=size, max_size=size))
    for _ in range(draw(st.integers(0, 2))):
        if values:
            values[draw(st.integers(0, size - 1))] = draw(NUMBERS)
    return values


@st.composite
def openpose_docs(draw: st.DrawFn) -> object:
    """An OpenPose document with arbitrary numbers (often the right lengths), or any JSON tree."""
    if draw(st.integers(0, 3)) == 0:
        return draw(JSON_TREES)
    person: dict[str, object] = {"pose_keypoints_2d": number_lists(draw, 75)}
    person["pose_keypoints_2d"] = person["pose_keypoints_2d"][
        : draw(st.sampled_from([75, 75, 74, 0]))
    ]
    for key in ("hand_left_keypoints_2d", "hand_right_keypoints_2d"):
        choice = draw(st.sampled_from(["none", "empty", "full", "tree"]))
        if choice == "empty":
            person[key] = []
        elif choice == "full":
            person[key] = number_lists(draw, 63)
        elif choice == "tree":
            person[key] = draw(JSON_TREES)
    others = draw(st.lists(JSON_TREES, max_size=2))
    people = draw(st.sampled_from([[person, *others], [], others]))
    return {"version": 1.3, "people": people}


def check_keypoints(keypoints: np.ndarray, openpose: bool = False) -> None:
    """Valid keypoints: (31, 3) float64, finite; from OpenPose JSON, missing rows are (0, 0, 0),
    so every confidence is >= 0 (a ``.npy`` may mark a missing row by any confidence <= 0)."""
    assert keypoints.shape == (31, 3) and keypoints.dtype == np.float64
    assert np.all(np.isfinite(keypoints))
    if openpose:
        missing = keypoints[:, 2] <= 0
        assert np.all(keypoints[:, 2] >= 0) and np.all(keypoints[missing] == 0)


@FUZZ
@given(
    doc=openpose_docs(),
    cut=st.one_of(st.none(), st.integers(0, 2000)),
    depth=st.integers(0, 3),
    long_int=st.booleans(),
)
def test_openpose_json_any_tree(
    folder: Path, doc: object, cut: int | None, depth: int, long_int: bool
) -> None:
    text = json.dumps(doc)  # NaN / Infinity as Python writes them, integers of any length
    if long_int:  # more digits than Python converts (ValueError inside the JSON parser)
        text = text.replace("1.3", "1" * 5000, 1)
    if cut is not None:
        text = text[:cut]
    if depth:  # deep nesting: a RecursionError inside the JSON parser
        text = "[" * 10**depth * 10 + text + "]" * 10**depth * 10
    path = folder / "fuzz_keypoints.json"
    path.write_text(text, encoding="utf-8")
    keypoints = outcome(path, lambda: load_keypoints(path))
    if keypoints is not None:
        check_keypoints(keypoints, openpose=True)


def test_openpose_json_user_cases(tmp_path: Path) -> None:
    """The issue's 400-digit integer, a float beyond the float range, a byte-order mark."""
    data = syn_item()[1]
    for first, error in ((10**400, "too large for a float"), (1e400, "non-finite")):
        data["people"][0]["pose_keypoints_2d"][0] = first
        path = tmp_path / "huge_keypoints.json"
        path.write_text(json.dumps(data).replace("Infinity", "1e400"))
        with pytest.raises(BadInputError, match=error) as info:
            load_keypoints(path)
        assert str(info.value).startswith(str(path))
    data["people"][0]["pose_keypoints_2d"][0] = 100.0
    path.write_text("\ufeff" + json.dumps(data), encoding="utf-8")
    check_keypoints(load_keypoints(path))


NPY_DTYPES = st.one_of(
    hnp.integer_dtypes(),
    hnp.unsigned_integer_dtypes(),
    hnp.floating_dtypes(sizes=(16, 32, 64)),
    hnp.complex_number_dtypes(),
    hnp.boolean_dtypes(),
    hnp.unicode_string_dtypes(max_len=4),
    hnp.byte_string_dtypes(max_len=4),
    hnp.datetime64_dtypes(),
    hnp.timedelta64_dtypes(),
    hnp.array_dtypes(max_size=3),  # structured records
    st.just(np.dtype(np.longdouble)),
)
NPY_SHAPES = st.one_of(
    st.sampled_from([(31, 3), (3, 31), (31, 3), (31, 2), (93,)]),
    hnp.array_shapes(max_dims=3, max_side=40),
)


@st.composite
def npy_files(draw: st.DrawFn) -> bytes:
    """Bytes of a ``.npy`` (any dtype and shape, object arrays as pickles), an ``.npz``, a plain
    pickle, a header that lies about the shape, or a truncated file."""
    kind = draw(st.sampled_from(["array", "array", "array", "object", "npz", "pickle", "lie"]))
    buf = io.BytesIO()
    if kind == "object":
        cells = draw(st.lists(st.one_of(NUMBERS, st.text(max_size=3)), min_size=93, max_size=93))
        np.save(buf, np.array(cells, dtype=object).reshape(31, 3), allow_pickle=True)
    elif kind == "pickle":
        buf.write(pickle.dumps(draw(JSON_TREES)))
    else:
        array = draw(
            hnp.arrays(NPY_DTYPES, NPY_SHAPES, elements={"allow_nan": True, "allow_infinity": True})
            if draw(st.booleans())
            else hnp.arrays(NPY_DTYPES, NPY_SHAPES)
        )
        if kind == "npz":
            np.savez(buf, keypoints=array)
        else:
            np.save(buf, array)
    data = buf.getvalue()
    if kind == "lie":  # the header claims 10^12 rows: no reader may allocate them
        data = data.replace(b"'shape': (", b"'shape': (1000000000000, ", 1)
    return mutate(draw, data)


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


@FUZZ
@given(data=npy_files())
@example(npy_bytes(np.zeros((31, 3))).replace(b"}", b" ", 1))  # NumPy's parser: TokenError
def test_keypoint_npy_any_array(folder: Path, data: bytes) -> None:
    path = folder / "fuzz_keypoints.npy"
    path.write_bytes(data)
    keypoints = outcome(path, lambda: load_keypoints(path))
    if keypoints is not None:
        check_keypoints(keypoints)


SYN_KEYPOINTS = openpose_to_keypoints31(syn_item()[1])


@FUZZ
@given(
    array=st.one_of(
        hnp.arrays(NPY_DTYPES, st.sampled_from([(31, 3), (31, 3), (3, 31), (31,)])),
        NPY_DTYPES.map(lambda dtype: SYN_KEYPOINTS.astype(dtype)),  # the person, any type
    )
)
def test_predictor_keypoint_argument(folder: Path, array: np.ndarray) -> None:
    """The Predictor's keypoints (from any caller) of any dtype: valid, or one KeypointError; a
    complex or boolean array is never taken for numbers."""
    bgra = syn_item()[0]
    path = folder / "arg.png"
    prep = outcome(path, lambda: prepare_input(bgra, array, RES, source=str(path)))
    if prep is not None:
        assert array.dtype.kind in "iuf"
        check_keypoints(prep.keypoints)
        assert prep.theta.shape == (12, 2, 3) and np.all(np.isfinite(prep.theta))


def test_keypoint_npy_user_cases(tmp_path: Path) -> None:
    """The issue's complex keypoints, and booleans, are refused naming the file."""
    from test_bad_inputs import _syn_npy

    good = _syn_npy("ok")
    for array, error in ((good + 1j, "real numbers"), (good > 0, "real numbers")):
        path = tmp_path / "odd_keypoints.npy"
        np.save(path, array)
        with pytest.raises(BadInputError, match=error) as info:
            load_keypoints(path)
        assert str(info.value).startswith(str(path))
    np.save(path, good.astype(np.float32))
    check_keypoints(load_keypoints(path))


# ------------------------------------------------------------------------------------------------
# images
# ------------------------------------------------------------------------------------------------

PNG_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
"""Bit depths the PNG standard allows per colour type (grey, RGB, palette, grey+alpha, RGBA)."""
PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def png_chunk(kind: bytes, content: bytes) -> bytes:
    return (
        struct.pack(">I", len(content))
        + kind
        + content
        + struct.pack(">I", zlib.crc32(kind + content))
    )


def encode_png(
    samples: np.ndarray,
    color_type: int,
    depth: int,
    palette: bytes | None = None,
    trns: bytes | None = None,
    exif: bytes | None = None,
) -> bytes:
    """A PNG written by hand (any colour type and bit depth; OpenCV writes few of them).

    Args:
        samples: [H, W, C] integer samples at ``depth`` bits (palette: indices).
    """
    h, w, c = samples.shape
    rows = []
    for row in samples.reshape(h, w * c).astype(np.int64):
        if depth == 16:
            raw = row.astype(">u2").tobytes()
        elif depth == 8:
            raw = row.astype(np.uint8).tobytes()
        else:  # pack 8 / depth samples per byte, most significant first
            per = 8 // depth
            padded = np.concatenate([row, np.zeros(-len(row) % per, np.int64)]).reshape(-1, per)
            raw = (padded << (depth * np.arange(per - 1, -1, -1))).sum(axis=1).astype(np.uint8)
            raw = raw.tobytes()
        rows.append(b"\0" + raw)  # filter type 0
    header = struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header)
    for kind, content in ((b"PLTE", palette), (b"tRNS", trns), (b"eXIf", exif)):
        if content is not None:
            data += png_chunk(kind, content)
    return data + png_chunk(b"IDAT", zlib.compress(b"".join(rows))) + png_chunk(b"IEND", b"")


@st.composite
def png_images(draw: st.DrawFn) -> tuple[bytes, np.ndarray]:
    """A PNG of any colour type and bit depth (tRNS in a third of the cases where allowed) and
    the RGBA (or RGB) uint8 image it stands for, computed here from the samples."""
    color_type = draw(st.sampled_from(sorted(PNG_DEPTHS)))
    depth = draw(st.sampled_from(PNG_DEPTHS[color_type]))
    side = st.one_of(st.integers(32, 48), st.integers(1, 48))  # mostly an accepted size
    h, w = draw(side), draw(side)
    top = (1 << depth) - 1
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    samples = rng.integers(0, top + 1, (h, w, PNG_CHANNELS[color_type]))
    to8 = (lambda v: np.rint(v / 257.0)) if depth == 16 else (lambda v: v * (255 // top))
    palette = trns = None
    with_trns = draw(st.booleans())
    if color_type == 3:
        entries = draw(st.integers(1, top + 1))
        colors = rng.integers(0, 256, (entries, 3))
        palette = colors.astype(np.uint8).tobytes()
        samples %= entries
        rgb = colors[samples[:, :, 0]]
        alpha = np.full((h, w), 255)
        if with_trns:
            table = rng.integers(0, 256, draw(st.integers(1, entries)))
            trns = table.astype(np.uint8).tobytes()
            padded = np.concatenate([table, np.full(256, 255)])
            alpha = padded[samples[:, :, 0]]
        expected = np.dstack((rgb, alpha)) if with_trns else rgb
    else:
        grey_or_rgb = samples[:, :, : 1 if color_type in (0, 4) else 3]
        rgb = np.repeat(grey_or_rgb, 3, axis=2) if grey_or_rgb.shape[2] == 1 else grey_or_rgb
        alpha = samples[:, :, -1] if color_type in (4, 6) else None
        if with_trns and color_type in (0, 2):
            key = samples[rng.integers(h), rng.integers(w), : grey_or_rgb.shape[2]]  # a used value
            trns = struct.pack(f">{len(key)}H", *key.tolist())
            alpha = np.where(np.all(grey_or_rgb == key, axis=2), 0, top)
        expected = to8(rgb) if alpha is None else np.dstack((to8(rgb), to8(alpha)))
    return encode_png(samples, color_type, depth, palette, trns), expected.astype(np.uint8)


def check_image(image: np.ndarray) -> None:
    """Valid image: [H, W, 3|4] uint8, contiguous, of an accepted size."""
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] in (3, 4)
    assert image.flags.c_contiguous
    long_side, short_side = max(image.shape[:2]), min(image.shape[:2])
    assert MIN_LONG_SIDE <= long_side <= MAX_ASPECT * short_side


def mutate(draw: st.DrawFn, data: bytes) -> bytes:
    """The bytes whole, truncated, or with one byte changed."""
    how = draw(st.sampled_from(["whole", "whole", "truncate", "flip"]))
    if how == "truncate":
        return data[: draw(st.integers(0, len(data)))]
    if how == "flip" and data:
        at = draw(st.integers(0, len(data) - 1))
        return data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1 :]
    return data


def palette_png() -> tuple[bytes, np.ndarray]:
    """A 4-bit palette PNG with tRNS for 3 of its 5 colours and the RGBA it stands for."""
    rng = np.random.default_rng(5)
    index = rng.integers(0, 5, (40, 33))
    colors = rng.integers(0, 256, (5, 3))
    table = np.array([0, 128, 255])
    alpha = np.concatenate([table, [255, 255]])[index]
    data = encode_png(
        index[:, :, None], 3, 4, colors.astype(np.uint8).tobytes(), bytes(table.tolist())
    )
    return data, np.dstack((colors[index], alpha)).astype(np.uint8)


@FUZZ
@given(png=png_images())
@example(png=palette_png())
def test_png_every_colour_type_decodes_to_its_values(png: tuple[bytes, np.ndarray]) -> None:
    """A whole PNG gives exactly the image its samples mean: 16 bits scaled by 1/257, 1-4 bits
    stretched to 0..255, the palette looked up, ``tRNS`` turned into alpha (0 where a grey or
    RGB pixel equals its value, the palette entry's alpha, 255 beyond the table)."""
    data, expected = png
    h, w = expected.shape[:2]
    if max(h, w) < MIN_LONG_SIDE or max(h, w) > MAX_ASPECT * min(h, w):
        with pytest.raises(BadInputError, match="too small|aspect ratio"):
            decode_image(data, "x.png")
        return
    image = decode_image(data, "x.png")
    check_image(image)
    np.testing.assert_array_equal(image, expected)


@st.composite
def image_files(draw: st.DrawFn) -> bytes:
    """Random bytes, a PNG of any kind, or an image of another format OpenCV writes; whole,
    truncated or with a changed byte."""
    kind = draw(
        st.sampled_from(["random", "huge", "png", ".jpg", ".gif", ".webp", ".bmp", ".tiff", ".jp2"])
    )
    if kind == "random":
        return draw(st.binary(max_size=512))
    if kind == "huge":  # a header declaring more pixels than OpenCV decodes (cv2.error)
        side = draw(st.sampled_from([2**16, 2**17]))
        header = png_chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
        body = png_chunk(b"IDAT", zlib.compress(bytes(64))) + png_chunk(b"IEND", b"")
        return b"\x89PNG\r\n\x1a\n" + header + body
    if kind == "png":
        return mutate(draw, draw(png_images())[0])
    h, w = draw(st.integers(1, 64)), draw(st.integers(1, 64))
    channels = draw(st.sampled_from([1, 3, 4]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    image = rng.integers(0, 256, (h, w, channels), dtype=np.uint8)
    if kind == ".tiff" and draw(st.booleans()):  # 16-bit and float TIFFs
        image = image.astype(draw(st.sampled_from([np.uint16, np.float32])))
    ok, buf = cv2.imencode(kind, image)
    assume(ok)
    return mutate(draw, buf.tobytes())


@FUZZ
@given(data=image_files())
def test_image_any_bytes(folder: Path, data: bytes) -> None:
    path = folder / "fuzz_image.png"
    path.write_bytes(data)
    from inference.io import read_image

    image = outcome(path, lambda: read_image(path))
    if image is not None:
        check_image(image)


def exif_orientation(value: int) -> bytes:
    """Big-endian EXIF (TIFF) data with one IFD entry: Orientation = ``value``."""
    entry = struct.pack(">HHIHH", 0x0112, 3, 1, value, 0)
    return b"MM\0*" + struct.pack(">I", 8) + struct.pack(">H", 1) + entry + b"\0\0\0\0"


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt", ["png", "webp", "jpeg"])
def test_exif_orientation_as_imread(orientation: int, fmt: str) -> None:
    """The image is turned as ``cv2.imread`` turns it (what OpenPose and the authors saw), for
    PNG (``eXIf``), WebP and JPEG; alpha turns with it."""
    rng = np.random.default_rng(orientation)
    rgb = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
    exif = exif_orientation(orientation)
    if fmt == "png":
        alpha = rng.integers(1, 256, (40, 56, 1))
        data = encode_png(np.concatenate([rgb, alpha], axis=2), 6, 8, exif=exif)
    else:
        pil = pytest.importorskip("PIL.Image")
        buf = io.BytesIO()
        options = {"lossless": True} if fmt == "webp" else {"quality": 100}
        pil.fromarray(rgb).save(buf, format=fmt.upper(), exif=b"Exif\0\0" + exif, **options)
        data = buf.getvalue()
    seen = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    image = decode_image(data, f"x.{fmt}")
    np.testing.assert_array_equal(image[:, :, :3], seen[:, :, ::-1])
    assert image.shape[:2] == ((56, 40) if orientation >= 5 else (40, 56))
    if fmt == "png":  # the alpha turns as a grey PNG with the same eXIf does under cv2.imread
        grey = encode_png(alpha, 0, 8, exif=exif)
        seen_alpha = cv2.imdecode(np.frombuffer(grey, np.uint8), cv2.IMREAD_GRAYSCALE)
        np.testing.assert_array_equal(image[:, :, 3], seen_alpha)


# ------------------------------------------------------------------------------------------------
# masks
# ------------------------------------------------------------------------------------------------


@FUZZ
@given(data=image_files(), size=st.sampled_from([None, (1, 1), (40, 33), (64, 64)]))
def test_mask_any_file(folder: Path, data: bytes, size: tuple[int, int] | None) -> None:
    path = folder / "fuzz_mask.png"
    path.write_bytes(data)
    if size is None:  # the file's own size, so that decodable masks pass the size check
        try:
            decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        except cv2.error:
            decoded = None
        size = decoded.shape[:2] if decoded is not None else (10, 10)
    mask = outcome(path, lambda: read_mask(path, *size))
    if mask is not None:
        assert mask.dtype == bool and mask.shape == size and mask.any()


NAMES = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\0/"),
    min_size=1,
    max_size=12,
)


@FUZZ
@given(stem=NAMES, mask=st.booleans(), plain=st.booleans())
def test_find_mask_file_any_name(
    tmp_path_factory: pytest.TempPathFactory, stem: str, mask: bool, plain: bool
) -> None:
    """``find_mask_file`` returns None or an existing file named ``<stem>_mask.png`` /
    ``<stem>.png`` that is not the input image; odd stems (slashes, dots, spaces) never raise."""
    root = tmp_path_factory.mktemp("masks")
    image = root / "in" / f"{stem}.png"
    wanted = [root / f"{stem}_mask.png"] * mask + [root / f"{stem}.png"] * plain
    for target in [image, *wanted]:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(b"x")
        except OSError:
            pass  # the file system refuses the name (too long, ...): nothing to find
    found = find_mask_file(root, stem, image)
    existing = [p for p in wanted if p.is_file()]
    assert found == (existing[0] if existing else None)
    found = find_mask_file(image.parent, stem, image)  # masks beside the images: not the image
    assert found is None or found.resolve() != image.resolve()


# ------------------------------------------------------------------------------------------------
# point clouds and meshes
# ------------------------------------------------------------------------------------------------

PLY_PROPERTIES = ["x", "y", "z", "nx", "ny", "nz", "red", "green", "blue", "alpha", "x"]
PLY_TYPES = [
    "float",
    "double",
    "uchar",
    "char",
    "short",
    "ushort",
    "int",
    "uint",
    "float32",
    "int128",
]


@st.composite
def ply_files(draw: st.DrawFn) -> bytes:
    """A PLY with a random header (format, counts that lie, properties of any type, duplicates,
    other elements) and a body of random values (NaN, inf, huge), truncated or not."""
    if draw(st.integers(0, 5)) == 0:
        return draw(st.binary(max_size=300))
    fmt = draw(st.sampled_from(["ascii", "binary_little_endian", "binary_big_endian", "bogus"]))
    n = draw(st.integers(0, 20))
    declared = draw(st.one_of(st.just(n), st.sampled_from(HUGE_COUNTS)))
    names = draw(st.lists(st.sampled_from(PLY_PROPERTIES), min_size=0, max_size=8))
    if draw(st.booleans()):
        names = ["x", "y", "z", *[m for m in names if m not in "xyz"]]
    types = [draw(st.sampled_from(PLY_TYPES)) for _ in names]
    lines = ["ply", f"format {fmt} 1.0"]
    if draw(st.integers(0, 5)) == 0:
        lines.append("element face 1\nproperty list uchar int vertex_indices")
    lines.append(f"element vertex {declared}")
    lines += [f"property {t} {m}" for t, m in zip(types, names, strict=True)]
    lines.append("end_header")
    header = ("\n".join(lines) + "\n").encode()
    values = draw(
        st.lists(
            st.one_of(st.floats(-2, 2), st.sampled_from(SPECIALS), st.integers(-300, 300)),
            min_size=n * len(names),
            max_size=n * len(names),
        )
    )
    if fmt == "ascii":
        rows = [values[i * len(names) : (i + 1) * len(names)] for i in range(n)]
        body = "".join(" ".join(repr(v) for v in row) + "\n" for row in rows).encode()
    else:
        codes = {"float": "f4", "double": "f8", "uchar": "u1", "char": "i1", "short": "i2"}
        codes |= {"ushort": "u2", "int": "i4", "uint": "u4", "float32": "f4"}
        if not names or any(t not in codes for t in types) or len(set(names)) < len(names):
            body = draw(st.binary(max_size=200))
        else:
            order = ">" if fmt == "binary_big_endian" else "<"
            table = np.zeros(n, [(m, order + codes[t]) for t, m in zip(types, names, strict=True)])
            flat = (
                np.array(values, np.float64).reshape(n, len(names))
                if n
                else np.zeros((0, len(names)))
            )
            with np.errstate(invalid="ignore", over="ignore"):
                for k, m in enumerate(names):
                    table[m] = flat[:, k]
            body = table.tobytes()
    data = header + body
    return data[: draw(st.integers(len(header) - 1, len(data)))] if draw(st.booleans()) else data


PLY_HEADER = "ply\nformat ascii 1.0\nelement vertex 1\n{}end_header\n"


@FUZZ
@given(data=ply_files())
@example(
    PLY_HEADER.format("property float x\n" * 2 + "property float y\nproperty float z\n").encode()
    + b"1 2 3 4\n"
)
@example(
    PLY_HEADER.format(
        "".join(f"property float {n}\n" for n in ("x", "y", "z", "red", "green", "blue"))
    ).encode()
    + b"0 0 0 2.0 0.5 0.5\n"
)
@example(
    PLY_HEADER.format(
        "".join(f"property float {n}\n" for n in ("x", "y", "z", "nx", "ny", "nz"))
    ).encode()
    + b"0 0 0 nan 0 1\n"
)
@example(
    PLY_HEADER.format(
        "property float x\nproperty float y\nproperty float z\nproperty uchar red\n"
    ).encode()
    + b"0 0 0 300\n"
)
def test_point_cloud_any_ply(folder: Path, data: bytes) -> None:
    path = folder / "fuzz_cloud.ply"
    path.write_bytes(data)
    cloud = outcome(path, lambda: read_point_cloud(path))
    if cloud is None:
        return
    n = len(cloud.points)
    assert n >= 1 and cloud.points.shape == (n, 3) and cloud.points.dtype == np.float64
    assert np.isfinite(cloud.points).all()
    if cloud.colors is not None:
        assert cloud.colors.shape == (n, 3) and np.all((cloud.colors >= 0) & (cloud.colors <= 1))
    if cloud.normals is not None:
        assert cloud.normals.shape == (n, 3) and np.isfinite(cloud.normals).all()


MESH_NUMBERS = st.one_of(st.floats(-2, 2), st.sampled_from([*SPECIALS, 1e200, -1e200]))


@st.composite
def mesh_files(draw: st.DrawFn) -> tuple[str, bytes]:
    """(suffix, bytes): OBJ text of random vertices / faces / garbage lines, a trimesh export
    (PLY, STL, OFF) of a random mesh, truncated or with a changed byte, or random bytes."""
    suffix = draw(st.sampled_from([".obj", ".obj", ".ply", ".stl", ".off"]))
    if draw(st.integers(0, 5)) == 0:
        return suffix, draw(st.binary(max_size=300))
    nv = draw(st.integers(0, 12))
    clean = draw(st.booleans())  # finite vertices, 1-based faces in range: mostly valid meshes
    numbers = st.floats(-2, 2) if clean else MESH_NUMBERS
    vertices = draw(st.lists(st.tuples(numbers, numbers, numbers), min_size=nv, max_size=nv))
    index = st.integers(1, max(nv, 1)) if clean else st.integers(-nv - 2, nv + 2)
    faces = draw(st.lists(st.tuples(index, index, index), max_size=12))
    if suffix == ".obj":
        lines = [f"v {x!r} {y!r} {z!r}" for x, y, z in vertices]
        lines += [f"f {a} {b} {c}" for a, b, c in faces]
        lines += draw(
            st.lists(
                st.sampled_from(["vn 0 0 1", "f 1//1 2//2", "v 1", "o x", "#", "f"]), max_size=3
            )
        )
        data = "\n".join(draw(st.permutations(lines)) if draw(st.booleans()) else lines).encode()
    else:
        import trimesh

        good = [f for f in faces if all(0 <= i < nv for i in f)]
        if not good:
            return suffix, draw(st.binary(max_size=100))
        mesh = trimesh.Trimesh(np.array(vertices, np.float64), np.array(good), process=False)
        data = mesh.export(file_type=suffix[1:])
        data = data.encode() if isinstance(data, str) else data
    return suffix, mutate(draw, data)


@FUZZ
@given(mesh=mesh_files())
@example((".obj", b"v 0 0 0\nv 1e200 0 0\nv 0 1e200 0\nf 1 2 3\n"))  # the area overflows
def test_mesh_any_file(folder: Path, mesh: tuple[str, bytes]) -> None:
    suffix, data = mesh
    path = folder / f"fuzz_mesh{suffix}"
    path.write_bytes(data)
    result = outcome(path, lambda: load_mesh(path))
    if result is None:
        return
    vertices, faces = result
    assert vertices.ndim == 2 and vertices.shape[1] == 3 and vertices.dtype == np.float64
    assert faces.ndim == 2 and faces.shape[1] == 3 and len(faces) and faces.dtype == np.int64
    assert faces.min() >= 0 and faces.max() < len(vertices)
    used = vertices[faces]
    assert np.isfinite(used).all()
    area = 0.5 * np.linalg.norm(np.cross(used[:, 1] - used[:, 0], used[:, 2] - used[:, 0]), axis=1)
    assert np.isfinite(area.sum()) and area.sum() > 0


# ------------------------------------------------------------------------------------------------
# checkpoints
# ------------------------------------------------------------------------------------------------


def small_model() -> torch.nn.Module:
    """A convolution and a BatchNorm: float weights and an integer counter, as Model2K2K."""
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.BatchNorm2d(3))


TENSOR_DTYPES = [
    torch.float32,
    torch.float16,
    torch.float64,
    torch.int64,
    torch.bool,
    torch.complex64,
]


@st.composite
def state_dicts(draw: st.DrawFn, state: dict[str, torch.Tensor]) -> object:
    """``state`` with keys dropped, renamed or added, tensors of another shape, dtype or layout,
    NaN, non-tensor values or non-string keys, wrapped the authors' or our way."""
    out: dict[object, object] = {k: v.clone() for k, v in state.items()}
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from(sorted(state)))
        change = draw(
            st.sampled_from(
                ["drop", "rename", "add", "shape", "dtype", "nan", "value", "key", "sparse"]
            )
        )
        if change == "drop":
            out.pop(key, None)
        elif change == "rename":
            out[key + "_x"] = out.pop(key, torch.zeros(1))
        elif change == "add":
            out["extra." + key] = torch.zeros(2)
        elif change == "shape":
            out[key] = torch.zeros(draw(st.lists(st.integers(0, 4), max_size=3)))
        elif change == "dtype":
            out[key] = state[key].to(draw(st.sampled_from(TENSOR_DTYPES)))
        elif change == "nan" and state[key].is_floating_point() and state[key].numel():
            out[key] = (
                state[key]
                .clone()
                .view(-1)
                .index_fill(0, torch.tensor([0]), float("nan"))
                .view(state[key].shape)
            )
        elif change == "value":
            out[key] = draw(JSON_TREES)
        elif change == "key":
            out[draw(st.sampled_from([1, (1, 2), None, 2.5]))] = torch.zeros(1)
        elif change == "sparse" and state[key].ndim == 2:
            out[key] = state[key].to_sparse()
    wrap = draw(st.sampled_from(["bare", "ours", "authors", "list"]))
    if wrap == "ours":
        return {"model": out, "epoch": 1}
    if wrap == "authors":
        return {
            "model_state_dict": {
                f"module.{k}" if isinstance(k, str) else k: v for k, v in out.items()
            }
        }
    return list(out.values()) if wrap == "list" else out


@st.composite
def checkpoint_files(draw: st.DrawFn, state: dict[str, torch.Tensor]) -> bytes:
    """A saved (mutated) state dict, whole, truncated or with a changed byte; or random bytes, a
    foreign pickle, a zip of random members."""
    kind = draw(st.sampled_from(["state", "state", "state", "random", "pickle", "zip"]))
    buf = io.BytesIO()
    if kind == "random":
        return draw(st.binary(max_size=400))
    if kind == "pickle":
        return pickle.dumps(
            draw(st.one_of(JSON_TREES, st.just({"a": {1, 2}}), st.just(zipfile.ZipFile)))
        )
    if kind == "zip":
        with zipfile.ZipFile(buf, "w") as z:
            for name in draw(
                st.lists(st.sampled_from(["data.pkl", "x/data.pkl", "version", "a"]), max_size=3)
            ):
                z.writestr(name, draw(st.binary(max_size=50)))
        return buf.getvalue()
    torch.save(draw(state_dicts(state)), buf)
    return mutate(draw, buf.getvalue())


STATE = small_model().state_dict()


@FUZZ
@given(data=checkpoint_files(STATE))
def test_checkpoint_any_file(folder: Path, data: bytes) -> None:
    path = folder / "fuzz.pt"
    path.write_bytes(data)
    model = small_model()
    loaded = outcome(path, lambda: load_checkpoint(model, path))
    if loaded is None:
        return
    for key, value in model.state_dict().items():  # the file's weights, all finite
        assert value.dtype == STATE[key].dtype and value.shape == STATE[key].shape
        assert not value.is_floating_point() or bool(torch.isfinite(value).all())


@pytest.mark.parametrize("change", ["complex", "nan", "bool", "int", "sparse", "int_key", "half"])
def test_checkpoint_values_checked(tmp_path: Path, change: str) -> None:
    """Weights the model cannot take as they are (imaginary parts, NaN, booleans, integers for
    floats, sparse layout, non-name keys) are one CheckpointError; float16 weights load."""
    state = dict(STATE)
    weight = state["0.weight"]
    state["0.weight"] = {
        "complex": weight + 1j,
        "nan": weight.clone().fill_(float("nan")),
        "bool": weight > 0,
        "int": weight.to(torch.int64),
        "sparse": weight.to_sparse(),
        "int_key": weight,
        "half": weight.half(),
    }[change]
    if change == "int_key":
        state[7] = state.pop("0.weight")
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    model = small_model()
    if change == "half":
        load_checkpoint(model, path)
        assert torch.equal(model.state_dict()["0.weight"], weight.half().float())
        return
    with pytest.raises(BadInputError, match="unusable|not a name") as info:
        load_checkpoint(model, path)
    assert str(info.value).startswith(str(path))


@pytest.fixture(scope="module")
def tiny_state() -> dict[str, torch.Tensor]:
    return build_model(phase=2, res=RES, width=0.125).state_dict()


@FUZZ_SLOW
@example(args={"res": 256, "width": "0.125"}, raw=False)
@example(args={"res": 256, "width": [0.125]}, raw=False)
@example(args={"res": float("inf"), "width": 0.125}, raw=False)
@example(args={"res": 250, "width": 0.125}, raw=False)
@given(
    args=st.one_of(JSON_TREES, st.fixed_dictionaries({"res": JSON_TREES, "width": JSON_TREES})),
    raw=st.booleans(),
)
def test_phase2_checkpoint_any_args(
    folder: Path, tiny_state: dict, args: object, raw: bool
) -> None:
    """``args`` of a phase-2 checkpoint of any JSON (or not JSON): a model of the checkpoint's
    res and width, or one CheckpointError."""
    path = folder / "args.pt"
    text = "[" * 10**5 + "]" * 10**5 if raw else json.dumps(args)
    torch.save({"model": tiny_state, "args": text}, path)
    model = outcome(path, lambda: load_phase2_model(path))
    if model is not None:
        assert isinstance(model, Model2K2K) and model.phase == 2
