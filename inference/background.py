"""Foreground masks: the image's alpha, a mask file, or rembg's U^2-Net with a local model.

The order (first that applies): the alpha channel of an RGBA input (unless fully opaque, which
carries no mask), a mask file ``<mask_dir>/<stem>_mask.png`` or ``<mask_dir>/<stem>.png``, then
rembg on the padded, resized image as the authors (facts §1.1 step 3: model "u2net",
``post_process_mask=True``, foreground = alpha > 0).

rembg downloads nothing by default: the model file is looked up first (``--rembg_model``, else
``$U2NET_HOME/u2net.onnx``, else rembg's default ``~/.u2net/u2net.onnx``) and, if absent, a clear
error says how to provide it; the session is built from that file through a subclass whose
``download_models`` returns the local path, so rembg's downloader is never reached. Only with
the explicit opt-in ``allow_download`` (``--allow_download``) and no local file does rembg fetch
its model the normal way (``rembg.new_session("u2net")``, into ``$U2NET_HOME`` or ``~/.u2net``).
rembg is imported only when a mask has to be computed (its import is slow), and one session
serves the whole batch. Deviations from the authors (facts §8 item 23): one session instead of
one per image; the image is passed as RGB (they passed BGR).

Whatever made it, the final silhouette of an item must be able to hold a person, and the person's
keypoints must lie on it (:func:`check_silhouette`, at the model's input resolution): a
one-pixel alpha, a speck of a mask or keypoints of another picture are refused with one line
instead of giving an output as if they were a person.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import cv2
import numpy as np

from .io import InputError

U2NET_FILE = "u2net.onnx"
U2NET_URL = "https://github.com/danielgatis/rembg/releases/download/v0.0.0/u2net.onnx"


class BackgroundRemovalError(InputError):
    """No foreground mask could be made (no local rembg model, rembg missing, empty result)."""


class SilhouetteError(InputError):
    """The final silhouette cannot be a person's, or the keypoints do not lie on it."""


MIN_SILHOUETTE_AREA = 0.004
"""Smallest share of the model's square input the silhouette may cover. The people of the real
photos (SiTH examples) cover 11-16 %, the demo samples and the test fixture 7.7-9.4 %. A person's
area is about 0.145 x extent² facing the camera (the fixture) and less in profile (about 0.085), so
at the smallest accepted extent (:data:`MIN_SILHOUETTE_EXTENT`, 0.25) a person covers 0.5-0.9 %:
0.4 % lets the extent decide for people and still refuses specks and single pixels."""
MIN_SILHOUETTE_EXTENT = 0.25
"""Smallest long side of the silhouette's bounding box as a share of the square input's side
(real photos 0.81-0.85, demo and fixture 0.73-0.77)."""
MIN_SILHOUETTE_WIDTH = 0.02
"""Smallest width of the silhouette's thickest part (twice the largest inscribed radius) as a
share of the input's side: 41 pixels at 2048, 5 at 256 (real photos 0.19-0.28, demo and fixture
0.13-0.14, the torso). Lines and scattered specks stay below it."""
KEYPOINT_SILHOUETTE_MARGIN = 0.02
"""A keypoint counts as on the silhouette within this share of the input's side from it (41
pixels at 2048): OpenPose puts ears, heels and fingertips on or just beyond the outline (up to 19 %
of the real photos' keypoints lie outside the undilated silhouette, none beyond this margin)."""
MIN_KEYPOINTS_ON_SILHOUETTE = 0.5
"""Smallest share of the present keypoints (confidence > 0) on the silhouette; every real photo,
demo sample and fixture has all of them on it. Fewer means keypoints of another image, or a mask
of something else."""


def check_silhouette(mask: np.ndarray, keypoints: np.ndarray, source: str = "<image>") -> None:
    """Refuse a silhouette that cannot hold a person, or keypoints that mostly miss it.

    Args:
        mask: [res, res] bool foreground in the model's square input frame.
        keypoints: (31, 3) ``(u, v, confidence)`` in the same frame; confidence > 0 = present.
        source: the image's name for error messages.
    Raises:
        SilhouetteError: the silhouette covers less than :data:`MIN_SILHOUETTE_AREA` of the
            frame, its bounding box is shorter than :data:`MIN_SILHOUETTE_EXTENT`, its thickest
            part is thinner than :data:`MIN_SILHOUETTE_WIDTH`, or fewer than
            :data:`MIN_KEYPOINTS_ON_SILHOUETTE` of the present keypoints lie within
            :data:`KEYPOINT_SILHOUETTE_MARGIN` of it.
    """
    res = mask.shape[0]
    fg = np.ascontiguousarray(mask, dtype=np.uint8)
    area = float(fg.mean())
    if area < MIN_SILHOUETTE_AREA:
        raise SilhouetteError(
            f"{source}: the silhouette (alpha, mask or background removal) covers {area:.2%} of "
            f"the image, too little for a person (at least {MIN_SILHOUETTE_AREA:.1%})"
        )
    rows, cols = np.flatnonzero(fg.any(axis=1)), np.flatnonzero(fg.any(axis=0))
    extent = max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1) / res
    if extent < MIN_SILHOUETTE_EXTENT:
        raise SilhouetteError(
            f"{source}: the silhouette spans {extent:.0%} of the image, too short for a person "
            f"(at least {MIN_SILHOUETTE_EXTENT:.0%})"
        )
    width = 2 * float(cv2.distanceTransform(fg, cv2.DIST_L2, cv2.DIST_MASK_PRECISE).max()) / res
    if width < MIN_SILHOUETTE_WIDTH:
        raise SilhouetteError(
            f"{source}: the silhouette is at most {width:.1%} of the image wide, too thin for a "
            f"person (at least {MIN_SILHOUETTE_WIDTH:.0%})"
        )
    present = keypoints[:, 2] > 0
    if not present.any():
        return
    to_fg = cv2.distanceTransform(1 - fg, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)  # 0 on the fg
    u = np.clip(np.floor(keypoints[present, 0]), 0, res - 1).astype(np.intp)
    v = np.clip(np.floor(keypoints[present, 1]), 0, res - 1).astype(np.intp)
    on = float((to_fg[v, u] <= KEYPOINT_SILHOUETTE_MARGIN * res).mean())
    if on < MIN_KEYPOINTS_ON_SILHOUETTE:
        raise SilhouetteError(
            f"{source}: only {on:.0%} of the keypoints lie on the silhouette (at least "
            f"{MIN_KEYPOINTS_ON_SILHOUETTE:.0%} expected): keypoints or mask of another picture?"
        )


def alpha_mask(rgba: np.ndarray, source: str = "<image>") -> np.ndarray | None:
    """Foreground of an RGBA image: alpha > 0 (the authors' rule for rembg's output).

    Args:
        rgba: [H, W, 4] uint8.
        source: file name for error messages.
    Returns:
        [H, W] bool, or None when the alpha is fully opaque (no mask information).
    Raises:
        InputError: the alpha is 0 everywhere ("empty alpha").
    """
    alpha = rgba[:, :, 3]
    if np.all(alpha == 255):
        return None
    mask = alpha > 0
    if not mask.any():
        raise InputError(f"{source}: empty alpha (every pixel is transparent)")
    return mask


def find_mask_file(
    mask_dir: str | os.PathLike, stem: str, image: str | os.PathLike | None = None
) -> Path | None:
    """``<mask_dir>/<stem>_mask.png``, else ``<mask_dir>/<stem>.png`` unless that is the input
    ``image`` itself (masks may sit beside the images), else None."""
    for name in (f"{stem}_mask.png", f"{stem}.png"):
        path = Path(mask_dir) / name
        if path.is_file() and not (image is not None and path.resolve() == Path(image).resolve()):
            return path
    return None


def read_mask(path: str | os.PathLike, height: int, width: int) -> np.ndarray:
    """Read a mask file of the input image's size: foreground = value > 0 (the alpha channel of
    an RGBA file, any channel of a colour file; 8 or 16 bit).

    Returns:
        [height, width] bool.
    Raises:
        InputError: unreadable, wrong size, or empty.
    """
    source = os.fspath(path)
    try:
        data = np.frombuffer(Path(source).read_bytes(), dtype=np.uint8)
    except OSError as exc:
        raise InputError(f"{source}: cannot read mask ({exc.strerror or exc})") from exc
    try:
        mask = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    except cv2.error as exc:  # e.g. a header declaring more pixels than OpenCV accepts
        message = str(exc).strip().splitlines()[-1]
        raise InputError(f"{source}: cannot be decoded as a mask image ({message})") from exc
    if mask is None:
        raise InputError(f"{source}: cannot be decoded as a mask image (corrupt or empty file)")
    if mask.ndim == 3:
        mask = mask[:, :, 3] if mask.shape[2] == 4 else mask.max(axis=2)
    if mask.shape != (height, width):
        raise InputError(
            f"{source}: mask is {mask.shape[1]}x{mask.shape[0]} but the image is {width}x{height}"
        )
    fg = mask > 0
    if not fg.any():
        raise InputError(f"{source}: empty mask (no foreground pixel)")
    return fg


def find_u2net_model(
    model_path: str | os.PathLike | None = None, required: bool = True
) -> Path | None:
    """The local U^2-Net ONNX file: ``model_path``, else ``$U2NET_HOME/u2net.onnx``, else
    ``~/.u2net/u2net.onnx``.

    Returns:
        the file, or None when it is absent and not ``required`` (``model_path`` must exist).
    Raises:
        BackgroundRemovalError: the file is absent (the message says how to provide one).
    """
    if model_path is not None:
        path = Path(model_path).expanduser()
        if not path.is_file():
            raise BackgroundRemovalError(f"rembg model not found: {path}")
        return path
    home = os.environ.get("U2NET_HOME")
    folder = Path(home).expanduser() if home else Path("~/.u2net").expanduser()
    path = folder / U2NET_FILE
    if path.is_file():
        return path
    if not required:
        return None
    raise BackgroundRemovalError(
        f"no alpha channel or mask, and no local rembg model ({path} absent): nothing is "
        f"downloaded unless you pass --allow_download; put {U2NET_FILE} ({U2NET_URL}) in a "
        "folder and pass --rembg_model FILE or set U2NET_HOME to that folder, or give the image "
        "an alpha channel or a mask (--mask_dir), or install the photo extra "
        "(bash scripts/setup.sh --photo) for its bundled segmenter"
    )


def _require_rembg() -> None:
    if importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("rembg") is None:
        raise BackgroundRemovalError(
            "background removal needs rembg with onnxruntime: bash scripts/setup.sh --photo "
            "(or pip install 'rembg[cpu]'), or give the images an alpha channel or masks "
            "with --mask_dir"
        )


def _create_session(model: Path | None) -> object:
    """A rembg "u2net" session reading ``model``; ``None``: rembg's own session, which
    downloads the model when it is not in rembg's folder (the ``allow_download`` opt-in)."""
    _require_rembg()
    if model is None:
        from rembg import new_session

        try:
            return new_session("u2net")
        except Exception as exc:  # requests/pooch errors share no base class with ours
            raise BackgroundRemovalError(f"rembg could not download its model ({exc})") from exc
    import onnxruntime as ort
    from rembg.sessions.u2net import U2netSession

    class LocalU2netSession(U2netSession):
        @classmethod
        def download_models(cls, *args: object, **kwargs: object) -> str:
            return str(model)

    try:
        return LocalU2netSession("u2net", ort.SessionOptions())
    except Exception as exc:  # onnxruntime's errors (InvalidProtobuf, Fail...) share no base
        raise BackgroundRemovalError(f"{model}: cannot be loaded as an ONNX model ({exc})") from exc


class RembgMasker:
    """Foreground masks from rembg, one session for all images, created at the first call.

    Args:
        model_path: local U^2-Net ONNX file (see :func:`find_u2net_model`).
        allow_download: without a local file, let rembg download its model (opt-in).
    """

    def __init__(
        self, model_path: str | os.PathLike | None = None, allow_download: bool = False
    ) -> None:
        self.model_path = model_path
        self.allow_download = allow_download
        self._session: object | None = None

    def __call__(self, rgb: np.ndarray, source: str = "<image>") -> np.ndarray:
        """Foreground of an [H, W, 3] uint8 RGB image: rembg's mask (post-processed) > 0.

        Returns:
            [H, W] bool.
        Raises:
            BackgroundRemovalError: no model / rembg, or no foreground found.
        """
        if self._session is None:
            try:
                model = find_u2net_model(self.model_path, required=not self.allow_download)
                self._session = _create_session(model)
            except BackgroundRemovalError as exc:
                raise BackgroundRemovalError(f"{source}: {exc}") from exc
        from rembg import remove

        mask = np.asarray(
            remove(rgb, session=self._session, only_mask=True, post_process_mask=True)
        )
        if mask.shape != rgb.shape[:2]:
            raise BackgroundRemovalError(
                f"{source}: rembg returned a {mask.shape} mask for a {rgb.shape[:2]} image"
            )
        fg = mask > 0
        if not fg.any():
            raise BackgroundRemovalError(f"{source}: background removal found no foreground")
        return fg
