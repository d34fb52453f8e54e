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
# **Learning objectives.** After this notebook you can
#
# * say what each notebook of the series teaches, what it needs and how long it takes;
# * run one notebook, a few, or the whole series, in quick or paper mode;
# * find the executed notebooks, the figures and the recorded numbers a run leaves behind.
#
# **Run time** (quick mode, 2 CPU cores, idle unless noted): 5 s (first run 4 s). **Paper mode:**
# same as quick. **Needs a GPU:** no. **Depends on:** none.
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
# sections, a summary with exercises (answers folded under each one), and a last cell that
# records its key numbers. The code lives in the `sellakit` package; notebooks are narrative
# plus calls. The table below is `sellakit.runner.NOTEBOOKS`, the one source of these facts
# (README's table and each notebook's header line are made from it). Times are quick mode on 2
# idle CPU cores with a warm cache; the first run also fetches data and models.

# %%
import pandas as pd

import sellakit
from sellakit.runner import NOTEBOOKS, record, series_seconds

series = pd.DataFrame(
    [(stem, nb.goal, nb.quick, nb.paper, nb.needs_gpu, nb.depends)
     for stem, nb in NOTEBOOKS.items()],
    columns=["notebook", "goal", "quick mode (first run)", "paper mode", "needs a GPU",
             "depends on"],
).set_index("notebook")
print(f"The whole quick series (`make run`, its two chains side by side): about "
      f"{series_seconds() / 60:.1f} min with a warm cache, "
      f"{series_seconds(first_run=True) / 60:.0f} min from an empty one.")
series

# %% [markdown]
# ## 2. How to run it
#
# | what | command |
# |---|---|
# | the first five minutes: this notebook and the data | `sellakit run 00_overview 01_data` |
# | everything, quick mode, figures and a summary | `make run` |
# | the tests | `make test` |
# | JupyterLab on this folder | `make lab` |
# | one notebook, paper protocol | `SELLAKIT_QUICK=0 sellakit run 02_collaborative_filtering` |
# | the rendered book of the executed notebooks | `make book` |
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
# > **What you should see.** A table of the series, one row per notebook, and the environment
# > of this run (`device` is `cpu` unless torch sees a GPU). Recorded, and checked by the tests:
# >
# > * `n_notebooks` ≈ 9 ± 0
#
# ## Summary and exercises
#
# The series moves from data (01) to CF models (02) and, in later notebooks, to LLM semantics,
# alignment, special-token prompting and KG distillation.
#
# 1. Open `build/summary.md` after `make run`: which numbers does each notebook record?
#
#    <details><summary>Answer</summary>
#
#    One section per notebook, one row per value its last cell passes to `record(...)`: 01 the
#    split's row, positive and warm counts; 02 each model's valid/test/warm/cold AUC and UAUC,
#    best epoch and seconds; 03 genre agreement and Toy Story's neighbours; 04 the alignment
#    measures before and after; 05 every method's AUC/UAUC; 06 the teacher's per-graph MRR and
#    Hits@k; 07 scratch, KD, ablations and joint retrain. In Python:
#    `sellakit.runner.recorded_values(nbformat.read("build/notebooks/01_data.ipynb", 4))`.
#    </details>
#
# 2. Set `SELLAKIT_QUICK=0` and run notebook 02 alone. Which settings change (see
#    `sellakit.cf.CFConfig.preset("paper", model=...)`)?
#
#    <details><summary>Answer</summary>
#
#    The epoch budget, the early-stopping patience and SASRec's history length (10 items in
#    quick mode, 25 in paper mode): the cell below lists every field that differs between the
#    two presets. Dimensions, learning rates and weight decay are CoLLM's in both.
#    </details>

# %%
from sellakit.cf import CFConfig

preset_differences = {
    model: {field: (getattr(quick, field), getattr(paper, field))
            for field in vars(quick) if getattr(quick, field) != getattr(paper, field)}
    for model in ("mf", "lightgcn", "sasrec")
    for quick, paper in [(CFConfig.preset("quick", model=model),
                          CFConfig.preset("paper", model=model))]
}
preset_differences

# %%
record(n_notebooks=len(NOTEBOOKS), quick=QUICK, **{k: environment[k] for k in ("torch", "device")},
       preset_differences=preset_differences)
