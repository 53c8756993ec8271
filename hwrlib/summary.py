"""Claimed vs measured: evaluate every claim of ``claims.yaml`` against the results store.

Nothing here trains. Metric claims average over the matching complete runs (one per seed) and report
mean, std and n; a claim is *reproduced* when the mean lies within the claim's stated tolerance, *not
reproduced* otherwise, and *not yet run* when no run matches. Curve claims may also be *inconclusive*: an
ordering within the spread over seeds. A verdict comes only from runs of the protocol the claim names
(its ``where``, profile included): a notebook run at another profile is shown as an *indication* with no
verdict. This module also holds the one formatter of measured numbers (:func:`fmt`, :func:`fmt_mean_sd`).
"""
from __future__ import annotations

import importlib
import math
from importlib import resources
from typing import Any

import pandas as pd
import yaml

NOT_YET_RUN = "not yet run"
INDICATION = "indication only"


def load_claims(paper: str | None = None) -> list[dict[str, Any]]:
    """The claims of one paper (or all), from the package's claims.yaml."""
    claims = yaml.safe_load((resources.files("hwrlib") / "claims.yaml").read_text())["claims"]
    return [c for c in claims if paper is None or c["paper"] == paper]


def select(runs: pd.DataFrame, where: dict[str, Any] | None, ignore: tuple[str, ...] = ()) -> pd.DataFrame:
    """Runs whose fields equal ``where`` (a None value matches a missing/None field); keys in ``ignore`` are not checked."""
    if runs.empty:
        return runs
    mask = pd.Series(True, index=runs.index)
    for key, want in (where or {}).items():
        if key in ignore:
            continue
        if key not in runs:
            if want is None:
                continue
            return runs.iloc[0:0]
        col = runs[key]
        mask &= col.isna() if want is None else (col == want)
    return runs[mask]


# ---- the one formatter ------------------------------------------------------------------------------------

def fmt(value: float | None, metric: str = "") -> str:
    """A measured or claimed number as the tables show it: accuracies and errors in %, counts with commas."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if metric.endswith(("_acc", "_top5", "_error")):
        return f"{100 * value:.2f}%"
    if metric == "num_params":
        return f"{value:,.0f}"
    return f"{value:.3g}"


def fmt_mean_sd(values: pd.Series, metric: str = "", n: bool = False) -> str:
    """``mean ± sd`` over runs (sd with ddof 1), the mean alone for one run, ``not yet run`` for none."""
    values = pd.Series(values, dtype=float).dropna()
    if values.empty:
        return NOT_YET_RUN
    text = fmt(values.mean(), metric)
    if len(values) > 1:
        text += f" ± {fmt(values.std(ddof=1), metric)}"
    return text + (f" (n={len(values)})" if n else "")


def verdict_result(measured: str, n: int, ok: bool | str | None) -> dict[str, Any]:
    """A judge's answer: its measured text, the number of runs and the verdict (None: no runs)."""
    verdict = (NOT_YET_RUN if ok is None else ok if isinstance(ok, str) else
               "reproduced" if ok else "not reproduced")
    return {"measured": measured, "n": n, "verdict": verdict}


def within(claim: dict[str, Any], measured: float) -> bool:
    """Is ``measured`` within the claim's tolerance of its claimed value (or at least it, for ``at_least``)?"""
    claimed, tol = claim["claimed"], claim.get("tolerance", 0)
    if claim.get("tolerance_kind") == "rel":
        tol = tol * abs(claimed)
    if claim.get("direction") == "at_least":
        return measured >= claimed - tol
    return abs(measured - claimed) <= tol + 1e-12


# ---- judging ----------------------------------------------------------------------------------------------

def _model_metric(claim: dict[str, Any]) -> float | None:
    from .models import count_params, create_model, list_models, residual_adds
    if claim["model"] not in list_models():
        return None
    model = create_model(claim["model"], **claim.get("model_kwargs", {}))
    return count_params(model) if claim["metric"] == "num_params" else residual_adds(model)


def _judge(claim: dict[str, Any]):
    """The function named by a curve claim's ``judge: module:function`` (relative to hwrlib)."""
    module, name = claim["judge"].split(":")
    return getattr(importlib.import_module(f"hwrlib.{module}"), name)


def _metric(runs: pd.DataFrame, metric: str) -> pd.Series:
    if metric == "final_test_error" and "final_test_error" not in runs and "final_test_acc" in runs:
        return 1 - runs["final_test_acc"]
    return runs[metric] if metric in runs else pd.Series(dtype=float)


def evaluate(claim: dict[str, Any], runs: pd.DataFrame, ignore: tuple[str, ...] = ()) -> dict[str, Any]:
    """One claim -> measured mean, std, n and verdict (runs: rows of results.load_runs).

    ``ignore`` lists run fields the claim's filters skip; a verdict is then not a verdict (the runs need not be
    of the claim's protocol), so it reads :data:`INDICATION`: a paper notebook passes ("profile",) to set its
    own quick run beside the claim.
    """
    kind = claim["kind"]
    out = {"mean": math.nan, "std": math.nan, "n": 0, "than_mean": math.nan, "than_n": 0}
    if kind == "reference":
        return {**out, "verdict": "reference"}
    if kind == "qualitative":
        return {**out, "verdict": "judged in its notebook"}
    if kind == "curve":
        judged = _judge(claim)(runs, claim)
        if ignore and judged["verdict"] != NOT_YET_RUN:
            judged["verdict"] = INDICATION
        return {**out, **judged}
    if kind == "model":
        value = _model_metric(claim)
        if value is None:
            return {**out, "verdict": NOT_YET_RUN}
        return {**out, "mean": value, "n": 1, "verdict": "reproduced" if within(claim, value) else "not reproduced"}
    paper_runs = runs[runs["paper"] == claim["paper"]] if "paper" in runs else runs
    values = _metric(select(paper_runs, claim.get("where"), ignore), claim["metric"]).dropna()
    if values.empty:
        return {**out, "verdict": NOT_YET_RUN}
    out.update(mean=values.mean(), std=values.std(ddof=1) if len(values) > 1 else math.nan, n=len(values))
    if kind == "metric":
        ok = within(claim, out["mean"])
    else:
        than = _metric(select(paper_runs, claim.get("than"), ignore), claim["metric"]).dropna()
        if than.empty:
            return {**out, "verdict": NOT_YET_RUN}
        out.update(than_mean=than.mean(), than_n=len(than))
        if kind == "comparison":
            ok = out["mean"] > out["than_mean"]
        else:  # ratio
            out["mean"] = out["mean"] / out["than_mean"]
            ok = within(claim, out["mean"])
    if ignore:
        return {**out, "verdict": INDICATION}
    return {**out, "verdict": "reproduced" if ok else "not reproduced"}


def claims_table(runs: pd.DataFrame, paper: str | None = None, kinds: tuple[str, ...] | None = None,
                 profile: str | None = None) -> pd.DataFrame:
    """Claimed vs measured for every claim (of one paper, of some kinds), as a display-ready frame.

    ``profile``: the profile ``runs`` were trained at (a notebook's); a claim made for another profile then
    shows those runs' numbers as an indication, with no verdict.
    """
    rows = []
    for c in load_claims(paper):
        if kinds and c["kind"] not in kinds:
            continue
        other = profile is not None and (c.get("where") or {}).get("profile", profile) != profile
        r = evaluate(c, runs, ("profile",) if other else ())
        metric = c.get("metric", "")
        if c["kind"] == "curve":
            claimed, measured = c.get("claimed_text", ""), r.get("measured", "")
        elif c["kind"] == "comparison":
            claimed = "greater"
            measured = (f"{fmt(r['mean'], metric)} vs {fmt(r['than_mean'], metric)}" if r["than_n"] else
                        f"{fmt(r['mean'], metric)} vs {NOT_YET_RUN}" if r["n"] else NOT_YET_RUN)
        else:
            # a ratio is a plain number whatever its metric (a parameter ratio is not a count)
            claimed = fmt(c["claimed"], metric if c["kind"] != "ratio" else "") if "claimed" in c else ""
            measured = fmt(r["mean"], metric if c["kind"] != "ratio" else "")
            if r["n"] > 1 and c["kind"] == "metric":
                measured += f" ± {fmt(r['std'], metric)}"
        tol = c.get("tolerance")
        tolerance = ("" if tol is None else f"±{100 * tol:.0f}% rel" if c.get("tolerance_kind") == "rel"
                     else f"±{fmt(tol, metric)}" if c["kind"] == "metric" else f"±{tol:g}")
        rows.append({"paper": c["paper"], "claim": c["text"], "source": c["source"], "claimed": claimed,
                     "measured": measured, "n": r["n"] or "", "tolerance": tolerance, "verdict": r["verdict"]})
    return pd.DataFrame(rows)


def style_verdicts(table: pd.DataFrame):
    """Colour the verdict column for the notebooks; text left-aligned, no index."""
    colours = {"reproduced": "#c8e6c9", "not reproduced": "#ffcdd2", "inconclusive": "#fff3c4",
               NOT_YET_RUN: "#eeeeee", INDICATION: "#e3f2fd"}
    return (table.style.hide(axis="index")
            .map(lambda v: f"background-color: {colours.get(v, 'white')}", subset=["verdict"])
            .set_properties(**{"text-align": "left"}))
