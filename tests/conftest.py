import os

import pytest
import torch

from hwrlib.data import prepare_mnist


@pytest.fixture(scope="session")
def mnist_ready() -> None:
    """Real MNIST as IDX files in the default data dir (idempotent, ~5 s the first time)."""
    prepare_mnist()


@pytest.fixture
def results_tmp(tmp_path, monkeypatch):
    """A private results store, so tests never touch results/."""
    monkeypatch.setenv("HWR_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.delenv("HWR_PROFILE", raising=False)
    return tmp_path / "results"


@pytest.fixture
def one_thread(monkeypatch):
    """CPU results are bit-identical only at a fixed thread count."""
    before = torch.get_num_threads()
    monkeypatch.setenv("HWR_NUM_THREADS", "1")
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
    os.environ.pop("HWR_NUM_THREADS", None)
