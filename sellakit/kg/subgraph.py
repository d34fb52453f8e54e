"""The linked subgraph: the target KG plus what the teacher knows around its linked entities.

1. **Link** target entities to entities of the other KGs: the seed links; optionally also
   *predicted* links, the mutual nearest neighbours (cosine) in the teacher's entity space of
   target entities that have no seed link, above a similarity threshold.
2. **Extract** the 1-hop neighbourhood of every linked entity in its KG (the teacher's
   leak-free training triples), at most ``fanout`` triples per entity, drawn uniformly.
3. **Bridge** the two sides by swapping: each triple touching a linked entity is copied with
   its partner in its place.

Student ids: the target's entities keep their ids ``0..n_target-1`` (so ranking over the
target's entities reads the first rows), background entities follow. ``teacher_ids`` maps each
student entity to its row in the teacher.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sellakit.errors import ConfigError
from sellakit.kg.data import MultiSourceKG
from sellakit.kg.pretrain import JointGraph, swap_triples
from sellakit.kg.models import KGEModel

__all__ = ["LinkedSubgraph", "predict_links", "build_linked_subgraph"]


@dataclass
class LinkedSubgraph:
    """The student's training graph for one target (see the module docstring)."""

    target: str
    n_target_entities: int
    n_entities: int
    triples: np.ndarray
    teacher_ids: np.ndarray
    origin: list[tuple[str, int]]  # student id -> (KG, local id)
    links: np.ndarray  # (target local id, student id of the linked background entity)
    n_seed_links: int
    n_predicted_links: int
    n_target_triples: int
    n_background_triples: int
    n_bridge_triples: int

    def summary(self) -> dict:
        return {"target": self.target, "entities": self.n_entities,
                "target_entities": self.n_target_entities,
                "seed_links": self.n_seed_links, "predicted_links": self.n_predicted_links,
                "target_triples": self.n_target_triples,
                "background_triples": self.n_background_triples,
                "bridge_triples": self.n_bridge_triples, "triples": len(self.triples)}


def predict_links(teacher: KGEModel, joint: JointGraph, target: str, other: str,
                  sources: np.ndarray, *, threshold: float = 0.5) -> np.ndarray:
    """Mutual nearest neighbours (cosine, teacher space) of target ``sources`` in ``other``.

    Returns ``(n, 2)`` pairs (target local id, other local id) with similarity >= threshold.
    """
    if len(sources) == 0:
        return np.zeros((0, 2), np.int64)
    with torch.no_grad():
        table = teacher.entity_table().cpu()
        a = torch.nn.functional.normalize(table[torch.as_tensor(joint.ids[target][sources])], dim=1)
        b = torch.nn.functional.normalize(table[torch.as_tensor(joint.ids[other])], dim=1)
        sim = a @ b.T
        best_b = sim.argmax(1)
        back = (b[best_b] @ a.T).argmax(1)
        ok = (back == torch.arange(len(sources))) & (sim.max(1).values >= threshold)
    return np.stack([sources[ok.numpy()], best_b[ok].numpy()], 1).astype(np.int64)


def _one_hop(triples: np.ndarray, entities: np.ndarray, fanout: int,
             rng: np.random.Generator) -> np.ndarray:
    """Rows of ``triples`` with one of ``entities`` as head or tail, at most ``fanout`` drawn
    per entity and direction."""
    chosen = []
    for column in (0, 2):
        order = np.argsort(triples[:, column], kind="stable")
        keys = triples[order, column]
        lo, hi = np.searchsorted(keys, entities), np.searchsorted(keys, entities, "right")
        for a, b in zip(lo, hi):
            rows = order[a:b]
            if len(rows) > fanout:
                rows = rng.choice(rows, fanout, replace=False)
            chosen.append(rows)
    return np.unique(np.concatenate(chosen)) if chosen else np.zeros(0, np.int64)


def build_linked_subgraph(ms: MultiSourceKG, joint: JointGraph, target: str, *,
                          fanout: int = 10, predicted: bool = False,
                          teacher: KGEModel | None = None, threshold: float = 0.5,
                          seed: int = 0) -> LinkedSubgraph:
    """The linked subgraph of ``target`` (1-hop, fan-out capped; see the module docstring)."""
    rng = np.random.default_rng(seed)
    kg = ms.kgs[target]
    n_t = kg.n_entities
    seed_pairs: dict[str, np.ndarray] = {}
    for (a, b), pairs in ms.links.items():
        if a == target and b in joint.ids:
            seed_pairs[b] = pairs
        elif b == target and a in joint.ids:
            seed_pairs[a] = pairs[:, ::-1]
    n_seed = sum(len(p) for p in seed_pairs.values())
    n_pred = 0
    if predicted:
        if teacher is None:
            raise ConfigError("predicted=True needs the teacher (teacher=...).")
        for other, pairs in seed_pairs.items():
            unlinked = np.setdiff1d(np.unique(kg.train[:, [0, 2]]), pairs[:, 0])
            extra = predict_links(teacher, joint, target, other, unlinked, threshold=threshold)
            n_pred += len(extra)
            seed_pairs[other] = np.concatenate([pairs, extra])
    # background entities and their 1-hop triples, fan-out capped
    origin: list[tuple[str, int]] = [(target, i) for i in range(n_t)]
    teacher_ids = list(joint.ids[target])
    index: dict[tuple[str, int], int] = {}

    def sid(name: str, local: int) -> int:
        key = (name, int(local))
        if key not in index:
            index[key] = n_t + len(index)
            origin.append(key)
            teacher_ids.append(int(joint.ids[name][local]))
        return index[key]

    background, links = [], []
    for other, pairs in seed_pairs.items():
        triples = joint.kg_triples[other]
        rows = _one_hop(triples, np.unique(pairs[:, 1]), fanout, rng)
        for h, r, t in triples[rows]:
            background.append((sid(other, h), r, sid(other, t)))
        for x, y in pairs:
            links.append((x, sid(other, y)))
    background = np.asarray(background, np.int64).reshape(-1, 3)
    links = np.asarray(links, np.int64).reshape(-1, 2)
    base = np.concatenate([kg.train, background])
    bridges = swap_triples(base, links)
    triples = np.unique(np.concatenate([base, bridges]), axis=0)
    return LinkedSubgraph(target, n_t, n_t + len(index), triples, np.asarray(teacher_ids),
                          origin, links, n_seed, n_pred, len(kg.train), len(background),
                          len(triples) - len(np.unique(base, axis=0)))
