"""Paper 002's curve claim (Fig. 4), judged from the run records (nothing trains here)."""
from __future__ import annotations

import math
from typing import Any

import pandas as pd

from ..results import load_metrics
from ..summary import select, verdict_result

FLAT_AFTER = 3000  # iterations (mini-batch updates), Sec. 3.3
FLAT_SHARE = 0.05  # "flat": what the loss still falls after that is under 5 % of the initial loss, ln 10


def judge_loss_flat(runs: pd.DataFrame, claim: dict) -> dict[str, Any]:
    """Fig. 4: the training loss is flat after about 3,000 iterations.

    Per run: the mean training loss of the first evaluation at or after update 3,000 minus that of the last
    one; the claim holds when its mean over seeds is below 5 % of ln 10, the loss of an untrained 10-class net.
    """
    sel = select(runs[runs["paper"] == "002"] if "paper" in runs else runs, claim.get("where"))
    if sel.empty:
        return verdict_result("", 0, None)
    h = load_metrics(sel)
    after = h[h["step"] >= FLAT_AFTER].groupby("run_id")
    drop = after["train_loss"].first() - after["train_loss"].last()
    first_step = after["step"].first().iloc[0]
    limit = FLAT_SHARE * math.log(10)
    text = (f"training loss still falls by {drop.mean():.4f} nats after update {first_step:,} (limit {limit:.3f}: "
            f"5% of ln 10); at update {first_step:,} it is {after['train_loss'].first().mean():.4f}")
    return verdict_result(text, len(drop), bool(drop.mean() < limit), sel)


def sensitivity_table(runs: pd.DataFrame, claimed: float = 0.9931) -> pd.DataFrame:
    """The paper protocol's final test accuracy per (head, optimizer, lr): mean ± sd over seeds, and where the
    claimed accuracy falls among the plausible protocols (sweeps/002_sensitivity.yaml)."""
    from ..summary import fmt, fmt_mean_sd
    sel = runs[(runs["paper"] == "002") & (runs["model"] == "pytorch_cnn") & (runs["profile"] == "paper")
               & runs["train_size"].isna()] if not runs.empty else runs
    if sel.empty:
        return pd.DataFrame()
    rows = []
    for (head, opt, lr), g in sel.groupby(["head", "optimizer", "lr"], sort=True):
        rows.append({"head": head, "optimizer": opt, "lr": f"{lr:g}", "final test acc": fmt_mean_sd(
            g["final_test_acc"], "test_acc", n=True), "best epoch": fmt_mean_sd(g["max_test_acc"], "test_acc"),
            "claimed": fmt(claimed, "test_acc"),
            "claim vs mean": f"{100 * (claimed - g['final_test_acc'].mean()):+.2f} points"})
    return pd.DataFrame(rows)
