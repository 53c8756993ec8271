"""Experiment 004: the modified AlexNet and the improved Inception-ResNet model, under the paper's schedule.

§3.3: Adam at lr 0.001, mini-batch 32, up to 30 epochs; the lr is halved when the validation loss has not
fallen for 2 epochs, and training stops when it has not fallen for 6 (Keras' ReduceLROnPlateau and
EarlyStopping, which the wording follows); the model keeps the weights of its best validation epoch.
Data: the first 50,000 official training images to train, the last 10,000 to validate (the split of the
paper's "50,000 training images", and of the bundled copy), the official 10,000 test images to test.

One notebook execution trains ``model`` and each of ``compare_models`` on the same data; each trained
model is a run folder of its own, so sweeps and reruns find and skip it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pandas as pd
import torch

from .. import results
from ..config import ConfigError, ExperimentConfig, one_of, positive
from ..data import TensorLoader, load_mnist, prepare_mnist, subset
from ..models import check_model_name
from ..models.alexnet_ir import CONV3_PADDING
from ..train import Plateau, fit, make_optimizer
from .mnist_cnn import Run, machine_record, start_run

SPLIT_SIZES = {"train_size": 50_000, "val_size": 10_000, "test_size": 10_000}


@dataclass(frozen=True)
class P004Config(ExperimentConfig):
    """The 004 notebook's parameters. ``None`` fields take the profile's value."""
    paper: ClassVar[str] = "004"
    model: str = "alexnet_ir"
    compare_models: list = field(default_factory=lambda: ["alexnet_mod", "lenet5"])
    num_epochs: int | None = None
    batch_size: int = 32
    lr: float = 1e-3
    lr_patience: int = 2
    lr_factor: float = 0.5
    early_stop_patience: int = 6
    conv3_padding: str = "same"
    dropout: float = 0.5
    train_size: int | None = None
    val_size: int | None = None
    test_size: int | None = None
    seed: int = 0
    device: str = "auto"
    profile: str = "quick"
    data_dir: str | None = None
    results_dir: str | None = None

    PROFILES: ClassVar[dict[str, dict[str, Any]]] = {
        # all of train50k / valid10k / test, up to 30 epochs (about 35 min per AlexNet epoch on 2 CPU cores)
        "paper": {"num_epochs": 30},
        # AlexNet trains at ~15-25 images/s on 2 shared CPU cores: 1,000 images x 2 epochs, 300 to validate and
        # 500 to test after each, 2-3 min for both models: an indication of the pipeline, not of the accuracy
        "quick": {"num_epochs": 2, "train_size": 1000, "val_size": 300, "test_size": 500},
        "smoke": {"num_epochs": 1, "train_size": 96, "val_size": 64, "test_size": 128},
    }

    def validate(self) -> None:
        super().validate()
        for name in [self.model, *self.compare_models]:
            try:
                check_model_name(name)
            except ValueError as e:
                raise ConfigError("model" if name == self.model else "compare_models", str(e)) from None
        for name in ("num_epochs", "batch_size", "lr_patience", "early_stop_patience"):
            if getattr(self, name) < 1:
                raise ConfigError(name, f"must be an integer >= 1, got {getattr(self, name)!r}")
        positive("lr", self.lr)
        if not 0 < self.lr_factor < 1:
            raise ConfigError("lr_factor", f"must be between 0 and 1 (the paper halves: 0.5), got {self.lr_factor!r}")
        if not 0 <= self.dropout < 1:
            raise ConfigError("dropout", f"must be in [0, 1), got {self.dropout!r}")
        one_of("conv3_padding", self.conv3_padding, CONV3_PADDING)
        for name, limit in SPLIT_SIZES.items():
            v = getattr(self, name)
            if v is not None and not 1 <= v <= limit:
                raise ConfigError(name, f"must be between 1 and {limit} (or None for all), got {v!r}")
        if self.seed < 0:
            raise ConfigError("seed", f"must be >= 0, got {self.seed!r}")

    def model_kwargs(self, model: str) -> dict[str, Any]:
        if model == "alexnet_ir":
            return {"conv3_padding": self.conv3_padding, "dropout": self.dropout}
        return {"dropout": self.dropout} if model == "alexnet_mod" else {}

    def run_config(self, model: str) -> dict[str, Any]:
        """What one trained model's run folder records, and what its run id is computed from."""
        return {"model": model, "model_kwargs": self.model_kwargs(model), "num_epochs": self.num_epochs,
                "batch_size": self.batch_size, "lr": self.lr, "optimizer": "adam", "lr_patience": self.lr_patience,
                "lr_factor": self.lr_factor, "early_stop_patience": self.early_stop_patience,
                "train_size": self.train_size, "val_size": self.val_size, "test_size": self.test_size,
                "seed": self.seed, "profile": self.profile, "device": self.device}

    def planned_models(self) -> list[str]:
        """Every model this experiment trains, the main one first."""
        return list(dict.fromkeys([self.model, *self.compare_models]))

    def run_dirs(self) -> list[results.RunDir]:
        return [results.RunDir(self.paper, self.run_config(m), self.results_dir) for m in self.planned_models()]


def loaders(cfg: P004Config, device: torch.device) -> dict[str, TensorLoader]:
    """Training (shuffled per epoch), validation and test batches; subsets drawn by ``cfg.seed``."""
    prepare_mnist(cfg.data_dir)
    data = {"train": subset(*load_mnist("train50k", cfg.data_dir), cfg.train_size, cfg.seed),
            "val": subset(*load_mnist("valid10k", cfg.data_dir), cfg.val_size, cfg.seed),
            "test": subset(*load_mnist("test", cfg.data_dir), cfg.test_size, cfg.seed)}
    return {k: TensorLoader(x, y, cfg.batch_size if k == "train" else 500, shuffle=k == "train", seed=cfg.seed,
                            device=device, channels_last=True) for k, (x, y) in data.items()}


def train_run(cfg: P004Config, model_name: str | None = None, progress: bool = True) -> Run:
    """Train one model (default ``cfg.model``) under the paper's schedule, or read back its complete run folder.

    An interrupted run resumes from its checkpoint, schedule state and best weights included.
    """
    run_cfg = cfg.run_config(model_name or cfg.model)
    rd = results.RunDir(cfg.paper, run_cfg, cfg.results_dir)
    if not rd.is_complete():
        _train(cfg, rd, run_cfg, progress)
    return Run(rd.path, run_cfg, rd.read_metrics(), rd.read_final())


def _train(cfg: P004Config, rd: results.RunDir, run_cfg: dict[str, Any], progress: bool) -> None:
    t0 = time.perf_counter()
    device, model, num_params = start_run(cfg, rd, run_cfg)
    data = loaders(cfg, device)
    optimizer = make_optimizer("adam", model.parameters(), cfg.lr)
    plateau = Plateau(cfg.lr_patience, cfg.early_stop_patience, cfg.lr_factor)
    history = fit(model, data["train"], data["test"], optimizer, cfg.num_epochs, device, seed=cfg.seed,
                  checkpoint=rd.checkpoint, on_epoch=rd.write_metrics, progress=progress,
                  desc=f"{cfg.paper} {run_cfg['model']}", val_loader=data["val"], plateau=plateau)
    h = pd.DataFrame(history)
    # the model ends with its best validation epoch's weights, so that epoch's test score is the result
    best = h[h.epoch == plateau.best_epoch].iloc[0]
    num_train = len(data["train"].labels)
    rd.write_final({
        "final_test_acc": best.test_acc, "final_test_loss": best.test_loss, "best_epoch": plateau.best_epoch,
        "best_val_loss": plateau.best_loss, "last_epoch_test_acc": h.test_acc.iloc[-1],
        "best_test_acc": h.test_acc.max(), "epochs_run": len(h), "stopped_early": plateau.stopped,
        "final_lr": optimizer.param_groups[0]["lr"], "num_params": num_params, "num_train": num_train,
        "num_val": len(data["val"].labels), "num_test": len(data["test"].labels),
        "mean_epoch_seconds": h.seconds.mean(), "train_images_per_second": num_train / h.seconds.mean(),
        **machine_record(t0, device, cfg.seed)})
