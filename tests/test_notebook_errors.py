"""A notebook shows hwrlib's bad-input errors as the one line that names the problem and the fix."""
import re

import pytest
from IPython.core.interactiveshell import InteractiveShell

from hwrlib.config import input_errors, show_input_errors_briefly


@pytest.fixture()
def shell():
    sh = InteractiveShell.instance()
    yield sh
    sh.set_custom_exc((), None)
    InteractiveShell.clear_instance()


def test_an_input_error_is_one_line_and_still_fails_the_cell(shell, capsys):
    assert show_input_errors_briefly(shell)
    result = shell.run_cell("from hwrlib.experiments import P002Config\nP002Config.from_params(batch_size=0)")
    out = capsys.readouterr().out.strip().splitlines()
    assert not result.success and type(result.error_in_exec).__name__ == "ConfigError"
    assert out == ["ConfigError: parameter 'batch_size': must be an integer >= 1, got 0"]


def test_a_bug_keeps_its_traceback(shell, capsys):
    show_input_errors_briefly(shell)
    result = shell.run_cell("def f():\n    return 1 / 0\nf()")
    out = re.sub(r"\x1b\[[0-9;]*m", "", capsys.readouterr().out)  # the traceback's colours
    assert not result.success and "ZeroDivisionError" in out and "return 1 / 0" in out  # its frames are shown
    assert ZeroDivisionError not in input_errors()


def test_outside_ipython_nothing_is_installed():
    assert show_input_errors_briefly() is False
