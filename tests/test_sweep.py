import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import nbformat
import psutil
import pytest

from hwrlib import sweep
from hwrlib.baselines import BASELINES
from hwrlib.experiments import P001Config, P002Config, P003Config, create_experiment, run_dirs
from hwrlib.results import load_runs, protocol_id

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
    planned = sweep.plan_points(NOTEBOOK_003, [sweep.load_grid(tmp_path / f) for f in ("f.yaml", "b.yaml")], str(tmp_path))
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
    planned = sweep.plan_points(NOTEBOOK_003, [grid, table1], str(tmp_path))
    assert [(p["params"]["lr"] if "lr" in p["params"] else "table1") for p in planned] == [0.5, "table1"]
    table1_dirs = run_dirs(P003Config.from_params(**table1, results_dir=str(tmp_path)))
    assert len(table1_dirs) == 2 + 2 * len(BASELINES) and planned[1]["out_dir"] == str(table1_dirs[0].path)


def test_a_point_whose_comparison_runs_are_missing_is_run(tmp_path, monkeypatch):
    # the sweep plans from the notebook's defaults (compare_models: the residual version): a complete main run
    # alone does not make the point complete
    monkeypatch.delenv("HWR_PROFILE", raising=False)
    cfg = P001Config.from_params(profile="paper", results_dir=str(tmp_path))
    main, *compared = run_dirs(cfg)
    assert [d.config["model"] for d in compared] == ["blog_resnet", "blog_deep_plain"]
    main.write_config()
    main.write_metrics([{"epoch": 1, "test_acc": 0.99}])
    main.write_final({"final_test_acc": 0.99})
    nb = str(Path(NOTEBOOK).with_name("001_blog_resnet_mnist.ipynb"))
    [point] = sweep.plan_points(nb, {"profile": "paper"}, str(tmp_path))
    assert point["status"] == "todo"
    for d in compared:
        d.write_config()
        d.write_metrics([{"epoch": 1, "test_acc": 0.99}])
        d.write_final({"final_test_acc": 0.99})
    assert sweep.plan_points(nb, {"profile": "paper"}, str(tmp_path))[0]["status"] == "skipped"


@pytest.mark.slow
def test_local_cluster_reports_a_failing_point_and_no_kernel_warning(mnist_ready, results_tmp, tmp_path, capfd):
    # a point that fails inside the notebook is reported with its error; the other point still runs
    # (device is not part of a run's identity: the two points differ in seed too, or they would be one run)
    if __import__("torch").cuda.is_available():
        pytest.skip("cuda exists here: the failing point would succeed")
    grid = tmp_path / "grid.yaml"
    grid.write_text("profile: smoke\ncompare_models: []\ncases: [{seed: 5, device: cuda}, {seed: 6, device: cpu}]\n")
    assert sweep.main([NOTEBOOK, str(grid), "--workers", "2"]) == 1
    out, err = capfd.readouterr()  # fd level: the local workers and their kernels write to this process's stderr
    assert "failed" in out and "CUDA is not available" in out and "1 done, 0 skipped, 1 failed" in out
    assert "without encryption" not in out + err and "IPKernelApp" not in out + err
    runs = load_runs()
    assert list(runs["seed"]) == [6] and set(runs["profile"]) == {"smoke"}
    assert all((Path(p) / "notebook.ipynb").exists() for p in runs["run_path"])
    assert not list(results_tmp.rglob(sweep.TMP_NOTEBOOK))


def test_declared_seeds_are_the_union_of_every_grid_that_plans_a_protocol(tmp_path):
    (tmp_path / "sweeps").mkdir()
    (tmp_path / "sweeps" / "002_a.yaml").write_text("profile: paper\ncompare_models: [lenet5]\nseeds: [0, 1]\n")
    (tmp_path / "sweeps" / "002_b.yaml").write_text("profile: paper\nmodel: lenet5\ncompare_models: [[]]\nseed: 4\n")
    declared = sweep.declared_seeds.__wrapped__(tmp_path / "sweeps")
    cnn = create_experiment("002", profile="paper", compare_models=[])
    lenet = cnn.for_model("lenet5")
    d = declared[protocol_id("002", lenet.run_dir().config)]
    assert d.seeds == (0, 1, 4) and d.grids == ("sweeps/002_a.yaml", "sweeps/002_b.yaml")
    assert declared[protocol_id("002", cnn.run_dir().config)].seeds == (0, 1)  # the CNN: grid a only
    assert d.command() == "hwr-sweep notebooks/002_*.ipynb sweeps/002_a.yaml sweeps/002_b.yaml"
    assert len(declared) == 2


def test_point_kernel_environment(tmp_path, monkeypatch):
    # what a Dask nanny gives its workers: the kernel must not inherit the malloc trim threshold (2x slower training)
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    monkeypatch.setenv("HWR_NUM_THREADS", "1")
    monkeypatch.setenv("HWR_PROFILE", "paper")  # a worker's: the client resolved the profile into the parameters
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("out = None", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("import json, os\nopen(out, 'w').write(json.dumps(dict(os.environ)))")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "env.ipynb")
    status = sweep.run_point(str(tmp_path / "env.ipynb"), {"out": str(tmp_path / "env.json"), "results_dir": "/r"},
                             str(tmp_path / "o"), 3)
    env = __import__("json").loads((tmp_path / "env.json").read_text())
    assert status["status"] == "done" and env["HWR_NUM_THREADS"] == "3" and "MALLOC_TRIM_THRESHOLD_" not in env
    assert "HWR_PROFILE" not in env and env["HWR_RESULTS_DIR"] == "/r"
    assert os.environ["HWR_PROFILE"] == "paper" and os.environ["HWR_NUM_THREADS"] == "1"  # this process's: untouched


def test_invalid_point_is_reported_without_running(results_tmp, tmp_path, capsys):
    grid = tmp_path / "grid.yaml"
    grid.write_text("batch_size: [0]\n")
    assert sweep.main([NOTEBOOK, str(grid), "--dry-run"]) == 1
    assert "parameter 'batch_size'" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        sweep.main([str(tmp_path / "missing.ipynb")])


def test_grid_yaml_error_names_file_line_and_column(tmp_path, capsys):
    grid = tmp_path / "broken.yaml"
    grid.write_text("compare_models: []\nseeds: [0, 1\nlr: 0.1\n")
    with pytest.raises(ValueError, match=r"broken\.yaml:3:3: not valid YAML"):
        sweep.load_grid(grid)
    assert sweep.main([NOTEBOOK, str(grid), "--dry-run"]) == 2
    assert f"hwr-sweep: {grid}:3:3: not valid YAML" in capsys.readouterr().err


def test_an_empty_grid_axis_stops_the_sweep_naming_it(tmp_path, capsys):
    grid = tmp_path / "empty.yaml"
    grid.write_text("profile: smoke\nseeds: []\n")
    assert sweep.main([NOTEBOOK, str(grid), "--dry-run"]) == 2  # not "0 done, 0 skipped, 0 failed" and exit 0
    assert "hwr-sweep: grid parameter 'seeds' has no values ([])" in capsys.readouterr().err
    assert len(sweep.expand_grid({"compare_models": []}, P002Config)) == 1  # an empty list *value* is one value


def _notebook(path: Path, *cells: str) -> str:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("out = None", metadata={"tags": ["parameters"]}),
                                         *map(nbformat.v4.new_code_cell, cells)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return str(path)


def _write_lock(folder: Path, pid: int, host: str = socket.gethostname(), age_s: float = 0.0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / sweep.LOCK
    lock.write_text(json.dumps({"host": host, "pid": pid, "started": time.time() - age_s, "sweep": "other",
                                "attempt": 1}))
    os.utime(lock, (time.time() - age_s,) * 2)
    return lock


def test_point_locks_busy_stale_and_cleanup(tmp_path):
    nb = _notebook(tmp_path / "w.ipynb", "open(out, 'a').write('ran\\n')")
    a, b, out = tmp_path / "a", tmp_path / "b", tmp_path / "ran.txt"
    # a live holder (this process) on this host: busy, nothing runs, its lock stays
    held = _write_lock(b, os.getpid())
    status = sweep.run_point(nb, {"out": str(out)}, str(a), 1, [str(a), str(b)], "mine")
    assert status["status"] == "busy" and f"pid {os.getpid()}" in status["error"]
    assert not out.exists() and held.exists() and not (a / sweep.LOCK).exists()
    # a dead pid on this host, and a holder on another host silent for longer than STALE_AFTER_S: both broken
    dead = subprocess.Popen(["true"])
    dead.wait()
    _write_lock(a, dead.pid)
    _write_lock(b, os.getpid(), host="elsewhere", age_s=sweep.STALE_AFTER_S + 60)
    (a / sweep.TMP_NOTEBOOK).write_text("left by a killed point")
    status = sweep.run_point(nb, {"out": str(out)}, str(a), 1, [str(a), str(b)], "mine")
    assert status == {"status": "done", "notebook": str(a / "notebook.ipynb")} and out.read_text() == "ran\n"
    assert not [p.name for d in (a, b) for p in d.iterdir() if p.name.startswith(".")]  # locks released, temp gone
    # a fresh lock on another host may be alive: busy
    _write_lock(b, 1, host="elsewhere")
    assert sweep.run_point(nb, {"out": str(out)}, str(a), 1, [str(a), str(b)], "mine")["status"] == "busy"
    (b / sweep.LOCK).unlink()
    # another sweep finished the point while this one waited: skipped once the locks are held
    for d in (a, b):
        (d / "final.json").write_text("{}")
    assert sweep.run_point(nb, {"out": str(out)}, str(a), 1, [str(a), str(b)], "mine")["status"] == "skipped"
    assert out.read_text() == "ran\n"


def test_a_killed_kernel_leaves_no_temp_notebook_or_lock(tmp_path):
    nb = _notebook(tmp_path / "die.ipynb", "import os\nos._exit(3)")
    dead = subprocess.Popen(["true"])
    dead.wait()
    orphan = Path(tempfile.mkdtemp(prefix=f"hwr-kernel-{dead.pid}-"))  # the kernel folder of a killed worker's point
    status = sweep.run_point(nb, {}, str(tmp_path / "o"), 1)
    assert status["status"] == "failed" and "DeadKernelError" in status["error"]
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == []
    assert not orphan.exists() and not list(Path(tempfile.gettempdir()).glob(f"hwr-kernel-{os.getpid()}-*"))


def test_plan_points_removes_a_stale_temp_notebook_but_not_a_running_one(results_tmp):
    [point] = sweep.plan_points(NOTEBOOK, {"profile": "smoke", "compare_models": []})
    tmp = Path(point["out_dir"]) / sweep.TMP_NOTEBOOK
    tmp.parent.mkdir(parents=True)
    tmp.write_text("{}")
    _write_lock(tmp.parent, os.getpid())  # a live sweep is writing it
    sweep.plan_points(NOTEBOOK, {"profile": "smoke", "compare_models": []})
    assert tmp.exists()
    (tmp.parent / sweep.LOCK).unlink()
    assert sweep.plan_points(NOTEBOOK, {"profile": "smoke", "compare_models": []})[0]["status"] == "todo"
    assert not tmp.exists()


DASK = Path(sys.executable).with_name("dask")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Cluster:
    """A `dask scheduler` and `dask worker`s on 127.0.0.1, subprocesses whose environment is not the test's."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.address = f"tcp://127.0.0.1:{_free_port()}"
        self.procs: list[subprocess.Popen] = []
        # the workers' own folders: a point that used them would write results (and materialize MNIST) there
        self.worker_results, self.worker_data = root / "worker-results", root / "worker-data"
        self.env = {**os.environ, "HWR_RESULTS_DIR": str(self.worker_results), "HWR_DATA_DIR": str(self.worker_data),
                    "HWR_PROFILE": "quick", "PYTHONPATH": str(Path(sweep.__file__).parents[1])}
        port = self.address.rsplit(":", 1)[1]
        self._start("scheduler", "--host", "127.0.0.1", "--port", port, "--no-dashboard")

    def _start(self, name: str, *args: str) -> subprocess.Popen:
        log = open(self.root / f"{name}-{len(self.procs)}.log", "wb")  # noqa: SIM115 (the child holds it)
        proc = subprocess.Popen([str(DASK), name, *args], env=self.env, cwd=self.root, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.procs.append(proc)
        return proc

    def add_workers(self, n: int) -> None:
        for _ in range(n):
            self._start("worker", self.address, "--nthreads", "1", "--nworkers", "1", "--no-dashboard")

    def kill(self, procs: list[subprocess.Popen]) -> None:
        """SIGKILL each process with its children (worker, kernels: a kernel runs in a session of its own)."""
        for proc in procs:
            try:
                family = [proc, *psutil.Process(proc.pid).children(recursive=True)]
            except psutil.NoSuchProcess:
                family = [proc]
            for p in family:
                try:
                    p.kill()
                except (ProcessLookupError, psutil.NoSuchProcess):
                    pass
            proc.wait()

    def logs(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.root.glob("worker-*.log")))


@pytest.fixture
def dask_cluster(tmp_path):
    (tmp_path / "cluster").mkdir()
    cluster = _Cluster(tmp_path / "cluster")
    yield cluster
    cluster.kill(cluster.procs)
    sweep._remove_dead_kernel_dirs()  # of the points whose worker the test killed


def _wait_for(predicate, timeout: float = 120.0):
    t0 = time.monotonic()
    while not (found := predicate()):
        assert time.monotonic() - t0 < timeout, "timed out"
        time.sleep(0.2)
    return found


@pytest.mark.slow
def test_sweep_on_a_dask_cluster(mnist_ready, results_tmp, dask_cluster, tmp_path, capfd):
    from distributed import Client
    dask_cluster.add_workers(2)
    with Client(dask_cluster.address, timeout=60) as c:
        c.wait_for_workers(2, timeout=60)
    grid = tmp_path / "grid.yaml"
    grid.write_text("profile: smoke\ncompare_models: []\nseeds: [0, 1]\n")

    # a point whose worker dies is retried once (here on a worker restarted by its nanny, or the other one)
    result = {}
    run = threading.Thread(target=lambda: result.update(rc=sweep.main([NOTEBOOK, str(grid), "--scheduler",
                                                                       dask_cluster.address])))
    run.start()
    lock = _wait_for(lambda: next(results_tmp.glob(f"runs/002/*-s0-*/{sweep.LOCK}"), None))
    time.sleep(2)  # inside the point: its kernel is starting
    os.kill(json.loads(lock.read_text())["pid"], signal.SIGKILL)
    run.join(timeout=300)
    out = capfd.readouterr().out
    assert result["rc"] == 0 and "2 done, 0 skipped, 0 failed" in out
    [retried] = [line for line in out.splitlines() if "retried once after its worker died" in line]
    assert "'seed': 0" in retried

    # the points wrote where the client planned, as it planned them, not where the workers' environment points
    runs = load_runs()
    assert sorted(runs["seed"]) == [0, 1] and set(runs["profile"]) == {"smoke"}
    assert all(Path(p).parents[2] == results_tmp for p in runs["run_path"])
    assert not dask_cluster.worker_results.exists() and not dask_cluster.worker_data.exists()
    assert "without encryption" not in dask_cluster.logs()
    assert sweep.main([NOTEBOOK, str(grid), "--scheduler", dask_cluster.address]) == 0
    assert "0 done, 2 skipped, 0 failed" in capfd.readouterr().out
    # the killed attempt's temp notebook is gone (the retry removed it) and no lock is left behind
    assert not list(results_tmp.rglob(sweep.TMP_NOTEBOOK)) and not list(results_tmp.rglob(sweep.LOCK))

    # every worker dies mid-point: the sweep stops after --worker-timeout and lists the unfinished point
    grid.write_text("profile: smoke\ncompare_models: []\nseeds: [2]\n")
    run = threading.Thread(target=lambda: result.update(rc=sweep.main([NOTEBOOK, str(grid), "--scheduler",
                                                                       dask_cluster.address, "--worker-timeout", "3"])))
    run.start()
    _wait_for(lambda: next(results_tmp.glob(f"runs/002/*-s2-*/{sweep.LOCK}"), None))
    dask_cluster.kill(dask_cluster.procs[1:])
    t0 = time.monotonic()
    run.join(timeout=120)
    assert not run.is_alive() and time.monotonic() - t0 < 60
    out = capfd.readouterr().out
    assert result["rc"] == 1 and "0 done, 0 skipped, 1 failed" in out
    assert f"unfinished: no Dask worker left on {dask_cluster.address} for 3 s" in out and "'seed': 2" in out

    # no worker at all: a bounded wait at the start, then a clear message
    assert sweep.main([NOTEBOOK, str(grid), "--scheduler", dask_cluster.address, "--worker-timeout", "1"]) == 1
    assert f"no Dask worker joined {dask_cluster.address} within 1 s" in capfd.readouterr().err
