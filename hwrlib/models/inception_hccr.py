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
from .resnet_hccr import STAGES, StagedNet


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


class InceptionHCCR(StagedNet):
    """Stages of Inception modules; stages 2-4 start with a 3x3/2 max pool."""

    def __init__(self, num_classes: int = 3755, in_chans: int = 1, width: float = 1.0,
                 stages: tuple[tuple[int, int], ...] = STAGES):
        def make_stage(i: int, c_in: int, c_out: int, n: int) -> nn.Sequential:
            pool = [nn.MaxPool2d(3, 2, 1)] if i > 0 else []
            return nn.Sequential(*pool, *[InceptionModule(c_in if j == 0 else c_out, c_out) for j in range(n)])
        super().__init__(make_stage, num_classes, in_chans, width, stages, preact=False)


@register_model("000")
def inception_hccr(num_classes: int = 10, in_chans: int = 1, width: float = 1.0) -> nn.Module:
    """Table 1's Inception baseline: 18 BN-Inception (v1-style) modules, two convs deep each, same stages."""
    return InceptionHCCR(num_classes, in_chans, width)
