"""Experiment configs and runners, one per paper, found by the paper's key."""
from pathlib import Path

from .alexnet_ir import P004Config
from .lenet_variant import P003Config
from .mnist_cnn import P001Config, P002Config, Run, runs_frame, train_run
from .resnet_hccr import P000Config

CONFIGS = {c.paper: c for c in (P000Config, P001Config, P002Config, P003Config, P004Config)}


def config_for_notebook(path) -> type:
    """The config class of a notebook, from its name's paper prefix (``002_pytorch_cnn_mnist.ipynb`` -> 002)."""
    key = Path(path).name.split("_")[0]
    if key not in CONFIGS:
        raise ValueError(f"no experiment config for notebook {path}; known paper prefixes: {', '.join(sorted(CONFIGS))}")
    return CONFIGS[key]


__all__ = ["P000Config", "P001Config", "P002Config", "P003Config", "P004Config", "Run", "runs_frame", "train_run",
           "CONFIGS", "config_for_notebook"]
