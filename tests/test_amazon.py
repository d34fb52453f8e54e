"""Amazon Book: the real-file loader, CoLLM's Book protocol, the named synthetic stand-in."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from sellakit.data import DataError
from sellakit.data.amazon import (SYNTHETIC_NAME, amazon_book_split,
                                  generate_amazon_book_synthetic, load_amazon_books)


def ts(day: str) -> int:
    return int(pd.Timestamp(day, tz="UTC").timestamp())


def test_book_protocol_rules():
    rows = []
    # 22 users x 22 items, everyone rates everything in 2017 (> 20 each), plus noise to drop
    for u in range(22):
        for i in range(22):
            month = 1 + (u + i) % 12
            rows.append((f"u{u}", f"b{i}", 5 if (u + i) % 2 else 4, ts(f"2017-{month:02d}-10") + u))
    rows.append(("u0", "rare", 5, ts("2017-03-01")))       # item with 1 rating: filtered
    rows.append(("u1", "b1", 5, ts("2016-12-31")))         # 2016: dropped
    ratings = pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"])
    items = pd.DataFrame({"item": [f"b{i}" for i in range(22)] + ["rare"],
                          "title": ["t"] * 23, "genres": [["Books"]] * 23})
    split = amazon_book_split(ratings, items)
    assert split.n_items - 1 == 22
    assert (split.train.month <= 11).all()
    december = len(split.valid) + len(split.test)
    assert december == sum(1 for r in rows[:-2] if pd.Timestamp(r[3], unit="s").month == 12)
    assert abs(len(split.valid) - len(split.test)) <= 1
    assert split.valid.timestamp.max() <= split.test.timestamp.min()
    everything = pd.concat(split.frames().values())
    assert set(everything.label) == {0, 1}  # label 1 iff rating 5
    assert everything.label.sum() == sum(1 for r in rows[:-2] if r[2] == 5)


def test_synthetic_is_named_and_learnable():
    ratings, items = generate_amazon_book_synthetic(n_users=300, n_items=250, seed=1)
    assert ratings.user.str.startswith("synthetic_").all()
    assert set(ratings.columns) == {"user", "item", "rating", "timestamp"}
    assert 0.5 < (ratings.rating == 5).mean() < 0.7
    split = amazon_book_split(ratings, items, name=SYNTHETIC_NAME)
    assert split.name == "amazon_book_synthetic"
    assert len(split.valid) > 0 and len(split.test) > 0


def test_real_file_loader(tmp_path):
    csv = tmp_path / "Books.csv"
    csv.write_text("0001,A1,5.0,1500000000\n0002,A2,3.0,1500000100\n")
    meta = tmp_path / "meta_Books.json"
    meta.write_text(json.dumps({"asin": "0001", "title": "A Book", "category": ["Books"]})
                    + "\nnot json\n")
    ratings, items = load_amazon_books(csv, meta)
    assert ratings.rating.tolist() == [5, 3] and items.title.tolist() == ["A Book"]


def test_bad_amazon_files(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_amazon_books(tmp_path / "no.csv", tmp_path / "no.json")
    csv = tmp_path / "Books.csv"
    csv.write_text("a,b,not-a-number,x\n")
    meta = tmp_path / "meta.json"
    meta.write_text("{}\n")
    with pytest.raises(DataError, match="Books.csv"):
        load_amazon_books(csv, meta)
