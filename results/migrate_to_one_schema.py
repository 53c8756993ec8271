"""Migrate run folders written before the one-record-schema change, in place; retrains nothing.

    python results/migrate_to_one_schema.py [RESULTS_DIR]      # default: the repository's results/

What changes (see results/README.md for the schema):
- config.yaml becomes the record the experiment's config now derives (``ExperimentConfig.record``): 001/002 lose
  ``model_kwargs`` and ``input_norm`` (002 gains ``activation``); the folder is renamed when its id changes.
- metrics.csv: one row per evaluation with the common columns ``epoch, step, samples, lr, seconds`` first and
  ``seconds`` cumulative; 003's ``iteration/train_mse/train_mse_smoothed/test_mse`` become
  ``step/train_loss/train_loss_smoothed/test_loss``; 000's ``train_total`` becomes ``train_loss``. The 003
  baselines' cross-validation table moves to cv_results.csv and metrics.csv gets their one evaluation.
- final.json: ``final_test_acc`` is the last evaluation's everywhere (004's best-validation-epoch value moves to
  ``best_val_test_acc``); ``best_test_acc`` -> ``max_test_acc``, ``best_epoch`` -> ``max_test_acc_epoch``;
  the common fields of :func:`hwrlib.results.final_record` are added, and ``metrics_sha256``.
Already migrated folders keep their numbers, so running it twice changes nothing; run it again after adding a
config field (a new reading): every record then states the field at its default, and is renamed to its new id.
"""
from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path

import pandas as pd
import yaml

from hwrlib import paths
from hwrlib.experiments import experiment_config
from hwrlib.results import RunDir, atomic_write_text, final_record

COMMON = ["epoch", "step", "samples", "lr", "seconds"]
RENAMED_FINAL = {"best_test_acc": "max_test_acc", "best_epoch": "max_test_acc_epoch", "num_updates": "num_steps",
                 "final_test_mse": "final_test_loss", "fit_seconds": "train_seconds", "epochs_run": "epochs",
                 "test_acc_at_best_val": "best_val_test_acc", "best_step": "best_val_step"}


def new_record(paper: str, old: dict) -> dict:
    """The record today's config derives for the run ``old`` (an old config.yaml without ``paper``)."""
    cls = experiment_config(paper)
    fields = set(cls.field_names())
    if paper == "003":
        group = old.get("seed_group")
        first, last = map(int, group.split("-")) if group else (old["seed"], old["seed"])
        params = {k: v for k, v in old.items() if k in fields and k not in ("seed", "data_seed", "device")}
        data_seed = None if old["data_seed"] == old["seed"] else old["data_seed"]
        cfg = cls.from_params(**params, seed=first, replicas=last - first + 1, data_seed=data_seed)
        if old["model"] == "lenet_variant":
            return cfg.cnn_record(old["seed"])
        return cfg.baseline_record(old["model"], old["seed"])
    params = {k: v for k, v in old.items() if k in fields and v is not None or k in ("train_size", "test_size")}
    params.update(old.get("model_kwargs") or {})
    if paper in ("001", "002", "004"):
        params.setdefault("compare_models", [])
    cfg = cls.from_params(**params)
    return cfg.for_model(old["model"], train_size=old.get("train_size")).record() if "train_size" in old else \
        cfg.record()


def new_metrics(paper: str, config: dict, final: dict, m: pd.DataFrame) -> pd.DataFrame:
    if "step" in m and "samples" in m and "lr" in m:
        return m  # already in the schema
    if paper == "003" and config["model"] != "lenet_variant":
        return pd.DataFrame([{"epoch": 1, "step": 1, "samples": final["num_train"], "lr": None,
                              "seconds": final.get("fit_seconds", final.get("train_seconds")),
                              "test_acc": final["final_test_acc"], "test_error": final["final_test_error"]}])
    if paper == "003":
        m = m.rename(columns={"iteration": "step", "train_mse": "train_loss", "train_mse_smoothed": "train_loss_smoothed",
                              "test_mse": "test_loss"}).assign(lr=config["lr"])
        order = COMMON + ["train_loss", "train_acc", "train_loss_smoothed", "test_loss", "test_acc", "test_error"]
        return m[order]
    if paper == "000":
        m = m.rename(columns={"train_total": "train_loss"})
        return m[COMMON + [c for c in m if c not in COMMON]]
    per_epoch = math.ceil(final["num_train"] / config["batch_size"])
    m = m.assign(step=m["epoch"] * per_epoch, samples=m["epoch"] * final["num_train"], seconds=m["seconds"].cumsum())
    return m[COMMON + [c for c in m if c not in COMMON]]


def new_final(paper: str, config: dict, final: dict, m: pd.DataFrame) -> dict:
    old = dict(final)
    if paper == "004" and "last_epoch_test_acc" in old:  # its final_test_acc was the best validation epoch's
        old["best_val_test_acc"], old["best_val_test_loss"] = old.pop("final_test_acc"), old.pop("final_test_loss")
        old.pop("last_epoch_test_acc")
        old["best_val_epoch"] = old.pop("best_epoch")
    old = {RENAMED_FINAL.get(k, k): v for k, v in old.items()}
    old.pop("metrics_sha256", None)
    if paper == "003" and config["model"] != "lenet_variant":
        return {**old, "num_evals": 1}
    common = final_record(m.to_dict("records"))
    kept = {k: v for k, v in old.items() if k not in ("final_test_acc", "final_test_loss")}
    return {**common, **kept}


def migrate(run: Path) -> Path:
    """Migrate one run folder; returns its (possibly new) path."""
    paper = run.parent.name
    config = yaml.safe_load((run / "config.yaml").read_text())
    config.pop("paper", None)
    record = new_record(paper, config)
    changed = {k for k in set(config) & set(record) if k != "device" and config[k] != record[k]}
    if changed:
        raise ValueError(f"{run}: the new record disagrees with config.yaml on {sorted(changed)}")
    if "device" in record and config.get("device"):
        record["device"] = config["device"]  # where it ran: recorded, not part of the id
    rd = RunDir(paper, record, run.parents[2])
    if (run / "final.json").exists():
        final = json.loads((run / "final.json").read_text())
        m = pd.read_csv(run / "metrics.csv")
        if paper == "003" and config["model"] != "lenet_variant" and "cv_acc" in m:
            atomic_write_text(run / "cv_results.csv", m.to_csv(index=False))
        m2 = new_metrics(paper, config, final, m)
        if not m2.equals(m):
            atomic_write_text(run / "metrics.csv", m2.to_csv(index=False))
        if paper == "000" and (run / "steps.csv").exists():
            s = pd.read_csv(run / "steps.csv")
            if "total" in s:
                atomic_write_text(run / "steps.csv", s.rename(columns={"total": "loss"}).to_csv(index=False))
    tmp = RunDir(paper, rd.config, run.parents[2])
    tmp.path = run
    tmp.write_config()
    if (run / "final.json").exists():
        tmp.write_final(new_final(paper, config, final, m2))
    if rd.path != run:
        if rd.path.exists():
            raise FileExistsError(f"{run} -> {rd.path}: the target exists already")
        shutil.move(str(run), str(rd.path))
    return rd.path


def main(argv: list[str]) -> int:
    root = paths.results_dir(argv[0] if argv else None)
    runs = sorted(p.parent for p in (root / "runs").glob("*/*/config.yaml"))
    moved = 0
    for run in runs:
        new = migrate(run)
        moved += new != run
    print(f"{len(runs)} run folders migrated in {root / 'runs'}; {moved} renamed (their id changed)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
