"""The 2K2K Predictor: photo + keypoints -> post-processed depth, normals, point clouds.

:class:`Predictor` owns one phase-2 model (eval mode, no gradients, ``channels_last``) and does
what the authors' ``test_02_model.py`` does per image (facts §1.1, §7.1, §7.2):

1. square padding (border replication) and bicubic resize to ``res``; keypoints alike;
2. foreground mask (:mod:`inference.background`: alpha, mask file or rembg); background RGB = 0;
3. the fixed colour transform, brightness, contrast, saturation 0.85 each (torchvision
   ``ColorJitter`` semantics on float images, :mod:`datasets.augment`), applied after the
   background is blacked out, as the authors do, then ``[-1, 1]``. Their op order was random per
   image (facts §8 item 27); here it is fixed, which changes nothing: with factors below 1 each
   op is a convex blend that never clips, and these linear maps commute (their PIL uint8 version
   differed between orders by rounding only);
4. part matrices from the keypoints (missing keypoints by confidence, :mod:`utils.keypoints`);
5. the model, batch 1;
6. post-processing (:func:`postprocess_depth`): by default (``depth_mask="meet"``) the
   silhouette is the refined mask > 0.5 within the input's mask, and where the front and back
   sheets crossed inside it they meet at their mean depth; the authors (``"order"``) zero both
   depths wherever front > back (which also removes the background, front 6 and back 0, but
   leaves holes where thin parts crossed, 11 % of the body on the demo people); ``"predicted"``
   is ``"order"`` plus the refined mask (the authors ignore that output, facts §8 item 24).

The outputs of :func:`inference.batch.run_folder` (``test_02_model.py``) follow the authors'
layout; see :func:`output_names`.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from datasets.augment import JITTER_OPS, JitterParams, apply_jitter
from models import CheckpointError, Model2K2K, build_model
from models.checkpoint import extract_state_dict, load_state_dict_strict, read_checkpoint_file
from models.losses import get_normal
from models.parts import PART_NETS
from models.precision import autocast, check_cpu_precision, check_precision
from utils.camera import REFERENCE_RES
from utils.fileio import encode_png
from utils.keypoints import (
    KEYPOINT_NPY_KINDS,
    NUM_KEYPOINTS,
    KeypointError,
    pad_and_scale_keypoints,
    part_matrices,
)

from .background import RembgMasker, alpha_mask, check_silhouette
from .io import (
    InputError,
    check_image_size,
    check_keypoints_in_image,
    square_image,
    square_mask,
)
from .pointcloud import AUTHORS_PLY_SCALE, BACK_COLORS, colored_point_cloud, encode_ply

log = logging.getLogger(__name__)

COLOR_FACTOR = 0.85
"""The authors' fixed brightness, contrast and saturation factor at test time."""
DEPTH_MASKS = ("order", "predicted", "meet")
BODY_DEPTH_MIN, BODY_DEPTH_MAX = 0.2, 4.0
"""Depths (D units) a body pixel can have: a normalised scan spans about 0.47-3.53 (facts §6.6);
0.2 is ``get_normal``'s background cut-off, 4 where the PNG encoding saturates."""
SIDES = ("front", "back")
PART_SAVED = tuple(name for name, _, _ in PART_NETS)
"""Part nets whose first crop is saved in ``normal_parts/`` (as the authors)."""
_WIDTH_PROBE = ("img2normal_down.Conv1.conv.0.weight", 64)
"""A weight whose output channels are 64 at width 1.0: a state dict's width without ``args``."""
MAX_CHECKPOINT_RES = 8192
"""Largest working resolution a checkpoint's ``args`` may name (4x the authors' 2048); it must
also be a positive multiple of 64 (the model's downsampling)."""
MAX_CHECKPOINT_WIDTH = 4.0
"""Largest channel multiplier a checkpoint may name or imply (the authors' model is 1.0)."""


@dataclass
class Prediction:
    """The post-processed result of one image, in the square ``res x res`` frame.

    Attributes:
        image: [res, res, 3] uint8 RGB, the padded and resized input (not masked).
        foreground: [res, res] bool, the input mask (alpha, mask file or rembg).
        keypoints: (31, 3) keypoints ``(u, v, confidence)`` in the ``res`` frame.
        depth_front, depth_back: [res, res] float32 D units; 0 where removed (front > back).
        normal_front, normal_back: [3, res, res] float32 merged normals, encoded ``(n + 1) / 2``.
        mask: [res, res] float32 refined mask output (sigmoid); the authors do not use it.
        down_depth_front, down_depth_back: [r, r] coarse depth (r = res / 8), D units.
        down_mask: [r, r] coarse mask (sigmoid).
        down_normal_front, down_normal_back: [3, r, r] coarse normals, encoded.
        part_normals: part net name -> (front, back), each [3, h, w], its first crop.
        seconds: wall time of the forward pass.
    """

    image: np.ndarray
    foreground: np.ndarray
    keypoints: np.ndarray
    depth_front: np.ndarray
    depth_back: np.ndarray
    normal_front: np.ndarray
    normal_back: np.ndarray
    mask: np.ndarray
    down_depth_front: np.ndarray
    down_depth_back: np.ndarray
    down_mask: np.ndarray
    down_normal_front: np.ndarray
    down_normal_back: np.ndarray
    part_normals: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def res(self) -> int:
        return self.depth_front.shape[0]

    def silhouette_normals(self) -> tuple[np.ndarray, np.ndarray]:
        """The merged normals with 0 outside the input silhouette (what ``normal/`` holds by
        default; the part crops' margins write outside it).

        Returns:
            front, back: [3, res, res] float32 encoded normals.
        """
        inside = self.foreground[None]
        return self.normal_front * inside, self.normal_back * inside

    def consistency_normals(self) -> tuple[np.ndarray, np.ndarray]:
        """Encoded normals of the post-processed depth (``get_normal``, the authors' ``cons/``).

        Returns:
            front, back: [3, res, res] float32 in [0, 1] (0 = background).
        """
        depth = torch.from_numpy(np.stack((self.depth_front, self.depth_back))[:, None])
        normals = get_normal(depth).numpy()  # [2, 3, res, res]
        return normals[0], normals[1]

    def point_cloud(
        self, side_fill: bool = False, back_color: str = "front", authors_scale: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Coloured points of the front and back depth in the world frame of ``utils.camera``
        (:func:`inference.pointcloud.colored_point_cloud`).

        Returns:
            points [N, 3] float32, colours [N, 3] uint8 RGB.
        """
        scale = AUTHORS_PLY_SCALE if authors_scale else 1.0
        return colored_point_cloud(
            self.depth_front, self.depth_back, self.image, side_fill, back_color, scale
        )


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """Weights and training arguments (``{}`` for the authors' files) of a checkpoint.

    Raises:
        CheckpointError: missing file, not a PyTorch checkpoint, not a state dict.
    """
    source = os.fspath(path)
    checkpoint = read_checkpoint_file(source)
    state = extract_state_dict(checkpoint, source)
    args = checkpoint.get("args") if isinstance(checkpoint, dict) else None
    if not isinstance(args, str):
        return state, {}
    try:
        parsed = json.loads(args)
    except (ValueError, RecursionError) as exc:
        raise CheckpointError(f"{source}: its 'args' entry is not JSON ({exc})") from exc
    return state, parsed if isinstance(parsed, dict) else {}


def _checkpoint_res(value: object, source: str) -> int:
    """A working resolution named by a checkpoint, checked (see :data:`MAX_CHECKPOINT_RES`)."""
    if isinstance(value, bool) or not isinstance(value, int) or value % 64:
        raise CheckpointError(f"{source}: 'res' {value!r} in its args is no multiple of 64")
    if not 0 < value <= MAX_CHECKPOINT_RES:
        raise CheckpointError(
            f"{source}: 'res' {value} in its args is not in 64..{MAX_CHECKPOINT_RES}"
        )
    return value


def _checkpoint_width(value: object, source: str) -> float:
    """A channel multiplier named or implied by a checkpoint, checked (see
    :data:`MAX_CHECKPOINT_WIDTH`)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CheckpointError(f"{source}: width {value!r} is not a number")
    if not 0 < value <= MAX_CHECKPOINT_WIDTH:  # also refuses NaN
        raise CheckpointError(f"{source}: width {value} is not in (0, {MAX_CHECKPOINT_WIDTH:g}]")
    return float(value)


def load_phase2_model(
    checkpoint: str | os.PathLike, res: int | None = None, width: float | None = None
) -> Model2K2K:
    """Build the phase-2 model a checkpoint fits and load it strictly.

    ``res`` and ``width`` default to the values stored in our training checkpoints (``args``);
    without them (the authors' ``.pth.tar``) the width is read off the weights' shapes and ``res``
    is 2048.

    Raises:
        CheckpointError: unreadable, a phase-1 checkpoint, ``res`` or ``width`` in its ``args``
            that no model can have, or weights that do not fit.
    """
    source = os.fspath(checkpoint)
    state, args = read_checkpoint(source)
    if any(k.startswith("img2normal_") for k in state) and not any(
        k.startswith("refine.") for k in state
    ):
        raise CheckpointError(
            f"{source}: a phase-1 checkpoint (no refinement net 'refine.*'); "
            "inference needs a phase-2 checkpoint"
        )
    if width is None:
        probe, channels = _WIDTH_PROBE
        if args.get("width") is not None:
            width = _checkpoint_width(args["width"], source)
        elif probe in state and state[probe].ndim > 0:
            width = _checkpoint_width(state[probe].shape[0] / channels, source)
        else:
            width = 1.0
    if res is None:
        res = _checkpoint_res(args["res"], source) if args.get("res") is not None else None
    model = build_model(phase=2, res=int(res or REFERENCE_RES), width=float(width))
    load_state_dict_strict(model, state, source)
    return model


def postprocess_depth(
    front: np.ndarray,
    back: np.ndarray,
    mask: np.ndarray,
    depth_mask: str = "order",
    foreground: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Artefact and background removal of the predicted depth.

    * ``"order"`` (the authors', facts §7.2): both depths become 0 where front > back.
    * ``"predicted"``: also where the refined mask is <= 0.5.
    * ``"meet"``: the silhouette is the refined mask > 0.5 (and ``foreground``, the input's
      mask, when given); outside it both depths are 0. Inside it, where the front lies behind
      the back (a thin part whose two sheets crossed), the two sheets meet: one point at their
      mean depth (front = mean, back = 0) instead of a hole. Pixels whose front or back depth
      is not a body depth (front >= ``BODY_DEPTH_MAX``, back <= ``BODY_DEPTH_MIN``: the
      network's background values 6 and 0) are dropped, as the authors' rule drops them.

    Args:
        front, back: [H, W] predicted depth, D units.
        mask: [H, W] refined mask output (sigmoid).
        foreground: [H, W] bool input mask (``"meet"`` only; None = the predicted mask alone).
    Returns:
        new front, back arrays [H, W].
    """
    if depth_mask not in DEPTH_MASKS:
        raise ValueError(f"depth_mask must be one of {DEPTH_MASKS}, got {depth_mask!r}")
    crossed = front > back
    if depth_mask == "meet":
        keep = (mask > 0.5) & (front < BODY_DEPTH_MAX) & (back > BODY_DEPTH_MIN)
        if foreground is not None:
            keep &= foreground.astype(bool)
        mean = (front + back) / 2
        front = np.where(keep, np.where(crossed, mean, front), 0)
        back = np.where(keep & ~crossed, back, 0)
        return front.astype(np.float32), back.astype(np.float32)
    remove = crossed
    if depth_mask == "predicted":
        remove |= mask <= 0.5
    return np.where(remove, 0, front), np.where(remove, 0, back)


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy()


@dataclass
class PreparedInput:
    """One image brought into the model's square frame.

    Attributes:
        rgb: [res, res, 3] uint8, padded (border replication) and resized (bicubic).
        mask: [res, res] bool foreground from the alpha or the given mask; None when neither
            exists (rembg's turn).
        keypoints: (31, 3) ``(u, v, confidence)`` in the ``res`` frame.
        theta: (12, 2, 3) float32 part sampling matrices.
    """

    rgb: np.ndarray
    mask: np.ndarray | None
    keypoints: np.ndarray
    theta: np.ndarray


def prepare_input(
    image: np.ndarray,
    keypoints: np.ndarray,
    res: int,
    mask: np.ndarray | None = None,
    source: str = "<image>",
) -> PreparedInput:
    """Check one input and bring it into the square ``res`` frame (facts §1.1 step 2, §3).

    Args:
        image: [H, W, 3] RGB, [H, W, 4] RGBA or [H, W] grey, uint8, any size.
        keypoints: (31, 3) ``(u, v, confidence)`` in the image's pixel frame.
        mask: [H, W] bool foreground, used when the image has no (non-opaque) alpha.
        res: side of the square frame.
        source: the image's name for error messages.
    Raises:
        InputError, KeypointError (incl. PartPlacementError).
    """
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise InputError(f"{source}: uint8 [H, W(, C)] image expected, got {image.dtype}")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.shape[2] not in (3, 4):
        raise InputError(f"{source}: {image.shape[2]} channels (3 or 4 expected)")
    h, w = image.shape[:2]
    check_image_size(h, w, source)
    keypoints = np.asarray(keypoints)
    if keypoints.dtype.kind not in KEYPOINT_NPY_KINDS:  # the imaginary part would be dropped
        raise KeypointError(f"{source}: keypoints must be real numbers, got {keypoints.dtype}")
    keypoints = keypoints.astype(np.float64)
    if keypoints.shape != (NUM_KEYPOINTS, 3):
        raise KeypointError(f"{source}: keypoints must be (31, 3), got {keypoints.shape}")
    if not np.all(np.isfinite(keypoints)):
        raise KeypointError(f"{source}: non-finite keypoint values")
    check_keypoints_in_image(keypoints, h, w, source)
    if mask is not None and mask.shape != (h, w):
        raise InputError(f"{source}: mask is {mask.shape[::-1]} but the image is {(w, h)}")
    alpha = alpha_mask(image, source) if image.shape[2] == 4 else None
    if alpha is not None:
        mask = alpha
    kp = pad_and_scale_keypoints(keypoints, h, w, res=res)
    _, theta = part_matrices(kp, res=res, source=source)
    rgb = square_image(np.ascontiguousarray(image[:, :, :3]), res)
    return PreparedInput(rgb, None if mask is None else square_mask(mask, res), kp, theta)


class Predictor:
    """2K2K inference on single images (see the module docstring for the steps).

    Args:
        checkpoint: a phase-2 checkpoint file (ours or the authors'), or a built
            :class:`Model2K2K` (phase 2).
        res: working resolution (multiple of 64); default from the checkpoint, else 2048.
        width: channel multiplier; default from the checkpoint.
        device: ``"cpu"`` or ``"cuda"`` (``"cuda:N"``).
        rembg_model: local U^2-Net ONNX file for images without alpha or mask.
        allow_download: without a local model, let rembg download its own (opt-in; off, nothing
            is ever downloaded).
        color_factor: brightness, contrast and saturation factor (1.0 = no colour transform).
        depth_mask: ``"meet"`` (default), ``"order"`` (authors: keep front <= back) or
            ``"predicted"`` (also require the refined mask > 0.5); see :func:`postprocess_depth`.
        precision: ``"fp32"`` (default, the authors' numbers), ``"bf16"`` or ``"fp16"``: the
            forward under ``torch.autocast`` with that type (CPU or CUDA); outputs are float32.
            On a CPU that runs it slower than fp32, a warning says so
            (:func:`models.precision.check_cpu_precision`).
    """

    def __init__(
        self,
        checkpoint: str | os.PathLike | Model2K2K,
        res: int | None = None,
        width: float | None = None,
        device: str = "cpu",
        rembg_model: str | os.PathLike | None = None,
        allow_download: bool = False,
        color_factor: float = COLOR_FACTOR,
        depth_mask: str = "meet",
        precision: str = "fp32",
    ) -> None:
        check_precision(precision)
        if depth_mask not in DEPTH_MASKS:
            raise ValueError(f"depth_mask must be one of {DEPTH_MASKS}, got {depth_mask!r}")
        if torch.device(device).type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available")
        if isinstance(checkpoint, Model2K2K):
            model = checkpoint
        else:
            model = load_phase2_model(checkpoint, res, width)
        if model.phase != 2:
            raise ValueError("the Predictor needs a phase-2 model")
        if res is not None and res != model.res:
            raise ValueError(f"res {res} requested but the model was built for {model.res}")
        self.model = model.eval().to(device)  # eval mode runs channels_last (Model2K2K)
        self.res = model.res
        self.device = torch.device(device)
        self.masker = RembgMasker(rembg_model, allow_download)
        self.jitter = JitterParams(JITTER_OPS, color_factor, color_factor, color_factor)
        self.depth_mask = depth_mask
        self.precision = precision
        check_cpu_precision(precision, self.device, log)  # a warning if slower than fp32 here

    def model_input(self, rgb: np.ndarray, foreground: np.ndarray) -> torch.Tensor:
        """[1, 3, res, res] float32 in [-1, 1]: background black, colour transform, normalised."""
        x = rgb.astype(np.float32) / np.float32(255) * foreground[:, :, None]
        x = apply_jitter(x, self.jitter)
        x = (x - np.float32(0.5)) / np.float32(0.5)
        return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]

    @torch.no_grad()
    def predict(
        self,
        image: np.ndarray,
        keypoints: np.ndarray,
        mask: np.ndarray | None = None,
        source: str = "<image>",
    ) -> Prediction:
        """Run 2K2K on one image.

        Args:
            image: [H, W, 3] RGB, [H, W, 4] RGBA or [H, W] grey, uint8, any size.
            keypoints: (31, 3) ``(u, v, confidence)`` in the image's pixel frame.
            mask: [H, W] bool foreground, used when the image has no (non-opaque) alpha;
                without either, rembg computes one.
            source: the image's name for error messages.
        Raises:
            InputError, KeypointError (incl. PartPlacementError), BackgroundRemovalError,
            SilhouetteError (:func:`inference.background.check_silhouette`).
        """
        prep = prepare_input(image, keypoints, self.res, mask, source)
        fg = prep.mask if prep.mask is not None else self.masker(prep.rgb, source)
        rgb, kp = prep.rgb, prep.keypoints
        check_silhouette(fg, kp, source)
        theta_t = torch.from_numpy(prep.theta)[None].to(self.device)
        x = self.model_input(rgb, fg).to(self.device)

        start = time.perf_counter()
        with autocast(self.device, self.precision):
            out = self.model(x, theta_t)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # CUDA runs asynchronously: time the work
        seconds = time.perf_counter() - start
        front = _to_numpy(out["pred_depth_front"][0, 0])
        back = _to_numpy(out["pred_depth_back"][0, 0])
        pred_mask = _to_numpy(out["pred_depth_mask"][0, 0])
        front, back = postprocess_depth(front, back, pred_mask, self.depth_mask, fg)
        parts = {
            name: (
                _to_numpy(out[f"pred_{name}_normal_front"][0]),
                _to_numpy(out[f"pred_{name}_normal_back"][0]),
            )
            for name in PART_SAVED
        }
        return Prediction(
            image=rgb,
            foreground=fg,
            keypoints=kp,
            depth_front=front,
            depth_back=back,
            normal_front=_to_numpy(out["pred_normal_front"][0]),
            normal_back=_to_numpy(out["pred_normal_back"][0]),
            mask=pred_mask,
            down_depth_front=_to_numpy(out["pred_down_depth_front"][0, 0]),
            down_depth_back=_to_numpy(out["pred_down_depth_back"][0, 0]),
            down_mask=_to_numpy(out["pred_down_depth_mask"][0, 0]),
            down_normal_front=_to_numpy(out["pred_down_normal_front"][0]),
            down_normal_back=_to_numpy(out["pred_down_normal_back"][0]),
            part_normals=parts,
            seconds=seconds,
        )


# ------------------------------------------------------------------------------------------------
# Output files (the authors' layout, facts §7.2, §7.3)
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutputOptions:
    """What :func:`prediction_files` writes.

    Attributes:
        normal_parts: write ``normal_parts/`` (part crops, coarse maps, masks), as the authors.
        side_fill: write ``output_plys_c/`` (side-filled point clouds), as the authors.
        back_color: colour of back points, one of ``inference.pointcloud.BACK_COLORS``.
        authors_scale: divide point coordinates by 1.0367394227574303 as the authors.
        raw_normals: write ``normal/`` over the whole frame, as the authors; by default it is 0
            outside the input silhouette, where the networks see only the black background and
            their merged normals are noise (speckles along the part crops' margins). The model's
            outputs, ``cons/`` and the point clouds are the same either way.
    """

    normal_parts: bool = True
    side_fill: bool = True
    back_color: str = "front"
    authors_scale: bool = False
    raw_normals: bool = False

    def __post_init__(self) -> None:
        if self.back_color not in BACK_COLORS:
            raise ValueError(f"back_color must be one of {BACK_COLORS}, got {self.back_color!r}")


def output_names(stem: str, options: OutputOptions) -> list[str]:
    """Relative paths of one image's outputs, in writing order (the point clouds last)."""
    names = [f"{d}/{stem}_{side}.png" for d in ("depth", "normal", "cons") for side in SIDES]
    if options.normal_parts:
        for kind in (*PART_SAVED, "down_normal", "down_depth"):
            names += [f"normal_parts/{stem}_{kind}_{side}.png" for side in SIDES]
        names += [f"normal_parts/{stem}_down_mask.png", f"normal_parts/{stem}_mask.png"]
    names.append(f"images/{stem}.png")
    names.append(f"output_plys/{stem}.ply")
    if options.side_fill:
        names.append(f"output_plys_c/{stem}.ply")
    return names


def depth_png16(depth: np.ndarray) -> np.ndarray:
    """[H, W] D units -> uint16 ``trunc(D * 16384)``, clipped at 65535 (the authors' cast wraps
    for D >= 4, facts §8 item 25)."""
    return np.clip(np.trunc(depth.astype(np.float64) * 16384.0), 0, 65535).astype(np.uint16)


def encoded_bgr8(normal: np.ndarray) -> np.ndarray:
    """[3, H, W] values in [0, 1] -> [H, W, 3] uint8 BGR, so the PNG's R, G, B = channels 0, 1, 2
    (``x * 255`` rounded and saturated, as OpenCV converts float images)."""
    rgb = np.clip(np.rint(normal.transpose(1, 2, 0) * 255.0), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(rgb[:, :, ::-1])


def _mask8(mask: np.ndarray) -> np.ndarray:
    return mask.astype(np.uint8) * 255


def prediction_files(pred: Prediction, stem: str, options: OutputOptions) -> dict[str, bytes]:
    """Encode every output of one image (nothing is written): relative path -> bytes, with
    exactly the keys of :func:`output_names`."""
    images: dict[str, np.ndarray] = {}
    cons = pred.consistency_normals()
    raw = (pred.normal_front, pred.normal_back)
    normals = raw if options.raw_normals else pred.silhouette_normals()
    for i, side in enumerate(SIDES):
        images[f"depth/{stem}_{side}.png"] = depth_png16((pred.depth_front, pred.depth_back)[i])
        images[f"normal/{stem}_{side}.png"] = encoded_bgr8(normals[i])
        images[f"cons/{stem}_{side}.png"] = encoded_bgr8(cons[i])
    if options.normal_parts:
        parts = {
            **pred.part_normals,
            "down_normal": (pred.down_normal_front, pred.down_normal_back),
        }
        for kind, pair in parts.items():
            for side, normal in zip(SIDES, pair, strict=True):
                images[f"normal_parts/{stem}_{kind}_{side}.png"] = encoded_bgr8(normal)
        for side, depth in zip(SIDES, (pred.down_depth_front, pred.down_depth_back), strict=True):
            images[f"normal_parts/{stem}_down_depth_{side}.png"] = depth_png16(depth)
        images[f"normal_parts/{stem}_down_mask.png"] = _mask8(pred.down_depth_back > 0)
        images[f"normal_parts/{stem}_mask.png"] = _mask8(pred.depth_back > 0)
    fg = pred.foreground[:, :, None]
    rgba = np.dstack((pred.image * fg, _mask8(pred.foreground)))  # the rembg-style cut-out
    images[f"images/{stem}.png"] = rgba[:, :, [2, 1, 0, 3]]
    files = {name: encode_png(img, name) for name, img in images.items()}
    points, colors = pred.point_cloud(options.side_fill, options.back_color, options.authors_scale)
    n = int((pred.depth_front > 0).sum() + (pred.depth_back > 0).sum())  # front + back first
    files[f"output_plys/{stem}.ply"] = encode_ply(points[:n], colors[:n])
    if options.side_fill:
        files[f"output_plys_c/{stem}.ply"] = encode_ply(points, colors)
    names = output_names(stem, options)
    assert sorted(files) == sorted(names), "prediction_files and output_names disagree"
    return {name: files[name] for name in names}
