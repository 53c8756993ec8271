import pytest
import torch

from hwrlib.models import count_params, create_model, layer_table, list_models, residual_adds


def conv(c_in, c_out, k, bias=True):
    return c_in * c_out * k * k + (c_out if bias else 0)


def linear(n_in, n_out):
    return n_in * n_out + n_out


def resnet18_params(classes=10):
    bn = lambda c: 2 * c  # noqa: E731  (weight and bias)
    total = conv(1, 64, 3, False) + bn(64)
    c_in = 64
    for i, c in enumerate((64, 128, 256, 512)):
        for j in range(2):
            total += conv(c_in, c, 3, False) + bn(c) + conv(c, c, 3, False) + bn(c)
            if c_in != c:
                total += conv(c_in, c, 1, False) + bn(c)
            c_in = c
    return total + linear(512, classes)


def conv_bn(c_in, c_out, kh, kw=None):
    """A bias-free conv followed by BN (weight and bias per map)."""
    return c_in * c_out * kh * (kw or kh) + 2 * c_out


def alexnet_ir_params(mixed=32, classes=10):
    stages = conv_bn(1, 32, 3) + conv_bn(32, 32, 3) + conv_bn(32, 128, 3) + conv_bn(128, 128, 3)
    block = (2 * conv_bn(128, mixed, 1) + conv_bn(mixed, mixed, 1, 3) + conv_bn(mixed, mixed, 3, 1)
             + conv_bn(2 * mixed, 128, 1))
    return stages + block + conv_bn(128, 256, 3) + linear(256, 1024) + linear(1024, classes)
def bn(c):
    return 2 * c  # weight and bias


def hccr_head(c_aux, c_last, classes):
    """The 000 networks' auxiliary head (1x1 conv, BN, linear) and classifier."""
    return conv(c_aux, c_aux, 1, False) + bn(c_aux) + linear(c_aux, classes) + linear(c_last, classes)


def resnet_hccr_params(classes=10, learned=True, stages=((4, 64), (5, 128), (5, 256), (4, 512))):
    """7x7 stem + BN; per pre-activation unit: BN, 3x3, BN, 3x3, a 1x1 projection where the shape
    changes, one scalar a_i if learned; final BN; auxiliary head (after stage 2) with its leading BN; classifier."""
    total, c_in = conv(1, stages[0][1], 7, False) + bn(stages[0][1]), stages[0][1]
    for n, c in stages:
        for _ in range(n):
            total += bn(c_in) + conv(c_in, c, 3, False) + bn(c) + conv(c, c, 3, False) + int(learned)
            total += conv(c_in, c, 1, False) if c_in != c else 0
            c_in = c
    return total + bn(c_in) + bn(stages[1][1]) + hccr_head(stages[1][1], c_in, classes)


def inception_hccr_params(classes=10, stages=((4, 64), (5, 128), (5, 256), (4, 512))):
    """Stem; per module four branches of c/4: 1x1 | 1x1-3x3 | 1x1-5x5 | pool-1x1, each conv with BN."""
    cbn = lambda i, o, k: conv(i, o, k, False) + bn(o)  # noqa: E731
    total, c_in = cbn(1, stages[0][1], 7), stages[0][1]
    for n, c in stages:
        for _ in range(n):
            b = c // 4
            total += cbn(c_in, c - 3 * b, 1) + 3 * cbn(c_in, b, 1) + cbn(b, b, 3) + cbn(b, b, 5)
            c_in = c
    return total + hccr_head(stages[1][1], c_in, classes)


# parameter counts from each architecture's own description, layer by layer
EXPECTED = {
    "pytorch_cnn": conv(1, 64, 5) + conv(64, 64, 3) + conv(64, 20, 3) + linear(2000, 10),
    "lenet5": conv(1, 6, 5) + conv(6, 16, 5) + conv(16, 120, 5) + linear(120, 84) + linear(84, 10),
    "resnet18": resnet18_params(),
    "blog_cnn": conv(1, 32, 3) + conv(32, 64, 3) + linear(1600, 64) + linear(64, 10),
    "blog_resnet": (conv(1, 32, 3) + conv(32, 64, 3) + linear(1600, 64) + linear(64, 10)
                    + 2 * conv(32, 32, 3) + 2 * conv(64, 64, 3)),
    # the same layers as blog_resnet: only the two skip additions differ
    "blog_deep_plain": (conv(1, 32, 3) + conv(32, 64, 3) + linear(1600, 64) + linear(64, 10)
                        + 2 * conv(32, 32, 3) + 2 * conv(64, 64, 3)),
    "lenet_variant": conv(1, 6, 5) + conv(6, 12, 5) + linear(12 * 4 * 4, 10),
    # 004: conv3-conv5 on 3x3 maps, the last pool leaves 1x1x256 for the FC layers
    "alexnet_mod": (conv(1, 96, 5) + conv(96, 256, 5) + conv(256, 384, 3) + conv(384, 384, 3) + conv(384, 256, 3)
                    + linear(256, 4096) + linear(4096, 4096) + linear(4096, 10)),
    "alexnet_ir": alexnet_ir_params(),
    "resnet_hccr": resnet_hccr_params(),
    "resnet_hccr_plain": resnet_hccr_params(learned=False),
    "inception_hccr": inception_hccr_params(),
}


def test_every_model_has_an_expected_count():
    assert sorted(EXPECTED) == list_models()


@pytest.mark.parametrize("name", list_models())
def test_forward_backward(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=7)
    # 28x28 for all: the 000 networks end in global pooling, and tests/test_p000_resnet_hccr.py runs them at 108x108
    x = torch.randn(4, 1, 28, 28)
    out = model(x)
    assert out.shape == (4, 7)
    assert torch.isfinite(out).all()
    if hasattr(model, "forward_with_aux"):  # the training objective also reaches the auxiliary head
        out, aux = model.forward_with_aux(x)
        out = torch.cat([out, aux])
    out.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"parameters without gradient: {missing}"


@pytest.mark.parametrize("name", list_models())
def test_parameter_count_matches_architecture(name):
    assert count_params(create_model(name)) == EXPECTED[name]
    assert layer_table(create_model(name))["params"].sum() == EXPECTED[name]


def test_002_shapes_follow_the_paper():
    shapes = layer_table(create_model("pytorch_cnn")).set_index("layer")["output"]
    assert shapes["features.0"] == (64, 24, 24) and shapes["features.2"] == (64, 12, 12)
    assert shapes["features.3"] == (64, 10, 10) and shapes["features.5"] == (20, 10, 10)


def test_unknown_model_lists_known_ones():
    with pytest.raises(ValueError, match=r"unknown model 'nope'.*pytorch_cnn"):
        create_model("nope")
    with pytest.raises(ValueError, match="num_classes"):
        create_model("lenet5", num_classes=1)
    with pytest.raises(ValueError, match="activation"):
        create_model("pytorch_cnn", activation="swish")


def test_in_chans():
    assert create_model("resnet18", in_chans=3)(torch.randn(2, 3, 28, 28)).shape == (2, 10)


def test_skip_connections_found_by_tracing():
    assert residual_adds(create_model("blog_cnn")) == 0  # the blog's published code
    assert residual_adds(create_model("blog_resnet")) == 2
    assert residual_adds(create_model("blog_deep_plain")) == 0
    assert residual_adds(create_model("resnet18")) == 8
    assert residual_adds(create_model("alexnet_ir")) == 1 and residual_adds(create_model("alexnet_mod")) == 0
