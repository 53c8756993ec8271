"""Experiment 002 (and the base of 001): a CNN trained on MNIST, plus comparison models under the same protocol.

One notebook execution trains ``model`` and each of ``compare_models``; each trained model is a run of its
own in the results store, so sweeps and reruns find and skip it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any, ClassVar

from .. import results
from ..config import ConfigError, ExperimentConfig, one_of, positive
from ..data import MEAN, STD, TensorLoader, load_mnist, prepare_mnist, subset
from ..models.pytorch_cnn import HEADS
from ..train import OPTIMIZERS, Loop, fit, make_optimizer, score, standard_update
from .registry import Job, build_model, register_experiment, start_run

SMOKE = {"num_epochs": 1, "train_size": 512, "test_size": 1000, "compare_train_size": 256}
# the training loss is also kept every this many updates (steps.csv), fine enough to tell where 002's loss
# flattens ("about 3,000 iterations", Fig. 4); logging reads the loss only, so it trains the same numbers
LOG_EVERY = 100


@dataclass(frozen=True)
class MnistCNNConfig(ExperimentConfig):
    """Fields shared by 001 and 002 (the names of the notebooks' parameters)."""
    model: str = "pytorch_cnn"
    compare_models: list = field(default_factory=lambda: ["lenet5", "resnet18"])
    num_epochs: int | None = None
    batch_size: int = 32
    lr: float = 1e-3
    optimizer: str = "adam"
    momentum: float = 0.9
    train_size: int | None = None
    test_size: int | None = None
    compare_train_size: int | None = None

    NON_IDENTITY: ClassVar[frozenset[str]] = ExperimentConfig.NON_IDENTITY | {"compare_models", "compare_train_size"}
    # inputs as the paper prepares them: (mean, std) after scaling to [0, 1]
    input_norm: ClassVar[tuple[float, float]] = (MEAN, STD)

    def validate(self) -> None:
        super().validate()
        self.check_models()
        self.at_least_one("num_epochs", "batch_size")
        positive("lr", self.lr)
        one_of("optimizer", self.optimizer, OPTIMIZERS)
        if not 0 <= self.momentum < 1:
            raise ConfigError("momentum", f"must be in [0, 1), got {self.momentum!r}")
        self.check_sizes({"train_size": 60_000, "compare_train_size": 60_000, "test_size": 10_000})
        self.batch_fits(self.train_size or 60_000, "the training set (train_size)")
        if self.compare_models:
            self.batch_fits(self.compare_train_size or 60_000, "the comparison models' training set (compare_train_size)")

    def runs(self) -> list[MnistCNNConfig]:
        """One config per trained model: ``model`` on ``train_size`` images, then the comparison (``model`` and
        each of ``compare_models`` on ``compare_train_size``); a run planned twice is trained once."""
        planned = [(self.model, self.train_size)]
        if self.compare_models:
            planned += [(m, self.compare_train_size) for m in dict.fromkeys([self.model, *self.compare_models])]
        return [self.for_model(m, train_size=n) for m, n in dict.fromkeys(planned)]

    def jobs(self) -> list[Job]:
        """One job per run folder of :meth:`runs`, each trained by :func:`train_model`."""
        return [Job([c.run_dir()], partial(train_model, c)) for c in self.runs()]


@register_experiment
@dataclass(frozen=True)
class P002Config(MnistCNNConfig):
    """002: the PyTorch CNN; paper protocol batch 32, 20 epochs. Optimizer, lr and activation are unstated."""
    paper: ClassVar[str] = "002"
    activation: str = "relu"
    head: str = "linear"
    MODEL_FIELDS: ClassVar[dict[str, tuple[str, ...]]] = {"activation": ("pytorch_cnn",), "head": ("pytorch_cnn",)}
    PROFILES: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {"num_epochs": 20},
        # ResNet-18 trains at ~80 images/s on a 2-core CPU: the quick Fig. 6 uses 3,000 images per model
        "quick": {"num_epochs": 2, "compare_train_size": 3000},
        "smoke": SMOKE,
    }

    def validate(self) -> None:
        super().validate()
        one_of("activation", self.activation, ("relu", "tanh", "sigmoid"))
        one_of("head", self.head, HEADS)


def train_model(cfg: MnistCNNConfig, progress: bool = True) -> None:
    """Train ``cfg.model`` on ``cfg.train_size`` images into its run folder (resuming from its checkpoint)."""
    t0 = time.perf_counter()
    rd = cfg.run_dir()
    device = start_run(cfg, [rd])
    model, num_params = build_model(cfg.model, cfg.seed, device, **cfg.model_kwargs())
    prepare_mnist(cfg.data_dir)
    mean, std = cfg.input_norm
    x, y = subset(*load_mnist("train", cfg.data_dir), cfg.train_size, cfg.seed)
    xt, yt = subset(*load_mnist("test", cfg.data_dir), cfg.test_size, cfg.seed)
    loader = TensorLoader(x, y, cfg.batch_size, shuffle=True, seed=cfg.seed, mean=mean, std=std, device=device,
                          channels_last=True)
    test = TensorLoader(xt, yt, 1000, mean=mean, std=std, device=device, channels_last=True)
    optimizer = make_optimizer(cfg.optimizer, model.parameters(), cfg.lr, momentum=cfg.momentum)

    loop = Loop(standard_update(model, optimizer, device),
                evaluate=lambda m: score(m, {"test": test}, device), log_every=LOG_EVERY, on_eval=rd.write_progress,
                desc=f"{cfg.paper} {cfg.model}")
    run = fit(model, loader, optimizer, device, loop, num_steps=cfg.num_epochs * len(loader),
              checkpoint=rd.checkpoint, seed=cfg.seed, progress=progress)
    rd.write_final(results.final_record(run.metrics, num_params=num_params, num_train=len(y), num_test=len(yt),
                                        **results.machine_record(t0, device, cfg.seed, optimizer)))
