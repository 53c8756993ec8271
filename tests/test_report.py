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
    assert "## Verdicts" in text and "The CNN reaches 99.31%" in text and "hidden500" in text
    assert (tmp_path / report.FIGURES / "002_curves.png").exists()
    assert "not yet run" in text and "make study-003" in text  # a paper without records says how to get them
    readme = (tmp_path / "README.md").read_text()
    assert readme.startswith("x\n<!-- report:headline -->\n| paper") and readme.endswith("<!-- /report:headline -->\ny\n")
