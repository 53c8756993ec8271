"""Experiment 004: the modified AlexNet and the improved Inception-ResNet model, under the paper's schedule.

§3.3: Adam at lr 0.001, mini-batch 32, up to 30 epochs; the lr is halved when the validation loss has not
fallen for 2 epochs, and training stops when it has not fallen for 6 (Keras' ReduceLROnPlateau and
EarlyStopping, which the wording follows); the model keeps the weights of its best validation epoch.
Data, two readings (``train_split``): ``50k_val10k`` trains on the first 50,000 official training images and
validates on the last 10,000 (the text's "50,000 training images"); ``60k_val_test`` trains on all 60,000 and
validates on the official test set, as 「每次的训练样本数为 1 875」 at mini-batch 32 (= 60,000 per epoch) and a
Keras ``fit(..., validation_data=(x_test, y_test))`` would. Selecting the epoch by test loss flatters the test
accuracy, so every run records the last epoch's test accuracy beside the best-validation one.

One notebook execution trains ``model`` and each of ``compare_models`` on the same data; each trained
model is a run folder of its own, so sweeps and reruns find and skip it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any, ClassVar

import torch

from .. import results
from ..config import ConfigError, ExperimentConfig, one_of, positive
from ..data import TensorLoader, load_mnist, prepare_mnist, subset
from ..models.alexnet_ir import CONV3_PADDING
from ..train import Loop, Plateau, fit, make_optimizer, score, standard_update
from .registry import Job, build_model, register_experiment, start_run

SPLIT_SIZES = {"train_size": 50_000, "val_size": 10_000, "test_size": 10_000}
# train_split -> (training split, validation split) of hwrlib.data.load_mnist; the test split is always "test"
TRAIN_SPLITS = {"50k_val10k": ("train50k", "valid10k"), "60k_val_test": ("train", "test")}


@register_experiment
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
    train_split: str = "50k_val10k"
    train_size: int | None = None
    val_size: int | None = None
    test_size: int | None = None

    NON_IDENTITY: ClassVar[frozenset[str]] = ExperimentConfig.NON_IDENTITY | {"compare_models"}
    MODEL_FIELDS: ClassVar[dict[str, tuple[str, ...]]] = {"conv3_padding": ("alexnet_ir",),
                                                          "dropout": ("alexnet_ir", "alexnet_mod")}
    PROFILES: ClassVar[dict[str, dict[str, Any]]] = {
        # all of train50k / valid10k / test, up to 30 epochs (about 8 min per AlexNet epoch at 1 thread)
        "paper": {"num_epochs": 30},
        # AlexNet trains at ~15-25 images/s on 2 shared CPU cores: 1,000 images x 2 epochs, 300 to validate and
        # 500 to test after each, 2-3 min for both models: an indication of the pipeline, not of the accuracy
        "quick": {"num_epochs": 2, "train_size": 1000, "val_size": 300, "test_size": 500},
        "smoke": {"num_epochs": 1, "train_size": 96, "val_size": 64, "test_size": 128},
    }

    def validate(self) -> None:
        super().validate()
        self.check_models()
        self.at_least_one("num_epochs", "batch_size", "lr_patience", "early_stop_patience")
        positive("lr", self.lr)
        if not 0 < self.lr_factor < 1:
            raise ConfigError("lr_factor", f"must be between 0 and 1 (the paper halves: 0.5), got {self.lr_factor!r}")
        if not 0 <= self.dropout < 1:
            raise ConfigError("dropout", f"must be in [0, 1), got {self.dropout!r}")
        one_of("conv3_padding", self.conv3_padding, CONV3_PADDING)
        one_of("train_split", self.train_split, TRAIN_SPLITS)
        self.check_sizes({**SPLIT_SIZES, "train_size": 60_000} if self.train_split == "60k_val_test" else SPLIT_SIZES)
        self.batch_fits(self.train_size or (60_000 if self.train_split == "60k_val_test" else 50_000),
                        "the training set (train_size)")

    def runs(self) -> list[P004Config]:
        """One config per trained model, the main one first."""
        return [self.for_model(m) for m in dict.fromkeys([self.model, *self.compare_models])]

    def jobs(self) -> list[Job]:
        """One job per run folder of :meth:`runs`, each trained by :func:`train_model`."""
        return [Job([c.run_dir()], partial(train_model, c)) for c in self.runs()]


def loaders(cfg: P004Config, device: torch.device) -> dict[str, TensorLoader]:
    """Training (shuffled per epoch), validation and test batches of ``cfg.train_split``; subsets drawn by ``cfg.seed``.

    Under ``60k_val_test`` the validation set is the test set (``val_size`` of it, the same draw as ``test_size``
    when both are equal).
    """
    prepare_mnist(cfg.data_dir)
    train, val = TRAIN_SPLITS[cfg.train_split]
    data = {"train": subset(*load_mnist(train, cfg.data_dir), cfg.train_size, cfg.seed),
            "val": subset(*load_mnist(val, cfg.data_dir), cfg.val_size, cfg.seed),
            "test": subset(*load_mnist("test", cfg.data_dir), cfg.test_size, cfg.seed)}
    return {k: TensorLoader(x, y, cfg.batch_size if k == "train" else 500, shuffle=k == "train", seed=cfg.seed,
                            device=device, channels_last=True) for k, (x, y) in data.items()}


def train_model(cfg: P004Config, progress: bool = True) -> None:
    """Train ``cfg.model`` under the paper's schedule into its run folder.

    An interrupted run resumes from its checkpoint, schedule state and best weights included.
    """
    t0 = time.perf_counter()
    rd = cfg.run_dir()
    device = start_run(cfg, [rd])
    model, num_params = build_model(cfg.model, cfg.seed, device, **cfg.model_kwargs())
    data = loaders(cfg, device)
    optimizer = make_optimizer("adam", model.parameters(), cfg.lr)
    plateau = Plateau(cfg.lr_patience, cfg.early_stop_patience, cfg.lr_factor)
    scored = {"val": data["val"], "test": data["test"]}
    loop = Loop(standard_update(model, optimizer, device),
                evaluate=lambda m: score(m, scored, device), on_eval=rd.write_progress, desc=f"{cfg.paper} {cfg.model}")
    metrics = fit(model, data["train"], optimizer, device, loop, num_steps=cfg.num_epochs * len(data["train"]),
                  schedule=plateau, checkpoint=rd.checkpoint, seed=cfg.seed, progress=progress).metrics
    # the model ends with its best validation epoch's weights: that epoch's test score is best_val_test_acc
    best = next(r for r in metrics if r["epoch"] == plateau.best_epoch)
    rd.write_final(results.final_record(
        metrics, best_val_test_acc=best["test_acc"], best_val_test_loss=best["test_loss"],
        best_val_epoch=plateau.best_epoch, best_val_loss=plateau.best_loss, stopped_early=plateau.stopped,
        final_lr=optimizer.param_groups[0]["lr"], num_params=num_params, num_train=len(data["train"].labels),
        num_val=len(data["val"].labels), num_test=len(data["test"].labels),
        **results.machine_record(t0, device, cfg.seed, optimizer)))
