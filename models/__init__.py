"""2K2K networks, part geometry, losses and checkpoints."""

from __future__ import annotations

import os

from .checkpoint import CheckpointError, load_checkpoint
from .model_2k2k import Model2K2K


def build_model(
    phase: int = 2,
    res: int = 2048,
    width: float = 1.0,
    checkpoint: str | os.PathLike | None = None,
    frozen_eval: bool = True,
    detach_coarse_normals: bool = False,
) -> Model2K2K:
    """Build the 2K2K model, optionally loading a checkpoint strictly.

    Args:
        phase: 1 (normal nets + coarse depth) or 2 (adds the refinement net).
        res: working resolution, a multiple of 64 (2048 = the authors' model).
        width: channel multiplier (1.0 = the authors' architecture; smaller for experiments).
        checkpoint: authors' ``.pth.tar`` or one of ours; keys must match exactly.
        frozen_eval, detach_coarse_normals: see :class:`Model2K2K` (training behaviour only).
    """
    model = Model2K2K(
        phase=phase,
        res=res,
        width=width,
        frozen_eval=frozen_eval,
        detach_coarse_normals=detach_coarse_normals,
    )
    if checkpoint is not None:
        load_checkpoint(model, checkpoint)
    return model


__all__ = ["CheckpointError", "Model2K2K", "build_model", "load_checkpoint"]
