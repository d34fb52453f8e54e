"""``sellakit bench kg-sweep``: where KD should matter, in the new-KG setting (issue 24).

* **low-resource** (:data:`SWEEPS`): the target arrives with a fraction of its training facts
  and of its links (:func:`sellakit.kg.resources.low_resource`); at each point J2, scratch,
  the KD student and the student without KD, one seed. Default grid ``axes``: the facts at
  10 / 25 / 50 / 100% with every link, and the links at 20 / 50% with every fact (``cross``:
  every pair).
* **width**: the student at d 8 / 16 / 32 / 64, with and without KD, and scratch at each
  width; J2 once per target as the reference.

One teacher of the other KGs per target serves every point (the cache finds it). Each point is
written to ``parts`` as it finishes (JSON and per-query ranks) and read back on a rerun, so a
killed sweep resumes; every row carries its seconds by phase, seconds per epoch and epochs.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from sellakit.benchmarks.kg import (bench_configs, check_targets, jsonable, long_ranks,
                                    teacher_record)
from sellakit.benchmarks.parts import PartStore
from sellakit.benchmarks.report import markdown_table
from sellakit.config import seed_everything
from sellakit.errors import ConfigError
from sellakit.kg import (MultiSourceKG, compare_on_target, data_rule, kd_comparisons,
                         load_or_pretrain_teacher, resolve_setting, teacher_kgs)
from sellakit.kg.resources import low_resource

__all__ = ["Sweep", "SWEEPS", "SWEEP_NAMES", "sweep_points", "kg_sweep", "sweep_markdown"]


@dataclass(frozen=True)
class Sweep:
    """One sweep: its name, what it varies and the rows trained at each point."""

    name: str
    help: str
    methods: tuple[str, ...]


SWEEPS: tuple[Sweep, ...] = (
    Sweep("low-resource", "the target's training facts and links cut to fractions",
          ("j2", "scratch", "kd", "no_kd")),
    Sweep("width", "the student's width, with and without KD (J2 once as the reference)",
          ("scratch", "kd", "no_kd")),
)
SWEEP_NAMES: tuple[str, ...] = tuple(s.name for s in SWEEPS)
GRIDS = ("axes", "cross")


def _sweep(name: str) -> Sweep:
    for sweep in SWEEPS:
        if sweep.name == name:
            return sweep
    raise ConfigError(f"--sweep {name}: choose one of {', '.join(SWEEP_NAMES)}.")


def sweep_points(name: str, *, facts=(0.1, 0.25, 0.5, 1.0), links=(0.2, 0.5, 1.0),
                 dims=(8, 16, 32, 64), grid: str = "axes") -> list[dict]:
    """The points of sweep ``name``: {"facts", "links", "dim", "methods"} each (dim None: the
    preset's student width)."""
    sweep = _sweep(name)
    if sweep.name == "width":
        return [{"facts": 1.0, "links": 1.0, "dim": None, "methods": ("j2",)}] + [
            {"facts": 1.0, "links": 1.0, "dim": d, "methods": sweep.methods} for d in dims]
    if grid not in GRIDS:
        raise ConfigError(f"--grid {grid}: choose one of {', '.join(GRIDS)}.")
    pairs = list(itertools.product(facts, links)) if grid == "cross" else \
        [(f, 1.0) for f in facts] + [(1.0, lk) for lk in links if lk < 1]
    return [{"facts": f, "links": lk, "dim": None, "methods": sweep.methods}
            for f, lk in dict.fromkeys(pairs)]


def kg_sweep(ms: MultiSourceKG, name: str, targets: list[str], *, points: list[dict],
             preset: str = "quick", seed: int = 2025, epochs: int | None = None,
             out: str | Path | None = None, progress: bool = True
             ) -> tuple[dict, pd.DataFrame]:
    """Every point of ``points`` (:func:`sweep_points`) on every target, one seed, new-KG
    setting; ``epochs`` caps every model's epochs (a smoke run). ``out``: the run's JSON file;
    each finished point is written beside it (:class:`~sellakit.benchmarks.parts.PartStore`)
    and read back on a rerun with the same settings. Returns the JSON-ready results
    ({"points": [...], ...}) and the per-query ranks in long form with the point."""
    check_targets(ms, targets)
    tcfg, scfg = bench_configs(preset, seed=seed)
    if epochs:
        tcfg = replace(tcfg, train=replace(tcfg.train, epochs=epochs))
        scfg = replace(scfg, train=replace(scfg.train, epochs=epochs))
    rule, setting = data_rule(ms), resolve_setting("new-kg")
    # a point's target, fractions, width and rows are in its part's name
    store = None if out is None else PartStore(out, {
        "sweep": name, "preset": preset, "seed": seed, "epochs": epochs, "dataset": ms.name,
        "rule": rule.fingerprint})
    rows, frames = [], []
    todo = [(t, p) for t in targets for p in points]
    for target, point in tqdm(todo, desc=f"sweep {name}", disable=not progress):
        label = f"{name}-{target}-f{point['facts']}-l{point['links']}-d{point['dim']}-" \
                + "+".join(point["methods"])
        done = store.read(label) if store else None
        if done is None:
            done = _one_point(ms, rule, target, point, tcfg, scfg, seed, setting, progress)
            if store:
                store.save(label, jsonable(done[0]), done[1])
        rows.append(done[0])
        frames.append(done[1].assign(**{k: str(point[k]) for k in ("facts", "links", "dim")}))
    results = {"sweep": name, "dataset": ms.name, "preset": preset, "seed": seed,
               "epochs_cap": epochs, "targets": targets, "points": rows}
    return results, pd.concat(frames)


def _one_point(ms, rule, target, point, tcfg, scfg, seed, setting, progress):
    """One point: the reduced data, the (cached) teacher of the other KGs, the rows."""
    reduced, reduced_rule = low_resource(ms, rule, target, facts=point["facts"],
                                         links=point["links"], seed=seed)
    teacher = load_or_pretrain_teacher(reduced, reduced_rule, tcfg, progress=progress,
                                       kgs=teacher_kgs(ms, setting, target))
    student = scfg if point["dim"] is None else \
        replace(scfg, train=replace(scfg.train, dim=point["dim"]))
    # J2, a point's first row, builds its model before training seeds: seed here, so a point
    # is the same whatever ran before it (a teacher trained or read, a resumed part)
    seed_everything(seed)
    out = compare_on_target(reduced, reduced_rule, target, teacher, student, tcfg,
                            seeds=(seed,), methods=point["methods"], progress=progress,
                            use_cache=False)  # the sweep's times are measured
    ranks = out.pop("_ranks")
    row = {"target": target, **{k: point[k] for k in ("facts", "links")},
           "dim": student.train.dim, "teacher": teacher_record(teacher),
           "subgraph": out.get("subgraph"),
           "target_facts": int(len(reduced_rule.training(target, (target,))[0])),
           "rows": {m: {k: out[m][k] for k in ("mrr", "hits@10", "seconds", "phases",
                                              "seconds_per_epoch", "epochs", "triples")}
                    for m in point["methods"]},
           "comparisons": kd_comparisons(ranks)}
    return row, long_ranks(target, ranks, seed)


def sweep_markdown(results: dict, *, command: str) -> str:
    """One line per point and row: MRR, seconds, seconds per epoch, epochs, triples; then
    the KD differences with their intervals; then how the student's epoch scales."""
    lines = [f"KG sweep **{results['sweep']}** on {results['dataset']} (new-KG setting; "
             f"preset {results['preset']}, seed {results['seed']}"
             + (f", every model capped at {results['epochs_cap']} epochs — a smoke run"
                if results.get("epochs_cap") else "") + f"). Command: `{command}`", ""]
    lines += markdown_table(
        ["target", "facts", "links", "d", "row", "MRR", "seconds", "s / epoch", "epochs",
         "triples"],
        [[p["target"], p["facts"], p["links"], p["dim"], m, f"{100 * r['mrr']:.1f}",
          r["seconds"], r["seconds_per_epoch"], r["epochs"], r["triples"]]
         for p in results["points"] for m, r in p["rows"].items()], numeric_from=5)
    lines += ["", "Differences (MRR points, paired bootstrap over test queries, one seed):", ""]
    lines += markdown_table(
        ["target", "facts", "links", "d", "comparison", "difference", "95% interval",
         "verdict"],
        [[p["target"], p["facts"], p["links"], p["dim"], name, f"{100 * c['diff']:+.2f}",
          f"[{100 * c['lo']:+.2f}, {100 * c['hi']:+.2f}]", c["verdict"]]
         for p in results["points"] for name, c in p["comparisons"].items()])
    lines += ["", "Student epoch cost against its subgraph (KD rows): " + epoch_scaling(results),
              ""]
    return "\n".join(lines) + "\n"


def epoch_scaling(results: dict) -> str:
    """A least-squares line through (training triples, seconds per epoch) of the KD rows."""
    pts = [(p["rows"]["kd"]["triples"], p["rows"]["kd"]["seconds_per_epoch"])
           for p in results["points"] if "kd" in p["rows"]]
    if len(pts) < 2 or len({x for x, _ in pts}) < 2:
        return "fewer than two subgraph sizes."
    x, y = np.array(pts, dtype=float).T
    slope, intercept = np.polyfit(x, y, 1)
    return (f"{1e6 * slope:.1f} µs per triple and epoch plus {intercept:.2f} s per epoch "
            f"(fit over {len(pts)} points, {int(x.min()):,}–{int(x.max()):,} triples).")
