import gzip
import pickle
import shutil
from importlib import resources

import numpy as np
import pytest
import torch

from hwrlib.data import (MEAN, STD, DataError, IDXError, MissingDataError, TensorLoader, load_mnist, prepare_mnist,
                         read_idx, write_idx)
from hwrlib.data import mnist
from hwrlib.data.idx import idx_bytes
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
    with pytest.raises(IDXError, match=r"bad-idx3-ubyte.*bad magic"):
        read_idx(p)
    p.write_bytes(gzip.compress(idx_bytes(np.zeros(3, np.uint8))))  # a .gz saved without its suffix
    with pytest.raises(IDXError, match=r"bad-idx3-ubyte.*magic.*name the file \*\.gz"):
        read_idx(p)


def test_idx_truncated_names_file(tmp_path):
    p = tmp_path / "trunc-idx3-ubyte"
    write_idx(p, np.zeros((10, 28, 28), np.uint8))
    p.write_bytes(p.read_bytes()[:-100])
    with pytest.raises(IDXError, match=r"trunc-idx3-ubyte: truncated.*expected 7856 bytes, got 7756; re-download"):
        read_idx(p)
    p.write_bytes(b"\x00\x00")
    with pytest.raises(IDXError, match=r"trunc-idx3-ubyte: truncated"):
        read_idx(p)


@pytest.mark.parametrize("damage", ["not gzip", "cut", "corrupt"])
def test_idx_bad_gzip_names_file(tmp_path, damage):
    gz = gzip.compress(idx_bytes(np.arange(5000, dtype=np.int32)))
    p = tmp_path / "x-idx1-ubyte.gz"
    # BadGzipFile, EOFError and zlib.error respectively, none of which names the file by itself
    p.write_bytes({"not gzip": idx_bytes(np.zeros(3, np.uint8)), "cut": gz[:len(gz) // 2],
                   "corrupt": gz[:20] + bytes(200) + gz[220:]}[damage])
    with pytest.raises(IDXError, match=r"x-idx1-ubyte\.gz: bad gzip file.*; fetch it again") as e:
        read_idx(p, fix="fetch it again")
    assert isinstance(e.value, DataError) and isinstance(e.value, ValueError)


def test_idx_missing_file(tmp_path):
    with pytest.raises(MissingDataError, match="nope") as e:
        read_idx(tmp_path / "nope")
    assert isinstance(e.value, FileNotFoundError)


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


NAMES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


def _small_set(tmp_path, monkeypatch, n=(60, 10)):
    """Four small, well-formed MNIST-shaped files in tmp_path's raw folder, with the official counts set to them."""
    monkeypatch.setattr(mnist, "COUNTS", {"train": n[0], "test": n[1]})
    d = raw_dir(tmp_path)
    rng = np.random.default_rng(0)
    for (img, lab), k in zip([NAMES[:2], NAMES[2:]], n):
        write_idx(d / img, rng.integers(0, 256, (k, 28, 28), dtype=np.uint8))
        write_idx(d / lab, rng.integers(0, 10, k, dtype=np.uint8))
    return d


def _gzip_file(path):
    path.with_name(path.name + ".gz").write_bytes(gzip.compress(path.read_bytes(), compresslevel=1))
    path.unlink()


def _snapshot(d):
    return {f.name: (f.stat().st_mtime_ns, f.read_bytes()) for f in sorted(d.iterdir())}


def test_load_mnist_reads_gz_like_plain(tmp_path, monkeypatch):
    d = _small_set(tmp_path, monkeypatch)
    plain = load_mnist("test", tmp_path)
    _gzip_file(d / NAMES[2])
    _gzip_file(d / NAMES[3])
    gz = load_mnist("test", tmp_path)
    assert torch.equal(plain[0], gz[0]) and torch.equal(plain[1], gz[1]) and len(gz[1]) == 10
    write_idx(d / NAMES[2], plain[0].numpy())  # the same data both ways: fine
    assert torch.equal(load_mnist("test", tmp_path)[0], plain[0])
    write_idx(d / NAMES[2], 255 - plain[0].numpy())
    with pytest.raises(DataError, match=rf"{NAMES[2]} and .*{NAMES[2]}\.gz both exist but hold different data"):
        load_mnist("test", tmp_path)


def test_load_mnist_counts_must_pair_and_be_official(tmp_path, monkeypatch):
    d = _small_set(tmp_path, monkeypatch)
    write_idx(d / NAMES[3], np.zeros(9, np.uint8))
    with pytest.raises(DataError, match=rf"{NAMES[2]} has 10 images but .*{NAMES[3]} has 9 labels.*re-download"):
        load_mnist("test", tmp_path)
    monkeypatch.setattr(mnist, "COUNTS", {"train": 60_000, "test": 10_000})
    with pytest.raises(DataError, match=rf"{NAMES[0]} and .*{NAMES[1]} hold 60 samples, the official MNIST train "
                                        r"set has 60,000 \(split 'valid10k' needs them all\)"):
        load_mnist("valid10k", tmp_path)


def test_load_mnist_rejects_bad_labels_and_image_size(tmp_path, monkeypatch):
    d = _small_set(tmp_path, monkeypatch)
    write_idx(d / NAMES[3], np.full(10, 11, np.uint8))
    with pytest.raises(DataError, match=rf"{NAMES[3]}: label 11 out of range 0..9; re-download the official file"):
        load_mnist("test", tmp_path)
    write_idx(d / NAMES[2], np.zeros((10, 32, 32), np.uint8))
    with pytest.raises(DataError, match=rf"{NAMES[2]}: not an MNIST file: .*28x28.*\(10, 32, 32\)"):
        load_mnist("test", tmp_path)
    write_idx(d / NAMES[0], np.zeros((60, 28, 28), np.float32))
    with pytest.raises(DataError, match=rf"{NAMES[0]}: not an MNIST file: expected uint8.*float32"):
        load_mnist("train", tmp_path)


def test_load_mnist_rejects_truncated_gz(tmp_path, monkeypatch):
    d = _small_set(tmp_path, monkeypatch)
    _gzip_file(d / NAMES[0])
    f = d / (NAMES[0] + ".gz")
    f.write_bytes(f.read_bytes()[:-50])
    with pytest.raises(IDXError, match=rf"{NAMES[0]}\.gz: bad gzip file.*EOFError.*or delete the MNIST files in "):
        load_mnist("train", tmp_path)


def test_load_mnist_missing_file_says_how_to_fix(tmp_path):
    raw_dir(tmp_path).mkdir(parents=True)
    with pytest.raises(MissingDataError, match=rf"{NAMES[0]} \(or {NAMES[0]}\.gz\) is missing.*make data") as e:
        load_mnist("train", tmp_path)
    assert isinstance(e.value, FileNotFoundError)
    with pytest.raises(ValueError, match="unknown MNIST split"):
        load_mnist("validation", tmp_path)


def test_prepare_stops_on_partial_set_and_touches_nothing(tmp_path, monkeypatch):
    d = _small_set(tmp_path, monkeypatch)
    (d / NAMES[1]).unlink()
    (d / NAMES[3]).unlink()
    _gzip_file(d / NAMES[2])
    before = _snapshot(d)
    with pytest.raises(MissingDataError, match=rf"only part of MNIST: {NAMES[1]}, {NAMES[3]} \(plain or .gz\) "
                                               r"missing; nothing was written.*delete the MNIST files"):
        prepare_mnist(tmp_path)
    assert _snapshot(d) == before


def test_prepare_fills_only_an_empty_folder(mnist_ready, tmp_path):
    d = raw_dir(tmp_path)
    d.mkdir(parents=True)
    (d / "notes.txt").write_text("not MNIST")  # other files do not count as a user's set
    assert prepare_mnist(tmp_path) == d
    assert sorted(f.name for f in d.iterdir()) == sorted(NAMES + ["notes.txt"])
    for name in NAMES:
        assert (d / name).read_bytes() == (raw_dir() / name).read_bytes()
    before = _snapshot(d)
    prepare_mnist(tmp_path)
    assert _snapshot(d) == before


def test_users_complete_set_is_used_not_overwritten(mnist_ready, tmp_path):
    """A user's own official files, partly .gz, here the real ones with the test images inverted."""
    d = _copy_raw(tmp_path)
    _gzip_file(d / NAMES[0])
    _gzip_file(d / NAMES[1])
    test_x, test_y = load_mnist("test")
    write_idx(d / NAMES[2], 255 - test_x.numpy())
    before = _snapshot(d)
    prepare_mnist(tmp_path)
    assert _snapshot(d) == before
    x, y = load_mnist("test", tmp_path)
    assert torch.equal(x, 255 - test_x) and torch.equal(y, test_y)
    x, y = load_mnist("train", tmp_path)  # the .gz pair: the same tensors as the plain files
    x0, y0 = load_mnist("train")
    assert torch.equal(x, x0) and torch.equal(y, y0)


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
