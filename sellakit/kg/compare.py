"""The comparison on one target KG, in one of two settings, every row at every seed.

**Settings** (:data:`SETTINGS`): ``new-kg``, the paper's: the teacher is pre-trained on the
other KGs only and the target arrives afterwards with its links; ``all-kgs``: a reused teacher
that has trained on every KG (the target's training facts included), with its J1 row.

Every model follows one data rule (:mod:`sellakit.kg.protocol`), is selected on the target's
fixed selection facts and scored on its test facts once (filtered, tails, realistic ranks;
per-query ranks kept for paired statistics). The rows (:data:`METHODS`):

* **J2**: a teacher-size joint model retrained on every KG, the target included, from scratch;
* **J2 warm**: the same, started from the teacher's rows (unseen target entities: the mean of
  their neighbours' rows, :func:`sellakit.kg.distill.teacher_rows`);
* **scratch**: the student's architecture on the target's own training facts;
* **KD**: the student on the linked subgraph, warm-started from the teacher, with KD at the
  fixed temperature (:mod:`sellakit.kg.distill`); **no KD**: the same without KD (KD apart
  from the warm start); **KD cold**: KD without the warm start.

Times are wall seconds end to end at the thread count in force, by phase: graph building, the
teacher's views and the warm start (``precompute``), training and validation apart, with
seconds per epoch and epochs run. A temperature search, when asked for, is counted in KD's time.

**Cache.** Each seed of each row is kept in the kit's cache (a sealed entry keyed by the data,
the rule, the target, the row, the seed, both configs, the teacher's key, the subgraph's seed
and the devices): its JSON row, its per-query test ranks and, for :data:`KEPT_MODELS`, the
model's state. A row read from the cache reports the times recorded when it was trained, as the
cached teacher does; ``use_cache=False`` trains every row again (the benchmarks do, so their
times are measured). Temperature searches and ablations always train.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import ClassVar, Literal, get_args

import numpy as np
import torch
from tqdm.auto import tqdm

from sellakit.cache import cached_state
from sellakit.config import Config, bounded, pick_device
from sellakit.errors import CacheError, ConfigError
from sellakit.kg.data import MultiSourceKG
from sellakit.kg.distill import KD_TERMS, Distiller, KDConfig, warm_start
from sellakit.kg.evaluate import validation_mrr
from sellakit.kg.models import KGEModel
from sellakit.kg.pretrain import (AlignmentLoss, JointGraph, Teacher, TeacherConfig, build_joint,
                                  data_key, kg_scorer, score_test)
from sellakit.kg.protocol import DataRule
from sellakit.kg.subgraph import LinkedSubgraph, build_linked_subgraph
from sellakit.kg.train import TrainConfig, build_model, train_kge
from sellakit.selection import TrainResult
from sellakit.stats import seed_query_bootstrap, verdict

__all__ = ["StudentConfig", "Fitted", "SeedRun", "KEPT_MODELS", "train_scratch",
           "train_student", "train_j2", "filtered_test_metrics", "compare_on_target",
           "ablation_configs", "kd_comparisons", "METRICS", "SETTINGS", "SETTING_NAMES",
           "Setting", "resolve_setting", "teacher_kgs", "METHODS", "Method", "COMPARISONS"]

METRICS = ("mrr", "hits@1", "hits@3", "hits@10")

SettingName = Literal["new-kg", "all-kgs"]


@dataclass(frozen=True)
class Setting:
    """One setting of the comparison: whether the teacher has trained on the target."""

    name: SettingName
    teacher_sees_target: bool
    help: str


#: The settings, the paper's first (CLI ``--setting`` choices come from here).
SETTINGS: tuple[Setting, ...] = (
    Setting("new-kg", False, "the paper's: the teacher is pre-trained on the other KGs only; "
            "the target arrives afterwards with its links"),
    Setting("all-kgs", True, "a reused teacher pre-trained on every KG, the target's training "
            "facts included (with its J1 row)"),
)
SETTING_NAMES: tuple[str, ...] = tuple(s.name for s in SETTINGS)
assert SETTING_NAMES == get_args(SettingName)


def resolve_setting(name: str) -> Setting:
    """The row of :data:`SETTINGS` called ``name`` (a :class:`ConfigError` naming the choices
    otherwise)."""
    for setting in SETTINGS:
        if setting.name == name:
            return setting
    raise ConfigError(f"setting={name!r} is not known; choose one of "
                      f"{', '.join(s.name for s in SETTINGS)}.")


def teacher_kgs(ms: MultiSourceKG, setting: Setting, target: str) -> tuple[str, ...] | None:
    """The KGs the teacher of ``setting`` trains on for ``target`` (None: every KG)."""
    return None if setting.teacher_sees_target else tuple(k for k in ms.kgs if k != target)


@dataclass(frozen=True)
class Method:
    """One row of the comparison: which trainer, from the teacher's rows or not, with KD or
    not."""

    name: str
    label: str
    trainer: Literal["j2", "scratch", "student"]
    warm_start: bool = False
    kd: bool = False


#: Every row of the comparison, each trained at every seed.
METHODS: tuple[Method, ...] = (
    Method("j2", "J2 (joint retrain with the target, scratch)", "j2"),
    Method("j2_warm", "J2 warm-started from the teacher", "j2", warm_start=True),
    Method("scratch", "scratch (target only)", "scratch"),
    Method("kd", "student + KD (warm start)", "student", warm_start=True, kd=True),
    Method("no_kd", "student, no KD (warm start only)", "student", warm_start=True),
    Method("kd_cold", "student + KD, no warm start", "student", kd=True),
)

#: The paired differences every benchmark reports (left minus right, MRR). ``no_kd - j2``:
#: how far the warm start alone is from the joint retrain, where KD lowers the student.
COMPARISONS: tuple[tuple[str, str], ...] = (
    ("kd", "j2"), ("kd", "j2_warm"), ("kd", "scratch"), ("kd", "no_kd"), ("kd", "kd_cold"),
    ("no_kd", "scratch"), ("no_kd", "j2"), ("kd_cold", "scratch"), ("j2_warm", "j2"), ("kd", "j1"),
    ("kd", "teacher"))


@dataclass(frozen=True)
class StudentConfig(Config):
    """The student (half the teacher's width), its subgraph, its start and its KD terms."""

    PRESETS: ClassVar[tuple[str, ...]] = ("quick", "paper")

    # J2's batch (4,096): the student's epoch costs what J2's does per triple; with half the
    # steps an epoch of the 2,048 batch, scratch on el needs more than 100 epochs to stop
    train: TrainConfig = field(default_factory=lambda: TrainConfig.quick(
        dim=32, lr=0.02, batch_size=4096, epochs=200, eval_every=2, patience=3))
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
        """The JSON row: test metrics, seconds (end to end and by phase, training apart from
        validation), seconds per training epoch, epochs run, best and maximum epoch, selection
        MRR, training triples."""
        history = self.result.history
        phases = {k: v for k, v in self.seconds.items() if k != "train"}
        if "train_seconds" in history:
            phases["epochs"] = float(history["train_seconds"].sum())
            phases["validation"] = float(history.get("valid_seconds", history["epoch"] * 0
                                                     ).fillna(0).sum())
        return {**{k: round(self.test[k], 4) for k in METRICS}, "n": self.test["n"],
                "seconds": round(sum(self.seconds.values()), 2),
                "phases": {k: round(v, 2) for k, v in phases.items()},
                "seconds_per_epoch": round(float(history["train_seconds"].mean()), 3)
                if "train_seconds" in history else None,
                "epochs": int(len(history)),
                "best_epoch": self.result.best_step,
                "max_epochs": self.result.config.epochs,
                "valid_mrr": round(self.result.best_valid.get("mrr", float("nan")), 4),
                "triples": self.result.n_train}


#: The rows whose first seed's model :func:`compare_on_target` returns (``"_models"``); the
#: cache keeps these rows' model states (at every seed), the others' metrics and ranks only.
KEPT_MODELS: tuple[str, ...] = ("kd", "scratch")
#: Bump when what a stored row means changes (training, scoring, the row's fields): old
#: entries are then never read again.
ROW_FORMAT = 1


@dataclass
class SeedRun:
    """One seed of one row as the comparison keeps it: the JSON row (:meth:`Fitted.row`), the
    per-query test ranks and, for :data:`KEPT_MODELS`, the trained model (else None)."""

    seed: int
    row: dict
    ranks: np.ndarray
    model: KGEModel | None = None


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
    ``config.warm_start``) and distilled with the terms of ``config.kd`` (none: plain). Its
    initial tables come from torch's global generator as the caller left it, as
    :func:`train_j2`'s."""
    started = time.perf_counter()
    sub = subgraph or student_subgraph(ms, rule, target, teacher, config)
    seconds = {"build": build_seconds if subgraph else time.perf_counter() - started}
    started = time.perf_counter()
    model = build_model(config.train, sub.n_entities, ms.n_relations, sub.triples)
    coords = warm_start(model, teacher.model, sub.teacher_ids, sub.triples) \
        if config.warm_start else None
    distiller = None
    if config.kd.any:
        distiller = Distiller(teacher.model, sub.teacher_ids, model.width, config.kd,
                              graph=sub.triples, banned=rule.banned_keys((target,)),
                              canon=sub.canonical(rule.canon), coords=coords)
    seconds["precompute"] = time.perf_counter() - started
    n = ms.kgs[target].n_entities
    result = train_kge(sub.triples, sub.n_entities, ms.n_relations, config.train,
                       extra_loss=distiller, model=model,
                       valid_mrr=validation_mrr(ms, {target: own_scorer(n)}, rule.selection),
                       progress=progress, desc=f"student {target}")
    seconds["train"] = result.seconds
    return Fitted(result, score_test(ms, target, own_scorer(n)(result.model)), seconds), sub


def student_subgraph(ms: MultiSourceKG, rule: DataRule, target: str, teacher: Teacher,
                     config: StudentConfig) -> LinkedSubgraph:
    """The linked subgraph of ``config`` around ``target`` in ``teacher``'s graph."""
    return build_linked_subgraph(ms, rule, teacher.joint, target, fanout=config.fanout,
                                 link_mode=config.link_mode, predicted=config.predicted_links,
                                 teacher=teacher.model, seed=config.train.seed)


def joint_teacher_ids(joint: JointGraph, teacher: JointGraph) -> np.ndarray:
    """Each entity of ``joint`` -> its row in the teacher's graph (-1 where the teacher has
    none: a target it never saw, unless a link merged the entity with one it knows)."""
    out = np.full(joint.n_entities, -1, np.int64)
    for name, ids in teacher.ids.items():
        out[joint.ids[name]] = ids
    return out


def train_j2(ms: MultiSourceKG, rule: DataRule, target: str, config: TeacherConfig, *,
             teacher: Teacher | None = None, progress: bool = True) -> Fitted:
    """J2: a teacher-size joint model retrained on all KGs with only the target protected,
    selected on the target's selection facts; warm-started from ``teacher`` when given (its
    rows; unseen entities from their neighbours', :func:`~sellakit.kg.distill.warm_start`).

    The model's initial tables are drawn from torch's global generator as the caller left it
    (training seeds only afterwards): seed it first for a row that depends on nothing else
    (:func:`sellakit.benchmarks.kg_sweeps.kg_sweep` does, before each point)."""
    started = time.perf_counter()
    joint = build_joint(ms, rule, mode=config.mode, protect=(target,))
    ids = joint.ids[target]
    built = time.perf_counter() - started
    started = time.perf_counter()
    model = build_model(config.train, joint.n_entities, ms.n_relations, joint.triples)
    if teacher is not None:
        warm_start(model, teacher.model, joint_teacher_ids(joint, teacher.joint), joint.triples)
    alignment = AlignmentLoss(joint.links, config.align_weight) if config.mode == "mapping" \
        else None
    warm = time.perf_counter() - started
    result = train_kge(joint.triples, joint.n_entities, ms.n_relations, config.train,
                       extra_loss=alignment, model=model,
                       valid_mrr=validation_mrr(ms, {target: lambda m: kg_scorer(m, ids)},
                                                rule.selection),
                       progress=progress, desc=f"J2 {target}" + (" warm" if teacher else ""))
    return Fitted(result, score_test(ms, target, kg_scorer(result.model, ids)),
                  {"build": built, "precompute": warm, "train": result.seconds})


def _with_seed(config: StudentConfig, seed: int, **kd) -> StudentConfig:
    return replace(config, train=replace(config.train, seed=seed), kd=replace(config.kd, **kd))


def _seeded_row(runs: list[SeedRun]) -> dict:
    """Seed means of the rows (metrics, seconds, phases, seconds per epoch, epochs), the MRR's
    SD over seeds, and each seed's MRR, epochs and seconds."""
    rows = [run.row for run in runs]

    def mean(values):
        return round(float(np.mean(values)), 4)
    out = {k: mean([r[k] for r in rows]) for k in METRICS}
    out.update({k: rows[0][k] for k in ("n", "max_epochs")},
               triples=int(np.mean([r["triples"] for r in rows])),
               seconds=round(float(np.mean([r["seconds"] for r in rows])), 2),
               phases={k: round(float(np.mean([r["phases"].get(k, 0) for r in rows])), 2)
                       for k in rows[0]["phases"]},
               seconds_per_epoch=mean([r["seconds_per_epoch"] for r in rows]),
               epochs=mean([r["epochs"] for r in rows]),
               best_epoch=max(r["best_epoch"] for r in rows),
               valid_mrr=mean([r["valid_mrr"] for r in rows]),
               sd_mrr=round(float(np.std([r["mrr"] for r in rows], ddof=1)), 4)
               if len(rows) > 1 else None,
               seeds=[{"seed": run.seed, "mrr": r["mrr"], "epochs": r["epochs"],
                       "best_epoch": r["best_epoch"], "seconds": r["seconds"]}
                      for run, r in zip(runs, rows)])
    return out


def compare_on_target(ms: MultiSourceKG, rule: DataRule, target: str, teacher: Teacher,
                      student: StudentConfig, teacher_cfg: TeacherConfig, *,
                      seeds: tuple[int, ...] = (2025,), temperatures: tuple[float, ...] = (),
                      methods: tuple[str, ...] | None = None,
                      ablations: bool | tuple[str, ...] = False, progress: bool = True,
                      use_cache: bool = True) -> dict:
    """Every row of :data:`METHODS` (or those named in ``methods``) on ``target`` at every
    seed, with the teacher's own and J1 rows where it has trained on the target; JSON-ready
    but for ``"_ranks"`` (per-query ranks, {method: [per seed]}) and ``"_models"`` (the first
    seed's models of :data:`KEPT_MODELS`), which a caller pops. ``temperatures``: a search on
    the selection facts (first seed), its time counted in KD's; empty: the fixed temperature.
    ``ablations``: True for every one of :func:`ablation_configs` (first seed), or some names.
    ``use_cache``: read each seed of each row from the kit's cache when it was trained before
    (its recorded times; see the module docstring); False: train every row again (and replace
    its entry), as the benchmarks do."""
    if not seeds:
        raise ConfigError("seeds=() trains nothing; pass at least one seed.")
    chosen = [m for m in METHODS if methods is None or m.name in methods]
    out: dict = {"target": target, "dataset": ms.name,
                 "teacher_saw_target": target in teacher.joint.ids}
    ranks: dict[str, list[np.ndarray]] = {}
    if out["teacher_saw_target"]:
        _teacher_rows(ms, target, teacher, out, ranks)
    sub, built = None, 0.0
    if ablations or temperatures or any(m.trainer == "student" for m in chosen):
        started = time.perf_counter()
        sub = student_subgraph(ms, rule, target, teacher, _with_seed(student, seeds[0]))
        built = time.perf_counter() - started
        out["subgraph"] = sub.summary()
    if temperatures:
        tau, out["temperature"] = _temperature_search(ms, rule, target, teacher, student,
                                                      seeds[0], temperatures, sub, built,
                                                      progress)
        student = replace(student, kd=replace(student.kd, temperature=tau))
    models, runs = {}, {}
    shared = _rows_key(ms, rule, target, teacher, student, teacher_cfg, seeds[0])
    for method, seed in tqdm([(m, s) for m in chosen for s in seeds], disable=not progress,
                             desc=f"rows {target}"):
        runs.setdefault(method.name, []).append(_cached_run(
            method, seed, shared, ms, rule, target, teacher, student, teacher_cfg, sub, built,
            progress, use_cache))
    for name, fitted in runs.items():
        out[name], ranks[name] = _seeded_row(fitted), [r.ranks for r in fitted]
        models[name] = fitted[0].model
    if temperatures and "kd" in out:  # the search is part of KD's cost
        out["kd"]["seconds"] = round(out["kd"]["seconds"] + out["temperature"]["seconds"], 2)
        out["kd"]["phases"]["temperature_search"] = out["temperature"]["seconds"]
    if ablations:
        out["ablations"] = _ablations(ms, rule, target, teacher, _with_seed(student, seeds[0]),
                                      ablations, sub, built, ranks, progress)
    if "j2" in out:
        out["joint"] = out["j2"]  # the key earlier readers know
    out["_ranks"] = ranks
    out["_models"] = {k: models[k] for k in KEPT_MODELS if k in models}
    return out


def _rows_key(ms, rule, target, teacher, student, teacher_cfg, subgraph_seed) -> str:
    """What every row's cache key of one call shares: the data and rule (hashed as the
    teacher's key hashes them), the target, both configs, the teacher, the seed the subgraph
    is drawn with (every seed's student trains on the first seed's), the devices, the format."""
    return data_key(ms, rule, {
        "format": ROW_FORMAT, "target": target, "student": asdict(student),
        "teacher_config": asdict(teacher_cfg), "teacher": teacher_fingerprint(teacher),
        "subgraph_seed": subgraph_seed,
        "devices": [str(pick_device(c.device)) for c in (student.train, teacher_cfg.train)]})


def teacher_fingerprint(teacher: Teacher) -> str:
    """The teacher's cache key, or, for one trained outside the cache, a digest of its state
    and graph (what a row trained from it reads)."""
    if teacher.key:
        return teacher.key
    digest = hashlib.sha256()
    for name, tensor in teacher.model.state_dict().items():
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}{tensor.dtype}{tuple(tensor.shape)}".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    digest.update(np.ascontiguousarray(teacher.joint.triples).tobytes())
    for name in sorted(teacher.joint.ids):
        digest.update(name.encode() + np.ascontiguousarray(teacher.joint.ids[name]).tobytes())
    return digest.hexdigest()[:20]


def _cached_run(method: Method, seed: int, shared: str, ms, rule, target, teacher, student,
                teacher_cfg, sub, built, progress, use_cache) -> SeedRun:
    """One seed of one row: from the cache when it was trained before (the times recorded
    then; a kept model rebuilt strictly, where a fresh one would be), else trained now and
    stored."""
    keep = method.name in KEPT_MODELS
    fresh: list[SeedRun] = []

    def compute() -> dict:
        fitted = _fit(method, ms, rule, target, teacher, student, teacher_cfg, seed, sub,
                      built, progress)
        fresh.append(SeedRun(seed, fitted.row(), fitted.test["ranks"],
                             fitted.result.model if keep else None))
        stored = {"seed": seed, "row": fresh[0].row, "ranks": torch.from_numpy(fresh[0].ranks)}
        return stored | ({"state": fitted.result.model.state_dict()} if keep else {})

    def restore(stored: dict) -> SeedRun:
        if stored["seed"] != seed or len(stored["ranks"]) != stored["row"]["n"]:
            raise CacheError(f"it holds seed {stored['seed']} with {len(stored['ranks'])} "
                             f"ranks, not seed {seed} with {stored['row']['n']}")
        model = _model_from_state(method, ms, rule, target, _with_seed(student, seed), sub,
                                  stored["state"]) if keep else None
        return SeedRun(seed, stored["row"], stored["ranks"].numpy(), model)

    name = hashlib.sha256(json.dumps([shared, asdict(method), seed]).encode()).hexdigest()[:20]
    restored, _ = cached_state("kg", f"row-{method.name}-{seed}-{name}", compute,
                               restore=restore, refresh=not use_cache)
    return fresh[0] if fresh else restored


def _model_from_state(method: Method, ms, rule, target, config: StudentConfig,
                      sub: LinkedSubgraph | None, state: dict) -> KGEModel:
    """A kept row's model (scratch or student) built as its trainer builds it, ``state``
    loaded strictly (every name and shape must match), on the device it trained on."""
    if method.trainer == "scratch":
        triples, n = rule.training(target, (target,))[0], ms.kgs[target].n_entities
    elif method.trainer == "student" and sub is not None:
        triples, n = sub.triples, sub.n_entities
    else:
        raise CacheError(f"the row {method.name!r} keeps no model of a student or scratch")
    model = build_model(config.train, n, ms.n_relations, triples)
    model.load_state_dict(state)
    return model.to(pick_device(config.train.device)).eval()


def _teacher_rows(ms, target, teacher, out, ranks) -> None:
    """The teacher's own row and J1 (the same run selected on the target) into ``out``."""
    tm = score_test(ms, target, kg_scorer(teacher.model, teacher.joint.ids[target]))
    ranks["teacher"] = [tm.pop("ranks")]
    out["teacher"] = {k: round(tm[k], 4) for k in METRICS} | {
        "n": tm["n"], "best_epoch": teacher.best_epoch, "max_epochs": teacher.max_epochs}
    j1 = teacher.j1[target]
    ranks["j1"] = [j1["metrics"]["ranks"]]
    out["j1"] = {k: j1["metrics"][k] for k in METRICS} | {
        "n": j1["metrics"]["n"], "best_epoch": j1["best_epoch"], "seconds": teacher.seconds,
        "max_epochs": teacher.max_epochs}


def _fit(method: Method, ms, rule, target, teacher, student, teacher_cfg, seed, sub, built,
         progress) -> Fitted:
    """One seed of one row of :data:`METHODS`."""
    if method.trainer == "j2":
        cfg = replace(teacher_cfg, train=replace(teacher_cfg.train, seed=seed))
        return train_j2(ms, rule, target, cfg, teacher=teacher if method.warm_start else None,
                        progress=progress)
    config = _with_seed(student, seed)
    if method.trainer == "scratch":
        return train_scratch(ms, rule, target, config, progress=progress)
    config = replace(config, warm_start=method.warm_start,
                     kd=config.kd if method.kd else KDConfig(feature=False, network=False,
                                                             prediction=False))
    return train_student(ms, rule, target, teacher, config, subgraph=sub, build_seconds=built,
                         progress=progress)[0]


def _temperature_search(ms, rule, target, teacher, student, seed, temperatures, sub, built,
                        progress) -> tuple[float, dict]:
    """The temperature with the best selection MRR (first seed) and the search's record."""
    tried = {tau: train_student(ms, rule, target, teacher, _with_seed(student, seed,
                                                                     temperature=tau),
                                subgraph=sub, build_seconds=built, progress=progress)[0]
             for tau in temperatures}
    best = max(tried, key=lambda tau: tried[tau].result.best_valid["mrr"])
    return best, {"chosen": best, "valid_mrr": {str(t): round(r.result.best_valid["mrr"], 4)
                                                for t, r in tried.items()},
                  "seconds": round(sum(sum(r.seconds.values()) for r in tried.values()), 2)}


def _ablations(ms, rule, target, teacher, chosen, names, sub, built, ranks, progress) -> dict:
    """One run (first seed) of each of :func:`ablation_configs` (``names``: True for all)."""
    out = {}
    for name, config in ablation_configs(chosen).items():
        if names is not True and name not in names:
            continue
        run, _ = train_student(ms, rule, target, teacher, config, progress=progress,
                               subgraph=None if _new_graph(config, chosen) else sub,
                               build_seconds=built)
        out[name], ranks[name] = run.row(), [run.test["ranks"]]
    return out


def ablation_configs(chosen: StudentConfig) -> dict[str, StudentConfig]:
    """One change each from the chosen KD student: each KD term off (network only with an
    encoder), fan-out 0 and 1, the other way of joining links (no KD and no warm start are
    rows of :data:`METHODS`, at every seed)."""
    terms = [t for t in KD_TERMS if t != "network" or chosen.train.encoder != "none"]
    out = {f"-{term}": replace(chosen, kd=chosen.kd.without(term)) for term in terms}
    out["fan-out 0"] = replace(chosen, fanout=0)
    out["fan-out 1"] = replace(chosen, fanout=1)
    other = "swapping" if chosen.link_mode == "sharing" else "sharing"
    out[f"{other} links"] = replace(chosen, link_mode=other)
    return out


def _new_graph(config: StudentConfig, chosen: StudentConfig) -> bool:
    return (config.fanout, config.link_mode) != (chosen.fanout, chosen.link_mode)


def kd_comparisons(ranks: dict[str, list[np.ndarray]],
                   pairs: Sequence[tuple[str, str]] = COMPARISONS) -> dict:
    """Each of ``pairs`` (default :data:`COMPARISONS`) present in ``ranks``: the MRR
    difference with its two-level bootstrap interval (each side's seeds, then the queries;
    :func:`~sellakit.stats.seed_query_bootstrap`) and :func:`~sellakit.stats.verdict`
    (better: the left one's MRR is higher), as ``{"left - right": ...}``."""
    out = {}
    for left, right in pairs:
        if left in ranks and right in ranks:
            diff = seed_query_bootstrap(np.stack([1.0 / r for r in ranks[left]]),
                                        np.stack([1.0 / r for r in ranks[right]]))
            out[f"{left} - {right}"] = {k: round(v, 4) for k, v in diff.items()} | {
                "verdict": verdict(diff["lo"], diff["hi"])}
    return out
