"""Training throughput of hwrlib's MNIST loop against the pytorch/examples loop, and its share of peak FLOP/s.

What is measured: images per second of one training pass of the 002 CNN (``pytorch_cnn``, Adam lr 1e-3)
over the same fixed subset of MNIST train images, at each batch size, by two loops in one process with the
same thread count:

* hwrlib: ``TensorLoader`` slices whole batches out of one uint8 tensor and normalizes them with a
  couple of tensor ops, then ``train_epoch`` runs the step on the model in channels_last layout, as
  hwrlib's training does (``prepare_model``);
* reference: written as pytorch/examples ``mnist/main.py`` does it: a ``Dataset`` whose ``__getitem__``
  builds a PIL image per sample and applies ToTensor + Normalize to it, a ``DataLoader`` (num_workers=0)
  that collates those samples, and the classic zero_grad/forward/loss/backward/step loop.

Why: the model is small (about 12 MFLOP forward per image), so on a CPU the per-sample Python and PIL work
of the reference input pipeline is a visible part of each step; hwrlib avoids it by batching straight from
the uint8 tensor, and channels_last lets oneDNN use its faster conv kernels. The ratio hwrlib/reference
shows what both buy. Both loops share hwrlib's optimizer (``make_optimizer``: fused Adam) and, as it is
process-wide, ``prepare_model``'s allocator setting; ``bench_models.py`` compares against a reference without
either, each loop in a process of its own. Measurements of the two loops are
interleaved (order alternating per repeat) and the best of the repeats is kept, so background load hits
both alike. Training FLOPs per image (3x the analytic forward count of the Conv2d/Linear layers) times
images/s, divided by this machine's measured fp32 matmul FLOP/s, gives the fraction of the FLOP limit used.
"""
from __future__ import annotations

import argparse
import time
from typing import Callable

import numpy as np
import PIL.Image
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from hwrlib.data import TensorLoader, load_mnist, prepare_mnist
from hwrlib.models import count_params, create_model
from hwrlib.train import make_optimizer, prepare_model, train_epoch

MODEL = "pytorch_cnn"
MEAN, STD = 0.1307, 0.3081
WARMUP_IMAGES = 640
SEED = 0
LOOPS = ("hwrlib", "reference")


# ---- reference pipeline: per-sample PIL + transforms, as pytorch/examples mnist/main.py --------------------

def to_tensor(pic: PIL.Image.Image) -> torch.Tensor:
    """torchvision's ToTensor for an 8-bit PIL image: HWC uint8 -> CHW float in [0, 1]."""
    img = torch.from_numpy(np.array(pic, np.uint8, copy=True))
    img = img.view(pic.size[1], pic.size[0], len(pic.getbands())).permute((2, 0, 1)).contiguous()
    return img.to(dtype=torch.get_default_dtype()).div(255)


class Normalize:
    """torchvision's Normalize on a CHW tensor (out of place, as its default inplace=False)."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        self.mean = torch.tensor(mean).view(-1, 1, 1)
        self.std = torch.tensor(std).view(-1, 1, 1)

    def __call__(self, t: torch.Tensor) -> torch.Tensor:
        return t.sub(self.mean).div(self.std)


class Compose:
    def __init__(self, transforms: list[Callable]) -> None:
        self.transforms = transforms

    def __call__(self, x):
        for t in self.transforms:
            x = t(x)
        return x


class PilMNIST(Dataset):
    """What torchvision.datasets.MNIST does per sample: uint8 array -> PIL image -> transform."""

    def __init__(self, images: np.ndarray, targets: torch.Tensor, transform: Callable) -> None:
        self.data, self.targets, self.transform = images, targets, transform

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        img, target = self.data[index], int(self.targets[index])
        img = PIL.Image.fromarray(img, mode="L")
        return self.transform(img), target


def reference_train(model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer,
                    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy) -> None:
    """The training loop of pytorch/examples mnist/main.py; its log line's ``loss.item()`` read every step
    (the example prints every 10th; on a CPU the read costs nothing, on a GPU it waits for the step)."""
    model.train()
    for data, target in loader:
        optimizer.zero_grad()
        output = model(data)
        loss = loss_fn(output, target)
        loss.backward()
        optimizer.step()
        loss.item()


# ---- one measurement per loop: fresh seeded model, warm-up pass, timed pass ---------------------------------

def fresh_model() -> tuple[nn.Module, torch.optim.Optimizer]:
    # identical weights for both loops, so only the loop differs
    torch.manual_seed(SEED)
    model = create_model(MODEL)
    return model, make_optimizer("adam", model.parameters(), 1e-3)


def time_pass(run: Callable[[], None], n: int, clock: Callable[[], float] = time.perf_counter) -> float:
    """``n`` / seconds of ``run()`` by ``clock`` (wall time, or ``time.thread_time`` for one thread's CPU time)."""
    t0 = clock()
    run()
    return n / (clock() - t0)


def measure_hwrlib(x: torch.Tensor, y: torch.Tensor, batch_size: int, n_warm: int) -> float:
    model, opt = fresh_model()
    cpu = torch.device("cpu")
    model = prepare_model(model, cpu)  # exactly what hwrlib's training does: channels_last layout
    # train_epoch draws no progress bar: the timed pass is the training steps alone
    warm = TensorLoader(x[:n_warm], y[:n_warm], batch_size, shuffle=True, seed=SEED, channels_last=True)
    train_epoch(model, warm, opt, cpu)
    loader = TensorLoader(x, y, batch_size, shuffle=True, seed=SEED, channels_last=True)
    return time_pass(lambda: train_epoch(model, loader, opt, cpu), len(y))


def measure_reference(x: torch.Tensor, y: torch.Tensor, batch_size: int, n_warm: int) -> float:
    model, opt = fresh_model()
    transform = Compose([to_tensor, Normalize((MEAN,), (STD,))])
    images = x.numpy()
    warm = DataLoader(PilMNIST(images[:n_warm], y[:n_warm], transform), batch_size=batch_size, shuffle=True)
    reference_train(model, warm, opt)
    loader = DataLoader(PilMNIST(images, y, transform), batch_size=batch_size, shuffle=True)
    return time_pass(lambda: reference_train(model, loader, opt), len(y))


def benchmark(x: torch.Tensor, y: torch.Tensor, batch_sizes: list[int], repeats: int) -> dict[int, dict[str, float]]:
    """Best images/s per batch size and loop; loops alternate who goes first so drifting load is shared."""
    measure = {"hwrlib": measure_hwrlib, "reference": measure_reference}
    n_warm = min(WARMUP_IMAGES, len(y))
    best = {bs: {name: 0.0 for name in LOOPS} for bs in batch_sizes}
    for r in range(repeats):
        order = LOOPS if r % 2 == 0 else LOOPS[::-1]
        for bs in batch_sizes:
            for name in order:
                ips = measure[name](x, y, bs, n_warm)
                best[bs][name] = max(best[bs][name], ips)
                print(f"  repeat {r + 1}/{repeats}  batch {bs:>4}  {name:<9} {ips:8.0f} img/s", flush=True)
    return best


# ---- FLOPs: model per image (analytic) and the machine's fp32 matmul limit (measured) ----------------------

def forward_flops(model: nn.Module, image_shape: tuple[int, ...] = (1, 28, 28)) -> int:
    """Multiply-adds x2 of Conv2d and Linear layers for one image (eval mode); activations, pooling, bias ignored."""
    total = 0

    def conv_hook(m: nn.Conv2d, inp: tuple, out: torch.Tensor) -> None:
        nonlocal total
        kh, kw = m.kernel_size
        total += 2 * out.numel() * (m.in_channels // m.groups) * kh * kw

    def linear_hook(m: nn.Linear, inp: tuple, out: torch.Tensor) -> None:
        nonlocal total
        total += 2 * (out.numel() // m.out_features) * m.in_features * m.out_features

    handles = [m.register_forward_hook(conv_hook if isinstance(m, nn.Conv2d) else linear_hook)
               for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, *image_shape))
    finally:
        for h in handles:
            h.remove()
    return total


def matmul_flops_per_s(n: int = 2048, seconds: float = 1.5, clock: Callable[[], float] = time.perf_counter) -> float:
    """Best fp32 n x n matmul rate over about ``seconds``: the practical FLOP limit of this CPU."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)  # first call pays for thread pool and allocation
    best, start = 0.0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        t0 = clock()
        torch.mm(a, b)
        best = max(best, 2 * n**3 / (clock() - t0))
    return best


# ---- report ------------------------------------------------------------------------------------------------

def print_throughput(best: dict[int, dict[str, float]]) -> None:
    print(f"\n{'batch':>6} {'hwrlib img/s':>13} {'reference img/s':>16} {'hwrlib/reference':>17}")
    for bs, r in best.items():
        print(f"{bs:>6} {r['hwrlib']:>13.0f} {r['reference']:>16.0f} {r['hwrlib'] / r['reference']:>16.2f}x")


def print_flop_share(best: dict[int, dict[str, float]], train_flops: int, peak: float) -> None:
    print(f"\n{'batch':>6} {'loop':<10} {'img/s':>8} {'GFLOP/s':>9} {'% of matmul':>12}")
    for bs, r in best.items():
        for name in LOOPS:
            achieved = train_flops * r[name]
            print(f"{bs:>6} {name:<10} {r[name]:>8.0f} {achieved / 1e9:>9.2f} {100 * achieved / peak:>11.1f}%")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=6400, help="timed subset: the first N train images")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128])
    p.add_argument("--repeats", type=int, default=2, help="measurements per loop and batch size; best is kept")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's default)")
    args = p.parse_args()
    if args.images < 1 or args.repeats < 1 or min(args.batch_sizes) < 1:
        p.error("--images, --repeats and --batch-sizes must be >= 1")
    return args


def main() -> None:
    t_start = time.perf_counter()
    args = parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    prepare_mnist()
    x, y = load_mnist("train")
    x, y = x[:args.images], y[:args.images]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; model {MODEL} "
          f"({count_params(create_model(MODEL)):,} params); {len(y)} images, warm-up "
          f"{min(WARMUP_IMAGES, len(y))}, best of {args.repeats}")

    best = benchmark(x, y, args.batch_sizes, args.repeats)
    print_throughput(best)

    fwd = forward_flops(create_model(MODEL))
    train_flops = 3 * fwd  # backward costs about twice the forward
    peak = matmul_flops_per_s()
    print(f"\nforward {fwd / 1e6:.2f} MFLOP/image, training {train_flops / 1e6:.2f} MFLOP/image; "
          f"fp32 matmul 2048^3: {peak / 1e9:.1f} GFLOP/s")
    print_flop_share(best, train_flops, peak)
    print(f"\ntotal {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
