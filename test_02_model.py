"""2K2K inference on a folder of photos: depth, normals and coloured point clouds.

Every ``.png .jpg .jpeg`` (any case) in ``--data_path`` needs keypoints beside it (or in
``--keypoint_dir``): ``<stem>_keypoints.json`` (OpenPose BODY_25 + hands) or
``<stem>_keypoints.npy`` ((31, 3) rows ``u, v, confidence`` in the image's pixels); with
``--keypoints auto`` the built-in detector (photo extra: ``bash scripts/setup.sh --photo``) finds
them when there is no file, with ``--keypoints detect`` always. The foreground comes from the
image's alpha channel, else ``--mask_dir`` (``<stem>_mask.png`` or ``<stem>.png``), else rembg
with a local U^2-Net file (``--rembg_model`` or ``$U2NET_HOME/u2net.onnx``; nothing is downloaded
unless ``--allow_download``), or with ``--mask auto`` the photo extra's person segmenter. Outputs,
in the authors' layout under ``<save_path>/<save_name>/``: ``depth/``, ``normal/``, ``cons/``,
``normal_parts/``, ``images/``, ``output_plys/``, ``output_plys_c/``, ``args.json``, and for
detected keypoints ``keypoints/<stem>_keypoints.json`` (OpenPose layout, editable, read back with
``--keypoint_dir``) and ``keypoints/<stem>_overlay.jpg``. An image that fails, for whatever reason,
is reported as one line (file and reason; ``--debug`` adds the traceback), nothing is written under
its name, and the batch goes on; the exit status is 1 if any image failed. A bad checkpoint, bad
arguments or an unwritable output folder stop the run before anything is written. An interrupted
run resumes with ``--skip_existing`` (each file is written atomically; an image counts as done
when all its files exist).

Examples:
    python test_02_model.py --data_path photos --checkpoint checkpoints/ckpt_bg_mask.pth.tar
    python test_02_model.py --data_path plain_photos --checkpoint checkpoints/demo_w025_512.pt \\
        --keypoints auto --mask auto
    python test_02_model.py --data_path photos --checkpoint outputs/train/p2/best.pt \\
        --save_path result --save_name run1 --mask_dir photos/masks --device cuda
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch
from tqdm.contrib.logging import logging_redirect_tqdm

from inference import InputError, InputOptions, OutputOptions, Predictor, list_images, run_folder
from inference.batch import KEYPOINT_SOURCES, MASK_SOURCES
from inference.detect import PhotoExtraMissing
from inference.pointcloud import BACK_COLORS
from inference.predictor import DEPTH_MASKS
from models import CheckpointError
from models.precision import PRECISIONS
from utils.batch import add_debug_argument, exit_on_failures
from utils.fileio import check_writable_dir, write_text

log = logging.getLogger("test_02_model")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    io = p.add_argument_group("inputs and outputs")
    io.add_argument("--data_path", required=True, help="folder of input images")
    io.add_argument("--checkpoint", required=True, help="phase-2 checkpoint (ours or .pth.tar)")
    io.add_argument("--save_path", default="result", help="output root (authors: ./result)")
    io.add_argument("--save_name", default="test", help="output folder under --save_path")
    io.add_argument("--keypoint_dir", help="folder of <stem>_keypoints.json|npy (default: inputs)")
    io.add_argument(
        "--keypoints",
        choices=KEYPOINT_SOURCES,
        default="file",
        help="file: the keypoint file (authors); auto: the file, else the built-in detector; "
        "detect: always the detector (photo extra)",
    )
    io.add_argument("--mask_dir", help="masks <stem>_mask.png or <stem>.png for images w/o alpha")
    io.add_argument(
        "--mask",
        choices=MASK_SOURCES,
        default="rembg",
        help="mask of images without alpha or mask file: rembg (authors), segmenter (photo "
        "extra), auto: the segmenter if installed and no --rembg_model, else rembg",
    )
    io.add_argument("--rembg_model", help="local u2net.onnx (default: $U2NET_HOME/u2net.onnx)")
    io.add_argument(
        "--allow_download",
        action="store_true",
        help="without a local rembg model, let rembg download it (needs internet; off: never)",
    )
    io.add_argument("--skip_existing", action="store_true", help="skip images already done")
    add_debug_argument(io)
    model = p.add_argument_group("model")
    model.add_argument("--res", type=int, help="working resolution (default: the checkpoint's)")
    model.add_argument("--width", type=float, help="channel multiplier (default: the checkpoint's)")
    model.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    model.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    model.add_argument(
        "--precision",
        choices=tuple(PRECISIONS),
        default="fp32",
        help="fp32 (authors' numbers; strict float32 on CUDA), tf32 (CUDA TF32), or bf16/fp16 "
        "autocast: faster, errors in the README",
    )
    model.add_argument(
        "--depth_mask",
        choices=DEPTH_MASKS,
        default="meet",
        help="order: keep front <= back (authors); predicted: also the refined mask > 0.5; "
        "meet: inside the refined and input masks, crossed front/back sheets meet at their mean",
    )
    out = p.add_argument_group("point clouds and images")
    out.add_argument(
        "--back_color",
        choices=BACK_COLORS,
        default="front",
        help="colour of back points: the front pixel's (authors), darker, or grey",
    )
    out.add_argument(
        "--authors_scale",
        action="store_true",
        help="divide point coordinates by 1.0367394227574303 as the authors",
    )
    out.add_argument("--no_side_fill", action="store_true", help="do not write output_plys_c/")
    out.add_argument("--no_normal_parts", action="store_true", help="do not write normal_parts/")
    out.add_argument(
        "--raw_normals",
        action="store_true",
        help="write normal/ over the whole frame, as the authors (default: 0 outside the input "
        "silhouette, where the merged normals are noise)",
    )
    return p


def main(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    out_dir = Path(args.save_path) / args.save_name
    inputs = InputOptions(
        keypoints=args.keypoints,
        mask=args.mask,
        keypoint_dir=args.keypoint_dir,
        mask_dir=args.mask_dir,
        rembg_model_given=args.rembg_model is not None,
    )
    try:
        inputs.check()
        images = list_images(args.data_path)
        predictor = Predictor(
            args.checkpoint,
            res=args.res,
            width=args.width,
            device=device,
            rembg_model=args.rembg_model,
            allow_download=args.allow_download,
            depth_mask=args.depth_mask,
            precision=args.precision,
        )
        check_writable_dir(out_dir)
    except (InputError, CheckpointError, ValueError, PhotoExtraMissing, OSError) as e:
        raise SystemExit(f"error: {e}") from e
    options = OutputOptions(
        normal_parts=not args.no_normal_parts,
        side_fill=not args.no_side_fill,
        back_color=args.back_color,
        authors_scale=args.authors_scale,
        raw_normals=args.raw_normals,
    )
    resolved = {
        **vars(args),
        "device": device,
        "res": predictor.res,
        "mask_fallback": inputs.mask_fallback,
    }
    write_text(out_dir / "args.json", json.dumps(resolved, indent=2))
    with logging_redirect_tqdm():
        report = run_folder(
            predictor,
            images,
            out_dir,
            inputs=inputs,
            options=options,
            skip_existing=args.skip_existing,
            debug=args.debug,
        )
    print(
        f"{len(report.done)} done, {len(report.skipped)} already done, "
        f"{len(report.failed)} failed; outputs in {out_dir}"
    )
    exit_on_failures(line for _, line in report.failed)  # each line names its file


if __name__ == "__main__":
    main(get_parser().parse_args())
