"""`make lab`'s save hook: a notebook saved from JupyterLab keeps the kernel metadata the repository stores.

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
