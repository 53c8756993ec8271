"""Figures shared by the notebooks. Each function returns its matplotlib Figure."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator
import pandas as pd
import seaborn as sns
import torch


def show_digits(images: torch.Tensor, labels: torch.Tensor, n: int = 24, cols: int = 12, title: str = ""):
    """A grid of the first ``n`` images with their labels (cf. the papers' MNIST sample figures)."""
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.8, rows * 0.95))
    for ax, img, lab in zip(axes.flat, images[:n], labels[:n]):
        ax.imshow(img.cpu().numpy(), cmap="gray_r")
        ax.set_title(str(int(lab)), fontsize=9)
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_metrics(metrics: pd.DataFrame, hue: str | None = None, claimed_acc: float | None = None,
                 iters_per_epoch: int | None = None, title: str = ""):
    """Loss (train and test) and test accuracy per epoch; ``hue`` names a column that separates runs.

    With several rows per (hue, epoch), e.g. several seeds, seaborn draws the mean and a 95% band.
    """
    h = metrics.copy()
    h["test_acc_pct"] = 100 * h["test_acc"]
    order = sorted(h[hue].unique()) if hue else None
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 3.8), layout="constrained")
    sns.lineplot(data=h, x="epoch", y="train_loss", hue=hue, hue_order=order, seed=0, ax=ax1, marker="o", legend=False)
    sns.lineplot(data=h, x="epoch", y="test_loss", hue=hue, hue_order=order, seed=0, ax=ax1, linestyle="--", legend=False)
    ax1.set(ylabel="cross-entropy loss (nats)", title="loss: training (solid), test (dashed)")
    sns.lineplot(data=h, x="epoch", y="test_acc_pct", hue=hue, hue_order=order, seed=0, ax=ax2, marker="o")
    if claimed_acc is not None:
        ax2.axhline(100 * claimed_acc, color="crimson", linestyle=":", label=f"claimed {100 * claimed_acc:.2f}%")
    if hue or claimed_acc is not None:
        ax2.legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False, title=hue)
    lo, hi = ax2.get_ylim()
    ax2.set(ylabel=f"test accuracy (%; the axis spans {lo:.2f}-{hi:.2f})", title="test accuracy")
    for ax in (ax1, ax2):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch" + (f"  (1 epoch = {iters_per_epoch:,} iterations)" if iters_per_epoch else ""))
    fig.suptitle(title)
    return fig


def plot_accuracy_bars(rows: pd.DataFrame, title: str = ""):
    """Horizontal bars of accuracy (%) per ``label``, coloured by ``source`` (measured here / quoted)."""
    r = rows.sort_values("accuracy").reset_index(drop=True)
    low = min(80.0, 5 * (r["accuracy"].min() // 5))  # small differences stay visible; the axis says where it starts
    fig, ax = plt.subplots(figsize=(12, 0.45 * len(r) + 1.4), layout="constrained")
    palette = {"measured here": "tab:blue", "quoted by the paper": "tab:gray", "claimed by the paper": "crimson"}
    sns.barplot(data=r, y="label", x="accuracy", hue="source", palette=palette, dodge=False, ax=ax)
    for i, v in enumerate(r["accuracy"]):
        ax.text(v + 0.05, i, f"{v:.2f}%", va="center", fontsize=8)
    ax.set(xlim=(low, 101.5), xlabel=f"test accuracy on MNIST (%; the axis starts at {low:.0f} %)", ylabel="",
           title=title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False, fontsize=8)
    return fig


def label_runs(runs: Sequence, key: str = "model") -> pd.DataFrame:
    """Concatenate the histories of :class:`~hwrlib.results.Run` objects, labelled by a config key."""
    return pd.concat([r.metrics.assign(**{key: r.config[key]}) for r in runs], ignore_index=True)


# the protocols each 001 / 002 curve figure draws: label -> claims.yaml-style fields (the rest: the config's defaults)
CURVES = {"002": {"CNN, linear head": {"model": "pytorch_cnn", "head": "linear"},
                  "CNN, hidden500 head": {"model": "pytorch_cnn", "head": "hidden500"}, "LeNet-5": {"model": "lenet5"}},
          "001": {f"{m}, {o}": {"model": m, **opt} for m in ("blog_cnn", "blog_resnet", "blog_deep_plain")
                  for o, opt in (("RMSprop", {}), ("SGD", {"optimizer": "sgd", "lr": 0.01, "momentum": 0.0}))}}


def protocol_curves(runs, paper: str, profile: str = "paper"):
    """Test curves of 001's or 002's protocols at ``profile``, one line per protocol (never two pooled); None
    without runs."""
    from .results import load_metrics
    from .summary import protocol_runs
    sel = pd.concat([protocol_runs(runs, paper, {"profile": profile, **fields}).assign(runs=label)
                     for label, fields in CURVES[paper].items()])
    if sel.empty:
        return None
    h = load_metrics(sel, ["runs"])
    return plot_metrics(h, hue="runs", title=f"{paper}: {profile} protocols, mean and 95% band over seeds")


def forest(per: pd.DataFrame, title: str = ""):
    """Every judged accuracy claim of a claims table (one paper's) as a row: what was measured against what is claimed,
    in points, coloured by verdict (None if no such claim ran).

    A metric claim: each seed's value minus the claim (dots), the mean with the interval a run of the protocol may
    land in (widened by the tolerance: the claim is *not reproduced* outside it), and the claim's tolerance band
    around 0. A comparison: each seed's paired difference and the 95 % interval of the mean difference; it holds when
    the interval lies right of its margin (a tick at 0, or at the stated margin).
    """
    drawn = [(r, x) for _, r in per.iterrows() if (x := _forest_row(r)) is not None]
    if not drawn:
        return None
    rows = [r for r, _ in drawn]
    fig, ax = plt.subplots(figsize=(11, 0.32 * len(rows) + 1.6), layout="constrained")
    for y, (r, x) in enumerate(drawn):
        colour = r["verdict"].colour
        ax.axhspan(y - 0.45, y + 0.45, color=colour, zorder=0)
        if x["band"]:
            ax.plot([-x["band"], x["band"]], [y, y], color="black", lw=6, alpha=0.15, solid_capstyle="butt")
        ax.plot([x["low"], x["high"]], [y, y], color="black", lw=1.4)
        ax.plot(x["values"], [y] * len(x["values"]), "o", ms=3.5, color="tab:blue", alpha=0.7)
        ax.plot([x["mean"]], [y], "D", ms=5, color="black")
        ax.plot([x["mark"]], [y], "|", ms=14, mew=2, color="crimson")
    ax.set_yticks(range(len(rows)), [f"{r['id'].split('.', 1)[1]} | {r['reading']}" for r in rows], fontsize=8)
    seen = dict.fromkeys(r["verdict"] for r in rows)  # one legend entry per verdict shown, beside the plot
    ax.legend(handles=[Patch(color=v.colour, label=v.label) for v in seen], loc="upper left", bbox_to_anchor=(1.01, 1),
              frameon=False, fontsize=8, title="verdict")
    ax.invert_yaxis()
    ax.axvline(0, color="grey", lw=0.8, ls=":")
    ax.set(xlabel="points: metric claims, measured minus claimed; comparisons, A minus B (red tick: 0 or the "
                  "claimed margin)", title=title)
    return fig


def _forest_row(r: pd.Series) -> dict | None:
    """A claims-table row as forest coordinates in points, or None (not run, not an accuracy, a curve)."""
    f, metric = r["finding"], str(r.get("metric", ""))
    if (not f["n"] or not metric.endswith(("_acc", "_top5", "_error")) or r["kind"] not in ("metric", "comparison")
            or r["verdict"] == "did not train"):  # its numbers measure no trained model
        return None
    if r["kind"] == "comparison":
        if f["than_n"] == 0 or pd.isna(f["low"]):
            return None
        return {"values": 100 * f["values"], "mean": 100 * f["estimate"], "low": 100 * f["low"],
                "high": 100 * f["high"], "band": 0.0, "mark": 100 * r["margin"]}
    claimed = r["claimed_value"]
    low, high = (f["low"], f["high"]) if not pd.isna(f["low"]) else (f["mean"], f["mean"])
    return {"values": 100 * (f["values"] - claimed), "mean": 100 * (f["mean"] - claimed),
            "low": 100 * (low - claimed), "high": 100 * (high - claimed), "band": 100 * f["delta"], "mark": 0.0}
