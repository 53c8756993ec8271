"""Paper 004's epoch-time ratio: the controlled timing record (hwrlib.experiments.p004_timing) and its verdict."""
import json
import math
import os

import pandas as pd
import pytest
import torch
import torch.nn as nn

from hwrlib import stats, summary
from hwrlib.experiments import p004_timing as timing
from hwrlib.models import create_model
from hwrlib.models.layers import LocalResponseNorm
from hwrlib.results import load_runs
from hwrlib.verdict import Verdict

CLAIM_ID = "004.epoch_time_ratio"


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


# ---- the verdict from a record -------------------------------------------------------------------------

def _readings() -> dict:
    claim = next(c for c in summary.load_claims("004") if c["id"] == CLAIM_ID)
    return dict(summary.claim_readings(claim))


def _rows(implementation: str, ratios: list[float], model_seconds: float = 10.0, **fields) -> list[dict]:
    """Two rows per repeat: AlexNet at ``model_seconds``, the improved model at ``ratio`` times that."""
    rows = []
    for r, ratio in enumerate(ratios, 1):
        for model, s in (("alexnet_mod", model_seconds), ("alexnet_ir", ratio * model_seconds)):
            rows.append({"repeat": r, "implementation": implementation, "model": model, "position": 1, "images": 320,
                         "seconds": s, "cpu_seconds": s, "seconds_per_image": s / 320,
                         "epoch_seconds_60k": 60_000 * s / 320, "num_threads": 1, "loadavg_1min": 0.1, **fields})
    return rows


def _record(tmp_path, rows: list[dict]) -> pd.DataFrame:
    (tmp_path / "timing").mkdir(exist_ok=True)
    pd.DataFrame(rows).to_csv(tmp_path / timing.RECORD, index=False)
    return load_runs(tmp_path)  # no runs: the frame says which results folder to read the record from


def test_the_claim_is_judged_per_reading_from_the_record(tmp_path):
    close, far = [0.195, 0.2, 0.205, 0.198, 0.202], [0.45, 0.46, 0.44, 0.45, 0.455]
    runs = _record(tmp_path, _rows("plain", close) + _rows("hwrlib", far))
    read = _readings()
    assert set(read) == {"plain_loop", "hwrlib_loop"}
    plain, tuned = (summary.judge_claim(read[r], runs) for r in ("plain_loop", "hwrlib_loop"))
    # the verdicts are stats.judge_value's on the per-repeat ratios, claimed 0.2 within 25 % of it
    assert plain["verdict"] == stats.judge_value(close, 0.2, 0.05).verdict == Verdict.REPRODUCED
    assert tuned["verdict"] == stats.judge_value(far, 0.2, 0.05).verdict == Verdict.NOT_REPRODUCED
    assert plain["n"] == 5 and list(plain["values"]) == pytest.approx(close)
    assert plain["estimate"] == pytest.approx(sum(close) / 5) and plain["delta"] == pytest.approx(0.05)
    row = summary.claims_table(runs, "004").set_index(["id", "reading"]).loc[(CLAIM_ID, "plain_loop")]
    assert row["measured"] == "0.2 (375 s / 1,875 s)" and row["n"] == 5 and row["tolerance"] == "±0.05"
    frame = summary.verdict_frame(runs).set_index(["claim", "reading"])
    assert frame.loc[(CLAIM_ID, "hwrlib_loop"), "protocol"] == ("timing/004_epoch_time.csv: implementation=hwrlib, "
                                                                "model=alexnet_ir")


def test_one_repeat_is_what_stats_says_and_no_record_is_not_yet_run(tmp_path):
    read = _readings()["plain_loop"]
    assert summary.judge_claim(read, load_runs(tmp_path))["verdict"] == Verdict.NOT_YET_RUN
    one = summary.judge_claim(read, _record(tmp_path, _rows("plain", [0.2])))
    assert one["verdict"] == stats.judge_value([0.2], 0.2, 0.05).verdict == Verdict.INCONCLUSIVE
    assert summary.judge_claim(_readings()["hwrlib_loop"], load_runs(tmp_path))["verdict"] == Verdict.NOT_YET_RUN


def test_rows_of_other_implementations_and_models_move_nothing(tmp_path):
    own = _rows("plain", [0.45, 0.46, 0.44])
    alone = summary.judge_claim(_readings()["plain_loop"], _record(tmp_path, own))
    lenet = [dict(r, model="lenet5", seconds=1.0, epoch_seconds_60k=1.0) for r in _rows("plain", [0.2, 0.2, 0.2])]
    neighbours = _rows("keras", [0.2, 0.2, 0.2]) + _rows("hwrlib", [0.2, 0.2, 0.2]) + lenet
    both = summary.judge_claim(_readings()["plain_loop"], _record(tmp_path, own + neighbours))
    assert alone["verdict"] == both["verdict"] == Verdict.NOT_REPRODUCED
    assert (both["n"], both["estimate"]) == (alone["n"], alone["estimate"]) == (3, pytest.approx(0.45))


def test_a_damaged_record_and_an_unknown_implementation_are_named(tmp_path, monkeypatch):
    runs = _record(tmp_path, [{k: v for k, v in r.items() if k != "implementation"} for r in _rows("plain", [0.2])])
    with pytest.raises(ValueError, match="no column implementation"):
        summary.judge_claim(_readings()["plain_loop"], runs)
    claim = next(c for c in summary.load_claims("004") if c["id"] == CLAIM_ID)
    bad = {**claim, "id": "004.bad", "readings": [], "where": {"model": "alexnet_ir", "implementation": "keras"},
           "than": {"model": "alexnet_mod", "implementation": "keras"}}
    monkeypatch.setattr(summary, "load_claims", lambda paper=None: [bad])
    with pytest.raises(summary.ClaimError, match="004.bad.*implementation='keras'"):
        summary.check_claims()
