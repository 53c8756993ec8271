"""Training: plain functions with explicit arguments (pytorch/examples style).

``fit`` trains for a number of epochs, evaluates after each, checkpoints after each
(atomically) and resumes from the checkpoint when one exists. Every epoch reseeds
the global RNG (dropout) and the loader's shuffle from ``(seed, epoch)``, so a run
interrupted and resumed gives exactly the numbers of an uninterrupted one on the
same device.
"""
from __future__ import annotations

import contextlib
import ctypes
import io
import os
import platform
import random
import math
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
OPTIMIZERS = ("adam", "sgd", "rmsprop", "adadelta")


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


def make_optimizer(name: str, params: Iterable[nn.Parameter], lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """Optimizers by name. ``rmsprop`` uses Keras' defaults (rho 0.9, eps 1e-7), as the 001 blog ran it.

    Adam and SGD use torch's fused kernels where the parameters allow it: the same update, one pass over
    all parameters instead of a few ops per tensor (on a 2-core CPU Adam's step for the 21.6 M parameters
    of 004's AlexNet takes 18 ms instead of 220 ms). They round differently from the per-tensor loop, by
    about 1e-8 per step; runs stay bitwise reproducible (``tests/test_speed.py``).
    """
    params = list(params)
    fused = {"fused": True} if _fusable(params) else {}
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, **fused)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay, **fused)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=0.9, eps=1e-7, weight_decay=weight_decay)
    if name == "adadelta":
        return torch.optim.Adadelta(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")


def _autocast(device: torch.device):
    # bf16 on CUDA: same range as fp32, no loss scaling needed
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train_epoch(model: nn.Module, loader, optimizer: torch.optim.Optimizer, device: torch.device,
                loss_fn: LossFn = F.cross_entropy, bar: tqdm | None = None) -> dict[str, float]:
    """One pass over ``loader``; returns mean loss and accuracy over the samples seen. ``bar`` advances per batch."""
    model.train()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    for x, y in loader:
        with _autocast(device):
            out = model(x)
            loss = loss_fn(out, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        # accumulate on the device: a .item() per batch would sync the GPU every step
        loss_sum += loss.detach() * len(y)
        correct += (out.argmax(1) == y).sum()
        seen += len(y)
        if bar is not None:
            bar.update()
    return {"train_loss": loss_sum.item() / seen, "train_acc": correct.item() / seen}


@torch.no_grad()
def evaluate(model: nn.Module, loader, device: torch.device, loss_fn: LossFn = F.cross_entropy,
             topk: int | None = None) -> dict[str, float]:
    """Mean loss and accuracy of ``model`` over ``loader``; with ``topk``, also ``top{k}`` accuracy."""
    model.eval()
    loss_sum, correct, in_topk, seen = 0.0, 0, 0, 0
    for x, y in loader:
        with _autocast(device):
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


def _save_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, history: list[dict],
                     plateau: Plateau | None = None) -> None:
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "history": history,
                "plateau": plateau.state_dict() if plateau else None}, buf)
    atomic_write_bytes(path, buf.getvalue())


def fit(model: nn.Module, train_loader, test_loader, optimizer: torch.optim.Optimizer, num_epochs: int,
        device: torch.device, seed: int = 0, loss_fn: LossFn = F.cross_entropy,
        checkpoint: str | os.PathLike | None = None, on_epoch: Callable[[list[dict]], None] | None = None,
        progress: bool = True, desc: str = "", val_loader=None, plateau: Plateau | None = None) -> list[dict[str, Any]]:
    """Train ``model`` for ``num_epochs``; return the per-epoch history.

    Each history row: epoch, train_loss, train_acc, [val_loss, val_acc,] test_loss, test_acc, lr (the
    epoch's), seconds (training wall time of the epoch, evaluation excluded). If ``checkpoint`` exists,
    training resumes after its last epoch; it is rewritten after every epoch. ``on_epoch(history)`` is
    called after each epoch (the results store writes metrics.csv there). With ``plateau`` (which needs
    ``val_loader``) the validation loss cuts the lr, stops training early, and the model ends with the
    weights of its best validation epoch.
    """
    if num_epochs < 1:
        raise ValueError(f"num_epochs must be >= 1, got {num_epochs}")
    if plateau is not None and val_loader is None:
        raise ValueError("plateau watches the validation loss: pass val_loader too")
    history: list[dict[str, Any]] = []
    ckpt = Path(checkpoint) if checkpoint else None
    if ckpt and ckpt.exists():
        state = torch.load(ckpt, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        history = state["history"]
        if plateau is not None and state.get("plateau"):
            plateau.load_state_dict(state["plateau"])
    # one bar per run, over batches of all epochs: a single readable line in a notebook
    steps = len(train_loader)
    bar = tqdm(total=num_epochs * steps, initial=len(history) * steps, desc=desc or "train", unit="batch",
               disable=not progress, mininterval=5, dynamic_ncols=True)
    for epoch in range(len(history), num_epochs):
        if plateau is not None and plateau.stopped:
            break
        torch.manual_seed(seed * 100_003 + epoch)  # dropout and the like: replayable per epoch
        train_loader.set_epoch(epoch)
        t0 = time.perf_counter()
        row = train_epoch(model, train_loader, optimizer, device, loss_fn, bar)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        val = evaluate(model, val_loader, device, loss_fn) if val_loader is not None else None
        test = evaluate(model, test_loader, device, loss_fn)
        history.append({"epoch": epoch + 1, **row, **({"val_loss": val["loss"], "val_acc": val["acc"]} if val else {}),
                        "test_loss": test["loss"], "test_acc": test["acc"],
                        "lr": optimizer.param_groups[0]["lr"], "seconds": seconds})
        if plateau is not None:
            plateau.step(val["loss"], epoch + 1, model, optimizer)
        bar.set_postfix(epoch=f"{epoch + 1}/{num_epochs}", loss=f"{row['train_loss']:.4f}",
                        test_acc=f"{test['acc']:.4f}")
        if ckpt:
            _save_checkpoint(ckpt, model, optimizer, history, plateau)
        if on_epoch:
            on_epoch(history)
    bar.close()
    if plateau is not None:
        plateau.restore_best(model)
    return history
