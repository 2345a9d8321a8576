"""AU-Net: the attention U-Net (authors' ``ATUNet_small``) used for the coarse normal net and the
five part normal nets (facts sheet §2.2)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import AttentionBlock, Conv1x1Relu, ConvBlock, UpConv, scale_channels


class AUNet(nn.Module):
    """Attention U-Net with 4 levels (3 poolings) and a 1x1 + ReLU head.

    Args:
        ch_in: input channels (3 for the coarse normal net, 6 = RGB + coarse front normal for
            part nets).
        ch_out: output channels (6 = front normal + back normal, encoded ``(n + 1) / 2``).
        width: channel multiplier; 1.0 gives the authors' 64-128-256-512 widths.
    """

    def __init__(self, ch_in: int = 6, ch_out: int = 6, width: float = 1.0) -> None:
        super().__init__()
        c1, c2, c3, c4 = (scale_channels(c, width) for c in (64, 128, 256, 512))
        self.Conv1 = ConvBlock(ch_in, c1)
        self.Conv2 = ConvBlock(c1, c2)
        self.Conv3 = ConvBlock(c2, c3)
        self.Conv4 = ConvBlock(c3, c4)
        self.Up4 = UpConv(c4, c3)
        self.Att4 = AttentionBlock(c3, c3, scale_channels(128, width))
        self.Up_conv4 = ConvBlock(2 * c3, c3)
        self.Up3 = UpConv(c3, c2)
        self.Att3 = AttentionBlock(c2, c2, scale_channels(64, width))
        self.Up_conv3 = ConvBlock(2 * c2, c2)
        self.Up2 = UpConv(c2, c1)
        self.Att2 = AttentionBlock(c1, c1, scale_channels(32, width))
        self.Up_conv2 = ConvBlock(2 * c1, c1)
        self.Conv_1x1 = Conv1x1Relu(c1, ch_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` [B, C_in, H, W] with H, W divisible by 8 -> [B, C_out, H, W] (non-negative)."""
        _, _, H, W = x.shape
        assert H % 8 == 0 and W % 8 == 0, f"AUNet input must be divisible by 8, got {H}x{W}"
        e1 = self.Conv1(x)
        e2 = self.Conv2(F.max_pool2d(e1, 2))
        e3 = self.Conv3(F.max_pool2d(e2, 2))
        e4 = self.Conv4(F.max_pool2d(e3, 2))
        d4 = self.Up4(e4)
        d4 = self.Up_conv4(torch.cat((self.Att4(d4, e3), d4), dim=1))  # [B, 2*c3, H/4, W/4] in
        d3 = self.Up3(d4)
        d3 = self.Up_conv3(torch.cat((self.Att3(d3, e2), d3), dim=1))  # [B, 2*c2, H/2, W/2] in
        d2 = self.Up2(d3)
        d2 = self.Up_conv2(torch.cat((self.Att2(d2, e1), d2), dim=1))  # [B, 2*c1, H, W] in
        return self.Conv_1x1(d2)
