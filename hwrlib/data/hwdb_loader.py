"""Batches of 108x108 HWDB characters from the memory-mapped cache, augmented on the device.

Assembly follows the paper (000, section 2.3.1): no cropping; each bitmap is centred on a
``size`` x ``size`` canvas of background ("zero padding"), and only bitmaps larger than the
canvas are shrunk to fit (aspect kept; ``HWDBLoader.num_downscaled`` says how many).
Pixels become ``x = (255 - pixel) / 255``: background 0, ink up to 1, so the zero padding
really is background. Batches are gathered from the cache with vectorized numpy into a uint8
buffer (pinned on CUDA), sent to the device as uint8 and augmented there as whole batches.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

if TYPE_CHECKING:
    from .hwdb_cache import HWDBCache


@dataclass
class Augment:
    """The paper's training-set augmentation (section 2.2), applied per batch on the device.

    Attributes:
        flip: mirror each sample left-right with probability 1/2 (the paper's "random flip",
            1:2 expansion). A mirrored character is usually not a valid character any more,
            or a different one, so report results without it too.
        scale: (low, high) zoom factor range, drawn log-uniformly per sample (so shrinking and
            enlarging are equally likely); the paper uses 0.5-2x. The zoom is about the canvas
            centre; enlarged characters may leave the canvas (the paper says nothing about it).
        pca_noise_p: fraction of samples that get PCA noise (paper: 30%).
        pca_noise_std: (low, high) range of the noise std, drawn uniformly per sample (paper:
            0.01-0.1). Our reading for a grey image: its principal components are the singular
            vectors of the image (rows as observations), and each singular value ``s_k`` becomes
            ``s_k * (1 + std * N(0, 1))``, AlexNet's PCA lighting noise carried over to one channel.
    """
    flip: bool = False
    scale: tuple[float, float] | None = None
    pca_noise_p: float = 0.0
    pca_noise_std: tuple[float, float] = (0.01, 0.1)

    @classmethod
    def paper(cls) -> Augment:
        """Flip, scale 0.5-2x, PCA noise on 30% of samples with std 0.01-0.1."""
        return cls(flip=True, scale=(0.5, 2.0), pca_noise_p=0.3, pca_noise_std=(0.01, 0.1))

    @classmethod
    def none(cls) -> Augment:
        return cls()

    @property
    def enabled(self) -> bool:
        return self.flip or self.scale is not None or self.pca_noise_p > 0

    def __post_init__(self) -> None:
        if self.scale is not None and not 0 < self.scale[0] <= self.scale[1]:
            raise ValueError(f"Augment.scale must be (low, high) with 0 < low <= high, got {self.scale}")
        if not 0 <= self.pca_noise_p <= 1:
            raise ValueError(f"Augment.pca_noise_p must be in [0, 1], got {self.pca_noise_p}")
        if not 0 <= self.pca_noise_std[0] <= self.pca_noise_std[1]:
            raise ValueError(f"Augment.pca_noise_std must be (low, high) with 0 <= low <= high, "
                             f"got {self.pca_noise_std}")


def _uniform(n: int, low: float, high: float, g: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.rand(n, generator=g, device=device) * (high - low) + low


def augment_batch(x: torch.Tensor, aug: Augment, g: torch.Generator) -> torch.Tensor:
    """Augment a batch ``x`` (B, 1, S, S) in [0, 1] (background 0) with random draws from ``g``."""
    b, dev = x.shape[0], x.device
    sign = torch.ones(b, device=dev)
    if aug.flip:
        sign = torch.where(torch.rand(b, generator=g, device=dev) < 0.5, -1.0, 1.0)
    if aug.scale is not None:
        lo, hi = np.log(aug.scale[0]), np.log(aug.scale[1])
        zoom = _uniform(b, lo, hi, g, dev).exp()
        theta = torch.zeros(b, 2, 3, device=dev)
        theta[:, 0, 0], theta[:, 1, 1] = sign / zoom, 1 / zoom  # output->input map: 1/zoom enlarges
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    elif aug.flip:
        x = torch.where(sign.view(b, 1, 1, 1) < 0, x.flip(-1), x)
    if aug.pca_noise_p > 0:
        x = pca_noise(x, aug, g)
    return x


def pca_noise(x: torch.Tensor, aug: Augment, g: torch.Generator) -> torch.Tensor:
    """Perturb the singular values of a random ``pca_noise_p`` share of the images (see ``Augment``)."""
    b, dev = x.shape[0], x.device
    chosen = torch.rand(b, generator=g, device=dev) < aug.pca_noise_p
    std = _uniform(b, *aug.pca_noise_std, g, dev)
    noise = torch.randn(b, x.shape[-1], generator=g, device=dev)  # drawn for all: same stream whatever is chosen
    idx = chosen.nonzero().squeeze(1)
    if len(idx) == 0:
        return x
    u, s, vh = torch.linalg.svd(x[idx, 0].float())
    s = s * (1 + std[idx, None] * noise[idx, :s.shape[-1]])
    x = x.clone()
    x[idx, 0] = ((u * s.unsqueeze(-2)) @ vh).clamp_(0, 1).to(x.dtype)
    return x


def _fit(bitmap: np.ndarray, size: int) -> np.ndarray:
    """Shrink a bitmap larger than ``size`` to fit in size x size, aspect kept (area filter: no aliasing)."""
    h, w = bitmap.shape
    f = size / max(h, w)
    new = (max(1, min(size, round(w * f))), max(1, min(size, round(h * f))))
    return np.asarray(Image.fromarray(np.ascontiguousarray(bitmap)).resize(new, Image.Resampling.BOX))


class HWDBLoader:
    """Batches ``(x (B, 1, size, size) float32, y (B,) int64)`` on ``device`` from an ``HWDBCache``.

    Same interface as ``TensorLoader``: ``len`` (batches per epoch), ``set_epoch``, iteration.
    The order (when ``shuffle``) and the augmentation draws come from generators seeded by
    ``(seed, epoch)``, so an epoch replays exactly on the same device.

    Args:
        cache: the split to read.
        indices: the samples of this loader (e.g. from ``train_val_split``); None for all.
        batch_size: samples per batch (the last batch may be smaller).
        shuffle: new order every epoch.
        seed: seeds order and augmentation.
        device: where batches are delivered and augmented.
        size: canvas side in pixels (paper: 108).
        augment: ``Augment`` settings; None or ``Augment.none()`` for plain batches.
        channels_last: deliver x in channels_last memory format.
    """

    def __init__(self, cache: HWDBCache, indices: np.ndarray | None, batch_size: int, shuffle: bool = False,
                 seed: int = 0, device: str | torch.device = "cpu", size: int = 108,
                 augment: Augment | None = None, channels_last: bool = False) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.cache, self.batch_size, self.shuffle, self.seed = cache, batch_size, shuffle, seed
        self.device, self.size, self.channels_last = torch.device(device), size, channels_last
        self.augment = augment if augment is not None and augment.enabled else None
        self.indices = np.arange(len(cache)) if indices is None else np.asarray(indices, np.int64)
        if len(self.indices) and (self.indices.min() < 0 or self.indices.max() >= len(cache)):
            raise IndexError(f"indices must lie in [0, {len(cache)}) for {cache!r}")
        self.labels = torch.from_numpy(cache.labels[self.indices]).to(self.device)
        self.epoch = 0
        self._pin = self.device.type == "cuda"

    @property
    def num_downscaled(self) -> int:
        """How many of this loader's bitmaps are larger than the canvas and get shrunk."""
        return int((self.cache.shapes[self.indices].max(axis=1) > self.size).sum())

    def __len__(self) -> int:
        return -(-len(self.indices) // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def assemble(self, idx: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Canvases (len(idx), size, size) uint8 of ink = 255 - pixel, each bitmap centred (see module doc)."""
        c, s = self.cache, self.size
        out = np.zeros((len(idx), s, s), np.uint8) if out is None else out
        out[:] = 0
        hw = c.shapes[idx].astype(np.int64)
        big = (hw > s).any(axis=1)
        fits = np.flatnonzero(~big)
        if len(fits):
            _scatter(c.pixels, c.offsets[idx[fits]], hw[fits], out.reshape(len(idx), -1), fits, s)
        for j in np.flatnonzero(big):  # rare in HWDB: 108 is about its largest sample
            bm = 255 - _fit(c.bitmap(int(idx[j])), s)
            top, left = (s - bm.shape[0]) // 2, (s - bm.shape[1]) // 2
            out[j, top:top + bm.shape[0], left:left + bm.shape[1]] = bm
        return out

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n, dev = len(self.indices), self.device
        order = np.arange(n)
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(n)
        g = torch.Generator(device=dev).manual_seed(self.seed * 100_003 + self.epoch)
        for i in range(0, n, self.batch_size):
            pos = order[i:i + self.batch_size]
            buf = torch.from_numpy(self.assemble(self.indices[pos]))
            if self._pin:
                buf = buf.pin_memory()
            x = buf.to(dev, non_blocking=True).unsqueeze(1).float().div_(255)  # (B, 1, S, S), ink 1
            if self.augment is not None:
                x = augment_batch(x, self.augment, g)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, self.labels[torch.from_numpy(pos).to(dev)]


def _scatter(pixels: np.ndarray, starts: np.ndarray, hw: np.ndarray, flat: np.ndarray, rows: np.ndarray,
             s: int) -> None:
    """Write ``255 - bitmap`` of each sample, centred, into ``flat[rows]`` (canvases as rows of s*s), vectorized."""
    sizes = hw[:, 0] * hw[:, 1]
    first = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    total = int(sizes.sum())
    local = np.arange(total, dtype=np.int64) - np.repeat(first, sizes)  # pixel index within its bitmap
    w = np.repeat(hw[:, 1], sizes)
    r = local // w
    corner = (s - hw[:, 0]) // 2 * s + (s - hw[:, 1]) // 2  # top-left of the centred bitmap
    dst = np.repeat(rows * s * s + corner, sizes) + r * s + (local - r * w)
    src = np.repeat(starts, sizes) + local
    flat.reshape(-1)[dst] = 255 - pixels[src]
