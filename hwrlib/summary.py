"""Claimed vs measured: evaluate every claim of ``claims.yaml`` against the results store.

Nothing here trains. Metric claims average over the matching complete runs (one per
seed) and report mean, std and n; a claim is *reproduced* when the mean lies within
the claim's stated tolerance, *not reproduced* otherwise, and *not yet run* when no
run matches. Curve claims may also be *inconclusive*: an ordering within the spread over seeds.
"""
from __future__ import annotations

import importlib
import math
import operator
from importlib import resources
from typing import Any

import pandas as pd
import yaml

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


def residual_adds(model) -> int:
    """Additions in the traced forward pass whose both inputs are tensors: skip connections."""
    import torch.fx
    adds = {operator.add, operator.iadd, "add", "add_"}
    graph = torch.fx.symbolic_trace(model).graph
    return sum(1 for n in graph.nodes if n.op in ("call_function", "call_method") and n.target in adds
               and len(n.args) == 2 and all(isinstance(a, torch.fx.Node) for a in n.args))


def _model_metric(claim: dict[str, Any]) -> float | None:
    from .models import count_params, create_model, list_models
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


def _within(claim: dict[str, Any], measured: float) -> bool:
    claimed, tol = claim["claimed"], claim.get("tolerance", 0)
    if claim.get("tolerance_kind") == "rel":
        tol = tol * abs(claimed)
    if claim.get("direction") == "at_least":
        return measured >= claimed - tol
    return abs(measured - claimed) <= tol + 1e-12


def evaluate(claim: dict[str, Any], runs: pd.DataFrame, ignore: tuple[str, ...] = ()) -> dict[str, Any]:
    """One claim -> measured mean, std, n and verdict (runs: rows of results.load_runs).

    ``ignore`` lists run fields the claim's filters skip: a paper notebook passes ("profile",)
    to set its own quick run beside the claim, as an indication rather than a verdict.
    """
    kind = claim["kind"]
    out = {"mean": math.nan, "std": math.nan, "n": 0, "than_mean": math.nan}
    if kind == "reference":
        return {**out, "verdict": "reference"}
    if kind == "qualitative":
        return {**out, "verdict": "judged in its notebook"}
    if kind == "curve":
        return {**out, **_judge(claim)(runs, claim)}
    if kind == "model":
        value = _model_metric(claim)
        if value is None:
            return {**out, "verdict": "not yet run"}
        return {**out, "mean": value, "n": 1, "verdict": "reproduced" if _within(claim, value) else "not reproduced"}
    paper_runs = runs[runs["paper"] == claim["paper"]] if "paper" in runs else runs
    values = _metric(select(paper_runs, claim.get("where"), ignore), claim["metric"]).dropna()
    if values.empty:
        return {**out, "verdict": "not yet run"}
    out.update(mean=values.mean(), std=values.std(ddof=1) if len(values) > 1 else math.nan, n=len(values))
    if kind == "metric":
        ok = _within(claim, out["mean"])
    else:
        than = _metric(select(paper_runs, claim.get("than"), ignore), claim["metric"]).dropna()
        if than.empty:
            return {**out, "verdict": "not yet run"}
        out["than_mean"] = than.mean()
        if kind == "comparison":
            ok = out["mean"] > out["than_mean"]
        else:  # ratio
            out["mean"] = out["mean"] / out["than_mean"]
            ok = _within(claim, out["mean"])
    return {**out, "verdict": "reproduced" if ok else "not reproduced"}


def _fmt(value: float, metric: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if metric.endswith(("_acc", "_top5", "_error")):
        return f"{100 * value:.2f}%"
    if metric == "num_params":
        return f"{value:,.0f}"
    return f"{value:.3g}"


def claims_table(runs: pd.DataFrame, paper: str | None = None, ignore: tuple[str, ...] = (),
                 kinds: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Claimed vs measured for every claim (of one paper, of some kinds), as a display-ready frame."""
    rows = []
    for c in load_claims(paper):
        if kinds and c["kind"] not in kinds:
            continue
        r = evaluate(c, runs, ignore)
        metric = c.get("metric", "")
        if c["kind"] == "curve":
            claimed, measured = c.get("claimed_text", ""), r.get("measured", "")
        elif c["kind"] == "comparison":
            claimed, measured = "greater", (f"{_fmt(r['mean'], metric)} vs {_fmt(r['than_mean'], metric)}"
                                            if r["n"] else "")
        else:
            # a ratio is a plain number whatever its metric (a parameter ratio is not a count)
            claimed = _fmt(c["claimed"], metric if c["kind"] != "ratio" else "") if "claimed" in c else ""
            measured = _fmt(r["mean"], metric if c["kind"] != "ratio" else "")
            if r["n"] > 1 and c["kind"] == "metric":
                measured += f" ± {_fmt(r['std'], metric)}"
        tol = c.get("tolerance")
        tolerance = ("" if tol is None else f"±{100 * tol:.0f}% rel" if c.get("tolerance_kind") == "rel"
                     else f"±{_fmt(tol, metric)}" if c["kind"] == "metric" else f"±{tol:g}")
        rows.append({"paper": c["paper"], "claim": c["text"], "source": c["source"], "claimed": claimed,
                     "measured": measured, "n": r["n"] or "", "tolerance": tolerance, "verdict": r["verdict"]})
    return pd.DataFrame(rows)


def style_verdicts(table: pd.DataFrame):
    """Colour the verdict column for the notebooks."""
    colours = {"reproduced": "#c8e6c9", "not reproduced": "#ffcdd2", "inconclusive": "#fff3c4", "not yet run": "#eeeeee"}
    return (table.style.hide(axis="index")
            .map(lambda v: f"background-color: {colours.get(v, 'white')}", subset=["verdict"]))
