"""KG vectors for the items of a click-through split: what the ``<KG_ID>`` slot reads.

Two sources, one row each of :data:`ITEM_KG_SOURCES` (the film KG of MovieLens-100k,
:func:`sellakit.data.ml100k.film_multisource`):

* ``film``: the Freebase film KG alone;
* ``film+likes``: the film KG and the split's **training** likes (users like items) as a second
  source, joined by the item links and pre-trained jointly, as notebook 06's teacher is
  (:func:`sellakit.kg.pretrain.load_or_pretrain_teacher`, linked entities shared).

Soundness: a seeded part of the film facts is held out of training (``n_valid`` selection
facts, ``n_test`` test facts; :func:`with_heldout_film`); the trainer selects its epoch on the
first and the vectors come with their filtered link-prediction MRR / Hits@10 on the second.
Valid and test interactions never reach any graph (``film_multisource`` reads train alone).

An item's vector is its entity's row of the trained table (RotatE: real and imaginary parts
side by side). An item whose entity is in no training fact of the graph (no KG link under
``film``; neither a link nor a training like under ``film+likes``) gets the **zero vector**
and ``known = False``; row 0 (padding) is zero and unknown too.

Trained once per split, source and settings, and kept in the kit's cache (sealed, read through
the one guarded path); the key hashes every triple and link (the split's training likes and its
item order included), the held-out draw and the settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

import numpy as np
import pandas as pd
import torch

from sellakit.errors import ConfigError
from sellakit.kg.data import MultiSourceKG
from sellakit.kg.pretrain import Teacher, TeacherConfig, load_or_pretrain_teacher
from sellakit.kg.protocol import DataRule, data_rule
from sellakit.kg.train import TrainConfig

__all__ = ["ItemKGSource", "ITEM_KG_SOURCES", "ItemKGVectors", "item_kg_config",
           "with_heldout_film", "item_kg_graph", "item_kg_vectors", "item_entities",
           "FilmFacts"]

FILM, INTERACTIONS = "film", "interactions"


@dataclass(frozen=True)
class ItemKGSource:
    """Which KGs of :func:`~sellakit.data.ml100k.film_multisource` train the item vectors."""

    name: str
    kgs: tuple[str, ...]
    help: str


#: The item-vector sources by name.
ITEM_KG_SOURCES: Mapping[str, ItemKGSource] = MappingProxyType({row.name: row for row in (
    ItemKGSource("film", (FILM,), "the Freebase film KG alone"),
    ItemKGSource("film+likes", (FILM, INTERACTIONS),
                 "the film KG joined with the training likes, pre-trained jointly"),
)})


def item_kg_config(**overrides) -> TeacherConfig:
    """The settings of the item vectors (2 CPU cores: RotatE d=32, linked entities shared,
    selected every 2 epochs on the held-out film facts, at most 30 epochs)."""
    train = TrainConfig.quick(dim=32, lr=0.02, batch_size=4096, epochs=30, eval_every=2,
                              patience=3)
    return replace(TeacherConfig.quick(train=train, mode="sharing"), **overrides)


def with_heldout_film(ms: MultiSourceKG, *, n_valid: int = 1000, n_test: int = 2000,
                      seed: int = 0) -> MultiSourceKG:
    """``ms`` with a seeded draw of the film facts moved out of training: ``n_valid`` into
    valid (the selection facts), ``n_test`` into test (scored once)."""
    film = ms.kgs[FILM]
    if n_valid + n_test >= len(film.train):
        raise ConfigError(f"with_heldout_film(n_valid={n_valid}, n_test={n_test}): the film KG "
                          f"has {len(film.train):,} facts; hold out fewer.")
    order = np.random.default_rng(seed).permutation(len(film.train))
    valid, test = order[:n_valid], order[n_valid:n_valid + n_test]
    train = np.sort(order[n_valid + n_test:])
    held = replace(film, train=film.train[train], valid=film.train[np.sort(valid)],
                   test=film.train[np.sort(test)])
    return replace(ms, kgs={**ms.kgs, FILM: held})


def item_kg_graph(ms: MultiSourceKG, source: str) -> MultiSourceKG:
    """The KGs of ``source`` (a row of :data:`ITEM_KG_SOURCES`) and the links between them."""
    if source not in ITEM_KG_SOURCES:
        raise ConfigError(f"Unknown item-KG source {source!r}; choose from "
                          f"{', '.join(ITEM_KG_SOURCES)}.")
    keep = ITEM_KG_SOURCES[source].kgs
    return replace(ms, name=f"{ms.name}-{source}", kgs={k: ms.kgs[k] for k in keep},
                   links={pair: p for pair, p in ms.links.items() if set(pair) <= set(keep)})


@dataclass
class ItemKGVectors:
    """Per split item (row = iid; row 0 is padding): its KG vector and whether it is known.

    Attributes:
        vectors: ``(n_items, width)`` float32; zero where not ``known``.
        known: ``(n_items,)`` bool: the item's entity is in a training fact of the graph.
        source: the row of :data:`ITEM_KG_SOURCES`.
        link_prediction: filtered test metrics on the held-out film facts (``mrr``,
            ``hits@10``, ``n``...), tails ranked among the film entities.
        best_epoch / seconds / cached: from the training run.
    """

    vectors: np.ndarray
    known: np.ndarray
    source: str
    link_prediction: dict
    best_epoch: int
    seconds: float
    cached: bool

    @property
    def width(self) -> int:
        return int(self.vectors.shape[1])


def item_entities(ms: MultiSourceKG, n_items: int) -> dict[str, np.ndarray]:
    """Each split item's local entity id (-1: none) in the two KGs of ``ms`` (a
    :func:`~sellakit.data.ml100k.film_multisource`), items 0..n_items-1 (row 0, padding, is
    -1): ``film``, the entity of its link; ``interactions``, its own entity among the likes."""
    n_users = ms.kgs[INTERACTIONS].n_entities - (n_items - 1)
    pairs = ms.links[(FILM, INTERACTIONS)]
    film = np.full(n_items, -1, np.int64)
    film[pairs[:, 1] - n_users + 1] = pairs[:, 0]
    return {FILM: film,
            INTERACTIONS: np.concatenate([[-1], n_users + np.arange(n_items - 1)])}


def item_kg_vectors(ms: MultiSourceKG, n_items: int, source: str, *,
                    config: TeacherConfig | None = None, rule: DataRule | None = None,
                    progress: bool = True, use_cache: bool = True) -> ItemKGVectors:
    """Train (or read from the cache) the KG model of ``source`` on ``ms`` (a
    :func:`film_multisource` with :func:`with_heldout_film` applied) and read the item vectors.

    Args:
        n_items: the split's ``n_items`` (padding row included).
        rule: the data rule of ``ms`` (default :func:`data_rule` with every valid film fact
            as selection).
    """
    graph = item_kg_graph(ms, source)
    rule = rule or data_rule(graph, per_kg=len(ms.kgs[FILM].valid))
    teacher = load_or_pretrain_teacher(graph, rule, config or item_kg_config(),
                                       progress=progress, use_cache=use_cache)
    return _read_vectors(teacher, ms, graph, n_items, source)


def _read_vectors(teacher: Teacher, ms: MultiSourceKG, graph: MultiSourceKG, n_items: int,
                  source: str) -> ItemKGVectors:
    """Each item's row of the trained table (via its film link, or its own entity when the
    likes are in the graph), zero and unknown where the entity is in no training fact."""
    entities = item_entities(ms, n_items)
    name = INTERACTIONS if INTERACTIONS in graph.kgs else FILM
    local = entities[name]
    joint = teacher.joint
    with torch.no_grad():
        table = teacher.model.entity_table().detach().float().cpu().numpy()
    seen = np.zeros(joint.n_entities, bool)
    seen[joint.triples[:, [0, 2]].ravel()] = True
    ids = np.where(local >= 0, joint.ids[name][np.maximum(local, 0)], -1)
    known = (ids >= 0) & seen[np.maximum(ids, 0)]
    vectors = np.where(known[:, None], table[np.maximum(ids, 0)], 0.0).astype(np.float32)
    metrics = {k: v for k, v in teacher.j1[FILM]["metrics"].items() if k != "ranks"}
    return ItemKGVectors(vectors, known, source, metrics, teacher.best_epoch, teacher.seconds,
                         teacher.cached)


@dataclass
class FilmFacts:
    """Each split item's facts in the film KG, as notebook 08 shows them: the triples whose head
    is the item's linked entity (``film.film.*``: actors, genres, director...; the inverse
    relations repeat them), and which other split items share each fact's tail.

    Attributes:
        facts: one row per fact: ``iid``, ``relation`` (Freebase name), ``entity`` (the tail).
        titles: item titles by iid (row 0 padding).
        linked: ``(n_items,)`` bool: the item links to a KG entity.
        movie_of: Freebase id -> iid of the split's linked items.
    """

    facts: pd.DataFrame
    titles: np.ndarray
    linked: np.ndarray
    movie_of: dict[str, int]

    @classmethod
    def build(cls, kg, split) -> "FilmFacts":
        """From a :class:`~sellakit.data.ml100k.FilmKG` and a split of its items."""
        raw = pd.Series(split.item_ids).str.split(":", n=1).str[0]
        entity = raw.map(dict(zip(kg.links.item, kg.links.entity)))
        movie_of = {e: i + 1 for i, e in enumerate(entity) if isinstance(e, str)}
        heads = kg.triples[kg.triples["head"].isin(movie_of)]
        facts = pd.DataFrame({"iid": heads["head"].map(movie_of).to_numpy(),
                              "relation": heads.relation.to_numpy(),
                              "entity": heads["tail"].to_numpy()}).drop_duplicates()
        linked = np.zeros(split.n_items, bool)
        linked[list(movie_of.values())] = True
        return cls(facts.reset_index(drop=True), np.asarray(split.item_titles), linked,
                   movie_of)

    def of(self, iid: int, shown: int = 3) -> pd.DataFrame:
        """``iid``'s facts: relation (short name), tail (a split movie's title where it is
        one), how many other split items share the tail and up to ``shown`` of their titles;
        most shared first."""
        own = self.facts[self.facts.iid == iid]
        sharing = self.facts[self.facts.entity.isin(own.entity) & (self.facts.iid != iid)]
        others = sharing.groupby("entity").iid.apply(list)
        rows = [{"relation": r.relation.rsplit(".", 1)[-1],
                 "tail": self.titles[self.movie_of[r.entity]] if r.entity in self.movie_of
                 else r.entity,
                 "shared by": len(others.get(r.entity, [])),
                 "e.g.": "; ".join(self.titles[i] for i in others.get(r.entity, [])[:shown])}
                for r in own.itertuples()]
        frame = pd.DataFrame(rows, columns=["relation", "tail", "shared by", "e.g."])
        return frame.sort_values("shared by", ascending=False, kind="stable") \
            .reset_index(drop=True)

    def relation_counts(self) -> pd.Series:
        """Facts per relation over the split's linked items (short names), largest first."""
        return self.facts.relation.str.rsplit(".", n=1).str[-1].value_counts()
