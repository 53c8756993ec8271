"""``results/REPORT.md``: the study's verdicts, tables and figures from the committed records (nothing trains).

    python -m hwrlib.report [--results-dir DIR] [--readme README.md]

Writes REPORT.md (GitHub renders it), ``results/verdicts.csv`` (one row per claim x reading: the protocols, numbers
and verdict; REPORT.md's tables render the same findings) and its figures as PNG files in
``results/report-figures/``, and
rewrites the block of README.md between ``<!-- report:headline -->`` and ``<!-- /report:headline -->``
with the headline table, so the README states no number by hand. A run that is missing shows "not yet
run" with the command that produces it.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; set before pyplot is imported anywhere below
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from . import paths  # noqa: E402
from .experiments import p000_figures, p002_figures, p003_figures, p004_figures  # noqa: E402
from .plots import protocol_curves  # noqa: E402
from .results import load_runs  # noqa: E402
from .summary import (claims_table, damaged_table, load_claims, robust_table,  # noqa: E402
                      verdict_frame)
from .verdict import Robust, Verdict  # noqa: E402

FIGURES = "report-figures"
VERDICTS = "verdicts.csv"
HEADLINE = re.compile(r"(<!-- report:headline -->\n).*?(<!-- /report:headline -->)", re.S)
# how to produce what a claim needs, by paper (shown beside "not yet run")
COMMANDS = {"000": "make study-000-readings (synth-hwdb); CASIA-HWDB1.1 runs need the data (README)",
            "001": "make paper (sweeps/001_paper.yaml, 001_readings.yaml)",
            "002": "make paper (sweeps/002_paper.yaml, 002_readings.yaml); ResNet-18: add it to compare_models, a GPU job",
            "003": "make study-003 study-003-readings",
            "004": "make paper (sweeps/004_table2.yaml: the 60k reading, sweeps/004_paper.yaml: the 50k/10k one; "
                   "hours per AlexNet seed on a CPU, minutes on a GPU)"}
def bench_rates(results_dir: str | None = None) -> dict[str, float]:
    """Training images/s per model at 1 thread, from ``make bench``'s table (``results/bench/``; empty if none)."""
    path = paths.results_dir(results_dir) / "bench" / "models-1threads.json"
    if not path.is_file():
        return {}
    return {r["model"]: r["images_per_second"] for r in json.loads(path.read_text())["rows"]}


def gpu_job_hint(job: dict, paper: str, rates: dict[str, float]) -> str:
    """What a claim's GPU-only runs would take on this CPU: its paper-profile runs of ``job["model"]`` (epochs x
    training images x ``job["seeds"]``) at the 1-thread rate ``make bench`` measured; an upper bound where the
    profile stops early."""
    from .experiments import create_experiment
    cfg = create_experiment(paper, profile="paper", model=job["model"])
    images = cfg.num_epochs * (cfg.train_size or 60_000) * job["seeds"]
    rate = rates.get(job["model"])
    if rate is None:
        return f"needs a GPU ({job['seeds']} x {cfg.num_epochs} epochs of {job['model']}; `make bench` sizes it on a CPU)"
    bound = "up to" if getattr(cfg, "early_stop_patience", None) else "about"  # early stopping may end it sooner
    return (f"needs a GPU: {bound} {images / rate / 3600:.0f} CPU-hours on this CPU ({job['seeds']} x {cfg.num_epochs} "
            f"epochs of {job['model']} at the {rate:.0f} images/s `make bench` measured at 1 thread)")


def commands(robust: pd.DataFrame, per: pd.DataFrame, results_dir: str | None = None) -> pd.Series:
    """Beside each claim with a reading not yet run, how to produce its runs (and, for a GPU job, what it costs on
    this CPU)."""
    jobs = {c["id"]: c["gpu_job"] for c in load_claims() if "gpu_job" in c}
    unrun = set(per.loc[per["verdict"].map(lambda v: v is Verdict.NOT_YET_RUN), "id"])
    rates = bench_rates(results_dir)
    out = []
    for cid, paper in zip(robust["id"], robust["paper"]):
        hint = gpu_job_hint(jobs[cid], paper, rates) + "; " if cid in jobs else ""
        out.append(hint + COMMANDS[paper] if cid in unrun else "")
    return pd.Series(out, index=robust.index)


def _md(frame: pd.DataFrame) -> str:
    return frame.to_markdown(index=False, disable_numparse=True) if not frame.empty else "_none_"


def headline(robust: pd.DataFrame) -> pd.DataFrame:
    """The README's table: per paper, how many claims fall under each robust verdict (hwrlib.verdict.Robust)."""
    counts = robust.assign(b=robust["robust"].map(str)).pivot_table(index="paper", columns="b", values="claim",
                                                                   aggfunc="count", fill_value=0)
    return counts.reindex(columns=[r.label for r in Robust], fill_value=0).reset_index()


def headline_markdown(results_dir: str | None = None) -> str:
    """The README's headline block as Markdown, from the records (what ``--readme`` writes)."""
    return headline(robust_table(load_runs(results_dir))).to_markdown(index=False, disable_numparse=True)


def _save(figs: dict, folder: Path) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for name, fig in figs.items():
        fig.savefig(folder / f"{name}.png", dpi=110)
        plt.close(fig)
        names.append(name)
    return names


def _images(names: list[str]) -> str:
    return "\n\n".join(f"![{n}]({FIGURES}/{n}.png)" for n in names) if names else "_no figure: no runs yet_"


def build(results_dir: str | None = None) -> tuple[str, pd.DataFrame, pd.DataFrame]:
    """The report's Markdown (figures written beside it), the headline table and ``verdicts.csv``'s frame."""
    root = paths.results_dir(results_dir)
    all_runs = load_runs(results_dir)
    runs = all_runs[all_runs["profile"].isin(["paper", "full", "study"])] if not all_runs.empty else all_runs
    paper_runs = runs[runs["profile"] == "paper"] if not runs.empty else runs
    per = claims_table(all_runs)
    per = per[~per["verdict"].isin([Verdict.REFERENCE])]
    robust = robust_table(all_runs, per=per)
    figs = root / FIGURES
    parts = [
        "# hwr-repro: the report",
        f"_Generated by `make report` from the {len(runs)} complete paper, study and context run records in "
        "`results/runs/`; nothing here is typed by hand. Each claim is judged under every plausible reading of its "
        "paper from the runs of exactly the protocol it names (hwrlib/claims.yaml; `results/verdicts.csv` holds every "
        "number behind each verdict)._",
    ]
    damaged = damaged_table(all_runs)
    if not damaged.empty:
        parts += ["## Damaged records (skipped)", _md(damaged)]
    shown = robust.assign(verdict=[f"{k.mark} {t}" for k, t in zip(robust["robust"], robust["verdict"])],
                          command=commands(robust, per, results_dir))
    parts += ["## Verdicts", "One row per claim: the robust verdict over its readings (*holds* / *fails* under every "
              "reading, *reading-dependent*, *holds* / *fails where judged*, *inconclusive*, *did not train*) and "
              "the compute its runs took. A metric is *reproduced* when the paper's number is what one run of the "
              "protocol gives and the protocol's mean is within the tolerance of it (hwrlib.stats.judge_value); a "
              "comparison when the 95 % interval of the difference, paired by seed, lies above 0.",
              _md(shown[["paper", "claim", "claimed", "verdict", "cost", "command"]]),
              "## Each claim under each reading",
              _md(per.assign(verdict=[f"{v.mark} {v.label}" for v in per["verdict"]])[
                  ["paper", "claim", "reading", "claimed", "measured", "interval", "n", "tolerance", "verdict",
                   "seeds needed"]])]
    sens = p002_figures.sensitivity_table(paper_runs)
    parts += ["## 002: the unstated optimizer and learning rate",
              "Every paper-profile run of the CNN by head, optimizer and learning rate (the grid: "
              "`sweeps/002_sensitivity.yaml`), against the claimed 99.31 %: a description, not a verdict. "
              + p002_figures.sensitivity_share(paper_runs), _md(sens),
              _images(_save({"002_sensitivity": fig} if (fig := p002_figures.sensitivity_figure(paper_runs)) else {},
                            figs))]
    curves = {f"{p}_curves": fig for p in ("002", "001") if (fig := protocol_curves(all_runs, p))}
    parts += ["## 001 and 002", _images(_save(curves, figs))]
    parts += ["## 003: Table 1 and Figures 4-7", _md(p003_figures.table1(runs)),
              _images(_save(p003_figures.figures(runs), figs))]
    parts += ["## 004: Table 2 and Fig. 4", _md(p004_figures.table2(paper_runs[paper_runs["paper"] == "004"]
                                                                     if not paper_runs.empty else paper_runs)),
              _images(_save(p004_figures.figures(runs), figs))]
    synth = runs[(runs["paper"] == "000") & (runs["profile"] == "study")] if not runs.empty else runs
    parts += ["## 000 on synth-hwdb (SYNTHETIC data: never compared with the paper's HWDB1.1 numbers)",
              _md(p000_figures.readings_table(synth)) if not synth.empty else
              f"_not yet run: {COMMANDS['000']}_"]
    return "\n\n".join(parts) + "\n", headline(robust), verdict_frame(all_runs, per=per)


# the notebook pages of the report: each paper notebook at its paper protocol, executed only when every run it
# plans is complete (so the report never trains); the summary always
PAGES = {"001": {"profile": "paper"}, "002": {"profile": "paper", "compare_models": ["lenet5"]},
         "003": {"profile": "paper", "replicas": 5}, "004": {"profile": "paper", "train_split": "60k_val_test"},
         "000": {"profile": "study", "prod_demo": False}}


def html_pages(results_dir: str | None = None) -> list[str]:
    """Execute the summary and every paper notebook whose planned runs are all complete; write offline HTML
    (no CDN: MathJax and require.js left out, images embedded) beside the executed notebooks in results/report/.
    Returns one line per page."""
    import papermill as pm
    from nbconvert import HTMLExporter

    from .experiments import create_experiment, plan
    out_dir = paths.results_dir(results_dir) / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    notebooks = paths.REPO_ROOT / "notebooks"
    pages = [("summary", notebooks / "summary.ipynb", {"results_dir": str(paths.results_dir(results_dir))})]
    lines = []
    for paper, params in PAGES.items():
        nb = next(notebooks.glob(f"{paper}_*.ipynb"))
        cfg = create_experiment(paper, **params, results_dir=str(paths.results_dir(results_dir)))
        missing = [d.id for job in plan(cfg) if not job.is_complete() for d in job.dirs if not d.is_complete()]
        if missing:
            lines.append(f"{nb.name}: not executed, {len(missing)} planned run(s) not yet run ({COMMANDS[paper]})")
            continue
        pages.append((nb.stem, nb, {**params, "results_dir": str(paths.results_dir(results_dir))}))
    exporter = HTMLExporter(mathjax_url="", require_js_url="", embed_images=True)
    for name, nb, params in pages:
        executed = out_dir / f"{name}.ipynb"
        pm.execute_notebook(str(nb), str(executed), parameters=params, cwd=str(notebooks), progress_bar=False,
                            kernel_name="python3")
        html, _ = exporter.from_filename(str(executed))
        (out_dir / f"{name}.html").write_text(html)
        lines.append(f"{name}: {out_dir / f'{name}.html'}")
    return lines


def write(results_dir: str | None = None, readme: str | Path | None = None) -> Path:
    """Write REPORT.md and its figures; update the README's headline block when ``readme`` is given."""
    from .results import atomic_write_text
    text, head, verdicts = build(results_dir)
    out = paths.results_dir(results_dir) / "REPORT.md"
    atomic_write_text(out, text)
    atomic_write_text(out.with_name(VERDICTS), verdicts.to_csv(index=False))
    if readme is not None:
        readme = Path(readme)
        body = readme.read_text()
        if not HEADLINE.search(body):
            raise ValueError(f"{readme} has no <!-- report:headline --> ... <!-- /report:headline --> block")
        atomic_write_text(readme, HEADLINE.sub(lambda m: m.group(1) + head.to_markdown(index=False, disable_numparse=True) + "\n"
                                               + m.group(2), body))
    return out


def diff_verdicts(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """Every claim x reading whose verdict differs between two verdict tables (``claim``, ``reading``, ``verdict``
    columns, as verdicts.csv has them): old -> new, with a reading only one of them has shown as absent."""
    keys = ["claim", "reading"]
    both = old[keys + ["verdict"]].merge(new[keys + ["verdict"]], on=keys, how="outer", suffixes=(" old", " new"))
    both = both.fillna({"verdict old": "(no such reading)", "verdict new": "(no such reading)"})
    return both[both["verdict old"] != both["verdict new"]].reset_index(drop=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hwrlib.report", description=__doc__.splitlines()[0])
    ap.add_argument("--results-dir", help="default: $HWR_RESULTS_DIR or <repo>/results")
    ap.add_argument("--readme", help="also rewrite this README's headline block")
    ap.add_argument("--html", action="store_true", help="also execute the notebooks (from the records) into "
                                                        "results/report/*.html, offline")
    ap.add_argument("--diff", metavar="OLD_CSV", help="after writing, list every verdict that differs from OLD_CSV "
                    "(a verdicts.csv of an earlier commit: git show REV:results/verdicts.csv)")
    args = ap.parse_args(argv)
    out = write(args.results_dir, args.readme)
    print(f"report: {out}")
    if args.diff:
        changed = diff_verdicts(pd.read_csv(args.diff), pd.read_csv(out.with_name(VERDICTS)))
        print(f"{len(changed)} verdict(s) changed" + (":\n" + changed.to_markdown(index=False) if len(changed) else ""))
    for line in html_pages(args.results_dir) if args.html else []:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
