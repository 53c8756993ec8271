"""Default locations of data and results, so that notebooks (run from notebooks/),
tests and the command line all find the same folders."""
from __future__ import annotations

import os
from pathlib import Path

# hwrlib/ lives in the repository root of a source checkout
REPO_ROOT = Path(__file__).resolve().parents[1]


def _base() -> Path:
    return REPO_ROOT if (REPO_ROOT / "pyproject.toml").exists() else Path.cwd()


def data_dir(override: str | os.PathLike | None = None) -> Path:
    """``override`` > ``$HWR_DATA_DIR`` > ``<repo>/data``."""
    return Path(override or os.environ.get("HWR_DATA_DIR") or _base() / "data")


def results_dir(override: str | os.PathLike | None = None) -> Path:
    """``override`` > ``$HWR_RESULTS_DIR`` > ``<repo>/results``."""
    return Path(override or os.environ.get("HWR_RESULTS_DIR") or _base() / "results")
