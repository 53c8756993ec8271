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
import os
import re
import sys
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import pandas as pd

from . import paths
from .results import load_runs
from .sections import Folded, PaperView, judged_tables, paper_view, sections
from .summary import damaged_table, robust_table, verdict_frame
from .verdict import Robust

FIGURES = "report-figures"
VERDICTS = "verdicts.csv"
HEADLINE = re.compile(r"(<!-- report:headline -->\n).*?(<!-- /report:headline -->)", re.S)
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


RULES = ("How to read it: each claim is judged under every plausible reading of its paper (hwrlib/claims.yaml, with "
         "the sentence behind each), from the runs of exactly the protocol it names. A number is *reproduced* when "
         "it lies within what one run of the protocol gives and the protocol's mean is shown to lie within the "
         "tolerance of it; a comparison when the 95 % interval of the difference (paired by seed where both sides "
         "ran the same seeds, Welch's otherwise) lies above 0 (or the stated margin). In each figure a row is a "
         "claim under one reading, in points: dots are seeds, the diamond their mean, the line the interval the "
         "verdict rests on, the grey band the claim's tolerance, the red tick what is claimed. Every number behind "
         "a verdict is in `results/verdicts.csv`.")


def _details(summary: str, body: str) -> str:
    return f"<details><summary>{summary}</summary>\n\n{body}\n\n</details>"


def _paper_section(view: PaperView, folder: Path) -> list[str]:
    """One paper in Markdown: its forest plot, its claims table, the per-reading detail and commands folded, then what
    follows its claims (text and tables, figures); a paper judged nowhere here gets its note instead of the claims."""
    s, extras = view.section, view.extras
    head = [f"## {s.paper}: {s.title}"]
    if not s.judged:
        head.append(s.note(view.n_claims))
    else:
        head += [_images(_save({f"{s.paper}_forest": view.forest} if view.forest else {}, folder)),
                 _md(view.claims), _details("Each claim under each reading", _md(view.detail))
                 + ("\n\n" + _details("Still to run", "\n".join(f"- {t}" for t in view.todo))
                    if view.todo else "")]
    blocks = [_details(b.title, b.body if isinstance(b.body, str) else _md(b.body)) if isinstance(b, Folded)
              else b if isinstance(b, str) else _md(b) for b in extras.blocks]
    return head + blocks + ([_images(_save(extras.figures, folder))] if s.judged or extras.figures else [])


def build(results_dir: str | None = None) -> tuple[str, pd.DataFrame, pd.DataFrame]:
    """The report's Markdown (figures written beside it), the headline table and ``verdicts.csv``'s frame."""
    root = paths.results_dir(results_dir)
    all_runs = committed_runs(results_dir)
    runs = all_runs[all_runs["profile"].isin(["paper", "full", "study"])]
    per, robust = judged_tables(all_runs)
    head, figs = headline(robust), root / FIGURES
    parts = ["# hwr-repro: the report",
             f"_Generated by `make report` from the {len(runs)} complete paper, study and context run records in "
             "`results/runs/`; nothing here is typed by hand._",
             "Claims per paper by verdict over all readings:", _md(head), RULES]
    damaged = damaged_table(all_runs)
    if not damaged.empty:
        parts += ["## Damaged records (skipped)", _md(damaged)]
    for sec in sections():
        parts += _paper_section(paper_view(sec, all_runs, per, robust, results_dir), figs)
    return "\n\n".join(parts) + "\n", head, verdict_frame(all_runs, per=per)


# the notebook pages of the report: each paper notebook at its paper protocol, executed only when every run it
# plans is complete (so the report never trains); the summary always
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


def _pages(root: Path, notebooks: Path) -> tuple[list[tuple[str, Path, dict]], list[str]]:
    """The notebooks to execute (the summary, and each paper notebook whose planned runs are all complete, at its
    section's page parameters), and a line for each paper notebook left out because it would train."""
    from .experiments import create_experiment, plan
    rel = _param_path(root, notebooks)
    pages = [("summary", notebooks / "summary.ipynb", {"results_dir": rel, "committed_only": True})]
    skipped = []
    for sec in sections():
        nb = next(notebooks.glob(f"{sec.paper}_*.ipynb"))
        cfg = create_experiment(sec.paper, **sec.page, results_dir=str(root))
        missing = [d.id for job in plan(cfg) if not job.is_complete() for d in job.dirs if not d.is_complete()]
        if missing:
            skipped.append(f"{nb.name}: not executed (it would train), {len(missing)} planned run(s) not yet run: "
                           f"{sec.command}")
            continue
        pages.append((nb.stem, nb, {**sec.page, "results_dir": rel}))
    return pages, skipped


def _execute(nb: Path, params: dict, kernel_dir: Path):
    """``nb`` executed with ``params`` over IPC, figures at :data:`FIGURE_DPI`, normalized (byte-identical while the
    records are unchanged); a failure prints its kernel's log."""
    import nbformat
    import papermill as pm

    from .sweep import PointKernelManager
    executed = kernel_dir / nb.name
    try:
        pm.execute_notebook(str(nb), str(executed), parameters=params, cwd=str(nb.parent), progress_bar=False,
                            kernel_name="python3", kernel_manager_class=PointKernelManager,
                            config=_kernel_config(kernel_dir), extra_arguments=[
                                f"--IPKernelApp.exec_lines=import matplotlib; matplotlib.rcParams['figure.dpi'] = "
                                f"{FIGURE_DPI}"])
    except Exception:
        log = kernel_dir / "kernel.log"
        print(f"{nb.name} failed; its kernel's log:\n{log.read_text()[-3000:] if log.exists() else '(none)'}",
              file=sys.stderr)
        raise
    node = nbformat.read(executed, as_version=4)
    normalize_executed(node, nbformat.read(nb, as_version=4).metadata)
    return node


def notebook_pages(results_dir: str | None = None, html: bool = True) -> list[str]:
    """Execute the summary (committed records only) and every paper notebook whose planned runs are all complete,
    from the records; write each executed notebook to results/notebooks/<name>.ipynb, byte-identical while the
    records are unchanged, and (``html``) offline HTML (no CDN: MathJax and require.js left out, images embedded)
    to results/report/<name>.html. Returns one line per notebook."""
    import shutil
    import tempfile
    import time

    import nbformat
    from nbconvert import HTMLExporter

    from .results import atomic_write_text
    root = paths.results_dir(results_dir)
    pages, lines = _pages(root, paths.REPO_ROOT / "notebooks")
    exporter = HTMLExporter(mathjax_url="", require_js_url="", embed_images=True)
    (root / NOTEBOOKS).mkdir(parents=True, exist_ok=True)
    (root / "report").mkdir(parents=True, exist_ok=True)
    kernel_dir = Path(tempfile.mkdtemp(prefix="hwr-report-"))  # short: a unix socket path has at most 107 bytes
    try:
        for name, nb, params in pages:
            start = time.monotonic()
            node = _execute(nb, params, kernel_dir)
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
