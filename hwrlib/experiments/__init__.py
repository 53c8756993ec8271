"""Experiments, one per paper, registered by the paper's key (``"000"`` .. ``"004"``).

``p00N_*.py`` holds paper N's config and training, ``p00N_figures.py`` its tables, figures and curve claims;
its models are in ``hwrlib/models`` (see each config's docstring). :mod:`.registry` plans and runs any of them.
"""
from .p000_resnet_hccr import P000Config
from .p001_blog import P001Config
from .p002_pytorch_cnn import P002Config
from .p003_lenet_variant import P003Config
from .p004_alexnet_ir import P004Config
from .registry import (Job, create_experiment, experiment_config, list_experiments, plan, run_dirs,
                       run_experiment)

__all__ = ["P000Config", "P001Config", "P002Config", "P003Config", "P004Config", "Job", "create_experiment",
           "experiment_config", "list_experiments", "plan", "run_dirs", "run_experiment"]
