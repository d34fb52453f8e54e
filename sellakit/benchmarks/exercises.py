"""The measured answers of the notebooks' exercises: ``bench/exercise_answers.json``.

An exercise that asks the reader to change a setting and run again has its answer measured
here, once, with the notebook's own calls and settings (quick mode, seed 2025), so that the
answer box quotes a number instead of a prediction; ``tests/test_exercises.py`` checks that
every number a box quotes is the file's. Each exercise is one row of :data:`EXERCISES`; a
finished one is written to the file at once (atomically) and skipped on a rerun, so a killed
run resumes::

    nice -n 5 python -m sellakit.benchmarks.exercises                 # every missing answer
    nice -n 5 python -m sellakit.benchmarks.exercises --only 04.1,04.2
    python -m sellakit.benchmarks.exercises --list                    # rows and their cost

Notebooks 06-07's rows need DBP-5L (``SELLAKIT_DBP5L`` or the cache); on the derived
stand-in they say so in their ``dataset`` field.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from sellakit.cache import atomic_file
from sellakit.config import repo_root
from sellakit.errors import ConfigError

__all__ = ["Exercise", "EXERCISES", "DEFAULT_OUT", "SEED", "run_exercises", "read_answers",
           "main"]

SEED = 2025
#: Where the answers go (committed; the boxes quote it).
DEFAULT_OUT = Path("bench") / "exercise_answers.json"


# --- 03: the LLM's item space -------------------------------------------------------------

def _genre_agreement(semantic: np.ndarray, genres) -> dict:
    """Notebook 03's rate: how often an item's nearest other item (cosine) shares a genre,
    against a random item (the notebook's first draw of its seeded generator)."""
    items = np.arange(1, len(semantic))
    unit = semantic[1:] / np.linalg.norm(semantic[1:], axis=1, keepdims=True)
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    nearest = sims.argmax(1) + 1
    random_pick = np.random.default_rng(SEED).choice(items, len(items))

    def rate(pairs) -> float:
        return float(np.mean([bool(set(genres[a]) & set(genres[b])) for a, b in pairs]))

    return {"genre_agreement_nearest": rate(zip(items, nearest)),
            "genre_agreement_random": rate(zip(items, random_pick))}


def _llm_template(template: str, model: str = "smollm2-135m") -> Callable[[], dict]:
    def measure() -> dict:
        from sellakit.data import collm_split, load_movielens_1m
        from sellakit.llm import item_semantic_embeddings, load_backbone

        split = collm_split(load_movielens_1m())
        backbone = load_backbone(model)
        out = {"model": backbone.name, "template": template}
        for name, text in (("notebook_template", "Movie: {title}"), ("exercise", template)):
            semantic = item_semantic_embeddings(backbone, split.item_titles, template=text,
                                                cpu_bf16=True)  # as the quick notebook
            out[name] = _genre_agreement(semantic, split.item_genres)
        return out
    return measure


# --- 04: the aligned MF --------------------------------------------------------------------

def _ml1m_items():
    """The ML-1M split, SmolLM2 and its item states under notebooks 03-05's template."""
    from sellakit.data import collm_split, load_movielens_1m
    from sellakit.llm import item_semantic_embeddings, load_backbone

    split = collm_split(load_movielens_1m())
    backbone = load_backbone("smollm2-135m")
    return split, backbone, item_semantic_embeddings(backbone, split.item_titles,
                                                     template="Movie: {title}", cpu_bf16=True)


def _align_04(split, semantic: np.ndarray, **overrides):
    """Notebook 04's quick alignment (temperature 0.2, patience 20) with ``overrides``:
    :func:`~sellakit.align.compare_alignment`'s plain MF, aligned MF and record (cached)."""
    from sellakit.align import AlignConfig, compare_alignment

    config = AlignConfig.preset("quick", **{"seed": SEED, "temperature": 0.2, "patience": 20,
                                             **overrides})
    return compare_alignment(split, semantic, config, use_cache=True, progress=False)


def _alignment(**overrides) -> Callable[[], dict]:
    """Notebook 04's quick alignment with ``overrides``; its measures."""
    def measure() -> dict:
        import torch

        split, _, semantic = _ml1m_items()
        plain, aligned, result = _align_04(split, semantic, **overrides)
        with torch.no_grad():
            norm = aligned.model.item_embedding.weight.norm(dim=1).mean().item()
        keys = ("recall@10", "cka", "mutual_knn@10", "alignment", "uniformity")
        return {"overrides": overrides, "best_epoch": result["best_epoch"],
                "after": {k: result["after"][k] for k in keys},
                "aligned_valid_auc": result["aligned"]["valid"]["auc"],
                "aligned_test_auc": result["aligned"]["test"]["auc"],
                "plain_test_auc": result["plain"]["test"]["auc"],
                "plain_best_epoch": plain.best_step,
                "mean_item_norm": norm, "seconds": result["seconds"]}
    return measure


def _alignment_pair(name: str, values: Sequence) -> Callable[[], dict]:
    """One alignment per value of the setting ``name`` (the notebook's value is 04's run)."""
    def measure() -> dict:
        return {str(v): _alignment(**{name: v})() for v in values}
    return measure


# --- 05: the slots' scale ------------------------------------------------------------------

def _unscaled_slots() -> dict:
    """Notebook 05's quick SeLLa-Rec (04's alignment, the same rows and stage 1) with its slots
    scaled and with ``normalize_slots=False``: the user slot's norm at the start of stage 3 and
    the best validation AUC of each."""
    from sellakit.rec import NOTEBOOK_QUICK_ROWS, RecConfig, prepare_stage2, run_methods

    split, backbone, semantic = _ml1m_items()
    aligned = _align_04(split, semantic)[1].tables()
    plain_mf, _ = prepare_stage2(split, preset="quick", seed=SEED, use_cache=True)
    config = RecConfig.preset("quick", seed=SEED, **NOTEBOOK_QUICK_ROWS)
    common = dict(plain_mf=plain_mf, aligned=aligned, semantic=semantic, backbone=backbone,
                  use_cache=True, cache_scores=True, progress=False)
    scaled = run_methods(split, ["sella"], config, **common)
    raw = run_methods(split, ["sella"], replace(config, normalize_slots=False),
                      stage1_from=scaled, **common)
    return {"model": backbone.name, "rows": {k: len(v) for k, v in scaled.rows.items()}, **{
        label: {"start_norm_user": float(run.training["sella"].history.norm_user.iloc[0]),
                "best_valid_auc": float(run.training["sella"].best_valid["auc"])}
        for label, run in (("scaled", scaled), ("raw", raw))}}


# --- 06-07: the KG teacher and student -----------------------------------------------------

def _teacher(mode: str = "sharing", encoder: str = "none"):
    """Notebook 06's quick teacher in ``mode`` with ``encoder`` (cached like 06's)."""
    from sellakit.kg import TeacherConfig, data_rule, load_multisource, load_or_pretrain_teacher

    ms = load_multisource(None)
    rule = data_rule(ms)
    config = TeacherConfig.preset("quick", mode=mode)
    if encoder != "none":
        config = replace(config, train=replace(config.train, encoder=encoder))
    return ms, rule, config, load_or_pretrain_teacher(ms, rule, config, progress=False)


def _teacher_answer(mode: str = "sharing", encoder: str = "none") -> dict:
    """Graph size, time, epochs, per-graph test MRR and the unlinked copies' alignment."""
    from sellakit.benchmarks.kg import teacher_record
    from sellakit.kg import alignment_hits, filtered_test_metrics, kg_scorer, unlinked_pairs

    ms, _, _, teacher = _teacher(mode, encoder)
    epochs = int(teacher.history["epoch"].max())
    pair, hidden = next(iter(unlinked_pairs(ms).items()))
    unlinked = alignment_hits(teacher.model, teacher.joint, pair, hidden)
    test_mrr = {lang: filtered_test_metrics(ms, lang, kg_scorer(
        teacher.model, teacher.joint.ids[lang]))["mrr"] for lang in ms.kgs}
    return {"dataset": ms.name, "mode": mode, "encoder": encoder,
            **teacher_record(teacher), "epochs_trained": epochs,
            "seconds_per_epoch": teacher.seconds / max(epochs, 1),
            "test_mrr": test_mrr, "unlinked_hits@1": unlinked["hits@1"],
            "unlinked_n": unlinked["n"]}


def _teachers(*modes: str, encoder: str = "none") -> Callable[[], dict]:
    def measure() -> dict:
        return {mode: _teacher_answer(mode, encoder) for mode in modes}
    return measure


def _gnn_student() -> dict:
    """Notebook 07's quick comparison (all-kgs, first graph) with a GNN encoder everywhere,
    and the student with each KD term off (the ``-network`` row appears with an encoder)."""
    from sellakit.benchmarks.kg import long_ranks
    from sellakit.kg import StudentConfig, compare_on_target

    out = {"teacher": _teacher_answer("sharing", "gnn")}
    ms, rule, teacher_cfg, teacher = _teacher("sharing", "gnn")
    target = next(iter(ms.kgs))
    student = StudentConfig.preset("quick")
    student = replace(student, train=replace(student.train, encoder="gnn"))
    terms = tuple(name for name in _ablation_names(student) if name.startswith("-"))
    result = compare_on_target(ms, rule, target, teacher, student, teacher_cfg, seeds=(SEED,),
                               methods=("scratch", "kd", "no_kd"), ablations=terms,
                               progress=False, use_cache=False)
    out["target"] = target
    out["rows"] = {name: result[name]["mrr"] for name in ("scratch", "kd", "no_kd")}
    out["ablations"] = {name: row["mrr"] for name, row in result.get("ablations", {}).items()}
    out["paired"] = _paired_mrr(result["_ranks"], [("kd", "no_kd"), ("kd", "scratch"),
                                                   *(("kd", name) for name in terms)])
    out["_ranks"] = long_ranks(target, result["_ranks"], SEED)
    return out


def _paired_mrr(ranks: dict, pairs: Sequence[tuple[str, str]]) -> dict:
    """``{"<left>_vs_<right>": ...}``: :func:`~sellakit.kg.compare.kd_comparisons` of
    ``pairs``, keyed so that an answer box can quote a path into them."""
    from sellakit.kg.compare import kd_comparisons

    return {key.replace(" - ", "_vs_", 1): row
            for key, row in kd_comparisons(ranks, pairs).items()}


def _fanouts(*fanouts: int) -> Callable[[], dict]:
    """Notebook 07's quick KD student (all-kgs teacher, first graph) at each fan-out."""
    def measure() -> dict:
        from sellakit.kg import StudentConfig, compare_on_target

        ms, rule, teacher_cfg, teacher = _teacher("sharing")
        target, out = next(iter(ms.kgs)), {}
        for fanout in fanouts:
            student = replace(StudentConfig.preset("quick"), fanout=fanout)
            result = compare_on_target(ms, rule, target, teacher, student, teacher_cfg,
                                       seeds=(SEED,), methods=("kd",), progress=False,
                                       use_cache=False)  # its seconds are measured
            out[str(fanout)] = {"triples": result["subgraph"]["triples"],
                                "mrr": result["kd"]["mrr"], "seconds": result["kd"]["seconds"]}
        return {"dataset": ms.name, "target": target, "fanout": out}
    return measure


def _ablation_names(student) -> list[str]:
    from sellakit.kg.compare import ablation_configs

    return list(ablation_configs(student))


@dataclass(frozen=True)
class Exercise:
    """One measured exercise: its notebook, what it changes, its measurement and its cost
    (minutes on 2 idle CPU cores, from an empty cache of its own models; the KG rows' are
    estimates from the stand-in, where a GNN epoch took about eight times a shallow one; 07.5
    counts 06.4's teacher as cached)."""

    notebook: str
    change: str
    measure: Callable[[], dict]
    minutes: float


#: Notebook number.exercise number -> :class:`Exercise`.
EXERCISES: dict[str, Exercise] = {
    "03.1": Exercise("03_llm_semantic_embeddings", 'TEMPLATE = "A movie called {title}. It is '
                     'about"', _llm_template("A movie called {title}. It is about"), 3),
    "04.1": Exercise("04_semantic_alignment", "TEMPERATURE = 0.05 and 1.0",
                     _alignment_pair("temperature", (0.05, 1.0)), 5),
    "04.2": Exercise("04_semantic_alignment", "train_semantic=False",
                     _alignment_pair("train_semantic", (False,)), 3),
    "07.1": Exercise("07_kg_distillation", "FANOUT = 1, 5 and 10 (the KD student)",
                     _fanouts(1, 5, 10), 4),
    "06.2": Exercise("06_kg_multisource_pretraining", 'MODE = "sharing", "mapping"',
                     _teachers("sharing", "mapping"), 6),
    "04.4": Exercise("04_semantic_alignment", "weight_decay = 0 and 1e-3",
                     _alignment_pair("weight_decay", (0.0, 1e-3)), 5),
    "06.4": Exercise("06_kg_multisource_pretraining", 'encoder="gnn"',
                     _teachers("sharing", encoder="gnn"), 60),
    "07.5": Exercise("07_kg_distillation", 'encoder="gnn" for teacher and student, KD terms off',
                     _gnn_student, 45),
    "06.1": Exercise("06_kg_multisource_pretraining", 'MODE = "swapping"',
                     _teachers("swapping"), 60),
    "05.3": Exercise("05_special_tokens_prompting", "normalize_slots=False", _unscaled_slots,
                     4),
}


def read_answers(path: str | Path = DEFAULT_OUT) -> dict:
    """The answers written so far (``{}`` when none)."""
    path = Path(path) if Path(path).is_absolute() else repo_root() / path
    return json.loads(path.read_text()) if path.exists() else {}


def run_exercises(names: Sequence[str] | None = None, out: str | Path = DEFAULT_OUT, *,
                  again: bool = False) -> dict:
    """Measure each exercise in ``names`` (all by default) not yet in ``out`` (``again``: every
    one named), writing the file after each; return the file's content."""
    unknown = sorted(set(names or ()) - set(EXERCISES))
    if unknown:
        raise ConfigError(f"No exercise {', '.join(unknown)}. Known: {', '.join(EXERCISES)} "
                          "(python -m sellakit.benchmarks.exercises --list).")
    path = Path(out) if Path(out).is_absolute() else repo_root() / out
    answers = read_answers(path)
    for name in names or EXERCISES:
        if name in answers and not again:
            continue
        started = time.perf_counter()
        print(f"[sellakit] exercise {name}: {EXERCISES[name].change} ...", flush=True)
        answer = EXERCISES[name].measure()
        ranks = answer.pop("_ranks", None)
        if ranks is not None:  # written first: the answer must not outlive its ranks
            _save_ranks(path.with_suffix(".ranks.parquet"), name, ranks)
        answers[name] = {**answer, "notebook": EXERCISES[name].notebook,
                         "change": EXERCISES[name].change,
                         "run_seconds": round(time.perf_counter() - started, 1)}
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path) as tmp:
            tmp.write_text(json.dumps(dict(sorted(answers.items())), indent=1,
                                      default=float) + "\n")
        print(f"[sellakit]   done in {answers[name]['run_seconds']} s", flush=True)
    return answers


def _save_ranks(path: Path, name: str, ranks: pd.DataFrame) -> None:
    """Replace exercise ``name``'s per-query reciprocal ranks in ``path`` (one long table,
    an ``exercise`` column beside :func:`~sellakit.benchmarks.kg.long_ranks`'), atomically."""
    kept = pd.read_parquet(path) if path.exists() else None
    if kept is not None:
        kept = kept[kept.exercise != name]
    fresh = pd.concat([k for k in (kept, ranks.assign(exercise=name)) if k is not None],
                      ignore_index=True)
    with atomic_file(path) as tmp:
        fresh.to_parquet(tmp, index=False)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sellakit.benchmarks.exercises",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="comma-separated exercises (default: every missing one)")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="the answers file")
    parser.add_argument("--again", action="store_true", help="measure the named ones again")
    parser.add_argument("--list", action="store_true", help="list the exercises and stop")
    args = parser.parse_args(argv)
    if args.list:
        for name, row in EXERCISES.items():
            print(f"{name}  {row.notebook}: {row.change} (~{row.minutes:g} min)")
        return 0
    run_exercises(args.only.split(",") if args.only else None, args.out, again=args.again)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
