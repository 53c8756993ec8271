"""Training: plain functions with explicit arguments (pytorch/examples style), and the one loop, ``fit``.

``fit`` counts optimizer steps; each paper's protocol is an option of it: the evaluation schedule
(every epoch, or 003's every 10 updates early on), the loss (cross-entropy, 000's named parts, 003's MSE
with grouped replicas through its own ``update``), the learning rate (fixed, 000's cosine ``lr_at``, 004's
:class:`Plateau`). It checkpoints atomically at each evaluation and resumes from the checkpoint. Every
epoch reseeds the global RNG (dropout) and the loader's shuffle from ``(seed, epoch)``, so a run
interrupted and resumed gives exactly the numbers of an uninterrupted one on the same device and threads.
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
from typing import Any, Callable, Iterable

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


def train_epoch(model: nn.Module, loader, optimizer: torch.optim.Optimizer, device: torch.device,
                loss_fn: LossFn = F.cross_entropy) -> dict[str, float]:
    """One pass over ``loader`` by :func:`fit` (what the benchmarks time); the pass's mean loss and accuracy."""
    evals, _ = fit(model, loader, optimizer, device, num_steps=len(loader), evaluate_fn=lambda m: {},
                   loss_parts=classification_loss(loss_fn), seed=getattr(loader, "epoch", 0), progress=False)
    return {k: v for k, v in evals[-1].items() if k.startswith("train_")}


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


@dataclass
class Plateau:
    """Keras' ``ReduceLROnPlateau(factor, patience)`` + ``EarlyStopping(patience, restore_best_weights=True)``.

    Both watch the validation loss; an epoch improves when its loss is below the best so far (any decrease:
    EarlyStopping's default; ReduceLROnPlateau's asks for 1e-4, which MNIST losses rarely sit within). After
    ``lr_patience`` epochs without improvement the learning rate is multiplied by ``factor`` and that count
    starts again; after ``stop_patience`` epochs without improvement training stops. At the end the model
    gets the weights of its best epoch back. Everything here goes into the checkpoint, so a resumed run
    takes the same decisions as an uninterrupted one.
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

    def step(self, val_loss: float, epoch: int, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        """After epoch ``epoch`` (1-based): keep the best weights, cut the lr or stop."""
        if val_loss < self.best_loss:
            self.best_loss, self.best_epoch, self.since_best, self.since_cut = val_loss, epoch, 0, 0
            self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            return
        self.since_best += 1
        self.since_cut += 1
        if self.since_cut >= self.lr_patience:
            for group in optimizer.param_groups:
                group["lr"] *= self.factor
            self.since_cut = 0
        self.stopped = self.since_best >= self.stop_patience

    def restore_best(self, model: nn.Module) -> None:
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


def standard_update(model: nn.Module, optimizer: torch.optim.Optimizer, loss_parts: LossParts,
                    device: torch.device) -> Update:
    """One optimizer step on ``parts["loss"]``; returns every part, detached, still on the device (no sync)."""
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


def _window_means(sums: dict[str, torch.Tensor], n: int) -> dict[str, Any]:
    # one device sync for all parts, at evaluation or log time only; a part may be a vector (grouped replicas)
    return {k: (v / n).tolist() for k, v in sums.items()}


def save_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Model, optimizer and ``state`` (histories, schedule), written atomically."""
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), **state}, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: Path, device: torch.device) -> dict[str, Any]:
    """A checkpoint's tensors and plain values (``weights_only``: loading one from a shared results folder runs no
    code); a damaged or foreign file stops with one line naming it and the fix."""
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # noqa: BLE001 (torch raises several kinds for a cut or foreign file)
        raise RuntimeError(f"{path}: not a checkpoint this code can resume ({type(e).__name__}: {str(e).splitlines()[0]}"
                           f"). Delete it to train the run from the start") from None


class NonFiniteLoss(FloatingPointError):
    """Training produced a NaN or infinite loss: the run stops and is never a result."""


def fit(model: nn.Module, train_loader, optimizer: torch.optim.Optimizer, device: torch.device, *,
        num_steps: int, evaluate_fn: Callable[[nn.Module], dict[str, Any]], update: Update | None = None,
        loss_parts: LossParts | None = None, eval_at: Callable[[int, int], bool] = every_epoch,
        lr_at: Callable[[int], float] | None = None, plateau: Plateau | None = None,
        trace: Callable[[nn.Module], dict[str, float]] | None = None, log_every: int | None = None,
        checkpoint: str | os.PathLike | None = None,
        on_eval: Callable[[list[dict], list[dict]], None] | None = None, seed: int = 0, progress: bool = True,
        desc: str = "") -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The one training loop: ``num_steps`` updates, scored by ``evaluate_fn`` on the ``eval_at`` schedule.

    Args:
        update: ``(x, y) -> parts`` performs one step (default: :func:`standard_update` of ``loss_parts``,
            itself defaulting to cross-entropy); 003's grouped replicas bring their own.
        evaluate_fn: ``model -> {"test_acc": ..., ...}``, called at each evaluation (the model in eval mode is
            its business).
        eval_at: ``(step, steps_per_epoch) -> bool``; the last step is always evaluated, step 0 (before
            training) when it says so.
        lr_at: learning rate of a step (0-based); ``plateau`` (Keras' ReduceLROnPlateau + EarlyStopping) watches
            ``val_loss`` at each evaluation instead and restores the best weights at the end.
        trace: values of the model added to every evaluation and log row (000's shortcut scalars).
        log_every: also keep a row of the parts' means every this many steps (the second list returned).
        checkpoint: rewritten at each evaluation; training resumes from it, replaying a mid-epoch loader to
            where it stopped, so a resumed run equals an uninterrupted one on the same device and threads.
        on_eval: called with ``(evals, logs)`` after each evaluation (the run folder writes its CSVs).

    Evaluation rows: ``epoch`` (steps / steps per epoch), ``step``, ``samples``, ``lr``, ``seconds`` (training
    wall time so far, evaluation excluded), ``train_<part>`` (sample-weighted mean since the previous evaluation),
    then what ``evaluate_fn`` and ``trace`` return. Each epoch reseeds the global RNG and the loader's order from
    ``(seed, epoch)``. A non-finite loss raises :class:`NonFiniteLoss` naming the step.
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    if plateau is not None and lr_at is not None:
        raise ValueError("give lr_at or plateau, not both")
    update = update or standard_update(model, optimizer, loss_parts or classification_loss(), device)
    trace = trace or (lambda m: {})
    per_epoch = len(train_loader)
    evals, logs = [], []
    ckpt = Path(checkpoint) if checkpoint else None
    where = {"device": device.type, "num_threads": torch.get_num_threads(),
             "fused": bool(optimizer.defaults.get("fused"))}
    if ckpt and ckpt.exists():
        state = load_checkpoint(ckpt, device)
        saved = state.get("where", {**where, "fused": False})  # checkpoints before 'where' were per-tensor updates
        if saved != where:
            raise RuntimeError(f"{ckpt} was written with {saved}, this process has {where}: resuming would mix "
                               "numbers of two setups. Resume with the same device, HWR_NUM_THREADS and optimizer "
                               "kernels (HWR_FUSED=0 for per-tensor updates), or delete the checkpoint to restart")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        evals, logs = state["evals"], state["logs"]
        if plateau is not None:
            plateau.load_state_dict(state["plateau"])
    step = evals[-1]["step"] if evals else 0
    seconds, samples = (evals[-1]["seconds"], evals[-1]["samples"]) if evals else (0.0, 0)
    eval_sums: dict[str, torch.Tensor] = {}
    log_sums: dict[str, torch.Tensor] = {}
    eval_n = log_n = 0

    def record_eval() -> None:
        nonlocal eval_sums, eval_n
        train = {f"train_{k}": v for k, v in _window_means(eval_sums, eval_n).items()} if eval_n else {}
        epoch = step / per_epoch
        evals.append({"epoch": int(epoch) if epoch.is_integer() else epoch, "step": step, "samples": samples,
                      "lr": optimizer.param_groups[0]["lr"], "seconds": seconds, **train, **evaluate_fn(model),
                      **trace(model)})
        eval_sums, eval_n = {}, 0
        if plateau is not None and "val_loss" not in evals[-1]:
            raise ValueError("plateau watches the validation loss: evaluate_fn must return val_loss "
                             "(score a validation loader named 'val')")
        if plateau is not None and step > 0:
            plateau.step(evals[-1]["val_loss"], len([e for e in evals if e["step"] > 0]), model, optimizer)
        if ckpt:
            save_checkpoint(ckpt, model, optimizer, {"evals": evals, "logs": logs, "where": where,
                                                     "plateau": plateau.state_dict() if plateau else None})
        if on_eval:
            on_eval(evals, logs)

    if not evals and eval_at(0, per_epoch):
        record_eval()
    # stdout, not stderr: JupyterLab draws stderr in a pink band, which a progress bar is not
    bar = tqdm(total=num_steps, initial=step, desc=desc or "train", unit="step", disable=not progress, file=sys.stdout,
               mininterval=5, dynamic_ncols=True)
    while step < num_steps and not (plateau is not None and plateau.stopped):
        epoch, skip = divmod(step, per_epoch)
        torch.manual_seed(seed * 100_003 + epoch)  # dropout and the like: replayable per epoch
        train_loader.set_epoch(epoch)
        batches = iter(train_loader)
        for _ in range(skip):  # a mid-epoch resume: replay the loader (and its augmentation RNG) to here
            next(batches)
        t0 = time.perf_counter()
        for x, y in batches:
            if lr_at is not None:
                for group in optimizer.param_groups:
                    group["lr"] = lr_at(step)
            parts = update(x, y)
            n = y.shape[-1]
            step += 1
            samples += n
            for sums in (eval_sums, log_sums):
                for k, v in parts.items():
                    sums[k] = sums.get(k, 0) + v * n
            eval_n += n
            log_n += n
            bar.update()
            if log_every and (step % log_every == 0 or step == num_steps):
                logs.append({"step": step, "lr": optimizer.param_groups[0]["lr"], **_window_means(log_sums, log_n),
                             **trace(model)})
                log_sums, log_n = {}, 0
            if eval_at(step, per_epoch) or step == num_steps:
                if device.type == "cuda":
                    torch.cuda.synchronize()
                seconds += time.perf_counter() - t0
                _check_finite(eval_sums, step, desc)
                record_eval()
                bar.set_postfix({k: f"{v:.4f}" for k, v in evals[-1].items()  # shown at the bar's next refresh
                                 if k in ("train_loss", "test_acc", "val_acc") and isinstance(v, float)}, refresh=False)
                t0 = time.perf_counter()
                if plateau is not None and plateau.stopped:
                    break
            if step == num_steps:
                break
    bar.close()
    if plateau is not None:
        plateau.restore_best(model)
    return evals, logs


def _check_finite(sums: dict[str, torch.Tensor], step: int, desc: str) -> None:
    loss = sums.get("loss")
    if loss is not None and not bool(torch.isfinite(torch.as_tensor(loss)).all()):
        raise NonFiniteLoss(f"{desc or 'training'}: the training loss is not finite by step {step}; the run stops "
                            "here and is not a result. Lower the learning rate (or check the inputs) and rerun.")
