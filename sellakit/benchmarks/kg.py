"""``sellakit bench kg`` and ``sellakit bench kg-eval``: JSON results plus markdown tables.

Published DBP-5L rows (tail-only, target-KG candidates, %; reprinted in DMKGC/IMKGC Table 1,
see research/dbp5l_anchors.md) stand beside ours, labelled *published*. Their filter settings
differ from ours (we filter train + valid + test tails of the target), so they are context, not
a like-for-like comparison.
"""

from __future__ import annotations

import time
from dataclasses import asdict

import numpy as np
import torch

from sellakit.benchmarks.report import markdown_table
from sellakit.kg import (MultiSourceKG, StudentConfig, TeacherConfig, compare_on_target,
                         evaluate, load_or_pretrain_teacher)
from sellakit.kg.evaluate import rotate_tail_scorer
from sellakit.published import published

__all__ = ["kg_benchmark", "kg_markdown", "kg_eval_benchmark", "kg_eval_markdown"]


def kg_benchmark(ms: MultiSourceKG, targets: list[str], *, preset: str = "quick",
                 seed: int = 2025, model: str = "rotate", encoder: str = "none",
                 progress: bool = True) -> dict:
    """Teacher once, then scratch / joint / KD / ablations per target. JSON-ready.

    ``model`` and ``encoder`` (:class:`sellakit.kg.train.TrainConfig`) apply to every model of
    the comparison: teacher, joint retrain, scratch and students."""
    from dataclasses import replace

    arch = dict(seed=seed, model=model, encoder=encoder)
    tcfg = TeacherConfig.preset(preset)
    tcfg = replace(tcfg, train=replace(tcfg.train, **arch))
    scfg = StudentConfig.preset(preset)
    scfg = replace(scfg, train=replace(scfg.train, **arch))
    teacher = load_or_pretrain_teacher(ms, tcfg, progress=progress)
    per_target = {}
    for target in targets:
        result = compare_on_target(ms, target, teacher, scfg, tcfg, progress=progress)
        result.pop("_models")
        per_target[target] = result
    meta = {"dataset": ms.name, "preset": preset, "seed": seed,
            "teacher_seconds": teacher.seconds, "teacher_cached": teacher.cached,
            "teacher_config": {"model": tcfg.train.model, "encoder": tcfg.train.encoder,
                        "dim": tcfg.train.dim, "mode": tcfg.mode,
                        "best_epoch": teacher.best_epoch,
                        "triples": int(len(teacher.joint.triples)),
                        "bridges": int(teacher.joint.n_bridges),
                        "leak_removed": teacher.joint.removed},
            "student": {"model": scfg.train.model, "encoder": scfg.train.encoder,
                        "dim": scfg.train.dim,
                        "fanout": scfg.fanout, "kd": asdict(scfg.kd)},
            "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
            "threads": torch.get_num_threads()}
    if len(targets) == 1:  # the flat shape for one target
        return {**per_target[targets[0]], **meta}
    return {"targets": per_target, **meta}


def kg_markdown(results: dict, *, command: str) -> str:
    """Ours (fractions shown as %) and the published DBP-5L rows of the same target."""
    per = results.get("targets") or {results["target"]: results}
    lines = [f"Multi-source KG completion on {results['dataset']} (preset {results['preset']}, "
             f"seed {results['seed']}; filtered tail ranking over the target's entities, "
             f"realistic ties; model chosen on validation MRR, test scored once). Teacher "
             f"{_arch(results['teacher_config'])} d={results['teacher_config']['dim']} "
             f"({results['teacher_config']['mode']}), trained once in "
             f"{results['teacher_seconds']} s; "
             f"student {_arch(results['student'])} d={results['student']['dim']}; "
             f"{results.get('device', 'cpu')}. "
             f"Command: `{command}`", ""]

    def pct(x):
        return "–" if x is None else f"{100 * x:.1f}"

    table = []
    for target, r in per.items():
        rows = [("teacher (joint, reused)", r["teacher"], None), ("scratch", r["scratch"], 1),
                ("joint retrain", r.get("joint"), 1), ("student + KD", r["kd"], 1)]
        rows += [(f"KD {name}", v, 1) for name, v in r.get("ablations", {}).items()]
        table += [[target, name, pct(v["mrr"]), pct(v["hits@1"]), pct(v["hits@3"]),
                   pct(v["hits@10"]), v.get("seconds", "") if timed else "(once)"]
                  for name, v, timed in rows if v is not None]
        table += [[target, row.label, row.metrics.get("mrr", "–"), row.metrics["hits@1"], "–",
                   row.metrics["hits@10"], None]
                  for row in published(results["dataset"], kind="kg", target=target)]
    lines += markdown_table(["target", "model", "MRR", "H@1", "H@3", "H@10", "seconds"], table,
                            numeric_from=2)
    return "\n".join(lines) + "\n"


def _arch(config: dict) -> str:
    encoder = config.get("encoder", "none")
    return config["model"] + ("" if encoder == "none" else f" + {encoder} encoder")


def _train_pykeen(ms: MultiSourceKG, target: str, *, epochs: int, dim: int, seed: int):
    from pykeen.pipeline import pipeline
    from pykeen.triples import CoreTriplesFactory

    kg = ms.kgs[target]

    def factory(t):
        return CoreTriplesFactory.create(torch.as_tensor(t, dtype=torch.long),
                                         num_entities=kg.n_entities,
                                         num_relations=ms.n_relations)
    result = pipeline(training=factory(kg.train), validation=factory(kg.valid),
                      testing=factory(kg.test), model="RotatE",
                      model_kwargs={"embedding_dim": dim}, random_seed=seed,
                      training_kwargs={"num_epochs": epochs, "batch_size": 512,
                                       "use_tqdm": False},
                      evaluator_kwargs={}, evaluation_kwargs={"batch_size": 1},
                      use_testing_data=False, stopper=None,
                      evaluation_fallback=False)
    return result.model


def kg_eval_benchmark(ms: MultiSourceKG, target: str, *, epochs: int = 5, dim: int = 32,
                      batch_size: int = 512, seed: int = 2025, repeats: int = 3) -> dict:
    """Time our evaluator and PyKEEN's RankBasedEvaluator on one PyKEEN-trained RotatE model
    and the target's test set (tails, filtered with train + valid + test, realistic ranks)."""
    from pykeen.evaluation import RankBasedEvaluator

    model = _train_pykeen(ms, target, epochs=epochs, dim=dim, seed=seed)
    model.eval()
    kg = ms.kgs[target]
    test = torch.as_tensor(kg.test, dtype=torch.long)
    extra = [torch.as_tensor(kg.train, dtype=torch.long),
             torch.as_tensor(kg.valid, dtype=torch.long)]

    # Ours scores with the same trained embeddings through one matrix product per batch
    # (rotate_tail_scorer, set up inside the timed region); PyKEEN's evaluator uses the
    # model's own broadcast scorer.

    ours_t, theirs_t = [], []
    for i in range(repeats + 1):  # the first pair warms up and is not timed
        started = time.perf_counter()
        with torch.no_grad():
            score = rotate_tail_scorer(model.entity_representations[0](indices=None),
                                       model.relation_representations[0](indices=None))
            ours = evaluate(score, kg.test, kg.all_triples(), n_candidates=kg.n_entities,
                            n_relations=ms.n_relations, batch_size=batch_size)
        if i:
            ours_t.append(time.perf_counter() - started)
        started = time.perf_counter()
        result = RankBasedEvaluator().evaluate(model, test, batch_size=batch_size,
                                               additional_filter_triples=extra,
                                               targets=["tail"], use_tqdm=False)
        if i:
            theirs_t.append(time.perf_counter() - started)
    theirs = {"mrr": result.get_metric("tail.realistic.inverse_harmonic_mean_rank"),
              **{f"hits@{k}": result.get_metric(f"tail.realistic.hits_at_{k}")
                 for k in (1, 3, 10)}}
    diffs = {k: abs(ours[k] - theirs[k]) for k in theirs}
    return {"ours_seconds": round(float(np.median(ours_t)), 4),
            "pykeen_seconds": round(float(np.median(theirs_t)), 4),
            "speedup": round(float(np.median(theirs_t) / np.median(ours_t)), 2),
            "max_abs_diff": float(max(diffs.values())),
            "ours": {k: ours[k] for k in theirs}, "pykeen": theirs,
            "target": target, "dataset": ms.name, "n_test": int(len(kg.test)),
            "model": f"PyKEEN RotatE d={dim}, {epochs} epochs", "batch_size": batch_size,
            "repeats": repeats, "timing": "median of repeats, after one warm-up pair",
            "threads": torch.get_num_threads()}


def kg_eval_markdown(result: dict, *, command: str) -> str:
    """Both evaluators' seconds and metrics on the same trained model."""
    lines = [f"Evaluator timing on {result['dataset']} {result['target']} test "
             f"({result['n_test']} tail queries; {result['model']}; batch "
             f"{result['batch_size']}; {result['timing']}). Command: `{command}`", ""]
    lines += markdown_table(["evaluator", "seconds", "MRR", "H@1", "H@3", "H@10"], [
        [name, result[key]] + [f"{m[k]:.6f}" for k in ("mrr", "hits@1", "hits@3", "hits@10")]
        for name, key, m in (("sellakit", "ours_seconds", result["ours"]),
                             ("PyKEEN RankBasedEvaluator", "pykeen_seconds", result["pykeen"]))])
    lines += ["", f"Speed-up {result['speedup']}x; largest difference over MRR and Hits@k: "
              f"{result['max_abs_diff']:.2e}."]
    return "\n".join(lines) + "\n"
