"""The results store: one self-describing folder per run.

``results/runs/<paper>/<run-id>/`` holds ``config.yaml``, ``metrics.csv`` (one row per
epoch), ``final.json`` and, when the run came from a notebook, ``notebook.ipynb``;
``checkpoint.pt`` lives there while a run is in progress. ``final.json`` is written
last, so a folder without it is an unfinished run and is never read as a result.
Every file is written to a temp file and renamed into place.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from . import paths

# config fields that say where or how to run, not what: they do not change the run id
NON_IDENTITY_FIELDS = frozenset({"device", "data_dir", "results_dir"})


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; results are meant to be shared
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def run_id(config: dict[str, Any]) -> str:
    """Readable, stable id: ``<profile>-<model>-s<seed>-<hash of every identity field>``."""
    identity = {k: v for k, v in sorted(config.items()) if k not in NON_IDENTITY_FIELDS}
    digest = hashlib.sha1(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{config.get('profile', 'run')}-{config.get('model', 'model')}-s{config.get('seed', 0)}-{digest}"


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

    checkpoint = property(lambda self: self.path / "checkpoint.pt")
    notebook = property(lambda self: self.path / "notebook.ipynb")

    def is_complete(self) -> bool:
        return (self.path / "final.json").exists()

    def write_config(self) -> None:
        atomic_write_text(self.path / "config.yaml", yaml.safe_dump({"paper": self.paper, **self.config},
                                                                    sort_keys=False))

    def write_metrics(self, history: list[dict[str, Any]]) -> None:
        atomic_write_text(self.path / "metrics.csv", pd.DataFrame(history).to_csv(index=False))

    def write_final(self, final: dict[str, Any]) -> None:
        """Mark the run complete; the checkpoint is no longer needed after this."""
        atomic_write_text(self.path / "final.json", json.dumps(final, indent=2, default=str) + "\n")
        self.checkpoint.unlink(missing_ok=True)

    def read_final(self) -> dict[str, Any]:
        return json.loads((self.path / "final.json").read_text())

    def read_metrics(self) -> pd.DataFrame:
        return pd.read_csv(self.path / "metrics.csv")


def load_runs(root: str | os.PathLike | None = None, paper: str | None = None) -> pd.DataFrame:
    """One row per complete run: its config columns, then its final.json fields.

    Folders without final.json (runs in progress or interrupted) are skipped.
    """
    base = paths.results_dir(root) / "runs"
    rows = []
    for final in sorted(base.glob(f"{paper or '*'}/*/final.json")):
        cfg = yaml.safe_load((final.parent / "config.yaml").read_text())
        rows.append({**cfg, **json.loads(final.read_text()), "run_id": final.parent.name,
                     "run_path": str(final.parent)})
    return pd.DataFrame(rows)


def load_metrics(runs: pd.DataFrame) -> pd.DataFrame:
    """Concatenate the per-epoch metrics of ``runs`` (rows of :func:`load_runs`), keyed by run_id."""
    frames = [pd.read_csv(Path(p) / "metrics.csv").assign(run_id=r) for r, p in zip(runs.run_id, runs.run_path)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

