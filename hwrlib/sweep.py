"""hwr-sweep: run a notebook over a YAML grid of parameters with papermill, on Dask.

    hwr-sweep notebooks/002_pytorch_cnn_mnist.ipynb sweeps/002_seeds.yaml --workers 2
    hwr-sweep NOTEBOOK GRID [GRID ...] --scheduler tcp://10.0.0.5:8786    # an existing Dask cluster

A grid is a YAML mapping of notebook parameters. A list expands into one point per
element (cartesian product over all lists); ``seeds: [0, 1, 2]`` sets ``seed``. For a
parameter that is itself a list (``compare_models``) a plain list is one value and a
list of lists expands. ``cases:`` takes a list of mappings whose values go together
(``cases: [{c1: 2, c3: 8}, {c1: 6, c3: 12}]``): one axis of the product. Several grids
run as one sweep, a point they share only once, a point whose run folders another point
also writes only inside that one. A point whose every run folder is
complete is skipped, so an interrupted sweep restarted runs only what is missing. The
executed notebook lands in the folder of the point's main run. Exit status is 1 if any
point failed.
"""
from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import sys
import typing
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml
from tqdm.auto import tqdm

from .experiments import experiment_config, run_dirs


def load_grid(path: str | os.PathLike | None) -> dict[str, Any]:
    if path is None:
        return {}
    grid = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(grid, dict):
        raise ValueError(f"{path}: a grid must be a YAML mapping of parameter: value or [values]")
    cases = grid.get("cases", [{}])
    if not (isinstance(cases, list) and cases and all(isinstance(c, dict) for c in cases)):
        raise ValueError(f"{path}: 'cases' must be a non-empty list of mappings, e.g. [{{c1: 2, c3: 8}}]")
    if "seeds" in grid:
        if "seed" in grid:
            raise ValueError(f"{path}: give 'seeds' or 'seed', not both")
        grid["seed"] = grid.pop("seeds")
    return grid


def expand_grid(grid: dict[str, Any], config_cls: type) -> list[dict[str, Any]]:
    """Cartesian product of the grid's lists; list-typed parameters expand only from a list of lists."""
    hints = typing.get_type_hints(config_cls)
    known = {f.name for f in fields(config_cls)}
    axes = []
    for key, value in grid.items():
        names = [k for case in value for k in case] if key == "cases" else [key]
        unknown = [k for k in names if k not in known]
        if unknown:
            raise ValueError(f"grid parameter {unknown[0]!r} is not a parameter of this notebook; "
                             f"known: {', '.join(sorted(known))}")
        if key == "cases":  # values that go together: one axis whose elements set several parameters
            axes.append([tuple(case.items()) for case in value])
            continue
        list_typed = (typing.get_origin(hints[key]) or hints[key]) is list
        expand = isinstance(value, list) and (not list_typed or (value and all(isinstance(v, list) for v in value)))
        axes.append([((key, v),) for v in value] if expand else [((key, value),)])
    return [dict(kv for part in combo for kv in part) for combo in itertools.product(*axes)]


def run_point(notebook: str, params: dict[str, Any], out_dir: str, threads: int) -> dict[str, Any]:
    """Execute one point (in a Dask worker). Returns its status; never raises for a notebook error."""
    import papermill as pm
    os.environ["HWR_NUM_THREADS"] = str(threads)  # the kernel inherits it; see train.set_threads_from_env
    # Dask's nanny sets MALLOC_TRIM_THRESHOLD_=65536 for its workers; a kernel inheriting it hands every freed
    # activation back to the OS and page-faults it in again: small-network training ran 2x slower, half in the kernel
    os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / ".notebook.tmp.ipynb"  # papermill wants the .ipynb suffix
    try:
        pm.execute_notebook(notebook, str(tmp), parameters=params, cwd=str(Path(notebook).parent),
                            progress_bar=False, kernel_name="python3")
    except pm.PapermillExecutionError as e:
        os.replace(tmp, out / "failed-notebook.ipynb")
        return {"status": "failed", "error": f"{e.ename}: {e.evalue}", "notebook": str(out / "failed-notebook.ipynb")}
    except Exception as e:  # kernel died, notebook missing, ...
        return {"status": "failed", "error": f"{type(e).__name__}: {e}"}
    os.replace(tmp, out / "notebook.ipynb")
    return {"status": "done", "notebook": str(out / "notebook.ipynb")}


def plan(notebook: str, grids: dict[str, Any] | list[dict[str, Any]], results_dir: str | None) -> list[dict[str, Any]]:
    """Every point of the grids with whether it is complete (or invalid).

    A point that several grids hold (the same run folders, however its parameters are spelled) is planned once,
    and so is a point whose folders another point writes too (003's Table 1 point, with its baselines, covers
    the grids' default point): only the larger runs.
    """
    config_cls = experiment_config(notebook)
    points, keys = [], []
    for params in (p for g in ([grids] if isinstance(grids, dict) else grids) for p in expand_grid(g, config_cls)):
        if results_dir:
            params = {**params, "results_dir": results_dir}
        item: dict[str, Any] = {"params": params}
        try:
            dirs = run_dirs(config_cls.from_params(**params))
            key = frozenset(str(d.path) for d in dirs)
            item["out_dir"] = str(dirs[0].path)
            item["status"] = "skipped" if all(d.is_complete() for d in dirs) else "todo"
        except ValueError as e:  # an impossible point: report it, run the others
            key = frozenset([json.dumps(params, sort_keys=True, default=str)])
            item.update(status="failed", error=str(e))
        points.append(item)
        keys.append(key)
    # drop repeats and points inside a larger one (the first of equal points stays)
    keep = [i for i, k in enumerate(keys)
            if not any((k < other) or (k == other and j < i) for j, other in enumerate(keys) if j != i)]
    return [points[i] for i in keep]


def sweep(notebook: str, grid: dict[str, Any] | list[dict[str, Any]], workers: int = 1, scheduler: str | None = None,
          results_dir: str | None = None, threads: int | None = None, progress: bool = True) -> list[dict[str, Any]]:
    """Run every missing point of ``grid`` (one grid or a list); returns one status dict per point."""
    from distributed import Client, LocalCluster, as_completed
    notebook = str(Path(notebook).resolve())
    points = plan(notebook, grid, results_dir)
    todo = [p for p in points if p["status"] == "todo"]
    if not todo:
        return points
    if scheduler:
        client, cluster = Client(scheduler), None
    else:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR)
        client = Client(cluster)
    # each notebook's torch threads: share this machine's cores between the local workers
    threads = threads or (1 if scheduler else max(1, (os.cpu_count() or 1) // workers))
    try:
        futures = {client.submit(run_point, notebook, p["params"], p["out_dir"], threads, pure=False): p for p in todo}
        for fut in tqdm(as_completed(futures), total=len(futures), desc="sweep", unit="point", disable=not progress):
            try:
                futures[fut].update(fut.result())
            except Exception as e:  # a worker lost mid-point
                futures[fut].update(status="failed", error=f"{type(e).__name__}: {e}")
    finally:
        client.close()
        if cluster:
            cluster.close()
    return points


def _report(points: list[dict[str, Any]]) -> str:
    lines = []
    for p in points:
        shown = {k: v for k, v in p["params"].items() if k != "results_dir"}
        line = f"{p['status']:8s} {shown}"
        if p["status"] == "failed":
            line += f"\n         error: {p['error']}" + (f"\n         see: {p['notebook']}" if p.get("notebook") else "")
        lines.append(line)
    counts = {s: sum(p["status"] == s for p in points) for s in ("done", "skipped", "failed")}
    lines.append(", ".join(f"{n} {s}" for s, n in counts.items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="hwr-sweep", description=__doc__.split("\n\n")[0])
    ap.add_argument("notebook", help="the paper notebook to run, e.g. notebooks/002_pytorch_cnn_mnist.ipynb")
    ap.add_argument("grid", nargs="*", help="YAML grids, run as one sweep; none: one point with the notebook's defaults")
    ap.add_argument("--workers", type=int, default=1, help="LocalCluster worker processes (default 1)")
    ap.add_argument("--scheduler", help="address of an existing Dask scheduler, instead of a LocalCluster")
    ap.add_argument("--threads", type=int, help="torch threads per point (default: cores / workers; 1 with --scheduler)")
    ap.add_argument("--results-dir", help="results folder passed to every point (default: the notebook's)")
    ap.add_argument("--dry-run", action="store_true", help="list the points and their status, run nothing")
    args = ap.parse_args(argv)
    if args.workers < 1 or (args.threads is not None and args.threads < 1):
        ap.error("--workers and --threads must be >= 1")
    if not Path(args.notebook).exists():
        ap.error(f"notebook {args.notebook} does not exist")
    try:
        grid = [load_grid(g) for g in args.grid] or [{}]
        points = (plan(str(Path(args.notebook).resolve()), grid, args.results_dir) if args.dry_run else
                  sweep(args.notebook, grid, args.workers, args.scheduler, args.results_dir, args.threads))
    except (ValueError, FileNotFoundError) as e:
        print(f"hwr-sweep: {e}", file=sys.stderr)
        return 2
    print(_report(points))
    return 1 if any(p["status"] == "failed" for p in points) else 0


if __name__ == "__main__":
    sys.exit(main())
