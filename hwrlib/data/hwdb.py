"""CASIA-HWDB1.1 for paper 000: the cache, the 1:10 validation split, the 108x108 loader, and finding the data.

The real data (``HWDB1.1trn_gnt`` / ``HWDB1.1tst_gnt``, GNT files from CASIA, registration needed)
is looked for in ``$HWR_HWDB_DIR`` (default ``<data_dir>/CASIA-HWDB``) and converted once into
``<data_dir>/hwdb-cache/HWDB1.1`` (``make hwdb-cache``). The synthetic stand-in ``synth-hwdb``
goes through the same GNT files, cache and loader (``make synth-hwdb``).

Usage::

    train, test = prepared("synth")                  # or prepared("hwdb")
    tr_idx, va_idx = train_val_split(train, 0.1, seed=0)
    loader = HWDBLoader(train, tr_idx, 128, shuffle=True, seed=0, augment=Augment.paper())
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import numpy as np

from .. import paths
from .hwdb_cache import HWDB11, HWDBCache, build_cache, count_differences, gnt_files
from .hwdb_loader import Augment, HWDBLoader, augment_batch

__all__ = ["HWDB11", "HWDBCache", "build_cache", "count_differences", "gnt_files", "Augment", "HWDBLoader",
           "augment_batch", "train_val_split", "hwdb_dir", "hwdb_cache_dir", "prepared", "DATASETS"]

DATASETS = ("synth", "hwdb")
SPLIT_DIRS = {"train": "HWDB1.1trn_gnt", "test": "HWDB1.1tst_gnt"}
CASIA_URL = "https://nlpr.ia.ac.cn/databases/handwriting/Download.html"


def train_val_split(cache: HWDBCache, val_fraction: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Hold out a random ``val_fraction`` of the samples for validation (the paper's "1:10" split).

    The paper splits its training data 1:10 into training and validation without saying how;
    we read it as 10% held out, drawn by sample (not by writer or class), like the paper's
    single pool. Returns sorted (train indices, validation indices), int64, disjoint, covering all.
    """
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    perm = np.random.default_rng(seed).permutation(len(cache))
    n_val = int(round(len(cache) * val_fraction))
    return np.sort(perm[n_val:]).astype(np.int64), np.sort(perm[:n_val]).astype(np.int64)


def hwdb_dir(override: str | os.PathLike | None = None, data_dir: str | os.PathLike | None = None) -> Path:
    """Folder holding ``HWDB1.1trn_gnt/`` and ``HWDB1.1tst_gnt/``: override > ``$HWR_HWDB_DIR`` > data/CASIA-HWDB."""
    return Path(override or os.environ.get("HWR_HWDB_DIR") or paths.data_dir(data_dir) / "CASIA-HWDB")


def hwdb_cache_dir(data_dir: str | os.PathLike | None = None) -> Path:
    return paths.data_dir(data_dir) / "hwdb-cache" / "HWDB1.1"


def _missing_hwdb(root: Path) -> FileNotFoundError:
    return FileNotFoundError(
        f"CASIA-HWDB1.1 not found: expected the GNT folders {root / SPLIT_DIRS['train']} and "
        f"{root / SPLIT_DIRS['test']}. Get HWDB1.1trn_gnt and HWDB1.1tst_gnt from {CASIA_URL} (registration and "
        "licence agreement needed), unpack each into that folder, or point HWR_HWDB_DIR (or hwdb_dir) at the "
        "folder holding them; then run `make hwdb-cache`. Without the data, use dataset='synth' (`make synth-hwdb`).")


def prepare_hwdb(hwdb: str | os.PathLike | None = None, data_dir: str | os.PathLike | None = None,
                 skip_bad: bool = False, progress: bool = True) -> Path:
    """Build (or reuse) the HWDB1.1 cache from the GNT folders; return the cache folder."""
    root = hwdb_dir(hwdb, data_dir)
    if not all((root / d).is_dir() for d in SPLIT_DIRS.values()):
        raise _missing_hwdb(root)
    return build_cache({s: root / d for s, d in SPLIT_DIRS.items()}, hwdb_cache_dir(data_dir), skip_bad, progress,
                       expected=HWDB11, meta={"dataset": "hwdb", "source": "CASIA-HWDB1.1", "gnt_dir": str(root)})


def prepared(dataset: str, data_dir: str | os.PathLike | None = None, hwdb: str | os.PathLike | None = None,
             build: bool = True, progress: bool = True, **synth: Any) -> tuple[HWDBCache, HWDBCache]:
    """The (train, test) caches of ``dataset``: ``"synth"`` (the stand-in) or ``"hwdb"`` (CASIA-HWDB1.1).

    Args:
        dataset: "synth" or "hwdb".
        data_dir: data folder (default ``$HWR_DATA_DIR`` or ``<repo>/data``).
        hwdb: folder with the HWDB1.1 GNT folders (default ``$HWR_HWDB_DIR``); "hwdb" only.
        build: build a missing cache from local files (the stroke data for "synth", the GNT
            files for "hwdb"); nothing is downloaded. With False a missing cache is an error.
        progress: progress bars and a summary line while building.
        **synth: ``SynthParams`` fields for "synth" (num_classes, num_writers, seed, ...).

    Raises:
        FileNotFoundError: the data is missing; the message says which make target fixes it.
    """
    if dataset == "synth":
        from .synth_hwdb import SynthParams, prepare_synth  # local import: the stand-in imports this module
        cache = prepare_synth(SynthParams(**synth), data_dir, build=build, progress=progress)
    elif dataset == "hwdb":
        if synth:
            raise TypeError(f"synthetic-set parameters {sorted(synth)} make no sense with dataset='hwdb'")
        cache = hwdb_cache_dir(data_dir)
        if not (cache / "cache.json").exists():
            if not build:
                raise FileNotFoundError(f"no HWDB1.1 cache in {cache}; run `make hwdb-cache`")
            cache = prepare_hwdb(hwdb, data_dir, progress=progress)
    else:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {DATASETS}")
    return HWDBCache(cache, "train"), HWDBCache(cache, "test")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Convert CASIA-HWDB1.1 GNT files into hwrlib's cache (once).")
    p.add_argument("--hwdb-dir", default=None, help="folder with HWDB1.1trn_gnt/ and HWDB1.1tst_gnt/ "
                                                    "(default $HWR_HWDB_DIR or data/CASIA-HWDB)")
    p.add_argument("--data-dir", default=None, help="data folder (default $HWR_DATA_DIR or data/)")
    p.add_argument("--skip-bad", action="store_true", help="skip and count malformed records instead of stopping")
    a = p.parse_args(argv)
    try:
        out = prepare_hwdb(a.hwdb_dir, a.data_dir, a.skip_bad)
    except FileNotFoundError as e:
        raise SystemExit(str(e)) from None
    print(f"HWDB1.1 cache in {out}")


if __name__ == "__main__":
    main()
