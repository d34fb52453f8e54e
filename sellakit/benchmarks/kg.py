"""``sellakit bench kg`` and ``sellakit bench kg-eval``: JSON results plus markdown tables.

Published DBP-5L rows (tail-only, target-KG candidates, %; reprinted in DMKGC/IMKGC Table 1,
see research/dbp5l_anchors.md) stand beside ours, labelled *published*. They are context, not a
like-for-like comparison: we filter train + valid + test tails of the target (JMAC's setting;
KEnS filters train tails only, SS-AGA's code ranks raw), and our data rule drops every
re-expression of a held-out fact from training, where KEnS, SS-AGA and DMKGC keep them.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from sellakit.benchmarks.parts import PartStore
from sellakit.benchmarks.report import markdown_table
from sellakit.errors import ConfigError
from sellakit.kg import (METHODS, MultiSourceKG, StudentConfig, TeacherConfig,
                         compare_on_target, evaluate, kd_comparisons, load_or_pretrain_teacher,
                         resolve_setting, teacher_kgs)
from sellakit.kg.compare import COMPARISONS
from sellakit.kg.evaluate import rotate_tail_scorer
from sellakit.kg.protocol import data_rule
from sellakit.published import published

__all__ = ["kg_benchmark", "kg_markdown", "kg_eval_benchmark", "kg_eval_markdown",
           "check_targets", "bench_configs", "time_accounting", "aims", "teacher_record",
           "compare_from_ranks",
           "jsonable", "long_ranks"]


def check_targets(ms: MultiSourceKG, targets: list[str]) -> None:
    """A :class:`ConfigError` unless ``targets`` are one or more of ``ms``'s KGs."""
    unknown = [target for target in targets if target not in ms.kgs]
    if unknown or not targets:
        raise ConfigError(f"--target {','.join(unknown) or '(none)'}: {ms.name} has no such KG; "
                          f"choose from {', '.join(ms.kgs)} (or all).")


def kg_benchmark(ms: MultiSourceKG, targets: list[str], *, preset: str = "quick",
                 seed: int = 2025, seeds: int = 1, j2_seeds: int | None = None,
                 setting: str = "new-kg", ablations: bool = True, model: str = "rotate",
                 encoder: str = "none", progress: bool = True, out: str | Path | None = None
                 ) -> tuple[dict, pd.DataFrame]:
    """Per target, the teacher of ``setting`` (:data:`sellakit.kg.compare.SETTINGS`; new-kg:
    one per target, trained on the other KGs; all-kgs: one for all) and every row of
    :func:`sellakit.kg.compare_on_target` at ``seeds`` seeds (``seed``, ``seed + 1``, ...;
    ``j2_seeds`` of them for the two J2 rows, default all; 0 leaves the J2 rows out, and
    with them the aims and the time ratios that need J2).

    ``out``: the run's JSON file; each finished target is written beside it
    (:class:`~sellakit.benchmarks.parts.PartStore`, ``<out>.parts/<target>.json`` and its
    per-query ranks) and read back on a rerun with the same settings, so a killed run resumes
    (a folder of other settings is refused). Returns the
    JSON-ready results (per target: rows, ``_comparisons``, ``time``, ``aims``) and the
    per-query reciprocal ranks in long form (target, query, method, seed, rr)."""
    check_targets(ms, targets)  # before any teacher trains
    chosen = resolve_setting(setting)
    tcfg, scfg = bench_configs(preset, seed=seed, model=model, encoder=encoder)
    rule = data_rule(ms)
    key = {"setting": setting, "preset": preset, "seed": seed, "seeds": seeds,
           "j2_seeds": j2_seeds, "ablations": ablations, "model": model, "encoder": encoder,
           "dataset": ms.name, "rule": rule.fingerprint}
    store = PartStore(out, key) if out is not None else None
    per_target, frames, teachers = {}, [], {}
    for target in tqdm(targets, desc="targets", disable=not progress):
        done = store.read(target) if store else None
        if done is None:
            teacher = load_or_pretrain_teacher(ms, rule, tcfg, progress=progress,
                                               kgs=teacher_kgs(ms, chosen, target))
            done = _one_target(ms, rule, target, teacher, scfg, tcfg, seeds=seeds, seed=seed,
                               j2_seeds=j2_seeds, ablations=ablations, progress=progress)
            if store:
                store.save(target, jsonable(done[0]), done[1])
        per_target[target], ranks = done
        compare_from_ranks(per_target[target], ranks)  # a part read back gets today's pairs
        teachers[target] = per_target[target]["time"]["teacher_record"]
        frames.append(ranks)
    meta = _meta(ms, rule, preset, seed, seeds, j2_seeds, chosen, tcfg, scfg, teachers)
    if len(targets) == 1:  # the flat shape for one target
        return {**per_target[targets[0]], **meta}, pd.concat(frames)
    return {"targets": per_target, **meta}, pd.concat(frames)


def bench_configs(preset: str, *, seed: int, model: str = "rotate", encoder: str = "none"
                  ) -> tuple[TeacherConfig, StudentConfig]:
    """The teacher's and student's configs of ``preset`` with one architecture and seed."""
    arch = dict(seed=seed, model=model, encoder=encoder)
    tcfg = TeacherConfig.preset(preset)
    scfg = StudentConfig.preset(preset)
    return (replace(tcfg, train=replace(tcfg.train, **arch)),
            replace(scfg, train=replace(scfg.train, **arch)))


def _one_target(ms, rule, target, teacher, scfg, tcfg, *, seeds, seed, j2_seeds, ablations,
                progress) -> tuple[dict, pd.DataFrame]:
    """One target's comparison (J2 rows at ``j2_seeds`` seeds), comparisons, time and aims."""
    all_seeds = tuple(seed + i for i in range(seeds))
    j2_names = [m.name for m in METHODS if m.trainer == "j2"]
    others = tuple(m.name for m in METHODS if m.name not in j2_names)
    # use_cache=False: the benchmark's times are measured, never read from the cache
    result = compare_on_target(ms, rule, target, teacher, scfg, tcfg, seeds=all_seeds,
                               methods=others, ablations=ablations, progress=progress,
                               use_cache=False)
    ranks = result.pop("_ranks")
    result.pop("_models")
    if j2_seeds != 0:
        j2 = compare_on_target(ms, rule, target, teacher, scfg, tcfg,
                               seeds=all_seeds[:j2_seeds or seeds], methods=tuple(j2_names),
                               progress=progress, use_cache=False)
        ranks |= j2.pop("_ranks")
        result.update({name: j2[name] for name in j2_names}, joint=j2["j2"])
    result["time"] = time_accounting(result, teacher)
    return result, long_ranks(target, ranks, seed)


def compare_from_ranks(record: dict, ranks: pd.DataFrame) -> None:
    """Set one target's ``_comparisons`` (:data:`~sellakit.kg.compare.COMPARISONS`, plus KD
    against each of its ablations) and ``aims`` from its per-query ranks in long form
    (:func:`long_ranks`), so they always follow from the ranks file beside the JSON."""
    runs = {method: [1.0 / rows.sort_values("query").rr.to_numpy()
                     for _, rows in by_method.groupby("seed")]
            for method, by_method in ranks.groupby("method")}
    pairs = COMPARISONS + tuple(("kd", name) for name in record.get("ablations", {}))
    record["_comparisons"] = kd_comparisons(runs, pairs)
    record["aims"] = aims(record)


def jsonable(record: dict) -> dict:
    """``record`` as its part's JSON holds it (numpy scalars as Python numbers, anything else
    unknown to JSON as text), so a finished part reads back as written."""
    return json.loads(json.dumps(record, default=_plain))


def _plain(value):
    return value.item() if isinstance(value, np.generic) else str(value)


def _meta(ms, rule, preset, seed, seeds, j2_seeds, setting, tcfg, scfg, teachers) -> dict:
    """What the run was: data, settings, configs, the teachers, the data rule, the machine."""
    return {"dataset": ms.name, "preset": preset, "seed": seed, "seeds": seeds,
            "j2_seeds": seeds if j2_seeds is None else j2_seeds, "setting": setting.name,
            "setting_help": setting.help, "teachers": teachers,
            "teacher_seconds": round(float(np.mean([t["seconds"] for t in teachers.values()])),
                                     2),
            "teacher_config": {"model": tcfg.train.model, "encoder": tcfg.train.encoder,
                               "dim": tcfg.train.dim, "mode": tcfg.mode,
                               "max_epochs": tcfg.train.epochs,
                               **next(iter(teachers.values()))},
            "student": {"model": scfg.train.model, "encoder": scfg.train.encoder,
                        "dim": scfg.train.dim, "fanout": scfg.fanout,
                        "link_mode": scfg.link_mode, "batch_size": scfg.train.batch_size,
                        "max_epochs": scfg.train.epochs, "kd": asdict(scfg.kd),
                        # network KD acts on an encoder only (folded into feature KD otherwise)
                        "network_kd_acts": scfg.train.encoder != "none"},
            "data_rule": {"selection_per_kg": rule.per_kg, "seed": rule.seed,
                          "fingerprint": rule.fingerprint, "per_kg": rule.summary()},
            "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
            "threads": torch.get_num_threads()}


def teacher_record(teacher) -> dict:
    """The teacher's JSON record: seconds, epochs, graph size, which KGs, from the cache."""
    return {"seconds": teacher.seconds, "best_epoch": teacher.best_epoch,
            "converged": teacher.converged, "kgs": sorted(teacher.joint.ids),
            "triples": int(len(teacher.joint.triples)),
            "bridges": int(teacher.joint.n_bridges), "cached": teacher.cached,
            "leak_removed": teacher.joint.removed}


def long_ranks(target: str, ranks: dict[str, list[np.ndarray]], seed: int) -> pd.DataFrame:
    return pd.concat([pd.DataFrame({"target": target, "query": np.arange(len(r)),
                                    "method": method, "seed": seed + k, "rr": 1.0 / r})
                      for method, runs in ranks.items() for k, r in enumerate(runs)])


def time_accounting(result: dict, teacher) -> dict:
    """End-to-end seconds of every row (seed means; by phase; seconds per training epoch,
    epochs; microseconds per training triple and epoch: how an epoch scales with its graph),
    the teacher's time and the number of targets it serves here (all-kgs: every KG; new-kg:
    the one it was trained for), KD's time plus the teacher's share against J2's, and the
    break-even number of targets a teacher must serve to pay for itself."""
    serves = 1 if result.get("teacher_saw_target") is False else len(teacher.rule.ms.kgs)
    rows = {name: {"seconds": row["seconds"], "phases": row["phases"],
                   "seconds_per_epoch": row["seconds_per_epoch"], "epochs": row["epochs"],
                   "triples": row["triples"],
                   "us_per_triple_epoch": round(1e6 * row["seconds_per_epoch"]
                                                / max(row["triples"], 1), 2)}
            for name, row in result.items()
            if name != "joint" and isinstance(row, dict) and "phases" in row}
    out = {"rows": rows, "teacher": teacher.seconds, "teacher_serves": serves,
           "teacher_record": teacher_record(teacher),
           "teacher_share": round(teacher.seconds / serves, 2)}
    if "kd" in rows:
        student = rows["kd"]["seconds"]
        out.update(student=student, student_plus_teacher_share=round(
            student + out["teacher_share"], 2))
        if "j2" in rows:
            j2 = rows["j2"]["seconds"]
            out.update(j2=j2, student_over_j2=round(student / j2, 3),
                       end_to_end_over_j2=round(out["student_plus_teacher_share"] / j2, 3),
                       break_even_targets=(round(teacher.seconds / (j2 - student), 2)
                                           if j2 > student else None))
    return out


def aims(result: dict) -> dict:
    """Issue 24's aims, each True/False: (a) KD's MRR at least J2's - 0.5 points; (b) the
    student's end-to-end time plus the teacher's share at most half of J2's; and the paired
    lower bound of KD - no KD above 0 (KD adds to the warm start)."""
    if "j2" not in result or "kd" not in result:
        return {}
    time_, comparisons = result["time"], result["_comparisons"]
    out = {"kd_within_half_point_of_j2": result["kd"]["mrr"] >= result["j2"]["mrr"] - 0.005,
           "end_to_end_at_most_half_of_j2": time_["end_to_end_over_j2"] <= 0.5}
    if "kd - no_kd" in comparisons:
        out["kd_adds_to_warm_start"] = comparisons["kd - no_kd"]["lo"] > 0
    return out


def kg_markdown(results: dict, *, command: str) -> str:
    """Per target: every row (fractions as %), the paired differences, the time account and
    the published DBP-5L rows of the target."""
    per = results.get("targets") or {results["target"]: results}
    tc = results["teacher_config"]
    lines = [f"Multi-source KG completion on {results['dataset']}, setting "
             f"**{results.get('setting', 'all-kgs')}** ({results.get('setting_help', '')}); "
             f"preset {results['preset']}, seeds from {results['seed']}: {results['seeds']} for "
             f"every row, {results['j2_seeds']} for J2; filtered tail ranking over the target's "
             f"entities, realistic ties; every model selected on the same "
             f"{results['data_rule']['selection_per_kg']} selection facts per KG, test scored "
             f"once). Teacher {_arch(tc)} d={tc['dim']} ({tc['mode']}), at most "
             f"{tc['max_epochs']} epochs, {results['teacher_seconds']} s on average; student "
             f"{_arch(results['student'])} d={results['student']['dim']}, batch "
             f"{results['student'].get('batch_size')}, KD temperature "
             f"{results['student']['kd']['temperature']} (fixed); "
             f"{results.get('device', 'cpu')}, {results.get('threads')} threads. "
             f"Command: `{command}`", ""]
    table = []
    for target, r in per.items():
        table += _model_rows(target, r)
    lines += markdown_table(["target", "model", "MRR", "H@1", "H@3", "H@10", "seconds",
                             "epoch / max"], table, numeric_from=2)
    lines += ["", "Paired differences (MRR points; two-level bootstrap: each side's seeds, "
              "then the test queries; 95%):", ""]
    lines += markdown_table(["target", "comparison", "difference", "95% interval", "verdict"],
                            [[t, name, f"{100 * c['diff']:+.2f}",
                              f"[{100 * c['lo']:+.2f}, {100 * c['hi']:+.2f}]", c["verdict"]]
                             for t, r in per.items()
                             for name, c in r.get("_comparisons", {}).items()])
    lines += ["", "Time (seconds, end to end, seed means; the teacher's share is its time / "
              "the targets it serves: 1 in new-kg, every KG in all-kgs) and the issue's aims "
              "((a) KD >= J2 - 0.5 MRR; (b) KD + teacher share <= J2 / 2; KD - no KD lower "
              "bound > 0):", ""]
    lines += markdown_table(
        ["target", "KD", "J2", "teacher", "KD + teacher share", "/ J2", "break-even "
         "targets", "aims met"],
        [[t, r["time"].get("student", "–"), r["time"].get("j2", "–"), r["time"]["teacher"],
          r["time"].get("student_plus_teacher_share", "–"),
          r["time"].get("end_to_end_over_j2", "–"),
          r["time"].get("break_even_targets") or "never",
          ", ".join(k for k, v in r["aims"].items() if v) or "none" if r.get("aims") else "–"]
         for t, r in per.items() if "time" in r])
    lines += ["", "Epoch cost (seed means): seconds per training epoch, epochs run, training "
              "triples and microseconds per triple and epoch; phases in seconds:", ""]
    lines += markdown_table(
        ["target", "row", "s / epoch", "epochs", "triples", "µs / triple-epoch", "phases"],
        [[t, name, v["seconds_per_epoch"], v["epochs"], v["triples"],
          v["us_per_triple_epoch"], ", ".join(f"{k} {x}" for k, x in v["phases"].items())]
         for t, r in per.items() for name, v in r.get("time", {}).get("rows", {}).items()])
    return "\n".join(lines) + "\n"


def _model_rows(target: str, r: dict) -> list[list]:
    def pct(x):
        return "–" if x is None else f"{100 * x:.1f}"

    rows = [("teacher (reused)", r.get("teacher"), False),
            ("J1 (teacher's data)", r.get("j1"), False)]
    rows += [(m.label, r.get(m.name), True) for m in METHODS]
    rows += [(f"KD {name}", v, True) for name, v in r.get("ablations", {}).items()]
    table = [[target, name, pct(v["mrr"]), pct(v["hits@1"]), pct(v["hits@3"]),
              pct(v["hits@10"]), v.get("seconds", "") if timed else "(teacher's run)",
              f"{v['best_epoch']} / {v['max_epochs']}" if "max_epochs" in v else ""]
             for name, v, timed in rows if v is not None]
    table += [[target, row.label, row.metrics.get("mrr", "–"), row.metrics["hits@1"], "–",
               row.metrics["hits@10"], None, ""]
              for row in published(r["dataset"], kind="kg", target=target)]
    return table


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

    check_targets(ms, [target])
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
