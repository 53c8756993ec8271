"""Paper 003: training images/s of the sigmoid/MSE LeNet variant, and what a sweep point costs besides training.

What is measured, on this CPU with one torch thread (what each of ``hwr-sweep --workers 2``'s workers gets
on 2 cores):

* training: images/s of 003's update (``mse`` + plain SGD, channels_last as ``prepare_model`` does) at the
  paper's batch sizes 50/100/200, best of a few timed passes over 2,000 images; and the time of one 1,000-image
  test evaluation. From them: the training seconds of one ``paper``-profile point (100 epochs of 2,000 images,
  ~130 evaluations); and the same for 5 networks trained side by side as one grouped network (``replicas=5``,
  how the sweeps train their seeds), as images/s over all five and the ratio to one network;
* the cost of Dask's ``MALLOC_TRIM_THRESHOLD_=65536`` had a point's kernel inherited it (``hwr-sweep`` drops it);
* sweep overhead per point: the wall time of papermill executing the 003 notebook for a point whose run
  folder is already complete, so nothing trains: kernel start, imports, data load (the subsets are drawn,
  the MNIST files parsed once), read-back and figures. Also, separately, a bare kernel start
  (one cell, ``import hwrlib.experiments``) and the cold data load (``load_subsets`` in a fresh process).

The overhead share = overhead / (overhead + training) says how much of a sweep is not training.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import papermill
import torch

from bench_mnist import forward_flops, matmul_flops_per_s
from hwrlib.data import TensorLoader
from hwrlib.experiments import P003Config
from hwrlib.data import GroupLoader
from hwrlib.experiments.p003_lenet_variant import eval_schedule, load_subsets, make_replicas, make_sgd, score, \
    train_step
from hwrlib.models import create_model

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "003_lenet_variant_mnist.ipynb"
CPU = torch.device("cpu")


def images_per_second(x: torch.Tensor, y: torch.Tensor, batch_size: int, repeats: int, replicas: int = 1) -> float:
    """Best of ``repeats`` timed epochs of 003's update (a warm-up epoch first), over all ``replicas``.

    With ``replicas`` > 1 the networks train side by side as one grouped network (as the sweeps train their
    5 seeds), each replica on the same images here.
    """
    model = make_replicas(P003Config.from_params(profile="paper", replicas=replicas), CPU)
    opt = make_sgd(model.net, 1.0, 0.0)
    loader = TensorLoader(x, y, batch_size, shuffle=True, channels_last=True)
    best = 0.0
    for r in range(repeats + 1):
        loader.set_epoch(r)
        t0 = time.perf_counter()
        for xb, yb in GroupLoader([loader] * replicas):
            train_step(model, opt, xb, yb)  # the losses stay on the device, as in the training loop
        if r:  # r == 0 warms up
            best = max(best, replicas * len(y) / (time.perf_counter() - t0))
    return best


def malloc_trim_ratio(batch_size: int = 50) -> float:
    """images/s with glibc's MALLOC_TRIM_THRESHOLD_=65536 (what Dask's nanny sets; hwr-sweep's kernels drop it)
    over images/s without, each in a fresh process of 5 replicas."""
    code = ("import sys, torch; sys.path.insert(0, %r); torch.set_num_threads(1); import bench_003 as b; "
            "from hwrlib.experiments import P003Config; from hwrlib.experiments.p003_lenet_variant import load_subsets; "
            "(x, y), _ = load_subsets(P003Config.from_params(profile='paper')); "
            "print(b.images_per_second(x, y, %d, 2, replicas=5))" % (str(Path(__file__).parent), batch_size))
    rates = []
    for trim in ("65536", None):
        env = {k: v for k, v in os.environ.items() if k != "MALLOC_TRIM_THRESHOLD_"}
        if trim:
            env["MALLOC_TRIM_THRESHOLD_"] = trim
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
        rates.append(float(out.stdout.split()[-1]))
    return rates[0] / rates[1]


def eval_seconds(xt: torch.Tensor, yt: torch.Tensor, replicas: int = 1, repeats: int = 5) -> float:
    """One scoring of the test images by ``replicas`` networks, batched as ``train_cnn`` batches it."""
    model = make_replicas(P003Config.from_params(profile="paper", replicas=replicas), CPU)
    test = list(GroupLoader([TensorLoader(xt, yt, model.test_batch, channels_last=True)] * replicas))
    score(model, test)
    t0 = time.perf_counter()
    for _ in range(repeats):
        score(model, test)
    return (time.perf_counter() - t0) / repeats


def kernel_start_seconds() -> float:
    """papermill on a one-cell notebook that imports hwrlib's experiments: the floor of any sweep point."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import hwrlib.experiments")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "kernel.ipynb"
        nbformat.write(nb, src)
        t0 = time.perf_counter()
        papermill.execute_notebook(str(src), str(Path(tmp) / "out.ipynb"), progress_bar=False, log_output=False)
        return time.perf_counter() - t0


def cold_data_load_seconds() -> float:
    """``load_subsets`` in a fresh process: IDX parse + check + the seeded 2,000/1,000 draw."""
    code = ("import time; t = time.perf_counter(); from hwrlib.experiments import P003Config; "
            "from hwrlib.experiments.p003_lenet_variant import load_subsets; t1 = time.perf_counter(); "
            "load_subsets(P003Config.from_params(profile='paper')); print(time.perf_counter() - t1)")
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def point_overhead_seconds() -> tuple[float, float]:
    """papermill of the 003 notebook for a small point: (first run, with training; rerun, nothing to train)."""
    params = {"profile": "quick", "num_epochs": 1, "baselines": False}
    with tempfile.TemporaryDirectory() as tmp:
        times = []
        for _ in range(2):
            t0 = time.perf_counter()
            papermill.execute_notebook(str(NOTEBOOK), str(Path(tmp) / "out.ipynb"), cwd=str(NOTEBOOK.parent),
                                       parameters={**params, "results_dir": tmp}, progress_bar=False,
                                       log_output=False)
            times.append(time.perf_counter() - t0)
    return times[0], times[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3, help="timed epochs per batch size; the best is kept")
    args = p.parse_args()
    torch.set_num_threads(1)
    t_start = time.perf_counter()
    cfg = P003Config.from_params(profile="paper", baselines=False)
    (x, y), (xt, yt) = load_subsets(cfg)

    print(f"003 lenet_variant, 1 torch thread, {len(y):,} training images, best of {args.repeats} epochs")
    ips = {b: images_per_second(x, y, b, args.repeats) for b in (50, 100, 200)}
    grouped = {b: images_per_second(x, y, b, args.repeats, replicas=5) for b in (50, 100, 200)}
    ev = eval_seconds(xt, yt)
    flops = 3 * forward_flops(create_model("lenet_variant"))
    peak = matmul_flops_per_s(seconds=1.0) / torch.get_num_threads()
    images = cfg.num_epochs * cfg.train_size
    print(f"{'batch':>6} {'img/s':>8} {'GFLOP/s':>8} {'% matmul':>9} {'evals':>6} {'paper point: train s':>21}"
          f" {'5 grouped: img/s':>17} {'ratio':>6}")
    for b, r in ips.items():
        per_epoch = cfg.train_size // b
        evals = sum(eval_schedule(cfg)(it, per_epoch) for it in range(1, cfg.num_epochs * per_epoch + 1)) + 1
        point = images / r + evals * ev
        print(f"{b:>6} {r:>8.0f} {flops * r / 1e9:>8.2f} {100 * flops * r / peak:>8.1f}% {evals:>6} {point:>21.1f}"
              f" {grouped[b]:>17.0f} {grouped[b] / r:>5.2f}x")
    print(f"one evaluation of {len(yt):,} test images: {1e3 * ev:.1f} ms (5 grouped: {1e3 * eval_seconds(xt, yt, 5) / 5:.1f}"
          f" ms per network); "
          f"training {flops / 1e6:.2f} MFLOP/image; fp32 matmul, 1 thread: {peak / 1e9:.1f} GFLOP/s")
    print(f"5 grouped, batch 50, with Dask's MALLOC_TRIM_THRESHOLD_=65536 / without: {malloc_trim_ratio():.2f}x")

    kernel = kernel_start_seconds()
    data = cold_data_load_seconds()
    first, rerun = point_overhead_seconds()
    train50 = images / ips[50]
    print(f"\nsweep overhead per point: kernel start {kernel:.1f} s, cold data load {data:.2f} s; "
          f"whole notebook with nothing to train {rerun:.1f} s (with a 1-epoch run: {first:.1f} s)")
    group50 = 5 * images / grouped[50]
    print(f"paper point at batch 50: {train50:.1f} s training + {rerun:.1f} s overhead "
          f"-> overhead share {100 * rerun / (rerun + train50):.0f}%; with 5 seeds grouped in one point: "
          f"{group50:.1f} s training + {rerun:.1f} s -> {100 * rerun / (rerun + group50):.0f}%")
    print(f"\ntotal {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
