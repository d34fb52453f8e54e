# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 00 · Overview: what this series covers and how to run it
#
# **Goals.** Know what each notebook teaches, how to run the series (quick or paper mode) and
# where its outputs go. **Run time:** seconds.
#
# The series reproduces, shows and takes apart two ideas:
#
# 1. **SeLLa-Rec**: an LLM answers "will this user like this item? Yes/No" from a prompt that
#    carries three special tokens whose vectors come from a collaborative-filtering (CF) model
#    *aligned* with the LLM's semantic space.
# 2. **Joint pre-training and local re-training** for multi-source knowledge graphs: a teacher
#    trained over several linked KGs, distilled into a small student for one target KG.
#
# Everything runs on real data (MovieLens-1M, DBP-5L) and a real pretrained LLM (SmolLM2-135M),
# fetched into one cache (`SELLAKIT_CACHE`, default `~/.cache/sellakit`).

# %% tags=["parameters"]
from sellakit.config import quick_mode

QUICK = quick_mode()  # quick: laptop CPU; 0: paper protocol
SEED = 2025

# %% [markdown]
# ## 1. The map of the series
#
# Each notebook has a `parameters` cell (tagged, so papermill can inject values), numbered
# sections, a summary with exercises, and a last cell that records its key numbers. The code
# lives in the `sellakit` package; notebooks are narrative plus calls.

# %%
import pandas as pd

import sellakit
from sellakit.runner import NOTEBOOKS, record

series = pd.DataFrame(
    [(stem, goal, quick, paper) for stem, (goal, quick, paper) in NOTEBOOKS.items()],
    columns=["notebook", "goal", "quick mode", "paper mode"],
)
series

# %% [markdown]
# ## 2. How to run it
#
# | what | command |
# |---|---|
# | everything, quick mode, figures and a summary | `make run` |
# | the tests | `make test` |
# | JupyterLab on this folder | `make lab` |
# | one notebook, paper protocol | `SELLAKIT_QUICK=0 sellakit run 02_collaborative_filtering` |
#
# Executed copies go to `build/notebooks/`, figures to `figures/`, the summary of recorded
# values to `build/summary.md`.

# %% [markdown]
# ## 3. The environment this run used

# %%
import platform

import torch

from sellakit.cache import cache_dir
from sellakit.config import pick_device

environment = {
    "python": platform.python_version(),
    "torch": torch.__version__,
    "sellakit": sellakit.__version__,
    "device": str(pick_device()),
    "cache": str(cache_dir()),
    "quick": QUICK,
}
environment

# %% [markdown]
# ## Summary and exercises
#
# The series moves from data (01) to CF models (02) and, in later notebooks, to LLM semantics,
# alignment, special-token prompting and KG distillation.
#
# 1. Open `build/summary.md` after `make run`: which numbers does each notebook record?
# 2. Set `SELLAKIT_QUICK=0` and run notebook 02 alone. Which settings change (see
#    `sellakit.cf.CFConfig.paper`)?

# %%
record(n_notebooks=len(NOTEBOOKS), quick=QUICK, **{k: environment[k] for k in ("torch", "device")})
