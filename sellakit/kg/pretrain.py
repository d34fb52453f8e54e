"""Joint pre-training of the teacher over several KGs linked by their alignment.

:func:`build_joint` puts the KGs into one entity space and links them in one of three ways
(the muKG/OpenEA modes):

* ``swapping`` (default): ids stay separate; for every training link (a, b), each triple with a
  as head or tail is copied with b in its place, and vice versa (bridging triples);
* ``sharing``: linked entities (joined transitively) become one id;
* ``mapping``: ids stay separate and a loss ``align_weight * ||e_a - e_b||^2`` pulls linked
  entities together.

No leakage: each KG contributes its training facts under the kit's one data rule
(:class:`sellakit.kg.protocol.DataRule`: train plus the valid facts outside the fixed selection
subset), minus every re-expression of a *protected* KG's test or selection facts. The teacher
protects every KG, so one teacher serves every target language (trained once, reused); the J2
baseline of a target protects that target only.

:func:`pretrain_teacher` trains the teacher (a larger :class:`KGEModel`) until the mean
selection MRR over the KGs stops improving (early stopping; the best epoch below the maximum is
what "converged" means here), and keeps, from the same run, each KG's own best state: the J1
baseline of that target (a joint model on the teacher's data, selected on the target), scored
on the target's test once. :func:`load_or_pretrain_teacher` keeps both in the cache keyed by
data, rule and config, so notebooks 06, 07 and the benchmark share one teacher.
"""

from __future__ import annotations

import hashlib
import json
from functools import partial
from pathlib import Path
from dataclasses import asdict, dataclass, field, replace
from typing import ClassVar, Literal, get_args

import numpy as np
import pandas as pd
import torch

from sellakit.cache import cache_dir, cached_state
from sellakit.config import Config, bounded, pick_device
from sellakit.errors import CacheError, ConfigError
from sellakit.kg.data import MultiSourceKG, entity_offsets, linked_roots
from sellakit.kg.evaluate import evaluate, validation_mrr
from sellakit.kg.models import KGEModel
from sellakit.kg.protocol import DataRule
from sellakit.kg.train import TrainConfig, build_model, train_kge
from sellakit.selection import ExtraLoss, TrainResult

__all__ = ["MODES", "TeacherConfig", "JointGraph", "build_joint", "swap_triples",
           "AlignmentLoss", "kg_scorer", "pretrain_teacher", "load_or_pretrain_teacher",
           "teacher_cache_path", "data_key", "Teacher", "score_test",
           "unlinked_pairs", "alignment_hits"]

Mode = Literal["swapping", "sharing", "mapping"]
MODES = get_args(Mode)


@dataclass(frozen=True)
class TeacherConfig(Config):
    """The teacher (and the joint baselines J1, J2): trainer settings and how KGs are linked.

    The defaults are the quick preset (2 CPU cores: RotatE d=64, at most 100 epochs, stopped
    after 3 checks without gain); ``paper`` is a d=512 teacher for a GPU.
    """

    PRESETS: ClassVar[tuple[str, ...]] = ("quick", "paper")

    train: TrainConfig = field(default_factory=lambda: TrainConfig.quick(
        dim=64, lr=0.02, batch_size=4096, epochs=100, eval_every=2, patience=3))
    mode: Mode = "sharing"
    align_weight: float = bounded(1.0, at_least=0)

    @classmethod
    def quick(cls, **overrides) -> "TeacherConfig":
        return replace(cls(), **overrides)

    @classmethod
    def paper(cls, **overrides) -> "TeacherConfig":
        return replace(cls(train=TrainConfig.paper(dim=512)), **overrides)


@dataclass
class JointGraph:
    """Several KGs in one entity space.

    Attributes:
        ids: KG name -> array mapping its local entity ids to joint ids.
        n_entities: size of the joint entity table.
        triples: training triples in joint ids (bridges included for swapping).
        kg_triples: KG name -> its leak-free training triples, local ids.
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


def build_joint(ms: MultiSourceKG, rule: DataRule, *, mode: str = "sharing",
                kgs: list[str] | None = None, protect: tuple[str, ...] | None = None
                ) -> JointGraph:
    """The joint training graph of ``kgs`` (default all) under ``rule``, free of every
    re-expression of the held-out facts of ``protect`` (None: every KG, the teacher's graph)."""
    if mode not in MODES:
        raise ConfigError(f"mode={mode!r} is not allowed; choose one of {', '.join(MODES)}.")
    kgs = list(kgs or ms.kgs)
    kg_triples, removed = {}, {}
    for name in kgs:
        kg_triples[name], removed[name] = rule.training(name, protect)
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


class AlignmentLoss(ExtraLoss):
    """``weight * mean ||e_a - e_b||^2`` over a random batch of links (the *mapping* mode), as
    :func:`~sellakit.kg.train.train_kge`'s ``extra_loss`` (no parameters of its own)."""

    def __init__(self, links: np.ndarray, weight: float = 1.0, batch: int = 1024):
        super().__init__()
        self.register_buffer("links", torch.as_tensor(links, dtype=torch.long))
        self.weight, self.batch = weight, batch

    def forward(self, model: KGEModel, batch: dict[str, torch.Tensor]
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
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
    """A trained teacher with its joint graph, training record and the J1 rows.

    Attributes:
        seconds: wall time of graph building and training (validation included).
        best_epoch: the epoch kept (mean selection MRR); ``max_epochs`` the cap. Converged
            means ``best_epoch < max_epochs``: training stopped on its own.
        j1: KG name -> {"metrics", "ranks", "best_epoch"}: the same run's best state on that
            KG's selection facts, scored once on its test facts (per-query ranks kept).
        key: its cache entry's key (:func:`teacher_cache_path`'s stem) when it came through
            :func:`load_or_pretrain_teacher`; what is trained from it is keyed by it.
    """

    model: KGEModel
    joint: JointGraph
    config: TeacherConfig
    rule: DataRule
    seconds: float
    history: pd.DataFrame
    best_epoch: int
    j1: dict[str, dict]
    cached: bool = False
    key: str | None = None

    @property
    def max_epochs(self) -> int:
        return self.config.train.epochs

    @property
    def converged(self) -> bool:
        return self.best_epoch < self.max_epochs


def score_test(ms: MultiSourceKG, target: str, score_tails) -> dict:
    """Filtered test metrics of one scorer on ``target`` (tails, realistic ranks), with the
    per-query ranks under ``"ranks"`` (the paired statistics read them)."""
    kg = ms.kgs[target]
    return evaluate(score_tails, kg.test, kg.all_triples(), n_candidates=kg.n_entities,
                    n_relations=ms.n_relations, return_ranks=True)


def pretrain_teacher(ms: MultiSourceKG, rule: DataRule, config: TeacherConfig | None = None,
                     *, kgs: tuple[str, ...] | None = None, progress: bool = True) -> Teacher:
    """Build the teacher's joint graph of ``kgs`` (None: every KG; the new-KG setting leaves
    the target out), every KG's held-out facts protected, and train it to convergence: the
    epoch with the best mean selection MRR over its KGs is kept. J1 comes from the same run
    (each KG's own best state, tested once)."""
    import time

    config = config or TeacherConfig.quick()
    started = time.perf_counter()
    joint = build_joint(ms, rule, mode=config.mode, kgs=None if kgs is None else list(kgs))
    alignment = AlignmentLoss(joint.links, config.align_weight) if config.mode == "mapping" \
        else None
    result: TrainResult = train_kge(
        joint.triples, joint.n_entities, ms.n_relations, config.train, extra_loss=alignment,
        valid_mrr=validation_mrr(ms, {name: partial(kg_scorer, ids=joint.ids[name])
                                      for name in joint.ids}, rule.selection),
        keep_each=True, progress=progress, desc="teacher")
    seconds = round(time.perf_counter() - started, 2)
    j1 = {}
    probe = build_model(config.train, joint.n_entities, ms.n_relations, joint.triples
                        ).to(result.model.entity.weight.device)  # J1 scored where it trained
    for name, selector in (result.per_name or {}).items():
        selector.restore(probe)
        probe.eval()
        j1[name] = {"metrics": _rounded(score_test(ms, name, kg_scorer(probe, joint.ids[name]))),
                    "best_epoch": selector.best_step}
    return Teacher(result.model, joint, config, rule, seconds, result.history,
                   result.best_step, j1)


def _rounded(metrics: dict) -> dict:
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in metrics.items()}


def unlinked_pairs(ms: MultiSourceKG, names: list[str] | None = None
                   ) -> dict[tuple[str, str], np.ndarray]:
    """Pairs known to be one entity that no chain of training links joins: held-out links and
    ``same_entities`` (DBP-5L's el/en line identity), both sides in some fact of their graph.
    The teacher was never told they match; whether it puts them together is a test of what it
    learned from structure."""
    offsets, total = entity_offsets(ms)
    linked = [np.stack([offsets[a] + p[:, 0], offsets[b] + p[:, 1]], 1)
              for (a, b), p in ms.links.items() if len(p)]
    roots = linked_roots(total, np.concatenate(linked) if linked else np.zeros((0, 2)))
    seen = {name: np.unique(kg.all_triples()[:, [0, 2]]) for name, kg in ms.kgs.items()}
    out = {}
    for table in (ms.heldout_links, ms.same_entities):
        for (a, b), pairs in table.items():
            if names is not None and not {a, b} <= set(names):
                continue
            keep = (roots[offsets[a] + pairs[:, 0]] != roots[offsets[b] + pairs[:, 1]]) \
                & np.isin(pairs[:, 0], seen[a]) & np.isin(pairs[:, 1], seen[b])
            if keep.any():
                out[(a, b)] = np.unique(pairs[keep], axis=0)
    return out


@torch.no_grad()
def alignment_hits(model: KGEModel, joint: JointGraph, pair: tuple[str, str],
                   pairs: np.ndarray, ks: tuple[int, ...] = (1, 10)) -> dict[str, float]:
    """Hits@k of entity alignment by cosine nearest neighbour in ``model``'s entity space:
    for each (x in graph a, y in graph b), is y among the k graph-b entities nearest to x?"""
    a, b = pair
    table = torch.nn.functional.normalize(model.entity_table().detach().cpu(), dim=1)
    sim = table[torch.as_tensor(joint.ids[a][pairs[:, 0]])] @ table[
        torch.as_tensor(joint.ids[b])].T
    true = sim[torch.arange(len(pairs)), torch.as_tensor(pairs[:, 1])]
    rank = 1 + (sim > true[:, None]).sum(1)
    return {f"hits@{k}": float((rank <= k).double().mean()) for k in ks} | {
        "n": int(len(pairs)), "chance@1": 1 / len(joint.ids[b])}


#: Bump when what a stored teacher means changes (training code, file layout): old entries are
#: then never read again.
TEACHER_FORMAT = 4


def teacher_cache_path(ms: MultiSourceKG, rule: DataRule, config: TeacherConfig,
                       kgs: tuple[str, ...] | None = None) -> Path:
    """Where the teacher of ``ms``, ``rule`` and ``config`` is kept: the key hashes the config,
    the format version, the selection subsets and every triple and link, so any change trains
    a new one. A teacher of some ``kgs`` only (the new-KG setting) hashes what it trains and is
    selected on instead (its graph, ids and those KGs' selection and test facts), so a change
    to the left-out target alone (a low-resource sweep) reuses it."""
    key = _teacher_key(ms, rule, config) if kgs is None else _subset_key(ms, rule, config, kgs)
    return cache_dir() / "derived" / "kg" / f"teacher-{key}.pt"


def _subset_key(ms: MultiSourceKG, rule: DataRule, config: TeacherConfig,
                kgs: tuple[str, ...]) -> str:
    joint = build_joint(ms, rule, mode=config.mode, kgs=list(kgs))
    digest = hashlib.sha256(json.dumps({"format": TEACHER_FORMAT, "kgs": sorted(kgs),
                                        **asdict(config)}, sort_keys=True, default=str).encode())
    digest.update(ms.name.encode() + np.ascontiguousarray(joint.triples).tobytes())
    for name in sorted(kgs):
        digest.update(name.encode() + np.ascontiguousarray(joint.ids[name]).tobytes())
        for part in (rule.selection[name], ms.kgs[name].all_triples()):
            digest.update(np.ascontiguousarray(part).tobytes())
    return digest.hexdigest()[:20]


def _teacher_key(ms: MultiSourceKG, rule: DataRule, config: TeacherConfig) -> str:
    return data_key(ms, rule, {"format": TEACHER_FORMAT, **asdict(config)})


def data_key(ms: MultiSourceKG, rule: DataRule, settings: dict) -> str:
    """A cache key of ``settings`` (JSON-able) and everything of ``ms`` and ``rule`` a model
    trained on them can read: the name, the rule's selection subsets, every KG's facts, the
    links and the known same entities."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    digest.update(ms.name.encode() + rule.fingerprint.encode())
    for name, kg in ms.kgs.items():
        digest.update(name.encode())
        for part in (kg.train, kg.valid, kg.test):
            digest.update(np.ascontiguousarray(part).tobytes())
    for table in (ms.links, ms.same_entities):
        for key in sorted(table):
            digest.update(repr(key).encode() + np.ascontiguousarray(table[key]).tobytes())
    return digest.hexdigest()[:20]


def load_or_pretrain_teacher(ms: MultiSourceKG, rule: DataRule,
                             config: TeacherConfig | None = None, *, progress: bool = True,
                             use_cache: bool = True, kgs: tuple[str, ...] | None = None
                             ) -> Teacher:
    """The teacher for ``ms``, ``rule`` and ``config`` (of ``kgs`` only when given): from the
    cache when it was trained before (its training time and J1 rows are the recorded ones),
    else trained now and stored."""
    config = config or TeacherConfig.quick()
    fresh: list[Teacher] = []
    names = None if kgs is None else list(kgs)

    def compute() -> dict:
        fresh.append(pretrain_teacher(ms, rule, config, kgs=kgs, progress=progress))
        teacher = fresh[0]
        j1 = {name: {**row, "metrics": {**row["metrics"],
                                        "ranks": torch.from_numpy(row["metrics"]["ranks"])}}
              for name, row in teacher.j1.items()}
        return {"state": teacher.model.state_dict(), "seconds": teacher.seconds,
                "history": teacher.history.to_dict("list"), "best_epoch": teacher.best_epoch,
                "j1": j1}

    def restore(stored: dict) -> Teacher:
        joint = build_joint(ms, rule, mode=config.mode, kgs=names)
        model = build_model(config.train, joint.n_entities, ms.n_relations, joint.triples)
        model.load_state_dict(stored["state"])  # strict: every name and shape must match
        model = model.to(pick_device(config.train.device)).eval()  # where a fresh one is
        selected = sorted(n for n in joint.ids if len(rule.selection[n]))  # J1 needs selection
        if sorted(stored["j1"]) != selected:
            raise CacheError(f"its J1 rows are for {sorted(stored['j1'])}, not {selected}")
        j1 = {name: {**row, "metrics": {**row["metrics"],
                                        "ranks": row["metrics"]["ranks"].numpy()}}
              for name, row in stored["j1"].items()}
        return Teacher(model, joint, config, rule, stored["seconds"],
                       pd.DataFrame(stored["history"]), stored["best_epoch"], j1, True)

    # The entry is teacher_cache_path(...): a sealed file, read with weights_only=True.
    key = teacher_cache_path(ms, rule, config, kgs).stem
    restored, _ = cached_state("kg", key, compute, restore=restore, refresh=not use_cache)
    teacher = fresh[0] if fresh else restored
    teacher.key = key
    return teacher
