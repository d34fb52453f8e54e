"""Run settings shared by every stage: quick vs paper mode, seeds, device and dtype.

Quick mode (the default, ``SELLAKIT_QUICK`` unset or ``1``) runs the whole series on a laptop
CPU in minutes; ``SELLAKIT_QUICK=0`` selects the paper protocol, meant for a GPU. Both run the
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

import dataclasses
import os
import random
import typing
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import torch

from sellakit.errors import ConfigError

__all__ = ["Config", "quick_mode", "preset_name", "repo_root", "seed_everything",
           "pick_device", "pick_dtype"]

@dataclasses.dataclass(frozen=True)
class Config:
    """Base of the kit's configs: frozen, ``Literal`` fields checked, presets by name.

    A subclass defines a classmethod per preset it offers (``quick``, ``paper``, and
    ``compare`` where a CPU comparison preset exists) and lists them in ``PRESETS``.
    """

    PRESETS: ClassVar[tuple[str, ...]] = ("quick", "paper")

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for field in dataclasses.fields(self):
            allowed = _literal_choices(hints.get(field.name))
            value = getattr(self, field.name)
            if allowed is not None and value not in allowed:
                raise ConfigError(
                    f"{type(self).__name__}.{field.name}={value!r} is not allowed; choose one "
                    f"of {', '.join(repr(a) for a in allowed)}.")

    @classmethod
    def preset(cls, name: str, **overrides):
        """The preset ``name`` (one of ``PRESETS``) with ``overrides`` applied."""
        if name not in cls.PRESETS:
            raise ConfigError(f"{cls.__name__} has no preset {name!r}; choose one of "
                              f"{', '.join(cls.PRESETS)}.")
        return getattr(cls, name)(**overrides)

    def cache_key(self, *inputs: str) -> str:
        """A digest of ``inputs`` (fingerprints of the data a model is trained on) and every
        setting but ``device``: the key of a trained model in the kit's cache."""
        import hashlib

        settings = {k: v for k, v in sorted(vars(self).items()) if k != "device"}
        return hashlib.sha256("|".join([*inputs, repr(settings)]).encode()).hexdigest()[:24]


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


def quick_mode() -> bool:
    """True unless the environment sets ``SELLAKIT_QUICK`` to 0/false/no."""
    return os.environ.get("SELLAKIT_QUICK", "1").strip().lower() not in {"0", "false", "no"}


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
