"""Garment geometry over a posed synthetic human: tops, jackets and coats, trousers, skirts and
dresses, shoes and hair, as surfaces of their own rather than paint.

Every garment is built on the posed, once-subdivided body, from the regions the colour sampler
painted (:class:`render.synthetic.colors.PaintedRegions`) plus its own draws:

* **Layers that follow the body** (trousers, shorts, tops, jackets, shoes, hair) are
  *extrusions*: the region's faces move outwards by a thickness field (fabric thickness,
  looseness, folds and wrinkles, a sole under the shoes) and side walls join the moved border to
  the one left behind (a cuff, a hem, a collar). The covered skin is replaced, not kept inside, so
  the mesh stays closed (but for a few edges where a border meets a fold, <= 0.1 %) and a scan
  has no hidden inner layer.
* **Surfaces that leave the legs** (skirts, dresses, coat tails) are closed shells of
  revolution around the body's vertical axis: at every height and angle the radius clears the
  legs and hips below, never narrows towards the hem, flares and ripples into folds. The leg
  surface they enclose is removed. Ponytails and buns are closed shapes of their own.

**Clearance.** Every new garment vertex is pushed out to at least :data:`CLEARANCE` outside the
surface under it and outside the naked body (closest-point queries, hands included: cloth bulges
round a hand resting on it), so no skin shows through. Where two body parts nearly touch (an
armpit, the toes) no point clears both; ``tests/test_garments.py`` checks that 98.5 % of the
garment vertices clear the naked body and none is 4 mm inside it. Shells clear the legs and hips,
not the arms: a hand may rest inside a skirt.

All coordinates are the output frame of :mod:`render.synthetic` (metres, +Y up, facing +Z, own
left at +X); ``rest`` coordinates (Anny frame) only drive patterns and fold fields, so those
follow the body when it is posed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import open3d as o3d
import trimesh
from scipy.sparse import coo_matrix

from render.synthetic.colors import PaintedRegions, _smooth_noise
from render.synthetic.fabrics import add_logo, fabric_colors, sample_fabric

CLEARANCE = 0.003
"""Metres: every garment vertex lies at least this far outside the surface it covers."""

_SHELL_THICKNESS = 0.005
"""Metres between the outer and inner surface of a skirt, dress or coat tail."""

_HAND_PARTS = ("hand.L", "hand.R")

# Per-vertex integer codes of what a vertex is: skin, or the garment layer that made it.
SKIN, BOTTOMS, TOP, JACKET, SHOES, HAIR, SHELL = range(7)
LAYER_NAMES = ("skin", "bottoms", "top", "jacket", "shoes", "hair", "shell")


@dataclass
class _Mesh:
    """A triangle mesh with per-vertex attributes that travel through subdivision and extrusion.

    Attributes:
        vertices: ``[N, 3]`` posed positions, output frame.
        faces: ``[M, 3]`` triangles, counter-clockwise seen from outside.
        rest: ``[N, 3]`` rest-pose positions, Anny frame (for patterns and fold fields).
        colors: ``[N, 3]`` float sRGB.
        weights: name -> ``[N]`` float attributes (painted regions, body-part indicators).
        layer: ``[N]`` int, :data:`SKIN` or the garment layer that made the vertex.
    """

    vertices: np.ndarray
    faces: np.ndarray
    rest: np.ndarray
    colors: np.ndarray
    weights: dict[str, np.ndarray]
    layer: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.layer is None:
            self.layer = np.zeros(len(self.vertices), dtype=np.int64)

    def take(self, index: np.ndarray) -> dict[str, np.ndarray]:
        """Every per-vertex array at ``index``, keyed like :meth:`append` expects."""
        out = {"rest": self.rest[index], "colors": self.colors[index], "layer": self.layer[index]}
        out.update({f"w:{k}": v[index] for k, v in self.weights.items()})
        return out

    def append(self, positions: np.ndarray, attrs: dict[str, np.ndarray]) -> np.ndarray:
        """Add vertices with the attributes ``attrs`` (as :meth:`take` returns); their indices."""
        start = len(self.vertices)
        self.vertices = np.concatenate([self.vertices, positions])
        self.rest = np.concatenate([self.rest, attrs["rest"]])
        self.colors = np.concatenate([self.colors, attrs["colors"]])
        self.layer = np.concatenate([self.layer, attrs["layer"]])
        for key in self.weights:
            self.weights[key] = np.concatenate([self.weights[key], attrs[f"w:{key}"]])
        return np.arange(start, len(self.vertices))

    def add_part(
        self, vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray, layer: int
    ) -> np.ndarray:
        """Add a separate surface (``[P, 3]`` vertices, ``[Q, 3]`` faces of its own indices,
        ``[3]`` or ``[P, 3]`` colours) made by garment ``layer``: its rest coordinates are its
        own positions in Anny's axes (patterns only), its weights zero. Its vertex indices."""
        attrs = {
            "rest": _to_anny(vertices),
            "colors": np.broadcast_to(colors, (len(vertices), 3)).astype(np.float64),
            "layer": np.full(len(vertices), layer),
        }
        attrs.update({f"w:{k}": np.zeros(len(vertices)) for k in self.weights})
        new = self.append(vertices, attrs)
        self.faces = np.concatenate([self.faces, faces + new[0]])
        return new

    def compact(self) -> None:
        """Drop vertices no face uses (keeps the order of the others)."""
        used = np.zeros(len(self.vertices), dtype=bool)
        used[self.faces.ravel()] = True
        remap = np.cumsum(used) - 1
        self.faces = remap[self.faces]
        self.vertices, self.rest = self.vertices[used], self.rest[used]
        self.colors, self.layer = self.colors[used], self.layer[used]
        self.weights = {k: v[used] for k, v in self.weights.items()}


def _to_anny(xyz: np.ndarray) -> np.ndarray:
    """``[N, 3]`` points or directions of the output frame in Anny's axes (Z up, facing -Y)."""
    return np.stack([xyz[:, 0], -xyz[:, 2], xyz[:, 1]], axis=1)


def _subdivide(mesh: _Mesh) -> _Mesh:
    """Split every triangle in four at its edge midpoints (attributes averaged): the body's
    2-4 cm torso and limb triangles become 1-2 cm, fine enough for folds and hems."""
    attributes = {"rest": mesh.rest, "colors": mesh.colors}
    attributes.update({f"w:{k}": v[:, None] for k, v in mesh.weights.items()})
    vertices, faces, out = trimesh.remesh.subdivide(
        mesh.vertices, mesh.faces, vertex_attributes=attributes
    )
    return _Mesh(
        vertices=vertices,
        faces=faces,
        rest=out["rest"],
        colors=out["colors"],
        weights={k: out[f"w:{k}"][:, 0] for k in mesh.weights},
    )


def _adjacency(num_vertices: int, faces: np.ndarray) -> coo_matrix:
    """Row-normalised vertex adjacency ``[N, N]`` (sparse) of a triangle mesh."""
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    edges = np.concatenate([edges, edges[:, ::-1]])
    matrix = coo_matrix(
        (np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(num_vertices, num_vertices)
    ).tocsr()
    matrix.data[:] = 1.0
    degree = np.asarray(matrix.sum(axis=1)).ravel()
    return coo_matrix(matrix.multiply(1.0 / np.maximum(degree, 1.0)[:, None]))


def _smooth(values: np.ndarray, adjacency: coo_matrix, iterations: int) -> np.ndarray:
    """Average ``values`` (``[N]`` or ``[N, D]``) over vertex rings ``iterations`` times."""
    adjacency = adjacency.tocsr()
    for _ in range(iterations):
        values = 0.5 * values + 0.5 * (adjacency @ values)
    return values


def _vertex_normals(mesh: _Mesh, smoothing: int = 3) -> np.ndarray:
    """``[N, 3]`` unit area-weighted vertex normals, smoothed over ``smoothing`` rings so offsets
    at creases (armpits, the crotch, the wall of a hem) do not cross."""
    normals = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False).vertex_normals
    normals = _smooth(
        np.asarray(normals, dtype=np.float64), _adjacency(len(mesh.vertices), mesh.faces), smoothing
    )
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)


class _Surface:
    """Closest-point and inside/outside queries against a closed triangle mesh."""

    def __init__(self, vertices: np.ndarray, faces: np.ndarray) -> None:
        self.normals = trimesh.Trimesh(vertices, faces, process=False).face_normals
        self.scene = o3d.t.geometry.RaycastingScene()
        self.scene.add_triangles(
            o3d.core.Tensor(np.ascontiguousarray(vertices, dtype=np.float32)),
            o3d.core.Tensor(np.ascontiguousarray(faces, dtype=np.uint32)),
        )

    def signed_distance(self, points: np.ndarray) -> np.ndarray:
        """``[P]`` distance to the surface, negative inside (ray parity)."""
        query = o3d.core.Tensor(np.ascontiguousarray(points, dtype=np.float32))
        return self.scene.compute_signed_distance(query).numpy().astype(np.float64)

    def push_out(self, points: np.ndarray, clearance: float) -> np.ndarray:
        """``points`` with every one closer than ``clearance`` outside (or inside) the surface
        moved to its closest surface point plus ``clearance`` along that triangle's normal."""
        points = points.copy()
        for _ in range(8):
            bad = np.flatnonzero(self.signed_distance(points) < clearance)
            if len(bad) == 0:
                break
            query = o3d.core.Tensor(np.ascontiguousarray(points[bad], dtype=np.float32))
            out = self.scene.compute_closest_points(query)
            nearest = out["points"].numpy().astype(np.float64)
            normal = self.normals[out["primitive_ids"].numpy().astype(np.int64)]
            points[bad] = nearest + 1.001 * clearance * normal
        return points


def _extrude(
    mesh: _Mesh,
    face_mask: np.ndarray,
    offsets: np.ndarray,
    layer: int,
    obstacles: list[_Surface],
) -> np.ndarray:
    """Move the faces in ``face_mask`` outwards by ``offsets`` and join their border with walls.

    Args:
        mesh: changed in place.
        face_mask: ``[M]`` bool, the garment's faces.
        offsets: ``[N, 3]`` displacement of every vertex (only the region's are used).
        layer: code stored in ``mesh.layer`` for the new vertices.
        obstacles: surfaces the new vertices must clear by :data:`CLEARANCE`.
    Returns:
        The indices of the new (moved) vertices.
    """
    faces = mesh.faces
    region = faces[face_mask]
    if len(region) == 0:
        return np.zeros(0, dtype=np.int64)
    old = np.unique(region)
    positions = mesh.vertices[old] + offsets[old]
    for obstacle in obstacles:
        positions = obstacle.push_out(positions, CLEARANCE)
    attrs = mesh.take(old)
    attrs["layer"] = np.full(len(old), layer)
    new = mesh.append(positions, attrs)
    remap = np.full(len(mesh.vertices), -1, dtype=np.int64)
    remap[old] = new
    # Border half-edges: a region face's edge whose reverse is in no region face.
    half = np.concatenate([region[:, [0, 1]], region[:, [1, 2]], region[:, [2, 0]]])
    n = np.int64(len(mesh.vertices))
    keys = half[:, 0] * n + half[:, 1]
    reverse = half[:, 1] * n + half[:, 0]
    border = half[~np.isin(reverse, keys)]
    a, b = border[:, 0], border[:, 1]
    walls = np.concatenate(
        [np.stack([a, b, remap[b]], axis=1), np.stack([a, remap[b], remap[a]], axis=1)]
    )
    mesh.faces = np.concatenate([faces[~face_mask], remap[region], walls])
    return new


def _paint_fabric(rng: np.random.Generator, mesh: _Mesh, index: np.ndarray, garment: str) -> str:
    """Colour the vertices ``index`` with a fabric drawn for ``garment`` (see
    :mod:`render.synthetic.fabrics`); patterns run along the limbs on arms, else along the height.
    Returns the fabric's name."""
    fabric = sample_fabric(rng, garment)
    rest = mesh.rest[index]
    along = np.where(mesh.weights["arm"][index] > 0.5, np.abs(rest[:, 0]) * 1.4, rest[:, 2])
    mesh.colors[index] = fabric_colors(rng, fabric, rest, along)
    return fabric


def _face_mask(mesh: _Mesh, weight: np.ndarray) -> np.ndarray:
    """``[M]`` bool: faces whose corners' mean ``weight`` is above one half."""
    return weight[mesh.faces].mean(axis=1) > 0.5


# ---------------------------------------------------------------------------------------------
# Fold fields


def _ring_folds(rng: np.random.Generator, along: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """``[N]`` in [0, 1]: folds around a limb or the torso, crests ``along`` it (metres) every
    4-9 cm, wobbled by smooth noise so they are not perfect rings."""
    period = rng.uniform(0.04, 0.09)
    phase = along / period + 0.6 * _smooth_noise(rng, rest, waves=4) + rng.random()
    return 0.5 + 0.5 * np.sin(2 * np.pi * phase)


def _wrinkles(rng: np.random.Generator, rest: np.ndarray) -> np.ndarray:
    """``[N]`` in [0, 1]: small smooth wrinkles (random plane waves of 3-10 cm wavelength)."""
    directions = rng.normal(size=(8, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    wavenumbers = 2 * np.pi / rng.uniform(0.03, 0.1, size=8)
    waves = np.cos(rest @ (directions * wavenumbers[:, None]).T + rng.uniform(0, 2 * np.pi, 8))
    return np.clip(0.5 + 0.25 * waves.sum(axis=1) / np.sqrt(8), 0.0, 1.0)


def _folds(
    rng: np.random.Generator,
    rest: np.ndarray,
    along: np.ndarray,
    bunching: tuple[float, ...],
    amplitude: float,
) -> np.ndarray:
    """``[N]`` extra thickness (metres) of folds: wrinkles everywhere and rings that bunch up
    within ~7 cm of the ``bunching`` positions ``along`` the garment (knees, ankles, a waist)."""
    near = sum(np.exp(-(((along - b) / 0.07) ** 2)) for b in bunching)
    rings = _ring_folds(rng, along, rest)
    return amplitude * (0.5 * _wrinkles(rng, rest) + np.clip(near, 0.0, 1.0) * rings)


# ---------------------------------------------------------------------------------------------
# Shells: skirts, dresses, coat tails


def _grid_shell(
    radius: np.ndarray, heights: np.ndarray, thetas: np.ndarray, closed: bool
) -> tuple[np.ndarray, np.ndarray]:
    """A closed shell from an outer radius grid: outer surface, inner surface
    :data:`_SHELL_THICKNESS` inside, joined at the top, the hem and (open shells) the sides.

    Args:
        radius: ``[H, T]`` outer radius at each height (top first) and angle.
        heights: ``[H]`` y of each row, decreasing.
        thetas: ``[T]`` angles about +Y (0 = +Z, the front; pi/2 = +X, the person's left).
        closed: the angles go all the way round (the last column joins the first).
    Returns:
        ``[2 H T, 3]`` vertices and ``[F, 3]`` faces, outward-facing.
    """
    rows, cols = radius.shape
    direction = np.stack([np.sin(thetas), np.zeros_like(thetas), np.cos(thetas)], axis=1)
    outer = radius[:, :, None] * direction[None] + heights[:, None, None] * np.array([0, 1, 0])
    inner_radius = np.maximum(radius - _SHELL_THICKNESS, 1e-3)
    inner = inner_radius[:, :, None] * direction[None] + heights[:, None, None] * np.array(
        [0, 1, 0]
    )
    vertices = np.concatenate([outer.reshape(-1, 3), inner.reshape(-1, 3)])
    index = np.arange(rows * cols).reshape(rows, cols)
    inner_index = index + rows * cols
    span = cols if closed else cols - 1

    def quads(grid: np.ndarray, flip: bool) -> np.ndarray:
        r, c = np.meshgrid(np.arange(rows - 1), np.arange(span), indexing="ij")
        c1 = (c + 1) % cols
        a, b, d, e = grid[r, c], grid[r, c1], grid[r + 1, c], grid[r + 1, c1]
        tris = np.concatenate([np.stack([a, d, b], -1), np.stack([b, d, e], -1)]).reshape(-1, 3)
        return tris[:, ::-1] if flip else tris

    faces = [quads(index, False), quads(inner_index, True)]
    # Top and hem rings join outer and inner.
    for row, flip in ((0, True), (rows - 1, False)):
        c = np.arange(span)
        c1 = (c + 1) % cols
        o0, o1, i0, i1 = index[row, c], index[row, c1], inner_index[row, c], inner_index[row, c1]
        ring = np.concatenate([np.stack([o0, i0, o1], -1), np.stack([o1, i0, i1], -1)])
        faces.append(ring[:, ::-1] if flip else ring)
    if not closed:
        for col, flip in ((0, False), (cols - 1, True)):
            r = np.arange(rows - 1)
            o0, o1 = index[r, col], index[r + 1, col]
            i0, i1 = inner_index[r, col], inner_index[r + 1, col]
            side = np.concatenate([np.stack([o0, i0, o1], -1), np.stack([o1, i0, i1], -1)])
            faces.append(side[:, ::-1] if flip else side)
    faces = np.concatenate(faces)
    # Orient by the signed volume: the winding above is outward for rows going down in y.
    mesh = trimesh.Trimesh(vertices, faces, process=False)
    if mesh.volume < 0:
        faces = faces[:, ::-1]
    return vertices, faces


@dataclass(frozen=True)
class _ShellSpec:
    """A skirt, dress or coat tail: from ``top`` down to ``hem`` (y, metres), ``flare`` metres of
    extra radius at the hem, fold ripples of relative depth ``folds`` and ``lobes`` per turn, an
    angular ``gap`` (radians, centred on the front; 0 = closed) and a clearance over the legs."""

    top: float
    hem: float
    flare: float
    folds: float
    lobes: int
    gap: float
    clearance: float


def _shell_radius(
    spec: _ShellSpec,
    body: np.ndarray,
    heights: np.ndarray,
    thetas: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """``[H, T]`` outer radius that clears ``body`` points (``[P, 3]``, legs and hips) by the
    spec's clearance at every height and angle, never narrows going down, flares and folds."""
    rows, cols = len(heights), len(thetas)
    closed = spec.gap == 0
    angle = np.arctan2(body[:, 0], body[:, 2])
    distance = np.hypot(body[:, 0], body[:, 2])
    step = thetas[1] - thetas[0]
    centre_row = np.round((spec.top - body[:, 1]) / (spec.top - spec.hem) * (rows - 1))
    need = np.zeros((rows, cols))
    # A point blocks the rays (angles) that pass within its clearance, in its row and the two
    # next to it (rows are ~1.2 cm apart, about the vertex spacing).
    for row_step in (-1, 0, 1):
        row = centre_row + row_step
        inside = (row >= -2) & (row < rows)  # the top row clears what is just above it too
        row = np.maximum(row, 0)
        nearest = np.round(np.mod(angle - thetas[0], 2 * np.pi) / step).astype(np.int64)
        for spread in range(-10, 11):
            col = nearest + spread
            ray = thetas[0] + col * step
            across = distance * np.abs(np.sin(angle - ray))
            ok = inside & (across < spec.clearance) & (np.cos(angle - ray) > 0)
            ok &= True if closed else (col >= 0) & (col < cols)
            reach = distance * np.cos(angle - ray) + np.sqrt(
                np.maximum(spec.clearance**2 - across**2, 0.0)
            )
            np.maximum.at(need, (row[ok].astype(np.int64), col[ok] % cols), reach[ok])
    for r in range(rows):  # angles no point reached: the row's narrowest reached radius
        reached = need[r] > 0
        if reached.any():
            need[r, ~reached] = need[r, reached].min()
        elif r > 0:
            need[r] = need[r - 1]
    for r in range(1, rows):  # never narrower than the row above: cloth hangs from the hips
        need[r] = np.maximum(need[r], need[r - 1])
    # Smooth round the waist (circular), never below what is needed.
    kernel = np.array([1, 2, 3, 2, 1], dtype=float) / 9.0
    smooth = sum(w * np.roll(need, k - 2, axis=1) for k, w in enumerate(kernel))
    radius = np.maximum(smooth, need)
    drop = (spec.top - heights) / max(spec.top - spec.hem, 1e-6)
    radius += spec.flare * drop[:, None] ** 1.5
    ripple = 0.5 + 0.5 * np.sin(spec.lobes * thetas + rng.uniform(0, 2 * np.pi))
    radius *= 1.0 + spec.folds * drop[:, None] ** 1.2 * ripple[None]
    return radius


def _add_shell(
    mesh: _Mesh, spec: _ShellSpec, rng: np.random.Generator, enclosed: np.ndarray
) -> np.ndarray:
    """Add a shell (see :class:`_ShellSpec`) around the vertices ``enclosed`` (``[N]`` bool) and
    remove the faces it encloses.

    Returns:
        The shell's vertex indices (their colours are the caller's to paint).
    """
    rows = max(int(np.ceil((spec.top - spec.hem) / 0.012)) + 1, 3)
    cols = 128
    if spec.gap > 0:
        thetas = np.linspace(spec.gap / 2, 2 * np.pi - spec.gap / 2, cols)
    else:
        thetas = np.arange(cols) * 2 * np.pi / cols
    heights = np.linspace(spec.top, spec.hem, rows)
    radius = _shell_radius(spec, mesh.vertices[enclosed], heights, thetas, rng)
    vertices, faces = _grid_shell(radius, heights, thetas, closed=spec.gap == 0)

    # Remove the enclosed faces: every corner between top and hem, inside the inner surface.
    points = mesh.vertices
    angle = np.mod(np.arctan2(points[:, 0], points[:, 2]), 2 * np.pi)
    col = np.clip(np.searchsorted(thetas, angle), 0, cols - 1)
    row = np.round((spec.top - points[:, 1]) / (spec.top - spec.hem) * (rows - 1))
    row = np.clip(row, 0, rows - 1).astype(np.int64)
    inner = radius[row, col] - _SHELL_THICKNESS
    within = enclosed & (points[:, 1] < spec.top - 0.02) & (points[:, 1] > spec.hem + 0.02)
    within &= (angle >= thetas[0]) & (angle <= thetas[-1])
    within &= np.hypot(points[:, 0], points[:, 2]) < inner
    mesh.faces = mesh.faces[~within[mesh.faces].all(axis=1)]

    return mesh.add_part(vertices, faces, np.zeros(3), SHELL)


# ---------------------------------------------------------------------------------------------
# Ponytails and buns


def _capsule_along(
    start: np.ndarray, end: np.ndarray, radius: float, taper: float
) -> trimesh.Trimesh:
    """A closed capsule from ``start`` to ``end`` whose radius shrinks by ``taper`` (a fraction)
    towards ``end``."""
    axis = end - start
    length = float(np.linalg.norm(axis))
    capsule = trimesh.creation.capsule(height=length, radius=radius, count=(24, 12))
    v = capsule.vertices.copy()  # along z, centred: z in [-length/2 - r, length/2 + r]
    t = np.clip((v[:, 2] + length / 2) / length, 0.0, 1.0)
    v[:, :2] *= (1.0 - taper * t)[:, None]
    v[:, 2] += length / 2
    z = axis / length
    x = np.cross(z, [1.0, 0.0, 0.0] if abs(z[0]) < 0.9 else [0.0, 1.0, 0.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return trimesh.Trimesh(start + v @ np.stack([x, y, z]), capsule.faces, process=False)


def _add_object(
    mesh: _Mesh, obj: trimesh.Trimesh, color: np.ndarray, layer: int, obstacles: list[_Surface]
) -> np.ndarray:
    """Append a closed object (its vertices pushed out of ``obstacles``); its vertex indices."""
    vertices = np.asarray(obj.vertices, dtype=np.float64)
    for obstacle in obstacles:
        vertices = obstacle.push_out(vertices, CLEARANCE)
    return mesh.add_part(vertices, np.asarray(obj.faces), color, layer)


# ---------------------------------------------------------------------------------------------
# The outfit


@dataclass(frozen=True)
class RestHeights:
    """Rest-pose heights (Anny z, metres) of landmarks the garments are measured from."""

    ankle: float
    knee: float
    hip: float
    shoulder: float


@dataclass(frozen=True)
class Dressed:
    """A dressed human: ``vertices`` ``[N, 3]``, ``faces`` ``[M, 3]``, ``colors`` ``[N, 4]``
    uint8, ``layer`` ``[N]`` (:data:`SKIN` or a garment code), the floor ``shift`` (metres added
    to y so the soles stand on y = 0) and ``outfit`` (garment name -> kind, for logs)."""

    vertices: np.ndarray
    faces: np.ndarray
    colors: np.ndarray
    layer: np.ndarray
    shift: float
    outfit: dict[str, str]


def _posed_height(mesh: _Mesh, rest_z: float, mask: np.ndarray) -> float:
    """Mean posed y of the ``mask`` vertices whose rest height is within 1.5 cm of ``rest_z``."""
    near = mask & (np.abs(mesh.rest[:, 2] - rest_z) < 0.015)
    if not near.any():
        near = mask & (np.abs(mesh.rest[:, 2] - rest_z) < 0.05)
    return float(mesh.vertices[near, 1].mean())


def dress(
    rng: np.random.Generator,
    vertices: np.ndarray,
    faces: np.ndarray,
    colors: np.ndarray,
    rest: np.ndarray,
    part: np.ndarray,
    regions: PaintedRegions,
    heights: RestHeights,
    gender: float,
) -> Dressed:
    """Dress a posed human in garments with geometry (see the module docstring).

    Args:
        rng: the garment draws' generator (keep it apart from the body's so the body and its paint
            stay those of the undressed human with the same seed).
        vertices: ``[V, 3]`` posed body, output frame; faces: ``[F, 3]``; colors: ``[V, 4]`` uint8.
        rest: ``[V, 3]`` rest-pose vertices, Anny frame; part: ``[V]`` body-part names.
        regions: what the colour sampler painted; heights: rest-pose landmarks.
        gender: Anny gender parameter (0 male, 1 female): odds of skirts and dresses.
    Returns:
        The dressed mesh, floor shift included (see :class:`Dressed`).
    """
    indicators = {
        "hand": np.isin(part, _HAND_PARTS),
        "arm": np.isin(part, ["upperarm.L", "upperarm.R", "forearm.L", "forearm.R"]),
        "leg": np.isin(part, ["thigh.L", "thigh.R", "shin.L", "shin.R"]),
        "foot": np.isin(part, ["foot.L", "foot.R"]),
        "torso": part == "torso",
        "neck": part == "neck",
        "head": np.isin(part, ["head", "eye.L", "eye.R", "mouth"]),
    }
    weights = {k: v.astype(np.float64) for k, v in indicators.items()}
    weights.update(top=regions.top, bottoms=regions.bottoms, shoes=regions.shoes, hair=regions.hair)
    for c in range(3):
        weights[f"top{c}"] = regions.top_colors[:, c]
    mesh = _subdivide(_Mesh(vertices, faces, rest, colors[:, :3].astype(np.float64), weights))
    naked = _Surface(mesh.vertices, mesh.faces)
    w = mesh.weights
    z = mesh.rest[:, 2]
    outfit: dict[str, str] = {}
    # One stream per step: a draw whose count follows the geometry (a print's motif cells, a
    # logo only where the chest was found, a bun only where hair was made) changes only its own
    # step, never the next garment, so the outfit is a function of the seed alone.
    skirt_rng, bottoms_rng, top_rng, jacket_rng, shoes_rng, hair_rng, shell_rng = rng.spawn(7)

    def layer_offsets(thickness: np.ndarray) -> np.ndarray:
        return thickness[:, None] * _vertex_normals(mesh)

    # Skirts and dresses: the painted skirt, or sometimes a dress / long skirt over the legs.
    skirt_hem = regions.skirt_hem
    if skirt_hem is None and gender > 0.5 and skirt_rng.random() < 0.2:
        skirt_hem = heights.knee - skirt_rng.uniform(-0.1, 0.6) * (heights.knee - heights.ankle)
        outfit["skirt"] = "long skirt"
    elif skirt_hem is not None:
        outfit["skirt"] = "skirt"

    # 1. Trousers, jeans or shorts (not under a skirt: bare or painted legs there).
    if skirt_hem is None:
        kind = str(
            bottoms_rng.choice(
                ["jeans", "trousers", "loose trousers", "leggings"], p=[0.4, 0.3, 0.2, 0.1]
            )
        )
        base, loose, amplitude = {
            "jeans": (0.004, 0.004, 0.006),
            "trousers": (0.006, 0.01, 0.008),
            "loose trousers": (0.01, 0.02, 0.012),
            "leggings": (0.0035, 0.0, 0.001),
        }[kind]
        folds = _folds(bottoms_rng, mesh.rest, z, (heights.knee, heights.ankle + 0.06), amplitude)
        thickness = base + loose * _smooth_noise(bottoms_rng, mesh.rest, waves=5).clip(0, 1) + folds
        new = _extrude(
            mesh, _face_mask(mesh, w["bottoms"]), layer_offsets(thickness), BOTTOMS, [naked]
        )
        outfit["bottoms"] = f"{_paint_fabric(bottoms_rng, mesh, new, 'bottoms')} {kind}"

    # 2. The top, untucked over the waistband more often than not.
    w, z = mesh.weights, mesh.rest[:, 2]
    kind = str(
        top_rng.choice(["tight top", "t-shirt", "loose top", "sweater"], p=[0.2, 0.4, 0.2, 0.2])
    )
    base, loose, amplitude = {
        "tight top": (0.0035, 0.0, 0.002),
        "t-shirt": (0.005, 0.008, 0.006),
        "loose top": (0.012, 0.02, 0.01),
        "sweater": (0.01, 0.012, 0.006),
    }[kind]
    top = w["top"].copy()
    if top_rng.random() < 0.6:
        drop = top_rng.uniform(0.03, 0.1)
        extension = (w["torso"] > 0.5) & (z > regions.waist - drop) & (z < regions.waist + 0.03)
        top = np.maximum(top, extension.astype(np.float64))
        fill = extension & (w["top"] < 0.5)
        mesh.colors[fill] = np.stack([w[f"top{c}"][fill] for c in range(3)], axis=1)
    folds = _folds(top_rng, mesh.rest, z, (regions.waist,), amplitude)
    thickness = base + loose * _smooth_noise(top_rng, mesh.rest, waves=5).clip(0, 1) + folds
    surface = _Surface(mesh.vertices, mesh.faces)
    top_new = _extrude(mesh, _face_mask(mesh, top), layer_offsets(thickness), TOP, [surface, naked])
    outfit["top"] = f"{_paint_fabric(top_rng, mesh, top_new, 'top')} {kind}"
    if top_rng.random() < 0.25:  # a chest print
        rest, normals = mesh.rest[top_new], _vertex_normals(mesh)[top_new]
        rest_normals = _to_anny(normals)
        chest = rest[
            (np.abs(rest[:, 0]) < 0.03) & (np.abs(rest[:, 2] - heights.shoulder + 0.12) < 0.03)
        ]
        if len(chest):
            colors = mesh.colors[top_new]
            centre = chest[np.argmin(chest[:, 1])]
            forward, up = np.array([0.0, -1.0, 0.0]), np.array([0.0, 0.0, 1.0])
            add_logo(
                top_rng, colors, rest, rest_normals, centre, forward, up, top_rng.uniform(0.05, 0.1)
            )
            mesh.colors[top_new] = colors
            outfit["top"] += " with a print"

    # 3. A jacket or coat over the top: sleeves to the wrists, open or closed at the front.
    coat_hem = None
    if jacket_rng.random() < 0.35:
        w, z = mesh.weights, mesh.rest[:, 2]
        hem = regions.waist - jacket_rng.uniform(0.04, 0.16)
        region = ((w["torso"] > 0.5) & (z > hem)) | (w["arm"] > 0.5)
        opened = jacket_rng.random() < 0.5
        if opened:
            region &= ~(
                (np.abs(mesh.rest[:, 0]) < jacket_rng.uniform(0.03, 0.08))
                & (mesh.rest[:, 1] < 0)
                & (w["torso"] > 0.5)
            )
        thickness = (
            jacket_rng.uniform(0.008, 0.016)
            + jacket_rng.uniform(0.0, 0.015) * _smooth_noise(jacket_rng, mesh.rest, 5).clip(0, 1)
            + _folds(jacket_rng, mesh.rest, z, (hem,), 0.008)
        )
        surface = _Surface(mesh.vertices, mesh.faces)
        new = _extrude(
            mesh,
            _face_mask(mesh, region.astype(np.float64)),
            layer_offsets(thickness),
            JACKET,
            [surface, naked],
        )
        fabric_name = _paint_fabric(jacket_rng, mesh, new, "jacket")
        fabric = mesh.colors[new]
        long_coat = jacket_rng.random() < 0.4
        outfit["jacket"] = (
            f"{fabric_name} "
            + ("open " if opened else "closed ")
            + ("coat" if long_coat else "jacket")
        )
        if long_coat:
            coat_hem = (hem, opened, fabric.mean(axis=0))

    # 4. Shoes with a sole (boots where the paint goes up the shin).
    w, z = mesh.weights, mesh.rest[:, 2]
    floor = float(z[w["foot"] > 0.5].min())
    sole = shoes_rng.uniform(0.012, 0.03)
    on_sole = np.clip((floor + 0.025 - z) / 0.015, 0.0, 1.0) * (w["shoes"] > 0.5)
    offsets = layer_offsets(np.full(len(z), shoes_rng.uniform(0.004, 0.008)))
    offsets[:, 1] -= sole * on_sole
    surface = _Surface(mesh.vertices, mesh.faces)
    new = _extrude(mesh, _face_mask(mesh, w["shoes"]), offsets, SHOES, [surface, naked])
    outfit["shoes"] = f"{_paint_fabric(shoes_rng, mesh, new, 'shoes')}, sole {100 * sole:.1f} cm"
    sole_color = (240.0, 240.0, 236.0) if shoes_rng.random() < 0.5 else (35.0, 30.0, 28.0)
    mesh.colors[new[mesh.rest[new, 2] < floor + 0.012]] = sole_color

    # 5. Hair with volume: thicker on top and at the back, strands as ridges, long hair fuller.
    if not regions.bald:
        w = mesh.weights
        normals = _vertex_normals(mesh)
        volume = (
            hair_rng.uniform(0.018, 0.04) if regions.long_hair else hair_rng.uniform(0.005, 0.02)
        )
        hair = w["hair"].copy()
        centre = mesh.rest[hair > 0.5].mean(axis=0)
        if regions.long_hair:  # falling down the back, over whatever is worn there
            neck_base = float(mesh.rest[w["neck"] > 0.5, 2].min())
            back = (
                ((w["torso"] > 0.5) | (w["neck"] > 0.5))
                & (mesh.rest[:, 1] > centre[1] - 0.02)
                & (np.abs(mesh.rest[:, 0] - centre[0]) < hair_rng.uniform(0.07, 0.12))
                & (mesh.rest[:, 2] > neck_base - hair_rng.uniform(0.03, 0.25))
            )
            mesh.colors[back & (hair < 0.5)] = mesh.colors[hair > 0.5].mean(axis=0)
            hair = np.maximum(hair, back.astype(np.float64))
        around = np.arctan2(mesh.rest[:, 0] - centre[0], mesh.rest[:, 1] - centre[1]) * 0.09
        strands = _ring_folds(hair_rng, around, mesh.rest)
        thickness = (
            volume * (0.45 + 0.55 * np.clip(normals[:, 1], 0.0, 1.0)) * (0.8 + 0.4 * strands)
        )
        thickness = np.maximum(thickness, 0.004)
        surface = _Surface(mesh.vertices, mesh.faces)
        hair_new = _extrude(
            mesh, _face_mask(mesh, hair), thickness[:, None] * normals, HAIR, [surface, naked]
        )
        outfit["hair"] = ("long" if regions.long_hair else "short") + f" {100 * volume:.1f} cm"
        if regions.long_hair and len(hair_new) and hair_rng.random() < 0.4:
            hair_color = mesh.colors[hair_new].mean(axis=0)
            head = mesh.vertices[hair_new]
            head_centre = head.mean(axis=0)
            facing = mesh.vertices[mesh.weights["head"] > 0.5].mean(axis=0) - head_centre
            facing[1] = 0.0
            back = -facing / max(np.linalg.norm(facing), 1e-9)
            up = np.array([0.0, 1.0, 0.0])
            surface = _Surface(mesh.vertices, mesh.faces)
            if hair_rng.random() < 0.5:
                anchor = head[np.argmax((head - head_centre) @ (back + 0.6 * up))]
                radius = hair_rng.uniform(0.035, 0.05)
                bun = trimesh.creation.icosphere(subdivisions=3, radius=radius)
                bun.vertices = (
                    bun.vertices * [1.0, 0.8, 1.0]
                    + anchor
                    + 0.5 * radius * (back + 0.6 * up) / np.linalg.norm(back + 0.6 * up)
                )
                _add_object(mesh, bun, hair_color, HAIR, [surface, naked])
                outfit["hair"] += ", bun"
            else:
                anchor = head[np.argmax((head - head_centre) @ back)]
                length = hair_rng.uniform(0.15, 0.35)
                end = (
                    anchor
                    + 0.03 * back
                    + length * (0.25 * back - up) / np.linalg.norm(0.25 * back - up)
                )
                tail = _capsule_along(anchor + 0.01 * back, end, hair_rng.uniform(0.02, 0.03), 0.6)
                _add_object(mesh, tail, hair_color, HAIR, [surface, naked])
                outfit["hair"] += ", ponytail"

    # 6. Surfaces that leave the legs: a skirt or dress, or a coat's tails.
    w = mesh.weights
    # Whatever of the legs and torso falls between a shell's top and hem is inside it (arms and
    # hands are not: they may rest on a skirt).
    legs_and_hips = (w["leg"] > 0.5) | (w["torso"] > 0.5)
    hip_y = _posed_height(mesh, heights.hip, w["leg"] > 0.5)
    knee_y = _posed_height(mesh, heights.knee, w["leg"] > 0.5)
    ankle_y = _posed_height(mesh, heights.ankle, w["leg"] > 0.5)

    def posed_y(rest_z: float) -> float:
        return float(
            np.interp(rest_z, [heights.ankle, heights.knee, heights.hip], [ankle_y, knee_y, hip_y])
        )

    if skirt_hem is not None:
        top_y = _posed_height(mesh, regions.waist, w["torso"] > 0.5)
        spec = _ShellSpec(
            top=top_y,
            hem=posed_y(skirt_hem),
            flare=shell_rng.uniform(0.0, 0.12),
            folds=shell_rng.uniform(0.02, 0.12),
            lobes=int(shell_rng.integers(6, 14)),
            gap=0.0,
            clearance=shell_rng.uniform(0.01, 0.03),
        )
        new = _add_shell(mesh, spec, shell_rng, legs_and_hips)
        # a dress: top and skirt alike
        if outfit["skirt"] == "long skirt" and shell_rng.random() < 0.5:
            outfit["skirt"] = (
                f"{_paint_fabric(shell_rng, mesh, np.concatenate([top_new, new]), 'dress')} dress"
            )
        else:
            outfit["skirt"] = f"{_paint_fabric(shell_rng, mesh, new, 'skirt')} {outfit['skirt']}"
    elif coat_hem is not None:
        hem, opened, fabric = coat_hem
        top_y = _posed_height(mesh, hem + 0.03, w["torso"] > 0.5)
        enclosed = legs_and_hips
        spec = _ShellSpec(
            top=top_y,
            hem=posed_y(heights.knee + shell_rng.uniform(-0.1, 0.15)),
            flare=shell_rng.uniform(0.0, 0.06),
            folds=shell_rng.uniform(0.01, 0.05),
            lobes=int(shell_rng.integers(4, 10)),
            gap=shell_rng.uniform(0.3, 0.9) if opened else 0.0,
            clearance=shell_rng.uniform(0.015, 0.03),
        )
        new = _add_shell(mesh, spec, shell_rng, enclosed)
        mesh.colors[new] = fabric

    # Soles on the floor.
    mesh.compact()
    shift = -float(mesh.vertices[:, 1].min())
    mesh.vertices[:, 1] += shift
    rgba = np.full((len(mesh.vertices), 4), 255, dtype=np.uint8)
    rgba[:, :3] = np.clip(np.round(mesh.colors), 0, 255).astype(np.uint8)
    return Dressed(mesh.vertices, mesh.faces, rgba, mesh.layer, shift, outfit)
