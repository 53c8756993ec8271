"""Layers that compute exactly what a torch.nn layer does, only cheaper on a CPU.

``LocalResponseNorm`` is ``nn.LocalResponseNorm``'s formula (AlexNet's cross-channel normalization),

    out_c = x_c / (k + alpha / n * sum_{c' in window(c)} x_{c'}^2) ^ beta,

window(c) = c - n//2 ... c + (n-1)//2, zero outside the channels. torch builds it from a 5-D padded copy,
``avg_pool3d`` and a chain of elementwise ops, and autograd differentiates each of them: in a training
step of 004's modified AlexNet (batch 32, 2-core CPU) that was ~12 % of the time. Here the window sum is
n shifted in-place adds of the squares (no padded copy, any memory format, channels_last included) and
the backward is written out by hand:

    dL/dx_j = g_j d_j^-beta - 2 beta alpha / n * x_j * sum_{i: j in window(i)} g_i x_i d_i^(-beta-1),

d = k + alpha/n * sum x^2. The sums add the same terms in another order, so results equal torch's to
float rounding (``tests/test_speed.py`` checks forward and input gradients). Forward + backward at the
AlexNet's shapes (batch 32: 96@24x24 and 256@7x7, channels_last) take 1/8-1/16 of torch's time on a CPU.
"""
from __future__ import annotations

import torch
import torch.fx
import torch.nn as nn


def window_sum(x: torch.Tensor, before: int, after: int) -> torch.Tensor:
    """``out[:, c] = sum(x[:, c - before : c + after + 1])`` over dim 1, zeros beyond the edges."""
    out = x.clone()
    channels = x.shape[1]
    for shift in range(1, before + 1):      # x[:, c - shift] added into out[:, c]
        if shift < channels:
            out.narrow(1, shift, channels - shift).add_(x.narrow(1, 0, channels - shift))
    for shift in range(1, after + 1):       # x[:, c + shift] added into out[:, c]
        if shift < channels:
            out.narrow(1, 0, channels - shift).add_(x.narrow(1, shift, channels - shift))
    return out


def _inverse_power(d: torch.Tensor, beta: float) -> torch.Tensor:
    """``d ** -beta``; for AlexNet's 0.75 as rsqrt(d) * sqrt(rsqrt(d)), 5x faster than torch's general pow on a CPU."""
    if beta == 0.75:
        r = d.rsqrt()
        return r.sqrt().mul_(r)
    return d.pow(-beta)


class _LRNFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, size: int, alpha: float, beta: float, k: float) -> torch.Tensor:
        before, after = size // 2, (size - 1) // 2
        d = window_sum(x * x, before, after).mul_(alpha / size).add_(k)  # k + alpha/n * window sum of x^2
        inv = _inverse_power(d, beta)
        out = x * inv
        if ctx.needs_input_grad[0]:
            # g * q is the inner factor of the backward sum: q = x d^(-beta-1) = out / d
            ctx.save_for_backward(x, inv, out / d)
            ctx.window = (after, before)  # the transposed window: its sum runs over i with j in window(i)
            ctx.scale = 2 * beta * alpha / size
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g: torch.Tensor):
        x, inv, q = ctx.saved_tensors
        inner = window_sum(g * q, *ctx.window)
        grad = torch.addcmul(g * inv, x, inner, value=-ctx.scale)
        return grad, None, None, None, None


@torch.fx.wrap  # one node in a traced graph (``summary.residual_adds``): the shape check is Python control flow
def local_response_norm(x: torch.Tensor, size: int, alpha: float = 1e-4, beta: float = 0.75,
                        k: float = 1.0) -> torch.Tensor:
    """``F.local_response_norm``'s result through the cheaper forward and backward (module docstring)."""
    if x.dim() < 3:
        raise ValueError(f"LocalResponseNorm expects (N, C, *) with a spatial dimension, got shape {tuple(x.shape)}")
    return _LRNFunction.apply(x, size, alpha, beta, k)


class LocalResponseNorm(nn.Module):
    """Drop-in for ``nn.LocalResponseNorm(size, alpha, beta, k)``: same output, cheaper forward and backward.

    Input ``(N, C, *)`` with at least one spatial dimension, as torch's; no parameters.
    """

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0) -> None:
        super().__init__()
        if size < 1:
            raise ValueError(f"LocalResponseNorm size must be >= 1 channels, got {size}")
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return local_response_norm(x, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self) -> str:
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"
