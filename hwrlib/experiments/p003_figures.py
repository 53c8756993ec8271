"""Figures 4-7 and the curve claims of paper 003, rebuilt from the results store (nothing trains here).

Convergence speed is the mean test error over training (:func:`mean_error`), compared between settings
with their spread over seeds: an ordering counts when each difference exceeds twice its standard error,
is *not reproduced* when one is reversed by that much, and *inconclusive* otherwise.

The paper's x-axis is "iterations" (迭代次数) without saying whether one is a mini-batch update or a
pass over the 2,000 images. Every figure can be drawn against either (``x="epoch"`` or
``x="iteration"``), and each claim is judged under the reading its own text supports (see
:data:`READINGS`); the other reading is reported beside it.
"""
from __future__ import annotations

import math
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ..results import load_metrics
from ..summary import fmt_mean_sd, select, verdict_result

# the default point every grid varies one parameter away from
DEFAULTS = {"model": "lenet_variant", "c1": 6, "c3": 12, "batch_size": 50, "lr": 1.0, "weight_decay": 0.0,
            "subsampling": "toolbox", "train_size": 2000, "test_size": 1000}
GRIDS = {"batch_size": [50, 100, 200], "filters": [(2, 8), (6, 12), (10, 16)], "lr": [0.2, 0.5, 1.0, 1.2, 2.0]}
XLABEL = {"epoch": "epochs (passes over the training subset)", "step": "iterations (mini-batch updates)",
          "samples": "training samples seen"}
# the two readings of the paper's "iterations": the metrics.csv column each is counted in
READINGS = ("epoch", "step")


def grid_runs(runs: pd.DataFrame, grid: str, claim: dict | None = None) -> pd.DataFrame:
    """The runs of one grid (``batch_size``, ``filters`` or ``lr``) with a ``setting`` label column.

    A claim's reading may move the grid's fixed point (its ``args``, e.g. ``weight_decay`` for the penalty reading).
    """
    if runs.empty:
        return runs
    point = {**DEFAULTS, **{k: v for k, v in (claim or {}).get("args", {}).items() if k in DEFAULTS}}
    fixed = {k: v for k, v in point.items()
             if not (k == grid or (grid == "filters" and k in ("c1", "c3")))}
    sel = select(runs, fixed)
    if sel.empty:  # e.g. only other papers' runs: they lack the 003 columns used below
        return sel
    if grid == "filters":
        keep = sel[["c1", "c3"]].apply(tuple, axis=1).isin(GRIDS["filters"])
        sel = sel[keep].assign(setting=sel["c1"].astype(int).astype(str) + "-" + sel["c3"].astype(int).astype(str))
    else:
        sel = sel[sel[grid].isin(GRIDS[grid])]
        sel = sel.assign(setting=sel[grid].map(lambda v: f"{v:g}"))
    return sel


def curves(runs: pd.DataFrame) -> pd.DataFrame:
    """Per-evaluation metrics of ``runs`` joined with their ``setting`` and ``seed``."""
    if runs.empty:
        return pd.DataFrame()
    h = load_metrics(runs).merge(runs[["run_id", "setting", "seed"]], on="run_id")
    return h.assign(test_error_pct=100 * h["test_error"], test_acc_pct=100 * h["test_acc"],
                    train_acc_pct=100 * h["train_acc"])


READING_TITLE = {"epoch": "iterations read as epochs", "step": "iterations read as updates",
                 "samples": "against training samples"}


def _lines(h: pd.DataFrame, y: str, ax, x: str, title: str, hue_title: str, legend: bool = True, **kw) -> None:
    # mean line, band of one standard deviation over seeds; the legend beside the plot, in the settings' order
    order = _order(h["setting"].unique().tolist())
    sns.lineplot(data=h, x=x, y=y, hue="setting", hue_order=order, errorbar="sd", ax=ax, legend=legend, **kw)
    ax.set(xlabel=XLABEL[x], title=title)
    if legend:
        ax.legend(title=hue_title, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)


def _test_curve(h: pd.DataFrame, y: str, ylabel: str, x: str, max_x: float | None, title: str, hue_title: str):
    """One test curve per setting against iterations under the reading ``x`` (Fig. 4 and Fig. 6)."""
    fig, ax = plt.subplots(figsize=(11, 4), layout="constrained")
    _lines(_clip(h, x, max_x), y, ax, x, f"{title} ({READING_TITLE[x]})", hue_title)
    ax.set(ylabel=ylabel, ylim=(0, 100))
    return fig


def fig4_batch_size(h: pd.DataFrame, x: str = "epoch", max_x: float | None = None):
    """Fig. 4: test error (%) against iterations, one line per batch size."""
    return _test_curve(h, "test_error_pct", "test error (%)", x, max_x, "Fig. 4 rebuilt: test error by batch size",
                       "batch size")


def fig5_filters(h: pd.DataFrame, x: str = "epoch", max_x: float | None = None):
    """Fig. 5: training and test accuracy (%) per C1-C3 filter configuration."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4), layout="constrained", sharey=True)
    h = _clip(h, x, max_x)
    _lines(h.dropna(subset=["train_acc_pct"]), "train_acc_pct", axes[0], x, "training batches", "C1-C3 maps",
           legend=False)
    _lines(h, "test_acc_pct", axes[1], x, "test subset", "C1-C3 maps")
    axes[0].set(ylabel="accuracy (%)", ylim=(0, 100))
    fig.suptitle(f"Fig. 5 rebuilt: accuracy by filter configuration ({READING_TITLE[x]})")
    return fig


def fig6_learning_rate(h: pd.DataFrame, x: str = "epoch", max_x: float | None = None):
    """Fig. 6: test recognition rate (%) against iterations, one line per learning rate."""
    return _test_curve(h, "test_acc_pct", "test recognition rate (%)", x, max_x,
                       "Fig. 6 rebuilt: recognition rate by learning rate", "learning rate")


def fig7_mse(h: pd.DataFrame, max_samples: float | None = None):
    """Fig. 7: the toolbox's running training MSE against training samples seen, per learning rate."""
    fig, ax = plt.subplots(figsize=(11, 4), layout="constrained")
    _lines(_clip(h.dropna(subset=["train_loss_smoothed"]), "samples", max_samples), "train_loss_smoothed", ax,
           "samples", "Fig. 7 rebuilt: training MSE by learning rate", "learning rate")
    ax.set(ylabel="running MSE, 1/2 ||t - y||^2 (0.99 smoothing)")
    return fig


def _clip(h: pd.DataFrame, x: str, max_x: float | None) -> pd.DataFrame:
    return h if max_x is None else h[h[x] <= max_x]


# ---- the curve claims: each judge returns measured text, n and a verdict ---------------------------

def first_reaching(h: pd.DataFrame, acc: float, x: str) -> pd.Series:
    """Per run: the first ``x`` at which test accuracy reaches ``acc`` (inf if never)."""
    hit = h[h["test_acc"] >= acc].groupby("run_id")[x].min()
    return hit.reindex(h["run_id"].unique()).fillna(math.inf)


def _per_setting(h: pd.DataFrame, values: pd.Series) -> pd.Series:
    setting = h.drop_duplicates("run_id").set_index("run_id")["setting"]
    return values.groupby(setting).mean()


def _order(settings: list[str]) -> list[str]:
    return sorted(settings, key=lambda s: [float(p) for p in s.split("-")])


def mean_error(h: pd.DataFrame, x: str = "epoch") -> pd.Series:
    """Per run: mean test error (%) over training, the area under its error curve, under a reading of "iteration".

    Lower means faster convergence, with no threshold to choose (a threshold such as 90 % leaves settings that
    never reach it unordered). ``x="epoch"``: over the whole-epoch evaluations (those between epochs are dense
    early in a run and would weigh its start more than its end). ``x="step"``: at equal update counts, the error
    interpolated on every 10th update up to the update count all runs reached (batch 200 makes a quarter of
    batch 50's updates per epoch).
    """
    if x == "epoch":
        whole = h[np.isclose(h["epoch"], h["epoch"].round())]
        return whole.groupby("run_id")["test_error"].mean() * 100
    return error_at_steps(h).mean(axis=1) * 100


def error_at_steps(h: pd.DataFrame) -> pd.DataFrame:
    """Each run's test error (rows) at every 10th update up to the fewest updates any run made (columns)."""
    upto = h.groupby("run_id")["step"].max().min()
    grid = np.arange(10, upto + 1, 10)
    return pd.DataFrame({rid: np.interp(grid, g["step"], g["test_error"]) for rid, g in h.groupby("run_id")},
                        index=grid).T


def _stats(h: pd.DataFrame, values: pd.Series) -> pd.DataFrame:
    """Mean and standard error over seeds of a per-run value, per setting."""
    setting = h.drop_duplicates("run_id").set_index("run_id")["setting"]
    g = values.groupby(setting)
    return pd.DataFrame({"mean": g.mean(), "se": g.std(ddof=1) / np.sqrt(g.count())})


def _less(stats: pd.DataFrame, a: str, b: str) -> bool | None:
    """Is ``a`` below ``b`` by more than twice the standard error of their difference? None: within the noise."""
    diff = stats.at[b, "mean"] - stats.at[a, "mean"]
    noise = 2 * math.hypot(stats.at[a, "se"], stats.at[b, "se"])
    if not np.isfinite(noise):  # a single seed: no spread to judge by
        noise = 0.0
    return True if diff > noise else False if diff < -noise else None


def _all(outcomes: list[bool | None]) -> bool | str:
    """True if every comparison holds, False if any is reversed beyond the noise, else 'inconclusive'."""
    if any(o is False for o in outcomes):
        return False
    return True if all(outcomes) else "inconclusive"


def _fmt(series: pd.Series, unit: str = "") -> str:
    return ", ".join(f"{k}: {'never' if math.isinf(v) else f'{v:.3g}{unit}'}" for k, v in series.items())


def _fmt_stats(stats: pd.DataFrame, unit: str = "") -> str:
    return ", ".join(f"{k}: {r['mean']:.3g} ± {r['se']:.2g}{unit}" for k, r in stats.iterrows())


def _speed_text(h: pd.DataFrame, order: list[str], x: str = "epoch") -> tuple[pd.DataFrame, str]:
    speed = _stats(h, mean_error(h, x)).reindex(order)
    to90 = _per_setting(h, first_reaching(h, 0.9, x)).reindex(order)
    span = "over training" if x == "epoch" else f"over the first {int(h.groupby('run_id')['step'].max().min()):,} updates"
    unit = "epochs" if x == "epoch" else "updates"
    return speed, f"mean test error {span} (± s.e.): {_fmt_stats(speed, ' %')}; {unit} to 90 %: {_fmt(to90)}"


def _x(claim: dict) -> str:
    """The reading of "iteration" a curve claim is judged under: ``epoch`` (default) or ``step``."""
    return claim.get("args", {}).get("x", "epoch")


def judge_small_batch(runs: pd.DataFrame, claim: dict) -> dict[str, Any]:
    """Smaller batches converge faster (lower mean error over training) and end at a lower test error.

    Read per epoch, batch 50 makes four times batch 200's updates; read per update, the three are compared at
    equal update counts (the error at the last update all of them reached, for the end).
    """
    sel = grid_runs(runs, "batch_size", claim)
    h = curves(sel)
    if h.empty or h["setting"].nunique() < 3:
        return verdict_result("", 0, None)
    x = _x(claim)
    order = _order(h["setting"].unique().tolist())
    speed, text = _speed_text(h, order, x)
    end = h.groupby("run_id")["test_error"].last() if x == "epoch" else error_at_steps(h).iloc[:, -1]
    final = _stats(h, end * 100).reindex(order)
    pairs = list(zip(order, order[1:]))
    ok = _all([_less(speed, a, b) for a, b in pairs] + [_less(final, a, b) for a, b in pairs])
    return verdict_result(f"{text}; final error: {_fmt_stats(final, ' %')}", h["run_id"].nunique(), ok, sel)


def judge_over_90(runs: pd.DataFrame, claim: dict) -> dict[str, Any]:
    """Above 90 % test recognition after about 30 iterations (default setting, batch 50), under the claim's reading."""
    sel = grid_runs(runs, "batch_size", claim)
    h = curves(sel)
    h = h[h["setting"] == "50"] if not h.empty else h
    if h.empty:
        return verdict_result("", 0, None)
    at = {x: h[h[x] <= 30].groupby("run_id")["test_acc"].last().mean() * 100 for x in READINGS}
    text = f"after 30 epochs: {at['epoch']:.1f} %; after 30 updates: {at['step']:.1f} %"
    return verdict_result(text, h["run_id"].nunique(), bool(at[_x(claim)] > 90), sel[sel["batch_size"] == 50])


def judge_filters(runs: pd.DataFrame, claim: dict) -> dict[str, Any]:
    """The 6-12 configuration converges fastest: lower mean error over training than 2-8 and 10-16."""
    sel = grid_runs(runs, "filters", claim)
    h = curves(sel)
    if h.empty or h["setting"].nunique() < 3:
        return verdict_result("", 0, None)
    speed, text = _speed_text(h, _order(h["setting"].unique().tolist()), _x(claim))
    ok = _all([_less(speed, "6-12", other) for other in speed.index if other != "6-12"])
    return verdict_result(text, h["run_id"].nunique(), ok, sel)


def oscillation(h: pd.DataFrame) -> pd.Series:
    """Per run: mean absolute change of the test error (points) between evaluations, second half of training."""
    def tv(g: pd.DataFrame) -> float:
        late = g[g["epoch"] >= g["epoch"].max() / 2]["test_error"].to_numpy()
        return float(np.abs(np.diff(late)).mean() * 100) if len(late) > 1 else math.nan
    return h.groupby("run_id")[["epoch", "test_error"]].apply(tv)


def judge_lr2_oscillates(runs: pd.DataFrame, claim: dict) -> dict[str, Any]:
    """Learning rate 2.0 oscillates: its late test error moves more between evaluations than any other rate's."""
    sel = grid_runs(runs, "lr", claim)
    h = curves(sel)
    if h.empty or "2" not in set(h["setting"]) or h["setting"].nunique() < 2:
        return verdict_result("", 0, None)
    osc = _stats(h, oscillation(h)).reindex(_order(h["setting"].unique().tolist()))
    ok = _all([_less(osc, other, "2") for other in osc.index if other != "2"])
    text = f"mean |change| of test error between evaluations, 2nd half (± s.e.): {_fmt_stats(osc, ' pt')}"
    return verdict_result(text, h["run_id"].nunique(), ok, sel)


def judge_larger_lr_faster(runs: pd.DataFrame, claim: dict) -> dict[str, Any]:
    """The larger the learning rate, the faster the convergence (lower mean error over training, 0.2 to 1.2)."""
    sel = grid_runs(runs, "lr", claim)
    h = curves(sel)
    if h.empty or h["setting"].nunique() < 3:
        return verdict_result("", 0, None)
    speed, text = _speed_text(h, _order(h["setting"].unique().tolist()), _x(claim))
    upto = [s for s in speed.index if s != "2"]
    ok = _all([_less(speed, b, a) for a, b in zip(upto, upto[1:])])
    return verdict_result(text, h["run_id"].nunique(), ok, sel)


def judge_fig7_mse(runs: pd.DataFrame, claim: dict) -> dict[str, Any]:
    """Fig. 7: with lr 1.0 the running training MSE falls faster (lower mean over training) than with 0.2 and 0.5."""
    sel = grid_runs(runs, "lr", claim)
    h = curves(sel)
    if h.empty or not {"0.2", "0.5", "1"} <= set(h["setting"]):
        return verdict_result("", 0, None)
    whole = h[np.isclose(h["epoch"], h["epoch"].round()) & h["train_loss_smoothed"].notna()]
    mse = _stats(h, whole.groupby("run_id")["train_loss_smoothed"].mean()).reindex(["0.2", "0.5", "1"])
    ok = _all([_less(mse, "1", "0.5"), _less(mse, "1", "0.2")])
    return verdict_result(f"mean running MSE over training (± s.e.): {_fmt_stats(mse)}", h["run_id"].nunique(), ok,
                          sel)


def judge_larger_net_no_gain(runs: pd.DataFrame, claim: dict) -> dict[str, Any]:
    """Fig. 5: 10-16 is not clearly better than 6-12: its final test error is not lower by twice the s.e."""
    sel = grid_runs(runs, "filters", claim)
    h = curves(sel)
    if h.empty or not {"6-12", "10-16"} <= set(h["setting"]):
        return verdict_result("", 0, None)
    final = _stats(h, h.groupby("run_id")["test_error"].last() * 100).reindex(["6-12", "10-16"])
    clearly_better = _less(final, "10-16", "6-12")
    return verdict_result(f"final test error (± s.e.): {_fmt_stats(final, ' %')}", h["run_id"].nunique(),
                          clearly_better is not True, sel)


def judge_no_overfitting(runs: pd.DataFrame, claim: dict) -> dict[str, Any]:
    """No overfitting: at the default setting the final test error is within 1 point of its lowest (mean over
    seeds), under the claim's penalty reading (``args.weight_decay``)."""
    wd = claim.get("args", {}).get("weight_decay", 0.0)
    sel = select(runs, {**DEFAULTS, "weight_decay": wd}) if not runs.empty else runs
    h = curves(sel.assign(setting="default")) if not sel.empty else pd.DataFrame()
    if h.empty:
        return verdict_result("", 0, None)
    whole = h[np.isclose(h["epoch"], h["epoch"].round())]
    g = whole.groupby("run_id")["test_error"]
    rise = (g.last() - g.min()) * 100
    text = f"final minus lowest test error: {rise.mean():.2f} ± {rise.std(ddof=1):.2f} points (lambda {wd:g})"
    return verdict_result(text, len(rise), bool(rise.mean() < 1.0), sel)


# ---- Table 1 and the summary section -------------------------------------------------------------

METHODS = {  # model -> (Table 1 row, preprocessing, claim id)
    "knn1": ("1-NN", "none", "003.nn1_error"), "knn": ("k-NN (k by cross-validation)", "none", "003.knn_error"),
    "svm_deskew": ("SVM, RBF (C, gamma by cross-validation)", "deskewing", "003.svm_error"),
    "lenet_variant": ("CNN 6-12 (this paper)", "none", "003.cnn_error")}


def table1(runs: pd.DataFrame, profile: str = "paper") -> pd.DataFrame:
    """Table 1: claimed error beside the measured mean ± sd over seeds, on the subsets and on full MNIST.

    The subsets column takes the ``profile`` runs only and the full-MNIST column the ``full`` profile's:
    profiles are never pooled in one mean.
    """
    from ..summary import load_claims
    claims = {c["id"]: c for c in load_claims("003")}
    cnn_fixed = {k: v for k, v in DEFAULTS.items() if k not in ("train_size", "test_size")}
    rows = []
    for model, (name, prep, claim) in METHODS.items():
        sel = select(runs, cnn_fixed) if model == "lenet_variant" else select(runs, {"model": model})
        row = {"method": name, "preprocessing": prep, "claimed error": f"{100 * claims[claim]['claimed']:.2f}%"}
        for label, size, prof in ((f"2,000 / 1,000 subsets ({profile})", 2000, profile),
                                  ("full MNIST, 60,000 / 10,000", 60_000, "full")):
            err = (sel.loc[(sel["train_size"] == size) & (sel["profile"] == prof), "final_test_error"]
                   if not sel.empty else pd.Series(dtype=float))
            row[f"{label}: error"] = fmt_mean_sd(err, "final_test_error")
            row[f"{label}: n"] = len(err)
        rows.append(row)
    return pd.DataFrame(rows)


def history_frame(runs: list, label: str) -> pd.DataFrame:
    """The histories of :class:`~hwrlib.results.Run` objects as :func:`curves` gives them, under ``label``."""
    rows = pd.DataFrame([{"run_id": r.path.name, "run_path": str(r.path), "setting": label, "seed": r.config["seed"]}
                         for r in runs])
    return curves(rows)


def figures(runs: pd.DataFrame, profile: str = "paper") -> dict[str, Any]:
    """Fig. 4-7 from the ``profile`` grid runs (seed bands), each under both readings of "iteration" where it has
    an iteration axis, and once per penalty reading that has grid runs: name -> matplotlib Figure."""
    sel = runs[(runs["paper"] == "003") & (runs["profile"] == profile)] if not runs.empty else runs
    lambdas = sorted(sel["weight_decay"].dropna().unique()) if "weight_decay" in sel else []
    figs = {}
    for wd in lambdas:
        reading = {"args": {"weight_decay": wd}}
        h = {g: curves(grid_runs(sel, g, reading)) for g in GRIDS}
        h = {g: v if not v.empty and v["setting"].nunique() > 1 else pd.DataFrame() for g, v in h.items()}
        tag, note = ("", "") if wd == 0 else (f"_lambda{wd:g}", f", lambda {wd:g}")
        drawn = {}
        for x, max_x in (("epoch", None), ("step", 400)):
            if not h["batch_size"].empty:
                drawn[f"003_fig4_batch_size_{x}{tag}"] = fig4_batch_size(h["batch_size"], x, max_x)
            if not h["filters"].empty:
                drawn[f"003_fig5_filters_{x}{tag}"] = fig5_filters(h["filters"], x, max_x)
            if not h["lr"].empty:
                drawn[f"003_fig6_learning_rate_{x}{tag}"] = fig6_learning_rate(h["lr"], x, max_x)
        if not h["lr"].empty:
            drawn[f"003_fig7_mse{tag}"] = fig7_mse(h["lr"])
        for fig in drawn.values():
            if note:
                fig.suptitle((fig._suptitle.get_text() if fig._suptitle else fig.axes[0].get_title()) + note)
        figs.update(drawn)
    return figs


def summary_section(runs: pd.DataFrame, profile: str = "paper") -> None:
    """The summary notebook's 003 section: Table 1, then Fig. 4-7 from the grids."""
    from IPython.display import display
    sel = runs[runs["paper"] == "003"] if not runs.empty else runs
    display(table1(sel, profile).style.hide(axis="index").set_properties(**{"text-align": "left"}))
    figs = figures(runs, profile)
    if not figs:
        print(f"003: no {profile}-profile grid runs yet (`make study-003` runs them)")
    for fig in figs.values():
        display(fig)
    plt.close("all")
