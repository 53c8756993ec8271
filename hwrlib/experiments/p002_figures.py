"""Paper 002's curve claim (Fig. 4), judged from the run records (nothing trains here)."""
from __future__ import annotations

import math
from typing import Any

import pandas as pd

from pathlib import Path

from ..stats import combine, judge_above, opposite
from ..sections import Extras, Section, register_section
from ..summary import finding, load_claims, protocol, protocol_runs
from ..verdict import Verdict

FLAT_AFTER = 3000  # iterations (mini-batch updates), Sec. 3.3
FLAT_SHARE = 0.05  # "flat": within 5 % of the initial loss (ln 10) of the level the loss ends at
ABOUT = (1500, 6000)  # "about 3,000": within a factor of 2


def flat_from(steps: pd.DataFrame) -> float:
    """The first logged update from which every later 100-update mean training loss stays within 5 % of ln 10 of
    the level it ends at (the mean over the last fifth of training)."""
    loss = steps.set_index("step")["loss"]
    level = loss.iloc[-max(1, len(loss) // 5):].mean()
    off = (loss - level).abs() > FLAT_SHARE * math.log(10)
    last_off = off[off].index.max() if off.any() else None
    return float(loss.index[0] if last_off is None else loss.index[loss.index > last_off].min())


def judge_loss_flat(runs: pd.DataFrame, claim: dict) -> dict[str, Any]:
    """Fig. 4: the training loss flattens after about 3,000 iterations (updates).

    Per run, from its loss every 100 updates (``steps.csv``): :func:`flat_from`. Holds when the seeds' mean lies
    within a factor of 2 of 3,000 (1,500-6,000; one-sample 95 % intervals), fails when it lies outside.
    """
    sel = protocol_runs(runs, "002", claim["where"])
    logged = (sel[[(Path(p) / "steps.csv").exists() for p in sel["run_path"]]] if "run_path" in sel
              else sel.iloc[0:0])
    if logged.empty:
        why = ("needs the training loss every 100 updates (steps.csv): "
               + (f"the {len(sel)} runs of this protocol predate it" if len(sel) else "no run yet"))
        return finding(Verdict.INCONCLUSIVE if len(sel) else Verdict.NOT_YET_RUN, why, sel, n=len(sel), why=why)
    flat = pd.Series([flat_from(pd.read_csv(Path(p) / "steps.csv")) for p in logged["run_path"]],
                     index=logged["seed"].to_numpy())
    j = combine([judge_above(flat, ABOUT[0]), opposite(judge_above(flat, ABOUT[1]))])
    text = (f"flat from update {flat.mean():,.0f} ({', '.join(f'seed {s}: {v:,.0f}' for s, v in flat.items())}); "
            f"'about 3,000' read as {ABOUT[0]:,}-{ABOUT[1]:,}")
    # the protocol's seeds are declared for every run; only the logged ones count here ("2 of 5")
    return finding(j, text, logged, n=len(flat), protocol=protocol("002", claim["where"]))


def accuracy_claim() -> tuple[float, float]:
    """The claimed 99.31 % and its tolerance (hwrlib.summary.delta), as claims.yaml states them."""
    from ..summary import delta
    claim = next(c for c in load_claims("002") if c["id"] == "002.accuracy")
    return claim["claimed"], delta(claim)


def sensitivity_table(runs: pd.DataFrame) -> pd.DataFrame:
    """The paper protocol's final test accuracy per (head, optimizer, lr): mean ± sd over seeds, and where the
    claimed accuracy falls among the plausible protocols (sweeps/002_sensitivity.yaml)."""
    from ..summary import fmt, fmt_mean_sd
    claimed, _ = accuracy_claim()
    sel = _sensitivity_runs(runs)
    if sel.empty:
        return pd.DataFrame()
    rows = []
    for _, g in sorted(sel.groupby("protocol"), key=lambda kv: kv[1]["protocol_label"].iloc[0]):  # never pooled
        head, opt, lr = g[["head", "optimizer", "lr"]].iloc[0]
        rows.append({"head": head, "optimizer": opt, "lr": f"{lr:g}", "final test acc": fmt_mean_sd(
            g["final_test_acc"], "test_acc", n=True), "best epoch": fmt_mean_sd(g["max_test_acc"], "test_acc"),
            "claimed": fmt(claimed, "test_acc"),
            "claim vs mean": f"{100 * (claimed - g['final_test_acc'].mean()):+.2f} points"})
    return pd.DataFrame(rows)


def _sensitivity_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """002's paper-protocol CNN runs on all of MNIST, each labelled by its protocol (head, optimizer, lr)."""
    sel = runs[(runs["paper"] == "002") & (runs["model"] == "pytorch_cnn") & (runs["profile"] == "paper")]
    if sel.empty:  # 002's own columns (train_size, head, momentum) exist only where a 002 run does
        return sel
    sel = sel[sel["train_size"].isna()]
    momentum = (" momentum " + sel["momentum"].map("{:g}".format)).where(sel["optimizer"] == "sgd", "")
    return sel.assign(protocol_label=sel["head"] + " head, " + sel["optimizer"] + " lr " + sel["lr"].map("{:g}".format)
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
            f"the last epoch, {count('max_test_acc')} at their best epoch (a per-run maximum over the test curve: a "
            "description, never a verdict).")


def sensitivity_figure(runs: pd.DataFrame):
    """Every paper-protocol run's test accuracy, last and best epoch, per plausible protocol, beside the claim."""
    import matplotlib.pyplot as plt
    import seaborn as sns
    claimed, _ = accuracy_claim()
    sel = _sensitivity_runs(runs)
    if sel.empty:
        return None
    long = sel.melt(id_vars=["protocol_label", "seed"], value_vars=["final_test_acc", "max_test_acc"], var_name="score",
                    value_name="acc")
    long = long.assign(acc=100 * long["acc"], score=long["score"].map({"final_test_acc": "last epoch (20)",
                                                                         "max_test_acc": "best epoch"}))
    fig, ax = plt.subplots(figsize=(11, 0.6 * sel["protocol"].nunique() + 1.8), layout="constrained")
    sns.stripplot(data=long, x="acc", y="protocol_label", hue="score", order=sorted(sel["protocol_label"].unique()),
                  dodge=True, size=7, jitter=False, ax=ax)
    ax.axvline(100 * claimed, color="black", ls="--", lw=1, label=f"claimed {100 * claimed:.2f} %")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    lo, hi = ax.get_xlim()
    ax.set(xlabel=f"test accuracy (%; the axis spans {lo:.2f}-{hi:.2f}), one point per run", ylabel="",
           title="002: the claim among plausible protocols (paper profile: batch 32, 20 epochs)")
    return fig


def extras(runs: pd.DataFrame) -> Extras:
    """After 002's claims: the test curves of its protocols, then the unstated optimizer and lr (paper runs)."""
    from ..plots import protocol_curves
    paper = runs[runs["profile"] == "paper"]
    curves, sens = protocol_curves(runs, "002"), sensitivity_figure(paper)
    figures = {**({"002_curves": curves} if curves else {}), **({"002_sensitivity": sens} if sens else {})}
    return Extras(figures, ["**The unstated optimizer and learning rate** (a description, not a verdict: "
                            "`sweeps/002_sensitivity.yaml`). " + sensitivity_share(paper), sensitivity_table(paper)])


SECTION = register_section(Section(
    "002", "Deep CNN for handwritten digits in PyTorch",
    command="make paper (sweeps/002_paper.yaml, 002_readings.yaml); ResNet-18: sweeps/002_resnet18.yaml, hours a seed",
    page={"profile": "paper", "compare_models": ["lenet5"]}, extras=extras))
