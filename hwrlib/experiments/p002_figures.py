"""Paper 002's curve claim (Fig. 4), judged from the run records (nothing trains here)."""
from __future__ import annotations

import math
from typing import Any

import pandas as pd

from ..results import load_metrics
from ..summary import load_claims, select, verdict_result

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


def accuracy_claim() -> tuple[float, float]:
    """The claimed 99.31 % and its tolerance, as claims.yaml states them."""
    claim = next(c for c in load_claims("002") if c["id"] == "002.accuracy")
    return claim["claimed"], claim["tolerance"]


def sensitivity_table(runs: pd.DataFrame) -> pd.DataFrame:
    """The paper protocol's final test accuracy per (head, optimizer, lr): mean ± sd over seeds, and where the
    claimed accuracy falls among the plausible protocols (sweeps/002_sensitivity.yaml)."""
    from ..summary import fmt, fmt_mean_sd
    claimed, _ = accuracy_claim()
    sel = _sensitivity_runs(runs)
    if sel.empty:
        return pd.DataFrame()
    rows = []
    for (head, opt, lr), g in sel.groupby(["head", "optimizer", "lr"], sort=True):
        rows.append({"head": head, "optimizer": opt, "lr": f"{lr:g}", "final test acc": fmt_mean_sd(
            g["final_test_acc"], "test_acc", n=True), "best epoch": fmt_mean_sd(g["max_test_acc"], "test_acc"),
            "claimed": fmt(claimed, "test_acc"),
            "claim vs mean": f"{100 * (claimed - g['final_test_acc'].mean()):+.2f} points"})
    return pd.DataFrame(rows)


def _sensitivity_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """002's paper-protocol CNN runs on all of MNIST, each labelled by its protocol (head, optimizer, lr)."""
    if runs.empty:
        return runs
    sel = runs[(runs["paper"] == "002") & (runs["model"] == "pytorch_cnn") & (runs["profile"] == "paper")
               & runs["train_size"].isna()]
    momentum = (" momentum " + sel["momentum"].map("{:g}".format)).where(sel["optimizer"] == "sgd", "")
    return sel.assign(protocol=sel["head"] + " head, " + sel["optimizer"] + " lr " + sel["lr"].map("{:g}".format)
                      + momentum)


def sensitivity_share(runs: pd.DataFrame) -> str:
    """One sentence: how many plausible-protocol runs reach the claimed accuracy (and come within the claim's
    tolerance of it), at the last and at the best epoch."""
    claimed, tolerance = accuracy_claim()
    sel = _sensitivity_runs(runs)
    if sel.empty:
        return ""
    def count(col: str) -> str:
        return f"{(sel[col] >= claimed).sum()} ({(sel[col] >= claimed - tolerance).sum()})"
    return (f"Of {len(sel)} runs over {sel['protocol'].nunique()} protocols, {count('final_test_acc')} reach the "
            f"claimed {100 * claimed:.2f} % (in brackets: come within its ±{100 * tolerance:.2f}-point tolerance) at "
            f"the last epoch, {count('max_test_acc')} at their best epoch.")


def sensitivity_figure(runs: pd.DataFrame):
    """Every paper-protocol run's test accuracy, last and best epoch, per plausible protocol, beside the claim."""
    import matplotlib.pyplot as plt
    import seaborn as sns
    claimed, _ = accuracy_claim()
    sel = _sensitivity_runs(runs)
    if sel.empty:
        return None
    long = sel.melt(id_vars=["protocol", "seed"], value_vars=["final_test_acc", "max_test_acc"], var_name="score",
                    value_name="acc")
    long = long.assign(acc=100 * long["acc"], score=long["score"].map({"final_test_acc": "last epoch (20)",
                                                                         "max_test_acc": "best epoch"}))
    fig, ax = plt.subplots(figsize=(11, 0.6 * sel["protocol"].nunique() + 1.8), layout="constrained")
    sns.stripplot(data=long, x="acc", y="protocol", hue="score", order=sorted(sel["protocol"].unique()),
                  dodge=True, size=7, jitter=False, ax=ax)
    ax.axvline(100 * claimed, color="black", ls="--", lw=1, label=f"claimed {100 * claimed:.2f} %")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    lo, hi = ax.get_xlim()
    ax.set(xlabel=f"test accuracy (%; the axis spans {lo:.2f}-{hi:.2f}), one point per run", ylabel="",
           title="002: the claim among plausible protocols (paper profile: batch 32, 20 epochs)")
    return fig


def summary_sensitivity(runs: pd.DataFrame) -> None:
    """The summary notebook's 002 sensitivity section: the table, the sentence and the figure (paper runs only)."""
    import matplotlib.pyplot as plt
    from IPython.display import Markdown, display

    from ..summary import style_table
    table = sensitivity_table(runs)
    if table.empty:
        print("002: no paper-profile runs yet (`make paper`, then `make sensitivity-002`)")
        return
    display(Markdown(sensitivity_share(runs)))
    display(style_table(table))
    display(sensitivity_figure(runs))
    plt.close("all")
