"""Training, in the pytorch/examples shape: plain functions with explicit arguments, and the one loop, :func:`fit`.

Read top to bottom: the device and optimizer helpers; :func:`evaluate` (score a model on a loader); the learning
rate :class:`Schedule` (constant, :class:`Cosine` for 000, :class:`Plateau` for 004); :func:`standard_update` (one
step on a loss; 003 brings its own update); :class:`Progress` (where a run is) and its :class:`Checkpoint`; then
:func:`fit`, which counts optimizer steps, evaluates on :class:`Loop`'s schedule, checkpoints atomically at each
evaluation and resumes from the checkpoint. Every epoch reseeds the global RNG (dropout) and the loader's shuffle
from ``(seed, epoch)``, so a run interrupted and resumed gives exactly the numbers of an uninterrupted one on the
same device and threads.
"""
from __future__ import annotations

import contextlib
import ctypes
import io
import os
import platform
import math
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm  # plain text bar: renders in terminals, papermill output and JupyterLab alike

from .results import atomic_write_bytes

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
LossParts = Callable[[nn.Module, torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]  # "loss" is minimized
Update = Callable[[torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]
OPTIMIZERS = ("adam", "sgd", "rmsprop", "adadelta", "rmsprop_slim")


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` picks cuda > mps > cpu; anything else must be available or it raises."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but CUDA is not available here; use device='auto' or 'cpu'")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device {device!r} asked for, but this machine has {torch.cuda.device_count()} GPU(s)")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {device!r} asked for, but MPS is not available here; use device='auto' or 'cpu'")
    return dev


def device_name(device: torch.device) -> str:
    """The GPU's or CPU's model name, for the record of a run."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:  # platform.processor() is empty on most Linux builds
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def keep_freed_memory() -> bool:
    """Have glibc's malloc keep freed memory for the next tensor instead of handing it back to the OS.

    By default glibc serves large blocks (over 128 KB, rising to 32 MB) by mmap and unmaps them on free, so
    every training step faults its activations and gradients back in page by page, each page zeroed by the
    kernel: on a 2-core CPU that was 30-40 % of a step of the 002 CNN and 13-20 % of 004's AlexNet (its
    64 MB FC gradient). Without mmap and trimming, freed blocks stay in the heap and the next step reuses
    them; the process keeps its peak memory. Process-wide; a no-op (False) where the C library is not glibc.
    """
    if platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)
    m_trim_threshold, m_mmap_max = -1, -4  # glibc's malloc.h
    return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 2**31 - 1))


def prepare_model(model: nn.Module, device: torch.device) -> nn.Module:
    """Move ``model`` to ``device`` in channels_last layout; on a CPU, also :func:`keep_freed_memory`.

    channels_last lets oneDNN (CPU) and cuDNN (GPU) pick their fastest conv kernels: the 002 CNN
    trains 15-50% faster on a 2-core CPU with it. Batches must match: TensorLoader(channels_last=True).
    """
    if device.type == "cpu":
        keep_freed_memory()
    return model.to(device, memory_format=torch.channels_last)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def set_threads_from_env() -> None:
    """Honour ``HWR_NUM_THREADS`` (set by hwr-sweep so parallel workers do not oversubscribe cores)."""
    n = os.environ.get("HWR_NUM_THREADS")
    if n:
        torch.set_num_threads(int(n))


# devices with torch's fused (one kernel for all parameters) Adam and SGD; torch 2.13 has no fused RMSprop/Adadelta
FUSED_DEVICES = ("cpu", "cuda")


def _fusable(params: list) -> bool:
    """Whether torch's fused kernels take these parameters (plain tensors, all floating point on a fused device)."""
    return bool(params) and all(isinstance(p, torch.Tensor) and p.is_floating_point()
                                and p.device.type in FUSED_DEVICES for p in params)


def make_optimizer(name: str, params: Iterable[nn.Parameter], lr: float, weight_decay: float = 0.0,
                   momentum: float = 0.9) -> torch.optim.Optimizer:
    """Optimizers by name. ``rmsprop`` uses Keras' defaults (rho 0.9, eps 1e-7), as the 001 blog ran it;
    ``momentum`` is SGD's (Keras' SGD default: 0).

    Adam and SGD use torch's fused kernels where the parameters allow it: the same update, one pass over
    all parameters instead of a few ops per tensor (on a 2-core CPU Adam's step for the 21.6 M parameters
    of 004's AlexNet takes 18 ms instead of 220 ms). They round differently from the per-tensor loop, by
    about 1e-8 per step; runs stay bitwise reproducible (``tests/test_speed.py``).
    """
    params = list(params)
    # HWR_FUSED=0 keeps the per-tensor updates: how the records before the fused kernels were trained
    fused = {"fused": True} if _fusable(params) and os.environ.get("HWR_FUSED", "1") != "0" else {}
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, **fused)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, **fused)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=0.9, eps=1e-7, weight_decay=weight_decay)
    if name == "adadelta":
        return torch.optim.Adadelta(params, lr=lr, weight_decay=weight_decay)
    if name == "rmsprop_slim":
        # TF-Slim train_image_classifier's defaults: decay 0.9, momentum 0.9, epsilon 1.0 (TF adds it inside the
        # square root, torch outside: the same damping of small second moments, not the same numbers)
        return torch.optim.RMSprop(params, lr=lr, alpha=0.9, eps=1.0, momentum=0.9, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")


def autocast(device: torch.device):
    """bf16 autocast on CUDA (same range as fp32, no loss scaling needed); nothing elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def evaluate(model: nn.Module, loader, device: torch.device, loss_fn: LossFn = F.cross_entropy,
             topk: int | None = None) -> dict[str, float]:
    """Mean loss and accuracy of ``model`` over ``loader``; with ``topk``, also ``top{k}`` accuracy."""
    model.eval()
    loss_sum, correct, in_topk, seen = 0.0, 0, 0, 0
    for x, y in loader:
        with autocast(device):
            out = model(x)
        loss_sum += loss_fn(out.float(), y).item() * len(y)
        correct += (out.argmax(1) == y).sum().item()
        if topk:
            k = min(topk, out.shape[1])
            in_topk += (out.topk(k, dim=1).indices == y[:, None]).any(1).sum().item()
        seen += len(y)
    return {"loss": loss_sum / seen, "acc": correct / seen, **({f"top{topk}": in_topk / seen} if topk else {})}


class Schedule:
    """The learning rate over a run: constant (this base), a function of the step (:class:`Cosine`), or decided by
    the validation loss (:class:`Plateau`). The loop asks :meth:`lr` before every update, tells :meth:`after_eval`
    each evaluation, stops when :attr:`stopped` and calls :meth:`finish` at the end; the checkpoint keeps
    :meth:`state_dict`, so a resumed run takes the same decisions as an uninterrupted one."""
    stopped: bool = False

    def lr(self, step: int) -> float | None:
        """The learning rate of update ``step`` (0-based); None leaves the optimizer's as it is."""
        return None

    def after_eval(self, row: dict[str, Any], evals: int, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        """After the ``evals``-th evaluation of a trained model (1-based), whose numbers are ``row``."""

    def finish(self, model: nn.Module) -> None:
        """At the end of training."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


@dataclass
class Cosine(Schedule):
    """``lr`` annealed to 0 along half a cosine over ``num_steps``, after a linear warm-up over ``warmup`` of them."""
    base_lr: float
    num_steps: int
    warmup: float = 0.02

    def lr(self, step: int) -> float:
        warm = max(1, round(self.warmup * self.num_steps))
        if step < warm:
            return self.base_lr * (step + 1) / warm
        return 0.5 * self.base_lr * (1 + math.cos(math.pi * (step - warm) / max(1, self.num_steps - warm)))


@dataclass
class Plateau(Schedule):
    """Keras' ``ReduceLROnPlateau(factor, patience)`` + ``EarlyStopping(patience, restore_best_weights=True)``.

    Both watch the validation loss; an epoch improves when its loss is below the best so far (any decrease:
    EarlyStopping's default; ReduceLROnPlateau's asks for 1e-4, which MNIST losses rarely sit within). After
    ``lr_patience`` epochs without improvement the learning rate is multiplied by ``factor`` and that count
    starts again; after ``stop_patience`` epochs without improvement training stops. At the end the model
    gets the weights of its best epoch back.
    """
    lr_patience: int = 2
    stop_patience: int = 6
    factor: float = 0.5
    best_loss: float = math.inf
    best_epoch: int = 0
    since_best: int = 0    # epochs since the best one (early stopping)
    since_cut: int = 0     # epochs without improvement since the last lr cut (plateau)
    stopped: bool = False
    best_state: dict[str, torch.Tensor] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.lr_patience < 1 or self.stop_patience < 1:
            raise ValueError(f"lr_patience and stop_patience must be >= 1, got {self.lr_patience}, "
                             f"{self.stop_patience}")
        if not 0 < self.factor < 1:
            raise ValueError(f"factor must be in (0, 1), got {self.factor}")

    def after_eval(self, row: dict[str, Any], evals: int, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        """After epoch ``evals``: keep the best weights, cut the lr or stop."""
        if "val_loss" not in row:
            raise ValueError("Plateau watches the validation loss: the evaluation must return val_loss "
                             "(score a validation loader named 'val')")
        if row["val_loss"] < self.best_loss:
            self.best_loss, self.best_epoch, self.since_best, self.since_cut = row["val_loss"], evals, 0, 0
            self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            return
        self.since_best += 1
        self.since_cut += 1
        if self.since_cut >= self.lr_patience:
            for group in optimizer.param_groups:
                group["lr"] *= self.factor
            self.since_cut = 0
        self.stopped = self.since_best >= self.stop_patience

    def finish(self, model: nn.Module) -> None:
        if self.best_state is not None:
            model.load_state_dict(self.best_state)

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            setattr(self, k, v)


def classification_loss(loss_fn: LossFn = F.cross_entropy) -> LossParts:
    """``(model, x, y) -> {"loss", "acc"}``: the loss to minimize and the batch accuracy (detached)."""
    def parts(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        out = model(x)
        return {"loss": loss_fn(out, y), "acc": (out.argmax(1) == y).float().mean().detach()}
    return parts


def standard_update(model: nn.Module, optimizer: torch.optim.Optimizer, device: torch.device,
                    loss_parts: LossParts | None = None) -> Update:
    """One optimizer step on ``parts["loss"]`` (default: :func:`classification_loss`); returns every part, detached,
    still on the device (no sync)."""
    loss_parts = loss_parts or classification_loss()

    def update(x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        model.train()
        with autocast(device):
            parts = loss_parts(model, x, y)
        optimizer.zero_grad(set_to_none=True)
        parts["loss"].backward()
        optimizer.step()
        return {k: v.detach().float() for k, v in parts.items()}
    return update


def score(model: nn.Module, loaders: dict[str, Any], device: torch.device, topk: int | None = None) -> dict[str, float]:
    """``{name}_loss``, ``{name}_acc`` (and ``{name}_top{k}``) of ``model`` on each named loader."""
    row = {}
    for name, loader in loaders.items():
        r = evaluate(model, loader, device, topk=topk)
        row.update({f"{name}_{k}": v for k, v in r.items()})
    return row


def every_epoch(step: int, per_epoch: int) -> bool:
    """The default evaluation schedule: after each whole epoch (never before training)."""
    return step > 0 and step % per_epoch == 0


class Window:
    """Sample-weighted sums of an update's parts since the last reset; a part may be a vector (grouped replicas)."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.n = 0

    def add(self, parts: dict[str, torch.Tensor], n: int) -> None:
        for k, v in parts.items():
            self.sums[k] = self.sums.get(k, 0) + v * n
        self.n += n

    def take(self) -> dict[str, Any]:
        """The means, then empty (one device sync for all parts, at evaluation or log time only)."""
        means = {k: (v / self.n).tolist() for k, v in self.sums.items()} if self.n else {}
        self.sums, self.n = {}, 0
        return means

    def check_finite(self, step: int, desc: str) -> None:
        loss = self.sums.get("loss")
        if loss is not None and not bool(torch.isfinite(torch.as_tensor(loss)).all()):
            raise NonFiniteLoss(f"{desc or 'training'}: the training loss is not finite by step {step}; the run stops "
                                "here and is not a result. Lower the learning rate (or check the inputs) and rerun.")


@dataclass
class Progress:
    """Where a run is: updates and images so far, training seconds (evaluation excluded), the evaluation rows
    (metrics.csv) and the logged rows (steps.csv). The checkpoint saves it; everything else is rebuilt."""
    metrics: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    step: int = 0
    samples: int = 0
    seconds: float = 0.0
    evaluated: Window = field(default_factory=Window, repr=False)
    logged: Window = field(default_factory=Window, repr=False)

    def count(self, parts: dict[str, torch.Tensor], n: int) -> None:
        """One update of ``n`` images whose parts are ``parts``."""
        self.step += 1
        self.samples += n
        self.evaluated.add(parts, n)
        self.logged.add(parts, n)

    def epoch(self, per_epoch: int) -> int | float:
        epoch = self.step / per_epoch
        return int(epoch) if epoch.is_integer() else epoch


class NonFiniteLoss(FloatingPointError):
    """Training produced a NaN or infinite loss: the run stops and is never a result."""


@dataclass
class Checkpoint:
    """A run's model, optimizer, schedule and :class:`Progress` in one file, rewritten atomically at each evaluation.

    ``where`` (device and its model, the CPU's kernel instruction set, threads, optimizer kernels) is saved too: a
    run resumes only where it started, since another setup computes other last digits and the run would mix the
    numbers of two.
    """
    path: Path
    where: dict[str, Any]

    def save(self, model: nn.Module, optimizer: torch.optim.Optimizer, schedule: Schedule, run: Progress) -> None:
        buf = io.BytesIO()
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
                    "metrics": run.metrics, "steps": run.steps, "where": self.where}, buf)
        atomic_write_bytes(self.path, buf.getvalue())

    def restore(self, model: nn.Module, optimizer: torch.optim.Optimizer, schedule: Schedule,
                device: torch.device) -> Progress:
        """The saved progress, model, optimizer and schedule; a fresh :class:`Progress` when there is no file."""
        if not self.path.exists():
            return Progress()
        state = load_checkpoint(self.path, device)
        saved = state.get("where", {**self.where, "fused": False})  # checkpoints before 'where': per-tensor updates
        # fields a checkpoint predates (device_name, cpu_capability) are not held against it
        if any(self.where.get(k) != v for k, v in saved.items()):
            raise RuntimeError(f"{self.path} was written with {saved}, this process has {self.where}: resuming would "
                               "mix numbers of two setups. Resume on the same device model and CPU instruction "
                               "set, with the same HWR_NUM_THREADS and optimizer kernels (HWR_FUSED=0 for per-tensor "
                               "updates), or delete the checkpoint to restart")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state.get("schedule", state.get("plateau")) or {})  # 'plateau': the older name
        metrics, steps = state.get("metrics", state.get("evals")), state.get("steps", state.get("logs"))
        last = metrics[-1] if metrics else {"step": 0, "samples": 0, "seconds": 0.0}
        return Progress(metrics, steps, last["step"], last["samples"], last["seconds"])


def where_trained(device: torch.device, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """What a run's numbers depend on beyond its seed: device, its model, the CPU kernels' instruction set (another
    machine's AVX2 and AVX-512 kernels round differently), thread count and optimizer kernels."""
    return {"device": device.type, "device_name": device_name(device), "cpu_capability": cpu_capability(device),
            "num_threads": torch.get_num_threads(), "fused": bool(optimizer.defaults.get("fused"))}


def cpu_capability(device: torch.device) -> str | None:
    """The instruction set torch's CPU kernels dispatch to (``AVX2``, ``AVX512``, ...); None off the CPU."""
    return torch.backends.cpu.get_cpu_capability() if device.type == "cpu" else None


def load_checkpoint(path: Path, device: torch.device) -> dict[str, Any]:
    """A checkpoint's tensors and plain values (``weights_only``: loading one from a shared results folder runs no
    code); a damaged or foreign file stops with one line naming it and the fix."""
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # noqa: BLE001 (torch raises several kinds for a cut or foreign file)
        raise RuntimeError(f"{path}: not a checkpoint this code can resume ({type(e).__name__}: {str(e).splitlines()[0]}"
                           f"). Delete it to train the run from the start") from None


def epoch_batches(loader, step: int, seed: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The rest of the epoch that update ``step`` falls in: the global RNG (dropout) and the loader's order are seeded
    from ``(seed, epoch)``, and a mid-epoch resume replays the loader (and its augmentation RNG) to ``step``."""
    epoch, skip = divmod(step, len(loader))
    torch.manual_seed(seed * 100_003 + epoch)
    loader.set_epoch(epoch)
    batches = iter(loader)
    for _ in range(skip):
        next(batches)
    return batches


@dataclass
class Loop:
    """How :func:`fit` trains, beyond the model, data and optimizer: the update, the evaluation and its schedule,
    logging, checkpoint and reporting.

    ``update(x, y) -> parts`` performs one step (:func:`standard_update`, or 003's grouped replicas' own);
    ``evaluate(model) -> {"test_acc": ...}`` scores the model on ``eval_at(step, steps_per_epoch)`` (the last step is
    always evaluated, step 0 when ``eval_at`` says so); ``trace(model)`` adds values to every evaluation and log
    row (000's shortcut scalars); ``log_every`` also keeps the parts' means every this many updates;
    ``on_eval(progress)`` runs after each evaluation (the run folder writes its CSVs).
    """
    update: Update
    evaluate: Callable[[nn.Module], dict[str, Any]]
    eval_at: Callable[[int, int], bool] = every_epoch
    trace: Callable[[nn.Module], dict[str, float]] = lambda model: {}
    log_every: int | None = None
    on_eval: Callable[[Progress], None] = lambda run: None
    desc: str = "train"


def record_evaluation(run: Progress, loop: Loop, model: nn.Module, optimizer: torch.optim.Optimizer,
                      per_epoch: int) -> dict[str, Any]:
    """Append the evaluation row of where ``run`` is: ``epoch`` (updates / updates per epoch), ``step``, ``samples``,
    ``lr``, ``seconds`` (training time so far, evaluation excluded), ``train_<part>`` (sample-weighted mean since the
    previous evaluation), then ``loop.evaluate``'s and ``loop.trace``'s values."""
    train = {f"train_{k}": v for k, v in run.evaluated.take().items()}
    row = {"epoch": run.epoch(per_epoch), "step": run.step, "samples": run.samples,
           "lr": optimizer.param_groups[0]["lr"], "seconds": run.seconds, **train, **loop.evaluate(model),
           **loop.trace(model)}
    run.metrics.append(row)
    return row


def fit(model: nn.Module, loader, optimizer: torch.optim.Optimizer, device: torch.device, loop: Loop, *,
        num_steps: int, schedule: Schedule | None = None, checkpoint: str | os.PathLike | None = None, seed: int = 0,
        progress: bool = True) -> Progress:
    """The one training loop: ``num_steps`` updates of ``loop.update`` over ``loader``, evaluated as ``loop`` says,
    the learning rate from ``schedule`` (constant by default); returns the run's :class:`Progress`.

    Checkpointed at each evaluation when ``checkpoint`` is a path, and resumed from it, so an interrupted run equals
    an uninterrupted one on the same device and threads. Rows: :func:`record_evaluation`. A non-finite loss raises
    :class:`NonFiniteLoss` naming the update.
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    schedule, per_epoch = schedule or Schedule(), len(loader)
    ckpt = Checkpoint(Path(checkpoint), where_trained(device, optimizer)) if checkpoint else None
    run = ckpt.restore(model, optimizer, schedule, device) if ckpt else Progress()
    # stdout, not stderr: JupyterLab draws stderr in a pink band, which a progress bar is not
    bar = tqdm(total=num_steps, initial=run.step, desc=loop.desc, unit="step", disable=not progress, file=sys.stdout,
               mininterval=5, dynamic_ncols=True)

    def evaluation() -> None:
        run.evaluated.check_finite(run.step, loop.desc)
        row = record_evaluation(run, loop, model, optimizer, per_epoch)
        if run.step > 0:
            schedule.after_eval(row, sum(r["step"] > 0 for r in run.metrics), model, optimizer)
        if ckpt:
            ckpt.save(model, optimizer, schedule, run)
        loop.on_eval(run)
        bar.set_postfix({k: f"{v:.4f}" for k, v in row.items()  # shown at the bar's next refresh
                         if k in ("train_loss", "test_acc", "val_acc") and isinstance(v, float)}, refresh=False)

    if not run.metrics and loop.eval_at(0, per_epoch):
        evaluation()
    while run.step < num_steps and not schedule.stopped:
        batches = epoch_batches(loader, run.step, seed)
        clock = time.perf_counter()
        for x, y in batches:
            update(run, loop, model, optimizer, schedule, x, y, num_steps)
            bar.update()
            if loop.eval_at(run.step, per_epoch) or run.step == num_steps:
                run.seconds += elapsed(clock, device)
                evaluation()
                clock = time.perf_counter()
                if schedule.stopped or run.step == num_steps:
                    break
        else:  # the epoch ended between evaluations
            run.seconds += elapsed(clock, device)
    bar.close()
    schedule.finish(model)
    return run


def update(run: Progress, loop: Loop, model: nn.Module, optimizer: torch.optim.Optimizer, schedule: Schedule,
           x: torch.Tensor, y: torch.Tensor, num_steps: int) -> None:
    """One update at the schedule's learning rate, counted in ``run``, and its log row when one is due."""
    lr = schedule.lr(run.step)
    if lr is not None:
        for group in optimizer.param_groups:
            group["lr"] = lr
    run.count(loop.update(x, y), y.shape[-1])
    if loop.log_every and (run.step % loop.log_every == 0 or run.step == num_steps):
        run.steps.append({"step": run.step, "lr": optimizer.param_groups[0]["lr"], **run.logged.take(),
                          **loop.trace(model)})


def elapsed(since: float, device: torch.device) -> float:
    """Seconds since ``since``, once the device has finished the work queued (CUDA runs asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - since


def train_epoch(model: nn.Module, loader, optimizer: torch.optim.Optimizer, device: torch.device,
                loss_fn: LossFn = F.cross_entropy) -> dict[str, float]:
    """One pass over ``loader`` by :func:`fit` (what the benchmarks time); the pass's mean loss and accuracy."""
    loop = Loop(standard_update(model, optimizer, device, classification_loss(loss_fn)), evaluate=lambda m: {})
    run = fit(model, loader, optimizer, device, loop, num_steps=len(loader), seed=getattr(loader, "epoch", 0),
              progress=False)
    return {k: v for k, v in run.metrics[-1].items() if k.startswith("train_")}

