"""The browser app (``app.py``, ``inference.app``), the licence and the citation file.

The runner tests need no extra: a bundled sample gives a mesh in three formats with the same
vertices, and bad photos give one line naming the uploaded file, leaving nothing behind. The
browser tests need the app extra (``bash scripts/setup.sh --app``: Gradio, Playwright and Debian's
Chromium) and skip without it: ``python app.py`` runs in a subprocess on a free port, headless
Chromium uploads a bundled sample and its keypoints, waits for the mesh, checks that the 3D viewer
draws it, downloads the OBJ and parses it, tries a file that is no image, and checks that the page
asked nothing of any host but the app's own.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import trimesh
from test_photo import clutter_background, demo_person, write_rgb

from inference.app import MESH_DOWNLOADS, AppRunner, keypoint_picture
from inference.demo import DEMO_DATA
from inference.detect import photo_extra_missing
from utils.keypoints import KEYPOINT_NAMES

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / DEMO_DATA / "images" / "anny_0090.png"
SAMPLE_KEYPOINTS = SAMPLE.with_name("anny_0090_keypoints.npy")
CHROMIUM = Path("/usr/bin/chromium")
MIN_VERTICES = 1000
"""A demo person's Poisson mesh has about 96,000 vertices; fewer than 1,000 is no body."""
MIN_VIEWER_COVERAGE = 0.02
"""Share of the 3D viewer's canvas the mesh must cover (the demo person covers about 10 %; the
empty viewer is uniformly white)."""
SERVER_START_S = 120.0
"""Longest wait for ``python app.py`` to answer (about 10 s here: imports, weights)."""
RUN_TIMEOUT_MS = 120_000
"""Longest wait for one reconstruction in the page (about 8 s on 2 cores)."""
VIEWER_TIMEOUT_S = 30.0
"""Longest wait for the viewer to draw the loaded mesh (software WebGL)."""
LOCAL_HOSTS = ("127.0.0.1", "localhost")


# ------------------------------------------------------------------------------------------------
# Licence and citation
# ------------------------------------------------------------------------------------------------


def test_licence_is_apache_2() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert text.lstrip().startswith("Apache License\n                           Version 2.0")
    assert "3. Grant of Patent License." in text  # the full text, with the patent grant
    assert "END OF TERMS AND CONDITIONS" in text
    notice = (ROOT / "NOTICE").read_text()
    for bundled in (
        "data/demo/",
        "checkpoints/demo_w025_512.pt",
        "checkpoints/open_w025_512.pt",
        "LICENSE-SiTH.txt",
    ):
        assert bundled in notice


def test_citation_cff_is_valid() -> None:
    """CITATION.cff parses as YAML with the fields CFF 1.2.0 requires, cites the paper with its
    six authors and names the code's licence."""
    yaml = pytest.importorskip("yaml")
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    for key in ("cff-version", "message", "title", "authors"):
        assert cff.get(key), key
    assert cff["cff-version"] == "1.2.0"
    assert cff["license"] == "Apache-2.0"
    for person in cff["authors"]:
        assert person.get("name") or person.get("family-names")
    paper = cff["preferred-citation"]
    for key in ("type", "title", "authors"):
        assert paper.get(key), key
    assert paper["type"] == "conference-paper"
    assert paper["title"] == "High-fidelity 3D Human Digitization from Single 2K Resolution Images"
    assert paper["year"] == 2023 and "CVPR" in paper["conference"]["name"]
    names = [(a["family-names"], a["given-names"]) for a in paper["authors"]]
    assert names == [
        ("Han", "Sang-Hun"),
        ("Park", "Min-Gyu"),
        ("Yoon", "Ju Hong"),
        ("Kang", "Ju-Mi"),
        ("Park", "Young-Jae"),
        ("Jeon", "Hae-Gon"),
    ]


# ------------------------------------------------------------------------------------------------
# The runner (no extra needed)
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppRunner]:
    app_runner = AppRunner(out_dir=tmp_path_factory.mktemp("app_runs"))
    yield app_runner
    app_runner.close()


def test_sample_gives_meshes_in_three_formats(runner: AppRunner) -> None:
    steps: list[float] = []
    result, line = runner.run(SAMPLE, SAMPLE_KEYPOINTS, lambda done, what: steps.append(done))
    assert result is not None, line
    assert line.startswith(f"{SAMPLE.name}: {result.vertices:,} vertices")
    assert steps == sorted(steps) and steps[-1] == 1.0  # the page's progress bar moves forward
    assert result.vertices > MIN_VERTICES
    meshes = {
        fmt: trimesh.load(result.meshes[fmt], process=False, force="mesh") for fmt in MESH_DOWNLOADS
    }
    for fmt, mesh in meshes.items():
        assert len(mesh.vertices) == result.vertices, fmt
        assert len(mesh.faces) == result.faces, fmt
        np.testing.assert_allclose(mesh.vertices, meshes["obj"].vertices, atol=1e-5, err_msg=fmt)
    glb_colors = meshes["glb"].visual.vertex_colors[:, :3]
    assert glb_colors.std() > 5  # the person's colours, not one default grey
    # upright and facing the viewer: taller along +Y than wide, its front (+Z) toward the camera
    extent = np.ptp(meshes["glb"].vertices, axis=0)
    assert extent[1] > 2 * extent[0]
    # the run folder holds test_02_model.py's layout for this photo
    stem = SAMPLE.stem
    for rel in (f"depth/{stem}_front.png", f"normal/{stem}_back.png", f"output_plys/{stem}.ply"):
        assert (result.run_dir / rel).is_file(), rel
    res = runner.predictor.res
    for picture in (result.normal_front, result.normal_back, result.depth_front):
        assert picture.shape == (res, res, 3) and picture.dtype == np.uint8
    # the keypoints are drawn: the overlay differs from the bare photo near them, and only there
    rgba = cv2.cvtColor(cv2.imread(str(SAMPLE), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGRA2RGBA)
    keypoints = np.load(SAMPLE_KEYPOINTS)
    bare = keypoint_picture(rgba, keypoints * [1, 1, 0])  # confidence 0: nothing drawn
    drawn = np.argwhere((result.overlay != bare).any(axis=2))[:, ::-1]  # (u, v) of drawn pixels
    present = keypoints[keypoints[:, 2] > 0, :2]
    assert len(drawn) > 0
    nearest = np.linalg.norm(drawn[:, None] - present[None], axis=2).min(axis=1)
    radius = max(2, rgba.shape[0] // 256)  # keypoint_overlay's dots, centred on integer pixels
    assert nearest.max() < radius + 1 + np.sqrt(2)  # + anti-aliasing + the centres' rounding


def _tiny_person(folder: Path) -> tuple[Path, Path]:
    """The sample shrunk to 64 pixels in a 1024 canvas, keypoints alike: 0.04 % of the frame."""
    rgba = cv2.imread(str(SAMPLE), cv2.IMREAD_UNCHANGED)
    canvas = np.zeros((1024, 1024, 4), np.uint8)
    canvas[100:164, 100:164] = cv2.resize(rgba, (64, 64), interpolation=cv2.INTER_AREA)
    keypoints = np.load(SAMPLE_KEYPOINTS)
    keypoints[:, :2] = keypoints[:, :2] * 64 / rgba.shape[0] + 100
    cv2.imwrite(str(folder / "tiny.png"), canvas)
    np.save(folder / "tiny_pose.npy", keypoints)
    return folder / "tiny.png", folder / "tiny_pose.npy"


def _bad_case(name: str, folder: Path) -> tuple[Path, Path | None, str]:
    """(photo, keypoints, the start of the expected line) of one bad upload."""
    if name == "not an image":
        (folder / "notes.png").write_text("this is text, not a PNG")
        return folder / "notes.png", None, "notes.png: cannot be decoded as an image"
    if name == "no person":  # the photo extra finds nobody, or says it is needed
        cv2.imwrite(str(folder / "wall.jpg"), np.full((900, 600, 3), 128, np.uint8))
        return folder / "wall.jpg", None, "wall.jpg: "
    if name == "tiny person":
        photo, keypoints = _tiny_person(folder)
        return photo, keypoints, "tiny.png: the silhouette (alpha, mask or background removal)"
    if name == "keypoints missing":
        (folder / "pose.json").write_text(json.dumps({"version": 1.3, "people": []}))
        return SAMPLE, folder / "pose.json", "pose.json: OpenPose JSON contains zero people"
    if name == "crop at the knees":  # a plain photo: the detector's keypoints, no ankles
        if photo_extra_missing() is not None:
            pytest.skip(photo_extra_missing())
        plain, keypoints, _ = demo_person(SAMPLE.stem)
        knee = int(keypoints[KEYPOINT_NAMES.index("l_knee"), 1])
        photo = write_rgb(folder / "knees.png", plain[: knee + 5])
        return photo, None, "knees.png: cannot place body part(s): l_lower_leg (missing l_ankle)"
    raise ValueError(name)


@pytest.mark.parametrize(
    "case", ["not an image", "no person", "tiny person", "keypoints missing", "crop at the knees"]
)
def test_bad_photo_is_one_line_naming_the_upload(
    runner: AppRunner, tmp_path: Path, case: str
) -> None:
    photo, keypoints, expected = _bad_case(case, tmp_path)
    before = set(runner.out_dir.iterdir())
    result, line = runner.run(photo, keypoints)
    assert result is None
    assert line.startswith(expected), line
    assert "\n" not in line and "Traceback" not in line
    assert str(runner.out_dir) not in line  # the upload's name, not the run folder's copy
    assert set(runner.out_dir.iterdir()) == before  # a failed run leaves no folder


def test_two_people_are_named_in_the_status(runner: AppRunner, tmp_path: Path) -> None:
    """Two people in a plain photo: the detector's most prominent one is reconstructed and the
    status line says that another was ignored."""
    if photo_extra_missing() is not None:
        pytest.skip(photo_extra_missing())
    scene = clutter_background(512, 512, seed=4)
    for x0, stem in ((0, "anny_0090"), (256, "anny_0095")):  # as test_photo's two-people case
        person, _, _ = demo_person(stem)
        small = cv2.resize(person, (256, 256), interpolation=cv2.INTER_AREA)
        mask = cv2.resize((person != scene).any(axis=2).astype(np.uint8), (256, 256)) > 0
        scene[128:384, x0 : x0 + 256][mask] = small[mask]
    result, line = runner.run(write_rgb(tmp_path / "two.png", scene))
    assert result is not None and result.vertices > MIN_VERTICES, line
    assert "\n" not in line and "detector: another person near" in line, line


def test_app_refuses_bad_weights_in_one_line(tmp_path: Path) -> None:
    """A whole-run error stops ``python app.py`` before it serves anything."""
    proc = subprocess.run(
        [sys.executable, "app.py", "--checkpoint", str(tmp_path / "none.pt"), "--port", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and ("none.pt" in last or "--app" in last), last


# ------------------------------------------------------------------------------------------------
# In a real browser (app extra)
# ------------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``python app.py`` on a free port (uploads and runs in a temporary folder); its URL."""
    pytest.importorskip("gradio", reason="the app extra is not installed (scripts/setup.sh --app)")
    pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (--app)")
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} is not installed (bash scripts/setup.sh --app)")
    folder = tmp_path_factory.mktemp("app_server")
    port = _free_port()
    env = {**os.environ, "GRADIO_TEMP_DIR": str(folder / "uploads")}
    log = (folder / "server.log").open("w")
    cmd = [sys.executable, "app.py", "--port", str(port), "--out", str(folder / "runs")]
    server = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + SERVER_START_S
    try:
        while True:
            if server.poll() is not None:
                pytest.fail(f"app.py exited: {(folder / 'server.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"app.py did not answer in {SERVER_START_S:.0f} s")
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


@pytest.fixture
def page(app_url: str) -> Iterator[tuple[object, list[str]]]:
    """A headless Chromium page on the app and the list of requests it made to other hosts
    (each refused)."""
    from playwright.sync_api import sync_playwright

    external: list[str] = []

    def local_only(route: object) -> None:
        host = urllib.parse.urlsplit(route.request.url).hostname
        if host in LOCAL_HOSTS:
            route.continue_()
        else:
            external.append(route.request.url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            tab = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
            tab.route("**/*", local_only)
            tab.goto(app_url)
            tab.wait_for_load_state("networkidle")
            yield tab, external
        finally:
            browser.close()


def _status(tab: object) -> str:
    return tab.locator("#status textarea").input_value()


def _run(tab: object, photo: Path, keypoints: Path | None, done: str) -> str:
    """Upload, press the button, wait until the status line holds ``done``; the status."""
    tab.locator("#photo input[type=file]").set_input_files(str(photo))
    tab.locator("#photo").get_by_text(photo.name).wait_for()
    if keypoints is not None:
        tab.locator("#keypoints input[type=file]").set_input_files(str(keypoints))
        tab.locator("#keypoints").get_by_text(keypoints.name).wait_for()
    tab.locator("#run").click()
    tab.wait_for_function(
        "done => (document.querySelector('#status textarea')?.value || '').includes(done)",
        arg=done,
        timeout=RUN_TIMEOUT_MS,
    )
    return _status(tab)


def _viewer_coverage(tab: object, path: Path) -> float:
    """Share of the viewer's canvas that is not its white background."""
    tab.locator("#viewer canvas").screenshot(path=str(path))
    pixels = cv2.imread(str(path))
    return float((pixels.min(axis=2) < 200).mean())


def test_browser_sample_to_mesh(page: tuple[object, list[str]], tmp_path: Path) -> None:
    tab, external = page
    status = _run(tab, SAMPLE, SAMPLE_KEYPOINTS, "vertices")
    vertices = int(re.search(r": ([\d,]+) vertices", status).group(1).replace(",", ""))
    assert vertices > MIN_VERTICES
    # the viewer draws the mesh (software WebGL: give it time)
    deadline = time.monotonic() + VIEWER_TIMEOUT_S
    while (coverage := _viewer_coverage(tab, tmp_path / "viewer.png")) < MIN_VIEWER_COVERAGE:
        assert time.monotonic() < deadline, f"the viewer shows {coverage:.1%} of a mesh"
        time.sleep(1)
    for element in ("overlay", "normal_front", "normal_back", "depth"):
        assert tab.locator(f"#{element} img").count() == 1, element
    # the three downloads, and the OBJ as a browser saves it
    links = tab.locator("#downloads a")
    hrefs = [links.nth(i).get_attribute("href") for i in range(links.count())]
    names = sorted(href.rsplit("/", 1)[-1] for href in hrefs)
    assert names == sorted(f"anny_0090.{fmt}" for fmt in MESH_DOWNLOADS)
    with tab.expect_download() as download:
        tab.locator("#downloads a[href$='.obj']").click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    mesh = trimesh.load(saved, process=False, force="mesh")
    assert saved.suffix == ".obj" and len(mesh.vertices) == vertices and len(mesh.faces) > 0
    if os.environ.get("APP_SCREENSHOT"):  # docs/app.md's picture
        tab.screenshot(path=os.environ["APP_SCREENSHOT"], full_page=True)
    assert external == []  # offline: fonts, scripts, analytics, nothing from elsewhere


def test_browser_bad_photo_shows_one_line(page: tuple[object, list[str]], tmp_path: Path) -> None:
    tab, external = page
    bad = tmp_path / "not_a_photo.png"
    bad.write_text("no pixels here")
    status = _run(tab, bad, None, "not_a_photo.png:")
    assert status == "not_a_photo.png: cannot be decoded as an image (corrupt or truncated file)"
    assert "Traceback" not in tab.content()
    assert tab.locator("#downloads a").count() == 0
    assert tab.locator("#viewer canvas").count() == 0
    assert external == []
