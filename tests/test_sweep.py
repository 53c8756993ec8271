from pathlib import Path

import pytest

from hwrlib import sweep
from hwrlib.experiments import P001Config, P002Config, P003Config, run_dirs
from hwrlib.results import load_runs

NOTEBOOK = str(Path(__file__).parents[1] / "notebooks" / "002_pytorch_cnn_mnist.ipynb")
NOTEBOOK_003 = str(Path(__file__).parents[1] / "notebooks" / "003_lenet_variant_mnist.ipynb")


def test_expand_grid_cartesian_and_list_parameters(tmp_path):
    (tmp_path / "g.yaml").write_text("lr: [0.1, 0.01]\nbatch_size: [32, 64, 128]\nseeds: [0, 1]\n"
                                     "compare_models: [lenet5]\n")
    points = sweep.expand_grid(sweep.load_grid(tmp_path / "g.yaml"), P002Config)
    assert len(points) == 12
    assert all(p["compare_models"] == ["lenet5"] for p in points)  # a plain list is one value
    assert {(p["lr"], p["batch_size"], p["seed"]) for p in points} == {
        (lr, b, s) for lr in (0.1, 0.01) for b in (32, 64, 128) for s in (0, 1)}
    lists = sweep.expand_grid({"compare_models": [["lenet5"], []]}, P002Config)
    assert [p["compare_models"] for p in lists] == [["lenet5"], []]
    with pytest.raises(ValueError, match="'epochs' is not a parameter"):
        sweep.expand_grid({"epochs": [1, 2]}, P002Config)


def test_cases_go_together_and_grids_share_points(tmp_path):
    (tmp_path / "f.yaml").write_text("cases: [{c1: 2, c3: 8}, {c1: 6, c3: 12}]\nseeds: [0, 1]\n")
    (tmp_path / "b.yaml").write_text("batch_size: [50, 100]\nseeds: [0, 1]\n")
    points = sweep.expand_grid(sweep.load_grid(tmp_path / "f.yaml"), P003Config)
    assert [(p["c1"], p["c3"], p["seed"]) for p in points] == [(2, 8, 0), (2, 8, 1), (6, 12, 0), (6, 12, 1)]
    # the default point (6-12, batch 50) is in both grids: planned once
    planned = sweep.plan(NOTEBOOK_003, [sweep.load_grid(tmp_path / f) for f in ("f.yaml", "b.yaml")], str(tmp_path))
    assert len(planned) == 6 and len({p["out_dir"] for p in planned}) == 6
    (tmp_path / "bad.yaml").write_text("cases: {c1: 2}\n")
    with pytest.raises(ValueError, match="'cases' must be a non-empty list"):
        sweep.load_grid(tmp_path / "bad.yaml")
    with pytest.raises(ValueError, match="'c2' is not a parameter"):
        sweep.expand_grid({"cases": [{"c2": 1}]}, P003Config)


def test_a_point_inside_a_larger_point_is_planned_once(tmp_path):
    # Table 1's point (CNN + baselines of seeds 0-1) writes every folder of the grid's default point (the CNNs)
    table1 = {"baselines": True, "seed": 0, "replicas": 2}
    grid = {"baselines": False, "lr": [0.5, 1.0], "seed": 0, "replicas": 2}
    planned = sweep.plan(NOTEBOOK_003, [grid, table1], str(tmp_path))
    assert [(p["params"]["lr"] if "lr" in p["params"] else "table1") for p in planned] == [0.5, "table1"]
    table1_dirs = run_dirs(P003Config.from_params(**table1, results_dir=str(tmp_path)))
    assert len(table1_dirs) == 2 + 2 * 3 and planned[1]["out_dir"] == str(table1_dirs[0].path)


def test_a_point_whose_comparison_runs_are_missing_is_run(tmp_path, monkeypatch):
    # the sweep plans from the notebook's defaults (compare_models: the residual version): a complete main run
    # alone does not make the point complete
    monkeypatch.delenv("HWR_PROFILE", raising=False)
    cfg = P001Config.from_params(profile="paper", results_dir=str(tmp_path))
    main, compared = run_dirs(cfg)
    assert compared.config["model"] == "blog_resnet"
    main.write_config()
    main.write_metrics([{"epoch": 1, "test_acc": 0.99}])
    main.write_final({"final_test_acc": 0.99})
    nb = str(Path(NOTEBOOK).with_name("001_blog_resnet_mnist.ipynb"))
    [point] = sweep.plan(nb, {"profile": "paper"}, str(tmp_path))
    assert point["status"] == "todo"
    compared.write_config()
    compared.write_metrics([{"epoch": 1, "test_acc": 0.99}])
    compared.write_final({"final_test_acc": 0.99})
    assert sweep.plan(nb, {"profile": "paper"}, str(tmp_path))[0]["status"] == "skipped"


def test_two_point_grid_on_local_cluster(mnist_ready, results_tmp, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("HWR_PROFILE", "smoke")
    grid = tmp_path / "grid.yaml"
    grid.write_text("compare_models: []\nseeds: [0, 1]\n")
    assert sweep.main([NOTEBOOK, str(grid), "--workers", "2"]) == 0
    runs = load_runs()
    assert sorted(runs["seed"]) == [0, 1] and set(runs["profile"]) == {"smoke"}
    assert all((Path(p) / "notebook.ipynb").exists() for p in runs["run_path"])
    assert "2 done, 0 skipped, 0 failed" in capsys.readouterr().out

    # rerun: both points exist, nothing runs
    assert sweep.main([NOTEBOOK, str(grid), "--workers", "2"]) == 0
    assert "0 done, 2 skipped, 0 failed" in capsys.readouterr().out

    # a point that fails inside the notebook is reported with its error; the other point still runs
    # (device is not part of a run's identity: the two points differ in seed too, or they would be one run)
    grid.write_text("compare_models: []\ncases: [{seed: 5, device: cuda}, {seed: 6, device: cpu}]\n")
    if __import__("torch").cuda.is_available():
        pytest.skip("cuda exists here: the failing point would succeed")
    assert sweep.main([NOTEBOOK, str(grid), "--workers", "2"]) == 1
    out = capsys.readouterr().out
    assert "failed" in out and "CUDA is not available" in out and "1 done, 0 skipped, 1 failed" in out
    assert 6 in set(load_runs()["seed"]) and 5 not in set(load_runs()["seed"])


def test_point_kernel_environment(tmp_path, monkeypatch):
    import nbformat
    # what a Dask nanny gives its workers: the kernel must not inherit the malloc trim threshold (2x slower training)
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    monkeypatch.setenv("HWR_NUM_THREADS", "1")  # run_point sets it in this process: restored after the test
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("out = None", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("import json, os\nopen(out, 'w').write(json.dumps(dict(os.environ)))")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "env.ipynb")
    status = sweep.run_point(str(tmp_path / "env.ipynb"), {"out": str(tmp_path / "env.json")}, str(tmp_path / "o"), 3)
    env = __import__("json").loads((tmp_path / "env.json").read_text())
    assert status["status"] == "done" and env["HWR_NUM_THREADS"] == "3" and "MALLOC_TRIM_THRESHOLD_" not in env


def test_invalid_point_is_reported_without_running(results_tmp, tmp_path, capsys):
    grid = tmp_path / "grid.yaml"
    grid.write_text("batch_size: [0]\n")
    assert sweep.main([NOTEBOOK, str(grid), "--dry-run"]) == 1
    assert "parameter 'batch_size'" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        sweep.main([str(tmp_path / "missing.ipynb")])
