"""Config dataclasses: one per experiment, with exactly the notebook's parameters.

``from_params`` checks every value and raises :class:`ConfigError` naming the parameter
and what is allowed, so a bad ``papermill -p`` stops in the notebook's validation cell.
Fields left as ``None`` take the value of the chosen profile (``quick``, ``paper``, ``smoke``).
"""
from __future__ import annotations

import os
import types
import typing
from dataclasses import MISSING, dataclass, fields
from typing import Any, ClassVar

DEVICES = ("auto", "cpu", "cuda", "mps")


class ConfigError(ValueError):
    """A parameter with a value it cannot take."""

    def __init__(self, name: str, problem: str):
        super().__init__(f"parameter {name!r}: {problem}")
        self.name = name


def _check_type(name: str, value: Any, hint: Any) -> Any:
    """Coerce ``value`` to the annotated type (int -> float where a float is wanted) or raise."""
    args = typing.get_args(hint)
    if (typing.get_origin(hint) in (typing.Union, types.UnionType)) and type(None) in args:
        if value is None:
            return None
        hint = next(a for a in args if a is not type(None))
    origin = typing.get_origin(hint) or hint
    if origin is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if origin is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if origin in (list, tuple) and isinstance(value, (list, tuple)):
        return list(value)
    if origin in (str, bool) and isinstance(value, origin):
        return value
    raise ConfigError(name, f"expected {getattr(origin, '__name__', origin)}, got {value!r} ({type(value).__name__})")


@dataclass(frozen=True)
class ExperimentConfig:
    """Base class; subclasses declare fields, ``paper`` and ``PROFILES``."""
    paper: ClassVar[str] = ""
    # profile name -> values for the fields left as None
    PROFILES: ClassVar[dict[str, dict[str, Any]]] = {}

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def from_params(cls, **params: Any):
        """Validate notebook parameters into a config; ``$HWR_PROFILE`` overrides ``profile`` (the test suite's smoke runs)."""
        unknown = sorted(set(params) - set(cls.field_names()))
        if unknown:
            raise ConfigError(unknown[0], f"unknown parameter; known ones: {', '.join(cls.field_names())}")
        params = {**params, "profile": os.environ.get("HWR_PROFILE") or params.get("profile", "quick")}
        if params["profile"] not in cls.PROFILES:
            raise ConfigError("profile", f"must be one of {sorted(cls.PROFILES)}, got {params['profile']!r}")
        hints = typing.get_type_hints(cls)
        defaults = {f.name: f.default_factory() if f.default is MISSING else f.default for f in fields(cls)}
        values = {n: _check_type(n, params.get(n, d), hints[n]) for n, d in defaults.items()}
        profile = cls.PROFILES[values["profile"]]
        values.update({k: v for k, v in profile.items() if values.get(k) is None})
        cfg = cls(**values)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Checks that need more than a type; subclasses extend it."""
        dev = getattr(self, "device", "auto")
        if dev.split(":")[0] not in DEVICES:
            raise ConfigError("device", f"must be one of {', '.join(DEVICES)} (optionally 'cuda:N'), got {dev!r}")


def positive(name: str, value: float | int | None, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if value is None or value <= 0:
        raise ConfigError(name, f"must be > 0, got {value!r}")


def one_of(name: str, value: Any, allowed: typing.Iterable[Any]) -> None:
    allowed = list(allowed)
    if value not in allowed:
        raise ConfigError(name, f"must be one of {', '.join(map(str, allowed))}; got {value!r}")
