"""Run settings shared by every stage: quick vs paper mode, seeds, device and dtype.

Quick mode (the default, ``SELLAKIT_QUICK`` unset or ``1``) runs the whole series on a laptop
CPU in minutes; ``SELLAKIT_QUICK=0`` (or ``paper``, ``off``) selects the paper protocol, meant for
a GPU; any other value is refused. Both run the
same code; only the config presets differ.

Every config of the kit is a frozen dataclass deriving from :class:`Config`: its choices are
typed ``Literal[...]`` and checked when it is made (a :class:`~sellakit.errors.ConfigError`
names the field and the allowed values), and ``SomeConfig.preset(name, **overrides)`` is the
one way to pick a preset, in the command line, the benchmarks and the notebooks::

    >>> from sellakit.cf import CFConfig
    >>> CFConfig.preset("quick", model="lightgcn").dim
    64
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import ClassVar, Literal

import numpy as np
import torch

from sellakit.errors import ConfigError

__all__ = ["Config", "Range", "bounded", "device_field", "quick_mode",
           "preset_name", "repo_root", "seed_everything", "pick_device", "pick_dtype",
           "cpu_bf16_active", "cpu_bf16_autocast", "autocast_off"]


@dataclasses.dataclass(frozen=True)
class Config:
    """Base of the kit's configs: frozen, ``Literal`` fields checked, presets by name.

    ``PRESET_TABLE`` is every preset of the kit, once. A subclass lists the presets it offers
    in ``PRESETS`` (a subset of the table) and defines a classmethod of each
    name; the command line offers exactly those, with the table's purposes as help.
    """

    #: preset -> what it is for (the command line's help).
    PRESET_TABLE: ClassVar[Mapping[str, str]] = MappingProxyType({
        "quick": "minutes on a 2-core laptop CPU, what the tests use",
        "compare": "the smallest CPU run whose paired intervals say something",
        "study": "the LLM-recommender study: 4,096 train rows, 2,048 test rows matching the "
                 "split's mix, the text cache bf16 on disk (2 cores, hours)",
        "paper": "the full protocol, meant for a GPU",
    })
    PRESETS: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        for name in cls.PRESET_TABLE:  # listed <=> defined: neither can drift from the other
            if (name in cls.PRESETS) != callable(getattr(cls, name, None)):
                raise ConfigError(f"{cls.__name__}: preset {name!r} must be both listed in "
                                  f"PRESETS and defined as a classmethod, or neither.")
        unknown = [name for name in cls.PRESETS if name not in cls.PRESET_TABLE]
        if unknown:
            raise ConfigError(f"{cls.__name__}.PRESETS names {unknown}, not in "
                              f"Config.PRESET_TABLE ({', '.join(cls.PRESET_TABLE)}).")

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for field in dataclasses.fields(self):
            problem = _field_problem(getattr(self, field.name), hints.get(field.name), field)
            if problem:
                raise ConfigError(f"{type(self).__name__}.{field.name}="
                                  f"{getattr(self, field.name)!r} {problem}.")

    @classmethod
    def preset(cls, name: str, **overrides):
        """The preset ``name`` (one of ``PRESETS``) with ``overrides`` applied."""
        if name not in cls.PRESETS:
            raise ConfigError(f"{cls.__name__} has no preset {name!r}; choose one of "
                              f"{', '.join(cls.PRESETS)}.")
        return getattr(cls, name)(**overrides)

    @classmethod
    def preset_help(cls) -> str:
        """One line per offered preset, ``name: purpose``, for the command line's help."""
        return "; ".join(f"{name}: {cls.PRESET_TABLE[name]}" for name in cls.PRESETS)

    def cache_key(self, *inputs: str) -> str:
        """A digest of ``inputs`` (fingerprints of the data a model is trained on) and every
        setting but ``device``: the key of a trained model in the kit's cache."""
        import hashlib

        settings = {k: v for k, v in sorted(vars(self).items()) if k != "device"}
        return hashlib.sha256("|".join([*inputs, repr(settings)]).encode()).hexdigest()[:24]


@dataclasses.dataclass(frozen=True)
class Range:
    """The values a numeric field takes: ``low``/``high`` bounds (None: none), each either
    included or, with ``open_low``/``open_high``, excluded."""

    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False

    def __contains__(self, value) -> bool:
        return not ((self.low is not None and (value <= self.low if self.open_low
                                               else value < self.low)) or
                    (self.high is not None and (value >= self.high if self.open_high
                                                else value > self.high)))

    def __str__(self) -> str:
        parts = ([f"{'>' if self.open_low else '>='} {self.low:g}"] if self.low is not None
                 else []) + ([f"{'<' if self.open_high else '<='} {self.high:g}"]
                             if self.high is not None else [])
        return " and ".join(parts)


def bounded(default, *, at_least: float | None = None, above: float | None = None,
            at_most: float | None = None, below: float | None = None):
    """A config field with ``default`` whose value must lie in the range given (checked when
    the config is made), e.g. ``dim: int = bounded(256, at_least=1)``."""
    span = Range(low=above if above is not None else at_least,
                 high=below if below is not None else at_most,
                 open_low=above is not None, open_high=below is not None)
    return dataclasses.field(default=default, metadata={"range": span})


def _device_problem(value) -> str | None:
    if value is None or isinstance(value, torch.device):
        return None
    try:
        torch.device(value)
    except (RuntimeError, TypeError):
        return "is not a torch device; use 'cpu', 'cuda', 'cuda:N', 'mps' or None (pick one)"
    return None


def device_field():
    """The ``device`` field of a config: None (pick one) or a name torch knows."""
    return dataclasses.field(default=None, metadata={"check": _device_problem})


#: A field's base type -> (what it must be, the test); bool is no int here, an int is a float.
_TYPES = {
    bool: ("True or False", lambda v: isinstance(v, (bool, np.bool_))),
    int: ("a whole number", lambda v: isinstance(v, (int, np.integer))
          and not isinstance(v, (bool, np.bool_))),
    float: ("a number", lambda v: isinstance(v, (int, float, np.integer, np.floating))
            and not isinstance(v, (bool, np.bool_))),
    str: ("a string", lambda v: isinstance(v, str)),
}


def _field_problem(value, hint, field: dataclasses.Field) -> str | None:
    """Why ``value`` does not fit its field (choices, type, range, own check), or None."""
    allowed = _literal_choices(hint)
    if allowed is not None:
        return None if value in allowed else \
            f"is not allowed; choose one of {', '.join(repr(a) for a in allowed)}"
    kinds = [a for a in (typing.get_args(hint) if _is_union(hint) else (hint,))
             if a is not type(None)]
    if value is None:
        return None if _is_union(hint) and type(None) in typing.get_args(hint) else \
            f"is not allowed; give {_describe(kinds)}"
    base = kinds[0] if len(kinds) == 1 else None
    if base in _TYPES and not _TYPES[base][1](value):
        return f"must be {_describe(kinds)}, not {type(value).__name__}"
    if base in (int, float) and value not in field.metadata.get("range", Range()):
        return f"is out of range; it must be {field.metadata['range']}"
    check = field.metadata.get("check")
    return check(value) if check else None


def _is_union(hint) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def _describe(kinds: list) -> str:
    return " or ".join(_TYPES[k][0] if k in _TYPES else getattr(k, "__name__", str(k))
                       for k in kinds)


def _literal_choices(hint) -> tuple | None:
    """The allowed values of a ``Literal[...]`` (or ``Literal[...] | None``) hint, else None."""
    if typing.get_origin(hint) is Literal:
        return typing.get_args(hint)
    args = typing.get_args(hint)
    literals = [a for a in args if typing.get_origin(a) is Literal]
    if literals and all(typing.get_origin(a) is Literal or a is type(None) for a in args):
        return tuple(v for a in literals for v in typing.get_args(a)) + \
            ((None,) if type(None) in args else ())
    return None


def repo_root() -> Path:
    """The checkout the package runs from (``notebooks/``, ``figures/`` and ``build/`` live
    there)."""
    return Path(__file__).resolve().parents[1]


#: ``SELLAKIT_QUICK`` spellings -> quick (True) or the paper protocol (False); unset: quick.
QUICK_VALUES = {**dict.fromkeys(("1", "true", "yes", "on", "quick"), True),
                **dict.fromkeys(("0", "false", "no", "off", "paper"), False)}


def quick_mode() -> bool:
    """Quick mode unless ``SELLAKIT_QUICK`` says paper (0, false, no, off, paper); a value in
    neither list of :data:`QUICK_VALUES` is a :class:`ConfigError`, never a silent guess."""
    value = (os.environ.get("SELLAKIT_QUICK") or "1").strip().lower()
    if value not in QUICK_VALUES:
        quick = ", ".join(k for k, v in QUICK_VALUES.items() if v)
        paper = ", ".join(k for k, v in QUICK_VALUES.items() if not v)
        raise ConfigError(f"SELLAKIT_QUICK={value!r} is not a mode; set it to one of {quick} "
                          f"(quick mode) or {paper} (the paper protocol), or unset it.")
    return QUICK_VALUES[value]


def preset_name(quick: bool | None = None) -> str:
    """``"quick"`` or ``"paper"``: from ``quick`` when given, else from :func:`quick_mode`."""
    return "quick" if (quick_mode() if quick is None else quick) else "paper"


def seed_everything(seed: int, *, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch (all devices).

    ``deterministic`` also asks torch for deterministic algorithms (an error where an operation
    has none). Results are then bit-identical on reruns of the same machine and thread count
    (``torch.get_num_threads()``): some sums are split across threads, so another thread count
    may round differently.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True)


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` if given, else CUDA, then Apple MPS, then CPU."""
    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_dtype(device: torch.device, dtype: str | torch.dtype | None = None) -> torch.dtype:
    """``dtype`` if given, else bfloat16 on a CUDA device that supports it, float32 elsewhere."""
    if dtype is not None:
        return getattr(torch, dtype) if isinstance(dtype, str) else dtype
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def cpu_bf16_active(device: torch.device, dtype: torch.dtype, wanted: bool) -> bool:
    """Whether an LLM on ``device`` with float32 weights (``dtype``) runs its passes under
    bfloat16 autocast when ``wanted``: only on a CPU with native bfloat16 (AVX512-BF16 or AMX).
    Other CPUs would emulate it, slower than float32; a CUDA model is bfloat16 already
    (:func:`pick_dtype`)."""
    if not (wanted and torch.device(device).type == "cpu" and dtype == torch.float32):
        return False
    # Private probes of torch.cpu; a torch without them answers "no": the passes stay float32.
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


def cpu_bf16_autocast(device: torch.device, dtype: torch.dtype, wanted: bool
                      ) -> contextlib.AbstractContextManager:
    """``torch.autocast("cpu", bfloat16)`` where :func:`cpu_bf16_active`, else a no-op. Matrix
    products run in bfloat16 and weights, gradients and optimiser states stay float32 (mixed
    precision, as on a GPU): SmolLM2-135M's passes run about 1.5-1.7 times faster on this
    kit's 2-core development CPU (AMD EPYC, AVX512-BF16), its item states at cosine 0.9999 to
    the float32 ones."""
    if cpu_bf16_active(device, dtype, wanted):
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def autocast_off(device: torch.device) -> contextlib.AbstractContextManager:
    """No autocast inside, whatever the caller's (for the parts that must stay float32); a
    no-op on a device type autocast does not know."""
    kind = torch.device(device).type
    return torch.autocast(kind, enabled=False) if kind in ("cpu", "cuda") \
        else contextlib.nullcontext()
