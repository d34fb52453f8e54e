"""The comparison on one target KG: scratch, joint retrain, student with KD, KD ablations.

Every model is selected on the target's validation MRR (filtered, tails) and scored on its test
split once. Wall times are measured around each training call (validation included).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from sellakit.config import Config
from sellakit.kg.data import MultiSourceKG
from sellakit.kg.distill import KD_TERMS, Distiller, KDConfig
from sellakit.kg.evaluate import evaluate, validation_mrr
from sellakit.kg.pretrain import Teacher, TeacherConfig, build_joint, kg_scorer
from sellakit.kg.subgraph import LinkedSubgraph, build_linked_subgraph
from sellakit.kg.train import TrainConfig, train_kge
from sellakit.selection import TrainResult

__all__ = ["StudentConfig", "train_scratch", "train_student",
           "train_joint", "filtered_test_metrics", "compare_on_target"]


@dataclass(frozen=True)
class StudentConfig(Config):
    """The student (smaller than the teacher), its subgraph and its KD terms."""

    train: TrainConfig = field(default_factory=lambda: TrainConfig.quick(
        dim=32, lr=0.03, batch_size=1024, epochs=10, eval_every=2, patience=2))
    kd: KDConfig = field(default_factory=KDConfig)
    fanout: int = 5
    predicted_links: bool = False
    valid_sample: int = 1000

    @classmethod
    def quick(cls, **overrides) -> "StudentConfig":
        return replace(cls(), **overrides)

    @classmethod
    def paper(cls, **overrides) -> "StudentConfig":
        return replace(cls(train=TrainConfig.paper(dim=128), fanout=50, valid_sample=100_000),
                       **overrides)


def own_scorer(n_entities: int):
    """``model -> score_tails`` over the target's own ``n_entities`` (a model trained in the
    target's ids: scratch, student)."""
    return lambda model: (lambda h, r: model.score_tails(h, r, n_entities))


def filtered_test_metrics(ms: MultiSourceKG, target: str, scorer, *, both: bool = False
                          ) -> dict:
    """Filtered test metrics of one scorer on the target (tails; heads too when ``both``)."""
    kg = ms.kgs[target]
    out = evaluate(scorer, kg.test, kg.all_triples(), n_candidates=kg.n_entities,
                   n_relations=ms.n_relations, both=both)
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}


def train_scratch(ms: MultiSourceKG, target: str, config: StudentConfig, *,
                  progress: bool = True) -> TrainResult:
    """The student trained on the target's train split alone."""
    kg = ms.kgs[target]
    return train_kge(kg.train, kg.n_entities, ms.n_relations, config.train,
                     valid_mrr=validation_mrr(ms, {target: own_scorer(kg.n_entities)},
                                              sample=config.valid_sample,
                                              seed=config.train.seed),
                     progress=progress, desc=f"scratch {target}")


def train_student(ms: MultiSourceKG, target: str, teacher: Teacher, config: StudentConfig, *,
                  subgraph: LinkedSubgraph | None = None, progress: bool = True
                  ) -> tuple[TrainResult, LinkedSubgraph]:
    """The student on the linked subgraph with the KD terms of ``config.kd`` (none: plain)."""
    sub = subgraph or build_linked_subgraph(ms, teacher.joint, target, fanout=config.fanout,
                                            predicted=config.predicted_links,
                                            teacher=teacher.model, seed=config.train.seed)
    width = config.train.dim * (1 if config.train.model == "transe" else 2)
    distiller = Distiller(teacher.model, sub.teacher_ids, width, config.kd) if config.kd.any \
        else None
    n = ms.kgs[target].n_entities
    result = train_kge(sub.triples, sub.n_entities, ms.n_relations, config.train,
                       extra_loss=distiller,
                       valid_mrr=validation_mrr(ms, {target: own_scorer(n)},
                                                sample=config.valid_sample,
                                                seed=config.train.seed),
                       progress=progress, desc=f"student {target}")
    return result, sub


def train_joint(ms: MultiSourceKG, target: str, config: TeacherConfig, *,
                progress: bool = True) -> tuple[TrainResult, np.ndarray]:
    """A teacher-size model retrained on all KGs (leak-free against the target only), selected
    on the target's validation MRR. Returns the result and the target's ids in its space."""
    joint = build_joint(ms, mode=config.mode, exclude=(target,))
    ids = joint.ids[target]
    from sellakit.kg.pretrain import AlignmentLoss

    alignment = AlignmentLoss(joint.links, config.align_weight) if config.mode == "mapping" \
        else None
    result = train_kge(joint.triples, joint.n_entities, ms.n_relations, config.train,
                       extra_loss=alignment,
                       valid_mrr=validation_mrr(ms, {target: lambda m: kg_scorer(m, ids)},
                                                sample=config.valid_sample,
                                                seed=config.train.seed),
                       progress=progress, desc=f"joint {target}")
    return result, ids


def _comparison_row(result: TrainResult, metrics: dict) -> dict:
    return {**{k: metrics[k] for k in ("mrr", "hits@1", "hits@3", "hits@10", "n")},
            "seconds": result.seconds, "best_epoch": result.best_step,
            "valid_mrr": round(result.best_valid["mrr"], 4), "triples": result.n_train}


def compare_on_target(ms: MultiSourceKG, target: str, teacher: Teacher,
                      student: StudentConfig, teacher_cfg: TeacherConfig, *,
                      joint: bool = True, ablations: bool = True, progress: bool = True
                      ) -> dict:
    """Scratch, joint, KD and ablations on ``target``; JSON-ready results."""
    out: dict = {"target": target, "dataset": ms.name}
    tm = filtered_test_metrics(ms, target,
                               kg_scorer(teacher.model, teacher.joint.ids[target]))
    out["teacher"] = {k: tm[k] for k in ("mrr", "hits@1", "hits@3", "hits@10", "n")}
    scratch = train_scratch(ms, target, student, progress=progress)
    n = ms.kgs[target].n_entities
    out["scratch"] = _comparison_row(scratch, filtered_test_metrics(ms, target,
                                                                    own_scorer(n)(scratch.model)))
    kd, sub = train_student(ms, target, teacher, student, progress=progress)
    out["kd"] = _comparison_row(kd, filtered_test_metrics(ms, target, own_scorer(n)(kd.model)))
    out["subgraph"] = sub.summary()
    models = {"scratch": scratch, "kd": kd}
    if ablations:
        out["ablations"] = {}
        variants = {f"-{term}": replace(student, kd=student.kd.without(term))
                    for term in KD_TERMS}
        variants["no KD (subgraph only)"] = replace(
            student, kd=KDConfig(feature=False, network=False, prediction=False))
        for name, config in variants.items():
            result, _ = train_student(ms, target, teacher, config, subgraph=sub,
                                      progress=progress)
            out["ablations"][name] = _comparison_row(result, filtered_test_metrics(ms, target,
                                                               own_scorer(n)(result.model)))
            models[name] = result
    if joint:
        result, ids = train_joint(ms, target, teacher_cfg, progress=progress)
        out["joint"] = _comparison_row(result, filtered_test_metrics(ms, target,
                                                          kg_scorer(result.model, ids)))
        models["joint"] = result
    out["_models"] = models  # dropped before writing JSON
    return out
