"""The comparison on one target KG: scratch, J1, J2, the student with KD, and its ablations.

Every model follows one data rule (:mod:`sellakit.kg.protocol`), is selected on the target's
fixed selection facts and scored on its test facts once (filtered, tails, realistic ranks;
per-query ranks kept for paired statistics). The models:

* **teacher**: the reused teacher as it is (selected on the mean over the KGs);
* **J1**: a joint model on the teacher's data selected on the target (from the teacher's run);
* **J2**: a teacher-size joint model retrained on everything but the target's held-out facts;
* **scratch**: the student's architecture on the target's own training facts;
* **KD**: the student on the linked subgraph, warm-started from the teacher, with KD; its
  temperature chosen on the selection facts among :data:`sellakit.kg.distill.TEMPERATURES`.

Times are wall seconds end to end at the thread count in force: graph building, the teacher's
precomputed targets, training and validation.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import ClassVar

import numpy as np

from sellakit.config import Config, bounded
from sellakit.errors import ConfigError
from sellakit.kg.data import MultiSourceKG
from sellakit.kg.distill import KD_TERMS, TEMPERATURES, Distiller, KDConfig, warm_start
from sellakit.kg.evaluate import validation_mrr
from sellakit.kg.pretrain import (AlignmentLoss, Teacher, TeacherConfig, build_joint, kg_scorer,
                                  score_test)
from sellakit.kg.protocol import DataRule
from sellakit.kg.subgraph import LinkedSubgraph, build_linked_subgraph
from sellakit.kg.train import TrainConfig, build_model, train_kge
from sellakit.selection import TrainResult
from sellakit.stats import paired_bootstrap, verdict

__all__ = ["StudentConfig", "Fitted", "train_scratch", "train_student", "train_j2",
           "filtered_test_metrics", "compare_on_target", "ablation_configs", "kd_comparisons",
           "METRICS"]

METRICS = ("mrr", "hits@1", "hits@3", "hits@10")


@dataclass(frozen=True)
class StudentConfig(Config):
    """The student (half the teacher's width), its subgraph, its start and its KD terms."""

    PRESETS: ClassVar[tuple[str, ...]] = ("quick", "paper")

    train: TrainConfig = field(default_factory=lambda: TrainConfig.quick(
        dim=32, lr=0.02, batch_size=2048, epochs=100, eval_every=2, patience=3))
    kd: KDConfig = field(default_factory=KDConfig)
    fanout: int = bounded(5, at_least=0)
    link_mode: str = "sharing"
    warm_start: bool = True
    predicted_links: bool = False

    @classmethod
    def quick(cls, **overrides) -> "StudentConfig":
        return replace(cls(), **overrides)

    @classmethod
    def paper(cls, **overrides) -> "StudentConfig":
        return replace(cls(train=TrainConfig.paper(dim=128), fanout=50), **overrides)


@dataclass
class Fitted:
    """One trained model of the comparison: its training record, test metrics (with
    per-query ``ranks``) and end-to-end seconds by phase."""

    result: TrainResult
    test: dict
    seconds: dict = field(default_factory=dict)

    def row(self) -> dict:
        """The JSON row: test metrics, seconds, best and maximum epoch, selection MRR."""
        return {**{k: round(self.test[k], 4) for k in METRICS}, "n": self.test["n"],
                "seconds": round(sum(self.seconds.values()), 2),
                "best_epoch": self.result.best_step,
                "max_epochs": self.result.config.epochs,
                "valid_mrr": round(self.result.best_valid.get("mrr", float("nan")), 4),
                "triples": self.result.n_train}


def own_scorer(n_entities: int):
    """``model -> score_tails`` over the target's own ``n_entities`` (a model trained in the
    target's ids: scratch, student)."""
    return lambda model: (lambda h, r: model.score_tails(h, r, n_entities))


def filtered_test_metrics(ms: MultiSourceKG, target: str, scorer) -> dict:
    """Filtered test metrics of one scorer on the target (tails), rounded, without ranks."""
    out = score_test(ms, target, scorer)
    out.pop("ranks")
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}


def train_scratch(ms: MultiSourceKG, rule: DataRule, target: str, config: StudentConfig, *,
                  progress: bool = True) -> Fitted:
    """The student's architecture trained on the target's own training facts."""
    started = time.perf_counter()
    triples, _ = rule.training(target, (target,))
    n = ms.kgs[target].n_entities
    built = time.perf_counter() - started
    result = train_kge(triples, n, ms.n_relations, config.train,
                       valid_mrr=validation_mrr(ms, {target: own_scorer(n)}, rule.selection),
                       progress=progress, desc=f"scratch {target}")
    return Fitted(result, score_test(ms, target, own_scorer(n)(result.model)),
                  {"build": built, "train": result.seconds})


def train_student(ms: MultiSourceKG, rule: DataRule, target: str, teacher: Teacher,
                  config: StudentConfig, *, subgraph: LinkedSubgraph | None = None,
                  build_seconds: float = 0.0, progress: bool = True
                  ) -> tuple[Fitted, LinkedSubgraph]:
    """The student on the linked subgraph: warm-started from the teacher (when
    ``config.warm_start``) and distilled with the terms of ``config.kd`` (none: plain)."""
    started = time.perf_counter()
    sub = subgraph or build_linked_subgraph(ms, rule, teacher.joint, target,
                                            fanout=config.fanout, link_mode=config.link_mode,
                                            predicted=config.predicted_links,
                                            teacher=teacher.model, seed=config.train.seed)
    seconds = {"build": build_seconds if subgraph else time.perf_counter() - started}
    started = time.perf_counter()
    model = build_model(config.train, sub.n_entities, ms.n_relations, sub.triples)
    coords = warm_start(model, teacher.model, sub.teacher_ids) if config.warm_start else None
    distiller = None
    if config.kd.any:
        distiller = Distiller(teacher.model, sub.teacher_ids, model.width, config.kd,
                              queries=sub.triples, n_target=sub.n_target_entities,
                              banned=rule.banned_keys((target,)),
                              canon=rule.canon[target], coords=coords)
    seconds["precompute"] = time.perf_counter() - started
    n = ms.kgs[target].n_entities
    result = train_kge(sub.triples, sub.n_entities, ms.n_relations, config.train,
                       extra_loss=distiller, model=model,
                       valid_mrr=validation_mrr(ms, {target: own_scorer(n)}, rule.selection),
                       progress=progress, desc=f"student {target}")
    seconds["train"] = result.seconds
    return Fitted(result, score_test(ms, target, own_scorer(n)(result.model)), seconds), sub


def train_j2(ms: MultiSourceKG, rule: DataRule, target: str, config: TeacherConfig, *,
             progress: bool = True) -> Fitted:
    """J2: a teacher-size joint model retrained on all KGs with only the target protected,
    selected on the target's selection facts."""
    started = time.perf_counter()
    joint = build_joint(ms, rule, mode=config.mode, protect=(target,))
    ids = joint.ids[target]
    built = time.perf_counter() - started
    alignment = AlignmentLoss(joint.links, config.align_weight) if config.mode == "mapping" \
        else None
    result = train_kge(joint.triples, joint.n_entities, ms.n_relations, config.train,
                       extra_loss=alignment,
                       valid_mrr=validation_mrr(ms, {target: lambda m: kg_scorer(m, ids)},
                                                rule.selection),
                       progress=progress, desc=f"J2 {target}")
    return Fitted(result, score_test(ms, target, kg_scorer(result.model, ids)),
                  {"build": built, "train": result.seconds})


def _with_seed(config: StudentConfig, seed: int, **kd) -> StudentConfig:
    return replace(config, train=replace(config.train, seed=seed), kd=replace(config.kd, **kd))


def _seeded_row(runs: list[Fitted]) -> dict:
    """Seed means of the rows, their SD, and each seed's MRR, epoch and seconds."""
    rows = [run.row() for run in runs]
    out = {k: round(float(np.mean([r[k] for r in rows])), 4) for k in METRICS}
    out.update({k: rows[0][k] for k in ("n", "max_epochs", "triples")},
               seconds=round(float(np.mean([r["seconds"] for r in rows])), 2),
               best_epoch=max(r["best_epoch"] for r in rows),
               valid_mrr=round(float(np.mean([r["valid_mrr"] for r in rows])), 4),
               sd_mrr=round(float(np.std([r["mrr"] for r in rows], ddof=1)), 4)
               if len(rows) > 1 else None,
               seeds=[{"seed": run.result.seed, "mrr": r["mrr"], "best_epoch": r["best_epoch"],
                       "seconds": r["seconds"]} for run, r in zip(runs, rows)])
    return out


def compare_on_target(ms: MultiSourceKG, rule: DataRule, target: str, teacher: Teacher,
                      student: StudentConfig, teacher_cfg: TeacherConfig, *,
                      seeds: tuple[int, ...] = (2025,), temperatures=TEMPERATURES,
                      j2: bool = True, j2_seeds: int = 1,
                      ablations: bool | tuple[str, ...] = True, progress: bool = True) -> dict:
    """Every model of the comparison on ``target`` (see the module docstring); JSON-ready
    but for ``"_ranks"`` (per-query ranks, {method: [per seed]}) and ``"_models"`` (the first
    seed's KD and scratch models), which a caller pops. ``ablations``: True for every one of
    :func:`ablation_configs`, or the names of some."""
    if not seeds:
        raise ConfigError("seeds=() trains nothing; pass at least one seed.")
    out: dict = {"target": target, "dataset": ms.name}
    ranks: dict[str, list[np.ndarray]] = {}
    tm = score_test(ms, target, kg_scorer(teacher.model, teacher.joint.ids[target]))
    ranks["teacher"] = [tm.pop("ranks")]
    out["teacher"] = {k: round(tm[k], 4) for k in METRICS} | {
        "n": tm["n"], "best_epoch": teacher.best_epoch, "max_epochs": teacher.max_epochs}
    j1 = teacher.j1[target]
    ranks["j1"] = [j1["metrics"]["ranks"]]
    out["j1"] = {k: j1["metrics"][k] for k in METRICS} | {
        "n": j1["metrics"]["n"], "best_epoch": j1["best_epoch"], "seconds": teacher.seconds,
        "max_epochs": teacher.max_epochs}
    kd_runs, sub, grid = _student_seeds(ms, rule, target, teacher, student, seeds,
                                        temperatures, progress)
    out["temperature"] = grid
    out["kd"], ranks["kd"] = _seeded_row(kd_runs), [r.test["ranks"] for r in kd_runs]
    out["subgraph"] = sub.summary()
    scratch = [train_scratch(ms, rule, target, _with_seed(student, s), progress=progress)
               for s in seeds]
    out["scratch"], ranks["scratch"] = _seeded_row(scratch), [r.test["ranks"] for r in scratch]
    if ablations:
        out["ablations"] = {}
        chosen = _with_seed(student, seeds[0], temperature=grid["chosen"])
        for name, config in ablation_configs(chosen).items():
            if ablations is not True and name not in ablations:
                continue
            run, _ = train_student(ms, rule, target, teacher, config, progress=progress,
                                   subgraph=None if _new_graph(config, chosen) else sub,
                                   build_seconds=kd_runs[0].seconds["build"])
            out["ablations"][name], ranks[name] = run.row(), [run.test["ranks"]]
    if j2:
        runs = [train_j2(ms, rule, target, replace(teacher_cfg, train=replace(
            teacher_cfg.train, seed=s)), progress=progress) for s in seeds[:j2_seeds]]
        out["j2"], ranks["j2"] = _seeded_row(runs), [r.test["ranks"] for r in runs]
        out["joint"] = out["j2"]  # the key earlier readers know
    out["_ranks"] = ranks
    out["_models"] = {"kd": kd_runs[0].result.model, "scratch": scratch[0].result.model}
    return out


def _student_seeds(ms, rule, target, teacher, student, seeds, temperatures, progress):
    """The temperature chosen on the selection facts with the first seed, then the other
    seeds at that temperature. Returns the KD runs, the subgraph and the grid."""
    started = time.perf_counter()
    sub = build_linked_subgraph(ms, rule, teacher.joint, target, fanout=student.fanout,
                                link_mode=student.link_mode, predicted=student.predicted_links,
                                teacher=teacher.model, seed=seeds[0])
    built = time.perf_counter() - started
    tried = {}
    for tau in temperatures:
        tried[tau], _ = train_student(ms, rule, target, teacher,
                                      _with_seed(student, seeds[0], temperature=tau),
                                      subgraph=sub, build_seconds=built, progress=progress)
    best = max(tried, key=lambda tau: tried[tau].result.best_valid["mrr"])
    runs = [tried[best]] + [train_student(ms, rule, target, teacher,
                                          _with_seed(student, s, temperature=best),
                                          subgraph=sub, build_seconds=built,
                                          progress=progress)[0] for s in seeds[1:]]
    grid = {"chosen": best, "valid_mrr": {str(t): round(r.result.best_valid["mrr"], 4)
                                          for t, r in tried.items()},
            "seconds": round(sum(sum(r.seconds.values()) for r in tried.values()), 2)}
    return runs, sub, grid


def ablation_configs(chosen: StudentConfig) -> dict[str, StudentConfig]:
    """One change each from the chosen KD student: each KD term off (network only with an
    encoder), no KD, no warm start, fan-out 0 and 1, the other way of joining links."""
    terms = [t for t in KD_TERMS if t != "network" or chosen.train.encoder != "none"]
    out = {f"-{term}": replace(chosen, kd=chosen.kd.without(term)) for term in terms}
    out["no KD (subgraph, warm start)"] = replace(chosen, kd=KDConfig(
        feature=False, network=False, prediction=False))
    out["no warm start"] = replace(chosen, warm_start=False)
    out["fan-out 0"] = replace(chosen, fanout=0)
    out["fan-out 1"] = replace(chosen, fanout=1)
    other = "swapping" if chosen.link_mode == "sharing" else "sharing"
    out[f"{other} links"] = replace(chosen, link_mode=other)
    return out


def _new_graph(config: StudentConfig, chosen: StudentConfig) -> bool:
    return (config.fanout, config.link_mode) != (chosen.fanout, chosen.link_mode)


def kd_comparisons(ranks: dict[str, list[np.ndarray]]) -> dict:
    """KD against each baseline: paired bootstrap over test queries of the MRR difference
    (each query's reciprocal rank averaged over the seeds of each side), with its
    :func:`~sellakit.stats.verdict` (better: KD's MRR is higher)."""
    kd = np.stack([1.0 / r for r in ranks["kd"]])
    out = {}
    for base in ("j2", "scratch", "j1", "teacher"):
        if base in ranks:
            diff = paired_bootstrap(None, kd, np.stack([1.0 / r for r in ranks[base]]),
                                    metric="mean")
            out[f"kd - {base}"] = {k: round(v, 4) for k, v in diff.items()} | {
                "verdict": verdict(diff["lo"], diff["hi"])}
    return out
