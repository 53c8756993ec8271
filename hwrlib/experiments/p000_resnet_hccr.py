"""Experiment 000: the improved residual network (learned shortcut scalars a_i) on CASIA-HWDB1.1 or its
synthetic stand-in, with Table 1's plain ResNet and Inception baselines under the same protocol.

Loss, as the paper's section 2.3.2 lists it: softmax cross-entropy + ``aux_weight`` x the auxiliary
classifier's cross-entropy + regularization, where regularization = weight decay
(``weight_decay / 2 * sum W^2`` over conv and linear weights, as TF-Slim's l2 regularizer adds it)
+ ``prod_weight * |prod a_i - 1|`` (section 1.2). Every part is logged separately (Fig. 3).
The paper gives no optimizer, learning rate, batch size or aux weight: SGD with momentum 0.9 and a
cosine schedule with a short warm-up; ``aux_weight`` 0.4 as TF-Slim's Inception training uses.

Each trained network is a run folder (``metrics.csv`` per evaluation, ``steps.csv`` per logged step);
with ``prod_demo`` the same run without the product term (or with it, if the main run has none) is a
second folder, for the demonstration that the term holds prod a_i near 1.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import results
from ..config import ConfigError, ExperimentConfig, one_of, positive
from ..data.hwdb import DATASETS, Augment, HWDBCache, HWDBLoader, prepared, train_val_split
from ..data.synth_hwdb import SynthParams
from ..models import list_models
from ..models.resnet_hccr import prod_a, shortcut_scalars
from ..train import OPTIMIZERS, Cosine, Loop, Schedule, fit, make_optimizer, score, standard_update
from .registry import Job, build_model, register_experiment, start_run

MODELS = tuple(list_models("000"))  # the models registered for this paper (hwrlib/models)
SCHEDULES = ("cosine", "constant")
# the two readings of section 2.2's augmentation; under "expand" an epoch holds the originals and 4 augmented copies
# (a mirror and 3 random zooms: 5x the set, within 「限定为原样本集大小的4-6倍」)
AUGMENTATIONS = ("replace", "expand")
EXPAND = 5
VAL_FRACTION = 0.1  # the paper's 1:10 training/validation split
WARMUP = 0.02  # share of the steps with a linear learning-rate warm-up (cosine schedule)
SYNTH_NOTE = "SYNTHETIC stand-in (synth-hwdb), not CASIA-HWDB: never compare with the paper's numbers"


@register_experiment
@dataclass(frozen=True)
class P000Config(ExperimentConfig):
    """The 000 notebook's parameters. ``None`` fields take the profile's value."""
    paper: ClassVar[str] = "000"
    dataset: str = "synth"
    num_classes: int | None = None
    synth_writers: int | None = None
    model: str = "resnet_hccr"
    width: float | None = None
    num_steps: int | None = None
    num_epochs: int | None = None
    batch_size: int | None = None
    optimizer: str = "sgd"
    lr: float = 0.1
    lr_schedule: str = "cosine"
    weight_decay: float = 1e-4
    aux_weight: float = 0.4
    prod_weight: float = 0.01
    flip: bool = True
    scale: bool = True
    pca_noise: bool = True
    augmentation: str = "replace"
    eval_every: int | None = None
    log_every: int | None = None
    prod_demo: bool = True
    hwdb_dir: str | None = None

    NON_IDENTITY: ClassVar[frozenset[str]] = ExperimentConfig.NON_IDENTITY | {"prod_demo", "hwdb_dir"}
    PROFILES: ClassVar[dict[str, dict[str, Any]]] = {
        # Table 1 reports s = 600,000 steps; the full-size network; evaluation every 5,000 steps
        "paper": {"width": 1.0, "num_steps": 600_000, "eval_every": 5000, "log_every": 100, "batch_size": 64},
        # 100 classes x 40 writers of synth-hwdb; a 1/8-width network (CPU minutes)
        "quick": {"num_classes": 100, "synth_writers": 40, "width": 0.125, "num_epochs": 5, "log_every": 1,
                  "batch_size": 64},
        # the committed SYNTHETIC study (make study-000-readings): quick's set and width at a fixed 225-step budget
        # (quick's 5 epochs), so that the expand reading trains on more distinct images, not for longer
        "study": {"num_classes": 100, "synth_writers": 40, "width": 0.125, "num_steps": 225, "log_every": 1,
                  "batch_size": 64},
        # its ~30 training images take batches of 16 (64 would be a batch size that never happened)
        "smoke": {"num_classes": 10, "synth_writers": 4, "width": 0.125, "num_steps": 4, "eval_every": 2,
                  "log_every": 1, "batch_size": 16},
    }

    @classmethod
    def from_params(cls, **params: Any) -> P000Config:
        """As the base, except that a length given explicitly (num_steps or num_epochs) replaces the profile's."""
        given = [k for k in ("num_steps", "num_epochs") if params.get(k) is not None]
        if len(given) == 2:
            raise ConfigError("num_epochs", "give num_steps or num_epochs, not both (leave the other None)")
        cfg = super().from_params(**params)
        if given:
            cfg = dataclasses.replace(cfg, **{({"num_steps", "num_epochs"} - set(given)).pop(): None})
            cfg.validate()
        return cfg

    def validate(self) -> None:
        super().validate()
        one_of("dataset", self.dataset, DATASETS)
        one_of("model", self.model, MODELS)
        one_of("optimizer", self.optimizer, OPTIMIZERS)
        one_of("lr_schedule", self.lr_schedule, SCHEDULES)
        one_of("augmentation", self.augmentation, AUGMENTATIONS)
        if self.num_steps is None and self.num_epochs is None:
            raise ConfigError("num_steps", "give num_steps or num_epochs (the profile sets one of them)")
        self.at_least_one("num_steps", "num_epochs", "batch_size", "eval_every", "log_every", "num_classes",
                          "synth_writers")
        if self.num_classes is not None and self.num_classes < 2:
            raise ConfigError("num_classes", f"a classifier needs >= 2 classes, got {self.num_classes}")
        if self.dataset == "synth" and self.synth_writers is not None and self.synth_writers < 2:
            raise ConfigError("synth_writers", "synth-hwdb needs >= 2 writers (train and test are split by writer)")
        if self.eval_every and self.log_every and self.eval_every % self.log_every:
            raise ConfigError("log_every", f"must divide eval_every ({self.eval_every}), got {self.log_every}")
        positive("width", self.width)
        positive("lr", self.lr)
        for name in ("weight_decay", "aux_weight", "prod_weight"):
            if getattr(self, name) < 0:
                raise ConfigError(name, f"must be >= 0, got {getattr(self, name)!r}")

    def augment(self) -> Augment:
        """The paper's augmentation (section 2.2) with each part switched by its parameter."""
        return Augment(flip=self.flip, scale=(0.5, 2.0) if self.scale else None,
                       pca_noise_p=0.3 if self.pca_noise else 0.0, pca_noise_std=(0.01, 0.1))

    def synth_params(self) -> dict[str, int]:
        """The synthetic set's parameters given here (None: synth-hwdb's defaults, 100 classes x 40 writers)."""
        given = (("num_classes", self.num_classes), ("num_writers", self.synth_writers))
        return {k: v for k, v in given if v} if self.dataset == "synth" else {}

    def record(self) -> dict[str, Any]:
        """The run's fields (locations and ``prod_demo`` excluded) and ``data_version``, the synthetic set's tag.

        ``data_version`` is a hash of all the synthetic set's generator settings, so a run on a regenerated,
        different synthetic set gets a new folder instead of reading back the old result.
        """
        version = SynthParams(**self.synth_params()).tag if self.dataset == "synth" else "CASIA-HWDB1.1"
        return {**super().record(), "data_version": version}

    def demo_counterpart(self) -> P000Config | None:
        """The run that differs only by the product term (off if on, on at 1.0 if off); None where it means nothing."""
        if not self.prod_demo or self.model != "resnet_hccr":
            return None
        return dataclasses.replace(self, prod_weight=0.0 if self.prod_weight > 0 else 1.0, prod_demo=False)

    def runs(self) -> list[P000Config]:
        """The main run, then its ``prod_demo`` counterpart when there is one."""
        return [self] + [c for c in [self.demo_counterpart()] if c is not None]

    def jobs(self) -> list[Job]:
        """One job per run folder of :meth:`runs`, each trained by :func:`train_model`."""
        return [Job([c.run_dir()], partial(train_model, c)) for c in self.runs()]


def load_data(cfg: P000Config) -> tuple[HWDBCache, HWDBCache]:
    """The (train, test) caches of ``cfg.dataset``; the synthetic set is built on first use (seconds to a minute)."""
    train, test = prepared(cfg.dataset, cfg.data_dir, cfg.hwdb_dir, **cfg.synth_params())
    if cfg.num_classes and cfg.num_classes > train.num_classes:
        raise ConfigError("num_classes", f"{cfg.dataset} has {train.num_classes} classes, {cfg.num_classes} asked for")
    return train, test


def class_indices(cache: HWDBCache, num_classes: int | None):
    """Indices of the samples of the first ``num_classes`` classes (GB code order); None for all."""
    if not num_classes or num_classes >= cache.num_classes:
        return None
    return (cache.labels < num_classes).nonzero()[0]


class HCCRLoss:
    """The paper's loss, returning its parts: softmax, auxiliary, weight_decay, prod, regularization and their
    weighted sum ``loss`` (the total, minimized)."""

    def __init__(self, model: nn.Module, aux_weight: float, weight_decay: float, prod_weight: float):
        self.decayed = [p for p in model.parameters() if p.ndim > 1]  # conv and linear weights, not BN or a_i
        self.aux_weight, self.weight_decay, self.prod_weight = aux_weight, weight_decay, prod_weight

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        logits, aux = model.forward_with_aux(x)
        softmax = F.cross_entropy(logits.float(), y)
        auxiliary = F.cross_entropy(aux.float(), y)
        wd = 0.5 * self.weight_decay * sum(p.float().square().sum() for p in self.decayed)
        pa = prod_a(model)
        prod = self.prod_weight * (pa - 1).abs() if pa is not None else torch.zeros((), device=x.device)
        reg = wd + prod
        return {"softmax": softmax, "auxiliary": auxiliary, "weight_decay": wd, "prod": prod, "regularization": reg,
                "loss": softmax + self.aux_weight * auxiliary + reg}


def trace_scalars(model: nn.Module) -> dict[str, float]:
    """``prod_a`` and each ``a_1 .. a_n`` of the model (nothing for the Inception network)."""
    a = shortcut_scalars(model)
    if a is None:
        return {}
    values = a.detach().double().tolist()  # one sync; the product in float64
    return {"prod_a": math.prod(values), **{f"a_{i + 1}": v for i, v in enumerate(values)}}


def lr_schedule(cfg: P000Config, num_steps: int) -> Schedule:
    """``constant``, or ``cosine`` to 0 after a linear warm-up over 2% of the steps."""
    return Cosine(cfg.lr, num_steps, WARMUP) if cfg.lr_schedule == "cosine" else Schedule()


def make_loaders(cfg: P000Config, train: HWDBCache, test: HWDBCache, device: torch.device):
    """Training (augmented, shuffled), validation (the 1:10 hold-out) and test loaders on ``device``."""
    keep = class_indices(train, cfg.num_classes)
    tr, va = train_val_split(train, VAL_FRACTION, seed=cfg.seed)
    if keep is not None:
        tr, va = (idx[(train.labels[idx] < cfg.num_classes)] for idx in (tr, va))
    cfg.batch_fits(len(tr), f"this training set ({cfg.dataset}, {cfg.num_classes or 'all'} classes)")
    kw = {"device": device, "channels_last": True}
    expand = EXPAND if cfg.augmentation == "expand" else 1
    return (HWDBLoader(train, tr, cfg.batch_size, shuffle=True, seed=cfg.seed, augment=cfg.augment(), expand=expand,
                       **kw),
            {"val": HWDBLoader(train, va, 256, **kw), "test": HWDBLoader(test, class_indices(test, cfg.num_classes),
                                                                        256, **kw)})


def _final(cfg: P000Config, metrics: list[dict], loaders: dict, train_loader, num_params: int, num_classes: int,
           device: torch.device, t0: float, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    rows = pd.DataFrame(metrics)
    last, best = rows.iloc[-1], rows.loc[rows["val_acc"].idxmax()]
    scalars = {k: float(last[k]) for k in rows if k == "prod_a" or k.startswith("a_")}
    return results.final_record(
        metrics, final_test_top5=float(last.test_top5), final_val_acc=float(last.val_acc),
        final_val_top5=float(last.val_top5), best_val_acc=float(best.val_acc), best_val_test_acc=float(best.test_acc),
        best_val_test_top5=float(best.test_top5), best_val_step=int(best.step), final_prod_a=scalars.get("prod_a"),
        final_a=[v for k, v in scalars.items() if k.startswith("a_")], num_params=num_params, num_classes=num_classes,
        num_train=len(train_loader.indices), num_val=len(loaders["val"].indices),
        num_test=len(loaders["test"].indices), num_downscaled=train_loader.num_downscaled, dataset=cfg.dataset,
        dataset_note=SYNTH_NOTE if cfg.dataset == "synth" else "CASIA-HWDB1.1",
        **results.machine_record(t0, device, cfg.seed, optimizer))


def train_model(cfg: P000Config, progress: bool = True) -> None:
    """Train the run of ``cfg`` into its folder (resuming from its checkpoint)."""
    t0 = time.perf_counter()
    rd = cfg.run_dir()
    train_cache, test_cache = load_data(cfg)
    device = start_run(cfg, [rd])
    train_loader, loaders = make_loaders(cfg, train_cache, test_cache, device)
    num_classes = min(cfg.num_classes or train_cache.num_classes, train_cache.num_classes)
    model, num_params = build_model(cfg.model, cfg.seed, device, num_classes=num_classes, width=cfg.width)
    num_steps = cfg.num_steps or cfg.num_epochs * len(train_loader)
    opt = make_optimizer(cfg.optimizer, model.parameters(), cfg.lr)
    eval_every = cfg.eval_every or len(train_loader)
    loop = Loop(standard_update(model, opt, device, HCCRLoss(model, cfg.aux_weight, cfg.weight_decay, cfg.prod_weight)),
                evaluate=lambda m: score(m, loaders, device, topk=5),
                eval_at=lambda step, _: step > 0 and step % eval_every == 0, trace=trace_scalars,
                log_every=cfg.log_every or 1, on_eval=rd.write_progress, desc=f"000 {cfg.model} pw{cfg.prod_weight:g}")
    metrics = fit(model, train_loader, opt, device, loop, num_steps=num_steps, schedule=lr_schedule(cfg, num_steps),
                  checkpoint=rd.checkpoint, seed=cfg.seed, progress=progress).metrics
    rd.write_final(_final(cfg, metrics, loaders, train_loader, num_params, num_classes, device, t0, opt))
