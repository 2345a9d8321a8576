"""Broken scans and interrupted batches through the renderer's real command lines (issue 18, items
1, 4 and 5).

* A data folder mixing good scans with every broken kind (empty file, random bytes, truncated PLY,
  NaN coordinates, a stray vertex at 1e9, zero area; OBJ: missing, corrupt and huge-claiming
  texture, no UVs) and an item whose output cannot be written (an unexpected exception): exactly
  the good scans' outputs, one line per bad scan naming its file, exit status 1.
* A non-manifold scan is a valid scan (human scans often are); a scan in millimetres renders
  exactly like the same scan in metres (the normalisation is scale-free).
* ``kill -9`` in the middle of a ``render/render.py`` batch, then the rerun: no truncated file
  under a real name, stray ``.*.tmp`` files ignored, and the outputs byte-identical to an
  uninterrupted run.
* ``render_keypoint.py`` and ``render.make_training_set`` report a bad item and go on.

Resolutions 64-96 px, few yaws.
"""

from __future__ import annotations

import os

os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")  # before anything imports pyrender

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import trimesh
from test_fuzz_scans import png_claiming
from test_render import (
    colored,
    concat,
    flat_texture,
    output_items,
    pair_mesh,
    write_obj,
    write_ply_item,
)

from render.layout import list_line, view_files
from render.mesh import MAX_TEXTURE_PIXELS

REPO = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYOPENGL_PLATFORM="osmesa")


def cli(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )


def failed_lines(stderr: str) -> list[str]:
    """The end-of-run ``FAILED`` lines (printed without a log prefix)."""
    return [line for line in stderr.splitlines() if line.startswith("FAILED ")]


def real_files(root: Path) -> dict[Path, bytes]:
    """Every output file under ``PERS/`` and ``list/`` by relative path (``.*`` names excluded:
    the temporary files of the atomic writer)."""
    return {
        p.relative_to(root): p.read_bytes()
        for folder in ("PERS", "list")
        for p in (root / folder).rglob("*")
        if p.is_file() and not p.name.startswith(".")
    }


def human_like(color=(180, 120, 90)) -> trimesh.Trimesh:
    """A 1.7 m 'human' of a few hundred vertices (torso, head, legs), in metres."""
    parts = [
        trimesh.creation.box(extents=(0.4, 0.7, 0.25)).apply_translation((0, 1.15, 0)),
        trimesh.creation.icosphere(subdivisions=2, radius=0.12).apply_translation((0, 1.6, 0)),
        trimesh.creation.box(extents=(0.15, 0.8, 0.15)).apply_translation((-0.1, 0.4, 0)),
        trimesh.creation.box(extents=(0.15, 0.8, 0.15)).apply_translation((0.1, 0.4, 0)),
    ]
    return colored(concat(*parts), color)


# ------------------------------------------------------------------------------------------------
# broken scans among good ones, through the CLI
# ------------------------------------------------------------------------------------------------


def test_mixed_ply_folder_renders_exactly_the_good_scans(tmp_path):
    """ANNY (vertex-coloured PLY): good, non-manifold and millimetre scans render; every broken
    kind is one line naming its file; an item whose output is blocked (a folder where its depth
    PNG goes: an unexpected IsADirectoryError) is one line with the exception type and leaves
    nothing behind; exit 1; the list holds the good scans."""
    obj = tmp_path / "obj" / "ANNY"
    good = {"good", "good_mm", "nonmanifold"}
    write_ply_item(tmp_path, "ANNY", "good", human_like())
    mm = human_like()
    mm.vertices *= 1000.0
    write_ply_item(tmp_path, "ANNY", "good_mm", mm)
    # two boxes sharing one edge with a third face: an edge used by 3 faces (non-manifold)
    nm = pair_mesh()
    v = np.asarray(nm.vertices)
    fin = trimesh.Trimesh(
        np.vstack([v, [[0.0, 0.0, 0.5]]]),
        np.vstack([nm.faces, [[nm.faces[0][0], nm.faces[0][1], len(v)]]]),
        vertex_colors=np.vstack([nm.visual.vertex_colors, [[30, 160, 90, 255]]]),
        process=False,
    )
    edge_uses = np.unique(np.sort(fin.edges, axis=1), axis=0, return_counts=True)[1]
    assert edge_uses.max() == 3  # an edge of three faces
    write_ply_item(tmp_path, "ANNY", "nonmanifold", fin)
    bad: dict[str, tuple[Path, str]] = {}

    def bad_item(name: str, data: bytes, problem: str) -> None:
        path = obj / name / f"{name}.ply"
        path.parent.mkdir(parents=True)
        path.write_bytes(data)
        bad[name] = (path, problem)

    good_ply = (obj / "good" / "good.ply").read_bytes()
    bad_item("empty", b"", "cannot read the mesh")
    bad_item("random", np.random.default_rng(5).bytes(3000), "cannot read the mesh")
    bad_item("truncated", good_ply[: len(good_ply) * 2 // 3], "cannot read the mesh")
    for name, change, problem in (
        ("nan", lambda m: m.vertices.__setitem__((3, 1), np.nan), "non-finite vertex"),
        ("stray", lambda m: m.vertices.__setitem__((5, 0), 1e9), "stray vertices"),
        (
            "flat",
            lambda m: m.vertices.__setitem__((slice(None), slice(1, 3)), 0.0),
            "degenerate mesh",
        ),
    ):
        m = human_like()
        change(m)
        path = write_ply_item(tmp_path, "ANNY", name, m)
        bad[name] = (path, problem)
    write_ply_item(tmp_path, "ANNY", "zblocked", human_like())
    blocked = view_files(tmp_path, "ANNY", "zblocked", 0).depth_front
    blocked.mkdir(parents=True)

    args = ("--data_path", str(tmp_path), "--data_name", "ANNY", "--res", "64", "--yaws", "0")
    proc = cli("render.render", *args)
    assert proc.returncode == 1, proc.stderr
    lines = failed_lines(proc.stderr)
    assert len(lines) == len(bad) + 1, lines
    for name, (path, problem) in bad.items():
        assert [line for line in lines if line.startswith(f"FAILED {path}: {problem}")], name
    assert [line for line in lines if line.startswith("FAILED zblocked: IsADirectoryError: ")]
    assert "Traceback" not in proc.stderr
    assert output_items(tmp_path) == good
    assert [p for p in (tmp_path / "PERS").rglob("zblocked*") if p.is_file()] == []
    for name in good:
        assert all(p.is_file() for p in view_files(tmp_path, "ANNY", name, 0).image_files)
    listing = (tmp_path / "list" / "ANNY_all.txt").read_text().splitlines()
    assert listing == [list_line("ANNY", name, 0) for name in sorted(good)]
    assert not list(tmp_path.rglob("*.tmp"))
    # --debug adds the traceback of the unexpected failure
    proc = cli("render.render", *args, "--debug")
    assert (
        proc.returncode == 1 and "Traceback" in proc.stderr and "IsADirectoryError" in proc.stderr
    )


def test_mixed_obj_folder_renders_exactly_the_good_scans(tmp_path):
    """2K2K textured OBJ: the good scan renders; a missing, corrupt or huge-claiming texture and
    an OBJ without UVs are one line each naming the file; exit 1."""
    mesh = human_like()
    uvs = np.full((len(mesh.vertices), 2), 0.5)

    def item(name: str, texture: bytes | None, with_uvs: bool = True) -> Path:
        d = tmp_path / "obj" / "2K2K" / name
        write_obj(d / f"{name}.obj", mesh.vertices, mesh.faces, uvs if with_uvs else None)
        if texture is not None:
            (d / f"{name}.png").write_bytes(texture)
        return d

    ok, png = cv2.imencode(".png", flat_texture())
    assert ok
    item("good", png.tobytes())
    bad = {
        "corrupt": (item("corrupt", png.tobytes()[:40]) / "corrupt.png", "texture missing"),
        "huge": (item("huge", png_claiming(30000, 30000)) / "huge.png", "texture too large"),
        "missing": (item("missing", None) / "missing.png", "2K2K texture not found"),
        "novt": (item("novt", png.tobytes(), False) / "novt.obj", "no face has texture"),
    }
    bad["large"] = (item("large", png_claiming(10000, 15000)) / "large.png", "texture too large")
    assert 10000 * 15000 > MAX_TEXTURE_PIXELS  # below PIL's own limit: ours refuses it
    proc = cli(
        "render.render",
        *("--data_path", str(tmp_path), "--data_name", "2K2K", "--mesh_format", "obj"),
        *("--res", "64", "--yaws", "0"),
    )
    assert proc.returncode == 1, proc.stderr
    lines = failed_lines(proc.stderr)
    assert len(lines) == len(bad), lines
    for name, (path, problem) in bad.items():
        assert [line for line in lines if line.startswith(f"FAILED {path}: {problem}")], name
    assert output_items(tmp_path) == {"good"}


UNIT_FLIPS = 0.01
"""Share of a depth map's pixels allowed to differ, by one PNG step, between a scan in metres and
the same scan in other units (float rounding of the normalised vertices moves a range across a
truncation boundary now and then)."""


@pytest.mark.parametrize("factor", [1000.0, 1e9])
def test_scan_in_other_units_renders_like_metres(tmp_path, factor):
    """The normalisation divides by the scan's own size, so a scan in millimetres (or any unit)
    is not a broken scan: it renders the same files as in metres (colour images byte for byte,
    depth maps up to one PNG step on at most :data:`UNIT_FLIPS` of the pixels)."""
    metres, scaled = tmp_path / "m", tmp_path / "x"
    write_ply_item(metres, "ANNY", "h", human_like())
    big = human_like()
    big.vertices *= factor
    write_ply_item(scaled, "ANNY", "h", big)
    args = ("--data_name", "ANNY", "--res", "64", "--yaws", "0", "30")
    for root in (metres, scaled):
        assert cli("render.render", "--data_path", str(root), *args).returncode == 0
    ours, theirs = real_files(metres), real_files(scaled)
    assert set(ours) == set(theirs) and len(ours) == 2 * 5 + 2
    for name, data in ours.items():
        if "DEPTH" not in name.parts:
            assert data == theirs[name], name
            continue
        a = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED).astype(int)
        b = cv2.imdecode(np.frombuffer(theirs[name], np.uint8), cv2.IMREAD_UNCHANGED)
        diff = np.abs(a - b.astype(int))
        assert diff.max() <= 1 and (diff > 0).mean() <= UNIT_FLIPS, (name, (diff > 0).sum())


# ------------------------------------------------------------------------------------------------
# kill -9 in the middle of a batch, then resume
# ------------------------------------------------------------------------------------------------

KILL_ITEMS = 8
KILL_YAWS = ("-30", "-10", "0", "10", "30")
KILL_ARGS = ("--data_name", "ANNY", "--res", "96", "--yaws", *KILL_YAWS)


def render_until_killed(root: Path, ready) -> None:
    """Start ``render.render`` on ``root`` and SIGKILL it as soon as ``ready()`` is true."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "render.render", "--data_path", str(root), *KILL_ARGS],
        cwd=REPO,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not ready() and time.monotonic() < deadline:
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def test_killed_batch_resumes_to_identical_outputs(tmp_path):
    """SIGKILL a batch once its first file appears (within the first item's writes), resume it and
    SIGKILL it again once a later item starts, then resume to the end. After each kill no file
    under a real name is truncated or different (each equals the uninterrupted run's bytes);
    stray ``.*.tmp`` files (real leftovers and planted ones) are never taken for outputs; the
    last rerun ends byte-identical to the uninterrupted run."""
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    for i in range(KILL_ITEMS):
        mesh = human_like((40 + 20 * i, 200 - 15 * i, 90))
        mesh.vertices[:, 0] *= 1.0 + 0.05 * i
        write_ply_item(whole, "ANNY", f"h{i}", mesh)
    shutil.copytree(whole / "obj", killed / "obj")
    assert cli("render.render", "--data_path", str(whole), *KILL_ARGS).returncode == 0
    reference = real_files(whole)
    total = KILL_ITEMS * len(KILL_YAWS) * 5
    assert len(reference) == total + 2
    pers = killed / "PERS"
    later = f"h{KILL_ITEMS // 2}_"
    for ready in (
        lambda: any(pers.rglob("*.png")),
        lambda: any(p.name.startswith(later) for p in pers.rglob("*.png")),
    ):
        render_until_killed(killed, ready)
        partial = real_files(killed)
        outputs = [p for p in partial if p.parts[0] == "PERS"]
        assert 0 < len(outputs) < total, "the kill did not land mid-batch"
        for name in outputs:  # whole files only: each is the uninterrupted run's
            assert partial[name] == reference[name], name
    # stray temporary files beside the outputs of an unfinished item must not count as outputs
    unfinished = view_files(killed, "ANNY", f"h{KILL_ITEMS - 1}", 0)
    planted = [p.parent / f".{p.name}.x1y2z3.tmp" for p in unfinished.image_files]
    for p in planted:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"\x89PNG truncated")
    assert all(not p.exists() for p in unfinished.image_files)

    rerun = cli("render.render", "--data_path", str(killed), *KILL_ARGS)
    assert rerun.returncode == 0, rerun.stderr
    assert real_files(killed) == reference
    assert all(p.read_bytes() == b"\x89PNG truncated" for p in planted)  # never read nor counted


# ------------------------------------------------------------------------------------------------
# the other batch tools
# ------------------------------------------------------------------------------------------------


def test_keypoint_cli_reports_bad_items_and_goes_on(tmp_path):
    """render_keypoint.py: a good item, a corrupt joint file, a missing one and an item whose view
    was never rendered: one line each naming the file, exit 1, nothing written for the bad."""
    for name in ("a", "b", "c", "d"):
        write_ply_item(tmp_path, "ANNY", name, pair_mesh())
    common = ("--data_path", str(tmp_path), "--data_name", "ANNY", "--res", "64", "--yaws", "0")
    assert cli("render.render", *common, "--items", "a", "b", "c").returncode == 0
    joints = tmp_path / "Joint3D" / "ANNY"
    joints.mkdir(parents=True)
    record = {"joint3d": np.zeros((133, 3)).tolist(), "visible": [1] * 133}
    for name in ("a", "d"):
        (joints / f"{name}.json").write_text(json.dumps(record))
    (joints / "b.json").write_text('{"joint3d": [[0, 0')
    proc = cli("render.render_keypoint", *common)
    assert proc.returncode == 1, proc.stderr
    lines = failed_lines(proc.stderr)
    noshading = view_files(tmp_path, "ANNY", "d", 0).noshading_front
    expected = (
        f"FAILED {joints / 'b.json'}: not a Joint3D JSON",
        f"FAILED {joints / 'c.json'}: 3D joint file not found",
        f"FAILED {noshading}: missing; render the views first",
    )
    assert len(lines) == 3 and all(any(line.startswith(e) for line in lines) for e in expected), (
        lines
    )
    written = {p.name for p in (tmp_path / "PERS" / "keypoint").rglob("*") if p.is_file()}
    assert written == {"a_front.npy"}


def test_training_set_cli_leaves_out_a_failed_human(tmp_path):
    """make_training_set: human 1's PLY is corrupt (its JSON present, so generation skips it):
    one line naming the file, the other humans are built and listed, exit 1."""
    ply = tmp_path / "obj" / "ANNY" / "anny_0001" / "anny_0001.ply"
    ply.parent.mkdir(parents=True)
    ply.write_bytes(b"ply\nformat ascii 1.0\nelement vertex 3\nend_header\n")
    joints = tmp_path / "Joint3D" / "ANNY" / "anny_0001.json"
    joints.parent.mkdir(parents=True)
    joints.write_text("{}")
    proc = cli(
        "render.make_training_set",
        *("--data_path", str(tmp_path), "--num", "3", "--res", "64", "--yaws", "0"),
    )
    assert proc.returncode == 1, proc.stderr
    assert [line.split(": ")[0] for line in failed_lines(proc.stderr)] == [f"FAILED {ply}"]
    train = (tmp_path / "list" / "train.txt").read_text().splitlines()
    val = (tmp_path / "list" / "val.txt").read_text().splitlines()
    assert train == [list_line("ANNY", "anny_0000", 0)]
    assert val == [list_line("ANNY", "anny_0002", 0)]
    written = {p.name for p in (tmp_path / "PERS").rglob("*") if p.is_file()}
    assert written == {
        f"anny_000{i}{suffix}"
        for i in (0, 2)
        for suffix in ("_front.png", "_back.png", "_front.npy", ".png")
    }
