"""Fabric looks of garments: per-vertex sRGB colours of solid, striped, checked, plaid, denim,
knit and printed cloth, and chest prints.

Garments are coloured per vertex (no UV textures), their vertices lie about 1-1.5 cm apart and
are rendered with interpolated vertex colours, so every pattern feature (a stripe, a check, a dot,
a letter cell) is at least :data:`MIN_FEATURE` wide, and pattern borders are linear ramps of
:data:`EDGE` (a hard per-vertex label would give saw-toothed ones).

Patterns live on two surface coordinates of a garment: ``along``, its main direction (given by the
caller: the height, or the distance along a limb), and ``around``, the arc length about the
vertical axis through the garment's centre (:func:`_around`). Checks and stripes therefore follow
the body instead of slicing it along the depth axis: a pattern that varied with depth would paint
depth contours into the texture, a cue that real photos do not have.

Coordinates are rest-pose positions in Anny's frame: metres, Z up, the person faces -Y, their own
left at +X. Colours are float sRGB in 0..255. Every function draws only from the ``rng`` it is
given, so the same generator state gives the same colours.
"""

from __future__ import annotations

import colorsys

import numpy as np

from render.synthetic.colors import _cloth_color, _smooth_noise

FABRICS: tuple[str, ...] = ("solid", "stripes", "checker", "plaid", "denim", "knit", "print")
"""The fabric looks :func:`fabric_colors` draws."""

GARMENTS: tuple[str, ...] = ("top", "jacket", "bottoms", "skirt", "dress", "shoes")
"""The garment kinds :func:`sample_fabric` knows."""

_FABRIC_ODDS: dict[str, tuple[float, ...]] = {
    # solid stripes checker plaid denim knit print
    "top": (0.38, 0.16, 0.08, 0.08, 0.03, 0.12, 0.15),
    "jacket": (0.45, 0.02, 0.03, 0.10, 0.20, 0.15, 0.05),
    "bottoms": (0.38, 0.02, 0.03, 0.05, 0.46, 0.03, 0.03),
    "skirt": (0.38, 0.08, 0.10, 0.16, 0.13, 0.05, 0.10),
    "dress": (0.40, 0.12, 0.10, 0.05, 0.03, 0.08, 0.22),
    "shoes": (0.80, 0.00, 0.02, 0.00, 0.08, 0.08, 0.02),
}
"""Probability of each of :data:`FABRICS` (in that order) per garment kind."""

MIN_FEATURE = 0.03
"""Smallest width of a pattern feature in metres (2-3 vertex spacings, so it shows)."""

EDGE = 0.01
"""Width in metres of the linear colour ramp across a pattern border."""

AROUND_RADIUS = 0.15
"""Radius in metres that turns the angle about the garment's vertical axis into ``around``
(about a torso's: arc lengths on the front of a torso or a thigh come out within ~15 %)."""

MOTTLE = 0.04
"""Relative amplitude of the smooth brightness mottling every fabric gets."""

LOGO_FACING = 0.3
"""A logo covers a vertex only if its unit normal's cosine with ``forward`` exceeds this."""

MIN_LETTER_CELL = 0.02
"""Smallest cell of a logo's blocky letters in metres (letters are 3 x 3 cells)."""

MIN_CONTRAST = 60.0
"""Smallest sRGB distance (0-255 units, Euclidean) between a pattern's ground and its second
colour, so that the pattern shows."""

_LUMA = np.array([0.299, 0.587, 0.114])
_DENIM_SHADES = np.array(
    [
        (32, 42, 72),  # raw indigo
        (46, 62, 98),  # dark wash
        (70, 96, 136),  # mid wash
        (112, 140, 172),  # light wash
        (150, 172, 196),  # bleached
        (36, 36, 40),  # black
        (96, 98, 104),  # grey
    ],
    dtype=float,
)
_DENIM_PROBS = np.array([0.16, 0.26, 0.24, 0.12, 0.04, 0.1, 0.08])
_CAMO = np.array([(84, 90, 58), (118, 104, 72), (52, 50, 40), (150, 142, 108)], dtype=float)


def sample_fabric(rng: np.random.Generator, garment: str) -> str:
    """A fabric of :data:`FABRICS` for a ``garment`` of :data:`GARMENTS`, drawn with plausible
    odds (:data:`_FABRIC_ODDS`: bottoms are often denim, shoes mostly solid, ...).

    Raises:
        ValueError: ``garment`` is not one of :data:`GARMENTS`.
    """
    if garment not in _FABRIC_ODDS:
        raise ValueError(f"unknown garment {garment!r}; known: {', '.join(GARMENTS)}")
    return FABRICS[rng.choice(len(FABRICS), p=_FABRIC_ODDS[garment])]


def _around(coords: np.ndarray) -> np.ndarray:
    """``[N]`` arc length in metres about the vertical axis through the centre of ``coords``
    (``[N, 3]``): :data:`AROUND_RADIUS` times the angle from the front (-Y), positive towards
    the person's left (+X); the seam (+-pi R) is at the back."""
    centre = coords[:, :2].mean(axis=0)
    return AROUND_RADIUS * np.arctan2(coords[:, 0] - centre[0], centre[1] - coords[:, 1])


def _sett(
    rng: np.random.Generator, coordinate: np.ndarray, widths: np.ndarray, values: np.ndarray
) -> np.ndarray:
    """``[N, C]`` repeating bands across ``coordinate`` (``[N]``, metres): band ``k`` is
    ``widths[k]`` wide and has ``values[k]`` (``[K, C]``); a random phase; borders ramp over
    :data:`EDGE` into the neighbouring band's value."""
    period = widths.sum()
    ends = np.cumsum(widths)
    t = np.mod(coordinate + rng.uniform(0.0, period), period)
    band = np.minimum(np.searchsorted(ends, t, side="right"), len(widths) - 1)
    to_end, from_start = ends[band] - t, t - (ends[band] - widths[band])
    count = len(widths)
    out = values[band].copy()
    out += np.clip(0.5 - to_end / EDGE, 0.0, 1.0)[:, None] * (values[(band + 1) % count] - out)
    out += np.clip(0.5 - from_start / EDGE, 0.0, 1.0)[:, None] * (values[band - 1] - values[band])
    return out


def _second_color(rng: np.random.Generator, base: np.ndarray) -> np.ndarray:
    """``[3]`` a pattern's second colour: another garment colour, or ``base`` darker or lighter;
    at least :data:`MIN_CONTRAST` from ``base`` (else ``base`` halved, or halfway to white when
    it is dark)."""
    if rng.random() < 0.6:
        color = _cloth_color(rng)
    else:
        color = np.clip(base * rng.choice([0.55, 1.45]) + rng.choice([0.0, 30.0]), 0.0, 255.0)
    if np.linalg.norm(color - base) >= MIN_CONTRAST:
        return color
    return 0.5 * base if base @ _LUMA > 100.0 else base + 0.6 * (255.0 - base)


def _stripes(rng: np.random.Generator, base: np.ndarray, along: np.ndarray) -> np.ndarray:
    """Bands across ``along``: two or three colours, each band 3-8 cm wide."""
    palette = [base, _second_color(rng, base)]
    if rng.random() < 0.35:
        palette += [base, _second_color(rng, base)]  # base, a, base, b
    widths = rng.uniform(MIN_FEATURE, 0.08, size=len(palette))
    return _sett(rng, along, widths, np.array(palette))


def _checker(
    rng: np.random.Generator, base: np.ndarray, around: np.ndarray, along: np.ndarray
) -> np.ndarray:
    """A two-colour checker, or a gingham (a light ground crossed by translucent ``base``
    stripes: light, mixed and full squares), of 3-7 cm squares."""
    cell = rng.uniform(MIN_FEATURE, 0.07)
    widths = np.array([cell, cell])
    if rng.random() < 0.5:
        su = _sett(rng, around, widths, np.array([[1.0], [-1.0]]))
        sv = _sett(rng, along, widths, np.array([[1.0], [-1.0]]))
        second = _second_color(rng, base)
        return base + (0.5 - 0.5 * su * sv) * (second - base)
    ground = np.array([240.0, 238.0, 232.0]) * rng.uniform(0.9, 1.02)
    cover = _sett(rng, around, widths, np.array([[1.0], [0.0]]))
    cover += _sett(rng, along, widths, np.array([[1.0], [0.0]]))
    return ground + 0.5 * cover * (base - ground)


def _plaid(
    rng: np.random.Generator, base: np.ndarray, around: np.ndarray, along: np.ndarray
) -> np.ndarray:
    """A tartan: the same sett of 4-6 bands (3-7 cm, 3-4 colours) across both directions, each
    point the mean of its two bands' colours (a twill weave's crossing)."""
    palette = np.array(
        [base, base * 0.45, _second_color(rng, base), np.clip(base * 1.4 + 40.0, 0.0, 255.0)]
    )
    count = int(rng.integers(4, 7))
    order = rng.choice(len(palette), size=count)
    order[:2] = 0, rng.integers(1, len(palette))  # the ground and at least one other colour
    widths = rng.uniform(MIN_FEATURE, 0.07, size=count)
    return 0.5 * (
        _sett(rng, around, widths, palette[order]) + _sett(rng, along, widths, palette[order])
    )


def _denim(
    rng: np.random.Generator,
    base: np.ndarray,
    coords: np.ndarray,
    around: np.ndarray,
) -> np.ndarray:
    """Denim: mottled grain, lighter fading on the front (towards -Y) in smooth patches, and
    darker side seams (``around`` = +-pi/2 R) most of the time."""
    n = len(coords)
    colors = base * (1.0 + 0.06 * _smooth_noise(rng, coords))[:, None]
    colors *= 1.0 + 0.03 * rng.standard_normal((n, 1))  # per-vertex grain
    front = np.clip((coords[:, :2].mean(axis=0)[1] - coords[:, 1]) / 0.1, 0.0, 1.0)
    patches = 0.5 + 0.5 * _smooth_noise(rng, coords)
    fade = rng.uniform(0.25, 0.6) * front * patches
    light = np.clip(base * 1.6 + 45.0, 0.0, 255.0)
    colors += fade[:, None] * (light - colors)
    if rng.random() < 0.7:
        side = np.abs(np.abs(around) - 0.5 * np.pi * AROUND_RADIUS)
        seam = np.clip(0.5 + (0.008 - side) / EDGE, 0.0, 1.0)
        colors *= 1.0 - 0.25 * seam[:, None]
    return colors


def _knit(
    rng: np.random.Generator,
    base: np.ndarray,
    coords: np.ndarray,
    around: np.ndarray,
    along: np.ndarray,
) -> np.ndarray:
    """Knit: chunky ribs (6-10 cm period) across ``along``, sometimes weaker ribs across
    ``around`` (cables), and heather (two-tone smooth noise plus per-vertex yarn noise)."""
    n = len(along)
    rib = np.sin(2 * np.pi * (along / rng.uniform(0.06, 0.1) + rng.random()))
    shade = 1.0 + rng.uniform(0.08, 0.15) * np.sign(rib) * np.abs(rib) ** 0.5
    if rng.random() < 0.4:
        shade += 0.06 * np.sin(2 * np.pi * (around / rng.uniform(0.06, 0.1) + rng.random()))
    fleck = base * rng.uniform(0.75, 1.25) + rng.uniform(-20.0, 20.0, size=3)
    mix = rng.uniform(0.1, 0.35) * (0.5 + 0.5 * _smooth_noise(rng, coords))
    colors = base + mix[:, None] * (fleck - base)
    colors *= (shade * (1.0 + 0.05 * rng.standard_normal(n)))[:, None]
    return colors


def _cells(
    rng: np.random.Generator, uv: np.ndarray, spacing: float, jitter: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A jittered grid of motifs over ``uv`` (``[N, 2]``, metres): each point's offset from its
    cell's motif centre (``[N, 2]``), the cell's flat index (``[N]``) and the cell count."""
    low = uv.min(axis=0) - rng.uniform(0.0, spacing, size=2)
    index = np.floor((uv - low) / spacing).astype(np.int64)
    shape = index.max(axis=0) + 1
    flat = index[:, 0] * shape[1] + index[:, 1]
    cells = int(shape[0] * shape[1])
    centres = (rng.uniform(-jitter, jitter, size=(cells, 2)) + 0.5) * spacing
    return uv - low - index * spacing - centres[flat], flat, cells


def _print(
    rng: np.random.Generator,
    base: np.ndarray,
    coords: np.ndarray,
    around: np.ndarray,
    along: np.ndarray,
) -> np.ndarray:
    """A print on a ``base`` ground: polka dots, flowers (five-petal rose curves with a centre)
    or camouflage patches."""
    kind = rng.choice(["dots", "floral", "camo"])
    colors = np.tile(base, (len(along), 1))
    if kind == "camo":
        palette = _CAMO * rng.uniform(0.85, 1.1) if rng.random() < 0.5 else None
        for layer in range(3):
            color = _cloth_color(rng) if palette is None else palette[layer + 1]
            noise = _smooth_noise(rng, coords)
            weight = np.clip(0.5 + (noise - rng.uniform(0.1, 0.4)) / 0.1, 0.0, 1.0)
            colors += weight[:, None] * (color - colors)
        return colors
    uv = np.stack([around, along], axis=1)
    spacing = rng.uniform(0.07, 0.14)
    # the cell count follows the garment's extent: draws per cell come from their own stream
    cell_rng = rng.spawn(1)[0]
    offset, flat, cells = _cells(cell_rng, uv, spacing, jitter=0.12)
    radius_table = cell_rng.uniform(0.28, 0.36, size=cells) * spacing
    shown = cell_rng.random(cells) < rng.uniform(0.75, 1.0)
    radius = np.maximum(radius_table[flat], 0.5 * MIN_FEATURE)
    distance = np.linalg.norm(offset, axis=1)
    motif = [_second_color(rng, base)]
    if kind == "dots":
        inside = shown[flat] * np.clip(0.5 + (radius - distance) / EDGE, 0.0, 1.0)
        colors += inside[:, None] * (motif[0] - colors)
        return colors
    motif += [_cloth_color(rng), np.array([230.0, 190.0, 60.0]) * rng.uniform(0.8, 1.05)]
    tint = cell_rng.integers(0, 2, size=cells)  # petals in the first or the second motif colour
    petals = rng.integers(4, 7)
    turn = cell_rng.uniform(0, 2 * np.pi, size=cells)
    angle = np.arctan2(offset[:, 1], offset[:, 0]) + turn[flat]
    outline = radius * (0.55 + 0.45 * np.abs(np.cos(0.5 * petals * angle)))
    petal = shown[flat] * np.clip(0.5 + (outline - distance) / EDGE, 0.0, 1.0)
    petal_colors = np.array(motif[:2])[tint[flat]]
    colors += petal[:, None] * (petal_colors - colors)
    heart = shown[flat] * np.clip(0.5 + (0.3 * radius - distance) / EDGE, 0.0, 1.0)
    colors += heart[:, None] * (motif[2] - colors)
    return colors


def fabric_colors(
    rng: np.random.Generator,
    fabric: str,
    coords: np.ndarray,
    along: np.ndarray,
    base: np.ndarray | None = None,
) -> np.ndarray:
    """Per-vertex colours of one garment in a fabric of :data:`FABRICS`.

    Args:
        rng: random generator (the only source of randomness).
        fabric: one of :data:`FABRICS`.
        coords: ``[N, 3]`` rest-pose vertex positions, metres, Anny's frame (Z up, facing -Y,
            own left at +X).
        along: ``[N]`` metres along the garment's main direction (height, or distance along a
            limb): stripes and knit ribs run across it.
        base: ``[3]`` sRGB 0-255 ground colour, or None to draw one (a garment colour; denim
            draws a denim shade).
    Returns:
        ``[N, 3]`` float sRGB in 0..255.
    Raises:
        ValueError: ``fabric`` is not one of :data:`FABRICS`.
    """
    if fabric not in FABRICS:
        raise ValueError(f"unknown fabric {fabric!r}; known: {', '.join(FABRICS)}")
    coords = np.asarray(coords, dtype=float)
    along = np.asarray(along, dtype=float)
    if base is None:
        if fabric == "denim":
            shade = _DENIM_SHADES[rng.choice(len(_DENIM_SHADES), p=_DENIM_PROBS)]
            base = shade * rng.uniform(0.92, 1.08)
        else:
            base = _cloth_color(rng)
    base = np.asarray(base, dtype=float)
    around = _around(coords)
    if fabric == "solid":
        colors = np.tile(base, (len(along), 1))
    elif fabric == "stripes":
        colors = _stripes(rng, base, along)
    elif fabric == "checker":
        colors = _checker(rng, base, around, along)
    elif fabric == "plaid":
        colors = _plaid(rng, base, around, along)
    elif fabric == "denim":
        colors = _denim(rng, base, coords, around)
    elif fabric == "knit":
        colors = _knit(rng, base, coords, around, along)
    else:
        colors = _print(rng, base, coords, around, along)
    colors *= 1.0 + MOTTLE * _smooth_noise(rng, coords)[:, None]
    return np.clip(colors, 0.0, 255.0)


def _contrasting(rng: np.random.Generator, ground: np.ndarray) -> np.ndarray:
    """``[3]`` a colour of random hue whose brightness is far from ``ground``'s (``[3]``)."""
    value = rng.uniform(0.1, 0.25) if ground @ _LUMA > 128 else rng.uniform(0.85, 1.0)
    saturation = rng.choice([0.0, rng.uniform(0.4, 0.9)])
    return 255.0 * np.array(colorsys.hsv_to_rgb(rng.random(), saturation, value))


def add_logo(
    rng: np.random.Generator,
    colors: np.ndarray,
    coords: np.ndarray,
    normals: np.ndarray,
    centre: np.ndarray,
    forward: np.ndarray,
    up: np.ndarray,
    size: float,
) -> None:
    """Paint a chest print in place: a disc, a rectangle or a band of blocky "letters" in a
    contrasting colour, within ``size`` of ``centre`` on vertices whose normals face ``forward``.

    The print lies in the plane through ``centre`` spanned by ``up`` and the viewer's right
    (``up x forward``, the wearer's left), projected along ``forward``; vertices whose normal's
    cosine with ``forward`` is at most :data:`LOGO_FACING`, or farther than ``size`` from
    ``centre``, are left as they are.

    Args:
        rng: random generator.
        colors: ``[N, 3]`` float sRGB 0-255, changed in place.
        coords: ``[N, 3]`` vertex positions, metres.
        normals: ``[N, 3]`` unit vertex normals.
        centre: ``[3]`` the print's centre on the garment's surface.
        forward: ``[3]`` the direction the print faces (the wearer's front).
        up: ``[3]`` the print's up direction.
        size: the print's width in metres.
    """
    forward = forward / np.linalg.norm(forward)
    up = up - (up @ forward) * forward
    up /= np.linalg.norm(up)
    right = np.cross(up, forward)
    offset = coords - centre
    a, b = offset @ right, offset @ up
    near = (normals @ forward > LOGO_FACING) & (np.linalg.norm(offset, axis=1) < size)
    half = 0.5 * size
    kind = rng.choice(["disc", "rectangle", "letters"])
    if kind == "disc":
        weight = np.clip(0.5 + (half - np.hypot(a, b)) / EDGE, 0.0, 1.0)
    elif kind == "rectangle":
        height = half * rng.uniform(0.4, 1.0)
        border = np.minimum(half - np.abs(a), height - np.abs(b))
        weight = np.clip(0.5 + border / EDGE, 0.0, 1.0)
    else:  # letters of 3 x 3 cells, one empty column between letters
        count = int(rng.integers(2, 6))
        cell = size / (4 * count - 1)
        if cell < MIN_LETTER_CELL:
            count = max(1, int((size / MIN_LETTER_CELL + 1) // 4))
            cell = size / (4 * count - 1)
        glyphs = rng.random((count, 3, 3)) < 0.6
        glyphs[:, :, 1] |= ~glyphs.any(axis=2)  # no empty row: every letter spans 3 rows
        column = np.floor((a + half) / cell).astype(np.int64)
        row = np.floor((1.5 * cell - b) / cell).astype(np.int64)
        letter, inner = column // 4, column % 4
        valid = (column >= 0) & (letter < count) & (inner < 3) & (row >= 0) & (row < 3)
        weight = np.zeros(len(coords))
        idx = np.flatnonzero(valid)
        weight[idx] = glyphs[letter[idx], row[idx], inner[idx]]
    weight = weight * near
    ground = colors[weight > 0].mean(axis=0) if np.any(weight > 0) else colors.mean(axis=0)
    colors += weight[:, None] * (_contrasting(rng, ground) - colors)
