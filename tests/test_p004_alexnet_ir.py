"""Paper 004: the two architectures, the paper's training schedule, the config, a run folder, the summary section."""
import json
import os

import matplotlib
import pandas as pd
import pytest
import torch
import torch.nn as nn

from hwrlib.data import TensorLoader, load_mnist
from hwrlib.experiments import P004Config
from hwrlib.experiments import p004_figures as figs
from hwrlib.experiments import run_experiment
from hwrlib.models import count_params, create_model, layer_table
from hwrlib.models.layers import LocalResponseNorm
from hwrlib.results import load_runs
from hwrlib.train import Loop, Plateau, fit, make_optimizer, score, standard_update

matplotlib.use("Agg")


def test_improved_model_follows_table1():
    shapes = layer_table(create_model("alexnet_ir")).set_index("layer")["output"]
    assert shapes["stage1.1.2"] == (32, 28, 28) and shapes["stage1.2"] == (32, 14, 14)    # Conv1-2, Maxpooling1
    assert shapes["stage2.1.2"] == (128, 14, 14) and shapes["stage2.2"] == (128, 7, 7)    # Conv2-2, Maxpooling2
    assert shapes["mixed.project.1"] == (128, 7, 7) and shapes["pool3"] == (128, 3, 3)    # Mixed, Maxpooling3
    assert shapes["conv3.2"] == (256, 3, 3) and shapes["pool4"] == (256, 1, 1)            # the table's sizes
    assert shapes["classifier.0"] == (1024,) and shapes["classifier.3"] == (10,)
    valid = layer_table(create_model("alexnet_ir", conv3_padding="valid")).set_index("layer")["output"]
    assert valid["conv3.2"] == (256, 1, 1)  # the table's padding column: no pool needed
    assert count_params(create_model("alexnet_ir", conv3_padding="valid")) == count_params(create_model("alexnet_ir"))
    # BN after every conv, before its activation
    mods = list(create_model("alexnet_ir").modules())
    convs = [i for i, m in enumerate(mods) if isinstance(m, nn.Conv2d)]
    assert len(convs) == 10 and all(isinstance(mods[i + 1], nn.BatchNorm2d) for i in convs)
    with pytest.raises(ValueError, match="conv3_padding"):
        create_model("alexnet_ir", conv3_padding="full")


def test_alexnet_maps_and_claimed_counts():
    shapes = layer_table(create_model("alexnet_mod")).set_index("layer")["output"]
    # conv1 5x5/1 on 28x28, overlapping 3/2 pools; "Conv3, Conv4 and Conv5 have 3x3 feature maps" (§2)
    assert shapes["features.0"] == (96, 24, 24) and shapes["features.3"] == (96, 11, 11)
    assert shapes["features.7"] == (256, 3, 3) and shapes["features.8"] == (384, 3, 3)  # conv2 + pool, conv3
    assert shapes["features.10"] == (384, 3, 3) and shapes["features.12"] == (256, 3, 3)  # conv4, conv5
    assert shapes["features.14"] == (256, 1, 1)
    mod, ir = count_params(create_model("alexnet_mod")), count_params(create_model("alexnet_ir"))
    assert abs(mod / 2.1e7 - 1) < 0.1 and abs(ir / 8e5 - 1) < 0.1
    lrn = create_model("alexnet_mod").features[2]  # AlexNet's constants, in the faster exact LRN
    assert isinstance(lrn, LocalResponseNorm) and (lrn.size, lrn.alpha, lrn.beta, lrn.k) == (5, 1e-4, 0.75, 2.0)


def test_plateau_rule_on_a_scripted_loss_sequence():
    """Halve after 2 epochs without a new best, stop after 6; a new best resets both counts."""
    model = nn.Linear(2, 2)
    opt = torch.optim.Adam(model.parameters(), lr=1.0)
    p = Plateau(lr_patience=2, stop_patience=6)
    losses = [1.0, 0.9, 0.95, 0.95, 0.95, 0.8, 0.85, 0.85, 0.85, 0.85, 0.85, 0.85, 0.1]
    lrs, stopped_at = [], None
    for epoch, loss in enumerate(losses, 1):
        lrs.append(opt.param_groups[0]["lr"])
        p.after_eval({"val_loss": loss}, epoch, model, opt)
        if p.stopped:
            stopped_at = epoch
            break
    assert lrs == [1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.125, 0.125]
    assert stopped_at == 12 and p.best_epoch == 6 and p.best_loss == 0.8


class Stop(Exception):
    pass


def _fit_forced_plateau(ckpt=None, stop_at=None, snapshots=None):
    """A linear model on real MNIST whose validation loss cannot move: its validation images are blank and it
    has no bias, so every logit is 0 and the loss stays ln 10 after epoch 1."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10, bias=False))
    x, y = load_mnist("train50k")
    train = TensorLoader(x[:256], y[:256], 32, shuffle=True, seed=0, mean=0.0, std=1.0)
    val = [(torch.zeros(64, 1, 28, 28), y[:64])]
    xt, yt = load_mnist("test")
    test = TensorLoader(xt[:200], yt[:200], 100, mean=0.0, std=1.0)
    opt = make_optimizer("adam", model.parameters(), 0.01)

    def on_epoch(history):
        if snapshots is not None:
            snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        if len(history) == stop_at:
            raise Stop
    cpu = torch.device("cpu")
    loop = Loop(standard_update(model, opt, cpu), evaluate=lambda m: score(m, {"val": val, "test": test}, cpu),
                on_eval=lambda run: on_epoch(run.metrics))
    run = fit(model, train, opt, cpu, loop, num_steps=30 * len(train), schedule=Plateau(2, 6), checkpoint=ckpt,
              progress=False)
    return model, pd.DataFrame(run.metrics)


def test_fit_halves_stops_early_and_restores_best_weights(mnist_ready, one_thread, tmp_path):
    snaps = []
    model, h = _fit_forced_plateau(snapshots=snaps)
    assert (h["val_loss"] - torch.log(torch.tensor(10.0)).item()).abs().max() < 1e-6
    assert h["lr"].tolist() == [0.01, 0.01, 0.01, 0.005, 0.005, 0.0025, 0.0025]  # epoch 7: 6 without a new best
    assert h["test_acc"].iloc[-1] > 0.6  # it did learn the training task
    final = model.state_dict()["1.weight"]
    assert torch.equal(final, snaps[0]["1.weight"]) and not torch.equal(final, snaps[-1]["1.weight"])
    # interrupted after epoch 4 (just after the first cut) and resumed: the same epochs, lrs and weights
    ckpt = tmp_path / "checkpoint.pt"
    with pytest.raises(Stop):
        _fit_forced_plateau(ckpt=ckpt, stop_at=4)
    resumed, h2 = _fit_forced_plateau(ckpt=ckpt)
    assert h2.drop(columns="seconds").equals(h.drop(columns="seconds"))
    assert torch.equal(resumed.state_dict()["1.weight"], final)


def test_plateau_needs_a_validation_loss(mnist_ready):
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    x, y = load_mnist("test")
    test = TensorLoader(x[:64], y[:64], 32)
    cpu = torch.device("cpu")
    opt = make_optimizer("adam", model.parameters(), 0.1)
    loop = Loop(standard_update(model, opt, cpu), evaluate=lambda m: score(m, {"test": test}, cpu))
    with pytest.raises(ValueError, match="val_loss"):
        fit(model, test, opt, cpu, loop, num_steps=2, schedule=Plateau(), progress=False)


def test_smoke_run_writes_a_complete_reproducible_folder(mnist_ready, results_tmp, one_thread):
    cfg = P004Config.from_params(profile="smoke", compare_models=[], num_epochs=2)
    run = run_experiment(cfg, progress=False)[0]
    files = {p.name for p in run.path.iterdir()}
    assert files == {"config.yaml", "metrics.csv", "final.json"}  # checkpoint removed once final.json exists
    assert list(run.metrics.columns) == ["epoch", "step", "samples", "lr", "seconds", "train_loss", "train_acc",
                                         "val_loss", "val_acc", "test_loss", "test_acc"]
    final = json.loads((run.path / "final.json").read_text())
    assert final["num_params"] == count_params(create_model("alexnet_ir"))
    assert (final["num_train"], final["num_val"], final["num_test"]) == (96, 64, 128)
    best = run.metrics.set_index("epoch").loc[final["best_val_epoch"]]
    assert final["best_val_test_acc"] == best["test_acc"] and final["best_val_loss"] == run.metrics["val_loss"].min()
    assert final["final_test_acc"] == run.metrics["test_acc"].iloc[-1]  # the last evaluation's, as everywhere
    assert final["git_commit"] and final["torch"] == torch.__version__ and final["mean_epoch_seconds"] > 0
    # the optimizer's kernels are recorded: Adam on CPU float parameters runs fused unless HWR_FUSED=0
    assert final["fused_optimizer"] is (os.environ.get("HWR_FUSED", "1") != "0")
    runs = load_runs()
    assert len(runs) == 1 and runs.iloc[0]["model"] == "alexnet_ir" and runs.iloc[0]["val_size"] == 64
    again = run_experiment(P004Config.from_params(profile="smoke", compare_models=[], num_epochs=2,
                                                  results_dir=str(results_tmp / "again")), progress=False)[0]
    assert again.metrics.drop(columns="seconds").equals(run.metrics.drop(columns="seconds"))


def _fake_run(root, model, seed, accs, seconds, profile="paper", train_split=None):
    """A finished run of 004's protocol (``model`` at ``profile``, under ``train_split``) with these accuracies."""
    from hwrlib.results import RunDir
    cfg = P004Config.build({"profile": profile, "seed": seed, "compare_models": [],
                            **({"train_split": train_split} if train_split else {})}).for_model(model)
    rd = RunDir("004", cfg.record(), root)
    rd.write_config()
    rd.write_metrics([{"epoch": i + 1, "train_loss": 1 - a, "test_acc": a} for i, a in enumerate(accs)])
    rd.write_final({"final_test_acc": accs[-1], "best_val_test_acc": accs[-1], "epochs": len(accs), "num_train": 50_000,
                    "train_images_per_second": 50_000 / seconds, "mean_epoch_seconds": seconds, "device": "cpu"})


def test_report_section_from_records(tmp_path):
    empty = figs.extras(load_runs(tmp_path / "none"))  # no runs yet: Table 2 says so, no figure
    measured = empty.blocks[1].set_index("method")["measured (best validation epoch)"]
    assert not empty.figures and set(measured[~measured.index.str.contains("quoted")]) == {"not yet run"}
    for seed, (a, b) in enumerate([(0.996, 0.992), (0.998, 0.994)]):
        _fake_run(tmp_path, "alexnet_ir", seed, [0.99, a], 300.0)
        _fake_run(tmp_path, "alexnet_mod", seed, [0.98, b], 1500.0)
    runs = load_runs(tmp_path)
    t2 = figs.table2(runs).set_index("method")
    assert t2.loc["improved model (this paper)", "measured (best validation epoch)"] == "99.70% ± 0.14%"
    assert t2.loc["LeNet-5", "measured (best validation epoch)"] == "not yet run"
    assert t2.loc["AlexNet, modified for 28x28", "n"] == 2
    r = figs.ratios(runs).set_index("quantity")
    assert r.loc["seconds per 50,000-image epoch", "measured ratio"] == pytest.approx(0.2)
    assert r.loc["parameters", "measured ratio"] == pytest.approx(786_346 / 21_589_706, abs=1e-3)
    # Fig. 4: the improved runs have the lower loss and the higher accuracy at both epochs
    assert figs.judge_loss_lower(runs, {})["verdict"] == "reproduced"
    acc = figs.judge_accuracy_higher(runs, {})
    assert acc["verdict"] == "reproduced" and (acc["n"], acc["than_n"]) == (2, 2)
    assert "epoch 2: 99.7 % vs 99.3 %" in acc["measured"]
    assert figs.judge_accuracy_higher(runs[runs["model"] == "alexnet_ir"], {})["verdict"] == "not yet run"
    # the same records with the models' roles swapped violate both claims
    ids = runs.drop_duplicates("model").set_index("model")["protocol"]
    swapped = runs.assign(protocol=runs["protocol"].map({ids["alexnet_ir"]: ids["alexnet_mod"],
                                                         ids["alexnet_mod"]: ids["alexnet_ir"]}))
    assert figs.judge_loss_lower(swapped, {})["verdict"] == "not reproduced"
    assert figs.judge_accuracy_higher(swapped, {})["verdict"] == "not reproduced"
    h = figs.curves(runs)
    assert len(h) == 8 and set(h["label"]) == {figs.LABELS["alexnet_ir"], figs.LABELS["alexnet_mod"]}
    shown = figs.extras(runs)
    assert list(shown.figures) == ["004_fig4_50k_val10k"] and shown.blocks[1].equals(figs.table2(runs))


def test_fig4_and_epoch_time_verdicts_judge_only_their_reading(tmp_path):
    """Runs of the 60k reading judge that reading's Fig. 4 claims; the 50k reading stays unrun, a quick-profile
    pair enters no verdict, and the epoch-time claim waits for its timing record."""
    from hwrlib.summary import claims_table
    from hwrlib.verdict import Verdict
    for seed in (0, 1):
        _fake_run(tmp_path, "alexnet_ir", seed, [0.99, 0.996], 300.0, train_split="60k_val_test")
        _fake_run(tmp_path, "alexnet_mod", seed, [0.98, 0.992], 1500.0, train_split="60k_val_test")
    # a quick pair whose improved model is the less accurate: it would sink the 60k verdict if it entered
    _fake_run(tmp_path, "alexnet_ir", 0, [0.90, 0.91], 30.0, profile="quick", train_split="60k_val_test")
    _fake_run(tmp_path, "alexnet_mod", 0, [0.95, 0.96], 300.0, profile="quick", train_split="60k_val_test")
    t = claims_table(load_runs(tmp_path), "004").set_index(["id", "reading"])
    for cid in ("004.fig4_loss", "004.fig4_accuracy"):
        assert t.loc[(cid, "60k_val_test"), "verdict"] == "reproduced", cid
        assert t.loc[(cid, "60k_val_test"), "n"] == 2 and t.loc[(cid, "50k_val10k"), "verdict"] == "not yet run"
    # the epoch-time claim reads the timing record (results/timing/, none here), never the runs' epoch times
    for reading in ("plain_loop", "hwrlib_loop"):
        assert t.loc[("004.epoch_time_ratio", reading), "verdict"] == "not yet run"
    # a quick-profile notebook sees its own pair, as an indication only
    quick = claims_table(load_runs(tmp_path), "004", kinds=("curve",), profile="quick").set_index(["id", "reading"])
    assert quick.loc[("004.fig4_accuracy", "60k_val_test"), "verdict"] is Verdict.INDICATION
