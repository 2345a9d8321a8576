"""Building blocks shared by the 2K2K networks (facts sheet §2.1).

Module and attribute names (``conv``, ``up``, ``W_g``, ``W_x``, ``psi``) and the index layout of
every ``nn.Sequential`` reproduce the authors' state-dict keys, so their checkpoints load strictly.

Activation checkpointing: a block whose ``grad_checkpointing`` attribute is True keeps, in
training with gradients on, only the inputs of each unit ([conv, BN, ReLU], the up-sampling unit,
the attention gate) and recomputes the unit in the backward pass. The recomputation uses the same
batch statistics and updates copies of BatchNorm's running statistics, so outputs, gradients and
running statistics equal those without checkpointing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint


def scale_channels(channels: int, width: float) -> int:
    """Channel count of a layer under the width multiplier (1.0 = the authors' architecture)."""
    return max(1, int(round(channels * width)))


def fold_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of ``bn(conv(x))`` as one convolution, with BN's running statistics."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # [C_out]
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    weight = conv.weight * scale.view(-1, 1, 1, 1)
    return weight, (bias - bn.running_mean) * scale + bn.bias


def conv_bn_relu(x: torch.Tensor, conv: nn.Conv2d, bn: nn.BatchNorm2d) -> torch.Tensor:
    """``relu(bn(conv(x)))`` in eval mode: the BatchNorm is folded into the convolution (one pass).

    Training mode runs the modules themselves (batch statistics); this path is for eval only.
    """
    weight, bias = fold_bn(conv, bn)
    y = F.conv2d(x, weight, bias, conv.stride, conv.padding)
    return torch.relu_(y)


@contextlib.contextmanager
def _running_statistics_kept(module: nn.Module) -> Iterator[None]:
    """BatchNorm layers of ``module`` update throw-away copies of their running statistics (and
    ``num_batches_tracked``): the recomputation of a checkpointed unit leaves the real ones as
    the forward pass left them."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    names = ("running_mean", "running_var", "num_batches_tracked")
    kept = [{name: getattr(m, name) for name in names} for m in norms]
    for m, buffers in zip(norms, kept, strict=True):
        for name, buf in buffers.items():
            setattr(m, name, buf.clone() if buf is not None else None)
    try:
        yield
    finally:
        for m, buffers in zip(norms, kept, strict=True):
            for name, buf in buffers.items():
                setattr(m, name, buf)


def checkpointed(
    fn: Callable[..., torch.Tensor], owner: nn.Module, *inputs: torch.Tensor
) -> torch.Tensor:
    """``fn(*inputs)`` keeping only ``inputs`` for the backward pass, which recomputes ``fn``.

    ``owner`` holds the BatchNorm layers ``fn`` runs (training mode): their running statistics
    are updated once, by the forward pass.
    """
    return checkpoint(
        fn,
        *inputs,
        use_reentrant=False,
        preserve_rng_state=False,  # the units draw no random numbers
        context_fn=lambda: (contextlib.nullcontext(), _running_statistics_kept(owner)),
    )


class Checkpointable(nn.Module):
    """A block that can recompute its activations in the backward pass (module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.grad_checkpointing = False

    def checkpointing(self) -> bool:
        """Whether this call recomputes in the backward pass: switched on, training, and
        gradients being recorded."""
        return self.grad_checkpointing and self.training and torch.is_grad_enabled()


def _conv_bn_relu_layers(ch_in: int, ch_out: int) -> list[nn.Module]:
    """[3x3 conv (bias) -> BatchNorm -> ReLU], the unit of the authors' ``conv`` sequentials."""
    return [
        nn.Conv2d(ch_in, ch_out, kernel_size=3, padding=1),
        nn.BatchNorm2d(ch_out),
        nn.ReLU(inplace=True),
    ]


class _ConvBnReluStack(Checkpointable):
    """A ``conv`` sequential of [conv, BN, ReLU] units; eval mode folds each BN into its conv."""

    conv: nn.Sequential

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.checkpointing():
            for i in range(0, len(self.conv), 3):
                unit = self.conv[i : i + 3]
                x = checkpointed(unit, unit, x)
            return x
        if self.training:
            return self.conv(x)
        for i in range(0, len(self.conv), 3):
            x = conv_bn_relu(x, self.conv[i], self.conv[i + 1])
        return x


class ConvBlock(_ConvBnReluStack):
    """Two [3x3 conv -> BatchNorm -> ReLU] layers: ``[B, C_in, H, W] -> [B, C_out, H, W]``."""

    def __init__(self, ch_in: int, ch_out: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            *_conv_bn_relu_layers(ch_in, ch_out), *_conv_bn_relu_layers(ch_out, ch_out)
        )


class SingleConv(_ConvBnReluStack):
    """One [3x3 conv -> BatchNorm -> ReLU]: ``[B, C_in, H, W] -> [B, C_out, H, W]``."""

    def __init__(self, ch_in: int, ch_out: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(*_conv_bn_relu_layers(ch_in, ch_out))


class Conv1x1Relu(nn.Module):
    """1x1 conv -> ReLU, no BatchNorm: ``[B, C_in, H, W] -> [B, C_out, H, W]``."""

    def __init__(self, ch_in: int, ch_out: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(ch_in, ch_out, kernel_size=1), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class UpConv(Checkpointable):
    """Nearest x2 upsample -> 3x3 conv -> BN -> ReLU: ``[B, C_in, H, W] -> [B, C_out, 2H, 2W]``."""

    def __init__(self, ch_in: int, ch_out: int) -> None:
        super().__init__()
        self.up = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(ch_in, ch_out, kernel_size=3, padding=1),
            nn.BatchNorm2d(ch_out),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.checkpointing():
            return checkpointed(self.up, self.up, x)
        if self.training:
            return self.up(x)
        return conv_bn_relu(self.up[0](x), self.up[1], self.up[2])


class AttentionBlock(Checkpointable):
    """Additive attention gate of Attention U-Net.

    Args:
        f_g: channels of the gating signal ``g`` (decoder feature).
        f_l: channels of the skip feature ``x`` (encoder feature).
        f_int: channels of the intermediate 1x1 projections.
    """

    def __init__(self, f_g: int, f_l: int, f_int: int) -> None:
        super().__init__()
        self.W_g = nn.Sequential(nn.Conv2d(f_g, f_int, kernel_size=1), nn.BatchNorm2d(f_int))
        self.W_x = nn.Sequential(nn.Conv2d(f_l, f_int, kernel_size=1), nn.BatchNorm2d(f_int))
        self.psi = nn.Sequential(
            nn.Conv2d(f_int, 1, kernel_size=1), nn.BatchNorm2d(1), nn.Sigmoid()
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, g: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``g`` [B, F_g, H, W], ``x`` [B, F_l, H, W] -> gated skip [B, F_l, H, W]."""
        if self.checkpointing():
            return checkpointed(self._gate, self, g, x)
        return self._gate(g, x)

    def _gate(self, g: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        psi = self.psi(self.relu(self.W_g(g) + self.W_x(x)))  # [B, 1, H, W]
        return x * psi
