import json
import os

import pytest

from hwrlib import results
from hwrlib.experiments import P001Config, P002Config
from hwrlib.results import RunDir, atomic_write_text, load_runs, run_id


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
    a = cfg.run_config("pytorch_cnn", None)
    assert run_id(a) == run_id(dict(reversed(list(a.items()))))
    assert run_id(a) == run_id(P002Config.from_params(profile="paper", seed=3).run_config("pytorch_cnn", None))
    assert run_id(a).startswith("paper-pytorch_cnn-s3-")
    # where a run happens does not change what it is
    assert run_id({**a, "device": "cuda", "results_dir": "/x", "data_dir": "/y"}) == run_id(a)
    assert run_id({**a, "lr": 0.01}) != run_id(a)
    assert run_id(cfg.run_config("lenet5", None)) != run_id(a)


def test_run_dirs_differ_between_papers(results_tmp):
    assert P001Config.from_params().run_dirs()[0].path.parent.name == "001"
    # quick: the main run on all images, then main and lenet5 on the 3,000-image comparison subset
    quick = P002Config.from_params(compare_models=["lenet5"]).planned_runs()
    assert quick == [("pytorch_cnn", None), ("pytorch_cnn", 3000), ("lenet5", 3000)]
    # paper: the comparison uses all images, so the main run is shared
    paper = P002Config.from_params(profile="paper", compare_models=["lenet5"])
    assert [d.id.split("-")[1] for d in paper.run_dirs()] == ["pytorch_cnn", "lenet5"]
    assert P002Config.from_params(compare_models=[]).planned_runs() == [("pytorch_cnn", None)]


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


def test_environment_records_versions():
    env = results.environment()
    assert env["torch"].startswith("2.") and env["python"].count(".") == 2
