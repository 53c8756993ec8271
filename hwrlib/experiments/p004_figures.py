"""Fig. 4, Table 2 and the two structural ratios of paper 004, rebuilt from run records (nothing trains here).

Every function takes rows like those of :func:`hwrlib.results.load_runs` (or
:func:`hwrlib.results.runs_frame`): one row per trained model, its config and final record.
"""
from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from matplotlib.ticker import MaxNLocator

from ..results import load_metrics
from ..stats import combine, judge_difference
from ..sections import Extras, Section, register_section
from ..summary import finding, fmt, fmt_mean_sd, load_claims, protocol_runs
from ..verdict import Verdict

# model -> (Table 2 row, claim id of its accuracy)
METHODS = {"alexnet_ir": ("improved model (this paper)", "004.improved.accuracy"),
           "alexnet_mod": ("AlexNet, modified for 28x28", "004.alexnet.accuracy"),
           "lenet5": ("LeNet-5", "004.lenet5.accuracy")}
# the other rows of Table 2, quoted by the paper from its references
QUOTED = {"ref. [1]": 0.9936, "ref. [12]": 0.9890, "ref. [13]": 0.9922, "ref. [14]": 0.9934, "ref. [15]": 0.9937}
CLAIMED_SECONDS = {"alexnet_mod": 1400.0, "alexnet_ir": 280.0}  # s per epoch on the paper's laptop CPU (§3.3)
LABELS = {"alexnet_ir": "improved (Inception-ResNet)", "alexnet_mod": "AlexNet (modified)", "lenet5": "LeNet-5"}


def curves(runs: pd.DataFrame) -> pd.DataFrame:
    """Per-epoch metrics of ``runs`` with their model (labelled), seed, and test accuracy in %."""
    if runs.empty:
        return pd.DataFrame()
    runs = runs.assign(run_id=runs["run_path"])
    h = load_metrics(runs, ["model", "seed"])
    return h.assign(test_acc_pct=100 * h["test_acc"], label=h["model"].map(LABELS).fillna(h["model"]))


def fig4(h: pd.DataFrame, title: str = ""):
    """Fig. 4: (a) training loss and (b) test accuracy per epoch, one line per model (band: sd over seeds)."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4), layout="constrained")
    order = [LABELS[m] for m in METHODS if LABELS[m] in set(h["label"])]
    for ax, y in ((ax1, "train_loss"), (ax2, "test_acc_pct")):
        sns.lineplot(data=h, x="epoch", y=y, hue="label", hue_order=order, errorbar="sd", marker="o", ax=ax,
                     legend=ax is ax2)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax2.legend(title="model", loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    ax1.set(xlabel="epoch (pass over the training images)", ylabel="training loss, cross-entropy (nats)",
            title="(a) training loss")
    lo, hi = ax2.get_ylim()
    ax2.set(xlabel="epoch (pass over the training images)", ylabel=f"test accuracy (%; the axis spans {lo:.2f}-{hi:.2f})",
            title="(b) test accuracy")
    fig.suptitle(title or "Fig. 4 rebuilt")
    return fig


# ---- the Fig. 4 claims: each epoch a paired comparison (hwrlib.stats), every epoch must hold -----------------

def _judge(runs: pd.DataFrame, claim: dict, column: str, sign: float, unit: str, scale: float) -> dict:
    """The improved model against the modified AlexNet, each the claim's protocol with its model set, at every epoch
    both ran: ``sign * (improved - AlexNet)`` of ``column`` per seed, paired by seed."""
    where = claim.get("where") or {"profile": "paper"}
    ir = protocol_runs(runs, "004", {**where, "model": "alexnet_ir"})
    mod = protocol_runs(runs, "004", {**where, "model": "alexnet_mod"})
    if ir.empty or mod.empty:
        return finding(Verdict.NOT_YET_RUN, runs=pd.concat([ir, mod]))
    wide = {m: curves(r).pivot_table(index="epoch", columns="seed", values=column) * scale
            for m, r in (("ir", ir), ("mod", mod))}
    epochs = [e for e in wide["ir"].index.intersection(wide["mod"].index) if e > 0]
    parts = [judge_difference(sign * wide["ir"].loc[e].dropna(), sign * wide["mod"].loc[e].dropna(), paired=True)
             for e in epochs]
    j = combine(parts)
    first, last = epochs[0], epochs[-1]
    text = (f"improved vs AlexNet over epochs 1-{last}: epoch {first}: {wide['ir'].loc[first].mean():.3g}{unit} vs "
            f"{wide['mod'].loc[first].mean():.3g}{unit}, epoch {last}: {wide['ir'].loc[last].mean():.3g}{unit} vs "
            f"{wide['mod'].loc[last].mean():.3g}{unit}; {sum(p.verdict is Verdict.REPRODUCED for p in parts)} of "
            f"{len(parts)} epochs decided in the claim's favour")
    return finding(j, text, pd.concat([ir, mod]), n=ir["seed"].nunique(), than_n=mod["seed"].nunique())


def judge_loss_lower(runs: pd.DataFrame, claim: dict) -> dict:
    """Fig. 4(a): the improved model's training loss is below AlexNet's at every epoch both ran."""
    return _judge(runs, claim, "train_loss", -1.0, "", 1.0)


def judge_accuracy_higher(runs: pd.DataFrame, claim: dict) -> dict:
    """Fig. 4(b): the improved model's test accuracy is above AlexNet's at every epoch both ran."""
    return _judge(runs, claim, "test_acc", 1.0, " %", 100.0)


def table2(runs: pd.DataFrame) -> pd.DataFrame:
    """Table 2: claimed test accuracy beside the measured mean ± sd over seeds, one block per data-split reading.

    ``best_val_test_acc`` is the test accuracy of the weights early stopping keeps (the best validation epoch),
    what the paper's protocol reports; ``final_test_acc`` is the last epoch's, shown beside it. Under the
    ``60k_val_test`` reading the validation set is the test set, which flatters the first.
    """
    claims = {c["id"]: c for c in load_claims("004")}
    splits = sorted(runs["train_split"].dropna().unique()) if "train_split" in runs and not runs.empty else [None]
    profile = runs["profile"].iloc[0] if not runs.empty else "paper"
    rows = []
    for split in splits:
        for model, (name, claim) in METHODS.items():
            where = {**claims[claim]["where"], "profile": profile, **({"train_split": split} if split else {})}
            sel = protocol_runs(runs, "004", where)
            get = lambda col: sel[col] if col in sel else pd.Series(dtype=float)  # noqa: E731
            rows.append({"reading": split or "", "method": name, "claimed": fmt(claims[claim]["claimed"], "test_acc"),
                         "measured (best validation epoch)": fmt_mean_sd(get("best_val_test_acc"), "test_acc"),
                         "measured (last epoch)": fmt_mean_sd(get("final_test_acc"), "test_acc"), "n": len(sel),
                         "epochs run": fmt_mean_sd(get("epochs"), "") if len(sel) else "",
                         "training images": f"{int(sel['num_train'].iloc[0]):,}" if len(sel) else ""})
    rows += [{"reading": "", "method": f"{ref} (quoted)", "claimed": fmt(acc, "test_acc"),
              "measured (best validation epoch)": "", "measured (last epoch)": "", "n": "", "epochs run": "",
              "training images": ""} for ref, acc in QUOTED.items()]
    return pd.DataFrame(rows)


def ratios(runs: pd.DataFrame) -> pd.DataFrame:
    """Parameters and seconds per epoch, improved / AlexNet, measured per device beside the claimed 1/26 and 1/5.

    Seconds per epoch are scaled to a 50,000-image epoch (training only, from images/s) so that subsets compare
    with the paper's 1400 s and 280 s.
    """
    from ..models import count_params, create_model
    params = {m: count_params(create_model(m)) for m in CLAIMED_SECONDS}
    rows = [{"quantity": "parameters", "device": "", "AlexNet": f"{params['alexnet_mod']:,}",
             "improved": f"{params['alexnet_ir']:,}", "measured ratio": params["alexnet_ir"] / params["alexnet_mod"],
             "claimed": "2.1e7 -> 8e5", "claimed ratio": 1 / 26}]
    sel = runs[runs["model"].isin(list(CLAIMED_SECONDS))]
    for device, g in sel.groupby("device"):
        sec = (50_000 / g.groupby("model")["train_images_per_second"].mean()).to_dict()
        if len(sec) < 2:
            continue
        rows.append({"quantity": "seconds per 50,000-image epoch", "device": device,
                     "AlexNet": f"{sec['alexnet_mod']:,.0f}", "improved": f"{sec['alexnet_ir']:,.0f}",
                     "measured ratio": sec["alexnet_ir"] / sec["alexnet_mod"], "claimed": "1400 s -> 280 s",
                     "claimed ratio": 1 / 5})
    return pd.DataFrame(rows).round({"measured ratio": 3, "claimed ratio": 3})


def figures(runs: pd.DataFrame, profile: str = "paper") -> dict[str, Any]:
    """Fig. 4 per data-split reading from the ``profile`` runs: name -> Figure (none without runs)."""
    sel = runs[(runs["paper"] == "004") & (runs["profile"] == profile)]
    if sel.empty:
        return {}
    splits = sel["train_split"].fillna("50k_val10k") if "train_split" in sel else pd.Series("50k_val10k", sel.index)
    return {f"004_fig4_{split}": fig4(curves(sel[splits == split]), f"Fig. 4 rebuilt: {profile} profile, "
                                      f"{split} reading, mean and sd over seeds") for split in sorted(splits.unique())}


def extras(runs: pd.DataFrame) -> Extras:
    """After 004's claims: Table 2 and Fig. 4 rebuilt, from its paper runs."""
    paper = runs[(runs["paper"] == "004") & (runs["profile"] == "paper")]
    return Extras(figures(paper), ["**Table 2**", table2(paper)])


SECTION = register_section(Section(
    "004", "Improved AlexNet with an Inception-ResNet block",
    command="make paper (sweeps/004_table2.yaml: the 60k reading, sweeps/004_paper.yaml: the 50k/10k one; hours per "
            "AlexNet seed on a CPU, minutes on a GPU)",
    page={"profile": "paper", "train_split": "60k_val_test"}, extras=extras))
