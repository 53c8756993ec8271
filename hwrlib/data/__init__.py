"""Datasets of the study: MNIST (IDX), CASIA-HWDB (GNT: ``gnt``, ``hwdb``) and its synthetic stand-in (``synth_hwdb``)."""
from .idx import DataError, IDXError, MissingDataError, read_idx, write_idx
from .mnist import MEAN, STD, GroupLoader, TensorLoader, load_mnist, prepare_mnist, subset

__all__ = ["DataError", "IDXError", "MissingDataError", "read_idx", "write_idx",
           "MEAN", "STD", "GroupLoader", "TensorLoader", "load_mnist", "prepare_mnist", "subset"]
