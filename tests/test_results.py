import hashlib
import json
import os
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from hwrlib import results
from hwrlib.experiments import P001Config, P002Config, run_dirs
from hwrlib.results import RUN_COLUMNS, RunDir, atomic_write_text, load_runs, run_id, runs_frame


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    p = tmp_path / "final.json"
    atomic_write_text(p, "old")

    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write_text(p, "new")
    assert p.read_text() == "old"
    assert [f.name for f in tmp_path.iterdir()] == ["final.json"]  # no temp file left behind


def test_run_id_is_stable_and_tracks_identity():
    cfg = P002Config.from_params(profile="paper", seed=3)
    a = cfg.record()
    assert run_id(a) == run_id(dict(reversed(list(a.items()))))
    assert run_id(a) == run_id(P002Config.from_params(profile="paper", seed=3).record())
    assert run_id(a).startswith("paper-pytorch_cnn-s3-")
    # where a run happens does not change what it is
    assert run_id({**a, "device": "cuda", "results_dir": "/x", "data_dir": "/y"}) == run_id(a)
    assert run_id({**a, "lr": 0.01}) != run_id(a)
    assert run_id(cfg.for_model("lenet5").record()) != run_id(a)
    # which other runs a point trains beside this one does not change what this run is
    assert P002Config.from_params(profile="paper", seed=3, compare_models=[]).record() == a


def test_fields_of_other_models_do_not_split_a_run():
    # activation is the 002 CNN's: LeNet-5 trained beside a tanh CNN is the same run as beside a ReLU one
    relu = P002Config.from_params(profile="paper").runs()
    tanh = P002Config.from_params(profile="paper", activation="tanh").runs()
    assert relu[0].record() != tanh[0].record() and relu[1].record() == tanh[1].record()


def test_run_dirs_differ_between_papers(results_tmp):
    assert run_dirs(P001Config.from_params())[0].path.parent.name == "001"
    # quick: the main run on all images, then main and lenet5 on the 3,000-image comparison subset
    quick = [(c.model, c.train_size) for c in P002Config.from_params(compare_models=["lenet5"]).runs()]
    assert quick == [("pytorch_cnn", None), ("pytorch_cnn", 3000), ("lenet5", 3000)]
    # paper: the comparison uses all images, so the main run is shared
    paper = P002Config.from_params(profile="paper", compare_models=["lenet5"])
    assert [d.id.split("-")[1] for d in run_dirs(paper)] == ["pytorch_cnn", "lenet5"]
    assert [(c.model, c.train_size) for c in P002Config.from_params(compare_models=[]).runs()] == [("pytorch_cnn", None)]


def test_load_runs_skips_unfinished(results_tmp):
    done = RunDir("002", {"model": "a", "seed": 0, "profile": "paper"})
    done.write_config()
    done.write_metrics([{"epoch": 1, "test_acc": 0.9}])
    done.write_final({"final_test_acc": 0.9})
    half = RunDir("002", {"model": "b", "seed": 0, "profile": "paper"})
    half.write_config()
    half.write_metrics([{"epoch": 1, "test_acc": 0.5}])
    runs = load_runs()
    assert runs["model"].tolist() == ["a"] and runs["final_test_acc"].tolist() == [0.9]
    assert json.loads((done.path / "final.json").read_text())["final_test_acc"] == 0.9
    assert results.load_metrics(runs)["test_acc"].tolist() == [0.9]
    assert results.load_metrics(runs, ["model"])[["test_acc", "model"]].values.tolist() == [[0.9, "a"]]


def test_environment_records_versions():
    import platform
    import subprocess

    import numpy
    import torch
    env = results.environment()
    assert (env["torch"], env["numpy"], env["python"]) == (torch.__version__, numpy.__version__,
                                                           platform.python_version())
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parents[1], capture_output=True,
                          text=True, check=True).stdout.strip()
    assert env["git_commit"] in (head, f"{head}-dirty")


def _committed_runs():
    root = Path(__file__).parents[1] / "results" / "runs"
    return sorted(p.parent for p in root.glob("*/*/final.json"))


def test_every_record_field_and_column_is_documented():
    readme = (Path(__file__).parents[1] / "results" / "README.md").read_text()
    documented = set(re.findall(r"`([a-z_0-9]+)`", readme))
    fields, columns = set(), set()
    for run in _committed_runs():
        fields |= set(json.loads((run / "final.json").read_text()))
        columns |= set(pd.read_csv(run / "metrics.csv", nrows=0).columns)
    columns = {c for c in columns if not re.fullmatch(r"a_\d+", c)}  # a_1 .. a_18: one row of the table
    assert fields and columns
    assert fields <= documented, sorted(fields - documented)
    assert columns <= documented, sorted(columns - documented)


def test_committed_final_test_acc_is_the_last_evaluation():
    runs = _committed_runs()
    assert len(runs) > 60
    for run in runs:
        final = json.loads((run / "final.json").read_text())
        metrics = (run / "metrics.csv").read_bytes()
        last = pd.read_csv(run / "metrics.csv").iloc[-1]
        assert final["final_test_acc"] == last["test_acc"], run
        assert final["num_evals"] == len(pd.read_csv(run / "metrics.csv")), run
        assert final["metrics_sha256"] == hashlib.sha256(metrics).hexdigest(), run
        # the folder's name is the id of its config: the planner finds it
        config = yaml.safe_load((run / "config.yaml").read_text())
        assert run_id({k: v for k, v in config.items() if k != "paper"}) == run.name, run


def test_committed_records_pass_the_check(capsys):
    assert results.main(["check", str(Path(__file__).parents[1] / "results")]) == 0
    assert "0 damaged" in capsys.readouterr().out


def test_damaged_records_are_listed_and_skipped(tmp_path, capsys):
    import shutil
    src = _committed_runs()
    picks = [p for p in src if p.parent.name == "002"][:4] + [p for p in src if p.parent.name == "003"][:2]
    for p in picks:
        shutil.copytree(p, tmp_path / "runs" / p.parent.name / p.name)
    runs = sorted((tmp_path / "runs").glob("*/*"))
    (runs[0] / "final.json").write_text((runs[0] / "final.json").read_text()[:40])  # truncated
    final = json.loads((runs[1] / "final.json").read_text())
    (runs[1] / "final.json").write_text(json.dumps({**final, "final_test_acc": "0.99"}))  # a string for a number
    lines = (runs[2] / "metrics.csv").read_text().splitlines(keepends=True)
    (runs[2] / "metrics.csv").write_text("".join(lines[:6]))  # cut to 5 of 20 epochs
    (runs[3] / "final.json").write_text((runs[3] / "final.json").read_text().replace(
        '"final_test_loss": ', '"final_test_loss": NaN, "x": '))  # the non-standard NaN token
    damaged = []
    frame = load_runs(tmp_path, damaged=damaged)
    assert len(frame) == 2 and frame.attrs["damaged"] == damaged
    problems = dict(damaged)
    assert set(problems) == {str(r) for r in runs[:4]}
    assert "unreadable" in problems[str(runs[0])] and "not a fraction" in problems[str(runs[1])]
    assert "SHA-256" in problems[str(runs[2])] and "non-finite" in problems[str(runs[3])]
    assert results.main(["check", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert all(f"damaged: {r}" in out for r in runs[:4]) and "2 complete records, 4 damaged" in out
    from hwrlib.summary import damaged_table, robust_table
    assert len(robust_table(frame)) > 10  # the summary still builds from the intact ones
    assert list(damaged_table(frame)["record"]) == [str(r) for r in runs[:4]]


def test_a_full_disk_or_unwritable_folder_is_named_and_leaves_nothing(tmp_path, monkeypatch):
    import errno
    import os

    from hwrlib.results import ResultsWriteError, atomic_write_text
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(ResultsWriteError, match="cannot write .*a_file/run/config.yaml.*writable folder"):
        atomic_write_text(blocker / "run" / "config.yaml", "x")  # its folder cannot exist
    folder = tmp_path / "run"

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(ResultsWriteError, match="No space left on device.*free space"):
        atomic_write_text(folder / "config.yaml", "x")
    assert list(folder.iterdir()) == []  # no config.yaml, no temp file


def test_a_frame_of_no_runs_has_the_schema_columns(tmp_path):
    """No runs is a frame like any other: the columns every record has, typed, so selecting by them needs no guard."""
    for empty in (load_runs(tmp_path), runs_frame([])):
        assert empty.empty and list(empty.columns) == list(RUN_COLUMNS)
        assert {c: str(t) for c, t in empty.dtypes.items()} == RUN_COLUMNS
        assert empty[(empty["paper"] == "003") & (empty["profile"] == "paper")].empty
    assert load_runs(tmp_path).attrs["damaged"] == []


def test_every_committed_record_has_the_schema_columns():
    runs = load_runs()
    assert set(RUN_COLUMNS) <= set(runs.columns)
    assert runs[list(RUN_COLUMNS)].notna().all().all()
