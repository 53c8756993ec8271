"""``results/REPORT.md``: the study's verdicts, tables and figures from the committed records (nothing trains).

    python -m hwrlib.report [--results-dir DIR] [--readme README.md]

Writes REPORT.md (GitHub renders it) and its figures as PNG files in ``results/report-figures/``, and
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
from .plots import plot_history  # noqa: E402
from .results import load_metrics, load_runs  # noqa: E402
from .summary import NOT_YET_RUN, claims_table, damaged_table, load_claims, robust_table  # noqa: E402

FIGURES = "report-figures"
HEADLINE = re.compile(r"(<!-- report:headline -->\n).*?(<!-- /report:headline -->)", re.S)
# how to produce what a claim needs, by paper (shown beside "not yet run")
COMMANDS = {"000": "make study-000-readings (synth-hwdb); CASIA-HWDB1.1 runs need the data (README)",
            "001": "make paper (sweeps/001_paper.yaml, 001_readings.yaml)",
            "002": "make paper (sweeps/002_paper.yaml, 002_readings.yaml); ResNet-18: add it to compare_models, a GPU job",
            "003": "make study-003 study-003-readings",
            "004": "make paper (sweeps/004_table2.yaml: the 60k reading, sweeps/004_paper.yaml: the 50k/10k one; "
                   "hours per AlexNet seed on a CPU, minutes on a GPU)"}
VERDICT_MARK = {"reproduced": "✅", "holds under every reading": "✅", "not reproduced": "❌",
                "fails under every reading": "❌", "inconclusive": "❔", "not yet run": "⏳"}


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


def commands(robust: pd.DataFrame, results_dir: str | None = None) -> pd.Series:
    """Beside each claim with a reading not yet run, how to produce its runs (and, for a GPU job, what it costs on
    this CPU)."""
    jobs = {c["text"]: c["gpu_job"] for c in load_claims() if "gpu_job" in c}
    rates = bench_rates(results_dir)
    out = []
    for claim, paper, per in zip(robust["claim"], robust["paper"], robust["per reading"]):
        hint = gpu_job_hint(jobs[claim], paper, rates) + "; " if claim in jobs else ""
        out.append(hint + COMMANDS[paper] if NOT_YET_RUN in per else "")
    return pd.Series(out, index=robust.index)


def _md(frame: pd.DataFrame) -> str:
    return frame.to_markdown(index=False, disable_numparse=True) if not frame.empty else "_none_"


def _mark(verdict: str) -> str:
    return f"{VERDICT_MARK.get(verdict, '🟡' if verdict.startswith('holds only') else '')} {verdict}".strip()


def headline(robust: pd.DataFrame) -> pd.DataFrame:
    """The README's table: per paper, how many claims hold, hold under some readings only, fail, are open."""
    def bucket(v: str) -> str:
        return ("holds" if v in ("reproduced", "holds under every reading") else
                "holds under some readings" if v.startswith("holds only") else
                "fails" if v in ("not reproduced", "fails under every reading") else
                "not yet run" if v == "not yet run" else "inconclusive")
    counts = robust.assign(b=robust["verdict"].map(bucket)).pivot_table(index="paper", columns="b", values="claim",
                                                                         aggfunc="count", fill_value=0)
    cols = ["holds", "holds under some readings", "fails", "inconclusive", "not yet run"]
    return counts.reindex(columns=cols, fill_value=0).reset_index()


def headline_markdown(results_dir: str | None = None) -> str:
    """The README's headline block as Markdown, from the records (what ``--readme`` writes)."""
    runs = load_runs(results_dir)
    paper_runs = runs[runs["profile"] == "paper"] if not runs.empty else runs
    return headline(robust_table(paper_runs)).to_markdown(index=False, disable_numparse=True)


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


def _curves_002_001(runs: pd.DataFrame, paper: str, hue: str) -> dict:
    sel = runs[(runs["paper"] == paper) & runs["train_size"].isna()] if not runs.empty else runs
    if sel.empty:
        return {}
    h = load_metrics(sel).merge(sel[["run_id", "model", *[c for c in ("head", "optimizer") if c in sel]]],
                                on="run_id")
    # the reading's value where it applies (002's head is the CNN's; LeNet-5 has none)
    reading = h[hue].astype(str) if hue != "model" else ""
    if hue == "head":
        reading = reading.where(h["model"] == "pytorch_cnn", "")
    h = h.assign(runs=h["model"] + (", " + reading).where(reading != "", "") if hue != "model" else h["model"])
    return {f"{paper}_curves": plot_history(h, hue="runs", title=f"{paper}: paper profile, mean and 95% band over seeds")}


def build(results_dir: str | None = None) -> tuple[str, pd.DataFrame]:
    """The report's Markdown (figures written beside it) and the headline table."""
    root = paths.results_dir(results_dir)
    all_runs = load_runs(results_dir)
    runs = all_runs[all_runs["profile"].isin(["paper", "full", "study"])] if not all_runs.empty else all_runs
    paper_runs = runs[runs["profile"] == "paper"] if not runs.empty else runs
    robust = robust_table(paper_runs)
    per = claims_table(paper_runs)
    per = per[~per["verdict"].isin(["reference", "judged in its notebook"])]
    figs = root / FIGURES
    parts = [
        "# hwr-repro: the report",
        f"_Generated by `make report` from the {len(all_runs)} complete run records in `results/runs/`; "
        "nothing here is typed by hand. "
        "Verdicts use `paper`-profile runs only; each claim is judged under every plausible reading of its paper "
        "(hwrlib/claims.yaml names them, with the sentence behind each)._",
    ]
    damaged = damaged_table(all_runs)
    if not damaged.empty:
        parts += ["## Damaged records (skipped)", _md(damaged)]
    shown = robust.assign(verdict=robust["verdict"].map(_mark), command=commands(robust, results_dir))
    parts += ["## Verdicts", "One row per claim: its verdict under each reading, the robust verdict "
              "(*holds under every reading*, *holds only under …*, *fails under every reading*, *inconclusive*: none "
              "holds and some are not judged yet, or an ordering lies within twice its standard error over seeds), "
              "and the compute its runs took.", _md(shown),
              "## Each claim under each reading",
              _md(per[["paper", "claim", "reading", "claimed", "measured", "n", "tolerance", "verdict"]])]
    sens = p002_figures.sensitivity_table(paper_runs)
    parts += ["## 002: the unstated optimizer and learning rate",
              "Every paper-profile run of the CNN by head, optimizer and learning rate (the grid: "
              "`sweeps/002_sensitivity.yaml`), against the claimed 99.31 %. "
              + p002_figures.sensitivity_share(paper_runs), _md(sens),
              _images(_save({"002_sensitivity": fig} if (fig := p002_figures.sensitivity_figure(paper_runs)) else {},
                            figs))]
    parts += ["## 001 and 002", _images(_save({**_curves_002_001(paper_runs, "002", "head"),
                                                 **_curves_002_001(paper_runs, "001", "optimizer")}, figs))]
    parts += ["## 003: Table 1 and Figures 4-7", _md(p003_figures.table1(runs[runs["paper"] == "003"]
                                                                        if not runs.empty else runs)),
              _images(_save(p003_figures.figures(runs), figs))]
    parts += ["## 004: Table 2 and Fig. 4", _md(p004_figures.table2(paper_runs[paper_runs["paper"] == "004"]
                                                                     if not paper_runs.empty else paper_runs)),
              _images(_save(p004_figures.figures(runs), figs))]
    synth = runs[(runs["paper"] == "000") & (runs["profile"] == "study")] if not runs.empty else runs
    parts += ["## 000 on synth-hwdb (SYNTHETIC data: never compared with the paper's HWDB1.1 numbers)",
              _md(p000_figures.readings_table(synth)) if not synth.empty else
              f"_not yet run: {COMMANDS['000']}_"]
    return "\n\n".join(parts) + "\n", headline(robust)


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
    text, head = build(results_dir)
    out = paths.results_dir(results_dir) / "REPORT.md"
    atomic_write_text(out, text)
    if readme is not None:
        readme = Path(readme)
        body = readme.read_text()
        if not HEADLINE.search(body):
            raise ValueError(f"{readme} has no <!-- report:headline --> ... <!-- /report:headline --> block")
        atomic_write_text(readme, HEADLINE.sub(lambda m: m.group(1) + head.to_markdown(index=False, disable_numparse=True) + "\n"
                                               + m.group(2), body))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hwrlib.report", description=__doc__.splitlines()[0])
    ap.add_argument("--results-dir", help="default: $HWR_RESULTS_DIR or <repo>/results")
    ap.add_argument("--readme", help="also rewrite this README's headline block")
    ap.add_argument("--html", action="store_true", help="also execute the notebooks (from the records) into "
                                                        "results/report/*.html, offline")
    args = ap.parse_args(argv)
    print(f"report: {write(args.results_dir, args.readme)}")
    for line in html_pages(args.results_dir) if args.html else []:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
