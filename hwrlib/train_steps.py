"""Step-based training for a loss made of named parts (paper 000 counts steps and plots each part).

``fit_steps`` is :func:`hwrlib.train.fit` by optimizer steps instead of epochs: the loss function
returns a dict of tensors (``"total"`` is minimized, every part is logged), the learning rate is a
function of the step, a log row is kept every ``log_every`` steps and the model is scored on every
evaluation loader (loss, top-1, top-k) every ``eval_every`` steps. The checkpoint is rewritten at
each evaluation and a rerun resumes from it. As in ``fit``, every epoch reseeds the global RNG and
the loader's order from ``(seed, epoch)``; a resume in mid-epoch replays the loader up to the step
it stopped at, so a resumed run gives the numbers of an uninterrupted one on the same device.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn
from tqdm import tqdm

from .train import _autocast, _save_checkpoint, evaluate

LossParts = Callable[[nn.Module, torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]
Trace = Callable[[nn.Module], dict[str, float]]


def _resume(checkpoint: Path | None, model: nn.Module, optimizer: torch.optim.Optimizer,
            device: torch.device) -> tuple[list[dict], list[dict]]:
    if not (checkpoint and checkpoint.exists()):
        return [], []
    state = torch.load(checkpoint, map_location=device, weights_only=False)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    return state["history"]["evals"], state["history"]["steps"]


def _means(sums: dict[str, torch.Tensor], n: int) -> dict[str, float]:
    # one device sync for all parts, at log time only
    keys = list(sums)
    values = torch.stack([sums[k] for k in keys]).div(n).tolist() if keys else []
    return dict(zip(keys, values))


def _score(model: nn.Module, loaders: dict[str, Any], device: torch.device, topk: int) -> dict[str, float]:
    row = {}
    for name, loader in loaders.items():
        r = evaluate(model, loader, device, topk=topk)
        row.update({f"{name}_loss": r["loss"], f"{name}_acc": r["acc"], f"{name}_top{topk}": r[f"top{topk}"]})
    return row


def fit_steps(model: nn.Module, loss_parts: LossParts, train_loader, eval_loaders: dict[str, Any],
              optimizer: torch.optim.Optimizer, num_steps: int, device: torch.device, *, eval_every: int,
              log_every: int = 1, lr_at: Callable[[int], float] | None = None, seed: int = 0, topk: int = 5,
              trace: Trace | None = None, checkpoint: str | os.PathLike | None = None,
              on_eval: Callable[[list[dict], list[dict]], None] | None = None, progress: bool = True,
              desc: str = "") -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Train ``model`` for ``num_steps`` optimizer steps; return ``(evals, steps)`` row lists.

    Args:
        loss_parts: ``(model, x, y) -> {"total": ..., other parts}``, called in training mode.
        eval_loaders: name -> loader scored at each evaluation (``val``, ``test``): columns
            ``{name}_loss``, ``{name}_acc``, ``{name}_top{topk}``.
        eval_every: steps between evaluations (and checkpoints); the last step is always evaluated.
        log_every: steps per log row (mean of each part over them); must divide ``eval_every``.
        lr_at: learning rate of a step (0-based); None keeps the optimizer's.
        trace: extra values of the model logged in every row (the 000 networks' shortcut scalars).
        on_eval: called with ``(evals, steps)`` after each evaluation (the run folder writes its CSVs).

    Eval rows hold step, epoch, samples, lr, seconds (training wall time so far, evaluation excluded),
    ``train_<part>`` (mean since the previous evaluation), the scores and the trace.
    """
    if num_steps < 1 or eval_every < 1 or log_every < 1:
        raise ValueError(f"num_steps, eval_every and log_every must be >= 1, got {num_steps}, {eval_every}, {log_every}")
    if eval_every % log_every:
        raise ValueError(f"log_every ({log_every}) must divide eval_every ({eval_every}) so that checkpoints "
                         "fall on log rows")
    ckpt = Path(checkpoint) if checkpoint else None
    evals, steps = _resume(ckpt, model, optimizer, device)
    step = evals[-1]["step"] if evals else 0
    seconds, samples = (evals[-1]["seconds"], evals[-1]["samples"]) if evals else (0.0, 0)
    trace = trace or (lambda m: {})
    per_epoch = len(train_loader)
    log_sums: dict[str, torch.Tensor] = {}
    eval_sums: dict[str, torch.Tensor] = {}
    bar = tqdm(total=num_steps, initial=step, desc=desc or "train", unit="step", disable=not progress,
               mininterval=5, dynamic_ncols=True)
    while step < num_steps:
        epoch, skip = divmod(step, per_epoch)
        torch.manual_seed(seed * 100_003 + epoch)
        train_loader.set_epoch(epoch)
        batches = iter(train_loader)
        for _ in range(skip):  # a mid-epoch resume: replay the loader (and its augmentation RNG) to here
            next(batches)
        t0 = time.perf_counter()
        for x, y in batches:
            if lr_at is not None:
                for group in optimizer.param_groups:
                    group["lr"] = lr_at(step)
            model.train()
            with _autocast(device):
                parts = loss_parts(model, x, y)
            optimizer.zero_grad(set_to_none=True)
            parts["total"].backward()
            optimizer.step()
            step += 1
            samples += len(y)
            for sums in (log_sums, eval_sums):
                for k, v in parts.items():
                    sums[k] = sums.get(k, 0) + v.detach().float()
            bar.update()
            if step % log_every == 0 or step == num_steps:
                n = log_every if step % log_every == 0 else step % log_every
                steps.append({"step": step, "lr": optimizer.param_groups[0]["lr"], **_means(log_sums, n),
                              **trace(model)})
                log_sums.clear()
            if step % eval_every == 0 or step == num_steps:
                if device.type == "cuda":
                    torch.cuda.synchronize()
                seconds += time.perf_counter() - t0
                n = eval_every if step % eval_every == 0 else step % eval_every
                train = {f"train_{k}": v for k, v in _means(eval_sums, n).items()}
                eval_sums.clear()
                evals.append({"step": step, "epoch": step / per_epoch, "samples": samples,
                              "lr": optimizer.param_groups[0]["lr"], "seconds": seconds, **train,
                              **_score(model, eval_loaders, device, topk), **trace(model)})
                bar.set_postfix(loss=f"{train['train_total']:.3f}",
                                **{k: f"{v:.3f}" for k, v in evals[-1].items() if k.endswith("_acc")})
                if ckpt:
                    _save_checkpoint(ckpt, model, optimizer, {"evals": evals, "steps": steps})
                if on_eval:
                    on_eval(evals, steps)
                t0 = time.perf_counter()
            if step == num_steps:
                break
    bar.close()
    return evals, steps
