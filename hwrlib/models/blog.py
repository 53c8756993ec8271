"""Paper 001, the blog article: its Keras model layer for layer, and the residual
network its text describes but its code does not build.

Keras defaults are mirrored: Glorot-uniform kernels and zero biases.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .registry import register_model


def keras_init(model: nn.Module) -> nn.Module:
    """Glorot-uniform weights and zero biases, as Keras' Conv2D and Dense do by default."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
    return model


class BlogCNN(nn.Module):
    """Conv(32,3x3,relu) -> MaxPool2 -> Conv(64,3x3,relu) -> MaxPool2 -> Flatten -> Dense(64,relu) -> Dense(10)."""

    def __init__(self, num_classes: int = 10, in_chans: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_chans, 32, 3)  # (B, 32, 26, 26)
        self.conv2 = nn.Conv2d(32, 64, 3)        # (B, 64, 11, 11) after the first pool
        self.fc1 = nn.Linear(64 * 5 * 5, 64)
        self.fc2 = nn.Linear(64, num_classes)    # softmax lives in the loss
        keras_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2)  # (B, 32, 13, 13)
        x = nn.functional.max_pool2d(torch.relu(self.conv2(x)), 2)  # (B, 64, 5, 5)
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


class ResidualBlock(nn.Module):
    """y = relu(F(x) + x), F = conv3x3 -> relu -> conv3x3, the article's y = F(x) + x; ``skip=False`` drops the
    ``+ x`` (the same two convolutions as a plain stack: the control that separates depth from the skip)."""

    def __init__(self, channels: int, skip: bool = True):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.skip = skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(torch.relu(self.conv1(x)))
        return torch.relu(out + x if self.skip else out)


class BlogResNet(BlogCNN):
    """The blog model with the "two residual blocks" its text promises, one after each pooling stage."""

    def __init__(self, num_classes: int = 10, in_chans: int = 1, skip: bool = True):
        super().__init__(num_classes, in_chans)
        self.res1 = ResidualBlock(32, skip)  # at (B, 32, 13, 13)
        self.res2 = ResidualBlock(64, skip)  # at (B, 64, 5, 5)
        keras_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.res1(nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2))  # (B, 32, 13, 13)
        x = self.res2(nn.functional.max_pool2d(torch.relu(self.conv2(x)), 2))  # (B, 64, 5, 5)
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


@register_model("001")
def blog_cnn(num_classes: int = 10, in_chans: int = 1) -> nn.Module:
    """The blog's published Keras code (121,930 parameters): no residual connection."""
    return BlogCNN(num_classes, in_chans)


@register_model("001")
def blog_resnet(num_classes: int = 10, in_chans: int = 1) -> nn.Module:
    """The blog's model plus two identity residual blocks, as its text describes."""
    return BlogResNet(num_classes, in_chans)


@register_model("001")
def blog_deep_plain(num_classes: int = 10, in_chans: int = 1) -> nn.Module:
    """``blog_resnet`` without its skip additions: the same four extra convolutions (214,282 parameters), no ``+ x``."""
    return BlogResNet(num_classes, in_chans, skip=False)
