"""Paper 003's penalty lambda (eq. 6/16), chosen the way the paper leaves open: by validation on the training subset.

    python -m hwrlib.experiments.p003_lambda            # writes results/searches/003_lambda.csv

For each candidate lambda, the networks of seeds 0-4 train side by side (the paper protocol: 6-12, batch 50,
lr 1.0, 100 epochs) on the first 3/4 of each seed's 2,000-image training subset (1,500 images) and are scored on
the other 500; the test subset is never looked at. The paper gives no value and no rule; the penalty reading
takes the largest lambda > 0 whose mean validation error is within one standard error of the best one (the
one-standard-error rule: the strongest penalty the data cannot tell from the best).
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time

import pandas as pd
import torch

from .. import paths, results
from ..train import resolve_device, set_threads_from_env
from .p003_lenet_variant import P003Config, fit_replicas, load_subsets, replica_rows

LAMBDAS = (0.0, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2)


def search(lambdas: tuple[float, ...] = LAMBDAS, seeds: int = 5, progress: bool = True, **params) -> pd.DataFrame:
    """Mean and standard error over seeds of the validation error per lambda (one row each); ``params`` are 003
    notebook parameters (default: the paper profile)."""
    set_threads_from_env()
    device = resolve_device("auto")
    base = P003Config.from_params(**{"profile": "paper", **params}, replicas=seeds, baselines=False)
    fit_n = 3 * base.train_size // 4
    data = []
    for s in base.seeds:
        (x, y), _ = load_subsets(base, s)
        data.append(((x[:fit_n], y[:fit_n]), (x[fit_n:], y[fit_n:])))
    rows = []
    for lam in lambdas:
        t0 = time.perf_counter()
        cfg = dataclasses.replace(base, weight_decay=lam, train_size=fit_n)
        metrics, _ = fit_replicas(cfg, data, device, progress)
        err = pd.Series([replica_rows(metrics, g)[-1]["test_error"] for g in range(seeds)])
        rows.append({"weight_decay": lam, "val_error": err.mean(), "val_error_se": err.std(ddof=1) / seeds ** 0.5,
                     "seeds": seeds, "fit_images": fit_n, "val_images": base.train_size - fit_n,
                     "seconds": time.perf_counter() - t0})
    return choose(pd.DataFrame(rows))


def choose(table: pd.DataFrame) -> pd.DataFrame:
    """Mark the penalty reading's lambda: the largest lambda > 0 within one standard error of the best mean."""
    best = table.loc[table["val_error"].idxmin()]
    ok = (table["weight_decay"] > 0) & (table["val_error"] <= best["val_error"] + best["val_error_se"])
    pick = table.loc[ok, "weight_decay"].max() if ok.any() else table.loc[table["weight_decay"] > 0, "weight_decay"].min()
    return table.assign(chosen=table["weight_decay"] == pick)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results-dir", help="default: $HWR_RESULTS_DIR or <repo>/results")
    args = ap.parse_args(argv)
    torch.set_num_threads(int(__import__("os").environ.get("HWR_NUM_THREADS", "1")))
    table = search()
    out = paths.results_dir(args.results_dir) / "searches" / "003_lambda.csv"
    env = results.environment()
    results.atomic_write_text(out, table.assign(git_commit=env["git_commit"], torch=env["torch"]).to_csv(index=False))
    print(table.to_string(index=False))
    print(f"chosen weight_decay: {table.loc[table['chosen'], 'weight_decay'].iloc[0]:g} -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
