"""Speed of paper 000's data path on this machine: GNT parsing, cache conversion, and the 108x108 loader.

What is measured, on generated data (random pixels, HWDB-like sizes: each side 40-130 px, about 7 KB
per sample, so a file is a few MB like one HWDB writer's):

* GNT parse MB/s: ``iter_gnt`` over a multi-MB GNT file, every bitmap touched (its sum), best of repeats;
* cache build MB/s: ``build_cache`` of several such files from scratch (parse + partial + assembly);
* loader images/s at 108x108, batch 128, shuffled: ``HWDBLoader.assemble`` alone (vectorized gather
  from the memory-mapped cache + centring + the rare downscale), then whole batches (uint8 -> float on
  the device) without augmentation and with the paper's augmentation (flip, scale 0.5-2x via
  grid_sample, PCA noise on 30% via batched SVD).

Why: HWDB1.1 is 2.3 GB of GNT and 1.1 M samples; parsing must be I/O-class and the loader must keep
up with training (on a GPU, a ResNet-38 step takes a few ms per 128 images).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from hwrlib.data.gnt import iter_gnt, write_gnt
from hwrlib.data.hwdb import Augment, HWDBCache, HWDBLoader, build_cache
from hwrlib.data.synth_hwdb import level1_chars


def make_gnt(path: Path, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    chars = level1_chars()
    write_gnt(path, ((chars[int(rng.integers(len(chars)))],
                      rng.integers(0, 256, tuple(rng.integers(40, 131, 2)), dtype=np.uint8)) for _ in range(n)))


def best_rate(fn, amount: float, repeats: int) -> float:
    """Best ``amount`` per second over ``repeats`` calls of ``fn``."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return amount / best


def parse_mb_s(path: Path, repeats: int) -> float:
    def parse() -> None:
        total = 0
        for _, bitmap, _ in iter_gnt(path):
            total += int(bitmap.sum(dtype=np.int64))
    return best_rate(parse, path.stat().st_size / 1e6, repeats)


def build_mb_s(files: list[Path], cache: Path) -> float:
    t0 = time.perf_counter()
    build_cache({"train": files[1:], "test": files[:1]}, cache, progress=False, expected=None)
    return sum(f.stat().st_size for f in files) / 1e6 / (time.perf_counter() - t0)


def loader_rates(cache: HWDBCache, images: int, batch: int, repeats: int) -> dict[str, float]:
    idx = np.arange(min(images, len(cache)))
    plain = HWDBLoader(cache, idx, batch, shuffle=True, seed=0)
    paper = HWDBLoader(cache, idx, batch, shuffle=True, seed=0, augment=Augment.paper())
    order = np.random.default_rng(0).permutation(idx)

    def assemble() -> None:
        for i in range(0, len(order), batch):
            plain.assemble(order[i:i + batch])

    def drain(loader: HWDBLoader):
        return lambda: [x.sum() for x, _ in loader]
    return {"assemble (numpy)": best_rate(assemble, len(idx), repeats),
            "batches, no augmentation": best_rate(drain(plain), len(idx), repeats),
            "batches, paper augmentation": best_rate(drain(paper), len(idx), repeats)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=1500, help="samples per generated GNT file (~7 KB each)")
    p.add_argument("--files", type=int, default=4, help="GNT files for the cache build (and the loader)")
    p.add_argument("--images", type=int, default=2560, help="images per loader pass")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's default)")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        files = [Path(tmp) / "gnt" / f"{1001 + i}-c.gnt" for i in range(a.files)]
        for i, f in enumerate(files):
            make_gnt(f, a.samples, i)
        size = files[0].stat().st_size / 1e6
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {a.files} generated GNT files of "
              f"{a.samples} samples ({size:.1f} MB each)")
        print(f"GNT parse:   {parse_mb_s(files[0], a.repeats):8.0f} MB/s (iter_gnt, one {size:.1f} MB file, "
              f"best of {a.repeats})")
        print(f"cache build: {build_mb_s(files, Path(tmp) / 'cache'):8.0f} MB/s ({a.files} files from scratch)")
        cache = HWDBCache(Path(tmp) / "cache", "train")
        rates = loader_rates(cache, a.images, a.batch_size, a.repeats)
        print(f"loader, 108x108, batch {a.batch_size}, {min(a.images, len(cache))} images, cpu, best of {a.repeats}:")
        for name, r in rates.items():
            print(f"  {name:<28} {r:8.0f} images/s")
    print(f"total {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
