"""The linked subgraph: the target KG plus what the teacher knows around its linked entities.

1. **Link** target entities to entities of the other KGs: the seed links; optionally also
   *predicted* links, the mutual nearest neighbours (cosine) in the teacher's entity space of
   target entities that have no seed link, above a similarity threshold.
2. **Extract** the 1-hop neighbourhood of every linked entity in its KG (its training facts
   under the data rule, the target protected, as for J2), at most ``fanout`` triples per
   entity and direction, drawn uniformly (``fanout=0``: links only, no background triples).
3. **Join** the two sides: ``swapping`` copies each triple touching a linked entity with its
   partner in its place (bridges); ``sharing`` gives a linked background entity its target
   partner's id (no bridges, fewer triples).

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
from sellakit.kg.models import KGEModel
from sellakit.kg.pretrain import JointGraph, swap_triples
from sellakit.kg.protocol import DataRule

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
    links: np.ndarray  # (target local id, student id of its linked copy; itself when sharing)
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
                "bridge_triples": self.n_bridge_triples, "triples": len(self.triples),
                "without_teacher_row": int((self.teacher_ids < 0).sum())}

    def canonical(self, canon: dict[str, np.ndarray]) -> np.ndarray:
        """Each student entity's canonical id (``canon``: :attr:`DataRule.canon`)."""
        return np.asarray([canon[name][local] for name, local in self.origin], np.int64)


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


def build_linked_subgraph(ms: MultiSourceKG, rule: DataRule, joint: JointGraph, target: str, *,
                          fanout: int = 5, link_mode: str = "swapping", predicted: bool = False,
                          teacher: KGEModel | None = None, threshold: float = 0.5,
                          seed: int = 0) -> LinkedSubgraph:
    """The linked subgraph of ``target`` (1-hop, fan-out capped; see the module docstring).
    ``joint`` is the teacher's graph (its ids give each student entity's teacher row)."""
    if link_mode not in ("swapping", "sharing"):
        raise ConfigError(f"link_mode={link_mode!r} is not allowed; choose swapping or sharing.")
    rng = np.random.default_rng(seed)
    n_t = ms.kgs[target].n_entities
    own, _ = rule.training(target, (target,))
    seed_pairs = _seed_pairs(ms, target, joint)
    n_seed = sum(len(p) for p in seed_pairs.values())
    n_pred = 0
    if predicted:
        if teacher is None:
            raise ConfigError("predicted=True needs the teacher (teacher=...).")
        for other, pairs in seed_pairs.items():
            unlinked = np.setdiff1d(np.unique(own[:, [0, 2]]), pairs[:, 0])
            extra = predict_links(teacher, joint, target, other, unlinked, threshold=threshold)
            n_pred += len(extra)
            seed_pairs[other] = np.concatenate([pairs, extra])
    origin: list[tuple[str, int]] = [(target, i) for i in range(n_t)]
    seen = target in joint.ids  # False: the target arrived after the teacher (new KG)
    teacher_ids = list(joint.ids[target]) if seen else [-1] * n_t
    index: dict[tuple[str, int], int] = {}
    for other, pairs in seed_pairs.items():
        for x, y in pairs:
            if link_mode == "sharing":  # a linked background entity *is* its target partner
                index.setdefault((other, int(y)), int(x))
            if not seen and teacher_ids[x] < 0:  # the first partner's row
                teacher_ids[x] = int(joint.ids[other][y])

    def sid(name: str, local: int) -> int:
        key = (name, int(local))
        if key not in index:
            index[key] = len(origin)
            origin.append(key)
            teacher_ids.append(int(joint.ids[name][local]))
        return index[key]

    background, links = [], []
    for other, pairs in seed_pairs.items():
        triples, _ = rule.training(other, (target,))
        rows = _one_hop(triples, np.unique(pairs[:, 1]), fanout, rng) if fanout else []
        background += [(sid(other, h), r, sid(other, t)) for h, r, t in triples[rows]]
        links += [(x, sid(other, y)) for x, y in pairs]  # sharing: (x, x)
    background = np.asarray(background, np.int64).reshape(-1, 3)
    links = np.asarray(links, np.int64).reshape(-1, 2)
    base = np.unique(np.concatenate([own, background]), axis=0)
    bridges = swap_triples(base, links) if link_mode == "swapping" else np.zeros((0, 3), int)
    triples = np.unique(np.concatenate([base, bridges]), axis=0)
    return LinkedSubgraph(target, n_t, len(origin), triples, np.asarray(teacher_ids),
                          origin, links, n_seed, n_pred, len(own), len(background),
                          len(triples) - len(base))


def _seed_pairs(ms: MultiSourceKG, target: str, joint: JointGraph) -> dict[str, np.ndarray]:
    """Other KG -> its seed links to ``target`` as (target local id, other local id)."""
    out = {}
    for (a, b), pairs in ms.links.items():
        if a == target and b in joint.ids:
            out[b] = pairs
        elif b == target and a in joint.ids:
            out[a] = pairs[:, ::-1]
    return out
