"""Paper 000's Inception baseline (Table 1), built with the same depth budget as the residual network.

The paper compares with "Inception_4" without describing it. Here: the same 7x7 stem, stages,
widths and auxiliary head position as :mod:`resnet_hccr`, with each residual unit replaced by a
GoogLeNet (Inception v1) module with batch normalization after every conv (as in BN-Inception):
branches 1x1 | 1x1 -> 3x3 | 1x1 -> 5x5 | 3x3 max pool -> 1x1, concatenated. Every module is two
conv layers deep, so 18 modules give the 36 conv layers of the 18 residual units; there are no
shortcuts. Between stages a 3x3/2 max pool halves the grid, as GoogLeNet does.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .registry import register_model
from .resnet_hccr import AUX_AFTER_STAGE, STAGES, AuxHead, scaled, stem


def conv_bn(c_in: int, c_out: int, k: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, 1, k // 2, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


class InceptionModule(nn.Module):
    """Four branches of ``c_out // 4`` channels each (the 1x1 branch takes the remainder), concatenated."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        b = max(1, c_out // 4)
        self.b1 = conv_bn(c_in, c_out - 3 * b, 1)
        self.b3 = nn.Sequential(conv_bn(c_in, b, 1), conv_bn(b, b, 3))
        self.b5 = nn.Sequential(conv_bn(c_in, b, 1), conv_bn(b, b, 5))
        self.bp = nn.Sequential(nn.MaxPool2d(3, 1, 1), conv_bn(c_in, b, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b1(x), self.b3(x), self.b5(x), self.bp(x)], dim=1)  # (B, c_out, H, W)


class InceptionHCCR(nn.Module):
    input_size = 108

    def __init__(self, num_classes: int = 3755, in_chans: int = 1, width: float = 1.0,
                 stages: tuple[tuple[int, int], ...] = STAGES):
        super().__init__()
        if width <= 0:
            raise ValueError(f"width must be > 0, got {width}")
        c = scaled(stages[0][1], width)
        self.stem = stem(in_chans, c)
        self.stages = nn.ModuleList()
        for i, (n, channels) in enumerate(stages):
            c_out = scaled(channels, width)
            pool = [nn.MaxPool2d(3, 2, 1)] if i > 0 else []
            mods = [InceptionModule(c if j == 0 else c_out, c_out) for j in range(n)]
            self.stages.append(nn.Sequential(*pool, *mods))
            c = c_out
        self.aux = AuxHead(scaled(stages[AUX_AFTER_STAGE][1], width), num_classes, preact=False)
        self.fc = nn.Linear(c, num_classes)

    def forward_with_aux(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(main logits, auxiliary logits)``; the auxiliary head runs only in training mode."""
        aux = None
        x = self.stem(x)                   # (B, 64w, 27, 27) for 108x108 input
        for i, stage in enumerate(self.stages):
            x = stage(x)                   # 64w @ 27 -> 128w @ 14 -> 256w @ 7 -> 512w @ 4
            if i == AUX_AFTER_STAGE and self.training:
                aux = self.aux(x)
        return self.fc(x.mean(dim=(2, 3))), aux

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_aux(x)[0]


@register_model("000")
def inception_hccr(num_classes: int = 10, in_chans: int = 1, width: float = 1.0) -> nn.Module:
    """Table 1's Inception baseline: 18 BN-Inception (v1-style) modules, two convs deep each, same stages."""
    return InceptionHCCR(num_classes, in_chans, width)
