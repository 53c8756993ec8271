"""Config dataclasses: one per experiment, with exactly the notebook's parameters.

The notebook's parameters cell is the one list of them; its validation cell takes it whole
(``cfg = P002Config.from_notebook(globals())``), so a misspelled or unknown parameter injected by
papermill is an error naming it. ``from_params`` checks every value and raises :class:`ConfigError`
naming the parameter and what is allowed. Fields left as ``None`` take the value of the chosen profile
(``quick``, ``paper``, ``smoke``). A run's identity is its config's fields minus the class's declared
``NON_IDENTITY`` (where to read and write, and which *other* runs to train beside it).
"""
from __future__ import annotations

import math
import os
import types
import typing
from dataclasses import MISSING, dataclass, fields, replace
from typing import Any, ClassVar

DEVICES = ("auto", "cpu", "cuda", "mps")
# names an IPython kernel defines in every notebook's namespace: never parameters
_KERNEL_NAMES = frozenset({"In", "Out", "get_ipython", "exit", "quit", "open"})
_PARAM_TYPES = (int, float, bool, str, list, tuple, type(None))


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
        if not math.isfinite(value):
            raise ConfigError(name, f"must be a finite number, got {value!r}")
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
    """Base class: the fields every experiment has; subclasses declare theirs, ``paper``, ``PROFILES`` and ``jobs``
    (the runs a config plans and how each is trained)."""
    seed: int = 0
    device: str = "auto"
    profile: str | None = None  # None: $HWR_PROFILE if set, else quick (an explicit profile always wins)
    data_dir: str | None = None
    results_dir: str | None = None

    paper: ClassVar[str] = ""
    # profile name -> values for the fields left as None
    PROFILES: ClassVar[dict[str, dict[str, Any]]] = {}

    # fields that say where to run, or which other runs to train beside this one: not what this run computes
    NON_IDENTITY: ClassVar[frozenset[str]] = frozenset({"data_dir", "results_dir"})
    # field -> the models it applies to; for any other model it takes its default (so it cannot split a run)
    MODEL_FIELDS: ClassVar[dict[str, tuple[str, ...]]] = {}

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {f.name: f.default_factory() if f.default is MISSING else f.default for f in fields(cls)}

    @classmethod
    def from_notebook(cls, namespace: dict[str, Any]):
        """The config of a notebook's parameters, taken whole from its namespace (``globals()``).

        Every plain value (number, string, bool, None, list) bound to a public name is a parameter: one the
        class does not know (a papermill ``-p batchsize 32``) is an error naming it, as is a field the
        notebook's parameters cell never set.
        """
        given = {k: v for k, v in namespace.items()
                 if not k.startswith("_") and k not in _KERNEL_NAMES and isinstance(v, _PARAM_TYPES)}
        known = cls.field_names()
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise ConfigError(unknown[0], f"unknown parameter (misspelled?); this notebook's parameters are: "
                                          f"{', '.join(sorted(known))}")
        missing = [k for k in known if k not in given]
        if missing:
            raise ConfigError(missing[0], "the notebook's parameters cell does not set it; add it there")
        show_input_errors_briefly()
        cfg = cls.from_params(**{k: given[k] for k in known})
        cfg.check_device()
        return cfg

    def check_device(self) -> None:
        """The device is there on this machine (the notebook checks before any data or model cell runs)."""
        from .train import resolve_device
        try:
            resolve_device(self.device)
        except (ValueError, RuntimeError) as e:
            raise ConfigError("device", str(e)) from None

    def record(self) -> dict[str, Any]:
        """What this run's folder records in config.yaml, and what its run id is computed from (but device)."""
        return {k: v for k, v in self.__dict__.items() if k not in self.NON_IDENTITY}

    def runs(self) -> list[ExperimentConfig]:
        """One config per run folder this config writes, the main run first (default: itself)."""
        return [self]

    def run_dir(self):
        from .results import RunDir
        return RunDir(self.paper, self.record(), self.results_dir)

    def jobs(self) -> list:
        """The one way an experiment declares its runs: the :class:`~hwrlib.experiments.registry.Job` list that
        :func:`~hwrlib.experiments.registry.plan` plans (run folders, and the function that trains them)."""
        raise NotImplementedError(f"{type(self).__name__} must declare its runs in jobs()")

    def model_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of this run's model beyond its name: the :attr:`MODEL_FIELDS` that apply to it."""
        return {f: getattr(self, f) for f, models in self.MODEL_FIELDS.items() if self.model in models}

    def for_model(self, model: str, **changes: Any):
        """This config for one of its models: fields that do not apply to ``model`` reset to their default."""
        defaults = self.defaults()
        reset = {f: defaults[f] for f, models in self.MODEL_FIELDS.items() if model not in models}
        return replace(self, model=model, **{**reset, **changes})

    @classmethod
    def from_params(cls, **params: Any):
        """Validate notebook parameters into a config; ``$HWR_PROFILE`` fills a profile nobody gave (the test suite's
        smoke runs), never one given."""
        return cls.build(params, os.environ.get("HWR_PROFILE"))

    @classmethod
    def build(cls, params: dict[str, Any], profile_default: str | None = None):
        """Validate parameters into a config; ``profile_default`` (else quick) is the profile when none is given
        (a claim's protocol is built without the environment)."""
        unknown = sorted(set(params) - set(cls.field_names()))
        if unknown:
            raise ConfigError(unknown[0], f"unknown parameter; known ones: {', '.join(cls.field_names())}")
        params = {**params, "profile": params.get("profile") or profile_default or "quick"}
        if params["profile"] not in cls.PROFILES:
            raise ConfigError("profile", f"must be one of {sorted(cls.PROFILES)}, got {params['profile']!r}")
        hints = typing.get_type_hints(cls)
        defaults = cls.defaults()
        values = {n: _check_type(n, params.get(n, d), hints[n]) for n, d in defaults.items()}
        profile = cls.PROFILES[values["profile"]]
        values.update({k: v for k, v in profile.items() if values.get(k) is None})
        cfg = cls(**values)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Checks that need more than a type; subclasses extend it."""
        dev = self.device
        kind, colon, index = dev.partition(":")
        if kind not in DEVICES or (colon and (kind != "cuda" or not index.isdigit())):
            raise ConfigError("device", f"must be one of {', '.join(DEVICES)} or cuda:N (N a GPU index), got {dev!r}")
        if self.seed < 0:
            raise ConfigError("seed", f"must be >= 0, got {self.seed!r}")

    def at_least_one(self, *names: str) -> None:
        """Each named field is an integer >= 1 (None allowed: a profile fills it)."""
        for name in names:
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ConfigError(name, f"must be an integer >= 1, got {v!r}")

    def check_sizes(self, limits: dict[str, int]) -> None:
        """Each named size is between 1 and its limit, or None (all of them)."""
        for name, limit in limits.items():
            v = getattr(self, name)
            if v is not None and not 1 <= v <= limit:
                raise ConfigError(name, f"must be between 1 and {limit} (or None for all), got {v!r}")

    def batch_fits(self, images: int, what: str) -> None:
        """A mini-batch no larger than the set it is drawn from (else a run would record a batch size that never
        happened)."""
        if getattr(self, "batch_size", None) is not None and self.batch_size > images:
            raise ConfigError("batch_size", f"must be at most the {images:,} images of {what}, got {self.batch_size:,}")

    def check_models(self) -> None:
        """``model`` and each of ``compare_models`` are registered models."""
        from .models import check_model_name
        for name in [self.model, *getattr(self, "compare_models", [])]:
            try:
                check_model_name(name)
            except ValueError as e:
                raise ConfigError("model" if name == self.model else "compare_models", str(e)) from None


def positive(name: str, value: float | int | None, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if value is None or value <= 0:
        raise ConfigError(name, f"must be > 0, got {value!r}")


def one_of(name: str, value: Any, allowed: typing.Iterable[Any]) -> None:
    allowed = list(allowed)
    if value not in allowed:
        raise ConfigError(name, f"must be one of {', '.join(map(str, allowed))}; got {value!r}")


def input_errors() -> tuple[type[Exception], ...]:
    """hwrlib's errors about its input or its surroundings, whose message names the problem and the fix: a traceback
    below it shows only hwrlib's insides."""
    from .data import DataError
    from .data.gnt import GNTError
    from .results import DamagedRecord, ResultsWriteError
    from .train import NonFiniteLoss
    return ConfigError, DataError, GNTError, DamagedRecord, ResultsWriteError, NonFiniteLoss


def show_input_errors_briefly(shell: Any = None) -> bool:
    """In IPython (a notebook's kernel, or ``shell``), show :func:`input_errors` as ``Name: message`` instead of a
    traceback wall; the cell still fails, so papermill and hwr-sweep still stop. False outside IPython."""
    if shell is None:
        try:
            from IPython import get_ipython
        except ImportError:
            return False
        shell = get_ipython()
    if shell is None:
        return False

    def one_line(shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: int | None = None) -> None:
        # the kernel's own way to show an error (an error output: name, message, and this one line as traceback)
        shell._showtraceback(etype, value, [f"{etype.__name__}: {value}"])
    shell.set_custom_exc(input_errors(), one_line)
    return True
