"""The report: generated from the records, and the README quotes it rather than typing numbers."""
import re
from pathlib import Path

from hwrlib import report

ROOT = Path(__file__).parents[1]


def test_readme_headline_is_the_generated_one():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- report:headline -->\n(.*?)<!-- /report:headline -->", readme, re.S)
    assert block, "README.md lost its report:headline block"
    assert block.group(1).strip() == report.headline_markdown(str(ROOT / "results")).strip(), \
        "README's headline is stale: run `make report` (or python -m hwrlib.report --readme README.md)"


def test_report_builds_from_records_alone(tmp_path):
    import shutil
    shutil.copytree(ROOT / "results" / "runs" / "002", tmp_path / "runs" / "002")
    (tmp_path / "README.md").write_text("x\n<!-- report:headline -->\nold\n<!-- /report:headline -->\ny\n")
    out = report.write(str(tmp_path), tmp_path / "README.md")
    text = out.read_text()
    assert "## 002: Deep CNN" in text and "The CNN reaches 99.31%" in text and "hidden500" in text
    # the answer first: the headline table, then each paper's forest plot before its tables
    assert text.index("| paper") < text.index("## 001") < text.index("![002_forest]") < text.index("**The unstated")
    assert (tmp_path / report.FIGURES / "002_curves.png").exists()
    assert (tmp_path / report.FIGURES / "002_forest.png").exists()
    assert "not yet run" in text and "make study-003" in text  # a paper without records says how to get them
    readme = (tmp_path / "README.md").read_text()
    assert readme.startswith("x\n<!-- report:headline -->\n| paper") and readme.endswith("<!-- /report:headline -->\ny\n")


def test_protocols_short_of_their_declared_seeds_are_listed_and_sized(tmp_path):
    import json
    import shutil
    src = ROOT / "results" / "runs" / "004"
    for run in [*src.glob("paper-lenet5-*"), *src.glob("paper-alexnet_ir-*"), *src.glob("paper-alexnet_mod-*")]:
        shutil.copytree(run, tmp_path / "runs" / "004" / run.name)
    for run in (tmp_path / "runs" / "004").glob("paper-alexnet_mod-*"):
        config = (run / "config.yaml").read_text()
        if "60k_val_test" in config or "seed: 0" not in config:  # left: the 50k reading's seed 0 alone
            shutil.rmtree(run)
    text = report.build(str(tmp_path))[0]
    # sweeps/004_table2.yaml and 004_paper.yaml declare seeds 0-2 of the modified AlexNet, before any run
    assert "sweeps/004_table2.yaml`: 004:paper-alexnet_mod-0a544097, seeds 0, 1, 2 of the declared 0, 1, 2" in text
    assert "sweeps/004_paper.yaml`: 004:paper-alexnet_mod-4e7d8c97, seeds 1, 2 of the declared 0, 1, 2" in text
    assert "CPU-hours" not in text  # no bench table yet: no cost
    assert "| 3 vs 1 of 3 |" in text.replace("  ", "")  # an interim comparison says how many seeds it still lacks
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "models-1threads.json").write_text(json.dumps(
        {"threads": 1, "rows": [{"model": "alexnet_mod", "images_per_second": 300.0}]}))
    text = report.build(str(tmp_path))[0]
    # 2 seeds x 30 epochs x 60,000 images at 300 images/s: 3.3 hours, a bound (004's schedule may stop early)
    assert "seeds 1, 2 of the declared 0, 1, 2; up to 3.3 CPU-hours at 1 thread (30 epochs of alexnet_mod" in text
    assert "a seed alone on 2 threads" not in text  # no 2-thread table: no wall-clock per seed
    (tmp_path / "bench" / "models-2threads.json").write_text(json.dumps(
        {"threads": 2, "rows": [{"model": "alexnet_mod", "images_per_second": 500.0}]}))
    text = report.build(str(tmp_path))[0]
    # one seed: 30 epochs x 60,000 images at 500 images/s = 1.0 hour
    assert "measured); up to 1.0 h a seed alone on 2 threads (500 images/s)" in text


def _fake_runs(root, paper: str, profile: str, donor) -> list:
    """Complete records of ``paper``'s default plan at ``profile``, with a donor run's numbers (what `make
    reproduce` or `make test` would leave)."""
    import json
    import shutil

    from hwrlib.experiments import create_experiment, run_dirs
    dirs = run_dirs(create_experiment(paper, profile=profile, results_dir=str(root)))
    for d in dirs:
        d.path.mkdir(parents=True, exist_ok=True)
        d.write_config()
        shutil.copy(donor / "metrics.csv", d.path / "metrics.csv")
        final = json.loads((donor / "final.json").read_text())
        final.pop("metrics_sha256")
        d.write_final(final)
    return dirs


def test_quick_and_smoke_runs_leave_the_committed_report_unchanged(tmp_path):
    """`make reproduce` trains the quick profile then runs `make report`: every tracked output stays as it was."""
    import shutil
    shutil.copytree(ROOT / "results" / "runs" / "002", tmp_path / "runs" / "002")
    readme = tmp_path / "README.md"
    readme.write_text("x\n<!-- report:headline -->\nold\n<!-- /report:headline -->\ny\n")
    outputs = [tmp_path / "REPORT.md", tmp_path / report.VERDICTS, readme]
    report.write(str(tmp_path), readme)
    before = [p.read_bytes() for p in outputs]
    donor = next((tmp_path / "runs" / "002").glob("paper-lenet5-*"))
    for profile in report.UNCOMMITTED_PROFILES:
        _fake_runs(tmp_path, "002", profile, donor)
    # an uncommitted run from an older schema: damaged, but not the committed report's business
    (tmp_path / "runs" / "002" / "quick-pytorch_cnn-s9-00000000").mkdir()
    shutil.copy(donor / "final.json", tmp_path / "runs" / "002" / "quick-pytorch_cnn-s9-00000000" / "final.json")
    shutil.copy(donor / "config.yaml", tmp_path / "runs" / "002" / "quick-pytorch_cnn-s9-00000000" / "config.yaml")
    assert len(report.load_runs(str(tmp_path))) > len(report.committed_runs(str(tmp_path)))  # they are there
    report.write(str(tmp_path), readme)
    assert [p.read_bytes() for p in outputs] == before


def test_the_uncommitted_profiles_are_the_ones_gitignore_keeps_out():
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    for profile in report.UNCOMMITTED_PROFILES:
        assert f"results/runs/*/{profile}-*" in ignored, f".gitignore commits {profile} runs: the report reads them"


def test_an_executed_notebook_is_normalized_to_depend_on_its_outputs_only():
    import nbformat
    nb = nbformat.v4.new_notebook(metadata={"papermill": {"duration": 1.5, "input_path": "/somewhere"},
                                            "language_info": {"name": "python", "version": "3.99.0"}})
    params = nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["injected-parameters"],
                                                         "papermill": {"start_time": "2026-01-01"}})
    styled = nbformat.v4.new_code_cell("t", metadata={"execution": {"iopub.status.busy": "2026-01-01"}}, outputs=[
        nbformat.v4.new_output("display_data", data={
            "text/html": '<style>#T_3fa9c_row0_col0 {x}</style><table id="T_3fa9c"><td id="T_3fa9c_row0_col0">'
                         '</table><table id="T_b71e0">',
            "text/plain": "<pandas.io.formats.style.Styler at 0x7f3a2c1b9d50>"})])
    nb.cells = [params, styled]
    source = {"kernelspec": {"name": "python3", "display_name": "hwr-repro (.venv)", "language": "python"}}
    report.normalize_executed(nb, source)
    assert nb.metadata == source
    assert params.id == "injected-parameters" and "papermill" not in params.metadata
    assert "execution" not in styled.metadata
    data = styled.outputs[0]["data"]
    assert data["text/html"] == ('<style>#T_s0000_row0_col0 {x}</style><table id="T_s0000"><td id="T_s0000_row0_col0">'
                                 '</table><table id="T_s0001">')
    assert data["text/plain"] == "<pandas.io.formats.style.Styler>"


def test_executed_figures_become_palette_pngs_the_same_each_time():
    import base64
    import io

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image
    fig, ax = plt.subplots()
    ax.fill_between([0, 1, 2], [0, 1, 0], [1, 2, 1], alpha=0.3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    png = base64.b64encode(buf.getvalue()).decode()
    small = report.small_png(png)
    assert small == report.small_png(png) and len(small) < len(png)
    assert Image.open(io.BytesIO(base64.b64decode(small))).mode == "P"
