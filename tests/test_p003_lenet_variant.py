"""Paper 003: the toolbox-faithful sigmoid CNN, its training rule, baselines and curve claims."""
import math

import numpy as np
import pandas as pd
import pytest
import torch

from hwrlib.baselines import deskew, run_baseline
from hwrlib.config import ConfigError
from hwrlib.data import load_mnist, subset
from hwrlib.experiments import P003Config
from hwrlib.experiments import p003_figures as figs
from hwrlib.experiments import run_experiment
from hwrlib.experiments.p003_lenet_variant import eval_schedule, make_sgd, mse


def train_runs(cfg, progress=False):
    """The CNN runs of a point (its baselines left out)."""
    return [r for r in run_experiment(cfg, progress) if r.config["model"] == "lenet_variant"]


def train_run(cfg, progress=False):
    return train_runs(cfg, progress)[0]
from hwrlib.models import count_params, create_model, layer_table
from hwrlib.models.lenet_variant import GroupedLeNetVariant, parameter_readings
from hwrlib.results import RunDir, load_runs


@pytest.mark.parametrize("c1,c3", [(2, 8), (6, 12), (10, 16)])
def test_shapes_and_outputs_follow_the_paper(c1, c3):
    net = create_model("lenet_variant", c1=c1, c3=c3)
    shapes = layer_table(net).set_index("layer")["output"]
    assert shapes["c1"] == (c1, 24, 24) and shapes["s2"] == (c1, 12, 12)
    assert shapes["c3"] == (c3, 8, 8) and shapes["s4"] == (c3, 4, 4) and shapes["fc"] == (10,)
    out = net(torch.randn(5, 1, 28, 28))
    assert ((out > 0) & (out < 1)).all()  # sigmoid on the output too


def test_toolbox_initialization():
    torch.manual_seed(0)
    net = create_model("lenet_variant", c1=6, c3=12)
    # cnnsetup.m: fan_in = inputmaps * k^2, fan_out = outputmaps * k^2; ffW: sqrt(6 / (onum + fvnum))
    bounds = {"c1.weight": math.sqrt(6 / (1 * 25 + 6 * 25)), "c3.weight": math.sqrt(6 / (6 * 25 + 12 * 25)),
              "fc.weight": math.sqrt(6 / (10 + 192))}
    for name, p in net.named_parameters():
        if name.endswith("bias"):
            assert torch.count_nonzero(p) == 0, name
        else:
            w = p.detach().abs()
            assert w.max() <= bounds[name] and w.max() > 0.9 * bounds[name], name
            assert abs(w.mean().item() - bounds[name] / 2) < 0.15 * bounds[name], name  # uniform: mean |w| = b/2


def test_gradient_is_the_toolbox_update_rule():
    """cnnbp.m: od = (o - y) .* o .* (1 - o); dffW = od * fv' / m; dffb = mean(od)."""
    torch.manual_seed(1)
    net = create_model("lenet_variant")
    x, y = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))
    out = net(x)
    mse(out, y).backward()
    fv = net.s4(torch.sigmoid(net.c3(net.s2(torch.sigmoid(net.c1(x)))))).flatten(1).detach()
    o, t = out.detach(), torch.nn.functional.one_hot(y, 10).float()
    od = (o - t) * o * (1 - o)
    torch.testing.assert_close(net.fc.weight.grad, od.T @ fv / 8)
    torch.testing.assert_close(net.fc.bias.grad, od.mean(0))


def test_weight_decay_applies_to_weights_only():
    net = create_model("lenet_variant")
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    opt = make_sgd(net, lr=0.5, weight_decay=0.1)
    for p in net.parameters():
        p.grad = torch.ones_like(p)
    opt.step()
    for n, p in net.named_parameters():
        decay = 0 if n.endswith("bias") else 0.1 * before[n]
        torch.testing.assert_close(p.detach(), before[n] - 0.5 * (1 + decay))  # eq. 16/17, no momentum


def test_parameter_readings():
    table = parameter_readings()
    named = table[table["reading"] != ""].set_index("reading")["total"]
    assert named["DeepLearnToolbox (this model)"] == count_params(create_model("lenet_variant")) == 3898
    assert named["paper eq. 3: one bias per subsampling map"] == count_params(
        create_model("lenet_variant", subsampling="paper"))
    hits = parameter_readings(target=3966)
    # the claimed count needs one C3 bias per kernel pair and no output bias: no regular reading gives it
    assert len(hits) > 0 and (hits["C3 bias"] == 72).all() and (hits["output bias"] == 0).all()
    assert (hits["reading"] == "").all()


def test_deskew_straightens_a_slanted_stroke():
    img = torch.zeros(1, 28, 28)
    for r in range(4, 24):  # a bar leaning right by 0.5 px per row upwards, off-centre
        c = 10 + (24 - r) // 2
        img[0, r, c:c + 3] = 255
    out = deskew(img)[0]
    ys, xs = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    m = out.sum()
    cy, cx = (out * ys).sum() / m, (out * xs).sum() / m
    cov = (out * (ys - cy) * (xs - cx)).sum() / m
    assert abs(cov) < 0.5 and abs(cx - 13.5) < 0.5 and abs(cy - 13.5) < 0.5


def test_deskew_reduces_slant_on_mnist(mnist_ready):
    x, _ = load_mnist("test")
    x = x[:500].float()

    def slant(imgs):
        ys, xs = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
        m = imgs.sum((1, 2))
        cy, cx = (imgs * ys).sum((1, 2)) / m, (imgs * xs).sum((1, 2)) / m
        var = (imgs * (ys - cy.view(-1, 1, 1)) ** 2).sum((1, 2)) / m
        return ((imgs * (ys - cy.view(-1, 1, 1)) * (xs - cx.view(-1, 1, 1))).sum((1, 2)) / m / var).abs()
    assert slant(deskew(x)).mean() < 0.2 * slant(x).mean()


def test_baselines_on_real_mnist(mnist_ready):
    train = subset(*load_mnist("train"), 600, 0)
    test = subset(*load_mnist("test"), 200, 0)
    one = run_baseline("knn1", train, test)
    # 1-NN by brute force, independently of scikit-learn
    a, b = train[0].reshape(600, -1).double() / 255, test[0].reshape(200, -1).double() / 255
    nearest = torch.cdist(b, a).argmin(1)
    assert one["test_acc"] == pytest.approx((train[1][nearest] == test[1]).double().mean().item())
    knn = run_baseline("knn", train, test, grid={"n_neighbors": [1, 3, 5]}, folds=2)
    assert knn["best_params"]["n_neighbors"] in (1, 3, 5) and len(knn["cv_results"]) == 3
    svm = run_baseline("svm_deskew", train, test, grid={"C": [10], "gamma": [0.03]})
    assert svm["best_params"] == {"C": 10, "gamma": 0.03} and "cv_results" not in svm
    assert svm["test_acc"] > 0.8 and one["test_acc"] > 0.7


def test_cnn_learns_and_is_reproducible(mnist_ready, results_tmp, one_thread):
    # sigmoid + MSE sits near chance for a few hundred updates before it learns (so does the toolbox)
    params = dict(profile="quick", num_epochs=6, batch_size=10, train_size=1000, test_size=500, eval_every=100,
                  baselines=False)
    run = train_run(P003Config.from_params(**params), progress=False)
    h = run.metrics
    assert h["step"].tolist() == list(range(0, 6 * 100 + 1, 100))
    assert h["test_acc"].iloc[-1] > 0.5 > h["test_acc"].iloc[0] and h["train_loss"].iloc[-1] < h["train_loss"].iloc[1]
    assert run.final["final_test_acc"] == h["test_acc"].iloc[-1] and run.final["num_evals"] == len(h)
    again = train_run(P003Config.from_params(**params, results_dir=str(results_tmp / "again")), progress=False)
    cols = ["train_loss", "train_acc", "test_loss", "test_acc"]
    assert again.metrics[cols].equals(h[cols])


@pytest.mark.parametrize("subsampling", ["toolbox", "paper"])
def test_grouped_network_is_its_replicas_side_by_side(subsampling):
    nets = []
    for seed in range(3):
        torch.manual_seed(seed)
        net = create_model("lenet_variant", c1=2, c3=8, subsampling=subsampling)
        if subsampling == "paper":  # nonzero subsampling biases, so their stacking is checked too
            torch.nn.init.uniform_(net.s2.bias, -1, 1), torch.nn.init.uniform_(net.s4.bias, -1, 1)
        nets.append(net)
    group = GroupedLeNetVariant(nets)
    x, y = torch.rand(6, 3, 28, 28), torch.randint(0, 10, (3, 6))
    out = group(x)
    assert out.shape == (3, 6, 10)
    mse(out, y).sum().backward()
    for g, net in enumerate(nets):
        torch.testing.assert_close(out[g], net(x[:, g:g + 1]))
        mse(net(x[:, g:g + 1]), y[g]).backward()
        alone = group.replica(g)  # the replica's weights, sliced back out
        for (name, p), q in zip(net.named_parameters(), alone.parameters()):
            assert torch.equal(p, q), name
            whole = group.get_parameter(name).grad
            grad = whole[g] if name.startswith("fc.") else whole.view(3, -1, *whole.shape[1:])[g]
            torch.testing.assert_close(grad, p.grad, rtol=1e-4, atol=1e-6)  # no gradient crosses replicas


def test_grouped_update_in_chunks_is_the_full_batch_step():
    from hwrlib.experiments.p003_lenet_variant import make_replicas, train_step
    cfg = P003Config.from_params(profile="smoke", replicas=2, lr=1.0, c1=10, c3=16)
    model = make_replicas(cfg, torch.device("cpu"))
    assert model.chunk == 75  # 1,500 C1 maps / (2 replicas x 10 maps)
    full = GroupedLeNetVariant([model.net.replica(g) for g in range(2)])  # a copy, stepped on the whole batch
    b = 2 * model.chunk + 10  # two whole chunks and a short one
    x, y = torch.rand(b, 2, 28, 28), torch.randint(0, 10, (2, b))
    parts = train_step(model, make_sgd(model.net, 1.0, 0.0), x, y)
    losses, correct = parts["loss"].tolist(), (parts["acc"] * b).round().long().tolist()
    out = full(x)
    opt = make_sgd(full, 1.0, 0.0)
    mse(out, y).sum().backward()
    opt.step()
    np.testing.assert_allclose(losses, mse(out, y).tolist(), rtol=1e-5)
    assert correct == (out.argmax(-1) == y).sum(-1).tolist()
    for (name, p), q in zip(model.net.named_parameters(), full.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-7, msg=name)


def test_replicas_train_as_their_lone_runs(mnist_ready, results_tmp, one_thread):
    params = dict(profile="smoke", num_epochs=3, batch_size=10, train_size=200, test_size=100, eval_every=5,
                  baselines=False)
    runs = train_runs(P003Config.from_params(**params, replicas=2), progress=False)
    assert [r.config["seed"] for r in runs] == [0, 1] and {r.config["seed_group"] for r in runs} == {"0-1"}
    for seed, run in enumerate(runs):
        alone = train_run(P003Config.from_params(**params, seed=seed), progress=False)
        assert "seed_group" not in alone.config and alone.path != run.path
        # same initialization, subsets and batch order: the curves agree up to float rounding
        np.testing.assert_allclose(run.metrics["test_loss"], alone.metrics["test_loss"], rtol=1e-4)
        assert run.metrics["train_acc"].equals(alone.metrics["train_acc"])
    assert runs[0].metrics["test_loss"].iloc[-1] != runs[1].metrics["test_loss"].iloc[-1]  # different seeds


def test_svm_search_on_precomputed_kernels_matches_grid_search(mnist_ready):
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.svm import SVC

    from hwrlib.baselines import features
    train, test = subset(*load_mnist("train"), 300, 1), subset(*load_mnist("test"), 100, 1)
    grid = {"C": [1, 10], "gamma": [0.01, 0.1]}
    fast = run_baseline("svm_deskew", train, test, grid=grid, folds=3, seed=1)
    cv = StratifiedKFold(n_splits=3, shuffle=True, random_state=1)
    ref = GridSearchCV(SVC(kernel="rbf"), grid, cv=cv).fit(features(train[0], deskewed=True), train[1].numpy())
    assert fast["best_params"] == ref.best_params_
    by_params = {(r["C"], r["gamma"]): r["cv_acc"] for r in fast["cv_results"]}
    for p, acc in zip(ref.cv_results_["params"], ref.cv_results_["mean_test_score"]):
        assert by_params[p["C"], p["gamma"]] == pytest.approx(acc, abs=1e-9)
    pred = ref.best_estimator_.predict(features(test[0], deskewed=True))
    assert fast["test_acc"] == pytest.approx((pred == test[1].numpy()).mean())


def _fake_run(root, setting: dict, seed: int, curve: list[float]) -> None:
    """A finished 003 run of the paper protocol with ``setting`` changed, whose test accuracy follows ``curve``."""
    cfg = P003Config.build({"profile": "paper", **setting, "seed": seed})
    rd = RunDir("003", cfg.cnn_record(), root)
    rd.write_config()
    rd.write_metrics([{"epoch": i, "step": 10 * i, "samples": 500 * i, "test_acc": a, "test_error": 1 - a,
                       "train_acc": a, "train_loss": 1 - a, "train_loss_smoothed": 1 - a}
                      for i, a in enumerate(curve)])
    rd.write_final({"final_test_acc": curve[-1]})


def _ramp(speed: float, end: float = 0.99, n: int = 40) -> list[float]:
    return [min(end, 0.1 + speed * i) for i in range(n)]


def test_curve_claims_are_judged_from_the_metrics(tmp_path):
    for order, root in (((50, 100, 200), tmp_path / "as_claimed"), ((200, 100, 50), tmp_path / "reversed")):
        for seed in (0, 1):
            for b, speed in zip(order, (0.05, 0.03, 0.02)):  # the first of `order` learns fastest, ends best
                _fake_run(root, {"batch_size": b}, seed, _ramp(speed)[:-1] + [0.9 + speed])
    runs = load_runs(tmp_path / "as_claimed")
    verdict = figs.judge_small_batch(runs, {})
    assert verdict["verdict"] == "reproduced" and verdict["n"] == 2 and "paired differences" in verdict["measured"]
    assert figs.judge_over_90(runs, {})["verdict"] == "reproduced"  # batch 50 is at 99 % by epoch 30
    assert figs.judge_small_batch(load_runs(tmp_path / "reversed"), {})["verdict"] == "not reproduced"
    assert figs.judge_over_90(load_runs(tmp_path / "reversed"), {})["verdict"] == "not reproduced"  # 50 is slowest
    assert figs.judge_lr2_oscillates(runs, {})["verdict"] == "not yet run"


@pytest.mark.parametrize("judge,grid,fails", [
    # 6-12 fastest / slowest of the three filter configurations
    ("judge_filters", [({"c1": 2, "c3": 8}, 0.03), ({"c1": 6, "c3": 12}, 0.05), ({"c1": 10, "c3": 16}, 0.03)],
     {"c1": 6, "c3": 12}),
    # convergence speed grows with lr from 0.2 to 1.2 / shrinks
    ("judge_larger_lr_faster", [({"lr": v}, 0.01 + 0.01 * i) for i, v in enumerate((0.2, 0.5, 1.0, 1.2))],
     "reverse"),
])
def test_each_speed_judge_holds_on_a_record_that_satisfies_it_and_fails_on_one_that_violates_it(
        tmp_path, judge, grid, fails):
    """``fails``: the setting made slowest (0.01) in the violating record, or "reverse" (every speed reversed)."""
    speeds = [s for _, s in grid]
    for seed in (0, 1, 2):
        for i, (setting, speed) in enumerate(grid):
            _fake_run(tmp_path / "holds", setting, seed, _ramp(speed + 0.001 * seed))
            wrong = speeds[::-1][i] if fails == "reverse" else (0.01 if setting == fails else speed)
            _fake_run(tmp_path / "fails", setting, seed, _ramp(wrong + 0.001 * seed))
    assert getattr(figs, judge)(load_runs(tmp_path / "holds"), {})["verdict"] == "reproduced"
    assert getattr(figs, judge)(load_runs(tmp_path / "fails"), {})["verdict"] == "not reproduced"


def test_lr2_and_fig7_judges_hold_and_fail(tmp_path):
    rates = (0.2, 0.5, 1.0, 1.2, 2.0)
    for seed in (0, 1, 2):
        for lr in rates:
            smooth = _ramp(0.02 * lr + 0.001 * seed, 0.95)
            jitter = [a - 0.05 * (i % 2) if i > 20 else a for i, a in enumerate(smooth)]  # late zig-zag
            _fake_run(tmp_path / "lr2_jitters", {"lr": lr}, seed, jitter if lr == 2.0 else smooth)
            _fake_run(tmp_path / "lr1_jitters", {"lr": lr}, seed, jitter if lr == 1.0 else smooth)
            # Fig. 7's running MSE is 1 - accuracy here: lr 1.0 slowest of 0.2, 0.5, 1.0 in the second set
            _fake_run(tmp_path / "lr1_slow", {"lr": lr}, seed, _ramp(0.005 + 0.001 * seed if lr == 1.0 else 0.03))
    assert figs.judge_lr2_oscillates(load_runs(tmp_path / "lr2_jitters"), {})["verdict"] == "reproduced"
    assert figs.judge_lr2_oscillates(load_runs(tmp_path / "lr1_jitters"), {})["verdict"] == "not reproduced"
    assert figs.judge_fig7_mse(load_runs(tmp_path / "lr2_jitters"), {})["verdict"] == "reproduced"
    assert figs.judge_fig7_mse(load_runs(tmp_path / "lr1_slow"), {})["verdict"] == "not reproduced"


def test_a_neighbouring_protocol_never_enters_a_grid(tmp_path):
    """Runs of a protocol the grid does not name (another subsampling, another lambda) are left out."""
    for seed in (0, 1):
        for b, speed in ((50, 0.05), (100, 0.03), (200, 0.02)):
            _fake_run(tmp_path, {"batch_size": b}, seed, _ramp(speed, 0.9 + speed))
            _fake_run(tmp_path, {"batch_size": b, "subsampling": "paper"}, seed, _ramp(0.07 - speed, 0.97 - speed))
    runs = load_runs(tmp_path)
    sel = figs.grid_runs(runs, "batch_size", {})
    assert len(sel) == 6 and set(sel["subsampling"]) == {"toolbox"} and sel["protocol"].nunique() == 3
    assert figs.judge_small_batch(runs, {})["verdict"] == "reproduced"


@pytest.mark.parametrize("grid", figs.GRIDS)
def test_each_figure_grid_is_its_sweep_and_holds_the_default_point(grid):
    """A grid's settings are its sweep file's points, each a valid config, one of them the config's default point
    (the figures compare every setting with it)."""
    settings = figs.grid_settings(grid)
    assert len(settings) >= 3, settings  # each judge of a grid orders three settings or more
    defaults = P003Config.defaults()
    at_default = [label for label, fields in settings.items() if all(defaults[k] == v for k, v in fields.items())]
    assert len(at_default) == 1, settings
    for fields in settings.values():
        P003Config.from_params(profile="paper", **fields)


def test_oscillation_measures_late_jitter():
    h = pd.DataFrame({"run_id": ["a"] * 4 + ["b"] * 4, "epoch": [0, 1, 2, 3] * 2,
                      "test_error": [0.5, 0.1, 0.1, 0.1, 0.5, 0.1, 0.3, 0.1]})
    osc = figs.oscillation(h)
    assert osc["a"] == 0 and osc["b"] == pytest.approx(20.0)
    assert np.isinf(figs.first_reaching(h.assign(test_acc=1 - h.test_error), 0.95, "epoch")).all()


def test_evaluation_is_dense_early_then_per_epoch():
    cfg = P003Config.from_params(profile="smoke", eval_every=10, eval_dense_until=40)
    due = [it for it in range(1, 121) if eval_schedule(cfg)(it, 20)]
    assert due == [10, 20, 30, 40, 60, 80, 100, 120]
    with pytest.raises(ConfigError, match="'eval_dense_until'"):
        P003Config.from_params(eval_dense_until=-1)


def test_speed_orderings_within_seed_noise_are_inconclusive(tmp_path):
    ramp = _ramp
    filters = ({"c1": 2, "c3": 8}, {"c1": 6, "c3": 12}, {"c1": 10, "c3": 16})
    # 6-12 is fastest with seed 0 and slowest with seed 1: its mean is the others', its spread large
    for seed, fast in ((0, 0.06), (1, 0.02)):
        for f in filters:
            _fake_run(tmp_path / "noisy", f, seed, ramp(fast if f["c1"] == 6 else 0.04))
            _fake_run(tmp_path / "slow", f, seed, ramp(0.02 if f["c1"] == 6 else 0.04))
    assert figs.judge_filters(load_runs(tmp_path / "noisy"), {})["verdict"] == "inconclusive"
    slow = figs.judge_filters(load_runs(tmp_path / "slow"), {})
    assert slow["verdict"] == "not reproduced" and "paired differences (95 % CI)" in slow["measured"]


def test_lambda_search_validates_on_the_training_subset(mnist_ready, one_thread, monkeypatch):
    from hwrlib.experiments import p003_lambda
    seen = []
    real = p003_lambda.fit_replicas

    def spy(cfg, data, device, progress):
        seen.append((cfg.weight_decay, cfg.train_size, [len(v[1]) for _, v in data]))
        return real(cfg, data, device, progress)
    monkeypatch.setattr(p003_lambda, "fit_replicas", spy)
    table = p003_lambda.search((0.0, 0.5), seeds=2, progress=False, profile="smoke", batch_size=25, train_size=400)
    assert list(table["weight_decay"]) == [0.0, 0.5] and table["chosen"].sum() == 1 and not table["chosen"][0]
    assert seen == [(0.0, 300, [100, 100]), (0.5, 300, [100, 100])]  # 3/4 fit, 1/4 validate, per seed
    assert ((0 < table["val_error"]) & (table["val_error"] < 1)).all()


def test_new_curve_claims_from_the_metrics(tmp_path):
    ramp = lambda speed, end: [min(end, 0.1 + speed * i) for i in range(40)]  # noqa: E731
    for seed in (0, 1, 2):
        for c1, c3, end in ((6, 12, 0.93), (10, 16, 0.93 + 0.002 * seed)):  # 10-16: no clear gain
            _fake_run(tmp_path / "filters", {"c1": c1, "c3": c3}, seed, ramp(0.03, end))
        for c1, c3, end in ((6, 12, 0.90), (10, 16, 0.95 + 0.001 * seed)):  # 10-16: a clear gain
            _fake_run(tmp_path / "gain", {"c1": c1, "c3": c3}, seed, ramp(0.03, end))
        for lr, speed in ((0.2, 0.01), (0.5, 0.02), (1.0, 0.04 + 0.001 * seed)):
            _fake_run(tmp_path / "lr", {"lr": lr}, seed, ramp(speed, 0.95))
    assert figs.judge_larger_net_no_gain(load_runs(tmp_path / "filters"), {})["verdict"] == "reproduced"
    assert figs.judge_larger_net_no_gain(load_runs(tmp_path / "gain"), {})["verdict"] == "not reproduced"
    fig7 = figs.judge_fig7_mse(load_runs(tmp_path / "lr"), {})  # the fake running MSE is 1 - accuracy
    assert fig7["verdict"] == "reproduced" and fig7["n"] == 3  # seeds, each a run of every setting
    # the default point's curves never rise: no overfitting; a late rise of 3 points is overfitting
    assert figs.judge_no_overfitting(load_runs(tmp_path / "lr"), {})["verdict"] == "reproduced"
    for seed in (0, 1, 2):
        _fake_run(tmp_path / "over", {}, seed, ramp(0.04, 0.95)[:-5] + [0.92 - 0.005 * seed] * 5)
    assert figs.judge_no_overfitting(load_runs(tmp_path / "over"), {})["verdict"] == "not reproduced"
