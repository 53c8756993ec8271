"""Model registry: build any model by name, timm style.

Every builder takes ``num_classes`` and ``in_chans`` plus its own keyword
arguments, so notebooks and sweeps can name a model as a plain string.
"""
from __future__ import annotations

from typing import Callable

import torch.nn as nn

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
_PAPER: dict[str, str] = {}


def register_model(paper: str) -> Callable:
    """Decorator: register ``fn`` under its own name, tagged with the paper it serves."""
    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if fn.__name__ in _REGISTRY:
            raise ValueError(f"model {fn.__name__!r} is registered twice")
        _REGISTRY[fn.__name__] = fn
        _PAPER[fn.__name__] = paper
        return fn
    return wrap


def list_models(paper: str | None = None) -> list[str]:
    """Names of the registered models, optionally only those of one paper ('001', '002', ...)."""
    return sorted(n for n in _REGISTRY if paper is None or _PAPER[n] == paper)


def check_model_name(name: str) -> None:
    """Raise a ValueError naming the known models if ``name`` is not one of them."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(list_models())}")


def create_model(name: str, num_classes: int = 10, in_chans: int = 1, **kwargs) -> nn.Module:
    """Build a registered model by name.

    Raises:
        ValueError: unknown name (the message lists the known ones) or a bad argument.
    """
    check_model_name(name)
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    if in_chans < 1:
        raise ValueError(f"in_chans must be >= 1, got {in_chans}")
    return _REGISTRY[name](num_classes=num_classes, in_chans=in_chans, **kwargs)


def count_params(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def layer_table(model: nn.Module, input_size: tuple[int, ...] = (1, 1, 28, 28)):
    """Per-leaf-layer output shape and parameter count, from one forward pass (a pandas DataFrame).

    Leaf layers with parameters that the evaluation pass does not run (an auxiliary head used only in
    training) follow at the end with output None, so the ``params`` column always sums to the model's count.
    """
    import pandas as pd
    import torch
    rows, hooks, leaves = [], [], {}
    for name, m in model.named_modules():
        if not list(m.children()):
            leaves[name] = m
            hooks.append(m.register_forward_hook(lambda m, i, o, name=name: rows.append(
                {"layer": name, "type": type(m).__name__, "output": tuple(o.shape[1:]),
                 "params": sum(p.numel() for p in m.parameters())})))
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(input_size))
    finally:
        for h in hooks:
            h.remove()
    ran = {r["layer"] for r in rows}
    rows += [{"layer": n, "type": type(m).__name__, "output": None, "params": sum(p.numel() for p in m.parameters())}
             for n, m in leaves.items() if n not in ran and any(True for _ in m.parameters())]
    return pd.DataFrame(rows)


def residual_adds(model: nn.Module) -> int:
    """Additions in the traced forward pass whose both inputs are tensors: skip connections."""
    import operator

    import torch.fx
    adds = {operator.add, operator.iadd, "add", "add_"}
    graph = torch.fx.symbolic_trace(model).graph
    return sum(1 for n in graph.nodes if n.op in ("call_function", "call_method") and n.target in adds
               and len(n.args) == 2 and all(isinstance(a, torch.fx.Node) for a in n.args))
