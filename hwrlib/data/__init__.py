"""Datasets of the study: MNIST (IDX), CASIA-HWDB (GNT: ``gnt``, ``hwdb``) and its synthetic stand-in (``synth_hwdb``)."""
from .idx import IDXError, read_idx, write_idx
from .mnist import MEAN, STD, TensorLoader, load_mnist, prepare_mnist, subset

__all__ = ["IDXError", "read_idx", "write_idx", "MEAN", "STD", "TensorLoader", "load_mnist", "prepare_mnist", "subset"]
