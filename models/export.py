"""Export the model weights of a training checkpoint: ``python -m models.export SRC DST``.

A training checkpoint (``training/loop.py``) also holds the optimizer state (twice the weights),
random states and the gradient scaler. The export keeps what inference needs: the weights, the
training arguments (``res``, ``width``, ``phase`` ...) as the same JSON string, and the position
(epoch, global step). It loads with ``torch.load(weights_only=True)`` and with
``models.build_model(checkpoint=DST)``.
"""

from __future__ import annotations

import argparse
import io
import os

import torch

from models.checkpoint import CheckpointError, extract_state_dict, read_checkpoint_file
from utils.fileio import atomic_write_bytes

KEPT = ("version", "args", "epoch", "global_step")


def export_weights(src: str | os.PathLike, dst: str | os.PathLike) -> dict:
    """Write ``dst`` with the weights, arguments and position of the checkpoint ``src``.

    Returns:
        the exported dict (``"model"`` state dict plus the kept entries present in ``src``).
    """
    source = os.fspath(src)
    checkpoint = read_checkpoint_file(source)
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{source}: expected a dict, got {type(checkpoint).__name__}")
    exported = {"model": extract_state_dict(checkpoint, source)}
    exported.update({k: checkpoint[k] for k in KEPT if k in checkpoint})
    buffer = io.BytesIO()
    torch.save(exported, buffer)
    atomic_write_bytes(dst, buffer.getvalue())
    return exported


def main(args: argparse.Namespace) -> None:
    exported = export_weights(args.src, args.dst)
    size = os.path.getsize(args.dst) / 2**20
    print(f"wrote {args.dst}: {len(exported['model'])} tensors, {size:.1f} MiB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", help="training checkpoint (last.pt, best.pt, epoch_NNN.pt)")
    parser.add_argument("dst", help="output file")
    main(parser.parse_args())
