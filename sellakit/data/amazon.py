"""Amazon Book: the real Amazon 2018 Books files, or a generated stand-in named as one.

Real data (no copy is reachable offline): give the two files of the Amazon Review Data 2018
"Books" category, the ratings-only CSV (``item,user,rating,timestamp``, no header) and the
metadata JSON lines (``asin``, ``title``, ``category``), to :func:`load_amazon_books`.

Offline, :func:`generate_amazon_book_synthetic` yields the same schema from planted user and
item factors, with titles drawn from topic words tied to the item factors (so text and CF
signal agree, and alignment has something to find). Its name, ``amazon_book_synthetic``, goes
with it into every split, plot and table: it is a stand-in, not Amazon data.

:func:`amazon_book_split` applies CoLLM's Book protocol to either: 2017 only; users and items
with more than 20 interactions (one pass); label 1 iff rating 5; train Jan-Nov; December in
time order, first half valid, second half test.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from sellakit.data.protocol import CTRSplit, SplitSpec, split_by_months
from sellakit.errors import DataError

__all__ = ["load_amazon_books", "amazon_book_split", "generate_amazon_book_synthetic",
           "SYNTHETIC_NAME"]

SYNTHETIC_NAME = "amazon_book_synthetic"
AMAZON_BOOK_SPEC = SplitSpec(train_months=(1, 11), valid_months=(12, 12), test_months=(13, 13),
                             positive_min_rating=5)


def load_amazon_books(ratings_csv: str | os.PathLike, meta_jsonl: str | os.PathLike
                      ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read the real Amazon 2018 Books files into ``ratings`` and ``items`` frames.

    Returns frames with the columns :func:`amazon_book_split` takes: ratings ``user, item,
    rating, timestamp``; items ``item, title, genres``.
    """
    ratings_csv, meta_jsonl = Path(ratings_csv), Path(meta_jsonl)
    for path in (ratings_csv, meta_jsonl):
        what = "is a folder" if path.is_dir() else "does not exist" if not path.exists() \
            else "is empty" if path.stat().st_size == 0 else None
        if what:
            raise DataError(f"{path} {what}. Fix: pass the Amazon 2018 Books files (ratings CSV "
                            "and meta JSON lines), or use generate_amazon_book_synthetic() for "
                            "an offline stand-in.")
    ratings = _read_ratings_csv(ratings_csv)
    items = _read_meta(meta_jsonl)
    return ratings, items


#: Unreadable metadata lines or empty titles tolerated: at most this share, or this many.
BAD_SHARE, BAD_LINES = 0.1, 10
#: Ratings are 1-5 stars; timestamps (seconds) between Amazon's first review year and 2100.
RATINGS, FIRST_TIME, LAST_TIME = range(1, 6), 788_918_400, 4_102_444_800


def _read_meta(path: Path) -> pd.DataFrame:
    """The metadata JSON lines as ``item, title, genres``; a :class:`DataError` naming ``path``
    and a line when more than a few lines are unreadable or titles empty."""
    rows, bad, untitled = [], [], []
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataError(f"{path}, line {number}: not UTF-8 ({err.reason} at byte "
                                f"{err.start}). Fix: pass the file as Amazon publishes it "
                                "(UTF-8 JSON lines), or re-encode it.") from err
            try:
                entry = json.loads(line)
                title = entry.get("title") or ""
                rows.append({"item": entry["asin"], "title": str(title).strip(),
                             "genres": list(entry.get("category") or [])})
            except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
                bad.append(number)
                continue
            if not rows[-1]["title"]:
                untitled.append(number)
    if not rows:
        raise DataError(f"{path}: no JSON line with an 'asin' was found ({len(bad)} "
                        "unreadable). Fix: pass meta_Books.json (JSON lines) from Amazon 2018.")
    for lines, what, total in ((bad, "are not JSON with an 'asin'", len(rows) + len(bad)),
                               (untitled, "have no title", len(rows))):
        if len(lines) > max(BAD_LINES, BAD_SHARE * total):
            raise DataError(f"{path}: {len(lines):,} of {total:,} lines {what} (first: line "
                            f"{lines[0]}). Fix: pass meta_Books.json from Amazon 2018 as "
                            "published (JSON lines with asin and title).")
    return pd.DataFrame(rows).drop_duplicates("item")


def _read_ratings_csv(path: Path) -> pd.DataFrame:
    """The ratings-only CSV: exactly four columns (item, user, rating, timestamp), no header."""
    fix = "Fix: pass the ratings-only Books.csv (item,user,rating,timestamp rows, no header)."
    try:
        ratings = pd.read_csv(path, header=None, dtype=str, encoding="utf-8")
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not a ratings CSV ({err}). {fix}") from err
    if ratings.shape[1] != 4:
        raise DataError(f"{path}: {ratings.shape[1]} columns, expected 4 (item, user, rating, "
                        f"timestamp). {fix}")
    ratings.columns = ["item", "user", "rating", "timestamp"]
    try:
        ratings["rating"] = ratings.rating.astype(float).round().astype(int)
        ratings["timestamp"] = ratings.timestamp.astype("int64")
    except ValueError as err:
        raise DataError(f"{path}: a rating or timestamp is not a number ({err}). {fix}") from err
    for column, ok, wanted in (
            ("rating", ratings.rating.isin(RATINGS), "1 to 5 stars"),
            ("timestamp", ratings.timestamp.between(FIRST_TIME, LAST_TIME),
             "seconds since 1970, between 1995 and 2100")):
        if not ok.all():
            first = int(np.flatnonzero(~ok.to_numpy())[0])
            raise DataError(f"{path}, line {first + 1}: {column} {ratings[column].iloc[first]} "
                            f"is outside {wanted} ({int((~ok).sum()):,} such rows). {fix}")
    return ratings


def amazon_book_split(ratings: pd.DataFrame, items: pd.DataFrame, *, name: str = "amazon_book",
                      min_interactions: int = 20) -> CTRSplit:
    """CoLLM's Amazon-Book protocol (see the module docstring)."""
    when = pd.to_datetime(ratings.timestamp, unit="s", utc=True)
    year = ratings[when.dt.year == 2017].copy()
    if year.empty:
        raise DataError("No rating falls in 2017; CoLLM's Book protocol keeps 2017 only.")
    user_counts = year.user.map(year.user.value_counts())
    item_counts = year["item"].map(year["item"].value_counts())
    year = year[(user_counts > min_interactions) & (item_counts > min_interactions)]
    if year.empty:
        raise DataError(f"No user and item both have more than {min_interactions} ratings in 2017.")
    year = year.sort_values("timestamp", kind="stable")
    month = pd.to_datetime(year.timestamp, unit="s", utc=True).dt.month.to_numpy().copy()
    december = np.flatnonzero(month == 12)
    month[december[len(december) // 2:]] = 13  # second half of December: test
    return split_by_months(year, items, AMAZON_BOOK_SPEC, name=name,
                           month=pd.Series(month, index=year.index))


_TOPICS = {
    "Mystery": (["Silent", "Hidden", "Last", "Cold", "Midnight"],
                ["Witness", "Alibi", "Clue", "Case", "Detective"]),
    "Romance": (["Sweet", "Summer", "Secret", "Forever", "Tender"],
                ["Heart", "Kiss", "Promise", "Bride", "Love"]),
    "Science Fiction": (["Distant", "Quantum", "Red", "Iron", "Star"],
                        ["Planet", "Empire", "Android", "Galaxy", "Colony"]),
    "Fantasy": (["Dragon", "Shadow", "Ember", "Elven", "Crystal"],
                ["Throne", "Sword", "Crown", "Mage", "Realm"]),
    "History": (["Forgotten", "Great", "Roman", "Lost", "Imperial"],
                ["War", "Dynasty", "Revolution", "Voyage", "Kingdom"]),
    "Cooking": (["Easy", "Italian", "Vegan", "Home", "Rustic"],
                ["Kitchen", "Recipes", "Baking", "Table", "Feast"]),
    "Self-Help": (["Mindful", "Better", "Simple", "Daily", "Bold"],
                  ["Habits", "Mind", "Life", "Focus", "Success"]),
    "Children's Books": (["Little", "Happy", "Busy", "Sleepy", "Brave"],
                         ["Bear", "Bunny", "Train", "Puppy", "Adventure"]),
}


def generate_amazon_book_synthetic(n_users: int = 1500, n_items: int = 1200,
                                   mean_ratings_per_user: int = 45, dim: int = 8,
                                   seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A generated stand-in for Amazon Book in its schema (NOT Amazon data).

    Users and items get latent factors; each item belongs to a topic whose direction dominates
    its factor, and its title is built from that topic's words. Ratings are 1-5 from the
    user-item affinity plus noise (about 60 % fives, as in Amazon Books), item popularity is
    Zipf-like, user activity long-tailed, timestamps spread over 2017.

    Returns ``ratings`` (``user, item, rating, timestamp``) and ``items`` (``item, title,
    genres``); ``user``/``item`` ids are prefixed ``synthetic_``.
    """
    rng = np.random.default_rng(seed)
    topics = list(_TOPICS)
    topic_dirs = rng.normal(size=(len(topics), dim))
    topic_dirs /= np.linalg.norm(topic_dirs, axis=1, keepdims=True)
    item_topic = rng.integers(0, len(topics), n_items)
    item_factors = 1.5 * topic_dirs[item_topic] + 0.5 * rng.normal(size=(n_items, dim))
    user_factors = rng.dirichlet(np.full(len(topics), 0.4), n_users) @ topic_dirs * 2.0 \
        + 0.3 * rng.normal(size=(n_users, dim))
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.8
    popularity = popularity[rng.permutation(n_items)]
    activity = np.clip(rng.lognormal(np.log(mean_ratings_per_user), 0.5, n_users), 22, None)

    users, items_picked = [], []
    for user in range(n_users):
        k = min(int(activity[user]), n_items // 2)
        affinity = np.exp(0.8 * item_factors @ user_factors[user]) * popularity
        chosen = rng.choice(n_items, size=k, replace=False, p=affinity / affinity.sum())
        users.append(np.full(k, user))
        items_picked.append(chosen)
    user_ix, item_ix = np.concatenate(users), np.concatenate(items_picked)
    score = np.einsum("nd,nd->n", user_factors[user_ix], item_factors[item_ix])
    score = (score - score.mean()) / score.std() + 0.6 * rng.normal(size=len(score))
    rating = np.digitize(score, np.quantile(score, [0.04, 0.08, 0.17, 0.40])) + 1
    start = pd.Timestamp("2017-01-01", tz="UTC").timestamp()
    timestamp = (start + rng.uniform(0, 365 * 86400, len(score))).astype("int64")

    def title(index: int) -> str:
        adjectives, nouns = _TOPICS[topics[item_topic[index]]]
        return f"The {adjectives[rng.integers(5)]} {nouns[rng.integers(5)]}" + \
            (f" (Book {index % 7 + 1})" if index % 3 == 0 else "")

    ratings = pd.DataFrame({"user": [f"synthetic_u{u}" for u in user_ix],
                            "item": [f"synthetic_b{i}" for i in item_ix],
                            "rating": rating, "timestamp": timestamp})
    items = pd.DataFrame({"item": [f"synthetic_b{i}" for i in range(n_items)],
                          "title": [title(i) for i in range(n_items)],
                          "genres": [["Books", topics[t]] for t in item_topic]})
    return ratings, items
