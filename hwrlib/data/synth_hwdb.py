"""``synth-hwdb``: a synthetic stand-in for CASIA-HWDB1.1 that needs no registration. SYNTHETIC, not HWDB.

Characters: the GB2312 level-1 set (HWDB1.1's 3,755 classes) in code order; the first
``num_classes`` that have stroke data. Strokes: the Make Me a Hanzi medians in the npm package
``hanzi-writer-data@2.0.1`` (Arphic Public License), fetched once by ``make data`` with
``npm pack`` into ``<data_dir>/hanzi-writer-data/``; only the level-1 medians are kept, in one
JSON file. Samples: each writer has a style (see ``synth_render``) and writes every class once;
writers are split into train and test like HWDB's. Each writer's samples are written as one
GNT file with ``write_gnt``, then ``build_cache`` converts them, so the synthetic set goes
through exactly the reader, cache and loader that real HWDB data uses. The cache's metadata
says ``dataset: synth``; results on it must never be set against the paper's HWDB numbers.

``python -m hwrlib.data.synth_hwdb --fetch-only`` fetches the strokes; without it, builds a set.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm  # plain text bar, as hwrlib.train: renders in terminals and papermill output

from .. import paths
from .gnt import write_gnt
from .hwdb_cache import build_cache
from .synth_render import Medians, draw_style, render

PACKAGE, VERSION = "hanzi-writer-data", "2.0.1"
TARBALL = f"{PACKAGE}-{VERSION}.tgz"
MEDIANS = "medians-gb2312-level1.json"
FIRST_WRITER = 1001  # writer ids like HWDB's file names (1001-c.gnt ...)


def level1_chars() -> list[str]:
    """GB2312 level 1 (rows 0xB0-0xD7) in code order: the 3,755 classes of HWDB1.1."""
    chars = []
    for hi in range(0xB0, 0xD8):
        for lo in range(0xA1, 0xFF):
            try:
                chars.append(bytes([hi, lo]).decode("gb2312"))
            except UnicodeDecodeError:  # row 0xD7 ends at 0xF9
                pass
    return chars


def strokes_dir(data_dir: str | os.PathLike | None = None) -> Path:
    return paths.data_dir(data_dir) / PACKAGE


def fetch_strokes(data_dir: str | os.PathLike | None = None) -> Path:
    """Fetch ``hanzi-writer-data`` with ``npm pack`` (once) and keep the level-1 medians; return their JSON."""
    out = strokes_dir(data_dir)
    medians = out / MEDIANS
    if medians.exists():
        return medians
    tgz = out / TARBALL
    if not tgz.exists():
        _npm_pack(out)
    wanted = {f"package/{c}.json": c for c in level1_chars()}
    table = {}
    with tarfile.open(tgz, "r:gz") as tar:
        for member in tar:  # one sequential pass: random access into a .tgz re-reads it from the start
            if member.name in wanted:
                table[wanted[member.name]] = json.load(tar.extractfile(member))["medians"]
    table = {c: table[c] for c in wanted.values() if c in table}  # code order
    from ..results import atomic_write_text  # local import: results does not need data
    atomic_write_text(medians, json.dumps({"source": f"npm {PACKAGE}@{VERSION} (Make Me a Hanzi medians, "
                                                     "Arphic Public License)", "medians": table},
                                          ensure_ascii=False, separators=(",", ":")))
    return medians


def _npm_pack(out: Path) -> None:
    fix = (f"run `npm pack {PACKAGE}@{VERSION}` on a machine with npm and the registry and put {TARBALL} in {out}")
    if shutil.which("npm") is None:
        raise FileNotFoundError(f"npm not found, needed once to fetch the stroke data of synth-hwdb; install "
                                f"Node.js (npm), or {fix}")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out) as tmp:  # a failed fetch leaves nothing behind
        r = subprocess.run(["npm", "pack", f"{PACKAGE}@{VERSION}", "--pack-destination", tmp],
                           capture_output=True, text=True, timeout=600)
        if r.returncode != 0 or not (Path(tmp) / TARBALL).exists():
            raise RuntimeError(f"`npm pack {PACKAGE}@{VERSION}` failed (exit {r.returncode}): "
                               f"{r.stderr.strip()[-500:]}; check the network, or {fix}")
        os.replace(Path(tmp) / TARBALL, out / TARBALL)


def load_medians(data_dir: str | os.PathLike | None = None) -> dict[str, Medians]:
    """The level-1 medians fetched by ``fetch_strokes``; a clear error if they are not there."""
    path = strokes_dir(data_dir) / MEDIANS
    if not path.exists():
        raise FileNotFoundError(f"no stroke data for synth-hwdb in {path}; run `make data` (it fetches "
                                f"{PACKAGE}@{VERSION} with npm once)")
    return json.loads(path.read_text())["medians"]


@dataclass(frozen=True)
class SynthParams:
    """Everything that defines a synthetic set; the same params and seed give the same bytes."""
    num_classes: int = 100  # the first N GB2312 level-1 characters that have strokes
    num_writers: int = 40  # each writes every class once
    seed: int = 0
    test_fraction: float = 0.2  # share of writers in the test split (HWDB1.1: 60 of 300)
    size_range: tuple[float, float] = (56.0, 112.0)  # writer's mean character frame height, px
    width_range: tuple[float, float] = (2.5, 7.0)  # writer's stroke width, px
    slant_deg: float = 8.0  # std of a writer's slant, degrees
    aspect_range: tuple[float, float] = (0.8, 1.25)  # writer's width/height ratio
    jitter: float = 0.02  # per-stroke displacement std (upper end), fraction of the frame
    elastic: float = 0.04  # elastic distortion amplitude (upper end), fraction of the frame

    def __post_init__(self) -> None:
        if self.num_classes < 1 or self.num_writers < 2:
            raise ValueError(f"synth-hwdb needs num_classes >= 1 and num_writers >= 2 (one train, one test), "
                             f"got {self.num_classes} and {self.num_writers}")
        if not 0 < self.test_fraction < 1:
            raise ValueError(f"test_fraction must be in (0, 1), got {self.test_fraction}")

    @property
    def tag(self) -> str:
        """Folder name: readable counts and seed, then a hash of every field."""
        digest = hashlib.sha1(json.dumps(dataclasses.asdict(self), sort_keys=True).encode()).hexdigest()[:8]
        return f"c{self.num_classes}-w{self.num_writers}-s{self.seed}-{digest}"

    def split_writers(self) -> dict[str, list[int]]:
        """Writer ids per split: a seeded shuffle, ``test_fraction`` of them (at least one) for test."""
        ids = FIRST_WRITER + np.random.default_rng([self.seed, 1]).permutation(self.num_writers)
        n_test = min(self.num_writers - 1, max(1, round(self.num_writers * self.test_fraction)))
        return {"train": sorted(ids[n_test:].tolist()), "test": sorted(ids[:n_test].tolist())}


def choose_classes(medians: dict[str, Medians], num_classes: int) -> tuple[list[str], int]:
    """The first ``num_classes`` level-1 characters with strokes, and how many were skipped for lack of them."""
    chars, skipped = [], 0
    for c in level1_chars():
        if len(chars) == num_classes:
            break
        if medians.get(c):
            chars.append(c)
        else:
            skipped += 1
    if len(chars) < num_classes:
        raise ValueError(f"only {len(chars)} GB2312 level-1 characters have stroke data, {num_classes} asked for")
    return chars, skipped


def writer_samples(p: SynthParams, writer: int, chars: list[str], medians: dict[str, Medians]):
    """The (tag, bitmap) samples of one writer, deterministic for (seed, writer)."""
    rng = np.random.default_rng([p.seed, 2, writer])
    style = draw_style(rng, p.size_range, p.width_range, p.slant_deg, p.aspect_range, p.jitter, p.elastic)
    return [(c, render(medians[c], style, rng)) for c in chars]


def synth_dir(p: SynthParams, data_dir: str | os.PathLike | None = None) -> Path:
    return paths.data_dir(data_dir) / "synth-hwdb" / p.tag


def prepare_synth(p: SynthParams, data_dir: str | os.PathLike | None = None, build: bool = True,
                  progress: bool = True) -> Path:
    """Build (or reuse) the synthetic set of ``p``: GNT files per writer, then the cache. Returns the cache dir."""
    root = synth_dir(p, data_dir)
    cache = root / "cache"
    if (cache / "cache.json").exists():
        return cache
    if not build:
        raise FileNotFoundError(f"no synth-hwdb set in {root}; run `make synth-hwdb` (default parameters) or "
                                "hwrlib.data.hwdb.prepared('synth', ...) with build=True")
    medians = load_medians(data_dir)
    chars, skipped = choose_classes(medians, p.num_classes)
    splits = p.split_writers()
    todo = [(s, w) for s, ws in splits.items() for w in ws]
    for split, w in tqdm(todo, desc="synth-hwdb writers", unit="writer", disable=not progress, file=sys.stdout, mininterval=2):
        gnt = root / split / f"{w}-synth.gnt"
        if not gnt.exists():  # resumable: each writer's file is written atomically
            write_gnt(gnt, writer_samples(p, w, chars, medians))
    meta = {"dataset": "synth", "params": dataclasses.asdict(p), "skipped_without_strokes": skipped,
            "strokes": f"npm {PACKAGE}@{VERSION}"}
    return build_cache({s: root / s for s in splits}, cache, progress=progress, expected=None, meta=meta)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Build synth-hwdb, the synthetic stand-in for CASIA-HWDB1.1.")
    defaults = SynthParams()
    ap.add_argument("--fetch-only", action="store_true", help="only fetch the stroke data (npm pack), once")
    ap.add_argument("--num-classes", type=int, default=defaults.num_classes)
    ap.add_argument("--num-writers", type=int, default=defaults.num_writers)
    ap.add_argument("--seed", type=int, default=defaults.seed)
    ap.add_argument("--data-dir", default=None, help="data folder (default $HWR_DATA_DIR or data/)")
    a = ap.parse_args(argv)
    try:
        medians = fetch_strokes(a.data_dir)
        if a.fetch_only:
            print(f"synth-hwdb stroke data in {medians}")
            return
        p = SynthParams(num_classes=a.num_classes, num_writers=a.num_writers, seed=a.seed)
        print(f"synth-hwdb (SYNTHETIC) cache in {prepare_synth(p, a.data_dir)}")
    except (FileNotFoundError, RuntimeError) as e:
        raise SystemExit(str(e)) from None


if __name__ == "__main__":
    main()
