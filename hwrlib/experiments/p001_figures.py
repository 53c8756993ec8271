"""Paper 001's part of the report: its claims, then the test curves of its protocols (one line per protocol)."""
from __future__ import annotations

import pandas as pd

from ..plots import protocol_curves
from ..sections import Extras, Section, register_section


def extras(runs: pd.DataFrame) -> Extras:
    fig = protocol_curves(runs, "001")
    return Extras({"001_curves": fig} if fig else {})


SECTION = register_section(Section(
    "001", "Residual networks for handwriting recognition (blog article)",
    command="make paper (sweeps/001_paper.yaml, 001_readings.yaml, 001_less_data.yaml)",
    page={"profile": "paper"}, extras=extras))
