"""Figures 4-7 and the curve claims of paper 003, rebuilt from the results store (nothing trains here).

Convergence speed is the mean test error over training (:func:`mean_error`), compared between settings seed by
seed: every setting's run of seed k shares the subset and the initialisation, so each ordering is the paired
difference's 95 % interval (:func:`hwrlib.stats.judge_difference`): it holds above 0, fails below, else inconclusive.

The paper's x-axis is "iterations" (迭代次数) without saying whether one is a mini-batch update or a
pass over the 2,000 images. Every figure can be drawn against either (``x="epoch"`` or
``x="step"``), and each claim is judged under the reading its own text supports (see
:data:`READINGS`); the other reading is reported beside it.
"""
from __future__ import annotations

import functools
import math
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import yaml

from .. import paths
from ..results import load_metrics
from ..stats import Judgement, combine, judge_above, judge_at_most, judge_difference, opposite, tolerance
from ..sections import Extras, Section, register_section
from ..summary import finding, fmt_mean_sd, protocol_runs
from ..verdict import Verdict

# each grid of Fig. 4-7 is the one its sweep trains (sweeps/003_<grid>.yaml); every other field is the config's default
GRIDS = ("batch_size", "filters", "lr")
XLABEL = {"epoch": "epochs (passes over the training subset)", "step": "iterations (mini-batch updates)",
          "samples": "training samples seen"}
# the two readings of the paper's "iterations": the metrics.csv column each is counted in
READINGS = ("epoch", "step")


@functools.lru_cache(maxsize=None)
def grid_settings(grid: str) -> dict[str, dict[str, Any]]:
    """The settings of one grid as its sweep file lists them (its list of ``grid`` values, or its ``cases``):
    label (``"50"``, ``"6-12"``, ``"0.2"``) -> the fields that setting sets, in the labels' numeric order."""
    spec = yaml.safe_load((paths.REPO_ROOT / "sweeps" / f"003_{grid}.yaml").read_text())
    points = spec["cases"] if "cases" in spec else [{grid: v} for v in spec[grid]]
    labelled = {"-".join(f"{v:g}" for v in p.values()): p for p in points}
    return {label: labelled[label] for label in _order(list(labelled))}


def grid_runs(runs: pd.DataFrame, grid: str, claim: dict | None = None) -> pd.DataFrame:
    """The runs of one grid (``batch_size``, ``filters`` or ``lr``) with a ``setting`` label column: each setting is
    the claim's protocol (its ``where``: profile and reading, default the paper profile) with the grid's fields set."""
    base = _where(claim)
    frames = [protocol_runs(runs, "003", {**base, **fields}).assign(setting=label)
              for label, fields in grid_settings(grid).items()]
    return pd.concat(frames)


def curves(runs: pd.DataFrame) -> pd.DataFrame:
    """Per-evaluation metrics of ``runs`` joined with their ``setting`` and ``seed``."""
    if runs.empty:
        return pd.DataFrame()
    h = load_metrics(runs, ["setting", "seed"])
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


# ---- the curve claims: each judge compares settings seed by seed (hwrlib.stats) ---------------------------

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


def by_setting(h: pd.DataFrame, values: pd.Series) -> dict[str, pd.Series]:
    """A per-run value (indexed by run_id) as setting -> one value per seed (indexed by seed), for pairing."""
    meta = h.drop_duplicates("run_id").set_index("run_id")[["setting", "seed"]]
    frame = meta.assign(value=values.reindex(meta.index))
    return {s: g.set_index("seed")["value"] for s, g in frame.groupby("setting")}


def below(per: dict[str, pd.Series], a: str, b: str) -> Judgement:
    """Is setting ``a``'s value below ``b``'s? The paired difference b - a over seeds (each seed fixes the subset and
    the initialisation of every setting)."""
    return judge_difference(per[b], per[a], paired=True)


def _fmt_pairs(pairs: dict[str, Judgement], unit: str) -> str:
    return "; ".join(f"{name}: {j.estimate:+.2f}{unit} [{j.low:+.2f}, {j.high:+.2f}]" for name, j in pairs.items())


def _fmt(series: pd.Series, unit: str = "") -> str:
    return ", ".join(f"{k}: {'never' if math.isinf(v) else f'{v:.3g}{unit}'}" for k, v in series.items())


def _fmt_means(per: dict[str, pd.Series], order: list[str], unit: str = "") -> str:
    return ", ".join(f"{k}: {per[k].mean():.3g}{unit}" for k in order)


def _where(claim: dict | None) -> dict:
    """The protocol fields a claim (as read) names: its profile and reading (default: the paper profile)."""
    return (claim or {}).get("where") or {"profile": "paper"}


def _x(claim: dict) -> str:
    """The reading of "iteration" a curve claim is judged under: ``epoch`` (default) or ``step``."""
    return claim.get("args", {}).get("x", "epoch")


def _judged(parts: dict[str, Judgement], text: str, h: pd.DataFrame, sel: pd.DataFrame) -> dict[str, Any]:
    """The claim's finding: every paired comparison must hold (hwrlib.stats.combine)."""
    j = combine(list(parts.values()))
    return finding(j, text, sel, n=h["seed"].nunique(), method="paired t (by seed), every comparison")


def _judged_means(what: str, per: dict[str, pd.Series], order: list[str], unit: str, pairs: dict[str, Judgement],
                  h: pd.DataFrame, sel: pd.DataFrame) -> dict[str, Any]:
    """:func:`_judged`, said as each setting's mean of ``what`` and then the paired differences."""
    text = f"{what}: {_fmt_means(per, order, unit)}; paired differences (95 % CI): {_fmt_pairs(pairs, ' pt')}"
    return _judged(pairs, text, h, sel)


def _grid(runs: pd.DataFrame, grid: str, claim: dict, need: set[str] | int = 3):
    """(curves, runs) of a claim's grid, or None when a setting it needs has no runs yet."""
    sel = grid_runs(runs, grid, claim)
    h = curves(sel)
    have = set(h["setting"]) if not h.empty else set()
    return (h, sel) if (need <= have if isinstance(need, set) else len(have) >= need) else None


def judge_small_batch(runs: pd.DataFrame, claim: dict) -> dict[str, Any]:
    """Smaller batches converge faster (lower mean error over training) and end at a lower test error.

    Read per epoch, batch 50 makes four times batch 200's updates; read per update, the three are compared at
    equal update counts (the error at the last update all of them reached, for the end).
    """
    got = _grid(runs, "batch_size", claim)
    if got is None:
        return finding(Verdict.NOT_YET_RUN)
    (h, sel), x = got, _x(claim)
    order = _order(h["setting"].unique().tolist())
    speed = by_setting(h, mean_error(h, x))
    end = h.groupby("run_id")["test_error"].last() if x == "epoch" else error_at_steps(h).iloc[:, -1]
    final = by_setting(h, end * 100)
    pairs = {f"{kind} {b} - {a}": below(per, a, b) for kind, per in (("mean error", speed), ("final error", final))
             for a, b in zip(order, order[1:])}
    text = (f"mean test error: {_fmt_means(speed, order, ' %')}; final: {_fmt_means(final, order, ' %')}; "
            f"paired differences (95 % CI): {_fmt_pairs(pairs, ' pt')}")
    return _judged(pairs, text, h, sel)


def judge_over_90(runs: pd.DataFrame, claim: dict) -> dict[str, Any]:
    """Above 90 % test recognition after about 30 iterations (default setting, batch 50), under the claim's reading:
    the seeds' mean accuracy at iteration 30 lies above 90 % (one-sample t interval)."""
    got = _grid(runs, "batch_size", claim, need={"50"})
    if got is None:
        return finding(Verdict.NOT_YET_RUN)
    h, sel = got
    h = h[h["setting"] == "50"]
    at = {x: h[h[x] <= 30].groupby("run_id")["test_acc"].last() * 100 for x in READINGS}
    per = by_setting(h, at[_x(claim)])["50"]
    j = judge_above(per, 90.0)
    text = (f"after 30 epochs: {at['epoch'].mean():.1f} %; after 30 updates: {at['step'].mean():.1f} %; "
            f"minus 90 % (95 % CI): {j.estimate:+.1f} [{j.low:+.1f}, {j.high:+.1f}] points")
    return finding(j, text, sel[sel["batch_size"] == 50], n=len(per))


def judge_filters(runs: pd.DataFrame, claim: dict) -> dict[str, Any]:
    """The 6-12 configuration converges fastest: lower mean error over training than 2-8 and 10-16."""
    got = _grid(runs, "filters", claim)
    if got is None:
        return finding(Verdict.NOT_YET_RUN)
    h, sel = got
    order = _order(h["setting"].unique().tolist())
    speed = by_setting(h, mean_error(h, _x(claim)))
    pairs = {f"{other} - 6-12": below(speed, "6-12", other) for other in order if other != "6-12"}
    return _judged_means("mean test error", speed, order, " %", pairs, h, sel)


def oscillation(h: pd.DataFrame) -> pd.Series:
    """Per run: mean absolute change of the test error (points) between evaluations, second half of training."""
    def tv(g: pd.DataFrame) -> float:
        late = g[g["epoch"] >= g["epoch"].max() / 2]["test_error"].to_numpy()
        return float(np.abs(np.diff(late)).mean() * 100) if len(late) > 1 else math.nan
    return h.groupby("run_id")[["epoch", "test_error"]].apply(tv)


def judge_lr2_oscillates(runs: pd.DataFrame, claim: dict) -> dict[str, Any]:
    """Learning rate 2.0 oscillates: its late test error moves more between evaluations than any other rate's."""
    got = _grid(runs, "lr", claim, need={"2", "1"})
    if got is None:
        return finding(Verdict.NOT_YET_RUN)
    h, sel = got
    order = _order(h["setting"].unique().tolist())
    osc = by_setting(h, oscillation(h))
    pairs = {f"2 - {other}": below(osc, other, "2") for other in order if other != "2"}
    return _judged_means("mean |change| of test error between evaluations, 2nd half", osc, order, " pt", pairs, h, sel)


def judge_larger_lr_faster(runs: pd.DataFrame, claim: dict) -> dict[str, Any]:
    """The larger the learning rate, the faster the convergence (lower mean error over training, 0.2 to 1.2)."""
    got = _grid(runs, "lr", claim)
    if got is None:
        return finding(Verdict.NOT_YET_RUN)
    h, sel = got
    order = [s for s in _order(h["setting"].unique().tolist()) if s != "2"]
    speed = by_setting(h, mean_error(h, _x(claim)))
    pairs = {f"{a} - {b}": below(speed, b, a) for a, b in zip(order, order[1:])}
    return _judged_means("mean test error", speed, order, " %", pairs, h, sel)


def judge_fig7_mse(runs: pd.DataFrame, claim: dict) -> dict[str, Any]:
    """Fig. 7: with lr 1.0 the running training MSE falls faster (lower mean over training) than with 0.2 and 0.5."""
    got = _grid(runs, "lr", claim, need={"0.2", "0.5", "1"})
    if got is None:
        return finding(Verdict.NOT_YET_RUN)
    h, sel = got
    whole = h[np.isclose(h["epoch"], h["epoch"].round()) & h["train_loss_smoothed"].notna()]
    mse = by_setting(h, whole.groupby("run_id")["train_loss_smoothed"].mean())
    pairs = {f"{other} - 1": below(mse, "1", other) for other in ("0.5", "0.2")}
    text = (f"mean running MSE over training: {_fmt_means(mse, ['0.2', '0.5', '1'])}; paired differences (95 % CI): "
            + "; ".join(f"{k}: {j.estimate:+.4f} [{j.low:+.4f}, {j.high:+.4f}]" for k, j in pairs.items()))
    return _judged(pairs, text, h, sel)


def judge_larger_net_no_gain(runs: pd.DataFrame, claim: dict) -> dict[str, Any]:
    """Fig. 5: 10-16 brings no clear gain over 6-12: its final test error is lower by less than what the 1,000-image
    test set can tell (1.96 binomial s.e. at 6-12's error). Holds when the paired gain's 95 % interval lies below
    that, fails when it lies above it."""
    got = _grid(runs, "filters", claim, need={"6-12", "10-16"})
    if got is None:
        return finding(Verdict.NOT_YET_RUN)
    h, sel = got
    final = by_setting(h, h.groupby("run_id")["test_error"].last() * 100)
    visible = 100 * tolerance(final["6-12"].mean() / 100, 0.0, int(sel["test_size"].iloc[0]))
    gain = judge_difference(final["6-12"], final["10-16"], paired=True, margin=visible)
    j = opposite(gain)
    text = (f"final test error: 6-12 {final['6-12'].mean():.2f} %, 10-16 {final['10-16'].mean():.2f} %; gain of 10-16 "
            f"(95 % CI): {gain.estimate:+.2f} [{gain.low:+.2f}, {gain.high:+.2f}] points, visible from {visible:.2f}")
    return finding(j, text, sel, n=h["seed"].nunique())


def judge_no_overfitting(runs: pd.DataFrame, claim: dict) -> dict[str, Any]:
    """No overfitting: at the default setting (under the claim's penalty reading) the final test error lies within
    1 point of the run's lowest: holds when the seeds' mean rise has its 95 % interval below 1 point, fails above."""
    sel = protocol_runs(runs, "003", _where(claim))
    h = curves(sel.assign(setting="default"))
    if h.empty:
        return finding(Verdict.NOT_YET_RUN)
    whole = h[np.isclose(h["epoch"], h["epoch"].round())]
    g = whole.groupby("run_id")["test_error"]
    rise = by_setting(h, (g.last() - g.min()) * 100)["default"]
    j = judge_at_most(rise, 1.0)
    text = (f"final minus lowest test error: {rise.mean():.2f} ± {rise.std(ddof=1):.2f} points (lambda "
            f"{_where(claim).get('weight_decay', 0):g}); 95 % CI [{j.low:.2f}, {j.high:.2f}] against at most 1 point")
    return finding(j, text, sel, n=len(rise))


# ---- Table 1 and the summary section -------------------------------------------------------------

METHODS = {  # model -> (Table 1 row, preprocessing, claim id)
    "knn1": ("1-NN (nearest neighbour)", "none", "003.nn1_error"),
    "linear1": ("1-NN read as a single-layer network (softmax, C by cross-validation)", "none", "003.nn1_error"),
    "knn": ("k-NN (k by cross-validation)", "none", "003.knn_error"),
    "svm_deskew": ("SVM, RBF (C, gamma by cross-validation)", "deskewing", "003.svm_error"),
    "lenet_variant": ("CNN 6-12 (this paper)", "none", "003.cnn_error")}


def table1(runs: pd.DataFrame, profile: str = "paper") -> pd.DataFrame:
    """Table 1: claimed error beside the measured mean ± sd over seeds, on the subsets and on full MNIST.

    The subsets column takes the ``profile`` runs only and the full-MNIST column the ``full`` profile's:
    profiles are never pooled in one mean.
    """
    from ..summary import load_claims
    claims = {c["id"]: c for c in load_claims("003")}
    rows = []
    for model, (name, prep, claim) in METHODS.items():
        where = {**claims[claim]["where"], "model": model}
        row = {"method": name, "preprocessing": prep, "claimed error": f"{100 * claims[claim]['claimed']:.2f}%"}
        full = {k: v for k, v in where.items() if k not in ("train_size", "test_size")}
        for label, params in ((f"2,000 / 1,000 subsets ({profile})", {**where, "profile": profile}),
                              ("full MNIST, 60,000 / 10,000", {**full, "profile": "full"})):
            err = protocol_runs(runs, "003", params)
            err = err["final_test_error"] if not err.empty else pd.Series(dtype=float)
            row[f"{label}: error"] = fmt_mean_sd(err, "final_test_error")
            row[f"{label}: n"] = len(err)
        rows.append(row)
    return pd.DataFrame(rows)


def metrics_frame(runs: list, label: str) -> pd.DataFrame:
    """The histories of :class:`~hwrlib.results.Run` objects as :func:`curves` gives them, under ``label``."""
    rows = pd.DataFrame([{"run_id": r.path.name, "run_path": str(r.path), "setting": label, "seed": r.config["seed"]}
                         for r in runs])
    return curves(rows)


def figures(runs: pd.DataFrame, profile: str = "paper") -> dict[str, Any]:
    """Fig. 4-7 from the ``profile`` grid runs (seed bands), each under both readings of "iteration" where it has
    an iteration axis, and once per penalty reading that has grid runs: name -> matplotlib Figure."""
    sel = runs[(runs["paper"] == "003") & (runs["profile"] == profile)]
    lambdas = sorted(sel["weight_decay"].dropna().unique()) if "weight_decay" in sel else []
    figs = {}
    for wd in lambdas:
        reading = {"where": {"profile": profile, "weight_decay": wd}}
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
            if note and fig._suptitle:
                fig.suptitle(fig._suptitle.get_text() + note)
            elif note:  # one title: a suptitle over the axes' own would stack two
                fig.axes[0].set_title(fig.axes[0].get_title() + note)
        figs.update(drawn)
    return figs


def extras(runs: pd.DataFrame) -> Extras:
    """After 003's claims: Table 1 (paper and full profiles), then Fig. 4-7 rebuilt from the paper grids."""
    studied = runs[runs["profile"].isin(["paper", "full"])]
    return Extras(figures(studied), ["**Table 1**", table1(studied)])


SECTION = register_section(Section(
    "003", "Improved LeNet-5 (sigmoid/MSE) on 2,000/1,000 MNIST subsets", command="make study-003 study-003-readings",
    page={"profile": "paper", "replicas": 5}, extras=extras))
