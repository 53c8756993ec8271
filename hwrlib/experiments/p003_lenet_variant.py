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
from functools import partial
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from .. import results
from ..baselines import BASELINES, FULL_GRIDS, GRIDS, run_baseline
from ..config import ConfigError, ExperimentConfig, one_of, positive
from ..data import GroupLoader, TensorLoader, load_mnist, prepare_mnist, subset
from ..models import create_model
from ..models.lenet_variant import SUBSAMPLING, Replicas
from ..train import Loop, fit, prepare_model, seed_everything
from .registry import Job, register_experiment, start_run

MODEL = "lenet_variant"
SMOKE = {"num_epochs": 2, "train_size": 500, "test_size": 200, "eval_every": 10, "eval_dense_until": 400, "folds": 2}


@register_experiment
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
    replicas: int = 1

    # which runs a point trains (baselines, seeds grouped), and the baselines' cross-validation: not the CNN's numbers
    NON_IDENTITY: ClassVar[frozenset[str]] = ExperimentConfig.NON_IDENTITY | {"baselines", "replicas", "folds"}
    BASELINE_FIELDS: ClassVar[tuple[str, ...]] = ("train_size", "test_size", "data_seed", "seed", "profile")
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
        self.at_least_one("c1", "c3", "batch_size", "num_epochs", "eval_every", "train_size", "test_size", "replicas")
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
        if (self.data_seed or 0) < 0:
            raise ConfigError("data_seed", f"must be >= 0, got {self.data_seed!r}")

    @property
    def seeds(self) -> list[int]:
        """The seeds trained together: ``seed`` .. ``seed + replicas - 1``."""
        return list(range(self.seed, self.seed + self.replicas))

    def subset_seed(self, seed: int | None = None) -> int:
        """The seed of the subset draw of replica ``seed`` (default: the first)."""
        return (self.seed if seed is None else seed) if self.data_seed is None else self.data_seed

    def cnn_record(self, seed: int | None = None) -> dict[str, Any]:
        """What the CNN run's folder of ``seed`` (default: the first) records; its run id derives from this.

        A replica trained in a group records the group (``seed_group``, e.g. ``"0-4"``): its numbers
        equal a lone run's only up to float rounding, so the two are different runs.
        """
        seed = self.seed if seed is None else seed
        group = {"seed_group": f"{self.seeds[0]}-{self.seeds[-1]}"} if self.replicas > 1 else {}
        return {"model": MODEL, **self.record(), "seed": seed, "data_seed": self.subset_seed(seed), **group}

    def baseline_record(self, name: str, seed: int | None = None) -> dict[str, Any]:
        """A baseline's record: its model and grid, and the CNN record's fields that define the data."""
        grid = (FULL_GRIDS if self.profile == "full" else GRIDS).get(name, {})
        data = {k: v for k, v in self.cnn_record(seed).items() if k in self.BASELINE_FIELDS}
        return {"model": name, "grid": grid, "folds": self.folds if grid else None, **data}

    def cnn_dirs(self) -> list[results.RunDir]:
        """The CNN run folder of each seed."""
        return [results.RunDir(self.paper, self.cnn_record(s), self.results_dir) for s in self.seeds]

    def baseline_dirs(self) -> list[results.RunDir]:
        """The baselines' run folders, seed by seed."""
        return [results.RunDir(self.paper, self.baseline_record(b, s), self.results_dir)
                for s in self.seeds for b in BASELINES]

    def jobs(self) -> list[Job]:
        """The CNNs of every seed as one job (trained together), then each baseline alone."""
        cnn = [Job(self.cnn_dirs(), partial(train_cnn, self))]
        if not self.baselines:
            return cnn
        return cnn + [Job([rd], partial(run_baseline_dir, self, rd)) for rd in self.baseline_dirs()]


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


def make_replicas(cfg: P003Config, device: torch.device) -> Replicas:
    """The networks of ``cfg.seeds`` as one :class:`Replicas`, each from its own seed's initialization (as a lone run
    would start), on ``device``."""
    nets = []
    for s in cfg.seeds:
        seed_everything(s)
        nets.append(create_model(MODEL, c1=cfg.c1, c3=cfg.c3, subsampling=cfg.subsampling))
    replicas = Replicas(nets)
    replicas.net = prepare_model(replicas.net, device)
    return replicas


def train_step(model: Replicas, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """003's update: one gradient-descent step on the MSE of the batch ``x``, ``y``; each replica's loss and accuracy.

    A group's batch goes through in chunks of ``model.chunk`` images per replica, gradients summed with weights
    chunk / batch (the same mean gradient): unchunked, 5 replicas at batch 100 or 200 trained slower than one
    network at a time, and 10-16 replicas 1.6x slower than in chunks of 30. Also keeps the toolbox's running MSE,
    ``rL(end+1) = 0.99 rL(end) + 0.01 L`` (its Fig. 7 curve).
    """
    opt.zero_grad(set_to_none=True)
    b = y.shape[1]
    chunk = b if model.groups == 1 else model.chunk
    losses, correct = 0, 0
    for xc, yc in zip(x.split(chunk), y.split(chunk, dim=1)):
        out = model(xc)
        loss = mse(out, yc) * (yc.shape[1] / b)  # exactly the loss when there is one chunk
        loss.sum().backward()
        losses = losses + loss.detach()
        correct = correct + (out.argmax(-1) == yc).sum(-1)
    opt.step()
    model.smoothed = losses if model.smoothed is None else 0.99 * model.smoothed + 0.01 * losses
    return {"loss": losses, "acc": correct / b}


@torch.no_grad()
def score(model: Replicas, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, list[float]]:
    """Every replica's test loss (MSE), accuracy and error on its own test subset, and its running training MSE."""
    model.net.eval()
    outs, ys = zip(*[(model(x), y) for x, y in batches])
    out, y = torch.cat(outs, dim=1), torch.cat(ys, dim=1)
    model.net.train()
    acc = (out.argmax(-1) == y).float().mean(-1).tolist()
    smoothed = model.smoothed.tolist() if model.smoothed is not None else [None] * model.groups
    return {"train_loss_smoothed": smoothed, "test_loss": mse(out, y).tolist(), "test_acc": acc,
            "test_error": [1 - a for a in acc]}


def eval_schedule(cfg: P003Config):
    """Score the test subset before training, every ``eval_every`` updates up to ``eval_dense_until``, then per epoch."""
    def due(step: int, per_epoch: int) -> bool:
        if step <= cfg.eval_dense_until:
            return step % cfg.eval_every == 0
        return step % per_epoch == 0
    return due


def replica_rows(metrics: list[dict[str, Any]], g: int) -> list[dict[str, Any]]:
    """Replica ``g``'s evaluation rows from a group's (whose per-replica values are lists)."""
    return [{k: v[g] if isinstance(v, list) else v for k, v in row.items()} for row in metrics]


def fit_replicas(cfg: P003Config, data: list, device: torch.device, progress: bool = True) -> tuple[list[dict], Replicas]:
    """Train the networks of ``cfg.seeds`` side by side on ``data`` (per seed: ``((x, y), (xt, yt))``) with
    :func:`train_step`, scoring each on its own ``(xt, yt)`` on :func:`eval_schedule`; returns the group's evaluation
    rows and the model."""
    model = make_replicas(cfg, device)
    # inputs in [0, 1] as the toolbox feeds them (x / 255, no normalization)
    train = GroupLoader([TensorLoader(x, y, cfg.batch_size, shuffle=True, seed=s, mean=0.0, std=1.0, device=device,
                                      channels_last=True) for s, ((x, y), _) in zip(cfg.seeds, data)])
    test = list(GroupLoader([TensorLoader(xt, yt, model.test_batch, mean=0.0, std=1.0, device=device,
                                          channels_last=True) for _, (xt, yt) in data]))  # built once
    opt = make_sgd(model.net, cfg.lr, cfg.weight_decay)
    desc = f"003 {cfg.c1}-{cfg.c3} b{cfg.batch_size} lr{cfg.lr:g}" + (f" x{cfg.replicas} seeds" if cfg.replicas > 1 else "")
    loop = Loop(partial(train_step, model, opt), evaluate=lambda m: score(model, test), eval_at=eval_schedule(cfg),
                desc=desc)
    run = fit(model.net, train, opt, device, loop, num_steps=cfg.num_epochs * len(train), seed=cfg.seed,
              progress=progress)
    return run.metrics, model


def train_cnn(cfg: P003Config, progress: bool = True) -> None:
    """Train the CNN of every seed of ``cfg`` together (:func:`fit_replicas`) and write one run folder per seed.

    Replica ``g`` has exactly the initialization, subsets and batch order of a lone run with its seed. Runs last
    seconds to minutes: no checkpoint.
    """
    t0 = time.perf_counter()
    rds = cfg.cnn_dirs()
    device = start_run(cfg, rds)
    data = [load_subsets(cfg, s) for s in cfg.seeds]
    metrics, model = fit_replicas(cfg, data, device, progress)
    for g, (rd, ((x, y), (xt, yt)), s) in enumerate(zip(rds, data, cfg.seeds)):
        rows = replica_rows(metrics, g)
        rd.write_metrics(rows)
        # the seconds and images/s are the whole group's (``replicas`` networks at once)
        final = results.final_record(rows, final_test_error=rows[-1]["test_error"], num_params=model.num_params,
                                     num_train=len(y), num_test=len(yt), replicas=cfg.replicas,
                                     **results.machine_record(t0, device, s))
        final["train_images_per_second"] *= cfg.replicas
        rd.write_final(final)


def run_baseline_dir(cfg: P003Config, rd: results.RunDir, progress: bool = True) -> None:
    """One of Table 1's classical baselines on the subsets of the seed ``rd`` records (no progress bar: seconds)."""
    t0 = time.perf_counter()
    s = rd.config["seed"]
    train, test = load_subsets(cfg, s)
    start_run(cfg, [rd])
    r = run_baseline(rd.config["model"], train, test, grid=rd.config["grid"], folds=cfg.folds or 2,
                     seed=cfg.subset_seed(s))
    if "cv_results" in r:
        rd.write_table("cv_results", r.pop("cv_results"))
    rd.write_metrics([{"epoch": 1, "step": 1, "samples": len(train[1]), "lr": None, "seconds": r["seconds"],
                       "test_acc": r["test_acc"], "test_error": r["test_error"]}])
    rd.write_final({"final_test_acc": r["test_acc"], "final_test_error": r["test_error"],
                    "best_params": r.get("best_params"), "cv_acc": r.get("cv_acc"), "train_seconds": r["seconds"],
                    "num_evals": 1, "num_train": len(train[1]), "num_test": len(test[1]),
                    **results.machine_record(t0, torch.device("cpu"), s)})
