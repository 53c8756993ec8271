"""Claimed vs measured: every claim of ``claims.yaml`` judged against the results store (nothing here trains).

The verdict path, in order: a claim (``claims.yaml``) under each of its readings names one complete **protocol**
per side: the paper's experiment config at the claim's profile with the claim's and the reading's fields set
(:func:`protocol`). Only runs of exactly that protocol, field by field, seeds aside, are its evidence
(:func:`protocol_runs`); nothing a claim leaves unnamed is a wildcard. :mod:`hwrlib.stats` judges them and returns a
:class:`~hwrlib.verdict.Verdict`; :func:`robust_table` sums a claim up over its readings. A notebook run at another
profile is set beside the claim as an *indication*, never a verdict. A claim about time (``kind: timing``) reads a
committed timing record instead of runs (:func:`timing_record`). :func:`verdict_frame` is what
``results/verdicts.csv`` holds. This module also holds the one formatter of measured numbers (:func:`fmt`).
"""
from __future__ import annotations

import functools
import importlib
import itertools
import json
import math
import re
from decimal import Decimal
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd
import yaml

from . import paths, stats
from .results import load_metrics, protocol_id
from .verdict import Robust, Verdict, robust

NOT_YET_RUN = Verdict.NOT_YET_RUN.label
_NUMBER = re.compile(r"^\s*(?P<num>[0-9][0-9,]*(?:\.(?P<dec>[0-9]+))?)(?:e(?P<exp>[+-]?[0-9]+))?\s*(?P<pct>%)?\s*$")


class ClaimError(ValueError):
    """A claim whose protocol no experiment config can express; the message names the claim."""


# ---- claims and readings ----------------------------------------------------------------------------------

def parse_claimed(text: Any) -> tuple[float, float]:
    """A number as the paper prints it -> (value, resolution): ``"99.31%"`` -> (0.9931, 0.0001), ``"2.1e7"`` ->
    (21,000,000, 1,000,000), ``"3,966"`` -> (3966, 1). A plain YAML number has the resolution of its digits."""
    m = _NUMBER.match(str(text))
    if not m:
        raise ValueError(f"claimed value {text!r} is not a number as a paper prints it (e.g. 99.31%, 2.1e7, 3,966)")
    decimals = len(m["dec"] or "")
    exp = int(m["exp"] or 0) - (2 if m["pct"] else 0)
    return float(Decimal(m["num"].replace(",", "")).scaleb(exp)), float(Decimal(1).scaleb(exp - decimals))


@functools.lru_cache(maxsize=1)
def _claims_file() -> dict[str, Any]:
    return yaml.safe_load((resources.files("hwrlib") / "claims.yaml").read_text())


def load_claims(paper: str | None = None) -> list[dict[str, Any]]:
    """The claims of one paper (or all), ``claimed`` parsed into a number and its ``resolution``."""
    out = []
    for c in _claims_file()["claims"]:
        if paper is None or c["paper"] == paper:
            c = dict(c)
            if "claimed" in c:
                c["claimed"], c["resolution"] = parse_claimed(c["claimed"])
            out.append(c)
    return out


def load_readings() -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
    """paper -> reading axis -> reading name -> its spec (``where``, ``than``, ``metric``, ``args``, ``source``)."""
    return _claims_file().get("readings", {})


def paper_facts(paper: str) -> dict[str, Any]:
    """What claims.yaml's ``papers:`` states of a paper (``test_images``: its test-set size)."""
    return _claims_file().get("papers", {}).get(paper, {})


def claim_readings(claim: dict[str, Any], readings: dict | None = None) -> list[tuple[str, dict[str, Any]]]:
    """``(reading, claim as read under it)`` for every combination of the claim's reading axes.

    A claim without readings has one, ``as stated``. A reading's ``where``/``than`` set fields of the claim's
    protocols, its ``metric`` replaces the claim's, its ``args`` go to a curve judge.
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


def delta(claim: dict[str, Any]) -> float:
    """The claim's tolerance: its own (``tolerance``, with ``tolerance_why``), else the one rule of
    :func:`hwrlib.stats.tolerance` for accuracies and errors, else half a unit in the last digit printed."""
    if "tolerance" in claim:
        return claim["tolerance"] * (abs(claim["claimed"]) if claim.get("tolerance_kind") == "rel" else 1)
    if claim.get("metric", "").endswith(("_acc", "_top5", "_error")):
        return stats.tolerance(claim["claimed"], claim["resolution"], paper_facts(claim["paper"]).get("test_images"))
    return claim.get("resolution", 0.0) / 2


# ---- protocols: the one selection -------------------------------------------------------------------------

def protocol(paper: str, params: dict[str, Any]) -> str:
    """The protocol id (:func:`hwrlib.results.protocol_id`) of the run ``params`` denote: paper ``paper``'s config
    built from them (profile defaults filled, the environment ignored), the run folder of their ``model``."""
    return _protocol(paper, json.dumps(params, sort_keys=True, default=str))


@functools.lru_cache(maxsize=None)
def _protocol(paper: str, key: str) -> str:
    from .config import ConfigError
    from .experiments import experiment_config, run_dirs
    params = json.loads(key)
    params.pop("device", None)  # where it ran: a condition on the record, not part of the protocol
    model = params.get("model")
    cls = experiment_config(paper)
    names = set(cls.field_names())
    if "model" not in names:
        params.pop("model", None)
    if "compare_models" in names:
        params["compare_models"] = []
    try:
        cfg = cls.build(params)
    except ConfigError as e:
        raise ClaimError(f"{paper} {params}: {e}") from None
    records = [d.config for d in run_dirs(cfg) if model is None or d.config.get("model") == model]
    if not records:
        raise ClaimError(f"{paper} {params}: no run of model {model!r} in the experiment's plan")
    return protocol_id(paper, records[0])


def protocol_runs(runs: pd.DataFrame, paper: str, params: dict[str, Any]) -> pd.DataFrame:
    """The runs of exactly the protocol ``params`` denote (one per seed); ``device`` in ``params`` keeps the runs
    that ran there."""
    if "protocol" not in runs:  # a made-up table, not a frame of runs
        return runs.iloc[0:0]
    sel = runs[runs["protocol"] == protocol(paper, params)]
    if "device" in params:  # a record that does not say where it ran is not evidence of where it ran
        ran = sel["device"].astype(str) if "device" in sel else pd.Series("", index=sel.index)
        sel = sel[ran.str.startswith(params["device"])]
    return sel.sort_values("seed")


def check_claims() -> None:
    """Every claim under every reading names a protocol per side that an experiment config can express (a timing
    claim: rows its timing module records); raises :class:`ClaimError` naming the claim otherwise."""
    for claim in load_claims():
        for reading, c in claim_readings(claim):
            if c["kind"] == "timing":
                _check_timing(c, reading)
            for side in ("where", "than"):
                if side in c and c["kind"] in ("metric", "comparison", "ratio", "curve"):
                    try:
                        protocol(c["paper"], c[side])
                    except ClaimError as e:
                        raise ClaimError(f"claim {c['id']} ({reading}), {side}: {e}") from None


# ---- the one formatter ------------------------------------------------------------------------------------

def fmt(value: float | None, metric: str = "") -> str:
    """A measured or claimed number as the tables show it: accuracies and errors in %, counts with commas."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if metric.endswith(("_acc", "_top5", "_error", "_rise")):
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


def fmt_interval(low: float, high: float, metric: str = "", points: bool = False) -> str:
    """``[low, high]``; a difference of accuracies in points."""
    if low is None or (isinstance(low, float) and math.isnan(low)):
        return ""
    if points:
        return f"[{100 * low:+.2f}, {100 * high:+.2f}] points"
    return f"[{fmt(low, metric)}, {fmt(high, metric)}]"


# ---- findings -------------------------------------------------------------------------------------------

def finding(judged: stats.Judgement | Verdict, measured: str = "", runs: pd.DataFrame | None = None,
            **fields: Any) -> dict[str, Any]:
    """A judge's answer as one row: the verdict and its numbers, what it measured, and what its runs cost."""
    j = judged if isinstance(judged, stats.Judgement) else stats.Judgement(judged)
    return {"verdict": j.verdict, "measured": measured, "n": 0, "than_n": 0, "mean": math.nan, "sd": math.nan,
            "than_mean": math.nan, "estimate": j.estimate, "low": j.low, "high": j.high, "delta": math.nan,
            "seeds_needed": j.seeds_needed, "method": j.method, "protocol": "", "than_protocol": "", "why": "",
            "values": pd.Series(dtype=float), **cost(runs), **fields}


def cost(runs: pd.DataFrame | None) -> dict[str, Any]:
    """What the runs took: ``{"spent": {run_path: (wall minutes, on a GPU)}}`` (a grouped 003 run's time is its
    group's, so each replica counts for its share). Keyed by run, so a run two readings share counts once."""
    if runs is None or not {"wall_seconds", "train_seconds"} & set(runs):
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


def by_seed(runs: pd.DataFrame, metric: str) -> pd.Series:
    """One value of ``metric`` per seed (index). ``peak_mean_test_acc``: each run's test accuracy at the epoch where
    the seed-averaged test curve peaks (002's Fig. 5 reading); ``test_error_rise``: its final test error minus its
    lowest (whole epochs); ``final_test_error`` / ``final_test_top5_error``: 1 - the accuracy where not recorded."""
    if runs.empty:
        return pd.Series(dtype=float)
    if metric in ("peak_mean_test_acc", "test_error_rise"):
        if "run_path" not in runs:  # rows without their folders (made-up tables): no curve to read
            return pd.Series(dtype=float)
        h = load_metrics(runs, ["seed"])
    if metric == "peak_mean_test_acc":
        curve = h[h["step"] > 0].pivot_table(index="epoch", columns="seed", values="test_acc").dropna()
        return curve.loc[curve.mean(axis=1).idxmax()] if not curve.empty else pd.Series(dtype=float)
    if metric == "test_error_rise":  # final minus lowest test error over the whole-epoch evaluations (overfitting)
        whole = h[(h["step"] > 0) & np.isclose(h["epoch"], h["epoch"].round())]
        g = whole.groupby("seed")["test_acc"]
        return (g.max() - g.last()).astype(float)
    errors = {"final_test_error": "final_test_acc", "final_test_top5_error": "final_test_top5"}
    if metric in errors and metric not in runs and errors[metric] in runs:
        return pd.Series(1 - runs[errors[metric]].to_numpy(), index=runs["seed"].to_numpy())
    values = runs[metric] if metric in runs else pd.Series(math.nan, index=runs.index)
    return pd.Series(values.to_numpy(dtype=float), index=runs["seed"].to_numpy()).dropna()


def _model_metric(claim: dict[str, Any]) -> float | None:
    from .models import count_params, create_model, list_models, residual_adds
    if claim["model"] not in list_models():
        return None

    def value(name: str) -> float:
        model = create_model(name, **claim.get("model_kwargs", {}))
        return count_params(model) if claim["metric"] == "num_params" else residual_adds(model)
    return value(claim["model"]) / value(claim["than_model"]) if "than_model" in claim else value(claim["model"])


def _curve_judge(claim: dict[str, Any]):
    """The function named by a curve claim's ``judge: module:function`` (relative to hwrlib)."""
    module, name = claim["judge"].split(":")
    return getattr(importlib.import_module(f"hwrlib.{module}"), name)


def _at_profile(claim: dict[str, Any], profile: str | None) -> tuple[dict[str, Any], bool]:
    """The claim as read at a notebook's ``profile``: its protocols moved to that profile, and whether that makes
    the answer an indication (another profile than the claim's)."""
    own = (claim.get("where") or {}).get("profile")
    if profile is None or own is None or own == profile:
        return claim, False
    return {**claim, **{k: {**claim[k], "profile": profile} for k in ("where", "than") if k in claim}}, True


def judge_claim(claim: dict[str, Any], runs: pd.DataFrame, profile: str | None = None) -> dict[str, Any]:
    """Judge one claim (as read under one reading) against ``runs``: a :func:`finding` row.

    ``profile``: the profile ``runs`` were trained at (a notebook's); a claim of another profile then reads the
    same protocol at that profile and answers :attr:`Verdict.INDICATION`, never a verdict.
    """
    kind = claim["kind"]
    if kind == "reference":
        return finding(Verdict.REFERENCE)
    if kind == "model":
        value = _model_metric(claim)
        if value is None:
            return finding(Verdict.NOT_YET_RUN)
        ok = (value >= claim["claimed"] - delta(claim) if claim.get("direction") == "at_least"
              else abs(value - claim["claimed"]) <= delta(claim) + 1e-12)
        return finding(Verdict.REPRODUCED if ok else Verdict.NOT_REPRODUCED, mean=value, n=1, delta=delta(claim))
    claim, indication = _at_profile(claim, profile)
    if kind == "curve":
        out = _curve_judge(claim)(runs, claim)
    elif kind == "timing":
        out = _timing(claim, runs)
    else:
        out = _judge_measured(claim, runs)
    if indication and out["verdict"] is not Verdict.NOT_YET_RUN:
        out["verdict"] = Verdict.INDICATION
    return out


def _judge_measured(claim: dict[str, Any], runs: pd.DataFrame) -> dict[str, Any]:
    """Metric, comparison and ratio claims: each side's protocol runs, one value per seed, judged by stats."""
    paper, metric = claim["paper"], claim["metric"]
    a = protocol_runs(runs, paper, claim["where"])
    b = protocol_runs(runs, paper, claim["than"]) if "than" in claim else a.iloc[0:0]
    va, vb = by_seed(a, metric), by_seed(b, metric)
    sides = {"n": len(va), "mean": va.mean() if len(va) else math.nan,
             "sd": va.std(ddof=1) if len(va) > 1 else math.nan, "than_n": len(vb),
             "than_mean": vb.mean() if len(vb) else math.nan, "protocol": protocol(paper, claim["where"]),
             "than_protocol": protocol(paper, claim["than"]) if "than" in claim else ""}
    spent = {"spent": {**cost(a)["spent"], **cost(b)["spent"]}}
    both = pd.concat([a, b])
    stuck = both["did_not_train"].fillna(False).astype(bool) if "did_not_train" in both else pd.Series(dtype=bool)
    if stuck.any():
        why = f"{int(stuck.sum())} of {len(stuck)} runs never left chance accuracy"
        return {**finding(Verdict.DID_NOT_TRAIN, why, why=why), **sides, **spent}
    if claim["kind"] == "metric":
        j = (stats.judge_at_most(va, claim["claimed"] + delta(claim)) if claim.get("direction") == "at_most" else
             stats.judge_value(va, claim["claimed"], delta(claim), claim.get("claimed_runs", 1)))
        return {**finding(j, fmt_mean_sd(va, metric), delta=delta(claim), values=va), **sides, **spent}
    if claim["kind"] == "comparison":
        j = stats.judge_difference(va, vb, paired=True, margin=claim.get("margin", 0.0))
        measured = f"{fmt_mean_sd(va, metric)} vs {fmt_mean_sd(vb, metric)}"
        paired = (va - vb).dropna() if set(va.index) == set(vb.index) else pd.Series(dtype=float)
        return {**finding(j, measured, values=paired), **sides, **spent}
    # ratio: one ratio per seed both sides ran (the same seed's runs time the same data), judged as a value
    ratios = (va / vb).dropna()
    measured = (f"{fmt(ratios.mean())} ({fmt(va.mean())} / {fmt(vb.mean())})" if len(ratios) else
                f"{fmt(va.mean())} vs {NOT_YET_RUN}" if len(va) else NOT_YET_RUN)
    j = stats.judge_value(ratios, claim["claimed"], delta(claim))
    return {**finding(j, measured, delta=delta(claim)), **sides, **spent}


# ---- timing claims: judged from a committed timing record, not from runs ----------------------------------

def _check_timing(c: dict[str, Any], reading: str) -> None:
    """A timing claim's record is the one its ``measured_by`` module writes, and each side selects rows by columns
    and values that module records (an implementation it times, a model it builds)."""
    module = importlib.import_module(f"hwrlib.{c['measured_by']}")
    if module.RECORD != c["record"]:
        raise ClaimError(f"claim {c['id']}: record {c['record']!r} is not what {c['measured_by']} writes "
                         f"({module.RECORD!r}); name that file")
    known = {"implementation": module.IMPLEMENTATIONS, "model": module.MODELS}
    for side in ("where", "than"):
        for key, value in c[side].items():
            if key not in module.KEYS or (key in known and value not in known[key]):
                raise ClaimError(f"claim {c['id']} ({reading}), {side}: {key}={value!r} selects no rows "
                                 f"{c['measured_by']} records (columns {', '.join(module.KEYS)}; implementations "
                                 f"{', '.join(module.IMPLEMENTATIONS)}; models {', '.join(module.MODELS)})")


def timing_record(claim: dict[str, Any], runs: pd.DataFrame) -> pd.DataFrame:
    """The claim's ``record`` in the results folder ``runs`` was loaded from (``attrs["results_dir"]``, set by
    :func:`hwrlib.results.load_runs`; the default folder for a frame that does not say); empty if not written yet."""
    path = paths.results_dir(runs.attrs.get("results_dir")) / claim["record"]
    return pd.read_csv(path) if path.is_file() else pd.DataFrame()


def _timed(table: pd.DataFrame, select: dict[str, Any], metric: str, record: str) -> tuple[pd.Series, float]:
    """``metric`` of the rows matching ``select``, one per repeat (index), and the seconds those rows took."""
    if table.empty:
        return pd.Series(dtype=float), 0.0
    missing = sorted({"repeat", "seconds", metric, *select} - set(table))
    if missing:
        raise ValueError(f"{record} has no column {', '.join(missing)}: not a record of the claim's measurement; "
                         f"write it again with the module the claim names (measured_by)")
    rows = table[np.logical_and.reduce([table[k] == v for k, v in select.items()])]
    if rows["repeat"].duplicated().any():
        raise ValueError(f"{record}: more than one row per repeat for {select}; a record holds one measurement")
    return pd.Series(rows[metric].to_numpy(dtype=float), index=rows["repeat"].to_numpy()), rows["seconds"].sum()


def _timing(claim: dict[str, Any], runs: pd.DataFrame) -> dict[str, Any]:
    """``where`` / ``than`` of ``metric``, one ratio per repeat (both sides timed back to back in it), judged as a
    value against ``claimed``, as a ratio claim judges one ratio per seed."""
    table, record = timing_record(claim, runs), claim["record"]
    va, seconds_a = _timed(table, claim["where"], claim["metric"], record)
    vb, seconds_b = _timed(table, claim["than"], claim["metric"], record)
    ratios = (va / vb).dropna()
    measured = (f"{fmt(ratios.mean())} ({va.mean():,.0f} s / {vb.mean():,.0f} s)" if len(ratios) else NOT_YET_RUN)
    side = {k: ", ".join(f"{key}={v}" for key, v in sorted(claim[k].items())) for k in ("where", "than")}
    j = stats.judge_value(ratios, claim["claimed"], delta(claim))
    return finding(j, measured, n=len(ratios), than_n=len(vb), mean=va.mean() if len(va) else math.nan,
                   sd=va.std(ddof=1) if len(va) > 1 else math.nan, than_mean=vb.mean() if len(vb) else math.nan,
                   delta=delta(claim), values=ratios, protocol=f"{record}: {side['where']}",
                   than_protocol=f"{record}: {side['than']}",
                   spent={f"{record}: {side['where']}": ((seconds_a + seconds_b) / 60, False)} if len(ratios) else {})


# ---- tables ---------------------------------------------------------------------------------------------

def claims_table(runs: pd.DataFrame, paper: str | None = None, kinds: tuple[str, ...] | None = None,
                 profile: str | None = None) -> pd.DataFrame:
    """Claimed vs measured for every claim (of one paper, of some kinds) under each of its readings.

    ``profile``: the profile ``runs`` were trained at (a notebook's): claims of another profile show those runs'
    numbers as an indication, with no verdict.
    """
    from .sweep import declared_seeds
    check_claims()  # a claim no config can express stops here, named, before any verdict is made
    declared = declared_seeds()
    rows = []
    for c in load_claims(paper):
        if kinds and c["kind"] not in kinds:
            continue
        for reading, rc in claim_readings(c):
            r = judge_claim(rc, runs, profile)
            r["declared"], r["than_declared"] = (len(declared[p].seeds) if p in declared else None
                                                 for p in (r["protocol"], r["than_protocol"]))
            rows.append({"paper": c["paper"], "id": c["id"], "claim": c["text"], "reading": reading,
                         "source": c["source"], **_shown(rc, r), "finding": r, "spent": r["spent"],
                         "kind": rc["kind"], "metric": rc.get("metric", ""), "margin": rc.get("margin", 0.0),
                         "claimed_value": rc.get("claimed", math.nan)})
    return pd.DataFrame(rows)


def _shown(c: dict[str, Any], r: dict[str, Any]) -> dict[str, Any]:
    """The display columns of one finding: claimed, measured, interval, n, tolerance, verdict, seeds needed."""
    metric, kind = c.get("metric", ""), c["kind"]
    plain = kind in ("ratio", "timing") or "than_model" in c  # a ratio is a plain number whatever its metric
    if kind == "curve":
        claimed = c.get("claimed_text", "")
    elif kind == "comparison":
        margin = c.get("margin", 0.0)
        claimed = "greater" + (f" by > {100 * margin:.2f} points" if margin else "")
    elif c.get("direction") == "at_most":
        claimed = f"at most {fmt(c['claimed'] + delta(c), metric)}"
    else:
        claimed = fmt(c["claimed"], "" if plain else metric) if "claimed" in c else ""
    measured = r["measured"] or (fmt(r["mean"], "" if plain else metric) if kind == "model" else
                                 "" if kind == "reference" else NOT_YET_RUN)
    points = kind == "comparison" and metric.endswith(("_acc", "_top5", "_error"))
    interval = fmt_interval(r["low"], r["high"], "" if plain else metric, points)
    n = (f"{_count(r['n'], r.get('declared'))} vs {_count(r['than_n'], r.get('than_declared'))}"
         if kind == "comparison" else _count(r["n"], r.get("declared")) or "")
    tolerance = (f"±{fmt(r['delta'], '' if plain else metric)}"  # a ceiling holds its tolerance already
                 if not math.isnan(r["delta"]) and c.get("direction") != "at_most" else "")
    needed = r["seeds_needed"]
    return {"claimed": claimed, "measured": measured, "interval": interval, "n": n, "tolerance": tolerance,
            "verdict": r["verdict"],
            "seeds needed": "" if r["verdict"] is not Verdict.INCONCLUSIVE else
            f"{needed}" if needed else "> 100" if r["method"] and "no spread" not in r["method"] else "≥ 2"}


def _count(n: int, declared: int | None) -> int | str:
    """Runs behind a verdict, and the seeds its sweeps declare where fewer ran: "1 of 3" (an interim verdict)."""
    return f"{n} of {declared}" if declared and n < declared else n


def verdict_frame(runs: pd.DataFrame, per: pd.DataFrame | None = None) -> pd.DataFrame:
    """``results/verdicts.csv``: one row per judged claim x reading, the protocols and numbers behind its verdict.
    ``per``: a :func:`claims_table` of ``runs`` already computed."""
    table = claims_table(runs) if per is None else per
    table = table[~table["verdict"].isin([Verdict.REFERENCE])]
    rows = []
    for _, t in table.iterrows():
        r = t["finding"]
        cpu, gpu = minutes(r["spent"])
        rows.append({"claim": t["id"], "reading": t["reading"], "protocol": r["protocol"],
                     "than_protocol": r["than_protocol"], "n": r["n"], "than_n": r["than_n"],
                     "declared": r.get("declared"), "than_declared": r.get("than_declared"), "mean": r["mean"],
                     "sd": r["sd"], "than_mean": r["than_mean"], "estimate": r["estimate"], "low": r["low"],
                     "high": r["high"], "delta": r["delta"], "verdict": r["verdict"].label,
                     "seeds_needed": r["seeds_needed"], "method": r["method"], "cpu_min": cpu, "gpu_min": gpu})
    frame = pd.DataFrame(rows)
    numbers = ["mean", "sd", "than_mean", "estimate", "low", "high", "delta", "cpu_min", "gpu_min"]
    frame[numbers] = frame[numbers].astype(float).round(6)
    for col in ("seeds_needed", "declared", "than_declared"):
        frame[col] = frame[col].astype("Int64")
    return frame


def robust_table(runs: pd.DataFrame, paper: str | None = None, per: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per judged claim: what each reading measured, the robust verdict (:class:`~hwrlib.verdict.Robust`,
    with its text) and the compute its runs took. ``per``: a :func:`claims_table` already computed."""
    per = claims_table(runs, paper) if per is None else per
    per = per[~per["verdict"].isin([Verdict.REFERENCE])]
    rows = []
    for cid, g in per.groupby("id", sort=False):
        verdicts = dict(zip(g["reading"], g["verdict"]))
        kind = robust(verdicts)
        cpu, gpu = minutes({p: v for spent in g["spent"] for p, v in spent.items()})  # each run once
        shown = [f"{r}: {m}" if len(g) > 1 else m for r, m in zip(g["reading"], g["measured"])]
        rows.append({"paper": g["paper"].iloc[0], "id": cid, "claim": g["claim"].iloc[0],
                     "source": g["source"].iloc[0], "claimed": g["claimed"].iloc[0], "readings": len(g),
                     "measured": "; ".join(shown), "verdict": kind.text(verdicts), "robust": kind,
                     "cost": (f"{cpu:.0f} CPU min" if cpu else "") + (f", {gpu:.0f} GPU min" if gpu else "")})
    return pd.DataFrame(rows)


def damaged_table(runs: pd.DataFrame) -> pd.DataFrame:
    """The records :func:`hwrlib.results.load_runs` skipped as damaged: path and what is wrong (empty: none)."""
    return pd.DataFrame(runs.attrs.get("damaged", []), columns=["record", "problem"])


# headers over left-aligned text are left-aligned too (a browser centres or right-aligns them by default)
LEFT_HEADERS = [{"selector": "th", "props": "text-align: left;"}]


def as_percent(rows: pd.DataFrame, digits: int = 2) -> pd.DataFrame:
    """Evaluation rows as a reader sees them: accuracies and errors (``*_acc``, ``*_top5``, ``*_error``) in % with
    ``digits`` decimals, named ``... (%)``; losses and other numbers to 4 decimals. The notebooks' one unit."""
    pct = [c for c in rows.columns if c.endswith(("_acc", "_top5", "_error"))]
    out = rows.round(4)
    out[pct] = (100 * rows[pct]).round(digits)
    return out.rename(columns={c: f"{c} (%)" for c in pct})


def style_table(table: pd.DataFrame):
    """A table as the notebooks show it: no index column, text left-aligned (numbers carry their unit as text)."""
    return table.style.hide(axis="index").set_properties(**{"text-align": "left"}).set_table_styles(LEFT_HEADERS)


# columns of the claims and robust tables that carry data for code (figures, verdicts.csv), not for reading
HIDDEN = ("id", "spent", "finding", "robust", "kind", "metric", "margin", "claimed_value")


def style_verdicts(table: pd.DataFrame):
    """A claims or robust table for the notebooks: the verdict cell coloured by its verdict, text left-aligned."""
    kinds = table["robust"] if "robust" in table else table["verdict"]
    shown = table.drop(columns=[c for c in HIDDEN if c in table])
    colours = pd.Series([f"background-color: {k.colour}" if isinstance(k, (Verdict, Robust)) else ""
                         for k in kinds], index=shown.index)
    # the claim keeps room to read; a long measured text (003's curve judges) wraps instead of squeezing it
    widths = [{"selector": f"td.col{shown.columns.get_loc(c)}", "props": props} for c, props in
              (("claim", "min-width: 22em;"), ("measured", "max-width: 36em;")) if c in shown]
    return (shown.style.hide(axis="index").apply(lambda _: colours, subset=["verdict"])
            .format({"verdict": str}).set_properties(**{"text-align": "left", "vertical-align": "top"})
            .set_table_styles(LEFT_HEADERS + widths))


def runs_of(cfg, runs: pd.DataFrame, model: str | None = None) -> pd.DataFrame:
    """The runs of the protocol of an experiment config (of one of its models): a notebook's own table."""
    record = (cfg.for_model(model) if model else cfg).record()
    return runs[runs["protocol"] == protocol_id(cfg.paper, record)]

