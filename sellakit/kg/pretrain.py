"""Joint pre-training of the teacher over several KGs linked by their alignment.

:func:`build_joint` puts the KGs into one entity space and links them in one of three ways
(the muKG/OpenEA modes):

* ``swapping`` (default): ids stay separate; for every training link (a, b), each triple with a
  as head or tail is copied with b in its place, and vice versa (bridging triples);
* ``sharing``: linked entities (joined transitively) become one id;
* ``mapping``: ids stay separate and a loss ``align_weight * ||e_a - e_b||^2`` pulls linked
  entities together.

No leakage: each KG contributes its *train* split only, minus every fact that the alignment
maps onto a valid or test fact of an excluded KG (:func:`sellakit.kg.data.leak_free_triples`).
By default every KG is excluded that way, so one teacher serves every target language
(trained once, reused).

:func:`pretrain_teacher` trains the teacher (a larger :class:`KGEModel`), selecting the epoch on
the mean validation MRR over the KGs; :func:`load_or_pretrain_teacher` keeps it in the cache
keyed by data and config, so notebooks 06, 07 and the benchmark share one teacher.
"""

from __future__ import annotations

import hashlib
import json
from functools import partial
from pathlib import Path
from dataclasses import asdict, dataclass, field, replace
from typing import Literal, get_args

import numpy as np
import pandas as pd
import torch
from torch import nn

from sellakit.cache import atomic_file, cache_dir, lock
from sellakit.config import Config
from sellakit.errors import ConfigError
from sellakit.kg.data import MultiSourceKG, entity_offsets, leak_free_triples, linked_roots
from sellakit.kg.evaluate import validation_mrr
from sellakit.kg.models import KGEModel
from sellakit.kg.train import TrainConfig, build_model, train_kge
from sellakit.selection import TrainResult

__all__ = ["MODES", "TeacherConfig", "JointGraph", "build_joint", "swap_triples",
           "AlignmentLoss", "kg_scorer", "pretrain_teacher", "load_or_pretrain_teacher",
           "teacher_cache_path", "Teacher"]

Mode = Literal["swapping", "sharing", "mapping"]
MODES = get_args(Mode)


@dataclass(frozen=True)
class TeacherConfig(Config):
    """The teacher: its trainer settings, how KGs are linked, whose eval facts are excluded.

    The defaults are the quick preset (2 CPU cores: RotatE d=64, 8 epochs); ``paper`` is a
    d=512 teacher for a GPU.
    """

    train: TrainConfig = field(default_factory=lambda: TrainConfig.quick(
        dim=64, lr=0.03, batch_size=2048, epochs=8, eval_every=2, patience=2))
    mode: Mode = "swapping"
    align_weight: float = 1.0
    exclude: tuple[str, ...] | None = None  # None: every KG (a teacher for every target)
    valid_sample: int = 300  # validation triples per KG for epoch selection

    @classmethod
    def quick(cls, **overrides) -> "TeacherConfig":
        return replace(cls(), **overrides)

    @classmethod
    def paper(cls, **overrides) -> "TeacherConfig":
        return replace(cls(train=TrainConfig.paper(dim=512), valid_sample=2000), **overrides)


@dataclass
class JointGraph:
    """Several KGs in one entity space.

    Attributes:
        ids: KG name -> array mapping its local entity ids to joint ids.
        n_entities: size of the joint entity table.
        triples: training triples in joint ids (bridges included for swapping).
        kg_triples: KG name -> its leak-free train triples, local ids (for subgraphs).
        links: training links as joint-id pairs.
        removed: KG name -> triples removed as leakage.
    """

    mode: str
    ids: dict[str, np.ndarray]
    n_entities: int
    n_relations: int
    triples: np.ndarray
    kg_triples: dict[str, np.ndarray]
    links: np.ndarray
    removed: dict[str, int]
    n_bridges: int = 0


def swap_triples(triples: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Copies of ``triples`` with a linked entity put in place of its partner (head or tail).

    ``pairs`` are (x, y) links used in both directions. Returns only the new triples.
    """
    if len(pairs) == 0 or len(triples) == 0:
        return np.zeros((0, 3), dtype=np.int64)
    both = pd.DataFrame(np.concatenate([pairs, pairs[:, ::-1]]), columns=["x", "y"])
    frame = pd.DataFrame(triples, columns=["h", "r", "t"])
    heads = frame.merge(both, left_on="h", right_on="x")[["y", "r", "t"]].to_numpy()
    tails = frame.merge(both, left_on="t", right_on="x")[["h", "r", "y"]].to_numpy()
    return np.concatenate([heads, tails]).astype(np.int64)


def build_joint(ms: MultiSourceKG, *, mode: str = "swapping", kgs: list[str] | None = None,
                exclude: tuple[str, ...] | list[str] | None = None) -> JointGraph:
    """The joint training graph of ``kgs`` (default all), leak-free against ``exclude``."""
    if mode not in MODES:
        raise ConfigError(f"mode={mode!r} is not allowed; choose one of {', '.join(MODES)}.")
    kgs = list(kgs or ms.kgs)
    exclude = list(ms.kgs if exclude is None else exclude)
    kg_triples, removed = {}, {}
    for name in kgs:
        kg_triples[name], removed[name] = leak_free_triples(ms, name, ms.kgs[name].train,
                                                            exclude)
    offsets, total = entity_offsets(ms, kgs)
    ids = {name: offsets[name] + np.arange(ms.kgs[name].n_entities) for name in kgs}
    links = [np.stack([ids[a][p[:, 0]], ids[b][p[:, 1]]], 1)
             for (a, b), p in ms.links.items() if a in ids and b in ids and len(p)]
    links = np.concatenate(links) if links else np.zeros((0, 2), np.int64)
    if mode == "sharing":  # one id per linked group, compacted
        _, compact = np.unique(linked_roots(total, links), return_inverse=True)
        ids = {name: compact[ids[name]] for name in kgs}
        total = int(compact.max()) + 1
        links = np.zeros((0, 2), np.int64)
    triples = np.concatenate([np.stack([ids[n][t[:, 0]], t[:, 1], ids[n][t[:, 2]]], 1)
                              for n, t in kg_triples.items()])
    n_bridges = 0
    if mode == "swapping":
        bridges = swap_triples(triples, links)
        triples = np.unique(np.concatenate([triples, bridges]), axis=0)
        n_bridges = len(triples) - sum(len(t) for t in kg_triples.values())
    else:
        triples = np.unique(triples, axis=0)
    return JointGraph(mode, ids, total, ms.n_relations, triples, kg_triples, links, removed,
                      n_bridges)


class AlignmentLoss(nn.Module):
    """``weight * mean ||e_a - e_b||^2`` over a random batch of links (the *mapping* mode)."""

    def __init__(self, links: np.ndarray, weight: float = 1.0, batch: int = 1024):
        super().__init__()
        self.register_buffer("links", torch.as_tensor(links, dtype=torch.long))
        self.weight, self.batch = weight, batch

    def forward(self, model, h, r, t, neg, q, logits):
        pick = torch.randint(0, len(self.links), (min(self.batch, len(self.links)),),
                             device=self.links.device)
        a, b = self.links[pick, 0], self.links[pick, 1]
        loss = ((model.embed(a) - model.embed(b)) ** 2).sum(-1).mean()
        return self.weight * loss, {"align": loss.detach()}


def kg_scorer(model: KGEModel, ids: np.ndarray):
    """``(h_local, r) -> scores over the KG's entities`` for a model in a joint space."""
    ids_t = torch.as_tensor(ids, dtype=torch.long)

    def score(h: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        device = model.entity.weight.device
        ids_on = ids_t.to(device)
        return model.score_query(model.query(ids_on[h.to(device)], r), ids_on)
    return score


@dataclass
class Teacher:
    """A trained teacher with its joint graph and training record."""

    model: KGEModel
    joint: JointGraph
    config: TeacherConfig
    seconds: float
    history: pd.DataFrame
    best_epoch: int
    cached: bool = False


def pretrain_teacher(ms: MultiSourceKG, config: TeacherConfig | None = None, *,
                     progress: bool = True, joint: JointGraph | None = None,
                     select_on: list[str] | None = None) -> Teacher:
    """Build the joint graph and train the teacher on it (epoch chosen on mean valid MRR of
    the KGs in ``select_on``, default all)."""
    config = config or TeacherConfig.quick()
    joint = joint or build_joint(ms, mode=config.mode, exclude=config.exclude)
    alignment = AlignmentLoss(joint.links, config.align_weight) if config.mode == "mapping" \
        else None
    result: TrainResult = train_kge(
        joint.triples, joint.n_entities, ms.n_relations, config.train, extra_loss=alignment,
        valid_mrr=validation_mrr(ms, {name: partial(kg_scorer, ids=joint.ids[name])
                                      for name in select_on or joint.ids},
                                 sample=config.valid_sample, seed=config.train.seed),
        progress=progress, desc="teacher")
    return Teacher(result.model, joint, config, result.seconds, result.history,
                   result.best_step)


#: Bump when what a stored teacher means changes (training code, file layout): old entries are
#: then never read again.
TEACHER_FORMAT = 2


def teacher_cache_path(ms: MultiSourceKG, config: TeacherConfig) -> Path:
    """Where the teacher of ``ms`` and ``config`` is kept: the key hashes the config, the
    format version and every triple and link, so any change trains a new one."""
    return cache_dir() / "derived" / "kg" / f"teacher-{_teacher_key(ms, config)}.pt"


def _teacher_key(ms: MultiSourceKG, config: TeacherConfig) -> str:
    digest = hashlib.sha256(json.dumps({"format": TEACHER_FORMAT, **asdict(config)},
                                       sort_keys=True, default=str).encode())
    digest.update(ms.name.encode())
    for name, kg in ms.kgs.items():
        digest.update(name.encode())
        for part in (kg.train, kg.valid, kg.test):
            digest.update(np.ascontiguousarray(part).tobytes())
    for key in sorted(ms.links):
        digest.update(repr(key).encode() + np.ascontiguousarray(ms.links[key]).tobytes())
    return digest.hexdigest()[:20]


def load_or_pretrain_teacher(ms: MultiSourceKG, config: TeacherConfig | None = None, *,
                             progress: bool = True, use_cache: bool = True) -> Teacher:
    """The teacher for ``ms`` and ``config``: from the cache when it was trained before (its
    training time is the recorded one), else trained now and stored."""
    config = config or TeacherConfig.quick()
    path = teacher_cache_path(ms, config)
    joint = build_joint(ms, mode=config.mode, exclude=config.exclude)
    with lock(path.name):
        if use_cache and path.exists():
            try:  # tensors and plain values only: a planted pickle never runs
                stored = torch.load(path, map_location="cpu", weights_only=True)
                model = build_model(config.train, joint.n_entities, ms.n_relations,
                                    joint.triples)
                model.load_state_dict(stored["state"])
                model.eval()
                return Teacher(model, joint, config, stored["seconds"],
                               pd.DataFrame(stored["history"]), stored["best_epoch"], True)
            except Exception:  # noqa: BLE001 - any unreadable entry is replaced, never trusted
                path.unlink(missing_ok=True)
        teacher = pretrain_teacher(ms, config, progress=progress, joint=joint)
        with atomic_file(path) as tmp:
            torch.save({"state": teacher.model.state_dict(), "seconds": teacher.seconds,
                        "history": teacher.history.to_dict("list"),
                        "best_epoch": teacher.best_epoch}, tmp)
    return teacher
