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
import itertools
import math
from importlib import resources
from typing import Any

import pandas as pd
import yaml

NOT_YET_RUN = "not yet run"
INDICATION = "indication only"


def _claims_file() -> dict[str, Any]:
    return yaml.safe_load((resources.files("hwrlib") / "claims.yaml").read_text())


def load_claims(paper: str | None = None) -> list[dict[str, Any]]:
    """The claims of one paper (or all), from the package's claims.yaml."""
    return [c for c in _claims_file()["claims"] if paper is None or c["paper"] == paper]


def load_readings() -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
    """paper -> reading axis -> reading name -> its spec (``where``, ``than``, ``metric``, ``args``, ``source``)."""
    return _claims_file().get("readings", {})


def claim_readings(claim: dict[str, Any], readings: dict | None = None) -> list[tuple[str, dict[str, Any]]]:
    """``(reading, claim as read under it)`` for every combination of the claim's reading axes.

    A claim without readings has one, ``as stated``. A reading's ``where``/``than`` add to the claim's filters,
    its ``metric`` replaces the claim's, its ``args`` go to a curve judge.
    """
    axes = claim.get("readings") or []
    if not axes:
        return [("as stated", claim)]
    specs = (readings if readings is not None else load_readings())[claim["paper"]]
    out = []
    for combo in itertools.product(*[list(specs[a].items()) for a in axes]):
        c = dict(claim)
        for _, spec in combo:
            for key in ("where", "than"):
                if key in spec and key in c:
                    c[key] = {**c[key], **spec[key]}
            if "metric" in spec:
                c["metric"] = spec["metric"]
            if "args" in spec:
                c["args"] = {**c.get("args", {}), **spec["args"]}
        out.append((" + ".join(name for name, _ in combo), c))
    return out


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


def verdict_result(measured: str, n: int, ok: bool | str | None, runs: pd.DataFrame | None = None) -> dict[str, Any]:
    """A judge's answer: its measured text, the number of runs, the verdict (None: no runs) and what the runs cost."""
    verdict = (NOT_YET_RUN if ok is None else ok if isinstance(ok, str) else
               "reproduced" if ok else "not reproduced")
    return {"measured": measured, "n": n, "verdict": verdict, **cost(runs)}


def cost(runs: pd.DataFrame | None) -> dict[str, Any]:
    """What the runs took: ``{"spent": {run_path: (wall minutes, on a GPU)}}`` (a grouped 003 run's time is its
    group's, so each replica counts for its share). Keyed by run, so a run two readings share counts once."""
    if runs is None or runs.empty or not {"wall_seconds", "train_seconds"} & set(runs):
        return {"spent": {}}
    seconds = runs["wall_seconds"] if "wall_seconds" in runs else pd.Series(math.nan, index=runs.index)
    if "train_seconds" in runs:  # 003's baselines record their fit time only; a resumed run's wall time is its
        seconds = pd.concat([seconds, runs["train_seconds"]], axis=1).max(axis=1)  # last session's, training all
    share = seconds.fillna(0) / (runs["replicas"].fillna(1) if "replicas" in runs else 1)
    gpu = (runs["device"].astype(str).str.startswith(("cuda", "mps")) if "device" in runs
           else pd.Series(False, index=runs.index))
    paths = runs["run_path"] if "run_path" in runs else runs.index.astype(str)
    return {"spent": {p: (m / 60, bool(g)) for p, m, g in zip(paths, share, gpu)}}


def minutes(spent: dict[str, tuple[float, bool]]) -> tuple[float, float]:
    """CPU and GPU minutes of a :func:`cost` record."""
    return (sum(m for m, g in spent.values() if not g), sum(m for m, g in spent.values() if g))


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
    def value(name: str) -> float:
        model = create_model(name, **claim.get("model_kwargs", {}))
        return count_params(model) if claim["metric"] == "num_params" else residual_adds(model)
    return value(claim["model"]) / value(claim["than_model"]) if "than_model" in claim else value(claim["model"])


def _judge(claim: dict[str, Any]):
    """The function named by a curve claim's ``judge: module:function`` (relative to hwrlib)."""
    module, name = claim["judge"].split(":")
    return getattr(importlib.import_module(f"hwrlib.{module}"), name)


def _metric(runs: pd.DataFrame, metric: str) -> pd.Series:
    if metric == "final_test_error" and "final_test_error" not in runs and "final_test_acc" in runs:
        return 1 - runs["final_test_acc"]
    return runs[metric] if metric in runs else pd.Series(dtype=float)


def _greater(a: pd.Series, b: pd.Series) -> bool | str:
    """Is ``a``'s mean above ``b``'s by more than twice the standard error of the difference (the rule of 003's
    curve claims)? False when below by as much, ``inconclusive`` in between; one run each: the plain order."""
    diff = a.mean() - b.mean()
    se = math.sqrt((a.var(ddof=1) / len(a) if len(a) > 1 else 0) + (b.var(ddof=1) / len(b) if len(b) > 1 else 0))
    if diff > 2 * se:
        return True
    return False if diff < -2 * se else "inconclusive"


def evaluate(claim: dict[str, Any], runs: pd.DataFrame, ignore: tuple[str, ...] = ()) -> dict[str, Any]:
    """One claim -> measured mean, std, n and verdict (runs: rows of results.load_runs).

    ``ignore`` lists run fields the claim's filters skip; a verdict is then not a verdict (the runs need not be
    of the claim's protocol), so it reads :data:`INDICATION`: a paper notebook passes ("profile",) to set its
    own quick run beside the claim.
    """
    kind = claim["kind"]
    out = {"mean": math.nan, "std": math.nan, "n": 0, "than_mean": math.nan, "than_n": 0, **cost(None)}
    if kind == "reference":
        return {**out, "verdict": "reference"}
    if kind == "qualitative":
        return {**out, "verdict": "judged in its notebook"}
    if kind == "curve":
        if ignore and "where" in claim:  # the judge selects by the claim's filters: drop the ignored ones
            claim = {**claim, "where": {k: v for k, v in claim["where"].items() if k not in ignore}}
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
    chosen = select(paper_runs, claim.get("where"), ignore)
    values = _metric(chosen, claim["metric"]).dropna()
    if values.empty:
        return {**out, "verdict": NOT_YET_RUN}
    out.update(mean=values.mean(), std=values.std(ddof=1) if len(values) > 1 else math.nan, n=len(values),
               **cost(chosen.loc[values.index]))
    if kind == "metric":
        ok = within(claim, out["mean"])
    else:
        other = select(paper_runs, claim.get("than"), ignore)
        than = _metric(other, claim["metric"]).dropna()
        if than.empty:
            return {**out, "verdict": NOT_YET_RUN}
        out.update(than_mean=than.mean(), than_n=len(than),
                   spent={**out["spent"], **cost(other.loc[than.index])["spent"]})
        if kind == "comparison":
            ok = _greater(values, than)
        else:  # ratio
            out["mean"] = out["mean"] / out["than_mean"]
            ok = within(claim, out["mean"])
    if ignore:
        return {**out, "verdict": INDICATION}
    return {**out, "verdict": ok if isinstance(ok, str) else "reproduced" if ok else "not reproduced"}


def claims_table(runs: pd.DataFrame, paper: str | None = None, kinds: tuple[str, ...] | None = None,
                 profile: str | None = None) -> pd.DataFrame:
    """Claimed vs measured for every claim (of one paper, of some kinds) under each of its readings.

    ``profile``: the profile ``runs`` were trained at (a notebook's); a claim made for another profile then
    shows those runs' numbers as an indication, with no verdict.
    """
    rows = []
    for c in load_claims(paper):
        if kinds and c["kind"] not in kinds:
            continue
        for reading, rc in claim_readings(c):
            rows.append({"paper": c["paper"], "id": c["id"], "claim": c["text"], "reading": reading,
                         **_row(rc, runs, profile)})
    return pd.DataFrame(rows)


def _row(c: dict[str, Any], runs: pd.DataFrame, profile: str | None) -> dict[str, Any]:
    other = profile is not None and (c.get("where") or {}).get("profile", profile) != profile
    r = evaluate(c, runs, ("profile",) if other else ())
    metric = c.get("metric", "")
    if c["kind"] == "curve":
        claimed, measured = c.get("claimed_text", ""), r.get("measured", "")
    elif c["kind"] == "comparison":
        claimed = "greater (by > 2 s.e.)"
        measured = (f"{fmt(r['mean'], metric)} vs {fmt(r['than_mean'], metric)}" if r["than_n"] else
                    f"{fmt(r['mean'], metric)} vs {NOT_YET_RUN}" if r["n"] else NOT_YET_RUN)
    else:
        # a ratio is a plain number whatever its metric (a parameter ratio is not a count)
        plain = c["kind"] == "ratio" or "than_model" in c
        claimed = fmt(c["claimed"], "" if plain else metric) if "claimed" in c else ""
        measured = fmt(r["mean"], "" if plain else metric) or (NOT_YET_RUN if c["kind"] != "reference"
                                                                            else "")
        if r["n"] > 1 and c["kind"] == "metric":
            measured += f" ± {fmt(r['std'], metric)}"
        if c["kind"] == "ratio" and r["n"] and not r["than_n"]:  # one side run: its mean is not the ratio
            measured = f"{fmt(r['mean'], metric)} vs {NOT_YET_RUN}"
    tol = c.get("tolerance")
    tolerance = ("" if tol is None else f"±{100 * tol:.0f}% rel" if c.get("tolerance_kind") == "rel"
                 else f"±{fmt(tol, metric)}" if c["kind"] == "metric" else f"±{tol:g}")
    return {"source": c["source"], "claimed": claimed, "measured": measured, "n": r["n"] or "",
            "tolerance": tolerance, "verdict": r["verdict"], "spent": r["spent"]}


def robust_verdict(verdicts: dict[str, str]) -> str:
    """One verdict over a claim's readings: *holds under every reading*, *holds only under ...*, *fails under every
    reading*, *inconclusive* (none holds, some not judged: inconclusive or not yet run), or *not yet run*."""
    if len(verdicts) == 1:
        return next(iter(verdicts.values()))
    holds = [r for r, v in verdicts.items() if v == "reproduced"]
    fails = [r for r, v in verdicts.items() if v == "not reproduced"]
    if len(holds) == len(verdicts):
        return "holds under every reading"
    if len(fails) == len(verdicts):
        return "fails under every reading"
    if holds:
        open_ = {v: sum(x == v for x in verdicts.values()) for v in ("inconclusive", NOT_YET_RUN)}
        note = ", ".join(f"{n} {v}" for v, n in open_.items() if n)
        prefix = "so far: " if open_[NOT_YET_RUN] else ""
        return f"holds only under {'; '.join(holds)}" + (f" ({prefix}{note})" if note else "")
    if not fails and all(v == NOT_YET_RUN for v in verdicts.values()):
        return NOT_YET_RUN
    return "inconclusive"


def robust_table(runs: pd.DataFrame, paper: str | None = None) -> pd.DataFrame:
    """One row per judged claim: its verdict under each reading, the robust verdict and the compute its runs took."""
    per = claims_table(runs, paper)
    per = per[~per["verdict"].isin(["reference", "judged in its notebook"])]
    rows = []
    for cid, g in per.groupby("id", sort=False):
        verdicts = dict(zip(g["reading"], g["verdict"]))
        cpu, gpu = minutes({p: v for spent in g["spent"] for p, v in spent.items()})  # each run once
        by_verdict: dict[str, list[str]] = {}
        for r, v in verdicts.items():
            by_verdict.setdefault(v, []).append(r)
        rows.append({"paper": g["paper"].iloc[0], "claim": g["claim"].iloc[0], "source": g["source"].iloc[0],
                     "readings": len(g), "per reading": "; ".join(f"{v}: {', '.join(rs)}" for v, rs in by_verdict.items())
                     if len(g) > 1 else g["measured"].iloc[0],
                     "verdict": robust_verdict(verdicts),
                     "cost": (f"{cpu:.0f} CPU min" if cpu else "") + (f", {gpu:.0f} GPU min" if gpu else "")})
    return pd.DataFrame(rows)


def damaged_table(runs: pd.DataFrame) -> pd.DataFrame:
    """The records :func:`hwrlib.results.load_runs` skipped as damaged: path and what is wrong (empty: none)."""
    return pd.DataFrame(runs.attrs.get("damaged", []), columns=["record", "problem"])


def style_table(table: pd.DataFrame):
    """A table as the notebooks show it: no index column, text left-aligned (numbers carry their unit as text)."""
    return table.style.hide(axis="index").set_properties(**{"text-align": "left"})


def style_verdicts(table: pd.DataFrame):
    """Colour the verdict column for the notebooks; text left-aligned, no index."""
    colours = {"reproduced": "#c8e6c9", "not reproduced": "#ffcdd2", "inconclusive": "#fff3c4",
               NOT_YET_RUN: "#eeeeee", INDICATION: "#e3f2fd", "holds under every reading": "#c8e6c9",
               "fails under every reading": "#ffcdd2"}

    def colour(v: str) -> str:
        c = colours.get(v, "#dcedc8" if str(v).startswith("holds only") else "white")
        return f"background-color: {c}"
    shown = table.drop(columns=[c for c in ("id", "spent") if c in table])
    # the claim keeps room to read; a long measured text (003's curve judges) wraps instead of squeezing it
    widths = [{"selector": f"td.col{shown.columns.get_loc(c)}", "props": props} for c, props in
              (("claim", "min-width: 22em;"), ("measured", "max-width: 36em;"), ("per reading", "max-width: 36em;"))
              if c in shown]
    return (shown.style.hide(axis="index").map(colour, subset=["verdict"])
            .set_properties(**{"text-align": "left", "vertical-align": "top"}).set_table_styles(widths))
