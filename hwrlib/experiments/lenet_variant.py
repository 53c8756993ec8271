"""Experiment 003: the sigmoid/MSE LeNet variant on random 2,000/1,000 MNIST subsets, and Table 1's baselines.

Training follows the paper's equations and the DeepLearnToolbox CNN it builds on: loss
1/2 ||t - y||^2 on one-hot targets averaged over the batch, plus lambda/2 * sum(W^2) over the
weights (not the biases); plain mini-batch gradient descent, no momentum; a fresh random
order every epoch. The paper's figures count *iterations*, so the test set is scored every
``eval_every`` mini-batch updates up to update ``eval_dense_until`` (the window of the figures'
iteration reading), then once per epoch: scoring 1,000 images costs as much as a few updates, and
scoring every 10 updates for 100 epochs would double a run's time for points no figure needs.

Each trained network and each baseline is a run folder of its own, so sweeps skip what exists.
Runs last seconds: an interrupted one simply restarts (no checkpoint).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import tqdm

from .. import results
from ..baselines import BASELINES, FULL_GRIDS, GRIDS, run_baseline
from ..config import ConfigError, ExperimentConfig, one_of, positive
from ..data import TensorLoader, load_mnist, prepare_mnist, subset
from ..models import count_params, create_model
from ..models.lenet_variant import SUBSAMPLING
from ..train import device_name, prepare_model, resolve_device, seed_everything, set_threads_from_env
from .mnist_cnn import Run

MODEL = "lenet_variant"
SMOKE = {"num_epochs": 2, "train_size": 500, "test_size": 200, "eval_every": 10, "eval_dense_until": 400, "folds": 2}


@dataclass(frozen=True)
class P003Config(ExperimentConfig):
    """The 003 notebook's parameters. ``None`` fields take the profile's value."""
    paper: ClassVar[str] = "003"
    c1: int = 6
    c3: int = 12
    subsampling: str = "toolbox"
    batch_size: int = 50
    lr: float = 1.0
    weight_decay: float = 0.0
    num_epochs: int | None = None
    eval_every: int | None = None
    eval_dense_until: int | None = None
    train_size: int | None = None
    test_size: int | None = None
    data_seed: int | None = None
    baselines: bool = True
    folds: int | None = None
    seed: int = 0
    device: str = "auto"
    profile: str = "quick"
    data_dir: str | None = None
    results_dir: str | None = None

    PROFILES: ClassVar[dict[str, dict[str, Any]]] = {
        # the paper's subsets; 100 epochs of 2,000 images = 4,000 updates at batch 50
        "paper": {"num_epochs": 100, "train_size": 2000, "test_size": 1000, "eval_every": 10, "eval_dense_until": 400,
                  "folds": 5},
        "quick": {"num_epochs": 40, "train_size": 2000, "test_size": 1000, "eval_every": 10, "eval_dense_until": 400,
                  "folds": 3},
        "smoke": SMOKE,
        # context: the same protocol and baselines on all of MNIST (the toolbox's own setting)
        "full": {"num_epochs": 20, "train_size": 60_000, "test_size": 10_000, "eval_every": 1200, "eval_dense_until": 0,
                 "folds": 2},
    }

    def validate(self) -> None:
        super().validate()
        for name in ("c1", "c3", "batch_size", "num_epochs", "eval_every", "train_size", "test_size"):
            if getattr(self, name) < 1:
                raise ConfigError(name, f"must be an integer >= 1, got {getattr(self, name)!r}")
        one_of("subsampling", self.subsampling, SUBSAMPLING)
        positive("lr", self.lr)
        if self.weight_decay < 0:
            raise ConfigError("weight_decay", f"must be >= 0, got {self.weight_decay!r}")
        if self.eval_dense_until < 0:
            raise ConfigError("eval_dense_until", f"must be >= 0 updates, got {self.eval_dense_until!r}")
        if self.train_size > 60_000 or self.test_size > 10_000:
            raise ConfigError("train_size" if self.train_size > 60_000 else "test_size",
                              "MNIST has 60,000 training and 10,000 test images")
        if self.train_size % self.batch_size:
            # the toolbox's cnntrain stops with 'numbatches not integer' too
            raise ConfigError("batch_size", f"must divide train_size ({self.train_size}) so that every epoch is "
                                            f"whole mini-batches, got {self.batch_size}")
        if self.folds < 2:
            raise ConfigError("folds", f"cross-validation needs >= 2 folds, got {self.folds!r}")
        for name in ("seed", "data_seed"):
            if (getattr(self, name) or 0) < 0:
                raise ConfigError(name, f"must be >= 0, got {getattr(self, name)!r}")

    @property
    def subset_seed(self) -> int:
        return self.seed if self.data_seed is None else self.data_seed

    def run_config(self) -> dict[str, Any]:
        """What the CNN run's folder records; its run id derives from this."""
        return {"model": MODEL, "c1": self.c1, "c3": self.c3, "subsampling": self.subsampling,
                "batch_size": self.batch_size, "lr": self.lr, "weight_decay": self.weight_decay,
                "num_epochs": self.num_epochs, "eval_every": self.eval_every,
                "eval_dense_until": self.eval_dense_until, **self._data(), "device": self.device}

    def baseline_config(self, name: str) -> dict[str, Any]:
        grid = (FULL_GRIDS if self.profile == "full" else GRIDS).get(name, {})
        return {"model": name, "grid": grid, "folds": self.folds if grid else None, **self._data()}

    def _data(self) -> dict[str, Any]:
        return {"train_size": self.train_size, "test_size": self.test_size, "data_seed": self.subset_seed,
                "seed": self.seed, "profile": self.profile}

    def run_dirs(self) -> list[results.RunDir]:
        cfgs = [self.run_config()] + ([self.baseline_config(b) for b in BASELINES] if self.baselines else [])
        return [results.RunDir(self.paper, c, self.results_dir) for c in cfgs]


def load_subsets(cfg: P003Config) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """The random training and test subsets, drawn by ``cfg.subset_seed``."""
    prepare_mnist(cfg.data_dir)
    train = subset(*load_mnist("train", cfg.data_dir), cfg.train_size, cfg.subset_seed)
    test = subset(*load_mnist("test", cfg.data_dir), cfg.test_size, cfg.subset_seed)
    return train, test


def mse(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The paper's eq. 4/5: 1/2 ||t - y||^2 per sample on one-hot targets, averaged over the batch."""
    return 0.5 * (out - F.one_hot(y, out.shape[1]).to(out.dtype)).square().sum(1).mean()


def make_sgd(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.SGD:
    """Plain gradient descent (eq. 16/17): the decay term lambda * w applies to weights, not biases."""
    weights = [p for n, p in model.named_parameters() if not n.endswith("bias")]
    biases = [p for n, p in model.named_parameters() if n.endswith("bias")]
    return torch.optim.SGD([{"params": weights, "weight_decay": weight_decay},
                            {"params": biases, "weight_decay": 0.0}], lr=lr, momentum=0.0)


@torch.no_grad()
def score(model: torch.nn.Module, loader: TensorLoader) -> dict[str, float]:
    model.eval()
    outs, ys = zip(*[(model(x), y) for x, y in loader])
    out, y = torch.cat(outs), torch.cat(ys)
    model.train()
    return {"mse": mse(out, y).item(), "acc": (out.argmax(1) == y).float().mean().item()}


def eval_due(cfg: P003Config, iteration: int, updates_per_epoch: int) -> bool:
    """Score the test subset after this update? Every ``eval_every`` up to ``eval_dense_until``, then per epoch."""
    if iteration <= cfg.eval_dense_until:
        return iteration % cfg.eval_every == 0
    return iteration % updates_per_epoch == 0


def train_cnn(cfg: P003Config, rd: results.RunDir, progress: bool = True) -> None:
    """Train the CNN, scoring the test subset on :func:`eval_due` updates; writes the run folder."""
    t0 = time.perf_counter()
    set_threads_from_env()
    device = resolve_device(cfg.device)
    rd.write_config()
    seed_everything(cfg.seed)
    model = create_model(MODEL, c1=cfg.c1, c3=cfg.c3, subsampling=cfg.subsampling)
    num_params = count_params(model)
    model = prepare_model(model, device)
    (x, y), (xt, yt) = load_subsets(cfg)
    # inputs in [0, 1] as the toolbox feeds them (x / 255, no normalization)
    train = TensorLoader(x, y, cfg.batch_size, shuffle=True, seed=cfg.seed, mean=0.0, std=1.0,
                         device=device, channels_last=True)
    test = TensorLoader(xt, yt, 1000, mean=0.0, std=1.0, device=device, channels_last=True)
    opt = make_sgd(model, cfg.lr, cfg.weight_decay)
    rows, smoothed, seconds = [], None, 0.0
    window = {"loss": 0.0, "correct": 0, "seen": 0}

    def log(iteration: int) -> None:
        s = score(model, test)
        seen = max(window["seen"], 1)
        rows.append({"iteration": iteration, "epoch": iteration / len(train), "samples": iteration * cfg.batch_size,
                     "train_mse": window["loss"] / seen if window["seen"] else None,
                     "train_mse_smoothed": smoothed, "train_acc": window["correct"] / seen if window["seen"] else None,
                     "test_mse": s["mse"], "test_acc": s["acc"], "test_error": 1 - s["acc"], "seconds": seconds})
        window.update(loss=0.0, correct=0, seen=0)

    log(0)
    bar = tqdm(total=cfg.num_epochs * len(train), desc=f"003 {cfg.c1}-{cfg.c3} b{cfg.batch_size} lr{cfg.lr:g}",
               unit="update", disable=not progress, mininterval=5)
    it = 0
    for epoch in range(cfg.num_epochs):
        train.set_epoch(epoch)
        t = time.perf_counter()
        for xb, yb in train:
            out = model(xb)
            loss = mse(out, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            it += 1
            l = loss.item()
            # the toolbox's running MSE: rL(end+1) = 0.99 rL(end) + 0.01 L, its Fig. 7-style curve
            smoothed = l if smoothed is None else 0.99 * smoothed + 0.01 * l
            window["loss"] += l * len(yb)
            window["correct"] += (out.argmax(1) == yb).sum().item()
            window["seen"] += len(yb)
            if eval_due(cfg, it, len(train)):
                seconds += time.perf_counter() - t
                log(it)
                t = time.perf_counter()
        seconds += time.perf_counter() - t
        bar.update(len(train))
    bar.close()
    if rows[-1]["iteration"] != it:
        log(it)
    rd.write_metrics(rows)
    h = pd.DataFrame(rows)
    last = h.iloc[-1]
    rd.write_final({
        "final_test_acc": float(last.test_acc), "final_test_error": float(last.test_error),
        "best_test_acc": float(h.test_acc.max()), "final_test_mse": float(last.test_mse),
        "num_params": num_params, "num_train": len(y), "num_test": len(yt), "num_updates": it,
        "train_seconds": seconds, "mean_epoch_seconds": seconds / cfg.num_epochs,
        "train_images_per_second": cfg.num_epochs * len(y) / seconds, "wall_seconds": time.perf_counter() - t0,
        "device": str(device), "device_name": device_name(device), "num_threads": torch.get_num_threads(),
        "seed": cfg.seed, **results.environment()})


def run_baselines(cfg: P003Config, progress: bool = True) -> list[Run]:
    """Table 1's classical baselines on the same subsets (each a run folder; finished ones are read back)."""
    todo = [results.RunDir(cfg.paper, cfg.baseline_config(b), cfg.results_dir) for b in BASELINES]
    data = None
    for rd in tqdm(todo, desc="003 baselines", disable=not progress):
        if rd.is_complete():
            continue
        data = data or load_subsets(cfg)
        rd.write_config()
        name = rd.config["model"]
        r = run_baseline(name, *data, grid=rd.config["grid"], folds=cfg.folds or 2, seed=cfg.subset_seed)
        rd.write_metrics(r.pop("cv_results", [{"test_acc": r["test_acc"]}]))
        rd.write_final({"final_test_acc": r["test_acc"], "final_test_error": r["test_error"],
                        "best_params": r.get("best_params"), "cv_acc": r.get("cv_acc"), "fit_seconds": r["seconds"],
                        "num_train": len(data[0][1]), "num_test": len(data[1][1]), "device": "cpu",
                        "seed": cfg.seed, **results.environment()})
    return [Run(rd.path, rd.config, rd.read_metrics(), rd.read_final()) for rd in todo]


def train_run(cfg: P003Config, progress: bool = True) -> Run:
    """The CNN run of ``cfg``: trained now, or read back when its folder is complete."""
    rd = results.RunDir(cfg.paper, cfg.run_config(), cfg.results_dir)
    if not rd.is_complete():
        train_cnn(cfg, rd, progress)
    return Run(rd.path, rd.config, rd.read_metrics(), rd.read_final())
