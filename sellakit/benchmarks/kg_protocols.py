"""``sellakit bench kg-protocols``: the kit's target-only RotatE under each protocol switch,
next to the published DBP-5L rows.

Two models are trained on the target alone (scratch's recipe, :data:`TARGET_ONLY`, selected
on the data rule's selection facts): one on the kit's training facts and one on the chosen
protocol's (KEnS's by default: train only). Each is ranked under every filter and
direction of :data:`sellakit.kg.switches.SWITCHES`, on every test fact and without the
cross-lingual duplicates, and split by whether the fact's entity pair is seen elsewhere in
training. The published rows (:mod:`sellakit.published`) stand beside the chosen protocol's
row, labelled, with their source and the protocol their code uses.

Each trained model's ranks are kept in the kit's cache as they finish, so a killed run resumes
from there; times are reported by phase.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, replace
from itertools import product

import numpy as np
import pandas as pd
import torch

from sellakit.benchmarks.kg import check_targets
from sellakit.benchmarks.report import markdown_table
from sellakit.cache import cached_arrays
from sellakit.errors import ConfigError
from sellakit.kg.compare import own_scorer
from sellakit.kg.data import MultiSourceKG
from sellakit.kg.evaluate import metrics_from_ranks, validation_mrr
from sellakit.kg.models import INTERACTIONS
from sellakit.kg.protocol import DataRule, data_rule
from sellakit.kg.switches import (KENS, KIT, SWITCHES, KGProtocol, cross_lingual_duplicates,
                                  joint_training, pair_seen_elsewhere, protocol_ranks,
                                  query_facts, scored_queries, target_training)
from sellakit.kg.train import TrainConfig, train_kge
from sellakit.published import published

__all__ = ["kg_protocols_benchmark", "kg_protocols_markdown", "protocol_grid"]

#: The target-only model's training per preset. Quick is scratch's recipe when the issue's
#: protocol numbers were measured (main at 0c146b7: the student's quick training, batch
#: 2,048), pinned here so those numbers stay reproducible when the student's recipe moves.
TARGET_ONLY: dict[str, Callable[[], TrainConfig]] = {
    "quick": lambda: TrainConfig.quick(dim=32, lr=0.02, batch_size=2048, epochs=100,
                                       eval_every=2, patience=3),
    "paper": lambda: TrainConfig.paper(dim=128),
}

#: What the record array of a trained model holds, in order.
RECORD = ("triples", "best_epoch", "max_epochs", "valid_mrr", "train_seconds", "rank_seconds")


def _evaluations() -> list[KGProtocol]:
    """One protocol per filter and direction (training and duplicates at the kit's)."""
    return [KGProtocol(filter=f, direction=d) for f, d in
            product(SWITCHES["filter"].choices, SWITCHES["direction"].choices)]


def _rank_key(protocol: KGProtocol) -> str:
    return f"ranks {protocol.filter} {protocol.direction}"


def _train_and_rank(ms: MultiSourceKG, rule: DataRule, target: str, training: str,
                    config: TrainConfig, progress: bool) -> dict[str, np.ndarray]:
    """The target-only model on ``training``'s facts, ranked under every filter and
    direction; its record (:data:`RECORD`) under ``"record"``."""
    triples = target_training(rule, target, training)
    kg = ms.kgs[target]
    result = train_kge(triples, kg.n_entities, ms.n_relations, config,
                       valid_mrr=validation_mrr(ms, {target: own_scorer(kg.n_entities)},
                                                rule.selection),
                       progress=progress, desc=f"{target} on {training}")
    started = time.perf_counter()
    scorer = own_scorer(kg.n_entities)(result.model)
    out = {_rank_key(p): protocol_ranks(scorer, kg, ms.n_relations, p) for p in _evaluations()}
    record = (len(triples), result.best_step, config.epochs,
              result.best_valid.get("mrr", float("nan")), result.seconds,
              time.perf_counter() - started)
    return out | {"record": np.asarray(record, dtype=np.float64)}


def protocol_grid(ranks: dict[str, dict[str, np.ndarray]], duplicates: np.ndarray
                  ) -> list[dict]:
    """One row per training, filter, direction and duplicates choice: the metrics of the
    queries that protocol scores (``ranks``: training -> :func:`_train_and_rank`'s arrays)."""
    rows = []
    for training, arrays in ranks.items():
        for evaluation in _evaluations():
            for option in SWITCHES["duplicates"].choices:
                protocol = replace(evaluation, training=training, duplicates=option)
                kept = scored_queries(protocol, duplicates)
                metrics = metrics_from_ranks(arrays[_rank_key(evaluation)][kept])
                rows.append(asdict(protocol) | {k: round(v, 4) if isinstance(v, float) else v
                                                for k, v in metrics.items()})
    return rows


def _subset_rows(ranks: dict[str, dict[str, np.ndarray]], protocols: dict[str, KGProtocol],
                 masks: dict[str, np.ndarray]) -> list[dict]:
    """Per trained model under its own protocol: the metrics on each side of each partition
    of the test facts (``masks``: partition -> boolean per fact)."""
    rows = []
    for training, protocol in protocols.items():
        arrays = ranks[training]
        facts = query_facts(len(next(iter(masks.values()))), protocol.direction)
        for (name, mask), inside in product(masks.items(), (True, False)):
            chosen = arrays[_rank_key(protocol)][mask[facts] == inside]
            rows.append({"training": training, "protocol": protocol.label, "subset": name,
                         "inside": inside, "facts": int((mask == inside).sum()),
                         **{k: round(v, 4) if isinstance(v, float) else v
                            for k, v in metrics_from_ranks(chosen).items()}})
    return rows


def kg_protocols_benchmark(ms: MultiSourceKG, target: str, *, protocol: KGProtocol = KENS,
                           preset: str = "quick", seed: int = 2025,
                           train: TrainConfig | None = None, progress: bool = True
                           ) -> tuple[dict, pd.DataFrame]:
    """The kit's and ``protocol``'s target-only models on ``target``, ranked under every
    switch (see the module doc); ``train`` replaces the preset's training (:data:`TARGET_ONLY`;
    its seed becomes ``seed``). Returns the JSON-ready results and the per-query ranks (long
    form: training, filter, direction, query, fact, side, rank, duplicate, pair_seen)."""
    check_targets(ms, [target])
    if preset not in TARGET_ONLY:
        raise ConfigError(f"preset={preset!r}: kg-protocols has the presets "
                          f"{', '.join(TARGET_ONLY)}.")
    phases: dict[str, float] = {}
    started = time.perf_counter()
    rule = data_rule(ms)
    masks = {"cross-lingual duplicate": cross_lingual_duplicates(rule, target),
             "entity pair seen elsewhere": pair_seen_elsewhere(rule, target,
                                                               joint_training(rule, target))}
    phases["data rule and subsets"] = time.perf_counter() - started
    config = replace(train or TARGET_ONLY[preset](), seed=seed)
    ranks, cached = {}, {}
    for training in dict.fromkeys((KIT.training, protocol.training)):
        began = time.perf_counter()
        fresh = []
        ranks[training] = cached_arrays(
            "kg-protocols", config.cache_key(rule.fingerprint, ms.name, target, training),
            lambda: fresh.append(1) or _train_and_rank(ms, rule, target, training, config,
                                                       progress))
        cached[training] = not fresh
        phases[f"train and rank on {training} ({'read' if not fresh else 'run'})"] = \
            time.perf_counter() - began
    began = time.perf_counter()
    own = {KIT.training: KIT, protocol.training: protocol}
    results = {"target": target, "dataset": ms.name, "preset": preset, "seed": seed,
               "protocol": asdict(protocol), "kit": asdict(KIT),
               "models": {t: dict(zip(RECORD, a["record"].tolist())) | {"cached": cached[t]}
                          for t, a in ranks.items()},
               "shares": {name: round(float(mask.mean()), 4) for name, mask in masks.items()},
               "grid": protocol_grid(ranks, masks["cross-lingual duplicate"]),
               "subsets": _subset_rows(ranks, own, masks),
               "published": [{"method": row.method, "label": row.label, "metrics": row.metrics,
                              "source": row.source, "protocol": row.protocol,
                              "backbone": row.backbone}
                             for row in published(ms.name, kind="kg", target=target)],
               "switches": {name: {option: {"help": c.help, "used_by": c.used_by}
                                   for option, c in s.choices.items()}
                            for name, s in SWITCHES.items()},
               "config": {k: v for k, v in asdict(config).items() if k != "device"},
               "data_rule": {"selection_per_kg": rule.per_kg, "seed": rule.seed,
                             "fingerprint": rule.fingerprint},
               "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
               "threads": torch.get_num_threads()}
    frame = _long_ranks(ranks, masks)
    phases["tables"] = time.perf_counter() - began
    results["time"] = {name: round(seconds, 2) for name, seconds in phases.items()}
    return results, frame


def _long_ranks(ranks: dict[str, dict[str, np.ndarray]], masks: dict[str, np.ndarray]
                ) -> pd.DataFrame:
    """Every query's rank under every filter and direction, with its fact's partitions."""
    n_facts = len(masks["cross-lingual duplicate"])
    frames = []
    for (training, arrays), evaluation in product(ranks.items(), _evaluations()):
        facts = query_facts(n_facts, evaluation.direction)
        frames.append(pd.DataFrame({
            "training": training, "filter": evaluation.filter,
            "direction": evaluation.direction, "query": np.arange(len(facts)), "fact": facts,
            "side": np.where(np.arange(len(facts)) < n_facts, "tail", "head"),
            "rank": arrays[_rank_key(evaluation)],
            "duplicate": masks["cross-lingual duplicate"][facts],
            "pair_seen": masks["entity pair seen elsewhere"][facts]}))
    return pd.concat(frames, ignore_index=True)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def _grid_row(results: dict, **switches: str) -> dict:
    """The row of ``results["grid"]`` with these switch choices."""
    return next(row for row in results["grid"]
                if all(row[name] == value for name, value in switches.items()))


def _headline(results: dict) -> list[list]:
    """The chosen protocol's row (every fact, then without duplicates) and the published
    rows of the target."""
    chosen = results["protocol"]
    config = results["config"]
    backbone = INTERACTIONS[config["model"]].__name__
    rows = []
    for option in SWITCHES["duplicates"].choices:
        row = _grid_row(results, **(chosen | {"duplicates": option}))
        rows.append([f"kit {backbone} d={config['dim']}, target only", "this run", backbone,
                     KGProtocol(**chosen | {"duplicates": option}).label, row["n"],
                     _pct(row["mrr"]), _pct(row["hits@1"]), _pct(row["hits@10"])])
    rows += [[f"{p['method']} — published", p["source"], p["backbone"] or "not stated",
              p["protocol"], "–", p["metrics"].get("mrr", "–"), p["metrics"].get("hits@1", "–"),
              p["metrics"].get("hits@10", "–")] for p in results["published"]]
    return rows


def kg_protocols_markdown(results: dict, *, command: str) -> str:
    """The chosen protocol beside the published rows, every switch, the per-subset table, the
    time by phase and what each switch means."""
    config, kit = results["config"], KGProtocol(**results["kit"])
    chosen = KGProtocol(**results["protocol"])
    lines = [f"Protocol switches on {results['dataset']}, target {results['target']}: the kit's "
             f"{config['model']} d={config['dim']} trained on the target alone (scratch's "
             f"recipe, preset {results['preset']}, seed {results['seed']}, selected on the data "
             f"rule's {results['data_rule']['selection_per_kg']} selection facts), one model "
             f"per training choice, ranked under every switch (realistic ties, the target's "
             f"entities as candidates). Cross-lingual duplicates: "
             f"{_pct(results['shares']['cross-lingual duplicate'])}% of the test facts; entity "
             f"pair seen elsewhere in training (any KG, target protected): "
             f"{_pct(results['shares']['entity pair seen elsewhere'])}%. "
             f"{results['device']}, {results['threads']} threads. Command: `{command}`", "",
             f"Under the chosen protocol ({chosen.label}) beside the published rows "
             "(published rows as reported, %; their filters and training differ, see "
             "protocol):", ""]
    lines += markdown_table(["model", "source", "backbone", "protocol", "queries", "MRR", "H@1",
                             "H@10"], _headline(results), numeric_from=4)
    lines += ["", f"Every switch (kit: {kit.label}; chosen: {chosen.label}):", ""]
    lines += markdown_table(
        ["trained on", "filter", "direction", "duplicates", "queries", "MRR", "H@1", "H@3",
         "H@10", ""],
        [[r["training"], r["filter"], r["direction"], r["duplicates"], r["n"], _pct(r["mrr"]),
          _pct(r["hits@1"]), _pct(r["hits@3"]), _pct(r["hits@10"]),
          " ".join(name for name, p in (("kit", kit), ("chosen", chosen))
                   if asdict(p) == {k: r[k] for k in asdict(p)})]
         for r in results["grid"]], numeric_from=4)
    lines += ["", "Per subset of the test facts, each model under its own protocol:", ""]
    lines += markdown_table(
        ["trained on", "protocol", "subset", "facts", "MRR", "H@1", "H@10"],
        [[r["training"], r["protocol"], ("" if r["inside"] else "not ") + r["subset"],
          r["facts"], _pct(r["mrr"]), _pct(r["hits@1"]), _pct(r["hits@10"])]
         for r in results["subsets"]], numeric_from=3)
    lines += ["", "Time by phase (seconds; a model read from the cache shows the read, its "
              "recorded training and ranking below):", ""]
    lines += markdown_table(["phase", "seconds"], list(results["time"].items()))
    lines += [""] + markdown_table(
        ["trained on", "triples", "best epoch / max", "selection MRR", "train seconds",
         "rank seconds", "this run"],
        [[t, int(m["triples"]), f"{int(m['best_epoch'])} / {int(m['max_epochs'])}",
          _pct(m["valid_mrr"]), round(m["train_seconds"], 1), round(m["rank_seconds"], 1),
          "read from the cache" if m["cached"] else "trained"]
         for t, m in results["models"].items()], numeric_from=1)
    lines += ["", "The switches:", ""]
    lines += [f"- **{name}** ({SWITCHES[name].what}): " + "; ".join(
        f"`{option}`: {c['help']} — {c['used_by']}" for option, c in options.items())
        for name, options in results["switches"].items()]
    return "\n".join(lines) + "\n"
