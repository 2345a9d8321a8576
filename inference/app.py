"""The model in a browser (``python app.py``): one photo -> keypoints, maps, a mesh, downloads.

:class:`AppRunner` does for one uploaded photo what ``test_02_model.py`` and ``test_03_poisson.py``
do for a folder, with the same package functions: :class:`~inference.batch.InputReader` (the
photo's alpha or the photo extra's segmenter for the mask; the uploaded keypoint file, else the
photo extra's detector: ``--keypoints auto --mask auto``), :meth:`Predictor.predict
<inference.predictor.Predictor.predict>`, the authors' output files
(:func:`~inference.predictor.prediction_files`), then screened Poisson on the point cloud
(:func:`meshing.io.read_point_cloud`, :func:`meshing.poisson.reconstruct`, default
:class:`~meshing.poisson.PoissonOptions`) written as OBJ and PLY (:func:`meshing.io.write_mesh`)
and GLB with vertex colours for the viewer. Each run writes into its own folder under the app's
output folder; a run that fails, for whatever reason, is one line naming the uploaded file and
the problem (:func:`utils.batch.failure_line`, the batch tools' line) and leaves no folder behind.

:func:`build_ui` lays out the Gradio page and :func:`launch` serves it, offline: no analytics, no
share link, system fonts, nothing fetched at run time (``tests/test_app.py`` checks this in
Chromium). Gradio is the app extra (``bash scripts/setup.sh --app``); this module imports it only
in those two functions, so :class:`AppRunner` works without it.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import trimesh

from meshing.io import read_point_cloud, write_mesh
from meshing.poisson import Mesh, MeshingError, PoissonOptions, reconstruct
from render.keypoints3d import keypoint_overlay
from utils.batch import run_item
from utils.fileio import atomic_write_bytes, check_writable_dir
from utils.visualize import depth_rgb8, normal_rgb8

from .batch import InputOptions, InputReader, detection_files
from .demo import DEMO_CHECKPOINT, DEMO_DATA
from .io import image_stem, write_files
from .predictor import OutputOptions, Predictor, prediction_files

log = logging.getLogger(__name__)

APP_INSTALL = "bash scripts/setup.sh --app"
"""Command that installs the app extra (requirements-app.txt) into the project's .venv."""
MESH_DOWNLOADS = ("obj", "ply", "glb")
"""Mesh files offered for download, in this order; the viewer shows the GLB."""
SYSTEM_FONTS = ("ui-sans-serif", "system-ui", "sans-serif")
"""The page's fonts: the browser's own (no web font is fetched)."""
SYSTEM_MONO_FONTS = ("ui-monospace", "Consolas", "monospace")
ProgressCallback = Callable[[float, str], None]
"""``callback(fraction done in [0, 1], what runs now)``."""


def app_extra_missing() -> str | None:
    """Why the app cannot be served (one line naming the install command), or None."""
    try:
        import gradio  # noqa: F401
    except ImportError:
        return f"the app extra (Gradio) is not installed: run {APP_INSTALL}"
    return None


def demo_samples(data_dir: Path = DEMO_DATA) -> list[list[str]]:
    """``[photo, keypoint file]`` of every bundled demo image that has its ``.npy`` keypoints."""
    rows = []
    for photo in sorted((data_dir / "images").glob("*.png")):
        keypoints = photo.with_name(f"{photo.stem}_keypoints.npy")
        if keypoints.is_file():
            rows.append([os.fspath(photo), os.fspath(keypoints)])
    return rows


@dataclass
class AppResult:
    """What the page shows after one run.

    Attributes:
        overlay: [H, W, 3] uint8 RGB, the photo (white where its alpha is 0) with the 31
            keypoints the model used (person's left green, right red, centre blue).
        normal_front, normal_back: [res, res, 3] uint8 RGB merged normals in the viewer
            orientation (:func:`utils.visualize.viewer_normals`), black outside the silhouette.
        depth_front: [res, res, 3] uint8 RGB colour map of the front depth, black background.
        meshes: format (:data:`MESH_DOWNLOADS`) -> mesh file.
        run_dir: the run's folder (the authors' output layout plus ``output_objs/``).
        vertices, faces: size of the mesh.
        summary: one line for the page.
    """

    overlay: np.ndarray
    normal_front: np.ndarray
    normal_back: np.ndarray
    depth_front: np.ndarray
    meshes: dict[str, Path]
    run_dir: Path
    vertices: int
    faces: int
    summary: str


def glb_bytes(mesh: Mesh) -> bytes:
    """Binary glTF of a mesh: positions, faces, vertex normals and 8-bit vertex colours. glTF's
    frame is ours (:mod:`utils.camera`: +Y up, the person facing +Z), so viewers show the person
    upright and facing them."""
    colors = None
    if mesh.colors is not None:
        colors = np.round(np.clip(mesh.colors, 0.0, 1.0) * 255).astype(np.uint8)
    out = trimesh.Trimesh(
        mesh.vertices, mesh.faces, vertex_normals=mesh.normals, vertex_colors=colors, process=False
    )
    return out.export(file_type="glb")


def keypoint_picture(image: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """The photo with its keypoints drawn (:func:`render.keypoints3d.keypoint_overlay`).

    Args:
        image: [H, W, 3|4] uint8 RGB(A); transparent pixels are shown white.
        keypoints: (31, 3) ``(u, v, confidence)`` in the photo's pixels.
    Returns:
        [H, W, 3] uint8 RGB.
    """
    rgb = image[:, :, :3].astype(np.float32)
    if image.shape[2] == 4:
        alpha = image[:, :, 3:].astype(np.float32) / 255.0
        rgb = rgb * alpha + 255.0 * (1.0 - alpha)
    bgr = np.ascontiguousarray(np.round(rgb).astype(np.uint8)[:, :, ::-1])
    return np.ascontiguousarray(keypoint_overlay(bgr, keypoints)[:, :, ::-1])


class AppRunner:
    """The model, the input reader and the output folder of one app; :meth:`run` per photo.

    Args:
        checkpoint: phase-2 weights (default: the bundled open weights, ``DEMO_CHECKPOINT``).
        out_dir: where each run's folder is made.
        device: ``"cpu"`` or ``"cuda"``.
        poisson: meshing settings (default: ``test_03_poisson.py``'s).
    Raises:
        CheckpointError: unusable weights; OSError: ``out_dir`` cannot be written (both before
            any photo is run, as the batch tools).
    """

    def __init__(
        self,
        checkpoint: str | os.PathLike = DEMO_CHECKPOINT,
        out_dir: str | os.PathLike = Path("outputs/app"),
        device: str = "cpu",
        poisson: PoissonOptions | None = None,
    ) -> None:
        self.predictor = Predictor(checkpoint, device=device)
        self.out_dir = check_writable_dir(out_dir)
        self.reader = InputReader(InputOptions(keypoints="auto", mask="auto"))
        self.poisson = poisson or PoissonOptions()
        self.options = OutputOptions(normal_parts=False)

    def close(self) -> None:
        """Release the keypoint detector (when it ran)."""
        self.reader.close()

    def _stage(
        self, run_dir: Path, photo: Path, keypoints: Path | None
    ) -> tuple[Path, dict[str, str]]:
        """Copy the uploads where :class:`InputReader` looks: ``input/<photo name>`` and
        ``input/<stem>_keypoints.npy`` (a ``.npy`` upload) or ``.json`` (anything else, read as
        OpenPose JSON). Returns the staged photo and staged path -> uploaded file name."""
        inputs = run_dir / "input"
        inputs.mkdir()
        staged = inputs / photo.name
        shutil.copyfile(photo, staged)
        names = {os.fspath(staged): photo.name}
        if keypoints is not None:
            suffix = ".npy" if keypoints.suffix.lower() == ".npy" else ".json"
            staged_kp = inputs / f"{image_stem(staged)}_keypoints{suffix}"
            shutil.copyfile(keypoints, staged_kp)
            names[os.fspath(staged_kp)] = keypoints.name
        return staged, names

    def run(
        self,
        photo: str | os.PathLike,
        keypoints: str | os.PathLike | None = None,
        progress: ProgressCallback | None = None,
    ) -> tuple[AppResult | None, str]:
        """Reconstruct one photo into a new folder under ``out_dir``.

        Any failure (a bad photo or keypoint file, no person, a silhouette too small, a cloud
        Poisson cannot mesh, or anything unexpected) is one line, the batch tools' line
        (:func:`utils.batch.failure_line`, logged with ``FAILED``) naming the uploaded file and
        the problem; the run's folder is then removed.

        Args:
            photo: the image file (an RGBA cut-out, or a plain photo: mask by the photo extra).
            keypoints: OpenPose JSON or ``(31, 3)`` ``.npy`` in the photo's pixels; None = the
                photo extra's detector.
            progress: called before each stage.
        Returns:
            ``(result, its summary line)``, or ``(None, the failure's line)``.
        """
        photo = Path(photo)
        report = progress or (lambda fraction, what: None)
        run_dir = Path(tempfile.mkdtemp(prefix=f"{image_stem(photo)}-", dir=self.out_dir))
        names: dict[str, str] = {}

        def work() -> AppResult:
            staged, staged_names = self._stage(
                run_dir, photo, None if keypoints is None else Path(keypoints)
            )
            names.update(staged_names)
            return self._run(run_dir, staged, report)

        failures: list[tuple[str, str]] = []
        try:
            result = run_item(photo.name, work, failures, logger=log)
        except BaseException:  # interrupted (KeyboardInterrupt): nothing stays either
            shutil.rmtree(run_dir, ignore_errors=True)
            raise
        if result is not None:
            return result, result.summary
        shutil.rmtree(run_dir, ignore_errors=True)  # nothing of a failed run stays
        line = failures[0][1]
        for staged, uploaded in names.items():
            line = line.replace(staged, uploaded)
        return None, line

    def _run(self, run_dir: Path, staged: Path, report: ProgressCallback) -> AppResult:
        """The work of :meth:`run` on the staged photo (raises on failure)."""
        stem = image_stem(staged)
        report(0.05, "reading the photo and its keypoints")
        item = self.reader.read(staged)
        report(0.25, "depth and normal maps")
        pred = self.predictor.predict(item.image, item.keypoints, item.mask, os.fspath(staged))
        files = detection_files(item, stem) | prediction_files(pred, stem, self.options)
        write_files(run_dir, files)  # as test_02_model.py: the authors' layout
        report(0.45, "screened Poisson mesh")
        start = time.perf_counter()
        cloud = read_point_cloud(run_dir / "output_plys" / f"{stem}.ply")
        try:
            mesh = reconstruct(cloud.points, cloud.colors, cloud.normals, self.poisson)
        except MeshingError as exc:
            raise MeshingError(f"{staged}: its point cloud cannot be meshed ({exc})") from exc
        poisson_s = time.perf_counter() - start
        report(0.85, "mesh files")
        meshes = {fmt: run_dir / "output_objs" / f"{stem}.{fmt}" for fmt in MESH_DOWNLOADS}
        write_mesh(meshes["obj"], mesh)
        write_mesh(meshes["ply"], mesh)
        atomic_write_bytes(meshes["glb"], glb_bytes(mesh))
        front, back = pred.silhouette_normals()
        res = pred.res
        keypoint_source = item.keypoint_source
        if keypoint_source != "detector":
            keypoint_source = "file"
        summary = (
            f"{staged.name}: {len(mesh.vertices):,} vertices, {len(mesh.faces):,} faces "
            f"(keypoints: {keypoint_source}, mask: {item.mask_source}; forward "
            f"{pred.seconds:.1f} s, Poisson {poisson_s:.1f} s); files in {run_dir}"
        )
        if item.detection is not None and item.detection.warnings:  # e.g. a crop at the knees
            summary += "; detector: " + "; ".join(item.detection.warnings)
        report(1.0, "done")
        return AppResult(
            overlay=keypoint_picture(item.image, item.keypoints),
            normal_front=normal_rgb8(torch.from_numpy(front), "front", res),
            normal_back=normal_rgb8(torch.from_numpy(back), "back", res),
            depth_front=depth_rgb8(torch.from_numpy(pred.depth_front)[None], res),
            meshes=meshes,
            run_dir=run_dir,
            vertices=len(mesh.vertices),
            faces=len(mesh.faces),
            summary=summary,
        )


def build_ui(runner: AppRunner, samples: list[list[str]] | None = None) -> object:
    """The page (a ``gradio.Blocks``): photo and optional keypoint upload, bundled samples, a
    button; a status line, the mesh in a 3D viewer (GLB), the downloads (OBJ, PLY, GLB), the
    keypoints on the photo, the front and back normals and the front depth.

    Element ids for tests and scripts: ``photo``, ``keypoints``, ``run``, ``status``,
    ``viewer``, ``downloads``, ``overlay``, ``normal_front``, ``normal_back``, ``depth``.
    """
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # read when gradio is imported
    import gradio as gr

    samples = demo_samples() if samples is None else samples

    def reconstruct_upload(
        photo: str | None,
        keypoints: str | None,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 - how Gradio passes its progress bar
    ) -> tuple:
        if photo is None:
            return ("Upload a photo first (or pick a sample below).", *[None] * 6)
        result, line = runner.run(
            photo, keypoints, lambda fraction, what: progress(fraction, desc=what)
        )
        if result is None:
            return (line, *[None] * 6)
        files = [os.fspath(result.meshes[fmt]) for fmt in MESH_DOWNLOADS]
        return (
            line,
            result.overlay,
            result.normal_front,
            result.normal_back,
            result.depth_front,
            os.fspath(result.meshes["glb"]),
            files,
        )

    with gr.Blocks(title="2K2K: a 3D person from one photo", analytics_enabled=False) as page:
        gr.Markdown(
            "## 2K2K: a 3D person from one photo\n"
            "Upload a photo of one person, whole and facing the camera: an RGBA cut-out, or a "
            "plain photo (its mask and keypoints then come from the photo extra, "
            "`bash scripts/setup.sh --photo`). Keypoints are optional: OpenPose JSON or a "
            "(31, 3) `.npy` in the photo's pixels. Runs on this machine; nothing is uploaded "
            "elsewhere."
        )
        with gr.Row():
            with gr.Column(scale=1):
                photo = gr.File(label="Photo (PNG or JPEG)", elem_id="photo")
                keypoints = gr.File(
                    label="Keypoints (optional: OpenPose JSON or .npy)", elem_id="keypoints"
                )
                run = gr.Button("Reconstruct", variant="primary", elem_id="run")
                if samples:
                    gr.Examples(samples, inputs=[photo, keypoints], label="Bundled samples")
            with gr.Column(scale=2):
                status = gr.Textbox(label="Status", elem_id="status", interactive=False)
                viewer = gr.Model3D(
                    label="Mesh (drag to turn)",
                    elem_id="viewer",
                    clear_color=(1.0, 1.0, 1.0, 1.0),
                    height=480,
                )
                downloads = gr.File(label="Downloads", file_count="multiple", elem_id="downloads")
        with gr.Row():
            overlay = gr.Image(label="Keypoints", elem_id="overlay", format="png")
            normal_front = gr.Image(label="Normals, front", elem_id="normal_front", format="png")
            normal_back = gr.Image(label="Normals, back", elem_id="normal_back", format="png")
            depth = gr.Image(label="Depth, front", elem_id="depth", format="png")
        run.click(
            reconstruct_upload,
            inputs=[photo, keypoints],
            outputs=[status, overlay, normal_front, normal_back, depth, viewer, downloads],
        )
    return page


def launch(runner: AppRunner, server_name: str = "127.0.0.1", port: int = 7860) -> None:
    """Serve the page until interrupted: on ``server_name:port`` only (no share link), no
    analytics, the browser's own fonts, no server-side rendering."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    import gradio as gr

    page = build_ui(runner)
    theme = gr.themes.Default(font=SYSTEM_FONTS, font_mono=SYSTEM_MONO_FONTS)
    page.queue(default_concurrency_limit=1).launch(  # one model: one photo at a time
        server_name=server_name,
        server_port=port,
        share=False,
        inbrowser=False,
        ssr_mode=False,
        pwa=False,
        mcp_server=False,
        allowed_paths=[os.fspath(runner.out_dir.resolve())],
        theme=theme,
    )
