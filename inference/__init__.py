"""2K2K inference: photos + keypoints -> depth and normal maps -> coloured point clouds."""

from __future__ import annotations

from .background import BackgroundRemovalError, RembgMasker
from .io import InputError, list_images, load_keypoints, read_image
from .pointcloud import AUTHORS_PLY_SCALE, colored_point_cloud, side_fill_layers, write_ply
from .predictor import (
    BatchReport,
    OutputOptions,
    Prediction,
    Predictor,
    load_phase2_model,
    run_folder,
)

__all__ = [
    "AUTHORS_PLY_SCALE",
    "BackgroundRemovalError",
    "BatchReport",
    "InputError",
    "OutputOptions",
    "Prediction",
    "Predictor",
    "RembgMasker",
    "colored_point_cloud",
    "list_images",
    "load_keypoints",
    "load_phase2_model",
    "read_image",
    "run_folder",
    "side_fill_layers",
    "write_ply",
]
