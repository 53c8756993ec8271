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
import re
import sys
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import pandas as pd

from . import paths
from .results import load_runs
from .sections import Folded, PaperView, paper_view, sections
from .summary import claims_table, damaged_table, robust_table, verdict_frame
from .verdict import Robust, Verdict

FIGURES = "report-figures"
VERDICTS = "verdicts.csv"
HEADLINE = re.compile(r"(<!-- report:headline -->\n).*?(<!-- /report:headline -->)", re.S)
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


RULES = ("How to read it: each claim is judged under every plausible reading of its paper (hwrlib/claims.yaml, with the "
         "sentence behind each), from the runs of exactly the protocol it names. A number is *reproduced* when it "
         "lies within what one run of the protocol gives and the protocol's mean is shown to lie within the tolerance "
         "of it; a comparison when the 95 % interval of the seed-paired difference lies above 0 (or the stated "
         "margin). In each figure a row is a claim under one reading, in points: dots are seeds, the diamond their "
         "mean, the line the interval the verdict rests on, the grey band the claim's tolerance, the red tick what "
         "is claimed. Every number behind a verdict is in `results/verdicts.csv`.")


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
                 + ("\n\n" + _details("How to produce the runs not yet run", "\n".join(f"- {t}" for t in view.todo))
                    if view.todo else "")]
    blocks = [_details(b.title, b.body if isinstance(b.body, str) else _md(b.body)) if isinstance(b, Folded)
              else b if isinstance(b, str) else _md(b) for b in extras.blocks]
    return head + blocks + ([_images(_save(extras.figures, folder))] if s.judged or extras.figures else [])


def build(results_dir: str | None = None) -> tuple[str, pd.DataFrame, pd.DataFrame]:
    """The report's Markdown (figures written beside it), the headline table and ``verdicts.csv``'s frame."""
    root = paths.results_dir(results_dir)
    all_runs = load_runs(results_dir)
    runs = all_runs[all_runs["profile"].isin(["paper", "full", "study"])]
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
    for sec in sections():
        parts += _paper_section(paper_view(sec, all_runs, per, robust, results_dir), figs)
    return "\n\n".join(parts) + "\n", head, verdict_frame(all_runs, per=per)


# the notebook pages of the report: each paper notebook at its paper protocol, executed only when every run it
# plans is complete (so the report never trains); the summary always


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
    for sec in sections():
        paper, params = sec.paper, sec.page
        nb = next(notebooks.glob(f"{paper}_*.ipynb"))
        cfg = create_experiment(paper, **params, results_dir=str(paths.results_dir(results_dir)))
        missing = [d.id for job in plan(cfg) if not job.is_complete() for d in job.dirs if not d.is_complete()]
        if missing:
            lines.append(f"{nb.name}: not executed, {len(missing)} planned run(s) not yet run ({sec.command})")
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
    matplotlib.use("Agg")  # the command line writes files only; an importer keeps its own backend
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
