"""The one experiment interface, after timm's model registry: each paper registers its config class.

A config knows the runs it plans (:meth:`jobs`: run folders and how to train them, one model or 003's grouped
seeds at a time). Planning, skipping, read-back and resume are written here once; ``hwr-sweep``, the notebooks
and the summary all ask :func:`plan`, so a sweep skips exactly what a notebook would not retrain.

    cfg = create_experiment("002", profile="paper", seed=1)
    runs = run_experiment(cfg)          # trains what is missing (resuming), reads back the rest
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..config import ExperimentConfig
from ..results import Run, RunDir

_EXPERIMENTS: dict[str, type[ExperimentConfig]] = {}


@dataclass
class Job:
    """Run folders trained together, and how: ``train(progress)`` writes every folder of ``dirs``."""
    dirs: list[RunDir]
    train: Callable[[bool], None]

    def is_complete(self) -> bool:
        return all(d.is_complete() for d in self.dirs)


def register_experiment(cls: type[ExperimentConfig]) -> type[ExperimentConfig]:
    """Class decorator: the experiment of paper ``cls.paper`` (its config must provide ``jobs()``)."""
    if not cls.paper or cls.paper in _EXPERIMENTS:
        raise ValueError(f"experiment {cls.paper!r}: missing or registered twice")
    _EXPERIMENTS[cls.paper] = cls
    return cls


def import_papers() -> None:
    """Import every paper module of this package (``p<NNN>_*.py``: configs, figures and report sections), so that a
    paper added as its own modules is registered without an edit anywhere else."""
    import importlib
    import pkgutil
    import re
    package = __name__.rsplit(".", 1)[0]
    for m in pkgutil.iter_modules(importlib.import_module(package).__path__):
        if re.fullmatch(r"p\d{3}_\w+", m.name):
            importlib.import_module(f"{package}.{m.name}")


def list_experiments() -> list[str]:
    import_papers()
    return sorted(_EXPERIMENTS)


def experiment_config(key: str) -> type[ExperimentConfig]:
    """The config class of a paper (``"003"``), or of a notebook path (``notebooks/003_lenet_variant_mnist.ipynb``)."""
    key = Path(str(key)).name.split("_")[0]
    if key not in _EXPERIMENTS:
        import_papers()
    if key not in _EXPERIMENTS:
        raise ValueError(f"no experiment {key!r}; known: {', '.join(list_experiments())}")
    return _EXPERIMENTS[key]


def create_experiment(key: str, **params: Any) -> ExperimentConfig:
    """A validated config of paper ``key`` from its notebook parameters."""
    return experiment_config(key).from_params(**params)


def plan(cfg: ExperimentConfig) -> list[Job]:
    """Every job of ``cfg``, the main run's first."""
    return cfg.jobs()


def run_dirs(cfg: ExperimentConfig) -> list[RunDir]:
    """Every run folder ``cfg`` writes, the main run's first."""
    return [d for job in plan(cfg) for d in job.dirs]


def run_experiment(cfg: ExperimentConfig, progress: bool = True) -> list[Run]:
    """Train every planned run that is not complete (an interrupted one resumes), then read all of them back."""
    jobs = plan(cfg)
    for job in jobs:
        if not job.is_complete():
            job.train(progress)
    return [d.read() for job in jobs for d in job.dirs]


def start_run(cfg: ExperimentConfig, dirs: list[RunDir]):
    """Where every training starts: the thread count, ``cfg``'s device, and the config.yaml of each folder about to
    train (so a folder with a config but no final.json is a run in progress). Returns the device."""
    from ..train import resolve_device, set_threads_from_env
    set_threads_from_env()
    device = resolve_device(cfg.device)
    for rd in dirs:
        rd.write_config()
    return device


def build_model(name: str, seed: int, device, **kwargs: Any):
    """Model ``name`` initialized from ``seed``, on ``device`` ready to train, and its parameter count as built."""
    from ..models import count_params, create_model
    from ..train import prepare_model, seed_everything
    seed_everything(seed)
    model = create_model(name, **kwargs)
    num_params = count_params(model)  # of the model as built, before any device or layout change
    return prepare_model(model, device), num_params
