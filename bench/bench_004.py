"""Training images/s of paper 004's two models on this machine, and their epoch-time ratio (claimed 1/5).

What is measured: hwrlib's training step (``train_epoch`` on a channels_last model, Adam lr 1e-3, batch 32, as
the 004 runs train) over the same fixed subset of MNIST training images, for the modified AlexNet
(``alexnet_mod``) and the improved model (``alexnet_ir``). The models alternate who goes first in each
repeat and the best of the repeats is kept, so background load hits both alike. Seconds per 50,000-image
epoch (training only) are 50,000 / images/s; the paper reports 1400 s and 280 s on a laptop CPU.
The analytic forward FLOPs per image (Conv2d and Linear layers) show how much of the ratio the arithmetic explains.
"""
from __future__ import annotations

import argparse
import time

import torch

from bench_mnist import forward_flops, time_pass  # bench/ is this script's folder, so sys.path[0]
from hwrlib.data import TensorLoader, load_mnist, prepare_mnist
from hwrlib.models import count_params, create_model
from hwrlib.train import make_optimizer, prepare_model, train_epoch

MODELS = ("alexnet_mod", "alexnet_ir")
CLAIMED_SECONDS = {"alexnet_mod": 1400.0, "alexnet_ir": 280.0}
SEED = 0


def measure(name: str, x: torch.Tensor, y: torch.Tensor, batch_size: int, n_warm: int) -> float:
    """Images/s of one training pass over (x, y) after a warm-up pass, from a freshly seeded model."""
    torch.manual_seed(SEED)
    cpu = torch.device("cpu")
    model = prepare_model(create_model(name), cpu)
    opt = make_optimizer("adam", model.parameters(), 1e-3)
    train_epoch(model, TensorLoader(x[:n_warm], y[:n_warm], batch_size, channels_last=True), opt, cpu)
    loader = TensorLoader(x, y, batch_size, shuffle=True, seed=SEED, channels_last=True)
    return time_pass(lambda: train_epoch(model, loader, opt, cpu), len(y))


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=256, help="timed subset: the first N training images")
    p.add_argument("--batch-size", type=int, default=32, help="the paper's mini-batch: 32")
    p.add_argument("--repeats", type=int, default=3, help="measurements per model; the best is kept")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's default)")
    args = p.parse_args()
    if min(args.images, args.batch_size, args.repeats) < 1:
        p.error("--images, --batch-size and --repeats must be >= 1")
    return args


def main() -> None:
    t_start = time.perf_counter()
    args = parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    prepare_mnist()
    x, y = load_mnist("train50k")
    x, y = x[:args.images], y[:args.images]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; batch {args.batch_size}, "
          f"{len(y)} images per pass after a {2 * args.batch_size}-image warm-up, best of {args.repeats}")
    best = {m: 0.0 for m in MODELS}
    for r in range(args.repeats):
        for name in (MODELS if r % 2 == 0 else MODELS[::-1]):
            ips = measure(name, x, y, args.batch_size, 2 * args.batch_size)
            best[name] = max(best[name], ips)
            print(f"  repeat {r + 1}/{args.repeats}  {name:<12} {ips:7.1f} img/s", flush=True)

    print(f"\n{'model':<12} {'params':>11} {'fwd MFLOP/img':>14} {'img/s':>8} {'s / 50k epoch':>14} {'paper s':>8}")
    flops = {}
    for name in MODELS:
        model = create_model(name)
        flops[name] = forward_flops(model)
        print(f"{name:<12} {count_params(model):>11,} {flops[name] / 1e6:>14.1f} {best[name]:>8.1f} "
              f"{50_000 / best[name]:>14,.0f} {CLAIMED_SECONDS[name]:>8,.0f}")
    print(f"\nepoch-time ratio improved / AlexNet: {best['alexnet_mod'] / best['alexnet_ir']:.3f} "
          f"(claimed 280 / 1400 = 0.200); forward FLOP ratio {flops['alexnet_ir'] / flops['alexnet_mod']:.3f}")
    print(f"total {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
