"""Shallow refinement net (authors' ``Refine_2048``, facts sheet §2.5): coarse depth at ``res / 8``
is upsampled x2 three times, each stage guided by the merged normals at that scale.

In eval mode every stage runs in square tiles with a halo (``tile_pixels`` per tile), so a 2048^2
forward never holds a full-resolution 64-channel activation (1 GiB each), and each tile's
activations stay in cache. The result is the same function: each stage has three 3x3 convolutions
along any path, a halo of 4 pixels covers their receptive field, and at the image border the tiles
see the true zero padding.
"""

from __future__ import annotations

import torch
from torch import nn

from .blocks import Conv1x1Relu, ConvBlock, SingleConv, UpConv, scale_channels

_HALO = 4  # >= 3 stacked 3x3 convolutions per stage; even, so tile edges map onto the half-res grid


def _layout(t: torch.Tensor) -> torch.memory_format:
    last = t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()
    return torch.channels_last if last else torch.contiguous_format


def _dense(view: torch.Tensor, whole: torch.Tensor) -> torch.Tensor:
    """A tile ``view`` of ``whole`` made dense in ``whole``'s layout: nearest upsampling of a
    strided channels_last view returns NCHW, which the next channels_last convolution would copy
    back at four times the size."""
    return view.contiguous(memory_format=_layout(whole))


class RefineNet(nn.Module):
    """Coarse depth [B, 2, r, r] + merged normals [B, 6, 8r, 8r] -> raw head output [B, 3, 8r, 8r].

    Args:
        ch_depth: coarse depth channels (front with background 6, masked back).
        ch_normal: merged normal channels (front 3 + back 3).
        ch_out: output channels (front depth, back depth, mask logit; activations applied outside).
        width: channel multiplier (1.0 = authors: 32-channel branches, 64-channel merges).
        tile_pixels: pixels per square tile in eval mode (0 disables tiling).
    """

    def __init__(
        self,
        ch_depth: int = 2,
        ch_normal: int = 6,
        ch_out: int = 3,
        width: float = 1.0,
        tile_pixels: int = 1 << 16,
    ) -> None:
        super().__init__()
        cb, cm = scale_channels(32, width), scale_channels(64, width)
        self.tile_pixels = tile_pixels
        # Registration order = the authors' state-dict order.
        self.depth1, self.depth2, self.depth3 = UpConv(ch_depth, cb), UpConv(cm, cb), UpConv(cm, cb)
        self.normal1, self.normal2, self.normal3 = (SingleConv(ch_normal, cb) for _ in range(3))
        self.merge1_1, self.merge2_1, self.merge3_1 = (ConvBlock(2 * cb, cm) for _ in range(3))
        self.merge1_2, self.merge2_2 = Conv1x1Relu(cm, cm), Conv1x1Relu(cm, cm)
        self.merge3_2 = nn.Conv2d(cm, ch_out, kernel_size=1)

    def _stage(self, i: int, prev: torch.Tensor, normal: torch.Tensor) -> torch.Tensor:
        """Stage ``i`` (1-3): ``prev`` [B, C, h, w] at half res, ``normal`` [B, 6, 2h, 2w]."""
        depth, norm, merge, head = (
            (self.depth1, self.normal1, self.merge1_1, self.merge1_2),
            (self.depth2, self.normal2, self.merge2_1, self.merge2_2),
            (self.depth3, self.normal3, self.merge3_1, self.merge3_2),
        )[i - 1]
        x = torch.cat((depth(prev), norm(normal)), dim=1)  # [B, 2*cb, 2h, 2w]
        return head(merge(x))

    def _stage_tiled(self, i: int, prev: torch.Tensor, normal: torch.Tensor) -> torch.Tensor:
        B, _, H, W = normal.shape
        if self.tile_pixels <= 0:
            return self._stage(i, prev, normal)
        side = max(2 * _HALO, int(self.tile_pixels**0.5) // 2 * 2)
        if side >= H and side >= W:
            return self._stage(i, prev, normal)
        out = None
        for r0 in range(0, H, side):
            r1 = min(H, r0 + side)
            lo, hi = max(0, r0 - _HALO), min(H, r1 + _HALO)
            for c0 in range(0, W, side):
                c1 = min(W, c0 + side)
                left, right = max(0, c0 - _HALO), min(W, c1 + _HALO)
                tile = self._stage(
                    i,
                    _dense(prev[:, :, lo // 2 : hi // 2, left // 2 : right // 2], prev),
                    normal[:, :, lo:hi, left:right],
                )  # [B, C, hi-lo, right-left]
                if out is None:  # in the tiles' layout (channels_last in eval by default)
                    out = torch.empty(
                        (B, tile.shape[1], H, W),
                        dtype=tile.dtype,
                        device=tile.device,
                        memory_format=_layout(tile),
                    )
                out[:, :, r0:r1, c0:c1] = tile[:, :, r0 - lo : r1 - lo, c0 - left : c1 - left]
        return out

    def forward(self, depth: torch.Tensor, normal: torch.Tensor) -> torch.Tensor:
        """``depth`` [B, 2, r, r], ``normal`` [B, 6, 8r, 8r] -> [B, 3, 8r, 8r].

        Normal inputs per stage (authors' strided subsampling, no filtering): rows/cols 1, 5, 9, ...
        at 2r; 0, 2, 4, ... at 4r; all at 8r.
        """
        _, _, r, _ = depth.shape
        assert normal.shape[-1] == 8 * r, f"normals {tuple(normal.shape)} must be 8x depth {r}"
        stage = self._stage if self.training else self._stage_tiled
        x = stage(1, depth, normal[:, :, 1::4, 1::4])
        x = stage(2, x, normal[:, :, ::2, ::2])
        return stage(3, x, normal)
