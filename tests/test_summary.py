import math

import pandas as pd
import pytest

from hwrlib.summary import claim_readings, claims_table, evaluate, load_claims, _row, robust_verdict

CLAIM = {"id": "t", "paper": "002", "text": "t", "source": "s", "kind": "metric", "metric": "final_test_acc", "claimed": 0.9931,
         "tolerance": 0.002, "where": {"model": "pytorch_cnn", "profile": "paper", "train_size": None}}


def runs(*accs, model="pytorch_cnn", profile="paper", train_size=None):
    return pd.DataFrame([{"paper": "002", "model": model, "profile": profile, "train_size": train_size,
                          "final_test_acc": a} for a in accs])


def test_metric_claim_mean_std_and_verdict():
    r = evaluate(CLAIM, runs(0.992, 0.994, 0.993))
    assert r["verdict"] == "reproduced" and r["n"] == 3
    assert r["mean"] == pytest.approx(0.993) and r["std"] == pytest.approx(0.001)
    assert evaluate(CLAIM, runs(0.985, 0.987))["verdict"] == "not reproduced"


def test_unmatched_runs_are_not_yet_run():
    assert evaluate(CLAIM, runs(0.993, profile="quick"))["verdict"] == "not yet run"
    assert evaluate(CLAIM, runs(0.993, train_size=3000))["verdict"] == "not yet run"
    assert evaluate(CLAIM, pd.DataFrame())["verdict"] == "not yet run"
    # a paper notebook can set its quick run beside the claim, as an indication: never a verdict
    quick = evaluate(CLAIM, runs(0.993, profile="quick"), ignore=("profile",))
    assert quick["verdict"] == "indication only" and quick["mean"] == pytest.approx(0.993)


def test_a_notebook_at_another_profile_gets_no_verdict(monkeypatch):
    monkeypatch.setattr("hwrlib.summary.load_claims", lambda paper=None: [CLAIM])
    quick = claims_table(runs(0.993, profile="quick"), "002", profile="quick").iloc[0]
    assert quick["verdict"] == "indication only" and quick["measured"] == "99.30%"
    paper = claims_table(runs(0.993), "002", profile="paper").iloc[0]
    assert paper["verdict"] == "reproduced"


def test_a_comparison_row_never_shows_half_of_itself(monkeypatch):
    comp = {**CLAIM, "kind": "comparison", "than": {"model": "resnet18", "profile": "paper"}}
    monkeypatch.setattr("hwrlib.summary.load_claims", lambda paper=None: [comp])
    row = claims_table(runs(0.99), "002").iloc[0]
    assert row["measured"] == "99.00% vs not yet run" and row["verdict"] == "not yet run"
    both = claims_table(pd.concat([runs(0.99), runs(0.98, model="resnet18")]), "002").iloc[0]
    assert both["measured"] == "99.00% vs 98.00%" and both["verdict"] == "reproduced"
    assert claims_table(pd.DataFrame(), "002").iloc[0]["measured"] == "not yet run"


def test_comparison_and_ratio():
    both = pd.concat([runs(0.99), runs(0.98, model="lenet5")])
    comp = {**CLAIM, "kind": "comparison", "than": {"model": "lenet5", "profile": "paper"}}
    assert evaluate(comp, both)["verdict"] == "reproduced"
    assert evaluate({**comp, "than": {"model": "resnet18"}}, both)["verdict"] == "not yet run"
    ratio = {**comp, "kind": "ratio", "claimed": 1.0, "tolerance": 0.05, "tolerance_kind": "rel"}
    r = evaluate(ratio, both)
    assert r["mean"] == pytest.approx(0.99 / 0.98) and r["verdict"] == "reproduced"
    # one side run: the table shows its mean beside "not yet run", never that mean as the ratio
    half = _row({**ratio, "than": {"model": "resnet18"}}, both, None)
    assert half["measured"] == "99.00% vs not yet run" and half["verdict"] == "not yet run"


def test_claims_file_covers_all_five_works_with_sources():
    claims = load_claims()
    assert {c["paper"] for c in claims} == {"000", "001", "002", "003", "004"}
    assert all(c.get("source") and c.get("text") for c in claims)
    assert len({c["id"] for c in claims}) == len(claims)
    for c in claims:
        if c["kind"] in ("metric", "ratio", "model", "reference"):
            assert isinstance(c["claimed"], (int, float)) and not math.isnan(c["claimed"]), c["id"]


def test_model_claims_are_computed_from_the_registry():
    table = claims_table(pd.DataFrame(), "001").iloc[0]
    assert table["verdict"] == "not reproduced" and table["measured"] == "0"
    lenet = claims_table(pd.DataFrame(), "003").set_index("claim").loc["LeNet-5 has about 60,000 parameters"]
    assert lenet["measured"] == "61,706" and lenet["verdict"] == "reproduced"


def test_every_claim_is_judged_from_another_papers_runs_alone():
    """The summary notebook's full claims table, with runs of one paper only (curve judges included)."""
    table = claims_table(runs(0.993))
    kind_of = {c["id"]: c["kind"] for c in load_claims()}
    kinds = table["id"].map(kind_of)
    judged = table[kinds.isin(["metric", "curve", "comparison", "ratio"]) & table["paper"].isin(["003", "004"])]
    assert len(judged) >= 14 and (judged["verdict"] == "not yet run").all()


def test_readings_expand_into_one_claim_each():
    readings = {"002": {"head": {"linear": {"where": {"head": "linear"}}, "hidden500": {"where": {"head": "hidden500"}}},
                        "score": {"last": {"metric": "final_test_acc"}, "best": {"metric": "max_test_acc"}}}}
    claim = {**CLAIM, "readings": ["head", "score"]}
    expanded = dict(claim_readings(claim, readings))
    assert list(expanded) == ["linear + last", "linear + best", "hidden500 + last", "hidden500 + best"]
    assert expanded["hidden500 + best"]["where"] == {**CLAIM["where"], "head": "hidden500"}
    assert expanded["hidden500 + best"]["metric"] == "max_test_acc" and CLAIM["metric"] == "final_test_acc"
    assert claim_readings(CLAIM, readings) == [("as stated", CLAIM)]
    # two readings' runs are never pooled: each reading sees its own
    frame = pd.concat([runs(0.993, 0.993).assign(head="linear"), runs(0.980, 0.982).assign(head="hidden500")])
    verdicts = {r: evaluate(c, frame)["verdict"] for r, c in expanded.items() if r.endswith("last")}
    assert verdicts == {"linear + last": "reproduced", "hidden500 + last": "not reproduced"}


@pytest.mark.parametrize("verdicts,robust", [
    ({"a": "reproduced", "b": "reproduced"}, "holds under every reading"),
    ({"a": "not reproduced", "b": "not reproduced"}, "fails under every reading"),
    ({"a": "reproduced", "b": "not reproduced"}, "holds only under a"),
    ({"a": "reproduced", "b": "inconclusive"}, "holds only under a (1 inconclusive)"),
    ({"a": "reproduced", "b": "not yet run", "c": "inconclusive"}, "holds only under a (so far: 1 inconclusive, 1 not yet run)"),
    ({"a": "not reproduced", "b": "inconclusive"}, "inconclusive"),
    ({"a": "not yet run", "b": "not yet run"}, "not yet run"),
    ({"as stated": "not reproduced"}, "not reproduced"),
])
def test_robust_verdict(verdicts, robust):
    assert robust_verdict(verdicts) == robust


def test_comparisons_need_more_than_the_noise():
    lenet = runs(0.9880, 0.9884, 0.9886, model="lenet5")
    comp = {**CLAIM, "kind": "comparison", "than": {"model": "lenet5", "profile": "paper"}}
    assert evaluate(comp, pd.concat([runs(0.9900, 0.9905, 0.9910), lenet]))["verdict"] == "reproduced"
    # a mean 0.07 points higher with a seed spread of 0.13 points: within twice the standard error
    assert evaluate(comp, pd.concat([runs(0.9880, 0.9910, 0.9870), lenet]))["verdict"] == "inconclusive"
    assert evaluate(comp, pd.concat([runs(0.9800, 0.9805, 0.9810), lenet]))["verdict"] == "not reproduced"


def test_cost_counts_each_run_once_and_every_session_of_a_resumed_one():
    from hwrlib.summary import cost, minutes
    runs = pd.DataFrame([
        {"run_path": "a", "wall_seconds": 600.0, "train_seconds": 540.0, "device": "cpu"},   # one session
        {"run_path": "b", "wall_seconds": 120.0, "train_seconds": 3000.0, "device": "cpu"},  # resumed: last session's wall
        {"run_path": "c", "wall_seconds": None, "train_seconds": 60.0, "device": "cpu"},     # a baseline: fit time only
        {"run_path": "d", "wall_seconds": 300.0, "train_seconds": 250.0, "device": "cuda"}])
    spent = cost(runs)["spent"]
    assert minutes(spent) == pytest.approx((10 + 50 + 1, 5))
    assert minutes({**spent, **cost(runs.iloc[:1])["spent"]}) == minutes(spent)  # a run two readings share: once
