"""Experiment 001: the blog article's Keras CNN (and the residual network its text describes) on MNIST."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from .p002_pytorch_cnn import SMOKE, MnistCNNConfig
from .registry import register_experiment


@register_experiment
@dataclass(frozen=True)
class P001Config(MnistCNNConfig):
    """001: the blog's Keras code; RMSprop, 5 epochs, batch 64, inputs in [0, 1]."""
    paper: ClassVar[str] = "001"
    model: str = "blog_cnn"
    compare_models: list = field(default_factory=lambda: ["blog_resnet", "blog_deep_plain"])
    batch_size: int = 64
    optimizer: str = "rmsprop"
    input_norm: ClassVar[tuple[float, float]] = (0.0, 1.0)  # x / 255, no Normalize
    PROFILES: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {"num_epochs": 5}, "quick": {"num_epochs": 1}, "smoke": SMOKE}
