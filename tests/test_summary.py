import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from hwrlib import summary
from hwrlib.results import RunDir, load_runs, run_id, runs_frame
from hwrlib.summary import (ClaimError, claim_readings, claims_table, judge_claim, load_claims, parse_claimed,
                            protocol, protocol_runs)
from hwrlib.verdict import Verdict

ROOT = Path(__file__).parents[1]
CLAIM = {"id": "t", "paper": "002", "text": "t", "source": "s", "kind": "metric", "metric": "final_test_acc",
         "claimed": 0.9931, "resolution": 0.0001, "where": {"model": "pytorch_cnn", "profile": "paper", "train_size": None}}


def runs(*accs, model="pytorch_cnn", profile="paper", **fields):
    """Rows of one 002 protocol (the claim's, with ``fields`` changed), one seed per accuracy."""
    pid = protocol("002", {"model": model, "profile": profile, **fields})
    return pd.DataFrame([{"paper": "002", "model": model, "profile": profile, "seed": s, "final_test_acc": a,
                          "protocol": pid, "did_not_train": False, **fields} for s, a in enumerate(accs)])


def test_metric_claim_verdicts():
    close = judge_claim(CLAIM, runs(0.9925, 0.9930, 0.9935, 0.9928, 0.9932))
    assert close["verdict"] == "reproduced" and close["n"] == 5 and close["mean"] == pytest.approx(0.993)
    assert judge_claim(CLAIM, runs(0.985, 0.987, 0.986))["verdict"] == "not reproduced"
    one = judge_claim(CLAIM, runs(0.9931))
    assert one["verdict"] == "inconclusive" and "one run" in one["method"]
    wide = judge_claim(CLAIM, runs(0.9881, 0.9901, 0.9921))
    assert wide["verdict"] == "inconclusive" and wide["seeds_needed"] > 3


def test_a_ceiling_claim_holds_only_when_the_mean_is_shown_below_it(monkeypatch):
    ceiling = {**CLAIM, "metric": "final_test_error", "claimed": 0.01, "tolerance": 0.002, "direction": "at_most"}
    assert judge_claim(ceiling, runs(0.9925, 0.9930, 0.9935))["verdict"] == "reproduced"  # 0.70 % error
    assert judge_claim(ceiling, runs(0.985, 0.9855, 0.9845))["verdict"] == "not reproduced"  # 1.50 %
    assert judge_claim(ceiling, runs(0.9870, 0.9890, 0.9895))["verdict"] == "inconclusive"  # 1.15 %, below 1.2
    monkeypatch.setattr(summary, "load_claims", lambda paper=None: [ceiling])
    row = claims_table(runs(0.9925, 0.9930, 0.9935), "002").iloc[0]
    assert (row["claimed"], row["tolerance"], row["interval"]) == ("at most 1.20%", "", "[0.58%, 0.82%]")


def test_unmatched_runs_are_not_yet_run_and_another_profile_is_an_indication():
    assert judge_claim(CLAIM, runs(0.993, profile="quick"))["verdict"] == "not yet run"
    assert judge_claim(CLAIM, runs(0.993, train_size=3000))["verdict"] == "not yet run"
    assert judge_claim(CLAIM, runs_frame([]))["verdict"] == "not yet run"
    quick = judge_claim(CLAIM, runs(0.993, 0.992, profile="quick"), profile="quick")
    assert quick["verdict"] is Verdict.INDICATION and quick["mean"] == pytest.approx(0.9925)


def test_unnamed_fields_are_not_wildcards():
    """The claim names model, profile and train_size; a run of another lr, optimizer or head is another protocol."""
    own = runs(0.985, 0.987, 0.986)
    for neighbour in (runs(0.9931, 0.9931, 0.9931, lr=0.01), runs(0.9931, 0.9931, 0.9931, optimizer="sgd"),
                      runs(0.9931, 0.9931, 0.9931, head="hidden500")):
        both = pd.concat([own, neighbour])
        assert judge_claim(CLAIM, both)["verdict"] == "not reproduced" and judge_claim(CLAIM, both)["n"] == 3
        assert protocol_runs(both, "002", CLAIM["where"])["protocol"].nunique() == 1


def test_comparisons_are_paired_by_seed(monkeypatch):
    comp = {**CLAIM, "kind": "comparison", "than": {"model": "lenet5", "profile": "paper", "train_size": None}}
    lenet = runs(0.9880, 0.9890, 0.9870, model="lenet5")
    # each seed's CNN 0.05 points above its LeNet-5: the seeds' spread is shared, the difference is not noise
    cnn = runs(0.9885, 0.9895, 0.9875)
    assert judge_claim(comp, pd.concat([cnn, lenet]))["verdict"] == "reproduced"
    assert "paired" in judge_claim(comp, pd.concat([cnn, lenet]))["method"]
    noisy = runs(0.9880, 0.9910, 0.9860)
    assert judge_claim(comp, pd.concat([noisy, lenet]))["verdict"] == "inconclusive"
    assert judge_claim(comp, pd.concat([runs(0.980, 0.981, 0.982), lenet]))["verdict"] == "not reproduced"
    monkeypatch.setattr(summary, "load_claims", lambda paper=None: [comp])
    row = claims_table(cnn, "002").iloc[0]
    assert row["measured"] == "98.85% ± 0.10% vs not yet run" and row["verdict"] == "not yet run"


def test_a_ratio_with_one_side_run_never_shows_that_side_as_the_ratio(monkeypatch):
    ratio = {**CLAIM, "kind": "ratio", "claimed": 1.0, "tolerance": 0.05, "tolerance_kind": "rel",
             "than": {"model": "resnet18", "profile": "paper"}}
    r = judge_claim(ratio, runs(0.99, 0.98))
    assert r["verdict"] == "not yet run" and summary._shown(ratio, r)["measured"] == "0.985 vs not yet run"


def test_readings_expand_into_one_protocol_each():
    readings = {"002": {"head": {"linear": {"where": {"head": "linear"}}, "hidden500": {"where": {"head": "hidden500"}}},
                        "score": {"last": {"metric": "final_test_acc"}, "best": {"metric": "max_test_acc"}}}}
    claim = {**CLAIM, "readings": ["head", "score"]}
    expanded = dict(claim_readings(claim, readings))
    assert list(expanded) == ["linear + last", "linear + best", "hidden500 + last", "hidden500 + best"]
    assert expanded["hidden500 + best"]["where"] == {**CLAIM["where"], "head": "hidden500"}
    assert claim_readings(CLAIM, readings) == [("as stated", CLAIM)]
    frame = pd.concat([runs(0.9931, 0.9930, 0.9932, head="linear"), runs(0.980, 0.982, 0.981, head="hidden500")])
    verdicts = {r: judge_claim(c, frame)["verdict"] for r, c in expanded.items() if r.endswith("last")}
    assert verdicts == {"linear + last": "reproduced", "hidden500 + last": "not reproduced"}


def test_claims_file_is_complete_and_every_protocol_is_expressible():
    claims = load_claims()
    assert {c["paper"] for c in claims} == {"000", "001", "002", "003", "004"}
    assert all(c.get("source") and c.get("text") for c in claims)
    assert len({c["id"] for c in claims}) == len(claims)
    for c in claims:
        assert ("tolerance" in c) <= ("tolerance_why" in c), f"{c['id']}: a tolerance other than the rule needs a reason"
        assert c["kind"] not in ("metric", "comparison", "ratio", "curve") or "profile" in c.get("where", {}), c["id"]
    for paper, axes in summary.load_readings().items():
        for axis, names in axes.items():
            assert all(spec.get("source") for spec in names.values()), f"{paper} {axis}: a reading without a source"
    summary.check_claims()


def test_a_claim_no_config_can_express_is_an_error_naming_it(monkeypatch):
    bad = {**CLAIM, "id": "002.bad", "where": {"model": "pytorch_cnn", "profile": "paper", "batchsize": 32}}
    monkeypatch.setattr(summary, "load_claims", lambda paper=None: [bad])
    with pytest.raises(ClaimError, match="002.bad"):
        summary.check_claims()
    monkeypatch.setattr(summary, "load_claims", lambda paper=None: [{**bad, "where": {"model": "nope", "profile": "paper"}}])
    with pytest.raises(ClaimError, match="002.bad"):
        summary.check_claims()


@pytest.mark.parametrize("text,value,resolution", [("99.31%", 0.9931, 1e-4), ("15.0%", 0.15, 1e-3), ("2.1e7", 2.1e7, 1e6),
                                                    ("3,966", 3966, 1), ("8e5", 8e5, 1e5), (0.2, 0.2, 0.1)])
def test_claimed_values_are_read_as_printed(text, value, resolution):
    assert parse_claimed(text) == pytest.approx((value, resolution))


def test_model_claims_are_computed_from_the_registry():
    table = claims_table(runs_frame([]), "001").iloc[0]
    assert table["verdict"] == "not reproduced" and table["measured"] == "0"
    lenet = claims_table(runs_frame([]), "003").set_index("claim").loc["LeNet-5 has about 60,000 parameters"]
    assert lenet["measured"] == "61,706" and lenet["verdict"] == "reproduced"


def test_every_claim_is_judged_from_another_papers_runs_alone():
    """The full claims table, with runs of one paper only (curve judges included)."""
    table = claims_table(runs(0.993))
    kind_of = {c["id"]: c["kind"] for c in load_claims()}
    kinds = table["id"].map(kind_of)
    judged = table[kinds.isin(["metric", "curve", "comparison", "ratio"]) & table["paper"].isin(["003", "004"])]
    expected = sum(len(claim_readings(c)) for c in load_claims() if c["paper"] in ("003", "004")
                   and c["kind"] in ("metric", "curve", "comparison", "ratio"))
    assert len(judged) == expected and (judged["verdict"] == "not yet run").all()  # every claim, every reading


def test_cost_counts_each_run_once_and_every_session_of_a_resumed_one():
    from hwrlib.summary import cost, minutes
    frame = pd.DataFrame([
        {"run_path": "a", "wall_seconds": 600.0, "train_seconds": 540.0, "device": "cpu"},   # one session
        {"run_path": "b", "wall_seconds": 120.0, "train_seconds": 3000.0, "device": "cpu"},  # resumed: last session's wall
        {"run_path": "c", "wall_seconds": None, "train_seconds": 60.0, "device": "cpu"},     # a baseline: fit time only
        {"run_path": "d", "wall_seconds": 300.0, "train_seconds": 250.0, "device": "cuda"}])
    spent = cost(frame)["spent"]
    assert minutes(spent) == pytest.approx((10 + 50 + 1, 5))
    assert minutes({**spent, **cost(frame.iloc[:1])["spent"]}) == minutes(spent)  # a run two readings share: once


# ---- the committed records ----------------------------------------------------------------------------------

def _neighbour(folder: Path, change: dict) -> None:
    """A valid record of a protocol next to ``folder``'s: its config with ``change``, the same numbers."""
    cfg = yaml.safe_load((folder / "config.yaml").read_text())
    paper = cfg.pop("paper")
    cfg.update(change)
    rd = RunDir(paper, cfg, folder.parents[2])
    if rd.path.exists():  # two runs that differ only in the changed field: one neighbour is enough
        return
    rd.path.mkdir(parents=True)
    for name in ("metrics.csv", "final.json", "steps.csv"):
        if (folder / name).exists():
            shutil.copy(folder / name, rd.path / name)
    rd.write_config()
    assert rd.id == run_id(cfg)


def test_committed_verdicts_are_the_records_verdicts_and_neighbours_move_none(tmp_path):
    """results/verdicts.csv is what the committed records give (regenerate it with `make report` when a change
    moves a verdict); valid records of neighbouring protocols (another lr, optimizer, head, penalty) move nothing."""
    committed = (ROOT / "results" / "verdicts.csv").read_text()
    shutil.copytree(ROOT / "results" / "runs", tmp_path / "runs")
    if (ROOT / "results" / "timing").is_dir():  # the timing record a timing claim reads beside the runs
        shutil.copytree(ROOT / "results" / "timing", tmp_path / "timing")
    for folder in sorted((tmp_path / "runs").glob("*/paper-*")):
        cfg = yaml.safe_load((folder / "config.yaml").read_text())
        for field, value in (("lr", 0.0123), ("optimizer", "sgd"), ("head", "hidden500"), ("weight_decay", 0.5)):
            if field in cfg and cfg[field] != value:
                _neighbour(folder, {field: value})
                break
    injected = load_runs(tmp_path)
    assert len(injected) > len(load_runs(ROOT / "results")) + 100
    now = summary.verdict_frame(injected)
    assert now.to_csv(index=False) == committed, "results/verdicts.csv is stale: run `make report` and commit it"
    # every side of every claim x reading selected one protocol, one run per seed
    for _, row in now.iterrows():
        for side in ("protocol", "than_protocol"):
            sel = injected[injected["protocol"] == row[side]]
            assert sel["seed"].is_unique, (row["claim"], row["reading"], side)
