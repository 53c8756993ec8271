"""The results store: one self-describing folder per run, in one schema for every paper.

``results/runs/<paper>/<run-id>/`` holds ``config.yaml`` (the run's identity fields and device),
``metrics.csv`` (one row per evaluation, the same columns in every paper), ``final.json``, other
tables in files of their own (000's ``steps.csv``, 003's baselines' ``cv_results.csv``) and, when
the run came from a notebook, ``notebook.ipynb``; ``checkpoint.pt`` lives there while a run is in
progress. ``final.json`` is written last, so a folder without it is an unfinished run and is never
read as a result. Every file is written to a temp file and renamed into place. The fields and
columns, with their meaning, are listed once in ``results/README.md`` (a test keeps it complete).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from . import paths
from .config import ExperimentConfig

# what a run id leaves out of a record: a config's NON_IDENTITY fields (never recorded, should a record carry them)
# and ``device``, which config.yaml records (what was asked for) but which does not make another run
NON_IDENTITY = ExperimentConfig.NON_IDENTITY | {"device"}
# fields that tell one seed's run of a protocol from another's: a protocol is a run's identity without them
SEED_FIELDS = frozenset({"seed", "data_seed", "seed_group"})
# the columns (and types) of every frame of runs, one of no runs too, so that selecting by them needs no guard: the
# fields every record has (config.yaml's and final.json's) and the columns load_runs derives (results/README.md)
RUN_COLUMNS = {"paper": "str", "profile": "str", "model": "str", "seed": "int64", "device": "str",
               "final_test_acc": "float64", "run_id": "str", "run_path": "str", "protocol": "str",
               "did_not_train": "bool"}


class ResultsWriteError(OSError):
    """A record could not be written (a full disk, a read-only or missing folder); the message names the file and
    the fix, and nothing half-written is left."""


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder and ``os.replace``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise _write_error(path, e) from None
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; results are meant to be shared
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise _write_error(path, e) from None
        raise


def _write_error(path: Path, e: OSError) -> ResultsWriteError:
    return ResultsWriteError(e.errno, f"cannot write {path}: {e.strerror or e}. Give the run a writable folder with "
                                      "free space (results_dir, or $HWR_RESULTS_DIR), or free space there; nothing "
                                      "half-written was kept")


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def run_id(config: dict[str, Any]) -> str:
    """Readable, stable id: ``<profile>-<model>-s<seed>-<hash of every identity field>``."""
    identity = {k: v for k, v in sorted(config.items()) if k not in NON_IDENTITY}
    digest = hashlib.sha1(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{config.get('profile', 'run')}-{config.get('model', 'model')}-s{config.get('seed', 0)}-{digest}"


def protocol_id(paper: str, config: dict[str, Any]) -> str:
    """The protocol a run belongs to: ``<paper>:<profile>-<model>-<hash>``, the hash of its identity fields
    without the seed-like ones (:data:`SEED_FIELDS`). Runs of one protocol differ only in their seeds."""
    identity = {k: v for k, v in sorted(config.items())
                if k not in NON_IDENTITY | SEED_FIELDS and k != "paper"}
    digest = hashlib.sha1(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{paper}:{config.get('profile', 'run')}-{config.get('model', 'model')}-{digest}"


def did_not_train(metrics: pd.DataFrame, num_classes: int = 10) -> bool:
    """A run that never learned: its test accuracy stayed under twice chance at every evaluation after the first
    update, and its training loss ended above half of where it started (003's eq. 3 network on its MSE plateau)."""
    trained = metrics[metrics["step"] > 0] if "step" in metrics else metrics
    if trained.empty or "test_acc" not in trained or "train_loss" not in trained:
        return False
    loss = trained["train_loss"].dropna()
    stuck = loss.empty or loss.iloc[-1] > 0.5 * loss.iloc[0]
    return bool(trained["test_acc"].max() < 2 / num_classes and stuck)


def git_commit() -> str | None:
    """The checkout's commit, with ``-dirty`` if tracked files changed; None outside git."""
    try:
        def git(*args: str) -> str:
            return subprocess.run(["git", *args], cwd=paths.REPO_ROOT, capture_output=True, text=True,
                                  check=True, timeout=10).stdout.strip()
        commit = git("rev-parse", "HEAD")
        return commit + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.SubprocessError):
        return None


def environment() -> dict[str, str | None]:
    """Versions that can change a number: recorded with every result."""
    import numpy
    import torch
    return {"torch": torch.__version__, "numpy": numpy.__version__, "python": platform.python_version(),
            "platform": platform.platform(), "git_commit": git_commit()}


@dataclass
class RunDir:
    """The folder of one run; ``config`` must be a flat dict of plain values."""
    paper: str
    config: dict[str, Any]
    root: Path | None = None

    def __post_init__(self) -> None:
        self.root = Path(self.root) if self.root else paths.results_dir()
        self.id = run_id(self.config)
        self.path = self.root / "runs" / self.paper / self.id

    @classmethod
    def at(cls, path: str | os.PathLike) -> RunDir:
        """The run folder at ``path`` (``<root>/runs/<paper>/<id>``), as its config.yaml records it."""
        path = Path(path)
        config = yaml.safe_load((path / "config.yaml").read_text())
        rd = cls(config.pop("paper", path.parent.name), config, path.parents[2])
        rd.path, rd.id = path, path.name
        return rd

    checkpoint = property(lambda self: self.path / "checkpoint.pt")
    notebook = property(lambda self: self.path / "notebook.ipynb")

    def is_complete(self) -> bool:
        return (self.path / "final.json").exists()

    def write_config(self) -> None:
        atomic_write_text(self.path / "config.yaml", yaml.safe_dump({"paper": self.paper, **self.config},
                                                                    sort_keys=False))

    def write_metrics(self, metrics: list[dict[str, Any]]) -> None:
        atomic_write_text(self.path / "metrics.csv", pd.DataFrame(metrics).to_csv(index=False))

    def write_progress(self, run: Any) -> None:
        """A training run's rows so far (a :class:`hwrlib.train.Progress`): metrics.csv, and steps.csv if it logs."""
        self.write_metrics(run.metrics)
        if run.steps:
            self.write_table("steps", run.steps)

    def write_final(self, final: dict[str, Any]) -> None:
        """Mark the run complete (strict JSON, with the hash of its metrics.csv); the checkpoint is no longer needed."""
        metrics = self.path / "metrics.csv"
        if metrics.exists():
            final = {**final, "metrics_sha256": hashlib.sha256(metrics.read_bytes()).hexdigest()}
        atomic_write_text(self.path / "final.json", json.dumps(final, indent=2, default=str, allow_nan=False) + "\n")
        self.checkpoint.unlink(missing_ok=True)

    def read_final(self) -> dict[str, Any]:
        return json.loads((self.path / "final.json").read_text())

    def read_metrics(self) -> pd.DataFrame:
        return pd.read_csv(self.path / "metrics.csv")

    def write_table(self, name: str, rows: list[dict[str, Any]]) -> None:
        """A table other than the evaluations (``steps``, ``cv_results``): ``<name>.csv``."""
        atomic_write_text(self.path / f"{name}.csv", pd.DataFrame(rows).to_csv(index=False))

    def read(self) -> Run:
        """The finished run, checked (:func:`check_run`); a damaged record raises, naming the folder and the fix."""
        try:
            check_run(self.path)
        except DamagedRecord as e:
            raise DamagedRecord(f"{self.path}: {e}. It is not a result: delete the folder to train the run again") \
                from None
        config = {"paper": self.paper, **yaml.safe_load((self.path / "config.yaml").read_text())}
        return Run(self.path, config, self.read_metrics(), self.read_final())


@dataclass
class Run:
    """A finished run: its folder, config record, evaluations (metrics.csv) and final record."""
    path: Path
    config: dict[str, Any]
    metrics: pd.DataFrame
    final: dict[str, Any]

    def table(self, name: str) -> pd.DataFrame:
        """Another table of the run folder (``steps``, ``cv_results``)."""
        return pd.read_csv(Path(self.path) / f"{name}.csv")


def runs_frame(runs: list[Run]) -> pd.DataFrame:
    """Runs as rows like those of :func:`load_runs` (config, then final record), in its columns."""
    return _frame([_row(Path(r.path), r.config, r.final, r.metrics) for r in runs])


def _row(folder: Path, config: dict[str, Any], final: dict[str, Any], metrics: pd.DataFrame) -> dict[str, Any]:
    """A record as a row of a frame of runs: its config, its final record, then the columns derived when read."""
    paper = str(config.get("paper", folder.parent.name))
    return {**config, **final, "run_id": folder.name, "run_path": str(folder), "protocol": protocol_id(paper, config),
            "did_not_train": did_not_train(metrics, int(final.get("num_classes") or 10))}


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows of runs as a frame with at least :data:`RUN_COLUMNS` (typed when there are no rows)."""
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in RUN_COLUMNS.items()})
    frame = pd.DataFrame(rows)
    return frame.reindex(columns=[*frame.columns, *(c for c in RUN_COLUMNS if c not in frame)])


def machine_record(t0: float, device, seed: int, optimizer=None) -> dict[str, Any]:
    """The fields of final.json that say where and with what a run ran (``t0``: its perf_counter start); with the
    run's ``optimizer``, whether its update ran the fused kernels (``HWR_FUSED``: they change the last digits)."""
    import torch
    from .train import cpu_capability, device_name
    kernels = {} if optimizer is None else {"fused_optimizer": bool(optimizer.defaults.get("fused"))}
    return {"wall_seconds": time.perf_counter() - t0, "device": str(device), "device_name": device_name(device),
            "cpu_capability": cpu_capability(torch.device(device)), "num_threads": torch.get_num_threads(),
            "seed": seed, **kernels, **environment()}


def final_record(metrics: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    """The fields every trained run's final.json has, from its evaluation rows, then ``fields``.

    ``final_test_acc`` is always the last evaluation's; numbers chosen by a rule say the rule in their name
    (``max_test_acc``, ``best_val_test_acc``).
    """
    h = pd.DataFrame(metrics)
    last = h.iloc[-1]
    trained = h[h["step"] > 0]
    record = {"final_test_acc": float(last.test_acc), "final_test_loss": float(last.test_loss),
              "max_test_acc": float(trained.test_acc.max()),
              "max_test_acc_epoch": float(trained.epoch[trained.test_acc.idxmax()]),
              "num_evals": len(h), "num_steps": int(last.step), "epochs": float(last.epoch),
              "train_seconds": float(last.seconds), "mean_epoch_seconds": float(last.seconds / last.epoch),
              "train_images_per_second": float(last.samples / last.seconds)}
    return {**record, **fields}


class DamagedRecord(ValueError):
    """A run folder whose record cannot be taken as a result; the message says what is wrong."""


def _strict(value: str) -> float:
    raise ValueError(f"non-finite number {value} (final.json must be strict JSON)")


def check_run(folder: Path) -> dict[str, Any]:
    """The row :func:`load_runs` makes of a complete run folder, or :class:`DamagedRecord` saying what is wrong.

    Checked: config.yaml and final.json parse (final.json as strict JSON, no NaN/Infinity), the accuracies are
    numbers in [0, 1], metrics.csv is the one final.json was written with (its SHA-256 and row count) and its last
    test accuracy is ``final_test_acc``, and the folder's name is the id of its config.
    """
    try:
        cfg = yaml.safe_load((folder / "config.yaml").read_text())
        final = json.loads((folder / "final.json").read_text(), parse_constant=_strict)
        metrics = (folder / "metrics.csv").read_bytes()
    except (OSError, ValueError, yaml.YAMLError) as e:
        raise DamagedRecord(f"unreadable: {type(e).__name__}: {e}") from None
    if not isinstance(cfg, dict) or not isinstance(final, dict):
        raise DamagedRecord("config.yaml and final.json must each hold a mapping")
    for key, value in final.items():
        if key.endswith(("_acc", "_top5", "_error")) and value is not None:
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 1:
                raise DamagedRecord(f"final.json: {key} = {value!r} is not a fraction in [0, 1]")
    if "metrics_sha256" in final and final["metrics_sha256"] != hashlib.sha256(metrics).hexdigest():
        raise DamagedRecord("metrics.csv is not the file final.json was written with (SHA-256 differs): "
                            "it was cut or edited after the run")
    try:
        h = pd.read_csv(io.BytesIO(metrics))
    except (ValueError, pd.errors.ParserError) as e:
        raise DamagedRecord(f"metrics.csv: {e}") from None
    if "num_evals" in final and len(h) != final["num_evals"]:
        raise DamagedRecord(f"metrics.csv has {len(h)} evaluation rows, final.json says {final['num_evals']}")
    if "test_acc" in h and len(h) and "final_test_acc" in final and h["test_acc"].iloc[-1] != final["final_test_acc"]:
        raise DamagedRecord("final_test_acc differs from the last evaluation in metrics.csv")
    identity = {k: v for k, v in cfg.items() if k != "paper"}
    if run_id(identity) != folder.name:
        raise DamagedRecord(f"the folder's name is not the id of its config.yaml ({run_id(identity)})")
    return _row(folder, cfg, final, h)


def load_runs(root: str | os.PathLike | None = None, paper: str | None = None,
              damaged: list[tuple[str, str]] | None = None) -> pd.DataFrame:
    """One row per complete run: its config columns, then its final.json fields; :data:`RUN_COLUMNS` always.

    Folders without final.json (runs in progress or interrupted) are skipped. A damaged record (see
    :func:`check_run`) is skipped too and, when ``damaged`` is a list, appended to it as ``(path, problem)``;
    the frame's ``attrs["damaged"]`` holds the same list.
    """
    base = paths.results_dir(root) / "runs"
    rows, bad = [], []
    for final in sorted(base.glob(f"{paper or '*'}/*/final.json")):
        try:
            rows.append(check_run(final.parent))
        except DamagedRecord as e:
            bad.append((str(final.parent), str(e)))
    if damaged is not None:
        damaged.extend(bad)
    frame = _frame(rows)
    frame.attrs["damaged"] = bad
    frame.attrs["results_dir"] = str(paths.results_dir(root))  # where its other records (timing/) are read from
    return frame


def load_metrics(runs: pd.DataFrame, columns: list[str] | tuple[str, ...] = ()) -> pd.DataFrame:
    """Concatenate the per-evaluation metrics of ``runs`` (rows of :func:`load_runs`), keyed by run_id, with each
    run's ``columns`` (its seed, a figure's label) beside its rows."""
    frames = [pd.read_csv(Path(p) / "metrics.csv").assign(run_id=r) for r, p in zip(runs.run_id, runs.run_path)]
    if not frames:
        return pd.DataFrame()
    h = pd.concat(frames, ignore_index=True)
    return h.merge(runs[["run_id", *columns]], on="run_id") if columns else h


def main(argv: list[str] | None = None) -> int:
    """``python -m hwrlib.results check [RESULTS_DIR]``: verify every record; exit 1 if any is damaged."""
    import argparse
    ap = argparse.ArgumentParser(prog="python -m hwrlib.results", description=main.__doc__)
    ap.add_argument("command", choices=["check"])
    ap.add_argument("results_dir", nargs="?", help="default: $HWR_RESULTS_DIR or <repo>/results")
    args = ap.parse_args(argv)
    damaged: list[tuple[str, str]] = []
    runs = load_runs(args.results_dir, damaged=damaged)
    for path, problem in damaged:
        print(f"damaged: {path}: {problem}")
    print(f"{len(runs)} complete records, {len(damaged)} damaged, in {paths.results_dir(args.results_dir) / 'runs'}")
    return 1 if damaged else 0


if __name__ == "__main__":
    import sys
    sys.exit(main())
