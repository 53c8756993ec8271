"""The converted form of CASIA-HWDB GNT files: one compact, memory-mapped cache per dataset.

Layout of ``cache_dir``::

    cache.json             classes (shared by all splits), per-split counts and sources, metadata;
                           written last: a folder without it is not a cache
    <split>/pixels.u8      every bitmap's pixels, concatenated (row-major, background 255)
    <split>/offsets.npy    int64 (N+1,): bitmap i is pixels[offsets[i]:offsets[i+1]]
    <split>/shapes.npy     uint16 (N, 2): (height, width) of each bitmap
    <split>/labels.npy     int64 (N,): index into the class list
    <split>/writers.npy    int32 (N,): writer id (the number the GNT file's name starts with)
    .parts/<split>/*.npz   one per converted GNT file while a build runs; removed at the end

Bitmaps keep their own size (HWDB's average about 80x80 px): a dense 108x108 copy of HWDB1.1
would be 13 GB, the variable-size one is about 2.3 GB. Conversion is resumable per GNT file:
each file becomes a partial (written atomically), an interrupted build reuses the partials it
finds, and the splits are assembled and ``cache.json`` written only once every file is done.
Memory stays at a small multiple of one GNT file (a few MB), plus 20 bytes per sample.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
from tqdm import tqdm  # plain text bar, as hwrlib.train: renders in terminals and papermill output

from .gnt import GNTError, encode_tag, iter_gnt

# HWDB1.1 as published (Liu et al., ICDAR 2011): GB2312 level-1 classes, samples and writers per split
HWDB11 = {"classes": 3755, "train": 897_758, "test": 223_991, "train_writers": 240, "test_writers": 60}
FORMAT = 1
ARRAYS = ("offsets", "shapes", "labels", "writers")


def gnt_files(spec: list[Path] | Path | str) -> list[Path]:
    """The ``.gnt`` files named by a folder, a file, or a list of both, sorted by name within each folder."""
    items = [spec] if isinstance(spec, (str, os.PathLike)) else list(spec)
    files: list[Path] = []
    for item in map(Path, items):
        if item.is_dir():
            files += sorted(item.glob("*.gnt"), key=lambda p: p.name)
        elif item.is_file():
            files.append(item)
        else:
            raise FileNotFoundError(f"GNT source {item} is neither a folder nor a file")
    if not files:
        raise FileNotFoundError(f"no .gnt files in {[str(i) for i in items]}")
    return files


def writer_id(path: Path, fallback: int) -> int:
    """The writer number a GNT file name starts with (HWDB: ``1001-c.gnt`` -> 1001), else ``fallback``."""
    m = re.match(r"\d+", path.name)
    return int(m.group()) if m else fallback


def _sources(files: list[Path]) -> list[list]:
    return [[str(f.resolve()), f.stat().st_size] for f in files]


def _atomic_save_npz(path: Path, **arrays: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def convert_file(path: Path, part: Path, writer: int, skip_bad: bool) -> tuple[int, int]:
    """Convert one GNT file into the partial ``part`` unless a partial of the same source is there.

    Returns:
        (samples, skipped bad records) of the file.
    """
    size = path.stat().st_size
    if part.exists():
        with np.load(part) as z:
            if int(z["source_size"]) == size and str(z["source"]) == str(path.resolve()):
                return len(z["codes"]), int(z["bad"])
    errors: list[GNTError] = []
    codes, shapes, bitmaps = [], [], []
    for tag, bitmap, _ in iter_gnt(path, skip_bad, errors):
        codes.append(int.from_bytes(encode_tag(tag), "big"))
        shapes.append(bitmap.shape)
        bitmaps.append(bitmap.ravel())
    for e in errors:
        warnings.warn(f"skipped bad GNT record: {e}", stacklevel=2)
    pixels = np.concatenate(bitmaps) if bitmaps else np.zeros(0, np.uint8)
    _atomic_save_npz(part, pixels=pixels, shapes=np.array(shapes, np.uint16).reshape(-1, 2),
                     codes=np.array(codes, np.uint16), writer=np.int32(writer), bad=np.int64(len(errors)),
                     source=np.array(str(path.resolve())), source_size=np.int64(size))
    return len(codes), len(errors)


def _class_codes(parts: list[Path]) -> np.ndarray:
    """The sorted distinct tag codes of all partials: GB code order, so level-1 classes come in table order."""
    def codes(p: Path) -> np.ndarray:
        with np.load(p) as z:
            return np.unique(z["codes"])
    return np.unique(np.concatenate([codes(p) for p in parts] or [np.zeros(0, np.uint16)]))


def _assemble(parts: list[Path], class_codes: np.ndarray, out: Path) -> dict:
    """Concatenate the partials of one split into ``out`` (built in a temp folder, then renamed)."""
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        shapes, codes, writers = [], [], []
        with open(tmp / "pixels.u8", "wb") as f:
            for part in parts:  # one partial in memory at a time
                with np.load(part) as z:
                    f.write(z["pixels"].tobytes())
                    shapes.append(z["shapes"])
                    codes.append(z["codes"])
                    writers.append(np.full(len(z["codes"]), z["writer"], np.int32))
        shape = np.concatenate(shapes).reshape(-1, 2)
        sizes = shape[:, 0].astype(np.int64) * shape[:, 1]
        arrays = {"offsets": np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64), "shapes": shape,
                  "labels": np.searchsorted(class_codes, np.concatenate(codes)).astype(np.int64),
                  "writers": np.concatenate(writers)}
        for name, a in arrays.items():
            np.save(tmp / f"{name}.npy", a)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"count": len(arrays["labels"]), "writers": len(np.unique(arrays["writers"])),
            "pixels_bytes": int(arrays["offsets"][-1])}


def _complete(cache_dir: Path, sources: dict[str, list]) -> bool:
    """True when ``cache_dir`` holds a finished cache built from exactly these sources."""
    meta = cache_dir / "cache.json"
    if not meta.exists():
        return False
    done = json.loads(meta.read_text())
    return {s: v["sources"] for s, v in done["splits"].items()} == sources


def build_cache(gnt_dirs: dict[str, list[Path] | Path], cache_dir: str | os.PathLike, skip_bad: bool = False,
                progress: bool = True, expected: dict | None = HWDB11, meta: dict | None = None) -> Path:
    """Convert GNT files into a memory-mapped cache, once; return ``cache_dir``.

    Args:
        gnt_dirs: split name ("train", "test") -> GNT folder(s) and/or file(s).
        cache_dir: where the cache goes; an existing cache of the same sources is reused as is.
        skip_bad: skip and count malformed GNT records instead of stopping at the first.
        progress: show a progress bar over files.
        expected: counts to compare with (``HWDB11``; None for no check). Differences are
            reported with a warning, not an error: a cleaned or partial copy is legitimate.
        meta: extra metadata stored in ``cache.json`` (e.g. ``{"dataset": "synth", ...}``).

    Raises:
        GNTError: a malformed record, unless ``skip_bad``.
    """
    cache_dir = Path(cache_dir)
    files = {split: gnt_files(spec) for split, spec in gnt_dirs.items()}
    sources = {split: _sources(fs) for split, fs in files.items()}
    if _complete(cache_dir, sources):
        return cache_dir
    (cache_dir / "cache.json").unlink(missing_ok=True)  # the splits are about to change
    parts, bad, n_files = _convert_all(files, cache_dir / ".parts", skip_bad, progress)
    codes = _class_codes([p for ps in parts.values() for p in ps])
    splits = {s: {**_assemble(ps, codes, cache_dir / s), "sources": sources[s]} for s, ps in parts.items()}
    classes = [int(c).to_bytes(2, "big").decode("gbk") for c in codes]
    info = {"format": FORMAT, "num_classes": len(classes), "classes": "".join(classes), "splits": splits,
            "bad_records": bad, "skip_bad": skip_bad, "meta": meta or {}}
    from ..results import atomic_write_text  # local import: results does not need data
    atomic_write_text(cache_dir / "cache.json", json.dumps(info, ensure_ascii=False, indent=1))
    shutil.rmtree(cache_dir / ".parts", ignore_errors=True)
    _report(cache_dir, info, n_files, expected, progress)
    return cache_dir


def _convert_all(files: dict[str, list[Path]], parts_dir: Path, skip_bad: bool,
                 progress: bool) -> tuple[dict[str, list[Path]], int, int]:
    every = [(s, f) for s, fs in files.items() for f in fs]
    parts: dict[str, list[Path]] = {s: [] for s in files}
    bad = samples = 0
    bar = tqdm(every, desc="GNT -> cache", unit="file", disable=not progress, file=sys.stdout, mininterval=2, dynamic_ncols=True)
    for i, (split, f) in enumerate(bar):
        part = parts_dir / split / f"{i:05d}-{f.stem}.npz"
        n, b = convert_file(f, part, writer_id(f, i), skip_bad)
        parts[split].append(part)
        samples, bad = samples + n, bad + b
        bar.set_postfix(samples=samples, bad=bad, refresh=False)
    return parts, bad, len(every)


def count_differences(info: dict, expected: dict) -> list[str]:
    """Human-readable differences between a cache's counts and ``expected`` (see ``HWDB11``)."""
    found = {"classes": info["num_classes"]}
    for split, s in info["splits"].items():
        found[split], found[f"{split}_writers"] = s["count"], s["writers"]
    return [f"{k}: expected {v:,}, found {found[k]:,}" if k in found else f"{k}: expected {v:,}, not built"
            for k, v in expected.items() if found.get(k) != v]


def _report(cache_dir: Path, info: dict, n_files: int, expected: dict | None, progress: bool) -> None:
    diffs = count_differences(info, expected) if expected else []
    if diffs:
        warnings.warn(f"cache {cache_dir} differs from the expected counts: " + "; ".join(diffs), stacklevel=3)
    if progress:
        splits = ", ".join(f"{s} {v['count']:,} samples / {v['writers']} writers" for s, v in info["splits"].items())
        print(f"cache {cache_dir}: {n_files} GNT files, {info['num_classes']:,} classes, {splits}, "
              f"{info['bad_records']} bad records skipped" + (f"; differs from expected: {'; '.join(diffs)}"
                                                            if diffs else ""))


class HWDBCache:
    """One split of a cache built by ``build_cache``, memory-mapped.

    Attributes:
        labels: int64 (N,) class indices; ``classes[labels[i]]`` is the character.
        writers: int32 (N,) writer ids.
        shapes: uint16 (N, 2) bitmap (height, width).
        offsets: int64 (N+1,) bitmap boundaries in ``pixels``.
        pixels: the memory-mapped uint8 pixels of all bitmaps.
        classes: the characters, shared by every split of the cache.
        meta: the ``meta`` given to ``build_cache`` (``{"dataset": "synth", ...}`` for the stand-in).
    """

    def __init__(self, cache_dir: str | os.PathLike, split: str) -> None:
        self.cache_dir, self.split = Path(cache_dir), split
        info_path = self.cache_dir / "cache.json"
        if not info_path.exists():
            raise FileNotFoundError(f"{self.cache_dir} is not a finished HWDB cache (no cache.json); build it with "
                                    "hwrlib.data.hwdb.build_cache (`make hwdb-cache`, or `make synth-hwdb`)")
        info = json.loads(info_path.read_text())
        if split not in info["splits"]:
            raise KeyError(f"cache {self.cache_dir} has no split {split!r}; it has {sorted(info['splits'])}")
        self.info, self.meta, self.classes = info, info["meta"], list(info["classes"])
        d = self.cache_dir / split
        self.offsets, self.shapes, self.labels, self.writers = (np.load(d / f"{n}.npy") for n in ARRAYS)
        n_pix = int(self.offsets[-1])
        self.pixels = np.memmap(d / "pixels.u8", np.uint8, "r") if n_pix else np.zeros(0, np.uint8)
        if len(self.pixels) != n_pix:
            raise ValueError(f"{d / 'pixels.u8'} has {len(self.pixels)} bytes, offsets.npy says {n_pix}; "
                             "rebuild the cache (delete the folder and run the build again)")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def dataset(self) -> str:
        """``"synth"`` for the synthetic stand-in, else ``"hwdb"``."""
        return self.meta.get("dataset", "hwdb")

    def bitmap(self, i: int) -> np.ndarray:
        """Bitmap ``i`` as a read-only uint8 array (H, W), background 255."""
        h, w = self.shapes[i]
        return self.pixels[self.offsets[i]:self.offsets[i + 1]].reshape(int(h), int(w))

    def __repr__(self) -> str:
        return (f"HWDBCache({str(self.cache_dir)!r}, {self.split!r}: {len(self):,} samples, "
                f"{self.num_classes:,} classes, dataset={self.dataset})")
