"""Tests of ``render/keypoints3d.py`` not covered by ``tests/test_render.py``: the 2K2K
``kp3ds.json`` reader and its agreement with the test-time OpenPose mapping (facts §3.1), the 2K2K
joint-file precedence, the SMPL-X fill of invisible THuman2 joints (facts §6.9), keypoints from
OpenPose JSONs (all-or-nothing writes, resume), the projection against a hand-computed pinhole and
the overlay drawing.

Everything is built in temporary folders; no mesh is rendered.
"""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
import trimesh

from render.keypoints3d import (
    SMPLX_FILL_INDEX,
    fill_from_smplx,
    joint_file,
    keypoint_overlay,
    load_joints,
    load_kp3ds,
    project_keypoints,
    smplx_joints,
    write_item_keypoints,
)
from render.layout import view_files, view_name
from utils.camera import ScanTransform
from utils.keypoints import (
    BODY25_INDEX,
    HAND_PIP_INDEX,
    KEYPOINT_NAMES,
    KeypointError,
    load_openpose_json,
    openpose_to_keypoints31,
)
from utils.scans import RenderInputError, scan_transform

N_KP3DS = 118  # 25 body + 21 left hand + 21 right hand + 51 face (facts §6.11)
LEFT_HAND0, RIGHT_HAND0 = 25, 46

# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------


def kp3ds_array() -> np.ndarray:
    """[118, 4] rows (x, y, z, confidence), every value distinct and every confidence > 0."""
    r = np.arange(N_KP3DS, dtype=np.float64)
    return np.stack((10 * r + 1.25, 10 * r + 2.5, -(10 * r + 3.75), 0.3 + r / 1000), axis=1)


def write_json(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path


def openpose_dict(kp: np.ndarray) -> dict:
    """The (x, y, confidence) of the kp3ds rows laid out as an OpenPose BODY_25 + hands JSON."""
    xyc = kp[:, [0, 1, 3]]
    return {
        "people": [
            {
                "pose_keypoints_2d": xyc[:25].ravel().tolist(),
                "hand_left_keypoints_2d": xyc[LEFT_HAND0 : LEFT_HAND0 + 21].ravel().tolist(),
                "hand_right_keypoints_2d": xyc[RIGHT_HAND0 : RIGHT_HAND0 + 21].ravel().tolist(),
                "face_keypoints_2d": xyc[67:].ravel().tolist(),
            }
        ]
    }


def expected_kp3ds_rows() -> list[int]:
    """kp3ds row of each of the 31 keypoints, written out from the facts sheet §3.1 table."""
    body = [0, 16, 15, 18, 17, 5, 2, 6, 3, 7, 4, 12, 9, 13, 10, 14, 11, 19, 20, 21, 22, 23, 24]
    return (
        body
        + [LEFT_HAND0 + i for i in (6, 10, 14, 18)]
        + [RIGHT_HAND0 + i for i in (6, 10, 14, 18)]
    )


def wholebody(rng: np.random.Generator, invisible=()) -> tuple[np.ndarray, np.ndarray]:
    joints = rng.uniform(-0.5, 0.5, (133, 3))
    visible = np.ones(133)
    visible[list(invisible)] = 0
    return joints, visible


def write_wholebody(root: Path, ds: str, name: str, joints, visible) -> Path:
    return write_json(
        root / "Joint3D" / ds / f"{name}.json",
        {"joint3d": np.asarray(joints).tolist(), "visible": np.asarray(visible).tolist()},
    )


def write_ply(root: Path, ds: str, name: str) -> Path:
    mesh = trimesh.creation.box(extents=(0.4, 1.2, 0.3))
    mesh.apply_translation((0.05, 0.9, -0.02))
    mesh.visual.vertex_colors = np.tile([90, 120, 200, 255], (len(mesh.vertices), 1)).astype(
        np.uint8
    )
    d = root / "obj" / ds / name
    d.mkdir(parents=True, exist_ok=True)
    mesh.export(d / f"{name}.ply")
    return d / f"{name}.ply"


def rot_y(deg: float) -> np.ndarray:
    """Rotation about +Y from the rotation vector (independent of ``utils.camera.rotation_y``)."""
    return cv2.Rodrigues(np.array([0.0, math.radians(deg), 0.0]))[0]


# ------------------------------------------------------------------------------------------------
# 1. 2K2K kp3ds.json
# ------------------------------------------------------------------------------------------------


def test_load_kp3ds_selects_the_test_time_rows(tmp_path):
    kp = kp3ds_array()
    points, visible = load_kp3ds(write_json(tmp_path / "kp3ds.json", kp.tolist()))
    assert points.shape == (31, 3) and visible.shape == (31,) and visible.dtype == bool
    rows = expected_kp3ds_rows()
    np.testing.assert_array_equal(points, kp[rows, :3])
    assert visible.all()
    # the same rows through the code's own tables
    np.testing.assert_array_equal(points[:23], kp[list(BODY25_INDEX), :3])
    np.testing.assert_array_equal(points[23:27], kp[[LEFT_HAND0 + i for i in HAND_PIP_INDEX], :3])
    np.testing.assert_array_equal(points[27:], kp[[RIGHT_HAND0 + i for i in HAND_PIP_INDEX], :3])
    # rows after the two hands (face) are ignored
    kp2 = kp.copy()
    kp2[67:] = -7.0
    p2, v2 = load_kp3ds(write_json(tmp_path / "kp3ds_face.json", kp2.tolist()))
    np.testing.assert_array_equal(p2, points)
    np.testing.assert_array_equal(v2, visible)


def test_load_kp3ds_agrees_with_the_openpose_mapping(tmp_path):
    kp = kp3ds_array()
    points, visible = load_kp3ds(write_json(tmp_path / "kp3ds.json", kp.tolist()))
    kp2d = openpose_to_keypoints31(openpose_dict(kp))
    np.testing.assert_array_equal(kp2d[:, :2], points[:, :2])
    np.testing.assert_array_equal(kp2d[:, 2], kp[expected_kp3ds_rows(), 3])
    np.testing.assert_array_equal(kp2d[:, 2] > 0, visible)


def test_load_kp3ds_visibility_is_positive_confidence(tmp_path):
    kp = kp3ds_array()
    # 31-row 3 (left ear = body 18), 12 (right hip = body 9) with confidence 0 / negative,
    # 24 (left middle = left hand 10), 30 (right little = right hand 18), 7 (left elbow = body 6)
    # non-finite; a face row with confidence 0 changes nothing.
    kp[18, 3] = 0.0
    kp[9, 3] = -0.5
    kp[LEFT_HAND0 + 10, 3] = 0.0
    kp[RIGHT_HAND0 + 18, 3] = 0.0
    kp[6, 0] = float("nan")
    kp[100, 3] = 0.0
    points, visible = load_kp3ds(write_json(tmp_path / "kp3ds.json", kp.tolist()))
    assert set(np.flatnonzero(~visible)) == {3, 7, 12, 24, 30}
    # visible rows keep their coordinates, a tiny positive confidence counts as visible
    kp[0, 3] = 1e-6
    _, v2 = load_kp3ds(write_json(tmp_path / "kp3ds_tiny.json", kp.tolist()))
    assert v2[0]


@pytest.mark.parametrize(
    "content",
    [
        json.dumps(kp3ds_array()[:, :3].tolist()),  # 118 x 3
        json.dumps(np.c_[kp3ds_array(), np.ones(N_KP3DS)].tolist()),  # 118 x 5
        json.dumps(kp3ds_array()[:10].tolist()),  # 10 x 4
        json.dumps(kp3ds_array()[:66].tolist()),  # one row short of both hands
        json.dumps(kp3ds_array().ravel().tolist()),  # flat
        json.dumps([[1, 2, 3, 4], [1, 2, 3]]),  # ragged
        json.dumps({"kp3ds": kp3ds_array().tolist()}),  # an object
        json.dumps([["a", "b", "c", "d"]] * N_KP3DS),  # strings
        "{not json",
        "",
    ],
    ids=[
        "118x3",
        "118x5",
        "10x4",
        "66x4",
        "flat",
        "ragged",
        "object",
        "strings",
        "bad-json",
        "empty",
    ],
)
def test_load_kp3ds_rejects_bad_files(tmp_path, content):
    path = tmp_path / "obj" / "2K2K" / "0001" / "kp3ds.json"
    path.parent.mkdir(parents=True)
    path.write_text(content)
    with pytest.raises(RenderInputError) as info:
        load_kp3ds(path)
    assert str(path) in str(info.value)


def test_load_kp3ds_missing_file(tmp_path):
    path = tmp_path / "obj" / "2K2K" / "0001" / "kp3ds.json"
    with pytest.raises(RenderInputError) as info:
        load_kp3ds(path)
    assert str(path) in str(info.value)


def test_load_kp3ds_accepts_67_rows(tmp_path):
    """The face rows are optional: body + both hands (67 rows) is enough."""
    kp = kp3ds_array()[:67]
    points, visible = load_kp3ds(write_json(tmp_path / "kp3ds.json", kp.tolist()))
    np.testing.assert_array_equal(points, kp[expected_kp3ds_rows(), :3])
    assert visible.all()


# ------------------------------------------------------------------------------------------------
# 2. where the joints of an item come from
# ------------------------------------------------------------------------------------------------


def test_joint_file_precedence_for_2k2k(tmp_path):
    ours = tmp_path / "Joint3D" / "2K2K" / "0001.json"
    theirs = tmp_path / "obj" / "2K2K" / "0001" / "kp3ds.json"
    # neither exists: the 2K2K fallback (the error will name kp3ds.json)
    assert joint_file(tmp_path, "2K2K", "0001") == theirs
    write_json(theirs, kp3ds_array().tolist())
    assert joint_file(tmp_path, "2K2K", "0001") == theirs
    write_wholebody(tmp_path, "2K2K", "0001", *wholebody(np.random.default_rng(0)))
    assert joint_file(tmp_path, "2K2K", "0001") == ours
    # other datasets never fall back to kp3ds.json
    write_json(tmp_path / "obj" / "ANNY" / "0001" / "kp3ds.json", kp3ds_array().tolist())
    for ds in ("RP", "THuman2", "ANNY"):
        assert joint_file(tmp_path, ds, "0001") == tmp_path / "Joint3D" / ds / "0001.json"
    assert joint_file(str(tmp_path), "2K2K", "0001") == ours  # str paths too


def test_load_joints_2k2k_reads_each_source(tmp_path):
    kp = kp3ds_array()
    kp[21, 3] = 0.0  # left heel (31-row 19) invisible, left ankle visible -> heel = ankle
    write_json(tmp_path / "obj" / "2K2K" / "0001" / "kp3ds.json", kp.tolist())
    points, visible = load_joints(tmp_path, "2K2K", "0001")
    rows = expected_kp3ds_rows()
    assert visible.all()
    np.testing.assert_array_equal(points[19], kp[14, :3])  # heel <- left ankle (body 14)
    keep = [i for i in range(31) if i != 19]
    np.testing.assert_array_equal(points[keep], kp[[rows[i] for i in keep], :3])
    # with our Joint3D file present, it is used instead
    joints, vis = wholebody(np.random.default_rng(1))
    write_wholebody(tmp_path, "2K2K", "0001", joints, vis)
    p2, v2 = load_joints(tmp_path, "2K2K", "0001", finger="pip")
    assert v2.all()
    np.testing.assert_array_equal(p2[:23], joints[:23])
    np.testing.assert_array_equal(p2[23:], joints[[97, 101, 105, 109, 118, 122, 126, 130]])


def test_2k2k_keypoints_from_kp3ds_end_to_end(tmp_path):
    """``write_item_keypoints`` on a 2K2K item with only kp3ds.json: the stored rows are the
    projection of the kp3ds rows, invisible ones (0, 0, 0)."""
    write_ply(tmp_path, "2K2K", "0001")
    kp = kp3ds_array()
    kp[:, :3] = np.random.default_rng(2).uniform(-0.1, 0.1, (N_KP3DS, 3)) + (0.05, 0.9, -0.02)
    kp[0, 3] = 0.0  # nose invisible
    write_json(tmp_path / "obj" / "2K2K" / "0001" / "kp3ds.json", kp.tolist())
    res, yaws = 96, (-20, 10)
    write_noshading(tmp_path, "2K2K", "0001", yaws, res)
    assert write_item_keypoints(tmp_path, "2K2K", "0001", yaws, res)
    transform, facing = scan_transform(tmp_path, "2K2K", "0001")
    assert facing == 0.0
    for yaw in yaws:
        stored = np.load(view_files(tmp_path, "2K2K", "0001", yaw).keypoint)
        assert stored.dtype == np.float32 and stored.shape == (31, 3)
        np.testing.assert_array_equal(stored[0], 0.0)
        p = transform.apply(kp[expected_kp3ds_rows(), :3]) @ rot_y(yaw).T
        f = res / (2 * math.tan(math.radians(25)))
        u = f * p[:, 0] / (1 - p[:, 2]) + res / 2
        v = -f * p[:, 1] / (1 - p[:, 2]) + res / 2
        np.testing.assert_allclose(stored[1:, 0], u[1:], atol=1e-3)
        np.testing.assert_allclose(stored[1:, 1], v[1:], atol=1e-3)
        assert (stored[1:, 2] == 1).all()


# ------------------------------------------------------------------------------------------------
# 3. SMPL-X fill (THuman2)
# ------------------------------------------------------------------------------------------------

FACTS_SMPLX = {  # facts §6.9, by keypoint name
    "nose": 55,
    "l_eye": 57,
    "r_eye": 56,
    "l_ear": 59,
    "r_ear": 58,
    "l_shoulder": 16,
    "r_shoulder": 17,
    "l_elbow": 18,
    "r_elbow": 19,
    "l_wrist": 20,
    "r_wrist": 21,
    "l_hip": 1,
    "r_hip": 2,
    "l_knee": 4,
    "r_knee": 5,
    "l_ankle": 7,
    "r_ankle": 8,
    "l_big_toe": 60,
    "l_small_toe": 61,
    "l_heel": 62,
    "r_big_toe": 63,
    "r_small_toe": 64,
    "r_heel": 65,
    "l_index": 67,
    "l_middle": 68,
    "l_ring": 69,
    "l_little": 70,
    "r_index": 72,
    "r_middle": 73,
    "r_ring": 74,
    "r_little": 75,
}


def test_smplx_fill_index_matches_the_facts():
    assert len(KEYPOINT_NAMES) == 31 and set(FACTS_SMPLX) == set(KEYPOINT_NAMES)
    assert tuple(FACTS_SMPLX[n] for n in KEYPOINT_NAMES) == tuple(SMPLX_FILL_INDEX)


def test_fill_from_smplx_fills_only_invisible_rows():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(31, 3))
    visible = np.ones(31, dtype=bool)
    invisible = [0, 3, 4, 10, 19, 23, 26, 30]
    visible[invisible] = False
    smplx = np.arange(127 * 3, dtype=np.float64).reshape(127, 3) + 1000.0  # distinct rows
    before_p, before_v = points.copy(), visible.copy()
    filled, vis = fill_from_smplx(points, visible, smplx)
    np.testing.assert_array_equal(points, before_p)  # inputs untouched
    np.testing.assert_array_equal(visible, before_v)
    assert vis.shape == (31,) and vis.dtype == bool and vis.all()
    for row in range(31):
        want = smplx[FACTS_SMPLX[KEYPOINT_NAMES[row]]] if row in invisible else points[row]
        np.testing.assert_array_equal(filled[row], want, err_msg=f"row {row}")
    # nothing invisible -> nothing changes
    same, _ = fill_from_smplx(points, np.ones(31, dtype=bool), smplx)
    np.testing.assert_array_equal(same, points)


def test_thuman2_without_smplx_model_keeps_invisible_joints(tmp_path):
    # COCO-WholeBody rows: 3 (l ear), 19 (l heel; ankle 15 visible -> cleaned), 100 (l middle)
    joints, vis = wholebody(np.random.default_rng(0), invisible=(3, 19, 100))
    write_wholebody(tmp_path, "THuman2", "0001", joints, vis)
    points, visible = load_joints(tmp_path, "THuman2", "0001")
    assert set(np.flatnonzero(~visible)) == {3, 24}
    np.testing.assert_array_equal(points[19], joints[15])


def test_thuman2_smplx_is_only_evaluated_when_a_joint_is_invisible(tmp_path):
    """All joints visible: the SMPL-X model path is not used (a bogus one is fine); some invisible:
    the missing parameter file is reported by name."""
    joints, vis = wholebody(np.random.default_rng(0))
    write_wholebody(tmp_path, "THuman2", "0001", joints, vis)
    bogus_model = tmp_path / "no_model_here"
    points, visible = load_joints(tmp_path, "THuman2", "0001", smplx_model_path=bogus_model)
    assert visible.all()
    np.testing.assert_array_equal(points[:23], joints[:23])
    joints, vis = wholebody(np.random.default_rng(0), invisible=(3,))
    write_wholebody(tmp_path, "THuman2", "0002", joints, vis)
    params = tmp_path / "obj" / "THuman2" / "smplx" / "0002" / "smplx_param.pkl"
    with pytest.raises(RenderInputError) as info:
        load_joints(tmp_path, "THuman2", "0002", smplx_model_path=bogus_model)
    assert str(params) in str(info.value)


def test_smplx_joints_input_errors_name_the_file(tmp_path):
    missing = tmp_path / "smplx" / "0001" / "smplx_param.pkl"
    model = tmp_path / "models"
    with pytest.raises(RenderInputError) as info:
        smplx_joints(missing, model)
    assert str(missing) in str(info.value)
    corrupt = tmp_path / "corrupt.pkl"
    corrupt.write_bytes(b"not a pickle")
    with pytest.raises(RenderInputError) as info:
        smplx_joints(corrupt, model)
    assert str(corrupt) in str(info.value)
    # readable parameters, no model files: the model folder is named
    good = tmp_path / "good.pkl"
    with open(good, "wb") as f:
        pickle.dump({"betas": np.zeros((1, 10), np.float32)}, f)
    with pytest.raises(RenderInputError) as info:
        smplx_joints(good, model)
    assert str(model) in str(info.value)


# ------------------------------------------------------------------------------------------------
# 4. keypoints from OpenPose JSONs
# ------------------------------------------------------------------------------------------------


def openpose_person(rng: np.random.Generator, res: int) -> dict:
    pose = np.concatenate(
        (rng.uniform(5, res - 5, (25, 2)), rng.uniform(0.2, 1.0, (25, 1))), axis=1
    )
    pose[18] = 0.0  # left ear not detected -> takes the left eye
    hands = [
        np.concatenate((rng.uniform(5, res - 5, (21, 2)), rng.uniform(0.2, 1.0, (21, 1))), axis=1)
        for _ in range(2)
    ]
    hands[1][10, 2] = 0.0  # right middle finger missing
    return {
        "people": [
            {
                "pose_keypoints_2d": pose.ravel().tolist(),
                "hand_left_keypoints_2d": hands[0].ravel().tolist(),
                "hand_right_keypoints_2d": hands[1].ravel().tolist(),
            }
        ]
    }


@pytest.fixture
def op_ds(tmp_path):
    """A 2K2K item folder (no mesh, no joints) and OpenPose JSONs for yaws -10 and 20."""
    root, op_dir = tmp_path / "data", tmp_path / "openpose"
    (root / "obj" / "2K2K" / "0001").mkdir(parents=True)
    rng = np.random.default_rng(5)
    jsons = {}
    for yaw in (-10, 20):
        jsons[yaw] = write_json(
            op_dir / view_name("2K2K", yaw) / "0001_front_keypoints.json",
            openpose_person(rng, 64),
        )
    return root, op_dir, jsons


def write_noshading(root, data_name, item, yaws, res, value=0):
    """Stand-in NOSHADING front images (the keypoint overlay is drawn on them)."""
    for yaw in yaws:
        nf = view_files(root, data_name, item, yaw).noshading_front
        nf.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(nf), np.full((res, res, 3), value, np.uint8))


def test_openpose_source_writes_the_test_time_keypoints(op_ds):
    root, op_dir, jsons = op_ds
    res = 64
    with pytest.raises(RenderInputError, match="render the views first"):
        write_item_keypoints(root, "2K2K", "0001", (-10, 20), res, "openpose", op_dir)
    write_noshading(root, "2K2K", "0001", (20,), res)
    write_noshading(root, "2K2K", "0001", (-10,), 2 * res)
    with pytest.raises(RenderInputError, match="rendered at 128x128"):
        write_item_keypoints(root, "2K2K", "0001", (-10, 20), res, "openpose", op_dir)
    assert not any((root / "PERS" / "keypoint").rglob("*"))
    background = np.full((res, res, 3), 77, np.uint8)
    write_noshading(root, "2K2K", "0001", (-10,), res, 77)
    assert write_item_keypoints(root, "2K2K", "0001", (-10, 20), res, "openpose", op_dir)
    for yaw in (-10, 20):
        files = view_files(root, "2K2K", "0001", yaw)
        kp = np.load(files.keypoint)
        assert kp.dtype == np.float32 and kp.shape == (31, 3)
        np.testing.assert_array_equal(kp, load_openpose_json(jsons[yaw]).astype(np.float32))
        assert (kp[:, 2] < 1).all() and (kp[:, 2] > 0).sum() == 30  # confidences, not 1
        np.testing.assert_array_equal(kp[3], kp[1])  # ear <- eye
        sample = cv2.imread(str(files.keypoint_sample), cv2.IMREAD_COLOR)
        assert sample is not None and sample.shape == (res, res, 3)
        canvas = background if yaw == -10 else np.zeros((res, res, 3), np.uint8)
        np.testing.assert_array_equal(sample, keypoint_overlay(canvas, kp))
    # resume: everything present -> nothing done, nothing rewritten
    npy = view_files(root, "2K2K", "0001", 20).keypoint
    mtime = npy.stat().st_mtime_ns
    jsons[20].write_text(json.dumps({"people": []}))  # would raise if it were read again
    assert write_item_keypoints(root, "2K2K", "0001", (-10, 20), res, "openpose", op_dir) is False
    assert npy.stat().st_mtime_ns == mtime


def test_openpose_zero_people_writes_nothing_for_the_item(op_ds):
    root, op_dir, jsons = op_ds
    jsons[20].write_text(json.dumps({"people": []}))
    with pytest.raises(KeypointError) as info:
        write_item_keypoints(root, "2K2K", "0001", (-10, 20), 64, "openpose", op_dir)
    assert str(jsons[20]) in str(info.value)
    for yaw in (-10, 20):
        files = view_files(root, "2K2K", "0001", yaw)
        assert not files.keypoint.exists() and not files.keypoint_sample.exists()
    assert not (root / "PERS").exists()


def test_openpose_missing_json_writes_nothing(op_ds):
    root, op_dir, jsons = op_ds
    with pytest.raises(KeypointError) as info:
        write_item_keypoints(root, "2K2K", "0001", (-10, 20, 30), 64, "openpose", op_dir)
    assert str(op_dir / view_name("2K2K", 30) / "0001_front_keypoints.json") in str(info.value)
    assert not (root / "PERS").exists()


def test_openpose_resume_only_does_the_missing_view(op_ds):
    root, op_dir, jsons = op_ds
    write_noshading(root, "2K2K", "0001", (-10, 20), 64)
    assert write_item_keypoints(root, "2K2K", "0001", (-10, 20), 64, "openpose", op_dir)
    done = view_files(root, "2K2K", "0001", -10)
    done.keypoint_sample.unlink()  # incomplete view -> redone
    kept = view_files(root, "2K2K", "0001", 20).keypoint
    mtime = kept.stat().st_mtime_ns
    jsons[20].write_text("{broken")  # would raise if the complete view were read again
    assert write_item_keypoints(root, "2K2K", "0001", (-10, 20), 64, "openpose", op_dir)
    assert done.keypoint_sample.is_file()
    assert kept.stat().st_mtime_ns == mtime
    # overwrite reads every view again
    with pytest.raises(KeypointError):
        write_item_keypoints(
            root, "2K2K", "0001", (-10, 20), 64, "openpose", op_dir, overwrite=True
        )


def test_openpose_source_needs_a_folder_and_a_known_source(op_ds):
    root, _, _ = op_ds
    with pytest.raises(ValueError, match="openpose_dir"):
        write_item_keypoints(root, "2K2K", "0001", (-10,), 64, "openpose")
    with pytest.raises(ValueError, match="source"):
        write_item_keypoints(root, "2K2K", "0001", (-10,), 64, "detector")
    assert not (root / "PERS").exists()


# ------------------------------------------------------------------------------------------------
# 5. projection
# ------------------------------------------------------------------------------------------------


def test_project_keypoints_is_the_hand_computed_pinhole():
    rng = np.random.default_rng(7)
    center = np.array([12.0, 95.0, -4.0])
    scale = 2.8 * 90.0
    facing = rot_y(-90.0)
    transform = ScanTransform(center=center, scale=scale, rotation=facing, post_scale=0.9)
    points = center + rng.uniform(-60, 60, (31, 3))
    visible = np.ones(31, dtype=bool)
    visible[[2, 17, 29]] = False
    res, yaw = 200, 30.0
    rotation = rot_y(yaw)
    f = res / (2 * math.tan(math.radians(25)))  # facts §6.3
    for s in (1.0, 1.037):
        kp = project_keypoints(points, visible, transform, rotation, res, s)
        assert kp.dtype == np.float32 and kp.shape == (31, 3)
        for i in range(31):
            if not visible[i]:
                np.testing.assert_array_equal(kp[i], 0.0, err_msg=f"row {i}")
                continue
            x0 = 0.9 * facing @ ((points[i] - center) / scale)  # normalise + facing fix
            x, y, z = s * (rotation @ x0)  # view yaw, then the keypoint scale
            u = f * x / (1 - z) + res / 2
            v = -f * y / (1 - z) + res / 2
            np.testing.assert_allclose(kp[i], (u, v, 1.0), rtol=1e-6, atol=1e-3, err_msg=f"{i}")
    # the yaw sign matters: rotation about +Y moves a point in front (+z) towards +x (+u)
    p = np.tile(center + (0.0, 0.0, 50.0), (31, 1))
    ident = ScanTransform(center=center, scale=scale, rotation=np.eye(3), post_scale=1.0)
    assert project_keypoints(p, visible, ident, rot_y(30), res)[0, 0] > res / 2
    assert project_keypoints(p, visible, ident, rot_y(-30), res)[0, 0] < res / 2


# ------------------------------------------------------------------------------------------------
# 6. overlay
# ------------------------------------------------------------------------------------------------


def test_keypoint_overlay_draws_only_visible_points():
    res = 256
    image = np.full((res, res, 3), 40, np.uint8)
    kp = np.zeros((31, 3), np.float32)
    grid = [(20 + 40 * (i % 6), 20 + 40 * (i // 6)) for i in range(31)]  # well separated
    kp[:, :2] = grid
    kp[:, 2] = 1.0
    hidden = [1, 6, 14, 25, 30]
    kp[hidden[:3], 2] = 0.0
    kp[hidden[3:], 2] = -0.5  # negative confidence is not drawn either
    out = keypoint_overlay(image, kp)
    np.testing.assert_array_equal(image, 40)  # input untouched
    assert out.shape == image.shape and out.dtype == np.uint8
    colors = {"l_": (0, 200, 0), "r_": (0, 0, 230)}
    for i, (u, v) in enumerate(grid):
        patch = out[v - 6 : v + 7, u - 6 : u + 7]
        if i in hidden:
            np.testing.assert_array_equal(patch, 40, err_msg=f"row {i} drawn")
        else:
            assert (patch != 40).any(), f"row {i} not drawn"
            want = colors.get(KEYPOINT_NAMES[i][:2], (230, 0, 0))
            np.testing.assert_array_equal(out[v, u], want, err_msg=f"row {i} colour")
    # far from every keypoint the image is unchanged
    mask = np.ones((res, res), bool)
    for u, v in grid:
        mask[v - 6 : v + 7, u - 6 : u + 7] = False
    assert (out[mask] == 40).all()
