"""hwr-sweep: run a notebook over a YAML grid of parameters with papermill, on Dask.

    hwr-sweep notebooks/002_pytorch_cnn_mnist.ipynb sweeps/002_paper.yaml --workers 2
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

Every point is told where to write: the client resolves the results and data folders (``--results-dir`` /
``--data-dir``, else ``$HWR_RESULTS_DIR`` / ``$HWR_DATA_DIR`` or the repository's) and the profile, and passes them
as the point's parameters, so a worker whose environment differs writes where the client planned. A point takes a
lock per run folder (``.lock``), so two sweeps over one results folder never train the same point at once: the
second reports it ``busy``. A point whose worker died is retried once; a sweep left without workers for
``--worker-timeout`` seconds stops with the unfinished points listed.
"""
from __future__ import annotations

import argparse
import functools
import itertools
import json
import logging
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
import typing
import uuid
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml
from jupyter_client.manager import AsyncKernelManager
from tqdm.auto import tqdm
from traitlets import Dict, Unicode
from traitlets.config import Config

from . import paths
from .config import ExperimentConfig
from .experiments import experiment_config, run_dirs
from .results import protocol_id

TMP_NOTEBOOK = ".notebook.tmp.ipynb"  # papermill wants the .ipynb suffix
LOCK = ".lock"
HEARTBEAT_S = 60.0  # a running point touches its locks this often...
STALE_AFTER_S = 15 * 60.0  # ...so a lock untouched this long lost its holder, even one on another host
POLL_S = 2.0  # how often the client looks for finished points and live workers


class SweepError(RuntimeError):
    """The sweep cannot start or go on (no scheduler, no worker); ``hwr-sweep`` prints it and exits 1."""


def load_grid(path: str | os.PathLike | None) -> dict[str, Any]:
    """A grid file's mapping (``seeds`` renamed ``seed``); bad YAML raises ValueError naming file, line and column."""
    if path is None:
        return {}
    try:
        grid = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(e, "problem", None) or str(e)
        context, cmark = getattr(e, "context", None), getattr(e, "context_mark", None)
        if context:  # where the construct that broke began, e.g. a list's '[' left open
            problem += f" ({context}" + (f" at line {cmark.line + 1}, column {cmark.column + 1})" if cmark else ")")
        raise ValueError(f"{where}: not valid YAML: {problem}") from None
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
        if expand and not value:  # an empty axis makes an empty sweep, which would "succeed" having run nothing
            name = "seeds" if key == "seed" else key
            raise ValueError(f"grid parameter {name!r} has no values ([]): give at least one, or leave it out")
        axes.append([((key, v),) for v in value] if expand else [((key, value),)])
    return [dict(kv for part in combo for kv in part) for combo in itertools.product(*axes)]


@dataclass(frozen=True)
class Declared:
    """The seeds a protocol's sweeps declare, fixed before its runs; the grid files that declare them, the paper's
    notebook, and one of the protocol's run configs."""
    seeds: tuple[int, ...]
    grids: tuple[str, ...]
    notebook: str
    config: dict[str, Any]

    def command(self) -> str:
        return f"hwr-sweep {self.notebook} {' '.join(self.grids)}"


SWEEPS = paths.REPO_ROOT / "sweeps"


@functools.cache
def declared_seeds(sweeps: Path = SWEEPS) -> dict[str, Declared]:
    """Every protocol the grids ``sweeps/<paper>_*.yaml`` plan, with the seeds they declare for it (a verdict on
    fewer runs is interim). A protocol several grids plan takes the union of their seeds. Empty without a source
    checkout's sweeps/ folder."""
    seen: dict[str, tuple[set[int], set[str], str, dict[str, Any]]] = {}
    for path in sorted(Path(sweeps).glob("[0-9][0-9][0-9]_*.yaml")):
        config_cls = experiment_config(path.name)
        found = next(Path(sweeps).parent.glob(f"notebooks/{config_cls.paper}_*.ipynb"), None)
        notebook = f"notebooks/{found.name if found else config_cls.paper + '_*.ipynb'}"
        for point in expand_grid(load_grid(path), config_cls):
            for rd in run_dirs(config_cls.build(point)):
                seeds, grids, _, _ = seen.setdefault(protocol_id(rd.paper, rd.config),
                                                     (set(), set(), notebook, rd.config))
                seeds.add(int(rd.config["seed"]))
                grids.add(f"sweeps/{path.name}")
    return {p: Declared(tuple(sorted(s)), tuple(sorted(g)), nb, c) for p, (s, g, nb, c) in seen.items()}


class PointKernelManager(AsyncKernelManager):
    """A point's kernel, with an environment and stderr of its own.

    run_point configures it over IPC sockets: a TCP kernel logs 'Kernel is running over TCP without encryption'
    at start, which would land in every sweep's output.
    """
    env_changes = Dict(config=True, help="variables to set in the kernel's environment; a None value removes one")
    stderr_path = Unicode("", config=True, help="file that takes the kernel process's own stderr (its log)")

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
        env = dict(kw.get("env") or os.environ)
        for name, value in self.env_changes.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = str(value)
        kw["env"] = env
        stderr = open(self.stderr_path, "ab") if self.stderr_path else None  # noqa: SIM115 (the kernel keeps a copy)
        try:
            await super()._async_launch_kernel(kernel_cmd, **kw, **({"stderr": stderr} if stderr else {}))
        finally:
            if stderr:
                stderr.close()


def _kernel_env(params: dict[str, Any], threads: int) -> dict[str, str | None]:
    """What a point's kernel must see whatever its worker's environment: the client's folders, not the worker's."""
    return {
        "HWR_NUM_THREADS": str(threads),  # see train.set_threads_from_env
        # Dask's nanny sets MALLOC_TRIM_THRESHOLD_=65536 for its workers; a kernel inheriting it hands every freed
        # activation back to the OS and page-faults it in again: small-network training ran 2x slower, half in the kernel
        "MALLOC_TRIM_THRESHOLD_": None,
        # the client resolved the profile into the parameters; a worker's $HWR_PROFILE would override it
        "HWR_PROFILE": None,
        "HWR_RESULTS_DIR": params.get("results_dir"),
        "HWR_DATA_DIR": params.get("data_dir"),
    }


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").strip()
    except FileNotFoundError:
        return ""
    return "\n         kernel log:\n           " + "\n           ".join(text.splitlines()[-lines:]) if text else ""


def _remove_dead_kernel_dirs() -> None:
    """The kernel folders of points whose worker was killed (``hwr-kernel-<worker pid>-*`` in the temp folder)."""
    for folder in Path(tempfile.gettempdir()).glob("hwr-kernel-*-*"):
        pid = folder.name.split("-")[2]
        if pid.isdigit() and not _pid_alive(pid):
            shutil.rmtree(folder, ignore_errors=True)


def _execute(notebook: str, params: dict[str, Any], out: Path, threads: int) -> dict[str, Any]:
    """Run the notebook into ``out`` with papermill; the temp notebook never outlives the call."""
    import papermill as pm
    tmp = out / TMP_NOTEBOOK
    _remove_dead_kernel_dirs()
    # short: a unix socket path has at most 107 bytes
    kernel_dir = Path(tempfile.mkdtemp(prefix=f"hwr-kernel-{os.getpid()}-"))
    config = Config({"PointKernelManager": {"transport": "ipc", "ip": str(kernel_dir / "k"),
                                             "stderr_path": str(kernel_dir / "stderr.log"),
                                             "env_changes": _kernel_env(params, threads)}})
    try:
        pm.execute_notebook(notebook, str(tmp), parameters=params, cwd=str(Path(notebook).parent),
                            progress_bar=False, kernel_name="python3",
                            kernel_manager_class=PointKernelManager, config=config)
        os.replace(tmp, out / "notebook.ipynb")
        return {"status": "done", "notebook": str(out / "notebook.ipynb")}
    except pm.PapermillExecutionError as e:
        os.replace(tmp, out / "failed-notebook.ipynb")
        return {"status": "failed", "error": f"{e.ename}: {e.evalue}", "notebook": str(out / "failed-notebook.ipynb")}
    except Exception as e:  # kernel died, notebook missing, ...
        return {"status": "failed", "error": f"{type(e).__name__}: {e}" + _tail(kernel_dir / "stderr.log")}
    finally:
        tmp.unlink(missing_ok=True)
        shutil.rmtree(kernel_dir, ignore_errors=True)


def _pid_alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError, TypeError):
        return False
    except PermissionError:  # another user's process
        return True
    try:  # a killed worker stays a zombie until its nanny reaps it, and signal 0 reaches a zombie
        return Path(f"/proc/{int(pid)}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):  # no /proc (macOS)
        return True


def _read_lock(path: Path) -> tuple[dict[str, Any], float] | None:
    """A lock's record and age (seconds since its last heartbeat); None if there is none.

    A lock being written reads as ``{}``: held by someone.
    """
    try:
        text, age = path.read_text(), time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return None
    try:
        record = json.loads(text)
    except ValueError:
        record = {}
    return (record if isinstance(record, dict) else {}), age


def _holder_gone(record: dict[str, Any], age: float, sweep_id: str = "") -> bool:
    """Whether a lock's holder died: its pid is gone on this host, or it stopped beating.

    On another host a lock of this sweep is an earlier attempt of the point, whose worker died: Dask runs a point
    at one place at a time.
    """
    if age > STALE_AFTER_S:
        return True
    if not record:
        return False
    if record.get("host") == socket.gethostname():
        return not _pid_alive(record.get("pid"))
    return bool(sweep_id) and record.get("sweep") == sweep_id


def _break_lock(path: Path, seen: dict[str, Any]) -> None:
    """Remove the lock at ``path`` if it still holds ``seen``: another sweep may have broken and retaken it since.

    Breakers of one lock take turns under flock; the one that comes second finds a new file there, or none.
    """
    import fcntl
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        current = _read_lock(path)
        if current and current[0] == seen and os.fstat(fd).st_ino == path.stat().st_ino:
            path.unlink()
    except FileNotFoundError:
        pass
    finally:
        os.close(fd)


def _describe(record: dict[str, Any]) -> str:
    if not record:
        return "its lock is being written"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.get("started", 0)))
    return f"pid {record.get('pid')} on {record.get('host')} since {since}"


class _PointLocks:
    """The locks of a point's run folders (``<folder>/.lock``, created with O_EXCL), held while it runs.

    Each records host, pid, start time, the sweep and the attempt; a thread touches them every HEARTBEAT_S, so a
    holder that died on another host is known by its silence.
    """

    def __init__(self, folders: list[Path], sweep_id: str) -> None:
        self.paths = [f / LOCK for f in folders]
        self.sweep_id = sweep_id
        self.held: list[Path] = []
        # attempts of this sweep whose worker died holding the lock
        self.died = max((int(r[0].get("attempt", 1)) for r in map(_read_lock, self.paths)
                         if r and sweep_id and r[0].get("sweep") == sweep_id and _holder_gone(*r, sweep_id)), default=0)
        self.record = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time(),
                       "sweep": sweep_id, "attempt": self.died + 1}
        self._stop = threading.Event()
        self._beat = threading.Thread(target=self._heartbeat, daemon=True)

    def acquire(self) -> dict[str, Any] | None:
        """Take every lock; if a live holder has one, take none and return its record."""
        for path in self.paths:
            holder = self._take(path)
            if holder is not None:
                self.release()
                return holder
        self._beat.start()
        return None

    def _take(self, path: Path) -> dict[str, Any] | None:
        for _ in range(5):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                seen = _read_lock(path)
                if seen is None:  # released meanwhile
                    continue
                if not _holder_gone(*seen, self.sweep_id):
                    return seen[0]
                _break_lock(path, seen[0])
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(self.record, f)
            self.held.append(path)
            return None
        return _read_lock(path)[0] if _read_lock(path) else {}

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            for path in self.held:
                try:
                    os.utime(path)
                except FileNotFoundError:
                    pass

    def release(self) -> None:
        self._stop.set()
        for path in self.held:
            current = _read_lock(path)
            if current and current[0] == self.record:  # not broken and retaken by another sweep
                path.unlink(missing_ok=True)
        self.held = []


def run_point(notebook: str, params: dict[str, Any], out_dir: str, threads: int,
              dirs: list[str] | None = None, sweep_id: str = "") -> dict[str, Any]:
    """Execute one point (in a Dask worker) holding the locks of its run folders; returns its status.

    Never raises for a notebook error. ``dirs``: the point's run folders (default ``out_dir``); a point whose every
    folder is complete once the locks are held (another sweep finished it) is skipped. ``sweep_id`` tells this
    sweep's earlier attempt of the point, which died with its worker, from another sweep: the point is retried once.
    """
    out = Path(out_dir)
    folders = [Path(d) for d in (dirs or [out_dir])]
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    locks = _PointLocks(folders, sweep_id)
    holder = locks.acquire()
    if holder is not None:
        return {"status": "busy", "error": f"another sweep is running it ({_describe(holder)})"}
    try:
        retried = {"retried": True} if locks.died else {}
        if locks.died >= 2:
            return {**retried, "status": "failed",
                    "error": "its worker died on both attempts (out of memory?); not retried again"}
        if dirs and all((f / "final.json").exists() for f in folders):  # RunDir.is_complete
            return {**retried, "status": "skipped"}
        return {**retried, **_execute(notebook, params, out, threads)}
    finally:
        locks.release()


def _remove_stale_tmp(folder: Path) -> None:
    """A killed point's temp notebook, unless a live sweep holds the folder (it is writing that file)."""
    tmp = folder / TMP_NOTEBOOK
    if tmp.exists():
        lock = _read_lock(folder / LOCK)
        if lock is None or _holder_gone(*lock):
            tmp.unlink(missing_ok=True)


def plan_points(notebook: str, grids: dict[str, Any] | list[dict[str, Any]], results_dir: str | None = None,
         data_dir: str | None = None) -> list[dict[str, Any]]:
    """Every point of the grids with whether it is complete (or invalid).

    Each point's parameters name the results and data folders as absolute paths (``results_dir`` /
    ``data_dir``, else the grid's, else ``$HWR_RESULTS_DIR`` / ``$HWR_DATA_DIR`` or the repository's, all resolved
    here) and its profile (``$HWR_PROFILE`` here): a worker with another environment writes where this plan
    looks. A point that several grids hold (the same run folders, however its parameters are spelled) is planned
    once, and so is a point whose folders another point writes too (003's Table 1 point, with its baselines,
    covers the grids' default point): only the larger runs.
    """
    config_cls = experiment_config(notebook)
    points, keys = [], []
    for given in (p for g in ([grids] if isinstance(grids, dict) else grids) for p in expand_grid(g, config_cls)):
        params = {**given,
                  "results_dir": str(paths.results_dir(results_dir or given.get("results_dir")).resolve()),
                  "data_dir": str(paths.data_dir(data_dir or given.get("data_dir")).resolve())}
        # the report shows what the grid chose, not where the client told every point to write
        item: dict[str, Any] = {"params": params,
                                "shown": {k: v for k, v in given.items() if k not in ExperimentConfig.NON_IDENTITY}}
        try:
            cfg = config_cls.from_params(**params)
            params["profile"] = cfg.profile
            dirs = run_dirs(cfg)
            key = frozenset(str(d.path) for d in dirs)
            item["out_dir"] = str(dirs[0].path)
            item["dirs"] = [str(d.path) for d in dirs]
            item["status"] = "skipped" if all(d.is_complete() for d in dirs) else "todo"
            _remove_stale_tmp(dirs[0].path)
        except ValueError as e:  # an impossible point: report it, run the others
            key = frozenset([json.dumps(params, sort_keys=True, default=str)])
            item.update(status="failed", error=str(e))
        points.append(item)
        keys.append(key)
    # drop repeats and points inside a larger one (the first of equal points stays)
    keep = [i for i, k in enumerate(keys)
            if not any((k < other) or (k == other and j < i) for j, other in enumerate(keys) if j != i)]
    return [points[i] for i in keep]


def _connect(scheduler: str | None, workers: int, timeout: float):
    """A client of ``scheduler`` with at least one worker (waiting up to ``timeout``), or of a new LocalCluster."""
    from distributed import Client, LocalCluster
    if not scheduler:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR)
        return Client(cluster), cluster
    try:
        client = Client(scheduler, timeout=timeout)
    except OSError as e:
        raise SweepError(f"cannot reach the Dask scheduler at {scheduler} ({e}); "
                         f"is `dask scheduler` running there?") from None
    try:
        client.wait_for_workers(1, timeout=timeout)
    except TimeoutError:
        client.close()
        raise SweepError(f"no Dask worker joined {scheduler} within {timeout:g} s; start one with "
                         f"`dask worker {scheduler}` (or raise --worker-timeout)") from None
    return client, None


def _worker_count(client) -> int:
    try:
        return len(client.nthreads())
    except OSError:  # the scheduler is gone too
        return 0


def _run(client, where: str, notebook: str, todo: list[dict[str, Any]], threads: int, worker_timeout: float,
         progress: bool) -> None:
    """Run the points on ``client``'s workers, updating each point's dict with its status."""
    from distributed import KilledWorker, wait
    sweep_id = uuid.uuid4().hex

    def submit(p: dict[str, Any]):
        return client.submit(run_point, notebook, p["params"], p["out_dir"], threads, p["dirs"], sweep_id,
                             pure=False)

    pending = {submit(p): p for p in todo}
    alone_since = None  # when the last worker left
    with tqdm(total=len(todo), desc="sweep", unit="point", disable=not progress) as bar:
        while pending:
            try:
                finished = wait(list(pending), timeout=POLL_S, return_when="FIRST_COMPLETED").done
            except TimeoutError:
                finished = set()
            for fut in finished:
                p = pending.pop(fut)
                try:
                    p.update(fut.result())
                except KilledWorker as e:  # the scheduler gave up on it (its allowed-failures); once more is ours
                    if not p.get("retried"):
                        p["retried"] = True
                        pending[submit(p)] = p
                        continue
                    p.update(status="failed", error=f"KilledWorker: {e}")
                except Exception as e:  # the scheduler lost, ...
                    p.update(status="failed", error=f"{type(e).__name__}: {e}")
                bar.update()
            if _worker_count(client):
                alone_since = None
            elif alone_since is None:
                alone_since = time.monotonic()
            elif time.monotonic() - alone_since > worker_timeout:
                client.cancel(list(pending))
                for p in pending.values():
                    p.update(status="failed", error=f"unfinished: no Dask worker left on {where} for "
                                                    f"{worker_timeout:g} s; start workers and rerun "
                                                    f"(finished points are kept)")
                return


def sweep(notebook: str, grid: dict[str, Any] | list[dict[str, Any]], workers: int = 1, scheduler: str | None = None,
          results_dir: str | None = None, threads: int | None = None, progress: bool = True,
          data_dir: str | None = None, worker_timeout: float = 60.0) -> list[dict[str, Any]]:
    """Run every missing point of ``grid`` (one grid or a list); returns one status dict per point.

    Raises:
        SweepError: the scheduler cannot be reached, or no worker joined it within ``worker_timeout`` seconds.
    """
    notebook = str(Path(notebook).resolve())
    points = plan_points(notebook, grid, results_dir, data_dir)
    todo = [p for p in points if p["status"] == "todo"]
    if not todo:
        return points
    client, cluster = _connect(scheduler, workers, worker_timeout)
    # each notebook's torch threads: share this machine's cores between the local workers
    threads = threads or (1 if scheduler else max(1, (os.cpu_count() or 1) // workers))
    try:
        _run(client, scheduler or "the local cluster", notebook, todo, threads, worker_timeout, progress)
    finally:
        client.close()
        if cluster:
            cluster.close()
    return points


def _report(points: list[dict[str, Any]]) -> str:
    lines = []
    for p in points:
        line = f"{p['status']:8s} {p['shown']}" + ("  (retried once after its worker died)" if p.get("retried") else "")
        if p["status"] in ("failed", "busy"):
            line += f"\n         {'error' if p['status'] == 'failed' else 'why'}: {p['error']}"
            line += f"\n         see: {p['notebook']}" if p.get("notebook") else ""
        lines.append(line)
    counts = {s: sum(p["status"] == s for p in points) for s in ("done", "skipped", "failed", "busy")}
    lines.append(", ".join(f"{n} {s}" for s, n in counts.items() if s != "busy" or n))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="hwr-sweep", description=__doc__.split("\n\n")[0])
    ap.add_argument("notebook", help="the paper notebook to run, e.g. notebooks/002_pytorch_cnn_mnist.ipynb")
    ap.add_argument("grid", nargs="*", help="YAML grids, run as one sweep; none: one point with the notebook's defaults")
    ap.add_argument("--workers", type=int, default=1, help="LocalCluster worker processes (default 1)")
    ap.add_argument("--scheduler", help="address of an existing Dask scheduler, instead of a LocalCluster")
    ap.add_argument("--threads", type=int, help="torch threads per point (default: cores / workers; 1 with --scheduler)")
    ap.add_argument("--results-dir", help="results folder of every point (default: $HWR_RESULTS_DIR or results/ "
                                          "here, whatever the workers' environment)")
    ap.add_argument("--data-dir", help="data folder of every point (default: $HWR_DATA_DIR or data/ here)")
    ap.add_argument("--worker-timeout", type=float, default=60.0,
                    help="seconds to wait for a Dask worker, at start or when the last one left (default 60)")
    ap.add_argument("--dry-run", action="store_true", help="list the points and their status, run nothing")
    args = ap.parse_args(argv)
    if args.workers < 1 or (args.threads is not None and args.threads < 1):
        ap.error("--workers and --threads must be >= 1")
    if args.worker_timeout <= 0:
        ap.error("--worker-timeout must be > 0 seconds")
    if not Path(args.notebook).exists():
        ap.error(f"notebook {args.notebook} does not exist")
    try:
        grid = [load_grid(g) for g in args.grid] or [{}]
        points = (plan_points(str(Path(args.notebook).resolve()), grid, args.results_dir, args.data_dir) if args.dry_run else
                  sweep(args.notebook, grid, args.workers, args.scheduler, args.results_dir, args.threads,
                        data_dir=args.data_dir, worker_timeout=args.worker_timeout))
    except (ValueError, FileNotFoundError) as e:
        print(f"hwr-sweep: {e}", file=sys.stderr)
        return 2
    except SweepError as e:
        print(f"hwr-sweep: {e}", file=sys.stderr)
        return 1
    print(_report(points))
    return 1 if any(p["status"] == "failed" for p in points) else 0


if __name__ == "__main__":
    # through the imported module: Dask would pickle __main__'s run_point, and its kernel manager class, by value
    from hwrlib.sweep import main as _main
    sys.exit(_main())
