"""Paper 003: the "improved LeNet-5", a sigmoid CNN with no C5 layer.

28x28 -> C1 ``c1``@5x5 (24x24) -> S2 2x2 mean (12x12) -> C3 ``c3``@5x5 (8x8) -> S4 2x2 mean (4x4)
-> fully connected ``c3*16`` -> 10, sigmoid after every convolution and on the output.

The paper follows the MATLAB DeepLearnToolbox CNN (``cnnsetup.m``/``cnnff.m``), and so does this
module wherever the paper is silent:

- C3 connects every C1 map to every C3 map (the toolbox has no LeNet-5 connection table);
- S2/S4 are plain 2x2 means with no weight, bias or activation (the paper's eq. 3 writes a bias
  and an activation into the subsampling layer; the toolbox has neither: ``subsampling`` makes
  that reading a parameter, ``"toolbox"`` or ``"paper"``);
- kernels and output weights are uniform in +-sqrt(6 / (fan_in + fan_out)), biases zero, where a
  conv layer's fans count kernel area times input (resp. output) maps.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from .registry import register_model

SUBSAMPLING = ("toolbox", "paper")


class Subsample(nn.Module):
    """2x2 mean; with ``trainable`` the paper's eq. 3: sigmoid(mean + bias), one bias per map."""

    def __init__(self, maps: int, trainable: bool):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(maps)) if trainable else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.avg_pool2d(x, 2)
        return x if self.bias is None else torch.sigmoid(x + self.bias.view(1, -1, 1, 1))


class LeNetVariant(nn.Module):
    def __init__(self, c1: int = 6, c3: int = 12, num_classes: int = 10, in_chans: int = 1,
                 subsampling: str = "toolbox"):
        super().__init__()
        if c1 < 1 or c3 < 1:
            raise ValueError(f"c1 and c3 must be >= 1 feature maps, got c1={c1}, c3={c3}")
        if subsampling not in SUBSAMPLING:
            raise ValueError(f"unknown subsampling {subsampling!r}; choose one of {', '.join(SUBSAMPLING)}")
        trainable = subsampling == "paper"
        self.c1 = nn.Conv2d(in_chans, c1, 5)   # (B, c1, 24, 24)
        self.s2 = Subsample(c1, trainable)     # (B, c1, 12, 12)
        self.c3 = nn.Conv2d(c1, c3, 5)         # (B, c3, 8, 8)
        self.s4 = Subsample(c3, trainable)     # (B, c3, 4, 4)
        self.fc = nn.Linear(c3 * 16, num_classes)
        toolbox_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.s2(torch.sigmoid(self.c1(x)))
        x = self.s4(torch.sigmoid(self.c3(x)))
        return torch.sigmoid(self.fc(x.flatten(1)))  # (B, classes), each in (0, 1)


class GroupedLinear(nn.Module):
    """``groups`` independent linear layers: input ``(G, B, in)`` -> ``(G, B, out)``, one batched matmul."""

    def __init__(self, groups: int, in_features: int, out_features: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(groups, out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(groups, out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight.transpose(1, 2))


class GroupedLeNetVariant(nn.Module):
    """Several :class:`LeNetVariant` replicas computed as one network, to train many seeds at once.

    Replica ``g`` reads channel ``g`` of the input ``(B, G, 28, 28)`` and writes ``out[g]`` of the output
    ``(G, B, classes)``: grouped convolutions (``groups=G``) and a batched output layer keep the replicas
    apart, so no weight is shared and the gradient of a sum of per-replica losses is each replica's own.
    On one CPU core five 6-12 networks train at 1.15-1.46x the images/s of one (small convolutions leave the
    vector units idle; ``bench/bench_003.py``). The numbers equal separate training up to float rounding
    only: the grouped kernels sum in another order.
    """

    def __init__(self, replicas: list[LeNetVariant]):
        super().__init__()
        if not replicas:
            raise ValueError("a grouped network needs at least one replica")
        first = replicas[0]
        c1, c3, chans = first.c1.out_channels, first.c3.out_channels, first.c1.in_channels
        self.groups = g = len(replicas)
        trainable = first.s2.bias is not None
        self.c1 = nn.Conv2d(g * chans, g * c1, 5, groups=g)
        self.s2 = Subsample(g * c1, trainable)
        self.c3 = nn.Conv2d(g * c1, g * c3, 5, groups=g)
        self.s4 = Subsample(g * c3, trainable)
        self.fc = GroupedLinear(g, c3 * 16, first.fc.out_features)
        with torch.no_grad():
            for name, p in self.named_parameters():  # replica tensors stacked: conv/bias along dim 0, fc as (G, ...)
                parts = [r.get_parameter(name) for r in replicas]
                p.copy_(torch.stack(parts) if name.startswith("fc.") else torch.cat(parts))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.s2(torch.sigmoid(self.c1(x)))
        x = self.s4(torch.sigmoid(self.c3(x)))
        b = x.shape[0]
        x = x.reshape(b, self.groups, -1).transpose(0, 1)  # (G, B, c3*16), each replica's maps in its flatten order
        return torch.sigmoid(self.fc(x))

    def replica(self, g: int) -> LeNetVariant:
        """A standalone copy of replica ``g`` (its weights sliced out)."""
        c1, c3 = self.c1.out_channels // self.groups, self.c3.out_channels // self.groups
        net = LeNetVariant(c1, c3, self.fc.weight.shape[1], self.c1.in_channels // self.groups,
                           "paper" if self.s2.bias is not None else "toolbox")
        with torch.no_grad():
            for name, p in net.named_parameters():
                whole = self.get_parameter(name)
                p.copy_(whole[g] if name.startswith("fc.") else whole.view(self.groups, -1, *whole.shape[1:])[g])
        return net


# a grouped network's forward/backward pass holds about this many 24x24 C1 maps (replicas x c1 x images, ~3.5 MB):
# beyond it the activations outgrow the CPU caches (5 x 6 maps x 50 images; 10-16 nets pass 30 images at a time)
GROUP_C1_MAPS = 1500


class Replicas:
    """Several seeds' networks as one: a :class:`GroupedLeNetVariant` for several, the plain network for one.

    Inputs are ``(B, G, 28, 28)`` (replica ``g``'s images in channel ``g``), outputs ``(G, B, classes)``.
    One replica runs the plain :class:`LeNetVariant`, so a lone run computes exactly what it always did.
    ``chunk`` is how many images per replica a grouped training pass takes (:data:`GROUP_C1_MAPS`), ``test_batch``
    how many a scoring pass takes; ``smoothed`` is the toolbox's running training MSE per replica, kept by 003's
    update.
    """

    def __init__(self, nets: list[LeNetVariant]):
        self.groups = len(nets)
        self.num_params = sum(p.numel() for p in nets[0].parameters())  # of one network
        self.net: nn.Module = nets[0] if self.groups == 1 else GroupedLeNetVariant(nets)
        self.chunk = max(1, GROUP_C1_MAPS // (self.groups * nets[0].c1.out_channels))
        # scoring: a group's activations for 1,000 images outgrow the CPU caches (batches of 50 are ~2.5x faster
        # there), while a lone network keeps its batch of 1,000
        self.test_batch = 1000 if self.groups == 1 else 50
        self.smoothed: torch.Tensor | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        return out.unsqueeze(0) if self.groups == 1 else out


def toolbox_init(model: nn.Module) -> nn.Module:
    """DeepLearnToolbox's ``cnnsetup``: uniform +-sqrt(6 / (fan_in + fan_out)) weights, zero biases."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            area = m.kernel_size[0] * m.kernel_size[1]
            bound = math.sqrt(6 / (area * (m.in_channels + m.out_channels)))
        elif isinstance(m, nn.Linear):
            bound = math.sqrt(6 / (m.in_features + m.out_features))
        else:
            continue
        nn.init.uniform_(m.weight, -bound, bound)
        nn.init.zeros_(m.bias)
    return model


@register_model("003")
def lenet_variant(num_classes: int = 10, in_chans: int = 1, c1: int = 6, c3: int = 12,
                  subsampling: str = "toolbox") -> nn.Module:
    """The 003 paper's sigmoid CNN; 3,898 parameters for c1=6, c3=12 with toolbox subsampling."""
    return LeNetVariant(c1, c3, num_classes, in_chans, subsampling)


def parameter_readings(c1: int = 6, c3: int = 12, num_classes: int = 10, target: int | None = None):
    """Parameter counts of the layer list under every way of reading which layers carry biases or weights.

    Parts: C1 kernels (always), C1 biases, S2 coefficient and bias per map (LeNet-5 has both, the
    toolbox neither), C3 kernels (always) with no bias, one per map or one per kernel, S4 likewise,
    output weights (always) and biases. Returns a pandas DataFrame, one row per combination, with the
    named readings flagged; with ``target``, only the rows that total it.
    """
    import itertools

    import pandas as pd
    parts = {"C1 bias": [0, c1], "S2 coefficient": [0, c1], "S2 bias": [0, c1], "C3 bias": [0, c3, c1 * c3],
             "S4 coefficient": [0, c3], "S4 bias": [0, c3], "output bias": [0, num_classes]}
    fixed = c1 * 25 + c1 * c3 * 25 + c3 * 16 * num_classes  # kernels and output weights
    named = {(c1, 0, 0, c3, 0, 0, num_classes): "DeepLearnToolbox (this model)",
             (c1, 0, c1, c3, 0, c3, num_classes): "paper eq. 3: one bias per subsampling map",
             (c1, c1, c1, c3, c3, c3, num_classes): "LeNet-5 subsampling: coefficient + bias per map"}
    rows = [{**dict(zip(parts, combo)), "total": fixed + sum(combo), "reading": named.get(combo, "")}
            for combo in itertools.product(*parts.values())]
    table = pd.DataFrame(rows)
    return table[table["total"] == target] if target is not None else table
