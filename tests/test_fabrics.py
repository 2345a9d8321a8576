"""Fabric looks of the synthetic garments (``render.synthetic.fabrics``) on a cylinder 'garment'."""

from __future__ import annotations

import numpy as np
import pytest

from render.synthetic.fabrics import (
    FABRICS,
    GARMENTS,
    LOGO_FACING,
    add_logo,
    fabric_colors,
    sample_fabric,
)

RADIUS, HEIGHT, STEP = 0.15, 0.6, 0.01
SEEDS = range(8)
LUMA = np.array([0.299, 0.587, 0.114])


def cylinder() -> tuple[np.ndarray, np.ndarray, int]:
    """A torso-like tube in Anny's frame (Z up, front -Y), 1 cm vertex spacing: ``[N, 3]``
    positions, ``[N, 3]`` outward normals and the number of vertices per ring (rings by height,
    the grid is ``[rings, per_ring]``)."""
    per_ring = round(2 * np.pi * RADIUS / STEP)
    theta = np.linspace(-np.pi, np.pi, per_ring, endpoint=False)
    t, z = np.meshgrid(theta, np.arange(0.0, HEIGHT, STEP))
    normals = np.stack([np.sin(t).ravel(), -np.cos(t).ravel(), np.zeros(t.size)], axis=1)
    coords = RADIUS * normals + np.stack([0 * z.ravel(), 0 * z.ravel(), z.ravel()], axis=1)
    return coords, normals, per_ring


def grid(fabric: str, seed: int, base: np.ndarray | None = None) -> np.ndarray:
    """``[rings, per_ring, 3]`` colours of the fabric on :func:`cylinder` (along = height)."""
    coords, _, per_ring = cylinder()
    colors = fabric_colors(np.random.default_rng(seed), fabric, coords, coords[:, 2], base)
    return colors.reshape(-1, per_ring, 3)


def spread(values: np.ndarray, axis: int) -> np.ndarray:
    """Colour standard deviation along ``axis`` of ``[..., 3]`` values: the norm of the three
    channels' standard deviations."""
    return np.linalg.norm(values.std(axis=axis), axis=-1)


@pytest.mark.parametrize("fabric", FABRICS)
def test_fabric_colors_deterministic_shape_and_range(fabric):
    coords, _, _ = cylinder()
    a = fabric_colors(np.random.default_rng(3), fabric, coords, coords[:, 2])
    b = fabric_colors(np.random.default_rng(3), fabric, coords, coords[:, 2])
    c = fabric_colors(np.random.default_rng(4), fabric, coords, coords[:, 2])
    assert a.shape == (len(coords), 3)
    assert a.min() >= 0.0 and a.max() <= 255.0
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_fabrics_have_patterns_solid_has_none():
    """Every fabric but solid varies far more than solid's mottling (median colour standard
    deviation over seeds, same ground colour); stripes vary across ``along`` and hardly around,
    checks and plaid vary around the body too (every seed), knit ribs mostly across ``along``."""
    base = np.array([150.0, 90.0, 60.0])
    overall = {
        f: np.median([spread(grid(f, s, base).reshape(-1, 3), 0) for s in SEEDS]) for f in FABRICS
    }
    assert overall["solid"] < 8.0
    for fabric in FABRICS[1:]:
        assert overall[fabric] > 2.5 * overall["solid"], (fabric, overall)
    for seed in SEEDS:
        stripes = grid("stripes", seed, base)
        across, around = spread(stripes.mean(axis=1), 0), spread(stripes, 1).mean()
        assert across > 4.0 * around, (seed, across, around)
        for fabric in ("checker", "plaid"):
            around = spread(grid(fabric, seed, base), 1).mean()
            assert around > 3.0 * overall["solid"], (fabric, seed, around)
        knit = grid("knit", seed, base)
        assert spread(knit.mean(axis=1), 0) > spread(knit.mean(axis=0), 0), seed


def test_denim_shades_and_front_fading():
    """Drawn denim is a blue, black or grey shade (blue >= red), lighter on the front (-Y)
    than on the back, and grainier than solid cloth (vertex-to-vertex differences)."""
    coords, _, per_ring = cylinder()
    front = coords[:, 1] < -0.5 * RADIUS
    back = coords[:, 1] > 0.5 * RADIUS
    lighter, grain = [], []
    for seed in SEEDS:
        colors = fabric_colors(np.random.default_rng(seed), "denim", coords, coords[:, 2])
        assert colors[:, 2].mean() >= colors[:, 0].mean(), seed
        luma = colors @ LUMA
        lighter.append(luma[front].mean() - luma[back].mean())
        solid = fabric_colors(np.random.default_rng(seed), "solid", coords, coords[:, 2])
        rough = [
            np.abs(np.diff(c.reshape(-1, per_ring), axis=1)).mean() for c in (luma, solid @ LUMA)
        ]
        grain.append(rough[0] / max(rough[1], 1e-9))
    assert min(lighter) > 3.0, lighter
    assert min(grain) > 3.0, grain


def test_sample_fabric_odds():
    rng = np.random.default_rng(0)
    draws = {g: [sample_fabric(rng, g) for _ in range(600)] for g in GARMENTS}
    for garment, fabrics in draws.items():
        assert set(fabrics) <= set(FABRICS), garment
    share = {g: {f: d.count(f) / len(d) for f in FABRICS} for g, d in draws.items()}
    assert share["bottoms"]["denim"] > 0.35
    assert share["shoes"]["solid"] > 0.7
    assert share["top"]["denim"] < 0.1
    assert len(set(draws["top"])) == len(FABRICS)
    with pytest.raises(ValueError, match="hat"):
        sample_fabric(rng, "hat")
    with pytest.raises(ValueError, match="velvet"):
        fabric_colors(rng, "velvet", np.zeros((2, 3)), np.zeros(2))


def test_logo_changes_only_near_centre_facing_forward():
    """Over seeds (discs, rectangles and letters), the logo recolours a patch on the front
    and nothing that is farther than ``size`` from the centre or faces away from ``forward``."""
    coords, normals, _ = cylinder()
    centre, forward, up, size = (
        np.array([0.0, -RADIUS, 0.4]),
        np.array([0.0, -1.0, 0.0]),
        np.array([0.0, 0.0, 1.0]),
        0.2,
    )
    allowed = (normals @ forward > LOGO_FACING) & (np.linalg.norm(coords - centre, axis=1) < size)
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        colors = fabric_colors(rng, "stripes", coords, coords[:, 2])
        before = colors.copy()
        add_logo(rng, colors, coords, normals, centre, forward, up, size)
        changed = np.any(colors != before, axis=1)
        assert not np.any(changed & ~allowed), seed
        assert changed.sum() >= 15, (seed, changed.sum())  # at least a few letter cells
        assert colors.min() >= 0.0 and colors.max() <= 255.0
