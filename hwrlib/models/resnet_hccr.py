"""Paper 000: the improved deep residual network for offline HCCR, and its plain-ResNet baseline.

The paper fixes: a 7x7 stem conv, then 18 residual units of two 3x3 conv layers with batch
normalization (36 conv layers), each unit computing ``x_{i+1} = F(x_i, W_i) + a_i * x_i`` with a
learned scalar ``a_i`` (its eq. 4/5), the product of all ``a_i`` kept near 1 by a loss term
``|prod a_i - 1|``, an auxiliary classifier and 108x108 inputs. It does not give stage widths,
downsampling, unit layout or the auxiliary head. Our choices, and why:

- **Pre-activation units** (BN-ReLU-conv-BN-ReLU-conv, He et al. 2016 "Identity mappings", the
  paper's ref. [11], whose analysis of scaled shortcuts it follows): with no ReLU after the
  addition, eq. 5 and eq. 6 hold exactly, so ``prod a_i`` really is the gain of the shortcut path.
- **Stages** as in ResNet-34, widths (64, 128, 256, 512), with 18 units split (4, 5, 5, 4) so that
  the auxiliary head sits after unit 9, the middle of the network.
- **Resolution**: 108 -> 7x7/2 stem -> 54 -> 3x3/2 max pool -> 27 -> stages at 27, 14, 7, 4 pixels;
  an ImageNet ResNet ends at 7x7 from 224, so 4x4 from 108 keeps the same ratio of pooling to input.
- **Where a unit changes shape** (first unit of stages 2-4: stride 2, more channels) the shortcut is
  a 1x1 stride-2 projection of the pre-activated input, still scaled by its ``a_i``: every unit has
  its scalar, so the product runs over all 18 as in eq. 6.
- **Auxiliary head** (Inception style; the paper names only "auxiliary classifier loss"):
  BN-ReLU -> 1x1 conv -> BN-ReLU -> global average pool -> linear, on the stage-2 output.

``width`` multiplies every channel count, so CPU runs can use a small network; 1.0 is the full size.
``forward`` returns the main logits; ``forward_with_aux`` returns ``(main, aux)`` for training.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .registry import register_model

STAGES = ((4, 64), (5, 128), (5, 256), (4, 512))  # (units, channels) per stage: 18 units
AUX_AFTER_STAGE = 1  # index of the stage whose output feeds the auxiliary head (unit 9 of 18)


MIN_CHANNELS = 8


def scaled(channels: int, width: float) -> int:
    """Channel count after the width multiplier, never below 8.

    Why 8: at width 1/16 (4-channel stem and first stage) the channels_last backward of torch 2.13's CPU
    build corrupted the heap ("corrupted size vs. prev_size") within 60 steps with 2 threads; 8 channels ran clean.
    """
    return max(MIN_CHANNELS, round(channels * width))


class ShortcutScale(nn.Module):
    """The scalar ``a_i`` on a unit's shortcut: learned (init 1) or fixed at 1 (the plain ResNet).

    A leaf module of its own, so parameter tables (``layer_table``) count it.
    """

    def __init__(self, learned: bool):
        super().__init__()
        self.learned = learned
        if learned:
            self.a = nn.Parameter(torch.ones(()))
        else:
            self.register_buffer("a", torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.a if self.learned else x  # a fixed 1 costs no multiply


class PreActUnit(nn.Module):
    """``x_{i+1} = F(x_i) + a_i * s(x_i)``, F = BN-ReLU-conv3x3-BN-ReLU-conv3x3, s identity or 1x1 projection."""

    def __init__(self, c_in: int, c_out: int, stride: int, learned: bool):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.proj = nn.Conv2d(c_in, c_out, 1, stride, bias=False) if (stride != 1 or c_in != c_out) else None
        self.scale = ShortcutScale(learned)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = torch.relu(self.bn1(x))
        shortcut = x if self.proj is None else self.proj(act)       # (B, c_out, H/stride, W/stride)
        f = self.conv2(torch.relu(self.bn2(self.conv1(act))))      # F(x_i, W_i)
        return f + self.scale(shortcut)


class AuxHead(nn.Module):
    """Auxiliary classifier: [BN-ReLU] -> 1x1 conv -> BN-ReLU -> global average pool -> linear."""

    def __init__(self, channels: int, num_classes: int, preact: bool):
        super().__init__()
        self.pre = nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU()) if preact else nn.Identity()
        self.conv = nn.Conv2d(channels, channels, 1, bias=False)
        self.bn = nn.BatchNorm2d(channels)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.conv(self.pre(x))))
        return self.fc(x.mean(dim=(2, 3)))


def stem(in_chans: int, channels: int) -> nn.Sequential:
    """7x7/2 conv-BN-ReLU and a 3x3/2 max pool: 108x108 -> 27x27."""
    return nn.Sequential(nn.Conv2d(in_chans, channels, 7, 2, 3, bias=False), nn.BatchNorm2d(channels), nn.ReLU(),
                         nn.MaxPool2d(3, 2, 1))


class StagedNet(nn.Module):
    """Stem, ``stages`` built by ``make_stage(i, c_in, c_out, n)``, the auxiliary head after stage
    ``AUX_AFTER_STAGE``, ``final`` (BN-ReLU for pre-activation nets), global average pool, classifier."""

    input_size = 108  # the paper's zero-padded 108x108 characters

    def __init__(self, make_stage, num_classes: int, in_chans: int, width: float,
                 stages: tuple[tuple[int, int], ...], preact: bool):
        super().__init__()
        if width <= 0:
            raise ValueError(f"width must be > 0, got {width}")
        c = scaled(stages[0][1], width)
        self.stem = stem(in_chans, c)
        self.stages = nn.ModuleList()
        for i, (n, channels) in enumerate(stages):
            self.stages.append(make_stage(i, c, scaled(channels, width), n))
            c = scaled(channels, width)
        self.aux = AuxHead(scaled(stages[AUX_AFTER_STAGE][1], width), num_classes, preact)
        self.final = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU()) if preact else nn.Identity()
        self.fc = nn.Linear(c, num_classes)

    def forward_with_aux(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(main logits, auxiliary logits)``; the auxiliary head runs only in training mode."""
        aux = None
        x = self.stem(x)                       # (B, 64w, 27, 27) for 108x108 input
        for i, stage in enumerate(self.stages):
            x = stage(x)                       # 64w @ 27 -> 128w @ 14 -> 256w @ 7 -> 512w @ 4 pixels
            if i == AUX_AFTER_STAGE and self.training:
                aux = self.aux(x)              # (B, classes)
        return self.fc(self.final(x).mean(dim=(2, 3))), aux  # global average pool -> (B, 512w) -> (B, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_aux(x)[0]


class ResNetHCCR(StagedNet):
    """Stages of pre-activation units with scaled shortcuts; stages 2-4 start with a stride-2 unit."""

    def __init__(self, num_classes: int = 3755, in_chans: int = 1, learned_scalars: bool = True,
                 width: float = 1.0, stages: tuple[tuple[int, int], ...] = STAGES):
        def make_stage(i: int, c_in: int, c_out: int, n: int) -> nn.Sequential:
            return nn.Sequential(*[PreActUnit(c_in if j == 0 else c_out, c_out, 2 if (i > 0 and j == 0) else 1,
                                              learned_scalars) for j in range(n)])
        super().__init__(make_stage, num_classes, in_chans, width, stages, preact=True)


def shortcut_scalars(model: nn.Module) -> torch.Tensor | None:
    """The units' ``a_i`` in order, as one differentiable vector; None for a model without them."""
    scales = [m.a for m in model.modules() if isinstance(m, ShortcutScale)]
    return torch.stack(scales) if scales else None


def prod_a(model: nn.Module) -> torch.Tensor | None:
    """``prod_i a_i`` (differentiable), the shortcut path's gain in eq. 6; None without scalars."""
    a = shortcut_scalars(model)
    return None if a is None else a.prod()


@register_model("000")
def resnet_hccr(num_classes: int = 10, in_chans: int = 1, width: float = 1.0) -> nn.Module:
    """The improved network: 18 pre-activation units with learned shortcut scalars a_i and an auxiliary head."""
    return ResNetHCCR(num_classes, in_chans, learned_scalars=True, width=width)


@register_model("000")
def resnet_hccr_plain(num_classes: int = 10, in_chans: int = 1, width: float = 1.0) -> nn.Module:
    """Table 1's standard ResNet: the same network with every a_i fixed at 1 (identity shortcuts)."""
    return ResNetHCCR(num_classes, in_chans, learned_scalars=False, width=width)
