"""Tests of utils/keypoints.py: OpenPose conversion, padding, part similarity fits, inverses."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import FIXTURES, shared_case

from utils.keypoints import (
    KEYPOINT_NAMES,
    NUM_KEYPOINTS,
    NUM_PARTS,
    PART_NAMES,
    KeypointError,
    PartPlacementError,
    fit_part_similarities,
    invert_affine,
    keypoints_to_nc,
    load_openpose_json,
    openpose_to_keypoints31,
    pad_and_scale_keypoints,
    part_matrices,
)

EDGE_JSON = FIXTURES / "keypoint_edge_cases" / "edge_005_modified_keypoints.json"
EDGE_NPZ = FIXTURES / "keypoint_edge_cases" / "edge_cases.npz"

RES = 2048
KP = {name: i for i, name in enumerate(KEYPOINT_NAMES)}

# Independent restatement of fact sheet §3.3 (for the analytic checks; not taken from the module).
FOOT_TARGETS = np.array([(0, 1 / 24), (0, 1 / 24), (0, -1 / 24), (0, -1 / 24)], dtype=np.float64)
# Two-point parts: part -> (keypoint rows, targets, tau of the cap on the pair).
TWO_POINT_PARTS = {
    0: ((4, 3), ((-1 / 12, 1 / 24), (1 / 12, 1 / 24)), 1 / 6),
    2: ((5, 7), ((0, -0.1875), (0, 0.0625)), 1 / 4),
    4: ((6, 8), ((0, -0.1875), (0, 0.0625)), 1 / 4),
    6: ((11, 13), ((-3 / 128, -5 / 32), (-3 / 128, 3 / 32)), 1 / 4),
    7: ((13, 15), ((-3 / 128, -9 / 64), (-3 / 128, 9 / 64)), 9 / 32),
    8: ((12, 14), ((3 / 128, -5 / 32), (3 / 128, 3 / 32)), 1 / 4),
    9: ((14, 16), ((3 / 128, -9 / 64), (3 / 128, 9 / 64)), 9 / 32),
}
LOWER_ARM_TARGETS = np.array([(0, -2 / 9), (0, 0), (0, 1 / 18)], dtype=np.float64)
LOWER_ARMS = {3: (7, 9, (23, 24, 25, 26)), 5: (8, 10, (27, 28, 29, 30))}


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------


def lstsq_similarity(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Independent least-squares similarity fit (numpy lstsq) -> (2, 3) [[a,-b,tx],[b,a,ty]]."""
    rows, rhs = [], []
    for (px, py), (qx, qy) in zip(p, q, strict=True):
        rows += [[px, -py, 1.0, 0.0], [py, px, 0.0, 1.0]]
        rhs += [qx, qy]
    a, b, tx, ty = np.linalg.lstsq(np.array(rows), np.array(rhs), rcond=None)[0]
    return np.array([[a, -b, tx], [b, a, ty]])


def to_nc(uv: np.ndarray) -> np.ndarray:
    return 2.0 * np.asarray(uv, dtype=np.float64) / RES - 1.0


def apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine to (n, 2) points."""
    return pts @ np.asarray(m, dtype=np.float64)[:, :2].T + np.asarray(m, dtype=np.float64)[:, 2]


def homog(m: np.ndarray) -> np.ndarray:
    out = np.eye(3)
    out[:2] = m
    return out


def scale_of(m: np.ndarray) -> float:
    return math.hypot(float(m[0, 0]), float(m[1, 0]))


def angle_of(m: np.ndarray) -> float:
    return math.atan2(float(m[1, 0]), float(m[0, 0]))


def synthetic_body() -> np.ndarray:
    """A plausible upright person in the 2048 frame: (31, 3) rows (u, v, 0.9).

    The left lower leg is exactly vertical (knee and ankle share u).
    """
    uv = {
        "nose": (1024, 300),
        "l_eye": (1050, 280),
        "r_eye": (998, 280),
        "l_ear": (1085, 296),
        "r_ear": (963, 296),
        "l_shoulder": (1200, 480),
        "r_shoulder": (848, 482),
        "l_elbow": (1262, 760),
        "r_elbow": (786, 758),
        "l_wrist": (1292, 1010),
        "r_wrist": (752, 1012),
        "l_hip": (1118, 1050),
        "r_hip": (930, 1052),
        "l_knee": (1130, 1400),
        "r_knee": (915, 1398),
        "l_ankle": (1130, 1750),
        "r_ankle": (905, 1752),
        "l_big_toe": (1165, 1852),
        "l_small_toe": (1195, 1838),
        "l_heel": (1122, 1784),
        "r_big_toe": (872, 1853),
        "r_small_toe": (842, 1840),
        "r_heel": (912, 1786),
        "l_index": (1310, 1098),
        "l_middle": (1298, 1106),
        "l_ring": (1286, 1102),
        "l_little": (1275, 1094),
        "r_index": (736, 1100),
        "r_middle": (748, 1108),
        "r_ring": (760, 1104),
        "r_little": (771, 1096),
    }
    assert set(uv) == set(KEYPOINT_NAMES)
    kp = np.zeros((NUM_KEYPOINTS, 3))
    for name, (u, v) in uv.items():
        kp[KP[name]] = (u, v, 0.9)
    return kp


def drop(kp: np.ndarray, *names: str) -> np.ndarray:
    out = kp.copy()
    for name in names:
        out[KP[name]] = 0.0
    return out


def openpose_dict(body25: np.ndarray, left: np.ndarray | None, right: np.ndarray | None) -> dict:
    person: dict = {"person_id": [-1], "pose_keypoints_2d": body25.reshape(-1).tolist()}
    person["hand_left_keypoints_2d"] = [] if left is None else left.reshape(-1).tolist()
    person["hand_right_keypoints_2d"] = [] if right is None else right.reshape(-1).tolist()
    return {"version": 1.3, "people": [person]}


# ------------------------------------------------------------------------------------------------
# 1. parity with the authors' reference arrays
# ------------------------------------------------------------------------------------------------


def test_constants():
    assert NUM_KEYPOINTS == len(KEYPOINT_NAMES) == 31
    assert NUM_PARTS == len(PART_NAMES) == 12
    assert len(set(KEYPOINT_NAMES)) == 31
    assert PART_NAMES[0] == "face" and PART_NAMES[10:] == ("l_foot", "r_foot")
    assert KEYPOINT_NAMES[5] == "l_shoulder" and KEYPOINT_NAMES[22] == "r_heel"


def _check_parity(json_path: Path, ref_dir: Path, height: int, width: int) -> None:
    raw = load_openpose_json(json_path)
    kp = pad_and_scale_keypoints(raw, height, width)
    np.testing.assert_allclose(kp, np.load(ref_dir / "keypoints31.npy"), rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        keypoints_to_nc(kp), np.load(ref_dir / "keypoints31_nc.npy"), rtol=0, atol=1e-12
    )
    m, theta = part_matrices(kp, source=str(json_path))
    assert m.dtype == np.float32 and theta.dtype == np.float32
    assert m.shape == theta.shape == (12, 2, 3)
    np.testing.assert_allclose(m, np.load(ref_dir / "M_similarity.npy"), rtol=0, atol=1e-6)
    np.testing.assert_allclose(theta, np.load(ref_dir / "theta.npy"), rtol=0, atol=1e-6)


def test_parity_case_syn():
    d = FIXTURES / "case_syn"
    _check_parity(d / "syn_keypoints.json", d, 2048, 2048)


@pytest.mark.parametrize("case", ["000", "005"])
def test_parity_sith_cases(case):
    ref = shared_case(f"case_{case}")
    _check_parity(FIXTURES / "openpose" / f"sith_{case}_keypoints.json", ref, 1024, 1024)


def test_theta_of_reference_matrices_matches_reference():
    """invert_affine reproduces the authors' float32 inversion from their own M."""
    d = FIXTURES / "case_syn"
    theta = invert_affine(torch.from_numpy(np.load(d / "M_similarity.npy"))).numpy()
    np.testing.assert_allclose(theta, np.load(d / "theta.npy"), rtol=0, atol=1e-6)


# ------------------------------------------------------------------------------------------------
# 2. the authors' keypoint edge cases
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "height", "width"),
    [("square_1024x1024", 1024, 1024), ("nonsquare_h1024_w896", 1024, 896)],
)
def test_edge_cases(tag, height, width):
    ref = np.load(EDGE_NPZ)
    ref_kp = ref[f"{tag}__keypoints31"]
    ref_nc = ref[f"{tag}__keypoints31_nc"]
    ref_m = ref[f"{tag}__M_similarity"]
    ref_theta = ref[f"{tag}__theta"]

    raw = load_openpose_json(EDGE_JSON)
    # Ear fallback in the JSON conversion: L ear (BODY_25 18) zeroed -> whole L eye row.
    np.testing.assert_array_equal(raw[KP["l_ear"]], raw[KP["l_eye"]])
    kp = pad_and_scale_keypoints(raw, height, width)

    missing = ["l_heel", "r_big_toe", "l_index", "l_ring"]
    valid = kp[:, 2] > 0
    assert sorted(np.flatnonzero(~valid)) == sorted(KP[n] for n in missing)
    # Valid rows equal the authors'; missing rows stay (0,0,0) (the authors shift them by the pad).
    np.testing.assert_allclose(kp[valid], ref_kp[valid], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(kp[~valid], 0.0)
    np.testing.assert_allclose(keypoints_to_nc(kp)[valid], ref_nc[valid], rtol=0, atol=1e-12)

    m, theta = part_matrices(kp, source=tag)
    # Parts 0-9 (incl. the L lower arm with two of four fingers missing) equal the authors'.
    np.testing.assert_allclose(m[:10], ref_m[:10], rtol=0, atol=1e-6)
    np.testing.assert_allclose(theta[:10], ref_theta[:10], rtol=0, atol=1e-6)

    # Feet: the authors' foot fallbacks did not fire in either case -- their foot matrices are the
    # fit with the missing point's raw NC value (square: (0, 0); non-square: (-0.875, 0)).
    nc_auth = ref_nc
    auth_l = lstsq_similarity(nc_auth[[17, 18, 19, 15]], FOOT_TARGETS)
    auth_r = lstsq_similarity(nc_auth[[20, 21, 22, 16]], FOOT_TARGETS)
    np.testing.assert_allclose(ref_m[10], auth_l, rtol=0, atol=1e-6)
    np.testing.assert_allclose(ref_m[11], auth_r, rtol=0, atol=1e-6)

    # Ours: intended fallbacks (L heel := L ankle, R big toe := R small toe), so the feet differ.
    nc = keypoints_to_nc(kp)
    ours_l = lstsq_similarity(nc[[17, 18, 15, 15]], FOOT_TARGETS)
    ours_r = lstsq_similarity(nc[[21, 21, 22, 16]], FOOT_TARGETS)
    np.testing.assert_allclose(m[10], ours_l, rtol=0, atol=1e-6)
    np.testing.assert_allclose(m[11], ours_r, rtol=0, atol=1e-6)
    assert np.abs(m[10:] - ref_m[10:]).max(axis=(1, 2)).min() > 0.1
    # Sanity of our feet: toe down, heel/ankle up, scale < 1 as for complete feet.
    for k in (10, 11):
        assert 0.3 < scale_of(m[k]) < 1.5
    assert np.isfinite(theta).all()


def test_edge_case_square_equals_nonsquare_up_to_padding():
    """With explicit validity, padding only shifts the image: M differs by the pad translation."""
    raw = load_openpose_json(EDGE_JSON)
    m_sq, _ = part_matrices(pad_and_scale_keypoints(raw, 1024, 1024))
    m_ns, _ = part_matrices(pad_and_scale_keypoints(raw, 1024, 896))
    # Non-square keypoints are shifted right by 64 px * 2 = 128 px = 0.125 NC:
    # M_ns = M_sq o T(-0.125).
    shift = np.array([[1.0, 0.0, -0.125], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    expected = np.einsum("kij,jl->kil", np.stack([homog(m) for m in m_sq]), shift)[:, :2]
    np.testing.assert_allclose(m_ns, expected, rtol=0, atol=2e-6)


# ------------------------------------------------------------------------------------------------
# 3. analytic properties
# ------------------------------------------------------------------------------------------------


def test_two_point_parts_hit_capped_targets_exactly():
    """2-point parts map their keypoints exactly onto the targets, scaled by min(1, L/tau)."""
    body = synthetic_body()
    for short, factor in ((False, 1.6), (True, 0.35)):
        # grow / shrink the body about the image centre: every limb above / below its cap
        kp = body.copy()
        kp[:, :2] = 1024 + factor * (kp[:, :2] - 1024)
        m = fit_part_similarities(kp)
        nc = to_nc(kp[:, :2])
        for k, (rows, targets, tau) in TWO_POINT_PARTS.items():
            p = nc[list(rows)]
            length = float(np.linalg.norm(p[0] - p[1]))
            assert (length < tau) == short, (PART_NAMES[k], length, tau)
            q = np.asarray(targets) * min(1.0, length / tau)
            np.testing.assert_allclose(apply(m[k], p), q, rtol=0, atol=2e-6)
            expected_scale = 1.0 if short else tau / length
            assert scale_of(m[k]) == pytest.approx(expected_scale, abs=1e-6)


def test_lower_leg_rotation_angle():
    """Rotating the ankle about the knee by alpha rotates the fitted part by -alpha."""
    body = synthetic_body()
    m0 = fit_part_similarities(body)
    assert angle_of(m0[7]) == pytest.approx(0.0, abs=1e-6)  # vertical limb: no rotation
    knee = body[KP["l_knee"], :2]
    d = body[KP["l_ankle"], :2] - knee
    for alpha in (-1.2, -0.4, 0.3, 0.9, 2.5):
        c, s = math.cos(alpha), math.sin(alpha)
        kp = body.copy()
        kp[KP["l_ankle"], :2] = knee + np.array([c * d[0] - s * d[1], s * d[0] + c * d[1]])
        m = fit_part_similarities(kp)
        assert angle_of(m[7]) == pytest.approx(-alpha, abs=1e-6)
        # The limb points down the crop: knee above ankle in canvas coordinates.
        pk, pa = apply(m[7], to_nc(kp[[KP["l_knee"], KP["l_ankle"]], :2]))
        assert pa[1] > pk[1] and abs(pa[0] - pk[0]) < 1e-6
        others = [0, 1, 2, 3, 4, 5, 6, 8, 9, 11]  # all but the L lower leg and L foot (ankle)
        np.testing.assert_array_equal(m[others], m0[others])


@pytest.mark.parametrize("shrink", [1.0, 0.4])
def test_lower_arm_collinear_hand_is_exact(shrink):
    """Elbow, wrist and a finger mean 1/4 forearm beyond the wrist fit the targets exactly."""
    body = synthetic_body()
    body[:, :2] = 1024 + shrink * (body[:, :2] - 1024)
    for k, (elbow, wrist, fingers) in LOWER_ARMS.items():
        kp = body.copy()
        e, w = kp[elbow, :2], kp[wrist, :2]
        hand = w + 0.25 * (w - e)
        offsets = np.array([[3.0, 1.0], [-3.0, -1.0], [1.0, -2.0], [-1.0, 2.0]])  # mean zero
        kp[list(fingers), :2] = hand + offsets
        m = fit_part_similarities(kp)
        p = to_nc(np.stack([e, w, hand]))
        length = float(np.linalg.norm(p[2] - p[0]))
        factor = min(1.0, length / (5 / 18))
        assert (factor < 1.0) == (shrink < 1.0)
        np.testing.assert_allclose(apply(m[k], p), LOWER_ARM_TARGETS * factor, rtol=0, atol=2e-6)


def _similarity_nc(angle: float, scale: float, tx: float, ty: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[scale * c, -scale * s, tx], [scale * s, scale * c, ty]])


def _transform_keypoints(kp: np.ndarray, s_nc: np.ndarray) -> np.ndarray:
    out = kp.copy()
    out[:, :2] = (apply(s_nc, to_nc(kp[:, :2])) + 1.0) * RES / 2
    return out


def test_equivariance_rigid():
    """Rotating/translating the whole body by S gives M' = M o S^-1 for every part."""
    body = synthetic_body()
    m = fit_part_similarities(body)
    s_nc = _similarity_nc(0.35, 1.0, 0.07, -0.04)
    m2 = fit_part_similarities(_transform_keypoints(body, s_nc))
    expected = np.stack([homog(mk) @ np.linalg.inv(homog(s_nc)) for mk in m])[:, :2]
    np.testing.assert_allclose(m2, expected, rtol=0, atol=2e-6)


def test_equivariance_with_scale_on_uncapped_parts():
    """With isotropic scaling, parts without a length cap (upper body, feet) stay equivariant."""
    body = synthetic_body()
    m = fit_part_similarities(body)
    s_nc = _similarity_nc(-0.6, 1.25, -0.03, 0.02)
    m2 = fit_part_similarities(_transform_keypoints(body, s_nc))
    s_inv = np.linalg.inv(homog(s_nc))
    for k in (1, 10, 11):
        np.testing.assert_allclose(m2[k], (homog(m[k]) @ s_inv)[:2], rtol=0, atol=2e-6)
    # Capped parts that are below their cap keep scale 1 after scaling (no magnification).
    small = body.copy()
    small[:, :2] = 1024 + 0.3 * (small[:, :2] - 1024)
    m3 = fit_part_similarities(_transform_keypoints(small, s_nc))
    for k in TWO_POINT_PARTS:
        assert scale_of(m3[k]) == pytest.approx(1.0, abs=1e-6)


def test_keypoints_to_nc_values():
    kp = np.zeros((31, 3))
    kp[0, :2] = (0, 2048)
    kp[1, :2] = (1024, 512)
    nc = keypoints_to_nc(kp)
    assert nc.shape == (31, 2) and nc.dtype == np.float64
    np.testing.assert_array_equal(nc[0], (-1.0, 1.0))
    np.testing.assert_array_equal(nc[1], (0.0, -0.5))
    np.testing.assert_array_equal(keypoints_to_nc(kp[:, :2], res=1024)[1], (1.0, 0.0))


@pytest.mark.parametrize(
    ("height", "width", "top", "left"),
    [
        (1024, 896, 0, 64),
        (896, 1024, 64, 0),
        (1000, 997, 0, 1),
        (997, 1000, 1, 0),
        (640, 640, 0, 0),
    ],
)
def test_pad_and_scale(height, width, top, left):
    kp = np.zeros((31, 3))
    kp[:, 0] = np.linspace(1, 600, 31)
    kp[:, 1] = np.linspace(5, 630, 31)
    kp[:, 2] = 0.5
    kp[[3, 19], :] = 0.0
    kp[7, 2] = 0.0  # zero confidence but non-zero coordinates: missing as well
    out = pad_and_scale_keypoints(kp, height, width)
    scale = 2048 / max(height, width)
    valid = kp[:, 2] > 0
    np.testing.assert_allclose(out[valid, 0], (kp[valid, 0] + left) * scale, rtol=0, atol=1e-12)
    np.testing.assert_allclose(out[valid, 1], (kp[valid, 1] + top) * scale, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(out[valid, 2], kp[valid, 2])
    np.testing.assert_array_equal(out[~valid], 0.0)
    assert out.dtype == np.float64
    out[0, 0] = -1
    assert kp[0, 0] == 1  # input not modified


def test_pad_and_scale_identity_at_2048():
    kp = synthetic_body()
    np.testing.assert_array_equal(pad_and_scale_keypoints(kp, 2048, 2048), kp)


# ------------------------------------------------------------------------------------------------
# 4. fallbacks and errors
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("side", ["l", "r"])
def test_all_fingers_missing_extrapolates_hand(side):
    body = synthetic_body()
    k = 3 if side == "l" else 5
    fingers = [f"{side}_{f}" for f in ("index", "middle", "ring", "little")]
    m_missing = fit_part_similarities(drop(body, *fingers))
    assert np.isfinite(m_missing).all()
    explicit = body.copy()
    e, w = body[KP[f"{side}_elbow"], :2], body[KP[f"{side}_wrist"], :2]
    explicit[[KP[f] for f in fingers], :2] = w + 0.25 * (w - e)
    m_explicit = fit_part_similarities(explicit)
    np.testing.assert_allclose(m_missing, m_explicit, rtol=0, atol=1e-7)
    assert np.abs(m_missing[k] - fit_part_similarities(body)[k]).max() > 1e-4


def test_some_fingers_missing_uses_mean_of_present():
    body = synthetic_body()
    kp = drop(body, "r_index", "r_little")
    explicit = body.copy()
    mean = body[[KP["r_middle"], KP["r_ring"]], :2].mean(axis=0)
    explicit[[27, 28, 29, 30], :2] = mean
    np.testing.assert_allclose(
        fit_part_similarities(kp), fit_part_similarities(explicit), rtol=0, atol=1e-7
    )


@pytest.mark.parametrize(
    ("missing", "replacement", "part"),
    [
        ("l_big_toe", "l_small_toe", 10),
        ("l_small_toe", "l_big_toe", 10),
        ("l_heel", "l_ankle", 10),
        ("r_big_toe", "r_small_toe", 11),
        ("r_small_toe", "r_big_toe", 11),
        ("r_heel", "r_ankle", 11),
    ],
)
def test_foot_fallbacks(missing, replacement, part):
    body = synthetic_body()
    m = fit_part_similarities(drop(body, missing))
    explicit = body.copy()
    explicit[KP[missing], :2] = body[KP[replacement], :2]
    np.testing.assert_allclose(m, fit_part_similarities(explicit), rtol=0, atol=1e-7)
    assert np.abs(m[part] - fit_part_similarities(body)[part]).max() > 1e-4
    assert np.isfinite(m).all()


def test_heel_and_toe_missing_together():
    body = synthetic_body()
    m = fit_part_similarities(drop(body, "l_heel", "l_small_toe"))
    nc = to_nc(body[:, :2])
    expected = lstsq_similarity(nc[[17, 17, 15, 15]], FOOT_TARGETS)
    np.testing.assert_allclose(m[10], expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("side", ["l", "r"])
def test_both_toes_missing_raises(side):
    with pytest.raises(PartPlacementError) as info:
        fit_part_similarities(
            drop(synthetic_body(), f"{side}_big_toe", f"{side}_small_toe"), source="body.json"
        )
    msg = str(info.value)
    assert f"{side}_foot" in msg and f"{side}_big_toe" in msg and "body.json" in msg
    assert info.value.parts == (f"{side}_foot",)


def test_missing_shoulder_raises_naming_parts_and_source():
    with pytest.raises(PartPlacementError) as info:
        part_matrices(drop(synthetic_body(), "l_shoulder"), source="person_017_keypoints.json")
    err = info.value
    msg = str(err)
    assert "shoulder" in msg and "person_017_keypoints.json" in msg
    assert "upper_body" in msg and "l_upper_arm" in msg
    assert set(err.parts) == {"upper_body", "l_upper_arm"}
    assert err.keypoints == ("l_shoulder",)
    assert isinstance(err, KeypointError) and isinstance(err, ValueError)


@pytest.mark.parametrize(
    ("name", "parts"),
    [
        ("r_elbow", {"r_upper_arm", "r_lower_arm"}),
        ("l_wrist", {"l_lower_arm"}),
        ("r_hip", {"upper_body", "r_upper_leg"}),
        ("l_knee", {"l_upper_leg", "l_lower_leg"}),
        ("r_ankle", {"r_lower_leg", "r_foot"}),
        ("l_ear", {"face"}),
    ],
)
def test_required_keypoint_missing_raises(name, parts):
    with pytest.raises(PartPlacementError) as info:
        fit_part_similarities(drop(synthetic_body(), name))
    assert set(info.value.parts) == parts
    assert name in str(info.value)


def test_wrist_and_fingers_missing_raises():
    kp = drop(synthetic_body(), "l_wrist", "l_index", "l_middle", "l_ring", "l_little")
    with pytest.raises(PartPlacementError, match="l_lower_arm.*l_wrist"):
        fit_part_similarities(kp)


def test_degenerate_part_raises():
    kp = synthetic_body()
    kp[KP["r_elbow"], :2] = kp[KP["r_shoulder"], :2]
    with pytest.raises(PartPlacementError, match="r_upper_arm"):
        fit_part_similarities(kp)


def test_non_finite_or_zero_confidence_is_missing():
    body = synthetic_body()
    for bad in ([np.nan, 700.0, 0.9], [700.0, np.inf, 0.9], [700.0, 700.0, -0.5]):
        kp = body.copy()
        kp[KP["r_heel"]] = bad
        np.testing.assert_array_equal(
            fit_part_similarities(kp), fit_part_similarities(drop(body, "r_heel"))
        )


def test_bad_keypoint_shape():
    with pytest.raises(KeypointError, match="shape"):
        fit_part_similarities(np.zeros((25, 3)), source="x")


def test_fuzz_random_validity_never_nan():
    rng = np.random.default_rng(1234)
    body = synthetic_body()
    n_ok = n_err = 0
    for trial in range(300):
        kp = body.copy()
        kp[:, :2] += rng.normal(scale=15.0, size=(31, 2))
        kp[rng.random(31) < 0.12] = 0.0
        try:
            m, theta = part_matrices(kp, source=f"fuzz{trial}")
        except PartPlacementError as exc:
            assert f"fuzz{trial}" in str(exc)
            assert exc.parts and set(exc.parts) <= set(PART_NAMES)
            n_err += 1
        else:
            assert np.isfinite(m).all() and np.isfinite(theta).all()
            assert all(0.05 < scale_of(mk) < 20 for mk in m)
            n_ok += 1
    assert n_ok > 20 and n_err > 20


# -- JSON conversion -----------------------------------------------------------------------------


def _body25_from_31(kp31: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    body25 = np.zeros((25, 3))
    mapping = (0, 16, 15, 18, 17, 5, 2, 6, 3, 7, 4, 12, 9, 13, 10, 14, 11, 19, 20, 21, 22, 23, 24)
    for row, b in enumerate(mapping):
        body25[b] = kp31[row]
    body25[1] = (1024, 480, 0.8)  # neck (unused)
    body25[8] = (1024, 1050, 0.8)  # mid hip (unused)
    hands = []
    for first in (23, 27):
        hand = np.zeros((21, 3))
        hand[:] = (5.0, 6.0, 0.3)  # other hand joints: unused
        for j, pip in enumerate((6, 10, 14, 18)):
            hand[pip] = kp31[first + j]
        hands.append(hand)
    return body25, hands[0], hands[1]


def test_openpose_conversion_roundtrip():
    body = synthetic_body()
    body25, left, right = _body25_from_31(body)
    out = openpose_to_keypoints31(openpose_dict(body25, left, right))
    assert out.shape == (31, 3) and out.dtype == np.float64
    np.testing.assert_array_equal(out, body)


def test_openpose_ear_fallback_and_missing_hands():
    body = synthetic_body()
    body25, left, right = _body25_from_31(body)
    body25[18] = 0.0  # L ear
    body25[17] = (0.0, 0.0, 0.7)  # R ear at (0, 0): OpenPose's "not found"
    body25[21] = (300.0, 400.0, 0.0)  # L heel with zero confidence
    out = openpose_to_keypoints31(openpose_dict(body25, None, right))
    np.testing.assert_array_equal(out[KP["l_ear"]], body[KP["l_eye"]])
    np.testing.assert_array_equal(out[KP["r_ear"]], body[KP["r_eye"]])
    np.testing.assert_array_equal(out[KP["l_heel"]], 0.0)
    np.testing.assert_array_equal(out[23:27], 0.0)
    np.testing.assert_array_equal(out[27:31], body[27:31])
    # hands absent altogether
    data = openpose_dict(body25, left, right)
    del data["people"][0]["hand_left_keypoints_2d"]
    del data["people"][0]["hand_right_keypoints_2d"]
    np.testing.assert_array_equal(openpose_to_keypoints31(data)[23:], 0.0)
    # the all-fingers-missing fallback then places the lower arms
    m, theta = part_matrices(pad_and_scale_keypoints(openpose_to_keypoints31(data), 2048, 2048))
    assert np.isfinite(m).all() and np.isfinite(theta).all()


def test_openpose_uses_first_person():
    body = synthetic_body()
    body25, left, right = _body25_from_31(body)
    data = openpose_dict(body25, left, right)
    other = copy.deepcopy(data["people"][0])
    other["pose_keypoints_2d"] = [1.0] * 75
    data["people"].append(other)
    np.testing.assert_array_equal(openpose_to_keypoints31(data), body)


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda d: d.pop("people"), "no 'people'"),
        (lambda d: d.__setitem__("people", []), "zero people"),
        (lambda d: d["people"][0].pop("pose_keypoints_2d"), "pose_keypoints_2d"),
        (lambda d: d["people"][0].__setitem__("pose_keypoints_2d", [0.0] * 54), "75"),
        (lambda d: d["people"][0]["pose_keypoints_2d"].__setitem__(4, "x"), "numbers"),
        (lambda d: d["people"][0]["pose_keypoints_2d"].__setitem__(4, None), "numbers"),
        (lambda d: d["people"][0]["pose_keypoints_2d"].__setitem__(4, float("nan")), "finite"),
        (lambda d: d["people"][0].__setitem__("hand_left_keypoints_2d", [0.0] * 10), "63"),
        (lambda d: d.__setitem__("people", {"a": 1}), "list"),
    ],
)
def test_openpose_malformed(mutate, match):
    body25, left, right = _body25_from_31(synthetic_body())
    data = openpose_dict(body25, left, right)
    mutate(data)
    with pytest.raises(KeypointError, match=match) as info:
        openpose_to_keypoints31(data, source="img_42_keypoints.json")
    assert "img_42_keypoints.json" in str(info.value)


def test_openpose_not_a_dict():
    with pytest.raises(KeypointError, match="src"):
        openpose_to_keypoints31([1, 2, 3], source="src")  # type: ignore[arg-type]


def test_load_openpose_json_errors(tmp_path):
    missing = tmp_path / "nope_keypoints.json"
    with pytest.raises(KeypointError, match="not found") as info:
        load_openpose_json(missing)
    assert str(missing) in str(info.value)

    broken = tmp_path / "broken_keypoints.json"
    broken.write_text("{ not json", encoding="utf-8")
    with pytest.raises(KeypointError, match="invalid JSON") as info:
        load_openpose_json(broken)
    assert str(broken) in str(info.value)

    empty = tmp_path / "empty_keypoints.json"
    empty.write_text(json.dumps({"version": 1.3, "people": []}), encoding="utf-8")
    with pytest.raises(KeypointError, match="zero people") as info:
        load_openpose_json(str(empty))
    assert str(empty) in str(info.value)


# ------------------------------------------------------------------------------------------------
# 5. invert_affine
# ------------------------------------------------------------------------------------------------


def test_invert_affine_roundtrip_and_composition():
    m, theta = part_matrices(synthetic_body())
    m_t = torch.from_numpy(m)
    theta_t = invert_affine(m_t)
    assert theta_t.dtype == torch.float32 and theta_t.shape == (12, 2, 3)
    np.testing.assert_array_equal(theta_t.numpy(), theta)
    np.testing.assert_allclose(invert_affine(theta_t).numpy(), m, rtol=0, atol=1e-6)
    for mk, tk in zip(m, theta, strict=True):
        np.testing.assert_allclose(homog(tk) @ homog(mk), np.eye(3), rtol=0, atol=1e-6)
        np.testing.assert_allclose(homog(mk) @ homog(tk), np.eye(3), rtol=0, atol=1e-6)


def test_invert_affine_batched_and_general():
    gen = torch.Generator().manual_seed(0)
    m = torch.randn(3, 4, 2, 3, generator=gen, dtype=torch.float64)
    m[..., :2, :2] += 2 * torch.eye(2, dtype=torch.float64)  # well conditioned
    inv = invert_affine(m)
    assert inv.shape == (3, 4, 2, 3) and inv.dtype == torch.float32
    bottom = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64).expand(3, 4, 1, 3)
    h = torch.cat([m, bottom], dim=-2)
    h_inv = torch.cat([inv.double(), bottom], dim=-2)
    eye = torch.eye(3, dtype=torch.float64).expand(3, 4, 3, 3)
    torch.testing.assert_close(h_inv @ h, eye, rtol=0, atol=1e-5)
    with pytest.raises(ValueError):
        invert_affine(torch.zeros(2, 3, 3))
