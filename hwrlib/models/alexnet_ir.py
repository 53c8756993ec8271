"""Paper 004: the modified AlexNet baseline and the improved model with an Inception-ResNet block.

**alexnet_mod** (§2): AlexNet with its first conv changed from 11x11/4 to 5x5/1 so that it takes 28x28.
The paper gives no further layout; this one follows AlexNet (Krizhevsky 2012) wherever it can and the
paper's remark that "Conv3, Conv4 and Conv5 all have 3x3 feature maps":

    28 -> conv1 96@5x5 valid 24 -> LRN -> pool 3/2 11 -> conv2 256@5x5 valid 7 -> LRN -> pool 3/2 3
       -> conv3 384@3x3 same -> conv4 384 -> conv5 256 (3x3) -> pool 3/2 1 -> FC 4096 -> FC 4096 -> 10

ReLU after every conv and hidden FC, LRN after the ReLU (§1.1, AlexNet's size 5, alpha 1e-4, beta 0.75,
k 2; ``layers.LocalResponseNorm``: torch's formula at a fraction of its cost), dropout 0.5 after each
hidden FC. 21,589,706 parameters against the claimed 2.1e7 (+2.8 %);
"same" padding on conv2 (AlexNet's pad 2) would leave 5x5 maps at conv3-5 and 2x2 after the last pool,
24.7 M parameters, and contradict the paper's 3x3.

**alexnet_ir** (Table 1): two 3x3 convs per stage, BN after every conv and before its ReLU, the Mixed
Inception-ResNet block at 7x7x128, one hidden FC. Table 1 is inconsistent at its end: Conv3 is "3x3, valid"
with output 3x3x256 (a valid 3x3 conv of a 3x3 map gives 1x1), followed by a second 3x3/2 pool to 1x1x256.
``conv3_padding="same"`` (default) keeps the table's output sizes and both layers: Conv3 pads, the pool
gives 1x1. ``"valid"`` keeps the table's padding column: Conv3 gives 1x1 and the pool is dropped. Both
have the same parameters. The Mixed block's widths are in the paper's Fig. 2 only (an image, not in the
text): here Inception-ResNet-C's pattern (v4 paper, Fig. 19) at ``mixed_width`` maps per branch:
1x1; 1x1 -> 1x3 -> 3x1; concatenated, a 1x1 projection back to 128 (BN, no ReLU) added to the input, then
ReLU. Conv biases are dropped where BN follows (its shift does the same job).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .layers import LocalResponseNorm
from .registry import register_model

CONV3_PADDING = ("same", "valid")
# AlexNet's conv stack after conv1 as data: (out maps, kernel, padding, LRN after, max pool 3/2 after)
ALEXNET_MOD = ((96, 5, 0, True, True), (256, 5, 0, True, True), (384, 3, 1, False, False),
               (384, 3, 1, False, False), (256, 3, 1, False, True))
ALEXNET_FC = (4096, 4096)


def conv_bn(c_in: int, c_out: int, kernel: int | tuple[int, int], relu: bool = True) -> nn.Sequential:
    """Conv ("same" padding, stride 1, no bias) -> BN -> ReLU, as the paper orders them (§1.3)."""
    k = (kernel, kernel) if isinstance(kernel, int) else kernel
    layers = [nn.Conv2d(c_in, c_out, k, padding=(k[0] // 2, k[1] // 2), bias=False), nn.BatchNorm2d(c_out)]
    return nn.Sequential(*layers, nn.ReLU()) if relu else nn.Sequential(*layers)


class AlexNetMod(nn.Module):
    """AlexNet for 28x28 digits; ``convs`` and ``fc`` are the layout as data (see the module docstring)."""

    def __init__(self, num_classes: int = 10, in_chans: int = 1, convs=ALEXNET_MOD, fc=ALEXNET_FC,
                 dropout: float = 0.5):
        super().__init__()
        layers, c_in = [], in_chans
        for c_out, k, pad, lrn, pool in convs:
            layers += [nn.Conv2d(c_in, c_out, k, padding=pad), nn.ReLU()]
            # nn.LocalResponseNorm's formula, computed in a fraction of its time (hwrlib.models.layers)
            layers += [LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)] if lrn else []
            layers += [nn.MaxPool2d(3, 2)] if pool else []  # overlapping pooling
            c_in = c_out
        self.features = nn.Sequential(*layers)
        head, n_in = [], c_in  # 1x1 maps after the last pool for 28x28 input
        for n_out in fc:
            head += [nn.Linear(n_in, n_out), nn.ReLU(), nn.Dropout(dropout)]
            n_in = n_out
        self.classifier = nn.Sequential(*head, nn.Linear(n_in, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)                 # (B, 256, 1, 1): 24 -> 11 -> 7 -> 3 -> 3 -> 3 -> 1
        return self.classifier(x.flatten(1))  # (B, 256) -> (B, classes)


class MixedBlock(nn.Module):
    """Inception-ResNet-C at ``channels`` maps: ReLU(x + BN(1x1(concat(1x1(x), 3x1(1x3(1x1(x)))))))."""

    def __init__(self, channels: int = 128, width: int = 32):
        super().__init__()
        self.branch1 = conv_bn(channels, width, 1)
        self.branch2 = nn.Sequential(conv_bn(channels, width, 1), conv_bn(width, width, (1, 3)),
                                     conv_bn(width, width, (3, 1)))
        self.project = conv_bn(2 * width, channels, 1, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.cat([self.branch1(x), self.branch2(x)], dim=1)  # (B, 2 * width, H, W)
        return torch.relu(x + self.project(y))                    # (B, channels, H, W)


class AlexNetIR(nn.Module):
    """The improved model of Table 1; ``widths`` are the maps of stage 1, stage 2 and Conv3."""

    def __init__(self, num_classes: int = 10, in_chans: int = 1, widths: tuple[int, int, int] = (32, 128, 256),
                 mixed_width: int = 32, fc: int = 1024, conv3_padding: str = "same", dropout: float = 0.5):
        super().__init__()
        if conv3_padding not in CONV3_PADDING:
            raise ValueError(f"unknown conv3_padding {conv3_padding!r}; choose one of {', '.join(CONV3_PADDING)}")
        c1, c2, c3 = widths
        self.stage1 = nn.Sequential(conv_bn(in_chans, c1, 3), conv_bn(c1, c1, 3), nn.MaxPool2d(2))
        self.stage2 = nn.Sequential(conv_bn(c1, c2, 3), conv_bn(c2, c2, 3), nn.MaxPool2d(2))
        self.mixed = MixedBlock(c2, mixed_width)
        self.pool3 = nn.MaxPool2d(3, 2)
        pad = 1 if conv3_padding == "same" else 0
        self.conv3 = nn.Sequential(nn.Conv2d(c2, c3, 3, padding=pad, bias=False), nn.BatchNorm2d(c3), nn.ReLU())
        self.pool4 = nn.MaxPool2d(3, 2) if conv3_padding == "same" else nn.Identity()
        self.classifier = nn.Sequential(nn.Linear(c3, fc), nn.ReLU(), nn.Dropout(dropout), nn.Linear(fc, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stage1(x)                # (B, 32, 14, 14): two 3x3 convs at 28x28, pool 2/2
        x = self.stage2(x)                # (B, 128, 7, 7)
        x = self.pool3(self.mixed(x))     # (B, 128, 7, 7) -> (B, 128, 3, 3)
        x = self.pool4(self.conv3(x))     # same: (B, 256, 3, 3) -> (B, 256, 1, 1); valid: (B, 256, 1, 1)
        return self.classifier(x.flatten(1))  # (B, classes)


@register_model("004")
def alexnet_mod(num_classes: int = 10, in_chans: int = 1, dropout: float = 0.5) -> nn.Module:
    """The 004 paper's modified AlexNet baseline: 21,589,706 parameters for 10 classes (claimed 2.1e7)."""
    return AlexNetMod(num_classes, in_chans, dropout=dropout)


@register_model("004")
def alexnet_ir(num_classes: int = 10, in_chans: int = 1, conv3_padding: str = "same", mixed_width: int = 32,
               dropout: float = 0.5) -> nn.Module:
    """The 004 paper's improved model (Table 1) with the Mixed Inception-ResNet block 786,346 parameters (claimed 8e5)."""
    return AlexNetIR(num_classes, in_chans, mixed_width=mixed_width, conv3_padding=conv3_padding, dropout=dropout)
