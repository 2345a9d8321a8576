"""Checkpoint loading: the authors' format and ours, strict, with a key-by-key report."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

import torch
from torch import nn

from utils.errors import BadInputError


class CheckpointError(BadInputError, RuntimeError):
    """A checkpoint file cannot be read or does not fit the model; the message says why."""


def extract_state_dict(
    checkpoint: Mapping, source: str = "<checkpoint>"
) -> dict[str, torch.Tensor]:
    """Model weights from a loaded checkpoint object.

    Accepts the authors' ``{'model_state_dict': ...}``, our ``{'model': ...}``, or a bare state
    dict; strips a ``module.`` prefix (DataParallel / DDP saves).
    """
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(f"{source}: expected a dict, got {type(checkpoint).__name__}")
    for key in ("model_state_dict", "model", "state_dict"):
        if isinstance(checkpoint.get(key), Mapping):
            checkpoint = checkpoint[key]
            break
    state = {}
    for k, v in checkpoint.items():
        if not isinstance(k, str):
            raise CheckpointError(f"{source}: key {k!r} is {type(k).__name__}, not a name")
        if not isinstance(v, torch.Tensor):
            raise CheckpointError(f"{source}: entry {k!r} is {type(v).__name__}, not a tensor")
        state[k.removeprefix("module.")] = v
    return state


def _value_problem(value: torch.Tensor, own: torch.Tensor) -> str | None:
    """Why a checkpoint tensor cannot stand for the model's tensor of the same name, or None.

    The kinds must agree (a floating-point weight from real floating-point numbers, an integer
    counter from integers: a complex tensor would lose its imaginary part, a boolean one is no
    weight), the layout must be dense, and floating-point weights must be finite (a diverged run
    saves NaN).
    """
    if value.layout != torch.strided:
        return f"{value.layout} tensor"
    if value.is_complex() or value.dtype == torch.bool:
        return f"{value.dtype} values"
    if own.is_floating_point() != value.is_floating_point():
        return f"{value.dtype} values for a {own.dtype} tensor"
    if value.is_floating_point() and not bool(torch.isfinite(value).all()):
        return "non-finite values (NaN or infinity)"
    return None


def load_state_dict_strict(
    model: nn.Module,
    state: Mapping[str, torch.Tensor],
    source: str = "<state dict>",
    allow_missing: Iterable[str] = (),
    drop: Iterable[str] = (),
) -> None:
    """Load ``state`` into ``model``; any missing, unexpected, mis-shaped or unusable entry (see
    :func:`_value_problem`) is an error.

    Args:
        allow_missing: key prefixes that may be absent (e.g. ``("refine.",)`` to start phase 2
            from a phase-1 checkpoint); everything else must match exactly.
        drop: key prefixes of ``state`` to leave out before the comparison (e.g. ``("refine.",)``
            to continue phase 1 from a phase-2 checkpoint).
    Raises:
        CheckpointError listing every offending key (up to 20 per kind) and the counts.
    """
    own = model.state_dict()
    allow = tuple(allow_missing)
    dropped = tuple(drop)
    if dropped:
        state = {k: v for k, v in state.items() if not k.startswith(dropped)}
    missing = [k for k in own if k not in state and not k.startswith(allow)]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    problems = ((k, _value_problem(state[k], own[k])) for k in own if k in state)
    values = [f"{k}: {problem}" for k, problem in problems if problem is not None]
    if missing or unexpected or shapes or values:
        name = type(model).__name__
        lines = [f"{source} does not fit {name} ({len(own)} entries, {len(state)} given):"]
        for title, keys in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("mis-shaped", shapes),
            ("unusable", values),
        ):
            if keys:
                shown = "\n    ".join(keys[:20]) + ("\n    ..." if len(keys) > 20 else "")
                lines.append(f"  {len(keys)} {title} key(s):\n    {shown}")
        raise CheckpointError("\n".join(lines))
    model.load_state_dict(state, strict=not allow)


def read_checkpoint_file(path: str | os.PathLike) -> object:
    """``torch.load`` a checkpoint on the CPU (``weights_only``); one clear error if it fails."""
    source = os.fspath(path)
    if not os.path.isfile(source):
        raise CheckpointError(f"checkpoint not found: {source}")
    try:
        return torch.load(source, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt/foreign files
        raise CheckpointError(f"{source}: cannot be read as a PyTorch checkpoint ({exc})") from exc


def load_checkpoint(
    model: nn.Module,
    path: str | os.PathLike,
    allow_missing: Iterable[str] = (),
    drop: Iterable[str] = (),
) -> dict:
    """Read a checkpoint file (authors' ``.pth.tar`` or ours) and load it strictly into ``model``
    (``allow_missing``, ``drop``: see :func:`load_state_dict_strict`).

    Returns:
        the whole checkpoint dict (optimizer state, epoch ... when present).
    """
    source = os.fspath(path)
    checkpoint = read_checkpoint_file(source)
    state = extract_state_dict(checkpoint, source)
    load_state_dict_strict(model, state, source, allow_missing, drop)
    return checkpoint if isinstance(checkpoint, dict) else {}
