import gzip
import pickle
import shutil
from importlib import resources

import numpy as np
import pytest
import torch

from hwrlib.data import MEAN, STD, IDXError, TensorLoader, load_mnist, prepare_mnist, read_idx, write_idx
from hwrlib.data.mnist import raw_dir


@pytest.mark.parametrize("dtype,shape", [(np.uint8, (3, 28, 28)), (np.int32, (5,)), (np.float32, (2, 3)),
                                         (np.int16, (4, 1)), (np.float64, (2,))])
def test_idx_round_trip(tmp_path, dtype, shape):
    a = (np.arange(np.prod(shape)) % 120).astype(dtype).reshape(shape)
    write_idx(tmp_path / "a-idx", a)
    b = read_idx(tmp_path / "a-idx")
    assert b.dtype == np.dtype(dtype).newbyteorder("=") and b.shape == shape
    np.testing.assert_array_equal(a, b)


def test_idx_reads_gzip(tmp_path):
    a = np.arange(10, dtype=np.uint8)
    write_idx(tmp_path / "x", a)
    (tmp_path / "x.gz").write_bytes(gzip.compress((tmp_path / "x").read_bytes()))
    np.testing.assert_array_equal(read_idx(tmp_path / "x.gz"), a)


def test_idx_wrong_magic_names_file(tmp_path):
    p = tmp_path / "bad-idx3-ubyte"
    p.write_bytes(b"\x12\x34\x08\x01" + b"\x00" * 12)
    with pytest.raises(IDXError, match=r"bad-idx3-ubyte.*magic"):
        read_idx(p)


def test_idx_truncated_names_file(tmp_path):
    p = tmp_path / "trunc-idx3-ubyte"
    write_idx(p, np.zeros((10, 28, 28), np.uint8))
    p.write_bytes(p.read_bytes()[:-100])
    with pytest.raises(IDXError, match=r"trunc-idx3-ubyte.*truncated"):
        read_idx(p)


def test_idx_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        read_idx(tmp_path / "nope")


def test_prepared_mnist_equals_bundled_copy(mnist_ready):
    with resources.as_file(resources.files("mnist") / "data" / "mnist.pkl.gz") as p, gzip.open(p) as f:
        train, valid, test = pickle.load(f, encoding="latin1")
    x, y = load_mnist("train")
    assert x.shape == (60_000, 28, 28) and x.dtype == torch.uint8 and y.dtype == torch.int64
    assert y[:5].tolist() == [5, 0, 4, 1, 9]  # the official training order
    np.testing.assert_array_equal(x[:50_000].reshape(50_000, -1).numpy() / 256, train[0])
    xv, yv = load_mnist("valid10k")
    np.testing.assert_array_equal(xv.reshape(10_000, -1).numpy() / 256, valid[0])
    np.testing.assert_array_equal(yv.numpy(), valid[1])
    xt, yt = load_mnist("test")
    assert xt.shape == (10_000, 28, 28) and yt[:3].tolist() == [7, 2, 1]
    assert abs(x.float().mean().item() / 255 - MEAN) < 1e-4 and abs((x.float() / 255).std().item() - STD) < 1e-4


def _copy_raw(tmp_path):
    src = raw_dir()
    dst = raw_dir(tmp_path)
    shutil.copytree(src, dst)
    return dst


def test_load_mnist_rejects_truncated_file(mnist_ready, tmp_path):
    d = _copy_raw(tmp_path)
    f = d / "t10k-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:1000])
    with pytest.raises(IDXError, match="t10k-images-idx3-ubyte"):
        load_mnist("test", tmp_path)


def test_load_mnist_rejects_wrong_count_and_labels(mnist_ready, tmp_path):
    d = _copy_raw(tmp_path)
    write_idx(d / "t10k-labels-idx1-ubyte", np.zeros(9_999, np.uint8))
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte.*10000"):
        load_mnist("test", tmp_path)
    write_idx(d / "t10k-labels-idx1-ubyte", np.full(10_000, 11, np.uint8))
    with pytest.raises(ValueError, match="label 11 out of range"):
        load_mnist("test", tmp_path)


def test_load_mnist_missing_file_says_how_to_fix(tmp_path, monkeypatch):
    raw_dir(tmp_path).mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="make data"):
        load_mnist("train", tmp_path)
    with pytest.raises(ValueError, match="unknown MNIST split"):
        load_mnist("validation", tmp_path)


def test_prepare_is_idempotent(mnist_ready):
    before = {f.name: f.stat().st_mtime_ns for f in raw_dir().iterdir()}
    prepare_mnist()
    assert {f.name: f.stat().st_mtime_ns for f in raw_dir().iterdir()} == before


def test_loader_normalizes_like_totensor_normalize():
    x = torch.randint(0, 256, (10, 28, 28), dtype=torch.uint8)
    y = torch.arange(10)
    (xb, yb), = list(TensorLoader(x, y, batch_size=10))
    expected = (x.numpy().astype(np.float32) / 255 - MEAN) / STD
    np.testing.assert_allclose(xb[:, 0].numpy(), expected, rtol=1e-5, atol=1e-5)
    assert xb.shape == (10, 1, 28, 28) and torch.equal(yb, y)


def test_loader_shuffle_is_seeded_per_epoch_and_covers_everything():
    x = torch.arange(100, dtype=torch.uint8).view(100, 1, 1).expand(100, 2, 2).contiguous()
    y = torch.arange(100)
    loader = TensorLoader(x, y, batch_size=32, shuffle=True, seed=3)
    order = lambda: torch.cat([b for _, b in loader]).tolist()  # noqa: E731
    first = order()
    assert sorted(first) == list(range(100)) and first != list(range(100)) and len(loader) == 4
    assert order() == first  # same epoch -> same order
    loader.set_epoch(1)
    assert order() != first
    again = TensorLoader(x, y, batch_size=32, shuffle=True, seed=3)
    again.set_epoch(1)
    assert torch.cat([b for _, b in again]).tolist() == order()
    with pytest.raises(ValueError, match="batch_size"):
        TensorLoader(x, y, batch_size=0)
