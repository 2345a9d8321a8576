"""Training data: the 2K2K data set over the rendered layout and its augmentation."""

from __future__ import annotations

from .augment import find_backgrounds
from .recon import (
    DatasetError,
    ReconDataset,
    collate_skip_none,
    read_list,
    worker_error_message,
)

__all__ = [
    "DatasetError",
    "ReconDataset",
    "collate_skip_none",
    "find_backgrounds",
    "read_list",
    "worker_error_message",
]
