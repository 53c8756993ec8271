"""Paper 004's epoch-time ratio (Sec. 3.3: one epoch falls from 1,400 s to 280 s, 1/5), timed under control.

    python -m hwrlib.experiments.p004_timing [--images 320] [--repeats 5] [--num-threads 1] [--quick]

writes ``results/timing/004_epoch_time.csv`` (one row per repeat x implementation x model) and
``004_epoch_time.json`` beside it (versions, CPU, commit, settings), the record claim ``004.epoch_time_ratio`` is
judged from (``hwrlib.summary``, ``kind: timing``). The long training runs' ``mean_epoch_seconds`` are no such
record: each model trained for hours at another time, under whatever else the machine was doing.

**What is timed**: one training pass (batch 32, Adam lr 1e-3, cross-entropy, as Sec. 3.3 trains) over the same
first ``images`` images of MNIST's training set, after a warm-up pass over its first two batches, of a freshly
seeded ``alexnet_mod`` and ``alexnet_ir``, by two implementations:

* ``plain``: what a plain framework script does, written as pytorch/examples ``mnist/main.py``: the model in the
  default layout with ``torch.nn.LocalResponseNorm``, the images as one float tensor batched by a ``DataLoader``
  (Keras' ``fit(x, y, batch_size=32)`` on arrays), torch's default Adam (on a CPU its per-tensor loop),
  zero_grad / backward / step. The paper names no framework (Sec. 3.1: Python under PyCharm), so which one is
  assumed; a plain loop is what any of them runs by default.
* ``hwrlib``: this project's training step as the committed runs ran it: ``prepare_model`` (channels_last, glibc
  malloc keeping freed memory), ``make_optimizer("adam")`` (fused), hwrlib's LRN, :func:`hwrlib.train.train_epoch`.

**Control**: a fixed torch thread count (default 1); each repeat times both models back to back, the order
alternating between repeats, so a change of background load hits both sides of a ratio alike; the ratio is paired
within a repeat. Each implementation runs in a worker process of its own, started fresh: ``prepare_model``'s
malloc setting is process-wide and cannot be undone, so it must never reach the plain loop. Every pass builds a
freshly seeded model and optimizer.

**Load**: the 1-minute load average is recorded before each repeat. At start the script refuses (one line, exit 2)
when it exceeds the cores minus the threads used: then no core is free for the measurement, and every number
would time the other work. Paired ratios survive a steady load better than absolute seconds do, but not one that
comes and goes within a repeat; ``--allow-load`` records anyway (tests, or a reader who wants the load on file).
"""
from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path
from typing import Callable

import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from .. import paths
from ..data import MEAN, STD, TensorLoader, load_mnist, prepare_mnist
from ..models import create_model
from ..models.layers import LocalResponseNorm
from ..results import atomic_write_text, environment
from ..train import device_name, make_optimizer, prepare_model, train_epoch

RECORD = "timing/004_epoch_time.csv"  # under the results folder; claims.yaml's `record` names the same file
MODELS = ("alexnet_mod", "alexnet_ir")
IMPLEMENTATIONS = ("plain", "hwrlib")
KEYS = ("implementation", "model", "num_threads")  # columns a claim may select rows by
COLUMNS = ("repeat", "implementation", "model", "position", "images", "seconds", "cpu_seconds", "seconds_per_image",
           "epoch_seconds_60k", "num_threads", "loadavg_1min")
EPOCH_IMAGES = 60_000  # Sec. 3.3: 1,875 steps of 32 per epoch
BATCH_SIZE, LR, SEED = 32, 1e-3, 0
QUICK = {"images": 64, "repeats": 2}
DEFAULTS = {"images": 320, "repeats": 5}


# ---- the two implementations: seconds (wall, process CPU) of one timed pass --------------------------------

def plain_model(name: str) -> nn.Module:
    """``create_model(name)`` with torch's own ``nn.LocalResponseNorm`` where hwrlib's faster one stands."""
    model = create_model(name)
    for parent in list(model.modules()):
        for child_name, child in parent.named_children():
            if isinstance(child, LocalResponseNorm):
                setattr(parent, child_name, nn.LocalResponseNorm(child.size, child.alpha, child.beta, child.k))
    return model


def plain_train(model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer) -> None:
    """pytorch/examples mnist/main.py's ``train``: zero_grad, forward, loss, backward, step."""
    model.train()
    for data, target in loader:
        optimizer.zero_grad()
        loss = F.cross_entropy(model(data), target)
        loss.backward()
        optimizer.step()


def _timed(run: Callable[[], None]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def time_plain(name: str, x: torch.Tensor, y: torch.Tensor, warm: int) -> tuple[float, float]:
    """One timed pass of the plain loop over (x, y) after a warm-up pass over the first ``warm`` images."""
    torch.manual_seed(SEED)
    model = plain_model(name)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)  # torch's default: the per-tensor loop on a CPU
    inputs = x.unsqueeze(1).float().div(255).sub(MEAN).div(STD)  # (N, 1, 28, 28), normalized once as a script does

    def loader(n: int) -> DataLoader:
        return DataLoader(TensorDataset(inputs[:n], y[:n]), batch_size=BATCH_SIZE, shuffle=True,
                          generator=torch.Generator().manual_seed(SEED))
    plain_train(model, loader(warm), optimizer)
    timed = loader(len(y))
    return _timed(lambda: plain_train(model, timed, optimizer))


def time_hwrlib(name: str, x: torch.Tensor, y: torch.Tensor, warm: int) -> tuple[float, float]:
    """One timed pass of hwrlib's training step over (x, y), as bench/bench_004.py times it."""
    torch.manual_seed(SEED)
    cpu = torch.device("cpu")
    model = prepare_model(create_model(name), cpu)
    optimizer = make_optimizer("adam", model.parameters(), LR)
    train_epoch(model, TensorLoader(x[:warm], y[:warm], BATCH_SIZE, channels_last=True), optimizer, cpu)
    loader = TensorLoader(x, y, BATCH_SIZE, shuffle=True, seed=SEED, channels_last=True)
    return _timed(lambda: train_epoch(model, loader, optimizer, cpu))


TIMERS = {"plain": time_plain, "hwrlib": time_hwrlib}


def time_models(implementation: str, order: tuple[str, ...], images: int, num_threads: int) -> dict[str, tuple]:
    """In this process: ``TIMERS[implementation]`` for each model of ``order`` in turn -> (wall s, CPU s)."""
    torch.set_num_threads(num_threads)
    prepare_mnist()
    x, y = load_mnist("train")
    x, y = x[:images], y[:images]
    warm = min(2 * BATCH_SIZE, images)
    return {name: TIMERS[implementation](name, x, y, warm) for name in order}


# ---- repeats: each implementation in a process of its own ------------------------------------------------

def measure(images: int, repeats: int, num_threads: int, log: Callable[[str], None] = print) -> pd.DataFrame:
    """The record's rows: for each repeat, each implementation's pass of both models (orders alternating)."""
    # spawn, not fork: a worker inherits neither this process's heap nor its allocator settings; one worker per
    # implementation, started once, so the processes' start (importing torch) is paid twice, not per repeat
    context = multiprocessing.get_context("spawn")
    workers = {implementation: context.Pool(1) for implementation in IMPLEMENTATIONS}
    try:
        rows = []
        for r in range(1, repeats + 1):
            rows += _repeat(r, repeats, workers, images, num_threads, log)
    finally:
        for pool in workers.values():
            pool.close()
            pool.join()
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _repeat(r: int, repeats: int, workers: dict, images: int, num_threads: int, log: Callable[[str], None]) -> list:
    load = os.getloadavg()[0]
    models = MODELS if r % 2 else MODELS[::-1]
    rows = []
    for implementation in (IMPLEMENTATIONS if r % 2 else IMPLEMENTATIONS[::-1]):
        timed = workers[implementation].apply(time_models, (implementation, models, images, num_threads))
        for position, name in enumerate(models, 1):
            wall, cpu = timed[name]
            rows.append({"repeat": r, "implementation": implementation, "model": name, "position": position,
                         "images": images, "seconds": wall, "cpu_seconds": cpu, "seconds_per_image": wall / images,
                         "epoch_seconds_60k": EPOCH_IMAGES * wall / images, "num_threads": num_threads,
                         "loadavg_1min": load})
        log(f"repeat {r}/{repeats}  {implementation:<6}  " + "  ".join(
            f"{name} {EPOCH_IMAGES * timed[name][0] / images:7,.0f} s/epoch" for name in MODELS)
            + f"  ratio {timed['alexnet_ir'][0] / timed['alexnet_mod'][0]:.3f}  (load {load:.2f})")
    return rows


# ---- the record --------------------------------------------------------------------------------------------

def write_record(frame: pd.DataFrame, about: dict, results_dir: str | os.PathLike | None = None) -> Path:
    """``<results>/timing/004_epoch_time.csv`` and its ``.json`` of facts, each written atomically (the JSON
    first, so the CSV the verdict reads is never newer than the facts beside it)."""
    path = paths.results_dir(results_dir) / RECORD
    atomic_write_text(path.with_suffix(".json"), json.dumps(about, indent=1, sort_keys=True) + "\n")
    atomic_write_text(path, frame.to_csv(index=False, float_format="%.6g"))
    return path


def facts(args: argparse.Namespace, argv: list[str], load: float, started: float) -> dict:
    """What a reader needs to weigh the numbers: versions, CPU, commit, settings, how busy the machine was."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return {**environment(), "device_name": device_name(torch.device("cpu")), "cpu_count": cores(),
            "images": args.images, "warmup_images": min(2 * BATCH_SIZE, args.images), "batch_size": BATCH_SIZE,
            "lr": LR, "fused_optimizer": os.environ.get("HWR_FUSED", "1") != "0", "repeats": args.repeats, "num_threads": args.num_threads, "loadavg_1min_start": load,
            "finished": now.isoformat(timespec="seconds"), "wall_seconds": round(time.time() - started, 1),
            "command": " ".join(["python -m hwrlib.experiments.p004_timing", *argv])}


def cores() -> int:
    """The cores this process may run on (a container's share, not the host's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def too_busy(load: float, num_threads: int, n_cores: int) -> str | None:
    """Why the machine is too busy to time on (module docstring), or None."""
    free = n_cores - num_threads
    if load <= free:
        return None
    return (f"the 1-minute load average is {load:.2f} on {n_cores} cores, more than the {free} left free beside "
            f"{num_threads} timing thread(s), so the timings would measure the other work")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, help=f"timed subset: the first N training images ({DEFAULTS['images']})")
    p.add_argument("--repeats", type=int, help=f"repeats, each timing both models ({DEFAULTS['repeats']})")
    p.add_argument("--num-threads", type=int, default=1, help="torch threads per measurement")
    p.add_argument("--quick", action="store_true", help=f"a check of the script: {QUICK} unless given")
    p.add_argument("--results-dir", help="results folder (default: $HWR_RESULTS_DIR or the repository's)")
    p.add_argument("--allow-load", action="store_true", help="measure even when the machine is busy")
    args = p.parse_args(argv)
    for key, value in (QUICK if args.quick else DEFAULTS).items():
        setattr(args, key, value if getattr(args, key) is None else getattr(args, key))
    if min(args.images, args.repeats, args.num_threads) < 1:
        p.error("--images, --repeats and --num-threads must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    started, load = time.time(), os.getloadavg()[0]
    busy = too_busy(load, args.num_threads, cores())
    if busy and not args.allow_load:
        print(f"p004_timing: {busy}; run it on a quiet machine, or pass --allow-load to record anyway (each row "
              "keeps the load)", file=sys.stderr)
        return 2
    if busy:
        print(f"warning: {busy}; recording anyway (--allow-load)", flush=True)
    print(f"torch {torch.__version__}, {args.num_threads} thread(s), {device_name(torch.device('cpu'))}; "
          f"{args.images} images per pass, batch {BATCH_SIZE}, {args.repeats} repeats", flush=True)
    frame = measure(args.images, args.repeats, args.num_threads, log=lambda line: print(line, flush=True))
    path = write_record(frame, facts(args, argv, load, started), args.results_dir)
    ratios = frame.pivot_table(index=["implementation", "repeat"], columns="model", values="seconds")
    per = (ratios["alexnet_ir"] / ratios["alexnet_mod"]).groupby(level=0).agg(["mean", "std"])
    for implementation, r in per.iterrows():
        print(f"{implementation:<6} ratio alexnet_ir / alexnet_mod: {r['mean']:.3f} ± {r['std']:.3f} (claimed 0.2)")
    print(f"wrote {path} in {time.time() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
