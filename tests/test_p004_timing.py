"""Paper 004's epoch-time ratio: the controlled timing record (hwrlib.experiments.p004_timing)."""
import json
import math
import os

import pandas as pd
import pytest
import torch
import torch.nn as nn

from hwrlib.experiments import p004_timing as timing
from hwrlib.models import create_model
from hwrlib.models.layers import LocalResponseNorm


@pytest.mark.slow
def test_quick_measurement_writes_a_complete_record(tmp_path, capsys):
    assert timing.main(["--quick", "--images", "32", "--results-dir", str(tmp_path), "--allow-load"]) == 0
    folder = tmp_path / "timing"
    assert sorted(p.name for p in folder.iterdir()) == ["004_epoch_time.csv", "004_epoch_time.json"]  # no temp file
    t = pd.read_csv(folder / "004_epoch_time.csv")
    assert list(t.columns) == list(timing.COLUMNS)
    assert len(t) == 2 * 2 * 2 and not t.duplicated(["repeat", "implementation", "model"]).any()
    assert set(t["implementation"]) == set(timing.IMPLEMENTATIONS) and set(t["model"]) == set(timing.MODELS)
    assert set(t["repeat"]) == {1, 2} and (t["images"] == 32).all() and (t["num_threads"] == 1).all()
    assert t["seconds"].map(math.isfinite).all() and (t["seconds"] > 0).all() and (t["cpu_seconds"] > 0).all()
    assert t["seconds_per_image"].to_numpy() == pytest.approx((t["seconds"] / 32).to_numpy(), rel=1e-4)
    assert t["epoch_seconds_60k"].to_numpy() == pytest.approx((60_000 * t["seconds_per_image"]).to_numpy(), rel=1e-4)
    assert (t["loadavg_1min"] >= 0).all()
    # the order alternates: AlexNet first in repeat 1, the improved model first in repeat 2
    first = t[t["position"] == 1].groupby("repeat")["model"].unique()
    assert list(first[1]) == ["alexnet_mod"] and list(first[2]) == ["alexnet_ir"]
    facts = json.loads((folder / "004_epoch_time.json").read_text())
    assert facts["torch"] == torch.__version__ and facts["num_threads"] == 1 and facts["images"] == 32
    assert facts["batch_size"] == 32 and facts["repeats"] == 2 and facts["device_name"] and "git_commit" in facts
    assert "--quick" in facts["command"]
    assert "wrote" in capsys.readouterr().out


def test_a_busy_machine_is_refused_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(os, "getloadavg", lambda: (50.0, 50.0, 50.0))
    assert timing.main(["--quick", "--results-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "load average is 50.00" in err and "--allow-load" in err
    assert not (tmp_path / "timing").exists()
    assert timing.too_busy(0.5, 1, 2) is None and timing.too_busy(1.5, 1, 2) and timing.cores() >= 1


def test_the_plain_model_is_the_same_network_with_torch_lrn():
    torch.manual_seed(0)
    ours = create_model("alexnet_mod").eval()
    torch.manual_seed(0)
    plain = timing.plain_model("alexnet_mod").eval()
    kinds = [type(m) for m in plain.modules()]
    assert kinds.count(nn.LocalResponseNorm) == 2 and LocalResponseNorm not in kinds
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(plain(x), ours(x), atol=1e-5)
