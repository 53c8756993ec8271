import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from hwrlib.data import TensorLoader, load_mnist
from hwrlib.experiments import P002Config, run_dirs, run_experiment
from hwrlib.models import create_model
from hwrlib.results import load_runs
from hwrlib.train import Loop, evaluate, fit, make_optimizer, resolve_device, score, standard_update


def train_run(cfg, progress=False):
    return run_experiment(cfg, progress)[0]


def _loaders(n=512, seed=0):
    x, y = load_mnist("train")
    xt, yt = load_mnist("test")
    return (TensorLoader(x[:n], y[:n], 32, shuffle=True, seed=seed),
            TensorLoader(xt[:500], yt[:500], 250))


def _fit(tmp_path=None, epochs=2, seed=0, name="pytorch_cnn", on_epoch=None, ckpt=None):
    torch.manual_seed(seed)
    model = create_model(name)
    train, test = _loaders(seed=seed)
    opt = make_optimizer("adam", model.parameters(), 1e-3)
    cpu = torch.device("cpu")
    loop = Loop(standard_update(model, opt, cpu), evaluate=lambda m: score(m, {"test": test}, cpu),
                on_eval=(lambda run: on_epoch(run.metrics)) if on_epoch else (lambda run: None))
    run = fit(model, train, opt, cpu, loop, num_steps=epochs * len(train), seed=seed, checkpoint=ckpt, progress=False)
    return model, run.metrics


def test_loss_falls_on_real_mnist(mnist_ready):
    torch.manual_seed(0)
    model = create_model("pytorch_cnn")
    train, test = _loaders()
    before = evaluate(model, test, torch.device("cpu"))
    opt = make_optimizer("adam", model.parameters(), 1e-3)
    cpu = torch.device("cpu")
    loop = Loop(standard_update(model, opt, cpu), evaluate=lambda m: score(m, {"test": test}, cpu))
    h = fit(model, train, opt, cpu, loop, num_steps=len(train), progress=False).metrics  # 16 steps
    assert h[0]["test_loss"] < 0.7 * before["loss"]
    assert h[0]["test_acc"] > before["acc"] + 0.3


def test_same_seed_same_history(mnist_ready, one_thread):
    m1, h1 = _fit(seed=1)
    m2, h2 = _fit(seed=1)
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert strip(h1) == strip(h2)
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))
    _, h3 = _fit(seed=2)
    assert strip(h3) != strip(h1)


class Interrupt(Exception):
    pass


def test_interrupted_then_resumed_equals_uninterrupted(mnist_ready, one_thread, tmp_path):
    full_model, full = _fit(epochs=3, name="lenet5")

    def stop_after_first(history):
        if len(history) == 1:
            raise Interrupt
    ckpt = tmp_path / "checkpoint.pt"
    with pytest.raises(Interrupt):
        _fit(epochs=3, name="lenet5", ckpt=ckpt, on_epoch=stop_after_first)
    assert ckpt.exists()
    resumed_model, resumed = _fit(epochs=3, name="lenet5", ckpt=ckpt, seed=0)
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert strip(resumed) == strip(full)
    for a, b in zip(full_model.state_dict().values(), resumed_model.state_dict().values()):
        assert torch.equal(a, b)


def test_killed_run_resumes_and_is_never_a_result(mnist_ready, one_thread, results_tmp):
    """SIGKILL a training process after its first checkpoint, rerun: it resumes, and only then counts."""
    params = dict(model="lenet5", compare_models=[], num_epochs=3, train_size=6000, test_size=1000, seed=0, profile="quick")
    code = ("from hwrlib.experiments import P002Config, run_experiment;"
            f"run_experiment(P002Config.from_params(**{params!r}), progress=False)")
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "HWR_NUM_THREADS": "1"})
    run_dir = run_dirs(P002Config.from_params(**params))[0]
    deadline = time.time() + 120
    while not run_dir.checkpoint.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert run_dir.checkpoint.exists() and not run_dir.is_complete()
    assert load_runs().empty  # the half-finished run is not a result
    resumed = train_run(P002Config.from_params(**params), progress=False)
    assert len(resumed.metrics) == 3 and run_dir.is_complete() and not run_dir.checkpoint.exists()
    assert len(load_runs()) == 1
    # the same run from scratch, elsewhere: identical numbers
    fresh = train_run(P002Config.from_params(**params, results_dir=str(results_tmp / "fresh")), progress=False)
    cols = ["train_loss", "train_acc", "test_loss", "test_acc"]
    assert resumed.metrics[cols].equals(fresh.metrics[cols])


def test_device_resolution():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in {"cpu", "cuda", "mps"}
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


def test_bad_optimizer_and_epochs():
    with pytest.raises(ValueError, match="unknown optimizer 'adamw'"):
        make_optimizer("adamw", create_model("lenet5").parameters(), 0.1)
    with pytest.raises(ValueError, match="num_steps"):
        _fit(epochs=0)


def test_non_finite_loss_stops_the_run_and_leaves_no_result(mnist_ready, results_tmp, one_thread):
    from hwrlib.train import NonFiniteLoss
    cfg = P002Config.from_params(profile="smoke", compare_models=[], lr=1e30)  # Adam steps of ~1e30
    with pytest.raises(NonFiniteLoss, match="not finite by step") as e:
        run_experiment(cfg, progress=False)
    assert "002 pytorch_cnn" in str(e.value) and "learning rate" in str(e.value)
    rd = run_dirs(cfg)[0]
    assert not rd.is_complete() and load_runs().empty


def _interrupted_after_one_epoch(ckpt) -> None:
    """Train lenet5 for 2 epochs with a checkpoint at ``ckpt`` and stop it after the first."""
    class Stop(Exception):
        pass

    def stop(evals):
        raise Stop
    with pytest.raises(Stop):
        _fit(epochs=2, name="lenet5", ckpt=ckpt, on_epoch=stop)


def test_a_checkpoint_resumes_only_with_its_thread_count(mnist_ready, tmp_path):
    ckpt = tmp_path / "checkpoint.pt"
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        _interrupted_after_one_epoch(ckpt)
        torch.set_num_threads(2)
        with pytest.raises(RuntimeError, match="num_threads': 1.*num_threads': 2.*HWR_NUM_THREADS"):
            _fit(epochs=2, name="lenet5", ckpt=ckpt)
    finally:
        torch.set_num_threads(before)


def test_a_checkpoint_resumes_only_on_its_cpu(mnist_ready, tmp_path):
    ckpt = tmp_path / "checkpoint.pt"
    _interrupted_after_one_epoch(ckpt)
    state = torch.load(ckpt, weights_only=True)
    assert state["where"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability() and state["where"]["device_name"]
    # the same checkpoint as another machine would have written it: other kernels, other last digits
    torch.save({**state, "where": {**state["where"], "cpu_capability": "OTHER"}}, ckpt)
    with pytest.raises(RuntimeError, match="cpu_capability': 'OTHER'.*delete the checkpoint"):
        _fit(epochs=2, name="lenet5", ckpt=ckpt)
    # a checkpoint from before the machine fields resumes: what it does not say is not held against it
    where = {k: v for k, v in state["where"].items() if k not in ("device_name", "cpu_capability")}
    torch.save({**state, "where": where}, ckpt)
    metrics = _fit(epochs=2, name="lenet5", ckpt=ckpt)[1]
    assert len(metrics) == 2 and metrics[0] == state["metrics"][0]  # epoch 1 restored, epoch 2 trained


@pytest.mark.parametrize("device", ["cuda:abc", "cpu:0", "tpu", "cuda:"])
def test_device_strings_are_parsed_whole(device, monkeypatch):
    monkeypatch.delenv("HWR_PROFILE", raising=False)
    from hwrlib.config import ConfigError
    with pytest.raises(ConfigError, match="cuda:N") as e:
        P002Config.from_params(device=device)
    assert e.value.name == "device"


def test_a_missing_device_stops_the_validation_cell(monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("CUDA exists here")
    monkeypatch.delenv("HWR_PROFILE", raising=False)
    from hwrlib.config import ConfigError
    namespace = {**P002Config.defaults(), "device": "cuda"}
    with pytest.raises(ConfigError, match="CUDA is not available") as e:
        P002Config.from_notebook(namespace)
    assert e.value.name == "device"


def test_a_damaged_or_foreign_checkpoint_is_named_and_runs_no_code(mnist_ready, tmp_path):
    ckpt = tmp_path / "checkpoint.pt"
    ckpt.write_bytes(b"not a checkpoint")  # cut or overwritten
    with pytest.raises(RuntimeError, match="checkpoint.pt: not a checkpoint this code can resume.*Delete it"):
        _fit(epochs=1, name="lenet5", ckpt=ckpt)

    class Payload:  # a pickled object would run code on load if checkpoints were unpickled in full
        def __reduce__(self):
            return (print, ("ran",))
    torch.save({"model": Payload()}, ckpt)
    with pytest.raises(RuntimeError, match="not a checkpoint this code can resume"):
        _fit(epochs=1, name="lenet5", ckpt=ckpt)
