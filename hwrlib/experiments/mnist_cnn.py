"""Experiments 001 and 002: a CNN trained on MNIST, plus comparison models under the same protocol.

One notebook execution trains ``model`` and each of ``compare_models``; each trained
model is a run of its own in the results store, so sweeps and reruns find and skip it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pandas as pd
import torch

from .. import results
from ..config import ConfigError, ExperimentConfig, one_of, positive
from ..data import MEAN, STD, TensorLoader, load_mnist, prepare_mnist, subset
from ..models import check_model_name, count_params, create_model
from ..train import (OPTIMIZERS, device_name, fit, make_optimizer, prepare_model, resolve_device, seed_everything,
                     set_threads_from_env)

SMOKE = {"num_epochs": 1, "train_size": 512, "test_size": 1000, "compare_train_size": 256}


@dataclass(frozen=True)
class MnistCNNConfig(ExperimentConfig):
    """Fields shared by 001 and 002 (the names of the notebooks' parameters)."""
    model: str = "pytorch_cnn"
    compare_models: list = field(default_factory=list)
    num_epochs: int | None = None
    batch_size: int = 32
    lr: float = 1e-3
    optimizer: str = "adam"
    train_size: int | None = None
    test_size: int | None = None
    compare_train_size: int | None = None
    seed: int = 0
    device: str = "auto"
    profile: str = "quick"
    data_dir: str | None = None
    results_dir: str | None = None

    # inputs as the paper prepares them: (mean, std) after scaling to [0, 1]
    input_norm: ClassVar[tuple[float, float]] = (MEAN, STD)

    def validate(self) -> None:
        super().validate()
        for name in [self.model, *self.compare_models]:
            try:
                check_model_name(name)
            except ValueError as e:
                raise ConfigError("model" if name == self.model else "compare_models", str(e)) from None
        for name in ("num_epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(name, f"must be an integer >= 1, got {getattr(self, name)!r}")
        positive("lr", self.lr)
        one_of("optimizer", self.optimizer, OPTIMIZERS)
        for name, limit in (("train_size", 60_000), ("compare_train_size", 60_000), ("test_size", 10_000)):
            v = getattr(self, name)
            if v is not None and not 1 <= v <= limit:
                raise ConfigError(name, f"must be between 1 and {limit} (or None for all), got {v!r}")
        if self.seed < 0:
            raise ConfigError("seed", f"must be >= 0, got {self.seed!r}")

    def model_kwargs(self, model: str) -> dict[str, Any]:
        return {}

    def run_config(self, model: str, train_size: int | None) -> dict[str, Any]:
        """What one trained model's run folder records, and what its run id is computed from."""
        return {"model": model, "model_kwargs": self.model_kwargs(model), "num_epochs": self.num_epochs,
                "batch_size": self.batch_size, "lr": self.lr, "optimizer": self.optimizer,
                "train_size": train_size, "test_size": self.test_size, "input_norm": list(self.input_norm),
                "seed": self.seed, "profile": self.profile, "device": self.device}

    def comparison_runs(self) -> list[tuple[str, int | None]]:
        """(model, train_size) of the comparison: ``model`` and each of ``compare_models`` on the same data."""
        if not self.compare_models:
            return []
        return [(m, self.compare_train_size) for m in dict.fromkeys([self.model, *self.compare_models])]

    def planned_runs(self) -> list[tuple[str, int | None]]:
        """(model, train_size) of every model this experiment trains, the main run first."""
        return list(dict.fromkeys([(self.model, self.train_size), *self.comparison_runs()]))

    def run_dirs(self) -> list[results.RunDir]:
        return [results.RunDir(self.paper, self.run_config(m, n), self.results_dir) for m, n in self.planned_runs()]


@dataclass(frozen=True)
class P002Config(MnistCNNConfig):
    """002: the PyTorch CNN; paper protocol batch 32, 20 epochs. Optimizer, lr and activation are unstated."""
    paper: ClassVar[str] = "002"
    activation: str = "relu"
    PROFILES: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {"num_epochs": 20},
        # ResNet-18 trains at ~80 images/s on a 2-core CPU: the quick Fig. 6 uses 3,000 images per model
        "quick": {"num_epochs": 2, "compare_train_size": 3000},
        "smoke": SMOKE,
    }

    def validate(self) -> None:
        super().validate()
        one_of("activation", self.activation, ("relu", "tanh", "sigmoid"))

    def model_kwargs(self, model: str) -> dict[str, Any]:
        return {"activation": self.activation} if model == "pytorch_cnn" else {}


@dataclass(frozen=True)
class P001Config(MnistCNNConfig):
    """001: the blog's Keras code; RMSprop, 5 epochs, batch 64, inputs in [0, 1]."""
    paper: ClassVar[str] = "001"
    model: str = "blog_cnn"
    batch_size: int = 64
    optimizer: str = "rmsprop"
    input_norm: ClassVar[tuple[float, float]] = (0.0, 1.0)  # x / 255, no Normalize
    PROFILES: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {"num_epochs": 5}, "quick": {"num_epochs": 1}, "smoke": SMOKE}


@dataclass
class Run:
    """A finished run: its folder, per-epoch history and final record."""
    path: Any
    config: dict[str, Any]
    history: pd.DataFrame
    final: dict[str, Any]


def runs_frame(runs: list[Run], paper: str) -> pd.DataFrame:
    """Runs as rows like those of :func:`hwrlib.results.load_runs` (config, then final record)."""
    return pd.DataFrame([{"paper": paper, **r.config, **r.final, "run_path": str(r.path)} for r in runs])


def train_run(cfg: MnistCNNConfig, model_name: str | None = None, train_size: int | None = None,
              progress: bool = True) -> Run:
    """Train one model under ``cfg``'s protocol, or load it if its run folder is complete.

    Without ``model_name`` this is the main run (``cfg.model`` on ``cfg.train_size`` images); with it,
    ``train_size`` is taken as given (None: all images). An interrupted run resumes from its checkpoint.
    """
    if model_name is None:
        model_name, train_size = cfg.model, cfg.train_size
    run_cfg = cfg.run_config(model_name, train_size)
    rd = results.RunDir(cfg.paper, run_cfg, cfg.results_dir)
    if not rd.is_complete():
        _train(cfg, rd, run_cfg, progress)
    return Run(rd.path, run_cfg, rd.read_metrics(), rd.read_final())


def start_run(cfg: ExperimentConfig, rd: results.RunDir,
              run_cfg: dict[str, Any]) -> tuple[torch.device, torch.nn.Module, int]:
    """Threads, device, config.yaml and seeds of a run, then its model on the device and its parameter count."""
    set_threads_from_env()
    device = resolve_device(cfg.device)
    rd.write_config()
    seed_everything(cfg.seed)
    model = create_model(run_cfg["model"], **run_cfg["model_kwargs"])
    num_params = count_params(model)  # before prepare_model: the count of the model as built
    return device, prepare_model(model, device), num_params


def machine_record(t0: float, device: torch.device, seed: int) -> dict[str, Any]:
    """The fields of final.json that say where and with what a run ran (``t0``: its perf_counter start)."""
    return {"wall_seconds": time.perf_counter() - t0, "device": str(device), "device_name": device_name(device),
            "num_threads": torch.get_num_threads(), "seed": seed, **results.environment()}


def _train(cfg: MnistCNNConfig, rd: results.RunDir, run_cfg: dict[str, Any], progress: bool) -> None:
    t0 = time.perf_counter()
    device, model, num_params = start_run(cfg, rd, run_cfg)
    prepare_mnist(cfg.data_dir)
    mean, std = cfg.input_norm
    x, y = subset(*load_mnist("train", cfg.data_dir), run_cfg["train_size"], cfg.seed)
    xt, yt = subset(*load_mnist("test", cfg.data_dir), cfg.test_size, cfg.seed)
    train = TensorLoader(x, y, cfg.batch_size, shuffle=True, seed=cfg.seed, mean=mean, std=std,
                         device=device, channels_last=True)
    test = TensorLoader(xt, yt, 1000, mean=mean, std=std, device=device, channels_last=True)
    optimizer = make_optimizer(cfg.optimizer, model.parameters(), cfg.lr)
    history = fit(model, train, test, optimizer, cfg.num_epochs, device, seed=cfg.seed, checkpoint=rd.checkpoint,
                  on_epoch=rd.write_metrics, progress=progress, desc=f"{cfg.paper} {run_cfg['model']}")
    h = pd.DataFrame(history)
    rd.write_final({
        "final_test_acc": h.test_acc.iloc[-1], "best_test_acc": h.test_acc.max(),
        "best_epoch": int(h.epoch[h.test_acc.idxmax()]), "final_test_loss": h.test_loss.iloc[-1],
        "num_params": num_params, "num_train": len(y), "num_test": len(yt),
        "mean_epoch_seconds": h.seconds.mean(), "train_images_per_second": len(y) / h.seconds.mean(),
        **machine_record(t0, device, cfg.seed)})
