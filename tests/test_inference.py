"""Tests of inference/: input decoding and padding, the Predictor, post-processing, point clouds
(analytic sphere and ray-cast torus), side filling, PLY files, the folder driver and the
test_02_model.py script, background removal (alpha, mask files, rembg with a local model)."""

from __future__ import annotations

import itertools
import json
import math
import struct
import sys
from pathlib import Path

import cv2
import numpy as np
import open3d as o3d
import pytest
import torch
import trimesh
from conftest import CASE_SYN, shared_case

from datasets.augment import JITTER_OPS, JitterParams, apply_jitter, grayscale
from inference import (
    AUTHORS_PLY_SCALE,
    OutputOptions,
    Predictor,
    colored_point_cloud,
    load_phase2_model,
    read_image,
    run_folder,
    side_fill_layers,
)
from inference.background import (
    BackgroundRemovalError,
    RembgMasker,
    alpha_mask,
    find_u2net_model,
)
from inference.io import (
    InputError,
    decode_image,
    list_images,
    square_image,
    square_mask,
)
from inference.pointcloud import encode_ply
from inference.predictor import (
    depth_png16,
    output_names,
    postprocess_depth,
    prediction_files,
    prepare_input,
)
from models import CheckpointError, build_model
from render.raycast import RayCaster
from utils.camera import DEPTH_F, focal_length, pixel_rays
from utils.keypoints import load_openpose_json, pad_and_scale_keypoints, pad_offsets

RES = 256
WIDTH = 0.125
SHARED_SITH = Path(__file__).resolve().parents[2] / "shared" / "data" / "sith_examples"
# the syn case cropped to columns [300, 1700) of the 2048^2 render, then scaled to 350 x 512
CROP_X0, CROP_X1, SMALL_W, SMALL_H = 300, 1700, 350, 512


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny model: faster on one thread


def range_to_d(r: np.ndarray) -> np.ndarray:
    """Range -> D units, restated from facts §6.6 (not taken from utils.camera)."""
    return ((r - 1.0) * DEPTH_F + 1024.0) / 512.0


def tiny_model(
    front: float | None = None, back: float | None = None, spread: float = 0.0
) -> torch.nn.Module:
    """Phase-2 model at RES, WIDTH (random weights). With ``front``/``back`` the refined depth
    heads output that constant; the front head adds ``spread`` times its random response."""
    torch.manual_seed(0)
    model = build_model(phase=2, res=RES, width=WIDTH)
    with torch.no_grad():
        for channel, value, scale in ((0, front, spread), (1, back, 0.0)):
            if value is not None:
                model.refine.merge3_2.weight[channel] *= scale
                model.refine.merge3_2.bias[channel] = value
    return model


def save_checkpoint(model: torch.nn.Module, path: Path, style: str) -> Path:
    """Save like our training ("ours": model + args), the authors ("authors": module.-prefixed
    model_state_dict) or a bare state dict ("plain")."""
    state = model.state_dict()
    if style == "ours":
        args = json.dumps({"phase": 2, "res": RES, "width": WIDTH})
        torch.save({"model": state, "args": args, "epoch": 1}, path)
    elif style == "authors":
        torch.save({"model_state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    else:
        torch.save(state, path)
    return path


def syn_item() -> tuple[np.ndarray, dict]:
    """The embedded synthetic case as a non-square RGBA photo (350 x 512) and its OpenPose JSON
    moved into that frame."""
    rgb = cv2.imread(str(CASE_SYN / "input_rgb_2048.png"))
    mask = cv2.imread(str(CASE_SYN / "mask_2048.png"), cv2.IMREAD_GRAYSCALE)
    size = (SMALL_W, SMALL_H)
    bgr = cv2.resize(rgb[:, CROP_X0:CROP_X1], size, interpolation=cv2.INTER_AREA)
    alpha = cv2.resize(mask[:, CROP_X0:CROP_X1], size, interpolation=cv2.INTER_AREA)
    data = json.loads((CASE_SYN / "syn_keypoints.json").read_text())
    s = SMALL_H / 2048
    person = data["people"][0]
    for key in ("pose_keypoints_2d", "hand_left_keypoints_2d", "hand_right_keypoints_2d"):
        a = np.asarray(person[key], dtype=np.float64).reshape(-1, 3)
        present = a[:, 2] > 0
        a[:, 0] = np.where(present, (a[:, 0] - CROP_X0) * s, 0)
        a[:, 1] = np.where(present, a[:, 1] * s, 0)
        person[key] = a.ravel().tolist()
    return np.dstack((bgr, alpha)), data


def write_syn_item(folder: Path, stem: str = "syn") -> Path:
    """Write the synthetic RGBA PNG and its keypoint JSON; returns the image path."""
    bgra, data = syn_item()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.png"
    cv2.imwrite(str(path), bgra)
    (folder / f"{stem}_keypoints.json").write_text(json.dumps(data))
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_checkpoint(tiny_model(), tmp_path_factory.mktemp("ckpt") / "tiny.pt", "ours")


@pytest.fixture(scope="module")
def predictor(checkpoint: Path) -> Predictor:
    return Predictor(checkpoint)


@pytest.fixture(scope="module")
def sheet_predictor() -> Predictor:
    """Refined front depth 1.9 and back 2.1 everywhere: under the authors' rule (``order``; the
    random mask head would cut pixels under ``meet``) every pixel is kept, and its points lie on
    the spheres of range d(1.9), d(2.1) about the camera."""
    return Predictor(tiny_model(front=1.9, back=2.1), depth_mask="order")


@pytest.fixture(scope="module")
def syn_input(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, np.ndarray]:
    path = write_syn_item(tmp_path_factory.mktemp("syn"))
    return read_image(path), load_openpose_json(path.with_name("syn_keypoints.json"))


# ------------------------------------------------------------------------------------------------
# checkpoints
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["ours", "authors", "plain"])
def test_checkpoint_formats_load_strictly(tmp_path: Path, style: str) -> None:
    model = tiny_model()
    path = save_checkpoint(model, tmp_path / f"{style}.pt", style)
    loaded = load_phase2_model(path, res=None if style == "ours" else RES)
    assert loaded.res == RES and loaded.phase == 2
    # width read from args (ours) or from the weights' shapes (authors', plain)
    assert loaded.img2normal_down.Conv1.conv[0].weight.shape[0] == 8
    for (k, a), b in zip(model.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_checkpoint_default_res_is_2048_without_args(tmp_path: Path) -> None:
    path = save_checkpoint(tiny_model(), tmp_path / "plain.pt", "plain")
    assert load_phase2_model(path).res == 2048


def test_phase1_checkpoint_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p1.pt"
    torch.save({"model": build_model(phase=1, res=RES, width=WIDTH).state_dict()}, path)
    with pytest.raises(CheckpointError, match="phase-1 checkpoint"):
        load_phase2_model(path)


def test_predictor_model_state(predictor: Predictor) -> None:
    assert not predictor.model.training
    assert predictor.res == RES
    conv = predictor.model.refine.merge3_2.weight
    assert conv.is_contiguous(memory_format=torch.channels_last)
    with pytest.raises(ValueError, match="res 512 requested"):
        Predictor(predictor.model, res=512)


# ------------------------------------------------------------------------------------------------
# image decoding and padding
# ------------------------------------------------------------------------------------------------


def _png(img: np.ndarray) -> bytes:
    return cv2.imencode(".png", img)[1].tobytes()


def test_decode_kinds() -> None:
    rng = np.random.default_rng(0)
    bgr = rng.integers(0, 256, (40, 64, 3), dtype=np.uint8)
    rgb = decode_image(_png(bgr))
    assert rgb.shape == (40, 64, 3) and np.array_equal(rgb, bgr[:, :, ::-1])
    grey = bgr[:, :, 0]
    assert np.array_equal(decode_image(_png(grey)), np.dstack((grey, grey, grey)))
    # 16 bit: v / 257 rounded, so 8-bit values scaled by 257 come back exactly
    assert np.array_equal(decode_image(_png(bgr.astype(np.uint16) * 257)), rgb)
    assert np.array_equal(decode_image(_png(grey.astype(np.uint16) * 257))[:, :, 0], grey)
    bgra = np.dstack((bgr, np.full((40, 64), 7, np.uint8)))
    rgba = decode_image(_png(bgra))
    assert rgba.shape == (40, 64, 4) and np.array_equal(rgba[:, :, :3], rgb)
    assert np.all(rgba[:, :, 3] == 7)
    rgba16 = decode_image(_png(bgra.astype(np.uint16) * 257))
    assert np.array_equal(rgba16, rgba)
    ramp = np.tile(np.array([0, 128, 129, 200, 32896, 65278, 65535], np.uint16), (40, 5))
    assert decode_image(_png(ramp))[0, :7, 0].tolist() == [0, 0, 1, 1, 128, 254, 255]


def _jpeg_with_orientation(bgr: np.ndarray, orientation: int) -> bytes:
    """A JPEG with an EXIF APP1 segment holding only the orientation tag (0x0112)."""
    jpeg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 100])[1].tobytes()
    ifd = struct.pack("<H", 1) + struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0)
    tiff = b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0)
    payload = b"Exif\x00\x00" + tiff
    app1 = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    return jpeg[:2] + app1 + jpeg[2:]


def test_jpeg_exif_orientation_applied() -> None:
    bgr = np.zeros((40, 64, 3), np.uint8)
    bgr[:10, :10] = (0, 0, 255)  # red top-left corner
    plain = decode_image(_jpeg_with_orientation(bgr, 1))
    assert plain.shape == (40, 64, 3) and plain[2, 2, 0] > 200
    rotated = decode_image(_jpeg_with_orientation(bgr, 6))  # 6: rotate 90 deg clockwise
    assert rotated.shape == (64, 40, 3)
    assert rotated[2, -3, 0] > 200 and rotated[2, 2, 0] < 50  # the corner is now top-right


@pytest.mark.parametrize("hw", [(40, 64), (41, 64), (64, 41), (64, 64)])
def test_square_padding_matches_keypoint_padding(hw: tuple[int, int]) -> None:
    h, w = hw
    side = max(h, w)
    image = np.zeros((h, w, 3), np.uint8)
    image[5, 7] = 255
    top, bottom, left, right = pad_offsets(h, w)
    assert top + bottom == side - h and left + right == side - w
    assert bottom - top in (0, 1) and right - left in (0, 1)  # extra pixel bottom/right
    padded = square_image(image, side)  # no resize: exact pixels
    kp = np.zeros((31, 3))
    kp[0] = (7.5, 5.5, 1.0)  # the marker's pixel centre
    u, v, _ = pad_and_scale_keypoints(kp, h, w, res=side)[0]
    assert padded[int(v), int(u)].max() == 255 and padded.sum() == 3 * 255
    # replicated border: the padded columns/rows copy the edge pixels
    image[:, 0] = 100
    padded = square_image(image, side)
    if left:
        assert np.all(padded[top : top + h, :left] == 100)
    # resized: the marker lands on the scaled keypoint (bicubic, within a pixel)
    big = square_image(np.where(image == 255, 255, 0).astype(np.uint8), 4 * side)
    kp_big = pad_and_scale_keypoints(kp, h, w, res=4 * side)[0]
    peak = np.unravel_index(np.argmax(big[:, :, 0]), big.shape[:2])
    assert abs(peak[0] + 0.5 - kp_big[1]) <= 2.0 and abs(peak[1] + 0.5 - kp_big[0]) <= 2.0


def test_square_mask_pads_background() -> None:
    mask = np.ones((40, 64), bool)
    out = square_mask(mask, 64)
    top, bottom, _, _ = pad_offsets(40, 64)
    assert out[:top].sum() == 0 and out[64 - bottom :].sum() == 0 and out[top : 64 - bottom].all()
    assert square_mask(mask, 32).shape == (32, 32) and square_mask(mask, 128).sum() == 128 * 80


def test_list_images(tmp_path: Path) -> None:
    for name in ["b.PNG", "a.jpg", "c.JPEG", "d.v2.png", "x_mask.png", "notes.txt", "e.npy"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "dir.png").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["a.jpg", "b.PNG", "c.JPEG", "d.v2.png"]


# ------------------------------------------------------------------------------------------------
# the Predictor
# ------------------------------------------------------------------------------------------------


def test_predict_shapes_and_postprocessing(predictor: Predictor, syn_input) -> None:
    image, keypoints = syn_input
    pred = predictor.predict(image, keypoints, source="syn.png")
    r = RES // 8
    assert pred.image.shape == (RES, RES, 3) and pred.image.dtype == np.uint8
    for a in (pred.depth_front, pred.depth_back, pred.mask, pred.foreground):
        assert a.shape == (RES, RES)
    for a in (pred.normal_front, pred.normal_back):
        assert a.shape == (3, RES, RES)
    assert pred.down_depth_front.shape == (r, r) and pred.down_normal_back.shape == (3, r, r)
    assert set(pred.part_normals) == {"face", "upper", "arm", "leg", "shoe"}
    for name, arr in vars(pred).items():
        if isinstance(arr, np.ndarray):
            assert np.all(np.isfinite(arr)), name
    kept = (pred.depth_front != 0) | (pred.depth_back != 0)
    assert np.all(pred.depth_front[kept] <= pred.depth_back[kept])
    # the foreground is the alpha, padded and resized like the image
    expected = square_mask(image[:, :, 3] > 0, RES)
    assert np.array_equal(pred.foreground, expected)
    assert np.array_equal(pred.image, square_image(image[:, :, :3], RES))
    np.testing.assert_allclose(
        pred.keypoints, pad_and_scale_keypoints(keypoints, SMALL_H, SMALL_W, RES)
    )


def test_model_input_is_masked_jittered_normalised(predictor: Predictor, syn_input) -> None:
    image, _ = syn_input
    rgb = square_image(image[:, :, :3], RES)
    fg = square_mask(image[:, :, 3] > 0, RES)
    x = predictor.model_input(rgb, fg)[0].numpy().transpose(1, 2, 0)
    # independent restatement: black background, then brightness, contrast, saturation 0.85
    y = rgb.astype(np.float64) / 255 * fg[:, :, None]
    y = np.clip(0.85 * y, 0, 1)
    y = np.clip(0.85 * y + 0.15 * grayscale(y.astype(np.float32)).mean(), 0, 1)
    y = np.clip(0.85 * y + 0.15 * grayscale(y.astype(np.float32))[:, :, None], 0, 1)
    np.testing.assert_allclose(x, 2 * y - 1, atol=2e-6)
    assert x.min() >= -1 and x.max() <= 1


def test_colour_transform_order_does_not_matter(syn_input) -> None:
    """The authors drew the op order at random; with factors < 1 every order gives the same."""
    image, _ = syn_input
    x = square_image(image[:, :, :3], RES).astype(np.float32) / 255
    results = [
        apply_jitter(x, JitterParams(order, 0.85, 0.85, 0.85))
        for order in itertools.permutations(JITTER_OPS)
    ]
    for r in results[1:]:
        np.testing.assert_allclose(r, results[0], atol=2e-6)


def test_predict_is_deterministic(predictor: Predictor, syn_input) -> None:
    image, keypoints = syn_input
    a = predictor.predict(image, keypoints)
    b = predictor.predict(image, keypoints)
    assert np.array_equal(a.depth_front, b.depth_front)
    assert np.array_equal(a.normal_back, b.normal_back)


def test_mask_argument_and_grey_input(sheet_predictor: Predictor, syn_input) -> None:
    image, keypoints = syn_input
    grey = image[:, :, 0]
    mask = np.zeros(grey.shape, bool)
    mask[100:300, 50:200] = True
    pred = sheet_predictor.predict(grey, keypoints, mask=mask)
    assert np.array_equal(pred.foreground, square_mask(mask, RES))
    assert np.array_equal(pred.image[:, :, 0], pred.image[:, :, 2])
    # the alpha wins over a mask argument
    pred = sheet_predictor.predict(image, keypoints, mask=mask)
    assert np.array_equal(pred.foreground, square_mask(image[:, :, 3] > 0, RES))


def test_postprocess_depth() -> None:
    front = np.array([[1.0, 2.0, 6.0, 0.0, 2.5]], np.float32)
    back = np.array([[1.5, 1.0, 0.0, 0.0, 2.5]], np.float32)
    mask = np.array([[0.9, 0.9, 0.9, 0.2, 0.9]], np.float32)
    f, b = postprocess_depth(front, back, mask)
    assert f.tolist() == [[1.0, 0, 0, 0, 2.5]] and b.tolist() == [[1.5, 0, 0, 0, 2.5]]
    low = np.array([[0.9, 0.9, 0.9, 0.9, 0.3]], np.float32)
    f, b = postprocess_depth(front, back, low, "predicted")
    assert f.tolist() == [[1.0, 0, 0, 0, 0]] and b.tolist() == [[1.5, 0, 0, 0, 0]]
    # meet: crossed sheets (2 > 1) become one point at the mean; background values (6 / 0),
    # the mask and the input foreground still remove pixels
    f, b = postprocess_depth(front, back, mask, "meet")
    assert f.tolist() == [[1.0, 1.5, 0, 0, 2.5]] and b.tolist() == [[1.5, 0, 0, 0, 2.5]]
    fg = np.array([[True, True, True, True, False]])
    f, b = postprocess_depth(front, back, mask, "meet", fg)
    assert f.tolist() == [[1.0, 1.5, 0, 0, 0]] and b.tolist() == [[1.5, 0, 0, 0, 0]]
    with pytest.raises(ValueError, match="depth_mask"):
        postprocess_depth(front, back, mask, "nope")
    assert depth_png16(np.array([1.0, 3.99999, 4.0, 5.0, -1.0])).tolist() == [
        16384,
        65535,
        65535,
        65535,
        0,
    ]


def test_constant_depth_end_to_end(sheet_predictor: Predictor, syn_input) -> None:
    """Through the whole Predictor: constant heads front 1.9 < back 2.1 keep every pixel, and
    every point lies at the range of its depth from the camera."""
    image, keypoints = syn_input
    pred = sheet_predictor.predict(image, keypoints)
    np.testing.assert_allclose(pred.depth_front, 1.9, atol=1e-6)
    np.testing.assert_allclose(pred.depth_back, 2.1, atol=1e-6)
    points, colors = pred.point_cloud()
    assert len(points) == 2 * RES * RES
    dist = np.linalg.norm(points.astype(np.float64) - (0, 0, 1), axis=1)
    d = (512 * np.array([1.9, 2.1]) - 1024) / DEPTH_F + 1
    np.testing.assert_allclose(dist[: RES * RES], d[0], atol=2e-6)
    np.testing.assert_allclose(dist[RES * RES :], d[1], atol=2e-6)
    assert np.array_equal(colors[: RES * RES], pred.image.reshape(-1, 3))
    scaled, _ = pred.point_cloud(authors_scale=True)
    np.testing.assert_allclose(scaled * AUTHORS_PLY_SCALE, points, atol=1e-6)


# ------------------------------------------------------------------------------------------------
# point clouds
# ------------------------------------------------------------------------------------------------


def sphere_depth(res: int, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Analytic front and back D maps of a sphere at the origin (0 = miss)."""
    rays = pixel_rays(res)  # [res, res, 3]
    o = np.array([0.0, 0.0, 1.0])
    b = rays @ o  # r . (o - c), c = 0
    disc = b**2 - (o @ o - radius**2)
    hit = disc > 0
    root = np.sqrt(np.where(hit, disc, 0))
    front = np.where(hit, range_to_d(-b - root), 0.0)
    back = np.where(hit, range_to_d(-b + root), 0.0)
    return front, back


def test_point_cloud_on_analytic_sphere() -> None:
    radius = 0.3
    front, back = sphere_depth(RES, radius)
    back[:, : RES // 2] = 0  # half the back missing: back points differ from front points
    image = np.random.default_rng(0).integers(0, 256, (RES, RES, 3), dtype=np.uint8)
    n, m = int((front > 0).sum()), int((back > 0).sum())
    expected_back = {
        "front": image[back > 0],  # the authors: the same pixel's colour
        "dark": (image[back > 0] * 0.6).astype(np.uint8),
        "grey": np.full((m, 3), 128),
    }
    for back_color, expected in expected_back.items():
        points, colors = colored_point_cloud(front, back, image, back_color=back_color)
        assert len(points) == n + m and points.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(points, axis=1), radius, atol=1e-6)
        facing = np.einsum("ij,ij->i", points, (0, 0, 1) - points)  # normal . (camera - p)
        assert np.all(facing[:n] > 0) and np.all(facing[n:] < 0)  # front sheet seen, back not
        assert np.array_equal(colors[:n], image[front > 0])
        assert np.array_equal(colors[n:], expected), back_color


def test_point_cloud_of_raycast_torus_lies_on_the_mesh() -> None:
    """GT depth rendered by render/ (ray casting) -> D units -> points -> on the surface."""
    torus = trimesh.creation.torus(major_radius=0.25, minor_radius=0.08)
    rot = trimesh.transformations.rotation_matrix(math.radians(60), [1, 0.3, 0])[:3, :3]
    vertices = torus.vertices @ rot.T
    hits = RayCaster(vertices, torus.faces).cast(RES)
    front = np.where(hits.front > 0, range_to_d(hits.front), 0.0)
    back = np.where(hits.back > 0, range_to_d(hits.back), 0.0)
    image = np.zeros((RES, RES, 3), np.uint8)
    points, _ = colored_point_cloud(front, back, image, side_fill=True)
    n = int((front > 0).sum() + (back > 0).sum())
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(
        o3d.core.Tensor(vertices.astype(np.float32)), o3d.core.Tensor(torus.faces.astype(np.uint32))
    )
    dist = scene.compute_distance(o3d.core.Tensor(points)).numpy()
    assert n > 5000 and dist[:n].max() < 2e-6
    # side-filling points close the rim: most lie inside the solid, the rest (where the dilated
    # back overshoots the true back at the limb) within 4 pixel widths of the surface
    occupancy = scene.compute_occupancy(o3d.core.Tensor(points[n:])).numpy()
    assert len(points) > n + 1000 and occupancy.mean() > 0.6
    assert dist[n:].max() < 4 / focal_length(RES)


def test_side_fill_layers_rings_and_values() -> None:
    res = 64
    front = np.zeros((res, res), np.float32)
    back = np.zeros((res, res), np.float32)
    front[10:50, 12:40] = 1.5
    back[10:50, 12:40] = np.linspace(2.2, 2.6, 28, dtype=np.float32)
    layers = side_fill_layers(front, back)
    assert len(layers) == 7
    rings = [layer > 0 for layer in layers]
    assert np.array_equal(rings[0], rings[1]) and np.array_equal(rings[2], rings[3])
    # R1..R3 are the 1-, 2- and 3-pixel rings outside the back eroded by 3 (inside the front);
    # R0 the ring between erosion 3 and 4
    inner = np.zeros((res, res), bool)
    inner[13:47, 15:37] = True
    for k, ring in ((1, rings[0]), (2, rings[2]), (3, rings[4])):
        grown = cv2.dilate(inner.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=k) > 0
        smaller = cv2.dilate(inner.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=k - 1)
        assert np.array_equal(ring, grown & ~(smaller > 0)), k
    f4 = np.zeros((res, res), bool)
    f4[14:46, 16:36] = True
    assert np.array_equal(rings[6], inner & ~f4)
    # every layer value lies between the front and the (dilated) back
    for layer in layers:
        v = layer[layer > 0]
        assert v.min() > 1.5 and v.max() < 2.6
    np.testing.assert_allclose(layers[0][12, 14], (5 * 1.5 + back[13, 15]) / 6, rtol=1e-6)
    assert np.all(front[np.any(rings, axis=0)] > 0)  # the rings never leave the silhouette


def test_ply_is_read_by_trimesh_and_open3d(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    points = rng.normal(size=(100, 3)).astype(np.float32)
    colors = rng.integers(0, 256, (100, 3), dtype=np.uint8)
    path = tmp_path / "c.ply"
    path.write_bytes(encode_ply(points, colors))
    cloud = trimesh.load(path)
    np.testing.assert_array_equal(np.asarray(cloud.vertices, np.float32), points)
    np.testing.assert_array_equal(cloud.colors[:, :3], colors)
    assert np.all(cloud.colors[:, 3] == 255)
    pcd = o3d.io.read_point_cloud(str(path))
    np.testing.assert_allclose(np.asarray(pcd.points), points, atol=1e-7)
    np.testing.assert_allclose(np.asarray(pcd.colors), colors / 255.0, atol=1e-7)
    empty = encode_ply(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8))
    assert b"element vertex 0\n" in empty


# ------------------------------------------------------------------------------------------------
# outputs and the folder driver
# ------------------------------------------------------------------------------------------------


def test_run_folder_writes_the_authors_layout(sheet_predictor: Predictor, tmp_path: Path) -> None:
    write_syn_item(tmp_path / "in", "syn")
    write_syn_item(tmp_path / "in", "a.b")  # dots in the stem are kept
    out = tmp_path / "out"
    report = run_folder(sheet_predictor, tmp_path / "in", out, progress=False)
    assert report.ok and [p.name for p in report.done] == ["a.b.png", "syn.png"]
    options = OutputOptions()
    for stem in ("syn", "a.b"):
        for name in output_names(stem, options):
            assert (out / name).is_file(), name
    assert not list(out.rglob(".*"))  # no temporary files left
    depth = cv2.imread(str(out / "depth/syn_front.png"), cv2.IMREAD_UNCHANGED)
    assert depth.dtype == np.uint16 and depth.shape == (RES, RES)
    assert np.all(depth == int(np.float32(1.9) * 16384))
    normal = cv2.imread(str(out / "normal/syn_front.png"), cv2.IMREAD_UNCHANGED)
    assert normal.shape == (RES, RES, 3) and normal.dtype == np.uint8
    cut = cv2.imread(str(out / "images/syn.png"), cv2.IMREAD_UNCHANGED)
    assert cut.shape == (RES, RES, 4)
    assert np.all(cut[:, :, :3][cut[:, :, 3] == 0] == 0)
    part = cv2.imread(str(out / "normal_parts/syn_face_front.png"), cv2.IMREAD_UNCHANGED)
    assert part.shape[2] == 3 and part.shape[0] % 8 == 0
    ply = trimesh.load(out / "output_plys/syn.ply")
    assert len(ply.vertices) == 2 * RES * RES
    side = trimesh.load(out / "output_plys_c/syn.ply")
    assert len(side.vertices) == 2 * RES * RES  # constant sheets fill the frame: no side rings
    # skip_existing skips, options without parts and side fill write less
    report = run_folder(sheet_predictor, tmp_path / "in", out, skip_existing=True, progress=False)
    assert len(report.skipped) == 2 and not report.done
    lean = OutputOptions(normal_parts=False, side_fill=False)
    assert not any("normal_parts" in n or "plys_c" in n for n in output_names("s", lean))


def test_prediction_files_encoding(syn_input) -> None:
    image, keypoints = syn_input
    model = tiny_model(front=1.9, back=2.5, spread=0.05)
    pred = Predictor(model, depth_mask="order").predict(image, keypoints)
    assert pred.depth_front.std() > 1e-3 and (pred.depth_front > 0).mean() > 0.99
    files = prediction_files(pred, "s", OutputOptions(back_color="grey"))
    assert list(files) == output_names("s", OutputOptions())
    normal = cv2.imdecode(np.frombuffer(files["normal/s_back.png"], np.uint8), cv2.IMREAD_COLOR)
    expected = np.clip(np.rint(pred.normal_back.transpose(1, 2, 0) * 255), 0, 255)
    inside = pred.foreground[:, :, None]
    assert 0.05 < inside.mean() < 0.95 and (expected[~pred.foreground] > 0).any()
    np.testing.assert_array_equal(normal[:, :, ::-1], expected * inside)  # R, G, B = channels 0-2
    raw = prediction_files(pred, "s", OutputOptions(raw_normals=True))["normal/s_back.png"]
    raw = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(raw[:, :, ::-1], expected)  # the authors' whole frame
    cons = pred.consistency_normals()[0]
    png = cv2.imdecode(np.frombuffer(files["cons/s_front.png"], np.uint8), cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(png[:, :, ::-1], np.rint(cons.transpose(1, 2, 0) * 255))
    assert cons.max() <= 1 and (cons > 0).any()
    mask = cv2.imdecode(np.frombuffer(files["normal_parts/s_mask.png"], np.uint8), 0)
    assert np.array_equal(mask > 0, pred.depth_back > 0)


def test_failed_write_leaves_nothing(sheet_predictor: Predictor, tmp_path: Path) -> None:
    write_syn_item(tmp_path / "in", "syn")
    out = tmp_path / "out"
    (out / "output_plys" / "syn.ply").mkdir(parents=True)  # a folder blocks the PLY
    report = run_folder(sheet_predictor, tmp_path / "in", out, progress=False)
    assert [p.name for p, _ in report.failed] == ["syn.png"]
    assert [p for p in out.rglob("*") if p.is_file()] == []


def test_same_stem_does_not_overwrite(sheet_predictor: Predictor, tmp_path: Path) -> None:
    """a.PNG and a.png share every output name: the second fails instead of replacing the
    first's outputs (or being "skipped" as already done)."""
    png = write_syn_item(tmp_path / "in", "a")
    upper = png.with_suffix(".PNG")
    upper.write_bytes(png.read_bytes())
    out = tmp_path / "out"
    report = run_folder(sheet_predictor, tmp_path / "in", out, progress=False)
    assert [p.name for p in report.done] == ["a.PNG"]
    assert [p.name for p, _ in report.failed] == ["a.png"]
    assert "same name as a.PNG" in report.failed[0][1]
    again = run_folder(sheet_predictor, [upper, png], out, skip_existing=True, progress=False)
    assert again.skipped == [upper] and [p for p, _ in again.failed] == [png]


def test_script_main(checkpoint: Path, tmp_path: Path) -> None:
    import test_02_model

    write_syn_item(tmp_path / "in", "syn")
    (tmp_path / "in" / "bad.png").write_bytes(b"")
    args = test_02_model.get_parser().parse_args(
        ["--data_path", str(tmp_path / "in"), "--checkpoint", str(checkpoint)]
        + ["--save_path", str(tmp_path / "out"), "--save_name", "run", "--no_normal_parts"]
    )
    with pytest.raises(SystemExit) as exit_info:
        test_02_model.main(args)
    assert exit_info.value.code == 1
    out = tmp_path / "out" / "run"
    saved = json.loads((out / "args.json").read_text())
    assert saved["res"] == RES and saved["device"] == "cpu"
    assert (out / "output_plys/syn.ply").is_file() and not (out / "normal_parts").exists()
    assert not list(out.rglob("bad*"))


# ------------------------------------------------------------------------------------------------
# background removal
# ------------------------------------------------------------------------------------------------


def test_alpha_mask_rules() -> None:
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 3] = 255
    assert alpha_mask(rgba) is None  # fully opaque: no mask information
    rgba[0, 0, 3] = 0
    rgba[1, 1, 3] = 1
    mask = alpha_mask(rgba)
    assert mask is not None and not mask[0, 0] and mask[1, 1]
    rgba[..., 3] = 0
    with pytest.raises(InputError, match="empty alpha"):
        alpha_mask(rgba, "x.png")


def test_rembg_model_missing_is_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("U2NET_HOME", str(tmp_path))
    with pytest.raises(BackgroundRemovalError, match="--rembg_model.*U2NET_HOME"):
        find_u2net_model()
    with pytest.raises(BackgroundRemovalError, match="rembg model not found"):
        find_u2net_model(tmp_path / "nothing.onnx")
    (tmp_path / "u2net.onnx").write_bytes(b"x")
    assert find_u2net_model() == tmp_path / "u2net.onnx"


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | 0x80 if n else low)
        if not n:
            return bytes(out)


def _field(number: int, payload: int | str | bytes) -> bytes:
    if isinstance(payload, int):
        return _varint(number << 3) + _varint(payload)
    data = payload.encode() if isinstance(payload, str) else payload
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def identity_onnx() -> bytes:
    """An ONNX model (protobuf written by hand: no onnx package needed) whose output is its
    [1, 3, 320, 320] input, so rembg's U^2-Net session reads the red channel as the mask."""
    dims = b"".join(_field(1, _field(1, d)) for d in (1, 3, 320, 320))
    tensor = _field(1, _field(1, 1) + _field(2, dims))  # TypeProto{tensor_type{float, dims}}
    node = _field(1, "input") + _field(2, "output") + _field(4, "Identity")
    graph = _field(1, node) + _field(2, "g")
    graph += _field(11, _field(1, "input") + _field(2, tensor))
    graph += _field(12, _field(1, "output") + _field(2, tensor))
    return _field(1, 8) + _field(7, graph) + _field(8, _field(2, 13))


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # rembg, blank
def test_rembg_with_a_local_model(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("rembg")
    model = tmp_path / "u2net_identity.onnx"
    model.write_bytes(identity_onnx())
    image = np.zeros((300, 200, 3), np.uint8)
    cv2.ellipse(image, (100, 150), (40, 110), 0, 0, 360, (255, 0, 0), -1)
    masker = RembgMasker(model)
    mask = masker(image)
    truth = image[:, :, 0] > 0
    assert (mask & truth).sum() / (mask | truth).sum() > 0.99
    session = masker._session
    masker(image)
    assert masker._session is session  # one session for the batch
    bad = tmp_path / "bad.onnx"
    bad.write_text("not a model")
    with pytest.raises(BackgroundRemovalError, match="bad.onnx: cannot be loaded"):
        RembgMasker(bad)(image)
    with pytest.raises(BackgroundRemovalError, match="no foreground"):
        masker(np.zeros((50, 50, 3), np.uint8))


def test_rembg_imported_lazily(tmp_path: Path) -> None:
    """Reading an RGBA input and making a masker do not import rembg (slow import); checked in
    a fresh interpreter."""
    import subprocess

    write_syn_item(tmp_path, "syn")
    code = (
        "import sys, numpy as np\n"
        "from inference.io import read_image\n"
        "from inference.background import RembgMasker, alpha_mask\n"
        f"img = read_image({str(tmp_path / 'syn.png')!r})\n"
        "assert alpha_mask(img) is not None and RembgMasker() is not None\n"
        "print('rembg' in sys.modules)\n"
    )
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root
    )
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------------------------------------------
# in-the-wild photos (../shared, never copied here)
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["case_000", "case_005"])
def test_prepared_input_matches_the_parity_input(case: str) -> None:
    """The authors' pad + bicubic resize and keypoint route, bit for bit: the parity fixture's
    2048 input image (SiTH RGBA read as colour, alpha dropped) and its theta."""
    folder = shared_case(case)
    stem = case.replace("case_", "sith_")
    image = read_image(folder / f"{stem}.png")
    keypoints = load_openpose_json(folder / f"{stem}_keypoints.json")
    prep = prepare_input(image, keypoints, 2048, source=stem)
    reference = cv2.imread(str(folder / "input_rgb_2048.png"), cv2.IMREAD_COLOR)[:, :, ::-1]
    assert np.array_equal(prep.rgb, reference)
    np.testing.assert_allclose(prep.theta, np.load(folder / "theta.npy"), rtol=0, atol=1e-6)
    assert prep.mask is not None and np.array_equal(prep.mask, square_mask(image[..., 3] > 0, 2048))


def test_sith_photos(predictor: Predictor, tmp_path: Path) -> None:
    if not SHARED_SITH.is_dir():
        pytest.skip(f"{SHARED_SITH} absent (../shared absent: in-the-wild photos skipped)")
    images = sorted(SHARED_SITH.glob("*.png"))[:2]
    report = run_folder(predictor, images, tmp_path, progress=False)
    assert report.ok, report.failed
    for path in images:
        cut = cv2.imread(str(tmp_path / "images" / f"{path.stem}.png"), cv2.IMREAD_UNCHANGED)
        coverage = (cut[:, :, 3] > 0).mean()
        assert 0.05 < coverage < 0.8  # the alpha's person, padded and resized


@pytest.mark.parametrize(
    ("precision", "min_iou", "max_median_d"), [("bf16", 0.95, 0.01), ("fp16", 0.99, 0.002)]
)
def test_reduced_precision_stays_close_to_fp32(
    precision: str, min_iou: float, max_median_d: float
) -> None:
    """``--precision bf16|fp16`` (autocast): float32 outputs, finite, close to the fp32 path
    (bf16 moves the silhouette's edge by about half a pixel at 512: README table)."""
    root = Path(__file__).resolve().parents[1]
    image = read_image(root / "data/demo/images/anny_0090.png")
    keypoints = np.load(root / "data/demo/images/anny_0090_keypoints.npy")
    checkpoint = root / "checkpoints/demo_w025_512.pt"
    ref = Predictor(checkpoint).predict(image, keypoints)
    low = Predictor(checkpoint, precision=precision).predict(image, keypoints)
    assert low.depth_front.dtype == np.float32 and np.isfinite(low.depth_front).all()
    a, b = ref.depth_front > 0, low.depth_front > 0
    assert (a & b).sum() / (a | b).sum() > min_iou
    both = a & b
    assert np.median(np.abs(ref.depth_front - low.depth_front)[both]) < max_median_d  # 1 D: 57 cm
    assert not np.array_equal(ref.depth_front, low.depth_front)  # autocast did run
    with pytest.raises(ValueError, match="precision must be one of"):
        Predictor(checkpoint, precision="int8")


@pytest.mark.parametrize("weights", ["demo_w025_512.pt", "open_w025_512.pt"])
def test_shipped_weights_reconstruct_a_demo_person(weights: str) -> None:
    """Each committed checkpoint loads strictly (res and width from the file) and its predicted
    silhouette of a held-out demo person matches the alpha (IoU > 0.95), with the front surface
    in front of the back on it."""
    root = Path(__file__).resolve().parents[1]
    image = read_image(root / "data/demo/images/anny_0093.png")
    keypoints = np.load(root / "data/demo/images/anny_0093_keypoints.npy")
    predictor = Predictor(root / "checkpoints" / weights)
    out = predictor.predict(image, keypoints)
    alpha = image[..., 3] > 0 if image.shape[-1] == 4 else None
    assert alpha is not None
    mask = out.depth_front > 0
    assert mask.shape == alpha.shape
    assert (mask & alpha).sum() / (mask | alpha).sum() > 0.95
    both = mask & (out.depth_back > 0)
    assert np.median(out.depth_back[both] - out.depth_front[both]) > 0
