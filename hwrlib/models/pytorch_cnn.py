"""Paper 002: the deep CNN for MNIST, layer by layer as its section 2.1 gives it.

c1 Conv(1->64, 5x5) 24x24 -> s2 MaxPool 2x2 12x12 -> c3 Conv(64->64, 3x3) 10x10
-> c4 Conv(64->20, 3x3, pad 1) 10x10 -> flatten 2000 -> FC -> 10.
The paper names no activation; its section 1.2.4 praises ReLU, so ReLU after each
conv is the default and ``activation`` makes the choice visible.

``head`` is the reading of the classifier: §2.1 draws one FC layer 2000 -> 10 (``linear``), while
§2.2 step 5 lists 「全连接层、和输出层」, a fully connected layer *and* an output layer, as the PyTorch
MNIST tutorial the section follows builds them: Linear(2000, 500), ReLU, Linear(500, 10) (``hidden500``).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .registry import register_model

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
HEADS = ("linear", "hidden500")


def make_activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


class PyTorchCNN(nn.Module):
    def __init__(self, num_classes: int = 10, in_chans: int = 1, activation: str = "relu", head: str = "linear"):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, 64, 5), make_activation(activation),  # c1: (B, 64, 24, 24)
            nn.MaxPool2d(2),                                          # s2: (B, 64, 12, 12)
            nn.Conv2d(64, 64, 3), make_activation(activation),        # c3: (B, 64, 10, 10)
            nn.Conv2d(64, 20, 3, padding=1), make_activation(activation),  # c4: (B, 20, 10, 10)
        )
        if head not in HEADS:
            raise ValueError(f"unknown head {head!r}; choose one of {', '.join(HEADS)}")
        if head == "linear":
            self.fc = nn.Linear(20 * 10 * 10, num_classes)  # 2000 -> classes
        else:  # the tutorial's fc1, ReLU, fc2
            self.fc = nn.Sequential(nn.Linear(20 * 10 * 10, 500), nn.ReLU(), nn.Linear(500, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).flatten(1))


@register_model("002")
def pytorch_cnn(num_classes: int = 10, in_chans: int = 1, activation: str = "relu", head: str = "linear") -> nn.Module:
    """The 002 paper's CNN (70,142 parameters for 10 classes with the linear head, 1,041,142 with hidden500)."""
    return PyTorchCNN(num_classes, in_chans, activation, head)
