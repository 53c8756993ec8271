"""002's curve claim (Fig. 4: the loss flat after about 3,000 iterations) can hold and can fail."""
import math

import pandas as pd

from hwrlib.experiments import P002Config
from hwrlib.experiments.p002_figures import flat_from, judge_loss_flat
from hwrlib.results import RunDir, load_runs

WHERE = {"model": "pytorch_cnn", "profile": "paper", "train_size": None}


def _fake_run(root, seed: int, flat_at: int, steps: bool = True) -> None:
    """A 002 paper-protocol run whose loss, logged every 100 updates, falls linearly to 0.01 at ``flat_at``."""
    cfg = P002Config.build({"profile": "paper", "seed": seed, "compare_models": []})
    rd = RunDir("002", cfg.record(), root)
    rd.write_config()
    loss = [max(0.01, math.log(10) * (1 - s / flat_at)) + 0.001 * seed for s in range(100, 37_501, 100)]
    if steps:
        rd.write_table("steps", [{"step": s, "lr": 1e-3, "loss": v} for s, v in zip(range(100, 37_501, 100), loss)])
    rd.write_metrics([{"epoch": e, "step": 1875 * e, "train_loss": 0.05, "test_acc": 0.99} for e in range(1, 21)])
    rd.write_final({"final_test_acc": 0.99})


def test_flat_from_finds_where_the_loss_settles():
    steps = pd.DataFrame({"step": range(100, 10_001, 100)})
    steps["loss"] = [max(0.0, 2.0 - s / 1000) for s in steps["step"]]  # 0 from update 2,000 on
    assert 1800 <= flat_from(steps) <= 2000


def test_the_loss_claim_holds_near_3000_and_fails_far_from_it(tmp_path):
    for seed in range(3):
        _fake_run(tmp_path / "about3000", seed, 3000 + 100 * seed)
        _fake_run(tmp_path / "early", seed, 800 + 100 * seed)  # flat after an epoch's first half: not "about 3,000"
        _fake_run(tmp_path / "unlogged", seed, 3000, steps=False)
    claim = {"where": WHERE}
    holds = judge_loss_flat(load_runs(tmp_path / "about3000"), claim)
    assert holds["verdict"] == "reproduced" and holds["n"] == 3
    assert judge_loss_flat(load_runs(tmp_path / "early"), claim)["verdict"] == "not reproduced"
    unlogged = judge_loss_flat(load_runs(tmp_path / "unlogged"), claim)
    assert unlogged["verdict"] == "inconclusive" and "steps.csv" in unlogged["why"]
