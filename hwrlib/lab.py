"""`make lab`'s save hook (:func:`save_as_stored`): a notebook saved from JupyterLab keeps the kernel metadata the
repository stores, and the paper notebooks in ``notebooks/`` are saved without outputs.

The notebooks in ``notebooks/`` are sources: their executed copies, with outputs, are ``results/notebooks/``
(``make report``). Saving one after Run All (JupyterLab autosaves) would otherwise write its outputs and execution
counts into the tracked file; a notebook elsewhere (a copy, a new one) is saved with its outputs.

JupyterLab writes the running kernel's ``kernelspec`` (its display name) and ``language_info`` (with the exact
Python version) into a notebook's metadata when it opens it. The notebooks store what ``make install``'s kernel
reports on the Python the records were made with, so opening one there changes nothing; on a machine with another
Python the notebook shows as modified, and this hook keeps saving it from turning that into a diff.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

KEPT = ("kernelspec", "language_info")


def keep_stored_kernel_metadata(model: dict[str, Any], path: str, contents_manager: Any, **kwargs: Any) -> None:
    """Jupyter Server ``pre_save_hook``: when a notebook that exists on disk is saved with the same kernel (name
    and language) as it stores, keep its stored ``kernelspec`` and ``language_info``; another kernel chosen on
    purpose, a new notebook, or a file that does not parse is saved as it comes."""
    content = model.get("content")
    if model.get("type") != "notebook" or not isinstance(content, dict):
        return
    try:
        stored = json.loads((Path(contents_manager.root_dir) / path.lstrip("/")).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    stored_meta = stored.get("metadata") if isinstance(stored, dict) else None
    meta = content.setdefault("metadata", {})
    if not isinstance(stored_meta, dict) or not all(k in stored_meta for k in KEPT):
        return
    same = ((meta.get("kernelspec") or {}).get("name") == (stored_meta["kernelspec"] or {}).get("name")
            and (meta.get("language_info") or {}).get("name") == (stored_meta["language_info"] or {}).get("name"))
    if same:
        for key in KEPT:
            meta[key] = stored_meta[key]


SOURCES = "notebooks/"  # the tracked notebooks, relative to `make lab`'s root: saved without outputs


def clear_outputs(model: dict[str, Any], path: str, contents_manager: Any = None, **kwargs: Any) -> None:
    """Jupyter Server ``pre_save_hook``: a notebook under :data:`SOURCES` is saved without outputs and execution
    counts (what it shows in the browser is unchanged)."""
    content = model.get("content")
    if model.get("type") != "notebook" or not isinstance(content, dict) or not path.lstrip("/").startswith(SOURCES):
        return
    for cell in content.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"], cell["execution_count"] = [], None


def save_as_stored(model: dict[str, Any], path: str, contents_manager: Any, **kwargs: Any) -> None:
    """`make lab`'s ``pre_save_hook``: :func:`keep_stored_kernel_metadata`, then :func:`clear_outputs`, so opening a
    notebook and Run All leave ``git status`` clean."""
    keep_stored_kernel_metadata(model=model, path=path, contents_manager=contents_manager, **kwargs)
    clear_outputs(model=model, path=path, contents_manager=contents_manager, **kwargs)
