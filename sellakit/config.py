"""Run settings shared by every stage: quick vs paper mode, seeds, device and dtype.

Quick mode (the default, ``SELLAKIT_QUICK`` unset or ``1``) runs the whole series on a laptop
CPU in minutes; ``SELLAKIT_QUICK=0`` selects the paper protocol, meant for a GPU. Both run the
same code; only the config presets differ (each config dataclass has ``quick()`` and
``paper()``).
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

__all__ = ["quick_mode", "seed_everything", "pick_device", "pick_dtype"]


def quick_mode() -> bool:
    """True unless the environment sets ``SELLAKIT_QUICK`` to 0/false/no."""
    return os.environ.get("SELLAKIT_QUICK", "1").strip().lower() not in {"0", "false", "no"}


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


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
