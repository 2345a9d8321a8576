"""2K2K inference: photos + keypoints -> depth and normal maps -> coloured point clouds."""

from __future__ import annotations

from .background import BackgroundRemovalError, RembgMasker
from .batch import BatchReport, InputOptions, InputReader, run_folder
from .io import InputError, list_images, load_keypoints, read_image
from .pointcloud import AUTHORS_PLY_SCALE, colored_point_cloud, side_fill_layers, write_ply
from .predictor import OutputOptions, Prediction, Predictor, load_phase2_model

__all__ = [
    "AUTHORS_PLY_SCALE",
    "BackgroundRemovalError",
    "BatchReport",
    "InputError",
    "InputOptions",
    "InputReader",
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
