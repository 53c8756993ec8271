"""The speed changes compute what they replace: the faster LRN, the fused optimizers, reproducible runs."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from hwrlib.data import TensorLoader, load_mnist
from hwrlib.models import create_model
from hwrlib.models.layers import LocalResponseNorm
from hwrlib.train import Loop, fit, make_optimizer, prepare_model, score, standard_update

CPU = torch.device("cpu")


def _lrn_pair(shape, size, alpha, beta, k, channels_last, seed=0):
    """Outputs and input gradients of torch's LRN and ours on the same random input and output gradient."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g) * 3
    grad_out = torch.randn(shape, generator=g)
    if channels_last:
        x, grad_out = x.contiguous(memory_format=torch.channels_last), grad_out.contiguous(memory_format=torch.channels_last)
    results = []
    for layer in (nn.LocalResponseNorm(size, alpha, beta, k), LocalResponseNorm(size, alpha, beta, k)):
        xi = x.clone().requires_grad_()
        out = layer(xi)
        out.backward(grad_out)
        results.append((out, xi.grad))
    return results


@pytest.mark.parametrize("shape,channels_last", [((4, 96, 12, 12), True), ((4, 96, 12, 12), False),
                                                  ((3, 256, 7, 7), True), ((2, 3, 5, 5), False)])
def test_lrn_equals_torch_at_alexnet_settings(shape, channels_last):
    (ref, ref_grad), (out, grad) = _lrn_pair(shape, 5, 1e-4, 0.75, 2.0, channels_last)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(grad, ref_grad)
    assert out.is_contiguous(memory_format=torch.channels_last) == channels_last


@pytest.mark.parametrize("size,alpha,beta,k", [(1, 1e-2, 0.75, 1.0), (2, 0.5, 0.6, 1.0), (4, 1.0, 0.75, 0.5),
                                               (7, 0.3, 1.3, 2.0)])
def test_lrn_equals_torch_for_other_windows_and_powers(size, alpha, beta, k):
    # even sizes have an asymmetric window (and a mirrored one in the backward); large alpha makes the sum matter
    for shape in ((3, 6, 4, 4), (2, 5, 9), (2, 4, 3, 3, 3)):
        (ref, ref_grad), (out, grad) = _lrn_pair(shape, size, alpha, beta, k, False, seed=size)
        torch.testing.assert_close(out, ref)
        torch.testing.assert_close(grad, ref_grad)


def test_lrn_is_not_a_no_op_and_checks_its_input():
    x = torch.randn(2, 8, 3, 3) * 10
    assert (LocalResponseNorm(5, alpha=1.0)(x) - x).abs().max() > 1  # it does normalize
    with torch.no_grad():  # inference keeps nothing for a backward
        torch.testing.assert_close(LocalResponseNorm(3)(x), nn.LocalResponseNorm(3)(x))
    with pytest.raises(ValueError, match="spatial dimension"):
        LocalResponseNorm(5)(torch.randn(4, 8))
    with pytest.raises(ValueError, match="size must be >= 1"):
        LocalResponseNorm(0)


def test_adam_and_sgd_fused_on_cpu_the_others_unchanged():
    params = list(create_model("lenet5").parameters())
    assert make_optimizer("adam", params, 1e-3).defaults["fused"]
    assert make_optimizer("sgd", params, 1e-3).defaults["fused"]
    rms = make_optimizer("rmsprop", params, 1e-3)  # Keras' settings kept
    assert (rms.defaults["alpha"], rms.defaults["eps"]) == (0.9, 1e-7)


def _train_steps(model_name, optimizer, loop_optimizer, steps, batch=32):
    """Parameters and losses after ``steps`` training steps on MNIST, with the fused or the per-tensor optimizer."""
    torch.manual_seed(0)
    model = prepare_model(create_model(model_name), CPU)
    if loop_optimizer:
        opt = {"adam": torch.optim.Adam(model.parameters(), lr=1e-3, foreach=False),
               "sgd": torch.optim.SGD(model.parameters(), lr=1e-2, momentum=0.9, foreach=False)}[optimizer]
    else:
        opt = make_optimizer(optimizer, model.parameters(), 1e-3 if optimizer == "adam" else 1e-2)
    x, y = load_mnist("train")
    losses = []
    for xb, yb in TensorLoader(x[:steps * batch], y[:steps * batch], batch, channels_last=True):
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return torch.cat([p.detach().flatten() for p in model.parameters()]), torch.tensor(losses)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_fused_optimizer_follows_the_per_tensor_one(mnist_ready, one_thread, optimizer):
    # the kernels round differently by an ulp per step (after 20 steps, up to 3e-8 on the weights on an AVX2 CPU, 1.1e-7
    # on an AVX-512 one; a wrong update moves them by the step size, 1e-3); like any rounding difference (2 threads
    # instead of 1 does the same) it grows chaotically later: 1e-2 in the loss after 300 steps
    fused_params, fused_losses = _train_steps("pytorch_cnn", optimizer, False, 20)
    loop_params, loop_losses = _train_steps("pytorch_cnn", optimizer, True, 20)
    start, _ = _train_steps("pytorch_cnn", optimizer, True, 0)
    assert (fused_params - start).abs().mean() > 1e-4  # it trained
    torch.testing.assert_close(fused_losses, loop_losses, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(fused_params, loop_params, rtol=1e-6, atol=1e-6)


def _fit_alexnet(seed):
    torch.manual_seed(seed)
    model = prepare_model(create_model("alexnet_mod"), CPU)  # the faster LRN and fused Adam together
    x, y = load_mnist("train")
    xt, yt = load_mnist("test")
    train = TensorLoader(x[:96], y[:96], 32, shuffle=True, seed=seed, channels_last=True)
    test = TensorLoader(xt[:64], yt[:64], 64, channels_last=True)
    opt = make_optimizer("adam", model.parameters(), 1e-3)
    loop = Loop(standard_update(model, opt, CPU), evaluate=lambda m: score(m, {"test": test}, CPU))
    run = fit(model, train, opt, CPU, loop, num_steps=2 * len(train), seed=seed, progress=False)
    return model, [{k: v for k, v in row.items() if k != "seconds"} for row in run.metrics]


def test_same_seed_alexnet_runs_are_bitwise_identical(mnist_ready, one_thread):
    m1, h1 = _fit_alexnet(3)
    m2, h2 = _fit_alexnet(3)
    assert h1 == h2
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))
    assert h1[0]["train_loss"] != h1[1]["train_loss"]  # two real epochs of training

