"""Table 1 and Fig. 3 of paper 000, and the prod a_i curves, rebuilt from the results store (nothing trains).

Curves are smoothed with the paper's window mean (eq. 8/9). Runs on the synthetic stand-in are
labelled SYNTHETIC everywhere and get no verdict: only runs on CASIA-HWDB1.1 are judged.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..sections import Extras, Folded, Section, register_section
from ..summary import claim_readings, fmt_mean_sd, judge_claim, load_claims, protocol_runs, runs_of

PARTS = ("softmax", "auxiliary", "regularization", "loss")  # Fig. 3 (a)-(d); "loss" is the total
YLABEL = {"softmax": "cross-entropy (nats)", "auxiliary": "cross-entropy (nats)",
          "regularization": "L2 + prod a_i penalty (log)", "loss": "(a) + aux_weight (b) + (c)"}
AUGMENT = ("flip", "scale", "pca_noise")
MODEL_LABELS = {"inception_hccr": "Inception", "resnet_hccr_plain": "ResNet", "resnet_hccr": "Improved residual model"}
# claim ids of Table 1 per model: (top-1, top-5)
TABLE1 = {"inception_hccr": ("000.inception.top1", "000.inception.top5"),
          "resnet_hccr_plain": ("000.resnet.top1", "000.resnet.top5"),
          "resnet_hccr": ("000.improved.top1", "000.improved.top5")}
QUOTED = {"Affinity-propagation clustering [4]": "000.ref.ap_clustering", "DLQDF [8]": "000.ref.dlqdf"}
# published numbers set beside Table 1 as context only (never judged)
ANCHORS = [
    {"method": "MQDF, trained on HWDB1.1 (Liu et al. 2013, Pattern Recognition 46)", "top1": 0.8955,
     "test set": "HWDB1.1 test"},
    {"method": "CNN with global weighted average pooling (Li et al. 2018, arXiv:1804.01259)", "top1": 0.971,
     "test set": "ICDAR-2013 offline competition set (not HWDB1.1 test)"},
]


def window_mean(values, i: int, paper_divisor: bool = False) -> np.ndarray:
    """Eq. 8/9: the value at step s is the mean of the values at s-i .. s+i.

    The paper prints the sum of those 2i+1 values divided by 2i, which inflates every point by
    (2i+1)/(2i); we read it as a mean (divisor 2i+1) and near the ends average the values that exist.
    ``paper_divisor=True`` divides by 2i as printed and leaves the ends (incomplete windows) NaN.
    """
    v = np.asarray(values, dtype=float)
    if i < 0:
        raise ValueError(f"window half-width i must be >= 0, got {i}")
    if i == 0 or len(v) == 0:
        return v.copy()
    c = np.concatenate([[0.0], np.cumsum(v)])
    idx = np.arange(len(v))
    lo, hi = np.clip(idx - i, 0, len(v)), np.clip(idx + i + 1, 0, len(v))
    sums = c[hi] - c[lo]
    if not paper_divisor:
        return sums / (hi - lo)
    return np.where((idx - i >= 0) & (idx + i < len(v)), sums / (2 * i), np.nan)


def _label(config: dict) -> str:
    data = "SYNTHETIC" if config.get("dataset") == "synth" else "HWDB1.1"
    return f"{MODEL_LABELS.get(config['model'], config['model'])}, prod_weight {config['prod_weight']:g} ({data})"


def plot_losses(runs: list, i: int = 10, title: str = ""):
    """Fig. 3 rebuilt: the four loss parts per logged step, raw (faint) and window-mean smoothed (eq. 8)."""
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6), layout="constrained")
    for run in runs:
        s = run.table("steps")
        for ax, part in zip(axes, PARTS):
            line, = ax.plot(s["step"], s[part], alpha=0.25, lw=0.8)
            ax.plot(s["step"], window_mean(s[part], i), color=line.get_color(), label=_label(run.config))
    for ax, part, letter in zip(axes, PARTS, "abcd"):
        ax.set(title=f"({letter}) {'total' if part == 'loss' else part} loss", xlabel="step", ylabel=YLABEL[part],
               yscale="log" if part == "regularization" else "linear")
    axes[-1].legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.02, 1), frameon=False)
    fig.suptitle(title or f"Fig. 3 rebuilt: loss parts, window mean i = {i} (eq. 8)")
    return fig


def plot_scalars(runs: list, title: str = ""):
    """prod a_i per logged step for each run (left), and each a_i of the first run (right)."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 3.8), layout="constrained")
    steps = [(run, run.table("steps")) for run in runs]
    for run, s in steps:
        if "prod_a" in s:
            ax1.plot(s["step"], s["prod_a"], label=_label(run.config))
    ax1.axhline(1, color="gray", ls=":")
    ax1.set(title="prod a_i (the shortcut path's gain, eq. 6)", xlabel="step", ylabel="prod a_i")
    ax1.legend(fontsize=9, loc="lower left", frameon=False)
    first, s = next(((r, s) for r, s in steps if "prod_a" in s), (None, None))
    if first is not None:
        a = s.filter(regex=r"^a_\d+$")
        colours = plt.cm.viridis(np.linspace(0, 1, a.shape[1]))
        for col, colour in zip(a, colours):
            ax2.plot(s["step"], a[col], color=colour, lw=0.9)
        ax2.set(title=f"each a_i (unit 1 dark -> {a.shape[1]} light): {_label(first.config)}", xlabel="step",
                ylabel="a_i")
    fig.suptitle(title)
    return fig


def _claims() -> dict[str, dict]:
    return {c["id"]: c for c in load_claims("000")}


def _measured(runs: pd.DataFrame, model: str, metric: str) -> pd.Series:
    return runs.loc[runs["model"] == model, metric].dropna() if metric in runs else pd.Series(dtype=float)


def _table1_claim(cid: str) -> dict:
    """A Table 1 claim under its first reading of each ambiguity (samples replaced, loss weighted, SGD)."""
    return claim_readings(_claims()[cid])[0][1]


def _verdict(runs: pd.DataFrame, c1: str, c5: str) -> str:
    """The engine's verdicts of a model's top-1 and top-5 claims (one text when they agree)."""
    v1, v5 = (judge_claim(_table1_claim(c), runs)["verdict"] for c in (c1, c5))
    return v1.label if v1 is v5 else f"top-1: {v1.label}; top-5: {v5.label}"


def table1(runs: pd.DataFrame) -> pd.DataFrame:
    """Table 1: claimed top-1/top-5 beside the measured mean (± std over runs), the data used and a verdict.

    ``runs``: rows of ``load_runs`` (or ``runs_frame``) of paper 000 (:func:`table1_runs` keeps one protocol per
    model). On CASIA-HWDB1.1 the verdict is the engine's (:func:`hwrlib.summary.judge_claim`, the claims' protocols
    under their first readings); on synth-hwdb it reads "not comparable (SYNTHETIC data)".
    """
    claims, rows = _claims(), []
    datasets = sorted(set(runs["dataset"])) if "dataset" in runs else []  # 000's field: absent without 000 runs
    for model, (c1, c5) in TABLE1.items():
        for data in datasets or [None]:
            sel = runs[runs["dataset"] == data] if data else runs.iloc[0:0]
            top1, top5 = _measured(sel, model, "final_test_acc"), _measured(sel, model, "final_test_top5")
            verdict = ("not yet run" if top1.empty else "not comparable (SYNTHETIC data)" if data == "synth"
                       else _verdict(sel, c1, c5))
            rows.append({"model": MODEL_LABELS[model], "claimed top-1": f"{100 * claims[c1]['claimed']:.2f}%",
                         "claimed top-5": f"{100 * claims[c5]['claimed']:.2f}%",
                         "measured top-1": fmt_mean_sd(top1, "test_acc", n=True),
                         "measured top-5": fmt_mean_sd(top5, "test_acc", n=True),
                         "data": {"synth": "synth-hwdb (SYNTHETIC)", "hwdb": "CASIA-HWDB1.1"}.get(data, ""),
                         "verdict": verdict})
    for name, cid in QUOTED.items():
        rows.append({"model": name, "claimed top-1": f"{100 * claims[cid]['claimed']:.2f}%", "claimed top-5": "—",
                     "measured top-1": "", "measured top-5": "", "data": "quoted by the paper", "verdict": "reference"})
    return pd.DataFrame(rows)


def same_protocol(runs: pd.DataFrame, cfg) -> pd.DataFrame:
    """The runs of ``cfg``'s protocol (a P000Config) for each of Table 1's networks: the notebook's Table 1."""
    return pd.concat([runs_of(cfg, runs, model) for model in TABLE1])


def table1_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Table 1's runs among ``runs`` (one profile): per network and dataset, the protocol of its Table 1 claim under
    the first reading of each ambiguity (samples replaced, loss weighted 0.4 / 0.01, SGD) at that profile; the
    other readings have their own table (:func:`readings_table`), so no mean pools two readings."""
    if runs.empty:
        return runs
    profile = runs["profile"].iloc[0]
    frames = [protocol_runs(runs, "000", {**_table1_claim(c1)["where"], "profile": profile, "dataset": data})
              for (c1, _) in TABLE1.values() for data in sorted(runs["dataset"].dropna().unique())]
    return pd.concat(frames)


def readings_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Top-1 and top-5 (mean ± sd over seeds, n) per network under each reading: augmentation, loss weights,
    optimizer. For SYNTHETIC runs this is a sensitivity study, never a verdict."""
    if runs.empty:
        return pd.DataFrame()
    keys = [k for k in ("model", "dataset", "augmentation", "aux_weight", "prod_weight", "optimizer", "lr")
            if k in runs]
    rows = []
    for key, g in runs.groupby(keys, dropna=False, sort=True):
        row = dict(zip(keys, key))
        row["model"] = MODEL_LABELS.get(row["model"], row["model"])
        rows.append({**row, "top-1": fmt_mean_sd(g["final_test_acc"], "test_acc", n=True),
                     "top-5": fmt_mean_sd(g["final_test_top5"], "test_acc", n=True)})
    return pd.DataFrame(rows)


def anchors() -> pd.DataFrame:
    """Published results as context (different methods, some on a different test set): never judged."""
    return pd.DataFrame(ANCHORS).assign(top1=lambda d: d["top1"].map(lambda v: f"{100 * v:.2f}%"))


def show_samples(loaders: dict, n: int = 12, title: str = ""):
    """Rows of ``n`` 108x108 canvases, one row per loader (e.g. plain and augmented), titled by class index."""
    fig, axes = plt.subplots(len(loaders), n, figsize=(n * 1.0, len(loaders) * 1.25), squeeze=False)
    for row, (name, loader) in zip(axes, loaders.items()):
        x, y = next(iter(loader))
        for ax, img, lab in zip(row, x[:n, 0], y[:n]):
            ax.imshow(img.cpu().numpy(), cmap="gray_r", vmin=0, vmax=1)
            ax.set_title(f"#{int(lab)}", fontsize=8)
        row[0].text(-0.15, 0.5, name, transform=row[0].transAxes, ha="right", va="center", fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([]), ax.set_yticks([])
    fig.suptitle(title)
    return fig


def extras(runs: pd.DataFrame) -> Extras:
    """000's study on synth-hwdb (SYNTHETIC): every reading, top-1 and top-5; never compared with the paper."""
    synth = runs[(runs["paper"] == "000") & (runs["profile"] == "study")]
    return Extras(blocks=[Folded("000 on synth-hwdb: every reading, top-1 and top-5 (SYNTHETIC)",
                                 readings_table(synth) if not synth.empty else f"not yet run: {SECTION.command}")])


def note(n_claims: int) -> str:
    return (f"All {n_claims} claims need CASIA-HWDB1.1, which this machine cannot have (README): none is judged. The "
            "study on synth-hwdb (SYNTHETIC data) measures the same networks and readings for the pipeline's sake and "
            "is never compared with the paper's numbers.")


SECTION = register_section(Section(
    "000", "Improved deep residual network for offline HCCR (CASIA-HWDB1.1)",
    command="make study-000-readings (synth-hwdb); CASIA-HWDB1.1 runs need the data (README)",
    page={"profile": "study", "prod_demo": False}, extras=extras, judged=False, note=note))
