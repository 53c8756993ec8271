"""Each paper's part of the study, stated once: REPORT.md, the summary notebook and the paper notebooks render it.

A paper registers its :class:`Section` in its own figures module (``experiments/p00N_figures.py``): its title, the
command that produces its runs, the parameters of its report page, and what follows its claims (its figures, tables
and text, from the records). :func:`paper_view` computes a paper's objects once -- the forest plot, the claims table,
each claim under each reading, the commands still to run, the extras -- and :func:`show` (a notebook) and
:mod:`hwrlib.report` (Markdown) only lay them out, so a number reads the same everywhere. Adding a paper touches its
own modules only: :func:`sections` imports every ``p*_figures`` module of :mod:`hwrlib.experiments`.

A paper notebook shows its claims with :func:`measured_vs_claimed`: the verdicts of the records (exactly the claim's
protocol, as everywhere) beside the numbers of the runs the notebook just trained, marked as an indication when
those runs are of another protocol.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable

import pandas as pd

from . import paths
from .results import runs_frame
from .summary import by_seed, claim_readings, claims_table, fmt, load_claims, protocol, robust_table
from .sweep import Declared, declared_seeds
from .verdict import Verdict


@dataclass(frozen=True)
class Folded:
    """A table (or text) a reader opens on demand: a ``<details>`` block in REPORT.md, a titled table in a notebook."""
    title: str
    body: pd.DataFrame | str


@dataclass(frozen=True)
class Extras:
    """What follows a paper's claims: figures by name (PNG file stems in the report), then text (Markdown) and tables
    in order."""
    figures: dict[str, Any] = field(default_factory=dict)
    blocks: list[str | pd.DataFrame | Folded] = field(default_factory=list)


@dataclass(frozen=True)
class Section:
    """One paper's part of the report. ``extras(runs)`` gets every stored run (``load_runs``) and picks its own;
    ``judged`` is False where no claim can be judged on this machine (000: CASIA-HWDB1.1), and ``note(n_claims)``
    then says why, in place of the claims' tables."""
    paper: str
    title: str
    command: str
    page: dict[str, Any]
    extras: Callable[[pd.DataFrame], Extras] = lambda runs: Extras()
    judged: bool = True
    note: Callable[[int], str] = lambda n: ""


_SECTIONS: dict[str, Section] = {}


def register_section(section: Section) -> Section:
    if section.paper in _SECTIONS:
        raise ValueError(f"paper {section.paper!r} registered its section twice")
    _SECTIONS[section.paper] = section
    return section


def sections() -> list[Section]:
    """Every paper's section: the judged ones by paper number, then the others."""
    from .experiments.registry import import_papers
    import_papers()
    return sorted(_SECTIONS.values(), key=lambda s: (not s.judged, s.paper))


@dataclass
class PaperView:
    """A paper's objects, computed once from the records."""
    section: Section
    forest: Any                 # matplotlib Figure, or None when no accuracy claim ran
    claims: pd.DataFrame        # one row per claim: claimed, measured under each reading, verdict, n, cost
    detail: pd.DataFrame        # each claim under each reading
    todo: list[str]             # what is still to run: protocols short of their declared seeds, claims not yet run
    extras: Extras
    n_claims: int


def compact(robust: pd.DataFrame, per: pd.DataFrame) -> pd.DataFrame:
    """One row per claim: claimed, what each reading measured, the verdict over all readings, runs, cost."""
    rows = []
    for _, r in robust.iterrows():
        g = per[per["id"] == r["id"]]
        ran = g[g["verdict"] != Verdict.NOT_YET_RUN]
        measured = "<br>".join(f"{x['reading']}: {x['measured']}" if len(g) > 1 else x["measured"]
                               for _, x in ran.iterrows()) or "not yet run"
        n = ", ".join(dict.fromkeys(str(x) for x in ran["n"] if str(x))) or "0"
        rows.append({"claim": r["claim"], "claimed": r["claimed"], "measured": measured,
                     "verdict": f"{r['robust'].mark} {r['verdict']}", "n": n, "cost": r["cost"]})
    return pd.DataFrame(rows, columns=["claim", "claimed", "measured", "verdict", "n", "cost"])


DETAIL = ["claim", "reading", "claimed", "measured", "interval", "n", "tolerance", "verdict", "seeds needed"]


def bench_rates(results_dir: str | None = None) -> dict[int, dict[str, float]]:
    """Training images/s per thread count and model, from ``make bench``'s tables (``results/bench/``; empty if
    none)."""
    rates = {}
    for threads in (1, 2):
        path = paths.results_dir(results_dir) / "bench" / f"models-{threads}threads.json"
        if path.is_file():
            rates[threads] = {r["model"]: r["images_per_second"] for r in json.loads(path.read_text())["rows"]}
    return rates


def _cost(d: Declared, missing: int, rates: dict[int, dict[str, float]]) -> str:
    """What ``missing`` seeds of a declared protocol take at the rates ``make bench`` measured (epochs x training
    images; a bound where the schedule may stop early): CPU-hours at 1 thread, and the hours one seed takes alone
    on 2 threads (one run at a time on a 2-core machine), or nothing without a measured rate."""
    cfg = d.config
    rate, rate2 = rates.get(1, {}).get(cfg["model"]), rates.get(2, {}).get(cfg["model"])
    if rate is None or not cfg.get("num_epochs"):
        return ""
    images = cfg["num_epochs"] * (cfg.get("train_size") or 60_000)
    bound = "up to" if cfg.get("early_stop_patience") else "about"  # early stopping may end it sooner
    alone = f"; {bound} {images / rate2 / 3600:.1f} h a seed alone on 2 threads ({rate2:.0f} images/s)" if rate2 \
        else ""
    return (f"; {bound} {missing * images / rate / 3600:.1f} CPU-hours at 1 thread ({cfg['num_epochs']} epochs of "
            f"{cfg['model']} at the {rate:.0f} images/s `make bench` measured){alone}")


def todo(sec: Section, per: pd.DataFrame, runs: pd.DataFrame, results_dir: str | None = None) -> list[str]:
    """What is still to run for ``sec``'s claims (``per``: its claims table): each protocol with fewer runs than
    the seeds its sweeps declare (the command, the seeds missing, what they cost), then how to produce a claim not
    yet run that no sweep declares (its timing module, or the section's command)."""
    declared, rates = declared_seeds(), bench_rates(results_dir)
    lines, covered = [], set()
    for _, row in per.iterrows():
        for p in (row["finding"]["protocol"], row["finding"]["than_protocol"]):
            if p not in declared or p in covered:
                continue
            covered.add(p)
            d, ran = declared[p], set(runs.loc[runs["protocol"] == p, "seed"])
            missing = [s for s in d.seeds if s not in ran]
            if missing:
                lines.append(f"`{d.command()}`: {p}, seeds {', '.join(map(str, missing))} of the declared "
                             f"{', '.join(map(str, d.seeds))}{_cost(d, len(missing), rates)}")
    claims = load_claims(sec.paper)
    # a claim judged from a timing record is produced by the module that writes it, not by training
    timers = {c["id"]: f"python -m hwrlib.{c['measured_by']}, on a quiet machine" for c in claims if "measured_by" in c}
    unrun = per[[v is Verdict.NOT_YET_RUN and not {f["protocol"], f["than_protocol"]} & covered
                 for v, f in zip(per["verdict"], per["finding"])]]
    return lines + sorted({timers.get(cid, sec.command) for cid in unrun["id"]})


def paper_view(sec: Section, runs: pd.DataFrame, per: pd.DataFrame, robust: pd.DataFrame,
               results_dir: str | None = None) -> PaperView:
    """``sec``'s objects from ``runs`` (every stored run) and the claims tables ``per`` (:func:`claims_table`) and
    ``robust`` (:func:`robust_table`) of all papers."""
    from .plots import forest
    mine, robust_mine = per[per["paper"] == sec.paper], robust[robust["paper"] == sec.paper]
    fig = forest(mine, f"{sec.paper}: every judged accuracy claim against what the paper states") if sec.judged else None
    detail = mine.assign(verdict=[f"{v.mark} {v.label}" for v in mine["verdict"]])[DETAIL]
    return PaperView(sec, fig, compact(robust_mine, mine), detail, todo(sec, mine, runs, results_dir), sec.extras(runs),
                     len(robust_mine))


def show(view: PaperView) -> None:
    """A paper's view in a notebook: the same objects, in the same order, as its REPORT.md section."""
    import matplotlib.pyplot as plt
    from IPython.display import Markdown, display

    from .summary import style_table
    s = view.section
    display(Markdown(f"## {s.paper}: {s.title}"))
    if not s.judged:
        display(Markdown(s.note(view.n_claims)))
    else:
        for shown in (view.forest, style_table(view.claims.assign(measured=view.claims["measured"].str.replace(
                "<br>", "; ")))):
            if shown is not None:
                display(shown)
        if view.todo:
            display(Markdown("Still to run:\n" + "\n".join(f"- {t}" for t in view.todo)))
    for block in view.extras.blocks:
        if isinstance(block, Folded):
            display(Markdown(f"**{block.title}**"))
            block = block.body
        display(Markdown(block) if isinstance(block, str) else style_table(block))
    for fig in view.extras.figures.values():
        display(fig)
        plt.close(fig)


def judged_tables(runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The claims tables every view is cut from: each judged claim under each reading (:func:`claims_table`, the
    quoted references left out) and each claim over its readings (:func:`robust_table`)."""
    per = claims_table(runs)
    per = per[per["verdict"] != Verdict.REFERENCE]
    return per, robust_table(runs, per=per)


def show_all(runs: pd.DataFrame) -> None:
    """Every paper's view from ``runs`` (the summary notebook): what REPORT.md shows, in its order."""
    per, robust = judged_tables(runs)
    for sec in sections():
        show(paper_view(sec, runs, per, robust))


# ---- a paper notebook: the verdicts of the records, and the numbers of the runs it just trained -------------

def _side_value(claim: dict[str, Any], side: str, mine: pd.DataFrame) -> tuple[str, bool] | None:
    """The notebook's runs of one side of a claim (its model): their mean on the claim's metric, formatted, and
    whether they are of exactly the claim's protocol; None when the notebook trained no such model."""
    from .experiments import experiment_config
    params = claim.get(side) or {}
    model = params.get("model", experiment_config(claim["paper"]).defaults().get("model"))
    sel = mine[mine["model"] == model]
    values = by_seed(sel, claim["metric"])  # the engine's reading of the metric (a curve's, a derived one)
    if values.empty:
        return None
    exact = bool((sel["protocol"] == protocol(claim["paper"], params)).any())
    return f"{model} {fmt(values.mean(), claim['metric'])}", exact


def _this_notebook(claim: dict[str, Any], mine: pd.DataFrame, profile: str) -> str:
    """What the notebook's runs measured for a claim (under one reading), marked as an indication unless the runs
    are of exactly its protocol."""
    if claim["kind"] not in ("metric", "comparison", "ratio"):
        return {"curve": "see the figures above", "timing": "from its timing record (results/timing/)"}.get(
            claim["kind"], "")
    sides = [v for side in (("where", "than") if "than" in claim else ("where",))
             if (v := _side_value(claim, side, mine)) is not None]
    if not sides:
        return "not trained by this notebook"
    text = " vs ".join(v for v, _ in sides)
    n = mine["seed"].nunique()
    if all(exact for _, exact in sides):
        return f"{text} (n={n}; part of the records' evidence)"
    return f"{text} (indication: {profile} profile, n={n}; another protocol than the claim's)"


def measured_vs_claimed(cfg: Any, runs: list) -> pd.DataFrame:
    """A paper notebook's claims: per claim and reading, what is claimed, what the runs just trained measured (an
    indication when their protocol is not the claim's), and the verdict of every stored run of exactly the claim's
    protocol (the summary's and REPORT.md's: never one from runs the protocol does not cover)."""
    from .results import load_runs
    records = load_runs(cfg.results_dir)
    judged = claims_table(records, cfg.paper)
    mine = runs_frame(runs)
    rows = []
    for c in load_claims(cfg.paper):
        if c["kind"] == "reference":
            continue
        for reading, rc in claim_readings(c):
            r = judged[(judged["id"] == c["id"]) & (judged["reading"] == reading)].iloc[0]
            rows.append({"claim": c["text"], "reading": reading, "claimed": r["claimed"],
                         "this notebook": _this_notebook(rc, mine, cfg.profile), "all records": r["measured"],
                         "n": r["n"], "verdict": r["verdict"]})
    return pd.DataFrame(rows)
