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

``replicas`` trains the networks of several seeds at once as one grouped network (see
:class:`~hwrlib.models.lenet_variant.GroupedLeNetVariant`): each replica keeps its own seed's
initialization, subsets and batch order, and the group trains 1.15-1.46x the images/s of one network
on a CPU core (``bench/bench_003.py``). The sweeps train their 5 seeds this way.
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
from ..models.lenet_variant import SUBSAMPLING, GroupedLeNetVariant
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
    replicas: int = 1
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
        for name in ("c1", "c3", "batch_size", "num_epochs", "eval_every", "train_size", "test_size", "replicas"):
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
    def seeds(self) -> list[int]:
        """The seeds trained together: ``seed`` .. ``seed + replicas - 1``."""
        return list(range(self.seed, self.seed + self.replicas))

    def subset_seed(self, seed: int | None = None) -> int:
        """The seed of the subset draw of replica ``seed`` (default: the first)."""
        return (self.seed if seed is None else seed) if self.data_seed is None else self.data_seed

    def run_config(self, seed: int | None = None) -> dict[str, Any]:
        """What the CNN run's folder of ``seed`` (default: the first) records; its run id derives from this.

        A replica trained in a group records the group (``seed_group``, e.g. ``"0-4"``): its numbers
        equal a lone run's only up to float rounding, so the two are different runs.
        """
        group = {"seed_group": f"{self.seeds[0]}-{self.seeds[-1]}"} if self.replicas > 1 else {}
        return {"model": MODEL, "c1": self.c1, "c3": self.c3, "subsampling": self.subsampling,
                "batch_size": self.batch_size, "lr": self.lr, "weight_decay": self.weight_decay,
                "num_epochs": self.num_epochs, "eval_every": self.eval_every,
                "eval_dense_until": self.eval_dense_until, **self._data(seed), "device": self.device, **group}

    def baseline_config(self, name: str, seed: int | None = None) -> dict[str, Any]:
        grid = (FULL_GRIDS if self.profile == "full" else GRIDS).get(name, {})
        return {"model": name, "grid": grid, "folds": self.folds if grid else None, **self._data(seed)}

    def _data(self, seed: int | None) -> dict[str, Any]:
        seed = self.seed if seed is None else seed
        return {"train_size": self.train_size, "test_size": self.test_size, "data_seed": self.subset_seed(seed),
                "seed": seed, "profile": self.profile}

    def cnn_dirs(self) -> list[results.RunDir]:
        """The CNN run folder of each seed."""
        return [results.RunDir(self.paper, self.run_config(s), self.results_dir) for s in self.seeds]

    def baseline_dirs(self) -> list[results.RunDir]:
        """The baselines' run folders, seed by seed."""
        return [results.RunDir(self.paper, self.baseline_config(b, s), self.results_dir)
                for s in self.seeds for b in BASELINES]

    def run_dirs(self) -> list[results.RunDir]:
        """Every folder this point writes: the CNN of each seed first, then (with ``baselines``) the baselines."""
        return self.cnn_dirs() + (self.baseline_dirs() if self.baselines else [])


def load_subsets(cfg: P003Config, seed: int | None = None) -> tuple[tuple[torch.Tensor, torch.Tensor],
                                                                    tuple[torch.Tensor, torch.Tensor]]:
    """The random training and test subsets of replica ``seed`` (default: the first), drawn by its subset seed."""
    prepare_mnist(cfg.data_dir)
    train = subset(*load_mnist("train", cfg.data_dir), cfg.train_size, cfg.subset_seed(seed))
    test = subset(*load_mnist("test", cfg.data_dir), cfg.test_size, cfg.subset_seed(seed))
    return train, test


def mse(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The paper's eq. 4/5: 1/2 ||t - y||^2 per sample on one-hot targets, averaged over the batch.

    ``out`` is ``(B, classes)`` and ``y`` ``(B,)``; or ``(G, B, classes)`` and ``(G, B)`` for the replicas of
    a grouped network, one loss each, each reduced exactly as a lone network's.
    """
    if out.dim() == 3:
        return torch.stack([mse(o, t) for o, t in zip(out, y)])
    return 0.5 * (out - F.one_hot(y, out.shape[1]).to(out.dtype)).square().sum(1).mean()


def make_sgd(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.SGD:
    """Plain gradient descent (eq. 16/17): the decay term lambda * w applies to weights, not biases."""
    weights = [p for n, p in model.named_parameters() if not n.endswith("bias")]
    biases = [p for n, p in model.named_parameters() if n.endswith("bias")]
    return torch.optim.SGD([{"params": weights, "weight_decay": weight_decay},
                            {"params": biases, "weight_decay": 0.0}], lr=lr, momentum=0.0)


# a grouped network's forward/backward pass holds about this many 24x24 C1 maps (replicas x c1 x images, ~3.5 MB):
# beyond it the activations outgrow the CPU caches (5 x 6 maps x 50 images; 10-16 nets pass 30 images at a time)
GROUP_C1_MAPS = 1500


class Replicas:
    """The networks of a point's seeds as one: a :class:`GroupedLeNetVariant` for several, the plain network for one.

    Inputs are ``(B, G, 28, 28)`` (replica ``g``'s images in channel ``g``), outputs ``(G, B, classes)``.
    One replica runs the plain :class:`LeNetVariant`, so a lone run computes exactly what it always did.
    """

    def __init__(self, cfg: P003Config, device: torch.device):
        nets = []
        for s in cfg.seeds:  # each replica starts from its own seed's initialization, as a lone run would
            seed_everything(s)
            nets.append(create_model(MODEL, c1=cfg.c1, c3=cfg.c3, subsampling=cfg.subsampling))
        self.num_params = count_params(nets[0])
        self.groups = len(nets)
        self.chunk = max(1, GROUP_C1_MAPS // (self.groups * cfg.c1))  # images per replica and pass, if grouped
        # scoring: a group's activations for 1,000 images outgrow the CPU caches (batches of 50 are ~2.5x faster
        # there), while a lone network keeps its batch of 1,000
        self.test_batch = 1000 if self.groups == 1 else 50
        self.net = prepare_model(nets[0] if self.groups == 1 else GroupedLeNetVariant(nets), device)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        return out.unsqueeze(0) if self.groups == 1 else out

    def update(self, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> tuple[list[float], list[int]]:
        """One gradient-descent step on the batch ``x``, ``y``; returns each replica's loss and correct count.

        A group's batch goes through in chunks of ``self.chunk`` images per replica (see :data:`GROUP_C1_MAPS`),
        gradients summed with weights chunk / batch (the same mean gradient): unchunked, 5 replicas at batch 100
        or 200 trained slower than one network at a time, and 10-16 replicas 1.6x slower than in chunks of 30.
        """
        opt.zero_grad(set_to_none=True)
        b = y.shape[1]
        chunk = b if self.groups == 1 else self.chunk
        losses, correct = 0, 0
        for xc, yc in zip(x.split(chunk), y.split(chunk, dim=1)):
            out = self(xc)
            loss = mse(out, yc) * (yc.shape[1] / b)  # exactly the loss when there is one chunk
            loss.sum().backward()
            losses = losses + loss.detach()
            correct = correct + (out.argmax(-1) == yc).sum(-1)
        opt.step()
        return losses.tolist(), correct.tolist()

    def batches(self, loaders: list[TensorLoader]):
        """Zip the replicas' loaders into ``(B, G, 28, 28)`` inputs and ``(G, B)`` labels."""
        for parts in zip(*loaders):
            if self.groups == 1:
                yield parts[0][0], parts[0][1].unsqueeze(0)
                continue
            x = torch.cat([p[0] for p in parts], dim=1).contiguous(memory_format=torch.channels_last)
            yield x, torch.stack([p[1] for p in parts])


@torch.no_grad()
def score(model: Replicas, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, list[float]]:
    """Test MSE and accuracy of every replica on its own test subset."""
    model.net.eval()
    outs, ys = zip(*[(model(x), y) for x, y in batches])
    out, y = torch.cat(outs, dim=1), torch.cat(ys, dim=1)
    model.net.train()
    return {"mse": mse(out, y).tolist(), "acc": (out.argmax(-1) == y).float().mean(-1).tolist()}


def eval_due(cfg: P003Config, iteration: int, updates_per_epoch: int) -> bool:
    """Score the test subset after this update? Every ``eval_every`` up to ``eval_dense_until``, then per epoch."""
    if iteration <= cfg.eval_dense_until:
        return iteration % cfg.eval_every == 0
    return iteration % updates_per_epoch == 0


class _Log:
    """One replica's metric rows: the test scores at each evaluation, the training window since the previous one."""

    def __init__(self):
        self.rows: list[dict[str, Any]] = []
        self.smoothed: float | None = None
        self.loss, self.correct, self.seen = 0.0, 0, 0

    def update(self, loss: float, correct: int, n: int) -> None:
        # the toolbox's running MSE: rL(end+1) = 0.99 rL(end) + 0.01 L, its Fig. 7-style curve
        self.smoothed = loss if self.smoothed is None else 0.99 * self.smoothed + 0.01 * loss
        self.loss += loss * n
        self.correct += correct
        self.seen += n

    def row(self, iteration: int, epoch: float, samples: int, mse_: float, acc: float, seconds: float) -> None:
        seen = max(self.seen, 1)
        self.rows.append({"iteration": iteration, "epoch": epoch, "samples": samples,
                          "train_mse": self.loss / seen if self.seen else None, "train_mse_smoothed": self.smoothed,
                          "train_acc": self.correct / seen if self.seen else None,
                          "test_mse": mse_, "test_acc": acc, "test_error": 1 - acc, "seconds": seconds})
        self.loss, self.correct, self.seen = 0.0, 0, 0


def train_cnn(cfg: P003Config, progress: bool = True) -> None:
    """Train the CNN of every seed of ``cfg`` together, scoring each test subset on :func:`eval_due` updates.

    Writes one run folder per seed. Replica ``g`` has exactly the initialization, subsets and batch
    order of a lone run with its seed.
    """
    t0 = time.perf_counter()
    set_threads_from_env()
    device = resolve_device(cfg.device)
    rds = cfg.cnn_dirs()
    for rd in rds:
        rd.write_config()
    model = Replicas(cfg, device)
    data = [load_subsets(cfg, s) for s in cfg.seeds]
    # inputs in [0, 1] as the toolbox feeds them (x / 255, no normalization)
    train = [TensorLoader(x, y, cfg.batch_size, shuffle=True, seed=s, mean=0.0, std=1.0, device=device,
                          channels_last=True) for s, ((x, y), _) in zip(cfg.seeds, data)]
    test = list(model.batches([TensorLoader(xt, yt, model.test_batch, mean=0.0, std=1.0, device=device,
                                            channels_last=True) for _, (xt, yt) in data]))  # built once
    opt = make_sgd(model.net, cfg.lr, cfg.weight_decay)
    logs = [_Log() for _ in cfg.seeds]
    per_epoch, seconds = len(train[0]), 0.0

    def evaluate(iteration: int) -> None:
        s = score(model, test)
        for g, log in enumerate(logs):
            log.row(iteration, iteration / per_epoch, iteration * cfg.batch_size, s["mse"][g], s["acc"][g], seconds)

    evaluate(0)
    bar = tqdm(total=cfg.num_epochs * per_epoch, unit="update", disable=not progress, mininterval=5,
               desc=f"003 {cfg.c1}-{cfg.c3} b{cfg.batch_size} lr{cfg.lr:g}" + (f" x{cfg.replicas} seeds" if cfg.replicas > 1 else ""))
    it = 0
    for epoch in range(cfg.num_epochs):
        for loader in train:
            loader.set_epoch(epoch)
        t = time.perf_counter()
        for xb, yb in model.batches(train):
            losses, correct = model.update(opt, xb, yb)
            it += 1
            for log, loss, c in zip(logs, losses, correct):
                log.update(loss, c, yb.shape[1])
            if eval_due(cfg, it, per_epoch):
                seconds += time.perf_counter() - t
                evaluate(it)
                t = time.perf_counter()
        seconds += time.perf_counter() - t
        bar.update(per_epoch)
    bar.close()
    if logs[0].rows[-1]["iteration"] != it:
        evaluate(it)
    for rd, log, ((x, y), (xt, yt)), s in zip(rds, logs, data, cfg.seeds):
        rd.write_metrics(log.rows)
        h = pd.DataFrame(log.rows)
        last = h.iloc[-1]
        rd.write_final({
            "final_test_acc": float(last.test_acc), "final_test_error": float(last.test_error),
            "best_test_acc": float(h.test_acc.max()), "final_test_mse": float(last.test_mse),
            "num_params": model.num_params, "num_train": len(y), "num_test": len(yt), "num_updates": it,
            "replicas": cfg.replicas,  # the seconds and images/s below are the whole group's
            "train_seconds": seconds, "mean_epoch_seconds": seconds / cfg.num_epochs,
            "train_images_per_second": cfg.replicas * cfg.num_epochs * len(y) / seconds,
            "wall_seconds": time.perf_counter() - t0,
            "device": str(device), "device_name": device_name(device), "num_threads": torch.get_num_threads(),
            "seed": s, **results.environment()})


def run_baselines(cfg: P003Config, progress: bool = True) -> list[Run]:
    """Table 1's classical baselines on the subsets of every seed (each a run folder; finished ones are read back)."""
    todo = cfg.baseline_dirs()
    data: dict[int, Any] = {}
    for rd in tqdm(todo, desc="003 baselines", disable=not progress):
        if rd.is_complete():
            continue
        s = rd.config["seed"]
        if s not in data:
            data[s] = load_subsets(cfg, s)
        rd.write_config()
        name = rd.config["model"]
        r = run_baseline(name, *data[s], grid=rd.config["grid"], folds=cfg.folds or 2, seed=cfg.subset_seed(s))
        rd.write_metrics(r.pop("cv_results", [{"test_acc": r["test_acc"]}]))
        rd.write_final({"final_test_acc": r["test_acc"], "final_test_error": r["test_error"],
                        "best_params": r.get("best_params"), "cv_acc": r.get("cv_acc"), "fit_seconds": r["seconds"],
                        "num_train": len(data[s][0][1]), "num_test": len(data[s][1][1]), "device": "cpu",
                        "seed": s, **results.environment()})
    return [Run(rd.path, rd.config, rd.read_metrics(), rd.read_final()) for rd in todo]


def train_runs(cfg: P003Config, progress: bool = True) -> list[Run]:
    """The CNN runs of ``cfg``'s seeds: trained now (all together), or read back when every folder is complete."""
    rds = cfg.cnn_dirs()
    if not all(rd.is_complete() for rd in rds):
        train_cnn(cfg, progress)
    return [Run(rd.path, rd.config, rd.read_metrics(), rd.read_final()) for rd in rds]


def train_run(cfg: P003Config, progress: bool = True) -> Run:
    """The CNN run of ``cfg``'s first seed (all its seeds train, together)."""
    return train_runs(cfg, progress)[0]
