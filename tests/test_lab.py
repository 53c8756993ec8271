"""`make lab`: JupyterLab on 127.0.0.1 that opens the notebooks with this interpreter as their kernel.

The server is started through the Makefile's own `lab` target (with this interpreter as ``PY`` and the set-up
targets taken as done), so what is checked is what a reader gets; HTTP goes through the REST API with urllib.
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("jupyterlab", reason="JupyterLab is not installed; `make install` installs it (the [lab] extra)")
import psutil  # noqa: E402  (a dependency of dask.distributed)

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "notebooks/002_pytorch_cnn_mnist.ipynb"
URL_LINE = re.compile(r"JupyterLab: (http://\S+?\?token=([0-9a-f]{32,}))")
# a failure bound only: the server is up in 2-5 s on a loaded 2-core machine
START_TIMEOUT_S = 60.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# no proxy from the environment for 127.0.0.1
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _http(method: str, url: str, token: str | None = None, body: dict | None = None) -> tuple[int, bytes]:
    """One request; returns (status, body) for error statuses too."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if token is not None:
        req.add_header("Authorization", f"token {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with _OPENER.open(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class Lab:
    """A running `make lab`: its process, printed URL and token, and REST helpers."""

    def __init__(self, proc: subprocess.Popen, log: Path, port: int, url: str, token: str) -> None:
        self.proc, self.log, self.port, self.url, self.token = proc, log, port, url, token
        self.base = f"http://127.0.0.1:{port}"

    def api(self, method: str, path: str, body: dict | None = None) -> tuple[int, object]:
        status, raw = _http(method, self.base + path, self.token, body)
        return status, (json.loads(raw) if raw else None)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def _wait_for_url(proc: subprocess.Popen, log: Path, deadline: float) -> re.Match:
    while time.monotonic() < deadline:
        m = URL_LINE.search(log.read_text(errors="replace"))
        if m:
            return m
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    pytest.fail(f"`make lab` printed no URL line (exit {proc.poll()}):\n{log.read_text(errors='replace')[-3000:]}")


def _wait_until_up(lab: Lab, deadline: float) -> None:
    while time.monotonic() < deadline and lab.proc.poll() is None:
        try:
            if lab.api("GET", "/api/status")[0] == 200:
                return
        except OSError:  # not listening yet
            pass
        time.sleep(0.2)
    pytest.fail(f"JupyterLab did not answer on port {lab.port} within {START_TIMEOUT_S:.0f} s "
                f"(exit {lab.proc.poll()}):\n{lab.tail()}")


def _kill(proc: subprocess.Popen) -> None:
    """The last resort: the server, its kernels (each in a session of its own) and make."""
    try:
        for p in psutil.Process(proc.pid).children(recursive=True):
            p.kill()
        os.killpg(proc.pid, signal.SIGKILL)
    except (psutil.NoSuchProcess, ProcessLookupError):
        pass
    proc.wait()


def _stop(lab: Lab) -> None:
    """Shut the server down through its API, which also stops its kernels."""
    try:
        lab.api("POST", "/api/shutdown")
        lab.proc.wait(timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        _kill(lab.proc)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    tmp = tmp_path_factory.mktemp("lab")
    env = {k: v for k, v in os.environ.items() if k not in {"JUPYTER_TOKEN", "MAKEFLAGS", "MFLAGS", "MAKELEVEL"}}
    env["JUPYTER_RUNTIME_DIR"] = str(tmp / "runtime")  # connection files and cookie secret stay out of $HOME
    port = _free_port()
    log = tmp / "lab.log"
    # -o: the venv and the data count as done, so only the server starts (PY: this interpreter's environment)
    cmd = ["make", "--no-print-directory", "-o", ".venv/.installed", "-o", "data", "lab",
           f"PY={sys.executable}", f"LAB_PORT={port}"]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        m = _wait_for_url(proc, log, deadline)
        server = Lab(proc, log, port, m.group(1), m.group(2))
        _wait_until_up(server, deadline)
    except BaseException:
        _kill(proc)
        raise
    yield server
    _stop(server)
    assert proc.returncode == 0, f"`make lab` ended with exit {proc.returncode} after /api/shutdown:\n{server.tail()}"


def test_make_lab_prints_its_url_and_serves_jupyterlab_on_localhost_only(lab: Lab) -> None:
    assert lab.url == f"http://127.0.0.1:{lab.port}/lab/tree/notebooks?token={lab.token}"  # LAB_PORT's
    for url in (lab.url, f"{lab.base}/lab?token={lab.token}"):
        status, page = _http("GET", url)
        assert status == 200, f"GET {url}: {status}\n{lab.tail()}"
        assert b"JupyterLab" in page
    # the token is required
    assert _http("GET", f"{lab.base}/api/contents/{NOTEBOOK}")[0] == 403
    server = psutil.Process(lab.proc.pid)
    listening = {(c.laddr.ip, c.laddr.port) for p in [server, *server.children(recursive=True)]
                 for c in _connections(p) if c.status == psutil.CONN_LISTEN}
    assert {a for a in listening if a[1] == lab.port} == {("127.0.0.1", lab.port)}, listening


def _connections(p: psutil.Process) -> list:
    """A process's inet sockets; none for a short-lived child that exited after it was listed (seen under load in
    CI: psutil.NoSuchProcess), since an exited process listens on nothing."""
    try:
        return p.net_connections("inet")
    except psutil.NoSuchProcess:
        return []


def _kernel_process(lab: Lab, kernel_id: str) -> psutil.Process:
    """The server's child process running kernel ``kernel_id`` (its connection file names the id)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for p in psutil.Process(lab.proc.pid).children(recursive=True):
            try:
                if any(kernel_id in arg for arg in p.cmdline()):
                    return p
            except psutil.NoSuchProcess:
                continue
        time.sleep(0.2)
    pytest.fail(f"no process for kernel {kernel_id} under the server:\n{lab.tail()}")


def test_a_notebook_opens_with_this_interpreter_as_its_kernel(lab: Lab) -> None:
    status, model = lab.api("GET", f"/api/contents/{NOTEBOOK}?type=notebook&content=1")
    assert status == 200, f"GET /api/contents/{NOTEBOOK}: {status}"
    name = model["content"]["metadata"]["kernelspec"]["name"]

    status, specs = lab.api("GET", "/api/kernelspecs")
    assert status == 200
    assert name in specs["kernelspecs"], f"{NOTEBOOK} names kernel {name!r}; offered: {sorted(specs['kernelspecs'])}"
    argv0 = specs["kernelspecs"][name]["spec"]["argv"][0]
    # an absolute path must be this interpreter; a bare `python` is replaced by the server's own, which is this one
    bare = {"python", f"python{sys.version_info[0]}", "python{}.{}".format(*sys.version_info[:2])}
    assert argv0 == sys.executable or argv0 in bare, (
        f"kernel {name!r} runs {argv0}, not this environment's {sys.executable}; `make install` registers the "
        f"venv's own spec (ipykernel install --sys-prefix)")

    # open it as JupyterLab does: a session for the notebook, which starts its kernel
    status, session = lab.api("POST", "/api/sessions", {"path": NOTEBOOK, "type": "notebook",
                                                        "name": Path(NOTEBOOK).name, "kernel": {"name": name}})
    assert status == 201, f"POST /api/sessions: {status} {session}\n{lab.tail()}"
    assert session["kernel"]["name"] == name
    kernel = _kernel_process(lab, session["kernel"]["id"])
    assert kernel.cmdline()[0] == sys.executable
    # IPC sockets, as its connection file (-f) tells it: on TCP it logs "running over TCP without encryption"
    cmd = kernel.cmdline()
    transport = json.loads(Path(cmd[cmd.index("-f") + 1]).read_text())["transport"]
    assert transport == "ipc", f"the kernel runs over {transport}: `make lab` passes --KernelManager.transport=ipc"
    assert Path(kernel.cwd()) == ROOT / "notebooks"  # where papermill runs them too (`--cwd notebooks`)

    assert lab.api("DELETE", f"/api/sessions/{session['id']}")[0] == 204
    kernel.wait(timeout=20)  # the kernel ends with its session


def test_the_news_prompt_is_answered_never_by_the_shipped_settings(lab: Lab) -> None:
    # JupyterLab asks "official Jupyter news?" while fetchNews is "none" (its default), whatever news_url says
    status, plugin = lab.api("GET", "/lab/api/settings/@jupyterlab/apputils-extension:notification")
    assert status == 200, f"GET the notification settings: {status}"
    defaults = {k: v.get("default") for k, v in plugin["schema"]["properties"].items()}
    assert defaults["fetchNews"] == "false" and defaults["checkForUpdates"] is False, (
        f"{defaults}: jupyter/settings/overrides.json is not applied (`make lab`'s --LabApp.app_settings_dir)")


def test_saving_keeps_the_stored_kernel_metadata_unless_another_kernel_is_chosen(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from hwrlib.lab import keep_stored_kernel_metadata
    stored = json.loads((ROOT / NOTEBOOK).read_text())["metadata"]
    (tmp_path / "nb.ipynb").write_text(json.dumps({"metadata": stored, "cells": [], "nbformat": 4,
                                                   "nbformat_minor": 5}))
    manager = SimpleNamespace(root_dir=str(tmp_path))

    def saved(kernelspec: dict, language_info: dict, path: str = "nb.ipynb") -> dict:
        model = {"type": "notebook", "content": {"metadata": {"kernelspec": kernelspec, "language_info": language_info,
                                                              "tags": ["kept"]}}}
        keep_stored_kernel_metadata(model=model, path=path, contents_manager=manager)
        return model["content"]["metadata"]

    # what JupyterLab writes on opening it on another Python with another display name: the stored metadata wins
    other_python = {**stored["language_info"], "version": "3.99.0"}
    meta = saved({**stored["kernelspec"], "display_name": "Python 3"}, other_python)
    assert meta == {**stored, "tags": ["kept"]}
    # another kernel, chosen on purpose, and a new notebook are saved as they come
    assert saved({"name": "ir", "display_name": "R", "language": "R"}, {"name": "R"})["kernelspec"]["name"] == "ir"
    assert saved(stored["kernelspec"], other_python, "new.ipynb")["language_info"]["version"] == "3.99.0"


def test_saving_a_source_notebook_after_run_all_stores_no_outputs(tmp_path: Path) -> None:
    """Run All, then JupyterLab's (auto)save: the tracked notebook stays as committed; a copy elsewhere keeps them."""
    from types import SimpleNamespace

    from hwrlib.lab import save_as_stored
    committed = json.loads((ROOT / NOTEBOOK).read_text())
    (tmp_path / "notebooks").mkdir()
    (tmp_path / NOTEBOOK).write_text(json.dumps(committed))
    manager = SimpleNamespace(root_dir=str(tmp_path))

    def run_all() -> dict:
        content = json.loads(json.dumps(committed))
        for i, cell in enumerate(c for c in content["cells"] if c["cell_type"] == "code"):
            cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["ran\n"]}]
            cell["execution_count"] = i + 1
        return {"type": "notebook", "content": content}
    model = run_all()
    save_as_stored(model=model, path=NOTEBOOK, contents_manager=manager)
    assert model["content"] == committed
    copy = run_all()
    save_as_stored(model=copy, path="scratch/copy.ipynb", contents_manager=manager)
    assert all(c["outputs"] for c in copy["content"]["cells"] if c["cell_type"] == "code")
