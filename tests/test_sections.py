"""Each paper's section is stated once and rendered alike; a paper notebook's claims table takes its verdicts from the
records of exactly the claim's protocol and shows the runs it just trained beside them."""
import pandas as pd

from hwrlib.experiments import P002Config, list_experiments
from hwrlib.results import RunDir
from hwrlib.sections import measured_vs_claimed, paper_view, sections
from hwrlib.summary import claims_table, robust_table
from hwrlib.verdict import Verdict

ACCURACY = "The CNN reaches 99.31% test accuracy on MNIST (batch 32, 20 epochs)"


def _run(root, acc, seed, **params):
    """A finished 002 run of the CNN (paper protocol unless ``params`` say otherwise) with this final accuracy."""
    cfg = P002Config.build({"profile": "paper", "seed": seed, "compare_models": [], **params})
    rd = RunDir("002", cfg.record(), root)
    rd.write_config()
    rd.write_metrics([{"epoch": e, "step": e, "samples": e, "lr": 1e-3, "seconds": 1.0, "train_loss": 0.1,
                       "test_loss": 0.1, "test_acc": acc} for e in (1, 2)])
    rd.write_final({"final_test_acc": acc, "max_test_acc": acc, "num_params": 1, "epochs": 2, "num_train": 60000,
                    "mean_epoch_seconds": 1.0, "device": "cpu"})
    return rd.read()


def test_every_registered_paper_has_one_section():
    assert sorted(s.paper for s in sections()) == list_experiments()
    assert [s.paper for s in sections() if not s.judged] == ["000"]  # listed last, a note instead of tables


def test_the_notebook_shows_its_runs_beside_the_records_verdict(tmp_path):
    records = [_run(tmp_path, a, s) for s, a in enumerate([0.9850, 0.9870, 0.9860, 0.9855, 0.9865])]
    cfg = P002Config.build({"profile": "paper", "compare_models": [], "results_dir": str(tmp_path)})
    shown = measured_vs_claimed(cfg, records[:1])  # a notebook that trained seed 0 of the claim's protocol
    row = shown[(shown["claim"] == ACCURACY) & (shown["reading"] == "linear + last_epoch")].iloc[0]
    assert row["verdict"] is Verdict.NOT_REPRODUCED and row["n"] == 5  # all five records, not the one run
    assert row["this notebook"] == "pytorch_cnn 98.50% (n=1; part of the records' evidence)"
    # a quick run is another protocol: an indication beside the records' verdict, never evidence
    quick = _run(tmp_path / "quick", 0.9931, 0, profile="quick")
    cfg_quick = P002Config.build({"profile": "quick", "compare_models": [], "results_dir": str(tmp_path)})
    row = measured_vs_claimed(cfg_quick, [quick])
    row = row[(row["claim"] == ACCURACY) & (row["reading"] == "linear + last_epoch")].iloc[0]
    assert row["verdict"] is Verdict.NOT_REPRODUCED and row["n"] == 5
    assert row["this notebook"].startswith("pytorch_cnn 99.31% (indication: quick profile, n=1")


def test_a_paper_view_is_what_the_claims_tables_say(tmp_path):
    for s, a in enumerate([0.9930, 0.9932, 0.9929]):
        _run(tmp_path, a, s)
    from hwrlib.results import load_runs
    runs = load_runs(tmp_path)
    per = claims_table(runs)
    per = per[per["verdict"] != Verdict.REFERENCE]
    robust = robust_table(runs, per=per)
    sec = next(s for s in sections() if s.paper == "002")
    view = paper_view(sec, runs, per, robust)
    row = view.claims.set_index("claim").loc[ACCURACY]
    assert row["measured"].startswith("linear + last_epoch: 99.30% ± 0.02%")
    assert row["verdict"].endswith(robust.set_index("claim").loc[ACCURACY, "verdict"])
    assert view.forest is not None and sec.command in " ".join(view.todo)  # hidden500 and LeNet-5 not yet run
    assert isinstance(view.extras.blocks[-1], pd.DataFrame)  # the sensitivity table follows the claims


def test_notebook_tables_show_accuracies_in_percent():
    from hwrlib.summary import as_percent
    rows = pd.DataFrame({"epoch": [1, 2], "train_loss": [0.123456, 0.1], "test_acc": [0.98766, 0.99],
                         "test_error": [0.01234, 0.01]})
    shown = as_percent(rows)
    assert list(shown.columns) == ["epoch", "train_loss", "test_acc (%)", "test_error (%)"]
    assert shown["test_acc (%)"].tolist() == [98.77, 99.0] and shown["train_loss"].tolist() == [0.1235, 0.1]
