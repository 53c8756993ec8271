"""Give committed 002/001 runs that predate the 100-update loss log their ``steps.csv``, from a rerun; retrains nothing.

    python results/add_steps_from_rerun.py RERUN_RESULTS_DIR [RESULTS_DIR]

A run folder of RERUN_RESULTS_DIR (the same protocol and seed, trained again by a later commit that logs the loss every
100 updates) lends its ``steps.csv`` to the committed folder of the same id only when every evaluation of its
metrics.csv equals the committed one, the timing column ``seconds`` aside: same seed, device and threads give the same
numbers, and logging reads the loss only. A folder whose numbers differ is reported and left alone.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pandas as pd

from hwrlib import paths


def same_numbers(a: Path, b: Path) -> bool:
    """Do two metrics.csv files hold the same evaluations, timings aside?"""
    x, y = (pd.read_csv(p / "metrics.csv").drop(columns="seconds") for p in (a, b))
    return x.shape == y.shape and bool((x.columns == y.columns).all()) and x.equals(y)


def main(argv: list[str]) -> int:
    rerun = Path(argv[0]) / "runs"
    results = paths.results_dir(argv[1] if len(argv) > 1 else None) / "runs"
    bad = 0
    for final in sorted(rerun.glob("*/*/final.json")):
        src = final.parent
        dst = results / src.parent.name / src.name
        if not (dst / "final.json").exists() or (dst / "steps.csv").exists() or not (src / "steps.csv").exists():
            continue
        if same_numbers(src, dst):
            shutil.copy(src / "steps.csv", dst / "steps.csv")
            print(f"steps.csv added: {dst}")
        else:
            bad += 1
            print(f"differs, left alone: {dst} (the rerun's metrics are not the record's)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
