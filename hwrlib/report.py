"""``results/REPORT.md``: the study's verdicts, tables and figures from the committed records (nothing trains).

    python -m hwrlib.report [--results-dir DIR] [--readme README.md] [--notebooks | --html]

Writes REPORT.md (GitHub renders it), ``results/verdicts.csv`` (one row per claim x reading: the protocols, numbers
and verdict; REPORT.md's tables render the same findings) and its figures as PNG files in
``results/report-figures/``, and
rewrites the block of README.md between ``<!-- report:headline -->`` and ``<!-- /report:headline -->``
with the headline table, so the README states no number by hand. A run that is missing shows "not yet
run" with the command that produces it. ``--notebooks`` also executes the summary and each paper notebook whose
runs all exist from the records into ``results/notebooks/`` (committed: GitHub shows their outputs),
``--html`` those and offline HTML pages of them in ``results/report/``.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import pandas as pd

from . import paths
from .experiments import p000_figures, p002_figures, p003_figures, p004_figures
from .plots import forest, protocol_curves
from .results import load_runs
from .summary import (claims_table, damaged_table, load_claims, robust_table,
                      verdict_frame)
from .verdict import Robust, Verdict

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
# the profiles whose run folders .gitignore keeps out of the repository: `make reproduce`'s quick runs and `make
# test`'s smoke runs. Everything this module writes to a tracked file reads the other records only, so that
# `make reproduce` on a clone (quick runs, then `make report`) leaves every tracked file as it was.
UNCOMMITTED_PROFILES = ("quick", "smoke")


def committed_runs(results_dir: str | None = None) -> pd.DataFrame:
    """:func:`hwrlib.results.load_runs` without the records of :data:`UNCOMMITTED_PROFILES`, damaged ones
    included (told apart by their folder name, ``<profile>-...``, as .gitignore tells them apart)."""
    runs = load_runs(results_dir)
    prefixes = tuple(f"{p}-" for p in UNCOMMITTED_PROFILES)
    damaged = [(path, problem) for path, problem in runs.attrs.get("damaged", [])
               if not Path(path).name.startswith(prefixes)]
    if not runs.empty:
        runs = runs[~runs["profile"].isin(UNCOMMITTED_PROFILES)].reset_index(drop=True)
    runs.attrs["damaged"] = damaged
    return runs


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
    return headline(robust_table(committed_runs(results_dir))).to_markdown(index=False, disable_numparse=True)


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


TITLES = {"001": "Residual networks for handwriting recognition (blog article)",
          "002": "Deep CNN for handwritten digits in PyTorch",
          "003": "Improved LeNet-5 (sigmoid/MSE) on 2,000/1,000 MNIST subsets",
          "004": "Improved AlexNet with an Inception-ResNet block",
          "000": "Improved deep residual network for offline HCCR (CASIA-HWDB1.1)"}
RULES = ("How to read it: each claim is judged under every plausible reading of its paper (hwrlib/claims.yaml, with the "
         "sentence behind each), from the runs of exactly the protocol it names. A number is *reproduced* when it "
         "lies within what one run of the protocol gives and the protocol's mean is shown to lie within the tolerance "
         "of it; a comparison when the 95 % interval of the seed-paired difference lies above 0 (or the stated "
         "margin). In each figure a row is a claim under one reading, in points: dots are seeds, the diamond their "
         "mean, the line the interval the verdict rests on, the grey band the claim's tolerance, the red tick what "
         "is claimed. Every number behind a verdict is in `results/verdicts.csv`.")


def _compact(robust: pd.DataFrame, per: pd.DataFrame, paper: str) -> pd.DataFrame:
    """A paper's claims, one row each: claimed, what each reading measured, the robust verdict, runs, cost."""
    rows = []
    for _, r in robust[robust["paper"] == paper].iterrows():
        g = per[per["id"] == r["id"]]
        ran = g[g["verdict"] != Verdict.NOT_YET_RUN]
        measured = "<br>".join(f"{x['reading']}: {x['measured']}" if len(g) > 1 else x["measured"]
                               for _, x in ran.iterrows()) or "not yet run"
        n = ", ".join(dict.fromkeys(str(x) for x in ran["n"] if str(x))) or "0"
        rows.append({"claim": r["claim"], "claimed": r["claimed"], "measured": measured,
                     "verdict": f"{r['robust'].mark} {r['verdict']}", "n": n, "cost": r["cost"]})
    return pd.DataFrame(rows)


def _details(summary: str, body: str) -> str:
    return f"<details><summary>{summary}</summary>\n\n{body}\n\n</details>"


def _paper_section(paper: str, per: pd.DataFrame, robust: pd.DataFrame, figures: dict, extra: list[str],
                   commands_: pd.Series, folder: Path) -> list[str]:
    """One paper: its forest plot, its claims table, the per-reading detail and commands folded, then its figures."""
    mine = per[per["paper"] == paper]
    forest_fig = forest(mine, f"{paper}: every judged accuracy claim against what the paper states")
    todo = commands_[robust["paper"] == paper]
    todo = sorted(set(t for t in todo if t))
    detail = _md(mine.assign(verdict=[f"{v.mark} {v.label}" for v in mine["verdict"]])[
        ["claim", "reading", "claimed", "measured", "interval", "n", "tolerance", "verdict", "seeds needed"]])
    return [f"## {paper}: {TITLES[paper]}",
            _images(_save({f"{paper}_forest": forest_fig} if forest_fig else {}, folder)),
            _md(_compact(robust, per, paper)),
            _details("Each claim under each reading", detail)
            + ("\n\n" + _details("How to produce the runs not yet run", "\n".join(f"- {t}" for t in todo))
               if todo else ""),
            *extra, _images(_save(figures, folder))]


def build(results_dir: str | None = None) -> tuple[str, pd.DataFrame, pd.DataFrame]:
    """The report's Markdown (figures written beside it), the headline table and ``verdicts.csv``'s frame."""
    root = paths.results_dir(results_dir)
    all_runs = committed_runs(results_dir)
    runs = all_runs[all_runs["profile"].isin(["paper", "full", "study"])] if not all_runs.empty else all_runs
    paper_runs = runs[runs["profile"] == "paper"] if not runs.empty else runs
    per = claims_table(all_runs)
    per = per[~per["verdict"].isin([Verdict.REFERENCE])]
    robust = robust_table(all_runs, per=per)
    head, figs = headline(robust), root / FIGURES
    parts = ["# hwr-repro: the report",
             f"_Generated by `make report` from the {len(runs)} complete paper, study and context run records in "
             "`results/runs/`; nothing here is typed by hand._",
             "Claims per paper by verdict over all readings:", _md(head), RULES]
    damaged = damaged_table(all_runs)
    if not damaged.empty:
        parts += ["## Damaged records (skipped)", _md(damaged)]
    cmds = commands(robust, per, results_dir)
    extras = _paper_extras(all_runs, runs, paper_runs, figs)
    for paper in ("001", "002", "003", "004"):
        parts += _paper_section(paper, per, robust, *extras[paper], cmds, figs)
    n000 = int((robust["paper"] == "000").sum())
    synth = runs[(runs["paper"] == "000") & (runs["profile"] == "study")] if not runs.empty else runs
    parts += [f"## 000: {TITLES['000']}",
              f"All {n000} claims need CASIA-HWDB1.1, which this machine cannot have (README): none is judged. The "
              "study on synth-hwdb (SYNTHETIC data) measures the same networks and readings for the pipeline's sake "
              "and is never compared with the paper's numbers.",
              _details("000 on synth-hwdb: every reading, top-1 and top-5 (SYNTHETIC)",
                       _md(p000_figures.readings_table(synth)) if not synth.empty else f"not yet run: {COMMANDS['000']}")]
    return "\n\n".join(parts) + "\n", head, verdict_frame(all_runs, per=per)


def _paper_extras(all_runs: pd.DataFrame, runs: pd.DataFrame, paper_runs: pd.DataFrame,
                  folder: Path) -> dict[str, tuple[dict, list[str]]]:
    """Per paper: (its own figures by name, its own tables and text), as they follow its claims."""
    curves = {p: ({f"{p}_curves": fig} if (fig := protocol_curves(all_runs, p)) else {}) for p in ("001", "002")}
    sens = p002_figures.sensitivity_figure(paper_runs)
    t2 = p004_figures.table2(paper_runs[paper_runs["paper"] == "004"] if not paper_runs.empty else paper_runs)
    return {
        "001": (curves["001"], []),
        "002": ({**curves["002"], **({"002_sensitivity": sens} if sens else {})},
                ["**The unstated optimizer and learning rate** (a description, not a verdict: "
                 "`sweeps/002_sensitivity.yaml`). " + p002_figures.sensitivity_share(paper_runs),
                 _md(p002_figures.sensitivity_table(paper_runs))]),
        "003": (p003_figures.figures(runs), ["**Table 1**", _md(p003_figures.table1(runs))]),
        "004": (p004_figures.figures(runs), ["**Table 2**", _md(t2)]),
    }


# the notebook pages of the report: each paper notebook at its paper protocol, executed only when every run it
# plans is complete (so the report never trains); the summary always
PAGES = {"001": {"profile": "paper"}, "002": {"profile": "paper", "compare_models": ["lenet5"]},
         "003": {"profile": "paper", "replicas": 5}, "004": {"profile": "paper", "train_split": "60k_val_test"},
         "000": {"profile": "study", "prod_demo": False}}
NOTEBOOKS = "notebooks"  # results/notebooks/: the executed notebooks, committed so that GitHub shows their outputs
# a pandas Styler's element ids carry a random uuid (T_1a2b3_row0_col0); an object's repr, its address
_STYLER_ID = re.compile(r"\bT_([0-9a-f]{5})(?=[_\"\s])")
_ADDRESS = re.compile(r" at 0x[0-9a-f]+>")
# figures at 72 dpi, not matplotlib's 100: the size GitHub shows a notebook's images at (about 800 px for the
# 11-inch figures); with palette PNGs the summary, the notebook with most figures, is about 1 MB
FIGURE_DPI = 72
MAX_NOTEBOOK_BYTES = 2_000_000


def _kernel_config(kernel_dir: Path):
    """Kernels over IPC sockets in ``kernel_dir`` (a TCP kernel logs 'Kernel is running over TCP without
    encryption' at start), their own log in ``kernel_dir/kernel.log``, shown when a notebook fails: the SIGINT
    a kernel gets at shutdown ('KeyboardInterrupt caught in kernel') stays out of make report's output."""
    from traitlets.config import Config
    return Config({"PointKernelManager": {"transport": "ipc", "ip": str(kernel_dir / "k"),
                                          "stderr_path": str(kernel_dir / "kernel.log")}})


def small_png(b64: str) -> str:
    """A base64 PNG re-encoded with a 256-colour palette (deterministic; a plot has few colours): about a quarter
    of the bytes, which keeps the summary notebook, the one with most figures, well under 2 MB."""
    import base64
    import io

    from PIL import Image
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    out = io.BytesIO()
    image.quantize(colors=256, method=Image.Quantize.FASTOCTREE).save(out, format="PNG", optimize=True)
    return base64.b64encode(out.getvalue()).decode()


def normalize_executed(nb, source_metadata: dict) -> None:
    """Make an executed notebook a function of its records only, in place: the source notebook's metadata (no
    papermill record of paths, times and parameters, no kernel's language_info with this machine's Python
    version), no per-cell timings, the injected parameters cell under a fixed id, Styler ids numbered in order of
    appearance, no object addresses in text reprs; figures as palette PNGs (:func:`small_png`)."""
    import copy
    nb.metadata = copy.deepcopy(source_metadata)
    ids: dict[str, str] = {}

    def styler_id(m: re.Match) -> str:
        return "T_" + ids.setdefault(m.group(1), f"s{len(ids):04d}")

    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if "injected-parameters" in cell.metadata.get("tags", []):
            cell.id = "injected-parameters"
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "text/html" in data:
                data["text/html"] = _STYLER_ID.sub(styler_id, "".join(data["text/html"]))
            if "text/plain" in data:
                data["text/plain"] = _ADDRESS.sub(">", "".join(data["text/plain"]))
            if "image/png" in data:
                data["image/png"] = small_png(data["image/png"])


def _param_path(path: Path, cwd: Path) -> str:
    """``path`` as a notebook run from ``cwd`` is given it: relative inside the repository, so that neither the
    injected parameters nor what the notebook prints name this checkout's location."""
    path = path.resolve()
    return os.path.relpath(path, cwd) if path.is_relative_to(paths.REPO_ROOT) else str(path)


def notebook_pages(results_dir: str | None = None, html: bool = True) -> list[str]:
    """Execute the summary (committed records only) and every paper notebook whose planned runs are all complete,
    from the records; write each executed notebook to results/notebooks/<name>.ipynb, byte-identical while the
    records are unchanged, and (``html``) offline HTML (no CDN: MathJax and require.js left out, images embedded)
    to results/report/<name>.html. Returns one line per notebook."""
    import shutil
    import tempfile
    import time

    import nbformat
    import papermill as pm
    from nbconvert import HTMLExporter

    from .experiments import create_experiment, plan
    from .results import atomic_write_text
    from .sweep import PointKernelManager
    root = paths.results_dir(results_dir)
    notebooks = paths.REPO_ROOT / "notebooks"
    rel = _param_path(root, notebooks)
    pages = [("summary", notebooks / "summary.ipynb", {"results_dir": rel, "committed_only": True})]
    lines = []
    for paper, params in PAGES.items():
        nb = next(notebooks.glob(f"{paper}_*.ipynb"))
        cfg = create_experiment(paper, **params, results_dir=str(root))
        missing = [d.id for job in plan(cfg) if not job.is_complete() for d in job.dirs if not d.is_complete()]
        if missing:
            lines.append(f"{nb.name}: not executed (it would train), {len(missing)} planned run(s) not yet run: "
                         f"{COMMANDS[paper]}")
            continue
        pages.append((nb.stem, nb, {**params, "results_dir": rel}))
    exporter = HTMLExporter(mathjax_url="", require_js_url="", embed_images=True)
    (root / NOTEBOOKS).mkdir(parents=True, exist_ok=True)
    (root / "report").mkdir(parents=True, exist_ok=True)
    # short: a unix socket path has at most 107 bytes
    kernel_dir = Path(tempfile.mkdtemp(prefix="hwr-report-"))
    try:
        for name, nb, params in pages:
            start = time.monotonic()
            executed = kernel_dir / f"{name}.ipynb"
            try:
                pm.execute_notebook(str(nb), str(executed), parameters=params, cwd=str(notebooks),
                                    progress_bar=False, kernel_name="python3", kernel_manager_class=PointKernelManager,
                                    config=_kernel_config(kernel_dir), extra_arguments=[
                                        "--IPKernelApp.exec_lines=import matplotlib; "
                                        f"matplotlib.rcParams['figure.dpi'] = {FIGURE_DPI}"])
            except Exception:
                log = kernel_dir / "kernel.log"
                print(f"{nb.name} failed; its kernel's log:\n{log.read_text()[-3000:] if log.exists() else '(none)'}",
                      file=sys.stderr)
                raise
            node = nbformat.read(executed, as_version=4)
            normalize_executed(node, nbformat.read(nb, as_version=4).metadata)
            out = root / NOTEBOOKS / f"{name}.ipynb"
            atomic_write_text(out, nbformat.writes(node) + "\n")
            size = out.stat().st_size
            shown = f"{out} ({size / 1e6:.1f} MB" + (f", over GitHub-friendly {MAX_NOTEBOOK_BYTES / 1e6:.0f} MB: "
                                                     "fewer or smaller figures)" if size > MAX_NOTEBOOK_BYTES else ")")
            if html:
                page = root / "report" / f"{name}.html"
                atomic_write_text(page, exporter.from_notebook_node(node)[0])
                shown += f", {page}"
            lines.append(f"{name}: {shown} in {time.monotonic() - start:.0f} s")
    finally:
        shutil.rmtree(kernel_dir, ignore_errors=True)
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
    ap.add_argument("--notebooks", action="store_true", help="also execute the notebooks (from the records) into "
                    "results/notebooks/*.ipynb (committed)")
    ap.add_argument("--html", action="store_true", help="--notebooks, and each as offline HTML in results/report/")
    ap.add_argument("--diff", metavar="OLD_CSV", help="after writing, list every verdict that differs from OLD_CSV "
                    "(a verdicts.csv of an earlier commit: git show REV:results/verdicts.csv)")
    args = ap.parse_args(argv)
    matplotlib.use("Agg")  # the command line writes files only; an importer keeps its own backend
    out = write(args.results_dir, args.readme)
    print(f"report: {out}")
    if args.diff:
        changed = diff_verdicts(pd.read_csv(args.diff), pd.read_csv(out.with_name(VERDICTS)))
        print(f"{len(changed)} verdict(s) changed" + (":\n" + changed.to_markdown(index=False) if len(changed) else ""))
    for line in notebook_pages(args.results_dir, html=args.html) if args.html or args.notebooks else []:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
