"""Clothed synthetic humans (render.synthetic.garments): clearance over the naked body, the same
person and keypoints as the painted human, determinism, one mesh the ray caster handles, and
every garment kind.

The seeds are chosen so that together they wear every garment kind (checked by
``test_every_garment_kind_is_worn``); each human takes about a second.
"""

from __future__ import annotations

import numpy as np
import open3d as o3d
import pytest
import trimesh

from render.synthetic.assets import AnnyAssets, load_anny_model
from render.synthetic.garments import CLEARANCE, HAIR, SHELL, SKIN
from render.synthetic.human import SyntheticHuman, make_human

SEEDS = (
    500015,
    500016,
    500020,
    500022,
    500025,
    500028,
    500029,
    500030,
    500036,
    500038,
    500039,
    500045,
)


@pytest.fixture(scope="module")
def model() -> AnnyAssets:
    return load_anny_model()


@pytest.fixture(scope="module")
def pairs(model: AnnyAssets) -> list[tuple[SyntheticHuman, SyntheticHuman]]:
    """(clothed, painted) humans of every seed."""
    return [
        (make_human(model, s, f"c{s}"), make_human(model, s, f"p{s}", clothes="painted"))
        for s in SEEDS
    ]


def _shift(clothed: SyntheticHuman, painted: SyntheticHuman) -> float:
    """How far the soles lifted the clothed human (y, metres)."""
    return float(clothed.joints[0, 1] - painted.joints[0, 1])


def _signed_distance(vertices: np.ndarray, faces: np.ndarray, points: np.ndarray) -> np.ndarray:
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(
        o3d.core.Tensor(vertices.astype(np.float32)), o3d.core.Tensor(faces.astype(np.uint32))
    )
    query = o3d.core.Tensor(points.astype(np.float32))
    return scene.compute_signed_distance(query).numpy()


def test_same_person_and_keypoints_as_the_painted_human(pairs):
    for clothed, painted in pairs:
        shift = _shift(clothed, painted)
        assert 0.005 < shift < 0.04  # the soles, 1.2-3 cm, minus the shoe's own offset
        moved = painted.joints.copy()
        moved[painted.visible, 1] += shift
        np.testing.assert_allclose(clothed.joints, moved, atol=1e-12)
        np.testing.assert_array_equal(clothed.visible, painted.visible)
        assert clothed.vertices[:, 1].min() == pytest.approx(0.0, abs=1e-12)


def test_garments_clear_the_naked_body(model, pairs):
    """Garments lie outside the naked body, so no skin shows through one: 98.5 % of the garment
    vertices clear it by the clearance and none lies more than 4 mm inside (in creases where two
    body parts nearly touch, an armpit or the toes, no point clears both); shells (skirts, dresses,
    coat tails)
    clear the legs and hips by 3 mm (hands and arms may rest inside them)."""
    arm = np.isin(
        model.part, ["upperarm.L", "upperarm.R", "forearm.L", "forearm.R", "hand.L", "hand.R"]
    )
    for clothed, painted in pairs:
        naked = painted.vertices + [0.0, _shift(clothed, painted), 0.0]
        worn = clothed.garment != SKIN
        distance = _signed_distance(naked, painted.faces, clothed.vertices[worn])
        shell = clothed.garment[worn] == SHELL
        layers = distance[~shell]
        assert np.mean(layers > 0.9 * CLEARANCE) > 0.985, clothed.name
        assert layers.min() > -0.004, clothed.name
        if shell.any():
            points = clothed.vertices[worn][shell]
            scene = o3d.t.geometry.RaycastingScene()
            scene.add_triangles(
                o3d.core.Tensor(naked.astype(np.float32)),
                o3d.core.Tensor(painted.faces.astype(np.uint32)),
            )
            nearest = scene.compute_closest_points(o3d.core.Tensor(points.astype(np.float32)))
            face = painted.faces[nearest["primitive_ids"].numpy().astype(np.int64)]
            near_arm = arm[face].any(axis=1)
            assert distance[shell][~near_arm].min() > 0.003, clothed.name


def _hidden_fraction(vertices: np.ndarray, faces: np.ndarray, directions: int = 26) -> float:
    """Share of the surface (area-sampled points) that no ray from any of ``directions`` far
    viewpoints around the mesh reaches: interior surfaces count fully, folds and armpits a bit."""
    mesh = trimesh.Trimesh(vertices, faces, process=False)
    points, face_ids = trimesh.sample.sample_surface(mesh, 6000, seed=0)
    normals = mesh.face_normals[face_ids]
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(
        o3d.core.Tensor(vertices.astype(np.float32)), o3d.core.Tensor(faces.astype(np.uint32))
    )
    sphere = trimesh.creation.icosphere(subdivisions=1).vertices[:directions]
    seen = np.zeros(len(points), dtype=bool)
    for direction in sphere:
        start = points + 0.002 * normals  # off the surface, then out towards the viewpoint
        rays = np.concatenate([start, np.broadcast_to(direction, start.shape)], axis=1)
        hit = scene.cast_rays(o3d.core.Tensor(rays.astype(np.float32)))["t_hit"].numpy()
        seen |= ~np.isfinite(hit)
    return float(1.0 - seen.mean())


def test_covered_skin_is_gone(pairs):
    """The skin a garment covers is replaced, not kept as a hidden inner surface (which would
    count in surface metrics against a reconstruction): 90 % of the surface is visible from some
    direction (the rest: soles, ears under hair, hair folding over itself where the neck meets the
    back; 2.5-3 % for the undressed body), unlike the body kept under the garments (> 20 %)."""
    for clothed, _ in pairs[:4]:
        assert _hidden_fraction(clothed.vertices, clothed.faces) < 0.1, clothed.name
    clothed, painted = pairs[0]
    naked = painted.vertices + [0.0, _shift(clothed, painted), 0.0]
    layered = np.concatenate([clothed.vertices, naked])
    both = np.concatenate([clothed.faces, painted.faces + len(clothed.vertices)])
    assert _hidden_fraction(layered, both) > 0.2


def test_deterministic(model, pairs):
    clothed = pairs[1][0]
    again = make_human(model, SEEDS[1], "again")
    np.testing.assert_array_equal(again.vertices, clothed.vertices)
    np.testing.assert_array_equal(again.faces, clothed.faces)
    np.testing.assert_array_equal(again.vertex_colors, clothed.vertex_colors)
    assert again.outfit == clothed.outfit


def test_same_human_on_any_torch_thread_count(model):
    """Seed 1 came out 2 vertices short and 5 mm lower on 1 torch thread than on 2 (a garment's
    choice followed the last bit of anny's forward); make_human now runs on one thread and puts
    the caller's count back."""
    import torch

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = make_human(model, 1, "one")
        torch.set_num_threads(2)
        two = make_human(model, 1, "two")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
    np.testing.assert_array_equal(one.vertices, two.vertices)
    np.testing.assert_array_equal(one.faces, two.faces)
    np.testing.assert_array_equal(one.joints, two.joints)


def test_rendered_with_keypoints_on_the_body(pairs, tmp_path):
    """A clothed human through render.py and render_keypoint.py: front depth before back depth
    everywhere, and every projected keypoint on the rendered silhouette (within a pixel)."""
    import cv2

    from render.keypoints3d import write_item_keypoints
    from render.layout import view_files
    from render.pipeline import RenderOptions, ScanRenderer
    from render.synthetic.human import save_human
    from utils.camera import png_to_range

    res, yaws = 256, (-30, 0, 30)
    human = pairs[1][0]
    save_human(human, tmp_path)
    renderer = ScanRenderer(tmp_path, "ANNY", RenderOptions(res=res, yaws=yaws))
    try:
        assert renderer.render_item(human.name)
    finally:
        renderer.close()
    assert write_item_keypoints(tmp_path, "ANNY", human.name, yaws, res)
    for yaw in yaws:
        files = view_files(tmp_path, "ANNY", human.name, yaw)
        front = cv2.imread(str(files.depth_front), cv2.IMREAD_UNCHANGED)
        back = cv2.imread(str(files.depth_back), cv2.IMREAD_UNCHANGED)
        mask = front > 0
        assert 0.05 < mask.mean() < 0.5
        assert (png_to_range(front)[mask] <= png_to_range(back)[mask] + 1e-6).all()
        near_body = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        kp = np.load(files.keypoint)
        col, row = np.floor(kp[:, 0]).astype(int), np.floor(kp[:, 1]).astype(int)
        assert near_body[row, col].all(), f"yaw {yaw}: keypoints off the body"


def test_one_valid_mesh(pairs):
    for clothed, _ in pairs:
        mesh = trimesh.Trimesh(clothed.vertices, clothed.faces, process=False)
        assert mesh.faces.dtype == np.int64 and mesh.faces.min() == 0
        assert np.isfinite(mesh.vertices).all()
        assert (mesh.area_faces > 0).mean() > 0.999
        # Closed: every edge borders two faces, but for legs cut open inside a skirt and a
        # few edges where a garment's border meets a fold of another (<= 0.1 %, harmless to the
        # ray caster, which only needs triangles).
        edges = np.sort(mesh.edges, axis=1)
        _, counts = np.unique(edges, axis=0, return_counts=True)
        assert np.mean(counts > 2) < 1e-3, clothed.name
        if not (clothed.garment == SHELL).any():
            assert np.mean(counts == 1) < 1e-3, clothed.name
        assert len(clothed.vertex_colors) == len(clothed.vertices)


def test_every_garment_kind_is_worn(pairs):
    outfits = [clothed.outfit for clothed, _ in pairs]
    text = " | ".join(" ".join(o.values()) for o in outfits)
    for kind in (
        "jeans",
        "trousers",
        "t-shirt",
        "sweater",
        "loose top",
        "open jacket",
        "closed",
        "coat",
        "skirt",
        "dress",
        "leggings",
        "with a print",
        "denim",
        "bun",
        "ponytail",
        "long",
        "short",
        "sole",
    ):
        assert kind in text, kind
    assert any((c.garment == HAIR).any() for c, _ in pairs)


def test_skirt_leaves_the_legs(pairs):
    """A skirt's hem stands off the legs: at the hem's height the shell is wider than the legs
    it encloses, and the legs below the hem are still there."""
    skirts = [c for c, _ in pairs if "skirt" in c.outfit]
    assert skirts
    for clothed in skirts:
        shell = clothed.vertices[clothed.garment == SHELL]
        hem = shell[:, 1].min()
        ring = shell[shell[:, 1] < hem + 0.01]
        legs = clothed.vertices[
            (clothed.garment != SHELL) & (np.abs(clothed.vertices[:, 1] - hem - 0.03) < 0.01)
        ]
        assert len(legs) > 0
        spread = lambda p: np.hypot(p[:, 0], p[:, 2]).max()  # noqa: E731
        assert spread(ring) > spread(legs) + 0.01
        assert clothed.vertices[clothed.garment != SHELL, 1].min() < hem - 0.2
