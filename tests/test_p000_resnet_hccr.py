"""Paper 000: the networks, the loss and its prod a_i term, eq. 8/9 smoothing, the config, a smoke run."""
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from hwrlib.config import ConfigError
from hwrlib.experiments import P000Config, experiment_config, run_experiment
from hwrlib.experiments.p000_figures import table1, table1_runs, window_mean
from hwrlib.experiments.p000_resnet_hccr import HCCRLoss, load_data, make_loaders
from hwrlib.models import count_params, create_model, layer_table
from hwrlib.models.resnet_hccr import prod_a, shortcut_scalars
from hwrlib.results import load_runs
from hwrlib.train import Loop, fit, make_optimizer, score, standard_update
from test_models import inception_hccr_params, resnet_hccr_params

SMALL = ((4, 8), (5, 16), (5, 32), (4, 64))  # width 0.125


@pytest.mark.parametrize("name,expected", [
    ("resnet_hccr", resnet_hccr_params(20, True, SMALL)),
    ("resnet_hccr_plain", resnet_hccr_params(20, False, SMALL)),
    ("inception_hccr", inception_hccr_params(20, SMALL)),
])
def test_parameter_arithmetic_small_width(name, expected):
    model = create_model(name, num_classes=20, width=0.125)
    assert count_params(model) == expected
    table = layer_table(model, (1, 1, 108, 108))
    assert table["params"].sum() == expected  # the auxiliary head appears though eval skips it
    assert table.set_index("layer").loc["fc", "output"] == (20,)
    skipped = table.loc[table["output"].isna(), "layer"]  # leaves the evaluation pass never ran: the auxiliary head's
    assert "aux.fc" in set(skipped) and skipped.str.startswith("aux.").all()


def test_shapes_at_108_and_aux_only_in_training():
    model = create_model("resnet_hccr", num_classes=20, width=0.125)
    x = torch.rand(2, 1, 108, 108)
    main, aux = model.train().forward_with_aux(x)
    assert main.shape == aux.shape == (2, 20)
    assert model.eval().forward_with_aux(x)[1] is None
    assert shortcut_scalars(model).shape == (18,)
    assert create_model("resnet_hccr", width=0.01).stem[0].out_channels == 8  # the floor (see models.resnet_hccr)


def test_scalars_learned_in_improved_fixed_in_plain():
    torch.manual_seed(0)
    improved = create_model("resnet_hccr", num_classes=5, width=0.125)
    plain = create_model("resnet_hccr_plain", num_classes=5, width=0.125)
    improved.load_state_dict(plain.state_dict())  # the same weights; a_i = 1
    x = torch.rand(3, 1, 108, 108)
    improved.eval(), plain.eval()
    assert torch.allclose(improved(x), plain(x))
    loss = HCCRLoss(improved, 0.4, 1e-4, 0.0)(improved.train(), x, torch.tensor([0, 1, 2]))["loss"]
    loss.backward()
    a = [m.a for m in improved.modules() if hasattr(m, "learned")]
    assert all(p.requires_grad and p.grad is not None and p.grad != 0 for p in a)
    assert not any(p.requires_grad for n, p in plain.named_buffers() if n.endswith("scale.a"))
    assert all("scale.a" not in n for n, _ in plain.named_parameters()) and float(prod_a(plain)) == 1.0
    with torch.no_grad():
        a[3].fill_(0.5)
    assert not torch.allclose(improved.eval()(x), plain(x))
    assert prod_a(create_model("inception_hccr", width=0.125)) is None


@pytest.mark.parametrize("value,sign", [(1.1, 1), (0.9, -1)])
def test_prod_regularizer_gradient_pushes_product_to_one(value, sign):
    model = create_model("resnet_hccr", num_classes=5, width=0.125)
    a = shortcut_scalars(model)
    with torch.no_grad():
        for m in model.modules():
            if hasattr(m, "learned"):
                m.a.fill_(value ** (1 / 18))  # prod a_i = value
    parts = HCCRLoss(model, 0.0, 0.0, 2.0)(model.train(), torch.rand(2, 1, 108, 108), torch.tensor([0, 1]))
    assert parts["prod"].item() == pytest.approx(2.0 * abs(value - 1), abs=1e-5)  # float32 product of 18
    parts["prod"].backward()
    grads = torch.stack([m.a.grad for m in model.modules() if hasattr(m, "learned")])
    # d/da_i of 2 |prod - 1| = 2 sign(prod - 1) prod / a_i
    assert torch.allclose(grads, sign * 2.0 * value / shortcut_scalars(model).detach(), rtol=1e-4)
    assert a.shape == (18,)


def test_aux_head_is_part_of_the_training_loss():
    torch.manual_seed(0)
    model = create_model("resnet_hccr", num_classes=5, width=0.125).train()
    x, y = torch.rand(4, 1, 108, 108), torch.tensor([0, 1, 2, 3])
    torch.manual_seed(1)
    with_aux = HCCRLoss(model, 0.4, 0.0, 0.0)(model, x, y)
    no_aux = HCCRLoss(model, 0.0, 0.0, 0.0)(model, x, y)
    assert with_aux["loss"].item() == pytest.approx(no_aux["loss"].item() + 0.4 * with_aux["auxiliary"].item(),
                                                     rel=1e-4)
    with_aux["loss"].backward()
    assert model.aux.fc.weight.grad.abs().sum() > 0
    assert set(with_aux) == {"softmax", "auxiliary", "weight_decay", "prod", "regularization", "loss"}


def test_window_mean_by_hand():
    v = [1.0, 2.0, 3.0, 4.0, 10.0]
    assert np.allclose(window_mean(v, 1), [1.5, 2.0, 3.0, 17 / 3, 7.0])
    assert np.allclose(window_mean(v, 2), [2.0, 2.5, 4.0, 19 / 4, 17 / 3])
    printed = window_mean(v, 1, paper_divisor=True)  # eq. 8 as printed: sum of 2i+1 values / 2i
    assert np.isnan(printed[[0, 4]]).all() and np.allclose(printed[1:4], [3.0, 4.5, 8.5])
    assert np.array_equal(window_mean(v, 0), v)
    with pytest.raises(ValueError, match="i must be >= 0"):
        window_mean(v, -1)


def test_profiles_and_explicit_length(monkeypatch):
    monkeypatch.delenv("HWR_PROFILE", raising=False)
    assert experiment_config("000") is P000Config
    paper = P000Config.from_params(profile="paper")
    assert (paper.width, paper.num_steps, paper.num_epochs) == (1.0, 600_000, None)
    quick = P000Config.from_params(num_steps=50)  # a length given replaces the profile's
    assert (quick.num_steps, quick.num_epochs) == (50, None)
    assert P000Config.from_params(prod_weight=0.0).demo_counterpart().prod_weight == 1.0
    assert P000Config.from_params(model="inception_hccr").demo_counterpart() is None


def train_runs(cfg):
    return run_experiment(cfg, progress=False)


def train_run(cfg):
    return train_runs(cfg)[0]


def _smoke(results_tmp, **kw):
    return P000Config.from_params(profile="smoke", results_dir=str(results_tmp), **kw)


def test_smoke_run_writes_a_complete_folder(results_tmp, one_thread, monkeypatch):
    runs = train_runs(_smoke(results_tmp))
    assert [r.config["prod_weight"] for r in runs] == [0.01, 0.0]  # the run and its prod_a demo counterpart
    run = runs[0]
    for f in ("config.yaml", "metrics.csv", "steps.csv", "final.json"):
        assert (run.path / f).exists()
    assert not (run.path / "checkpoint.pt").exists()
    final = json.loads((run.path / "final.json").read_text())
    assert 0 <= final["final_test_top5"] <= 1 and final["final_test_top5"] >= final["final_test_acc"]
    assert final["dataset"] == "synth" and "SYNTHETIC" in final["dataset_note"] and final["num_steps"] == 4
    assert len(final["final_a"]) == 18 and final["final_prod_a"] == pytest.approx(math.prod(final["final_a"]))
    assert yaml.safe_load((run.path / "config.yaml").read_text())["dataset"] == "synth"
    assert list(run.metrics["step"]) == [2, 4] and {"val_top5", "test_top5", "prod_a"} <= set(run.metrics)
    steps = run.table("steps")
    assert len(steps) == 4 and {"softmax", "auxiliary", "regularization", "loss", "a_18"} <= set(steps)
    assert final["final_test_acc"] == run.metrics["test_acc"].iloc[-1]
    assert final["best_val_test_acc"] == run.metrics.loc[run.metrics["val_acc"].idxmax(), "test_acc"]
    frame = load_runs(results_tmp, "000")
    assert len(frame) == 2
    t = table1(frame).set_index("model")
    assert t.loc["Improved residual model", "verdict"] == "not comparable (SYNTHETIC data)"
    assert t.loc["ResNet", "verdict"] == "not yet run"
    from hwrlib.experiments.p000_figures import extras
    from hwrlib.sections import Folded
    (block,) = extras(frame).blocks  # its report section: the study's readings table, folded
    assert isinstance(block, Folded) and block.body.startswith("not yet run")  # smoke runs are not the study
    (block,) = extras(frame.assign(profile="study")).blocks
    assert set(block.body["model"]) == {"Improved residual model"} and block.body["top-1"].str.endswith("(n=1)").all()


def test_same_seed_same_numbers_and_resume(results_tmp, one_thread, tmp_path):
    cfg = _smoke(results_tmp, prod_demo=False, num_steps=6, batch_size=8)  # 4 batches per epoch
    first = train_run(cfg).metrics.drop(columns="seconds")
    again = train_run(_smoke(results_tmp / "again", prod_demo=False, num_steps=6, batch_size=8))
    again = again.metrics.drop(columns="seconds")
    pd.testing.assert_frame_equal(first, again)

    def fit_hccr(checkpoint, stop_after=None):
        torch.manual_seed(0)
        model = create_model("resnet_hccr", num_classes=10, width=0.125)
        train, loaders = make_loaders(cfg, *load_data(cfg), torch.device("cpu"))
        opt = make_optimizer("sgd", model.parameters(), 0.05)

        def stop(run):
            if stop_after and len(run.metrics) == stop_after:
                raise KeyboardInterrupt
        loss, calls = HCCRLoss(model, 0.4, 1e-4, 0.01), []

        def counted(*args):
            calls.append(1)
            return loss(*args)
        cpu = torch.device("cpu")
        loop = Loop(standard_update(model, opt, cpu, counted), evaluate=lambda m: score(m, loaders, cpu, topk=5),
                    eval_at=lambda s, _: s > 0 and s % 2 == 0, log_every=1, on_eval=stop)
        run = fit(model, train, opt, cpu, loop, num_steps=6, checkpoint=checkpoint, progress=False)
        return (run.metrics, run.steps), len(calls)
    full, n_full = fit_hccr(None)
    with pytest.raises(KeyboardInterrupt):
        fit_hccr(tmp_path / "ckpt.pt", stop_after=1)  # stops at step 2, in mid-epoch
    resumed, n_resumed = fit_hccr(tmp_path / "ckpt.pt")
    assert (n_full, n_resumed) == (6, 4)  # the resumed run trained only the steps after the checkpoint
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(resumed[0]) == strip(full[0]) and resumed[1] == full[1]


def test_table1_judges_only_real_hwdb_runs():
    from hwrlib.summary import protocol

    def row(model, data, top1, top5, seed, **kw):
        params = {"model": model, "dataset": data, "profile": "paper", "augmentation": "expand", **kw}
        return {"paper": "000", "model": model, "dataset": data, "profile": "paper", "seed": seed,
                "final_test_acc": top1, "final_test_top5": top5, "protocol": protocol("000", params),
                "did_not_train": False}
    spread = (-0.0005, 0.0, 0.0005, 0.0, -0.0005)
    frame = pd.DataFrame([row("resnet_hccr", "hwdb", 0.9431 + d, 0.9862 + d, s) for s, d in enumerate(spread)]
                         + [row("resnet_hccr_plain", "hwdb", 0.90 + d, 0.97 + d, s) for s, d in enumerate(spread)]
                         + [row("resnet_hccr", "synth", 0.95, 0.99, 0),
                            row("resnet_hccr", "hwdb", 0.10, 0.20, 0, prod_weight=0.0),  # a prod_demo counterpart
                            row("inception_hccr", "hwdb", 0.10, 0.20, 0, flip=False)])  # an ablation run
    t = table1(table1_runs(frame)).set_index(["model", "data"])
    assert t.loc[("Improved residual model", "CASIA-HWDB1.1"), "verdict"] == "reproduced"
    assert t.loc[("Improved residual model", "CASIA-HWDB1.1"), "measured top-1"] == "94.30% ± 0.04% (n=5)"
    assert t.loc[("ResNet", "CASIA-HWDB1.1"), "verdict"] == "not reproduced"
    assert t.loc[("Inception", "CASIA-HWDB1.1"), "verdict"] == "not yet run"
    assert t.loc[("Improved residual model", "synth-hwdb (SYNTHETIC)"), "verdict"] == "not comparable (SYNTHETIC data)"


def test_a_batch_larger_than_the_training_set_is_named_before_training(results_tmp):
    cfg = _smoke(results_tmp, batch_size=10**6)
    with pytest.raises(ConfigError, match="'batch_size': must be at most the [0-9,]+ images of this training set"):
        make_loaders(cfg, *load_data(cfg), torch.device("cpu"))
