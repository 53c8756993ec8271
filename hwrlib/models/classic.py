"""Reference architectures used as comparisons by several papers: LeNet-5 and ResNet-18.

LeNet-5 follows LeCun et al. 1998 in its usual modern reading: the 28x28 digit is
zero-padded to 32x32 as in the original, C1 6@5x5, S2 2x2 average, C3 16@5x5 with
full connections (the original's sparse table connects 60 of 96 map pairs),
S4 2x2 average, C5 120@5x5, F6 84, tanh, and a linear output in place of the
original's Euclidean RBF units. S2/S4 have no trainable coefficient here.

ResNet-18 is He et al. 2016 adapted to 28x28 grayscale: the 7x7 stride-2 stem and
3x3 stride-2 pool (which would leave 7x7 for the first stage) become a 3x3 stride-1
conv and a 2x2 max pool, so the four stages see 14, 7, 4 and 2 pixels. The CIFAR-style
stem without any pool costs 4x the FLOPs (31 vs 83 training images/s on a 2-core CPU)
for no gain on centred 28x28 digits.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .registry import register_model


class LeNet5(nn.Module):
    def __init__(self, num_classes: int = 10, in_chans: int = 1):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, 6, 5, padding=2), nn.Tanh(),  # C1: (B, 6, 28, 28) = 32x32 valid
            nn.AvgPool2d(2),                                  # S2: (B, 6, 14, 14)
            nn.Conv2d(6, 16, 5), nn.Tanh(),                   # C3: (B, 16, 10, 10)
            nn.AvgPool2d(2),                                  # S4: (B, 16, 5, 5)
            nn.Conv2d(16, 120, 5), nn.Tanh(),                 # C5: (B, 120, 1, 1)
        )
        self.classifier = nn.Sequential(nn.Linear(120, 84), nn.Tanh(), nn.Linear(84, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


class BasicBlock(nn.Module):
    """Two 3x3 conv + BN; identity shortcut, or 1x1 conv + BN where the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class ResNet(nn.Module):
    """``arch`` is a tuple of (num_blocks, width) per stage; every stage after the first halves H and W."""

    def __init__(self, arch: tuple[tuple[int, int], ...], num_classes: int = 10, in_chans: int = 1):
        super().__init__()
        width = arch[0][1]
        self.stem = nn.Sequential(nn.Conv2d(in_chans, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
                                  nn.MaxPool2d(2))  # (B, 64, 14, 14) for 28x28 input
        blocks, c_in = [], width
        for i, (n, c_out) in enumerate(arch):
            for j in range(n):
                blocks.append(BasicBlock(c_in, c_out, 2 if (i > 0 and j == 0) else 1))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))        # (B, 512, 2, 2) for 28x28 input
        return self.fc(x.mean(dim=(2, 3)))   # global average pool -> (B, classes)


@register_model("classic")
def lenet5(num_classes: int = 10, in_chans: int = 1) -> nn.Module:
    """LeNet-5 (LeCun 1998), 61,706 parameters for 10 classes."""
    return LeNet5(num_classes, in_chans)


@register_model("classic")
def resnet18(num_classes: int = 10, in_chans: int = 1) -> nn.Module:
    """ResNet-18 (11.2 M parameters) with a 3x3 stem and 2x2 pool for 28x28 inputs."""
    return ResNet(((2, 64), (2, 128), (2, 256), (2, 512)), num_classes, in_chans)
