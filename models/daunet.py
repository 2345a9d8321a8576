"""D-AU-Net: the dual-encoder attention U-Net (authors' ``ATUNetME``) that predicts coarse
front/back depth and mask from the low-resolution image and coarse normals (facts sheet §2.3)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import AttentionBlock, ConvBlock, UpConv, scale_channels


class DAUNet(nn.Module):
    """Two independent 5-level encoders (image, normals), one attention decoder, plain 1x1 head.

    Args:
        ch_image: channels of the image input (3).
        ch_normal: channels of the normal input (6 = coarse front + back normals).
        ch_out: output channels (3 = front depth, back depth, mask logit; activations applied
            outside).
        width: channel multiplier; 1.0 gives the authors' 32-64-128-256-512 encoder widths.
    """

    def __init__(
        self, ch_image: int = 3, ch_normal: int = 6, ch_out: int = 3, width: float = 1.0
    ) -> None:
        super().__init__()
        c1, c2, c3, c4, c5 = (scale_channels(c, width) for c in (32, 64, 128, 256, 512))
        # Registration order = the authors' state-dict order: image encoder, then normal encoder.
        self.Conv1_1, self.Conv2_1 = ConvBlock(ch_image, c1), ConvBlock(c1, c2)
        self.Conv3_1, self.Conv4_1 = ConvBlock(c2, c3), ConvBlock(c3, c4)
        self.Conv5_1 = ConvBlock(c4, c5)
        self.Conv1_2, self.Conv2_2 = ConvBlock(ch_normal, c1), ConvBlock(c1, c2)
        self.Conv3_2, self.Conv4_2 = ConvBlock(c2, c3), ConvBlock(c3, c4)
        self.Conv5_2 = ConvBlock(c4, c5)
        self.Up5 = UpConv(2 * c5, c5)
        self.Att5 = AttentionBlock(c5, 2 * c4, scale_channels(256, width))
        self.Up_conv5 = ConvBlock(c5 + 2 * c4, c5)
        self.Up4 = UpConv(c5, c4)
        self.Att4 = AttentionBlock(c4, 2 * c3, scale_channels(128, width))
        self.Up_conv4 = ConvBlock(c4 + 2 * c3, c4)
        self.Up3 = UpConv(c4, c3)
        self.Att3 = AttentionBlock(c3, 2 * c2, scale_channels(64, width))
        self.Up_conv3 = ConvBlock(c3 + 2 * c2, c3)
        self.Up2 = UpConv(c3, c2)
        self.Att2 = AttentionBlock(c2, 2 * c1, scale_channels(32, width))
        self.Up_conv2 = ConvBlock(c2 + 2 * c1, c2)
        self.Conv_1x1 = nn.Conv2d(c2, ch_out, kernel_size=1)

    def forward(self, image: torch.Tensor, normal: torch.Tensor) -> torch.Tensor:
        """``image`` [B, 3, H, W], ``normal`` [B, 6, H, W] -> raw head output [B, 3, H, W].

        Sizes not divisible by 16 (only possible below the authors' 2048 working resolution) are
        replicate-padded at the bottom/right to the next multiple and the output cropped back.
        """
        _, _, H, W = image.shape
        pad_h, pad_w = -H % 16, -W % 16
        if pad_h or pad_w:
            image = F.pad(image, (0, pad_w, 0, pad_h), mode="replicate")
            normal = F.pad(normal, (0, pad_w, 0, pad_h), mode="replicate")
        skips = []
        a, b = image, normal
        for level, (enc_a, enc_b) in enumerate(
            (
                (self.Conv1_1, self.Conv1_2),
                (self.Conv2_1, self.Conv2_2),
                (self.Conv3_1, self.Conv3_2),
                (self.Conv4_1, self.Conv4_2),
                (self.Conv5_1, self.Conv5_2),
            )
        ):
            if level > 0:
                a, b = F.max_pool2d(a, 2), F.max_pool2d(b, 2)
            a, b = enc_a(a), enc_b(b)
            skips.append(torch.cat((a, b), dim=1))  # [B, 2*c_level, H_l, W_l]
        d = skips.pop()  # bottleneck [B, 2*c5, H/16, W/16]
        for up, att, up_conv in (
            (self.Up5, self.Att5, self.Up_conv5),
            (self.Up4, self.Att4, self.Up_conv4),
            (self.Up3, self.Att3, self.Up_conv3),
            (self.Up2, self.Att2, self.Up_conv2),
        ):
            d = up(d)
            d = up_conv(torch.cat((att(d, skips.pop()), d), dim=1))
        out = self.Conv_1x1(d)  # [B, 3, H_pad, W_pad]
        return out[:, :, :H, :W]
