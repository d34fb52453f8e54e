"""sellakit.kg.switches and ``sellakit bench kg-protocols``: each protocol switch on planted
data (filters, directions, cross-lingual duplicates, the seen-pair partition)."""

from __future__ import annotations

import typing

import numpy as np
import pytest
import torch

from sellakit.errors import ConfigError
from sellakit.kg.data import KG, MultiSourceKG
from sellakit.kg.protocol import data_rule
from sellakit.kg.switches import (KENS, KIT, SWITCHES, KGProtocol, cross_lingual_duplicates,
                                  filter_triples, pair_seen_elsewhere, protocol_ranks,
                                  query_facts, scored_queries, target_training)

N = 6  # entities of the planted KG


def planted_kg() -> KG:
    """Query (0, r0, ?) with true tail 3; the scorer puts 1, 2, 4 above 3 and 5 below. 1 is a
    train tail of (0, r0), 2 a valid tail, 4 another test tail: each filter removes more."""
    return KG("a", N, train=np.array([[0, 0, 1], [5, 1, 0]]), valid=np.array([[0, 0, 2]]),
              test=np.array([[0, 0, 3], [0, 0, 4]]))


def planted_scorer(h: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Scores by candidate only: 1, 2, 4 rank above 3, then 0 and 5 last."""
    row = torch.tensor([0.0, 5.0, 4.0, 2.0, 3.0, -1.0], dtype=torch.float64)
    return row.expand(len(h), N)


def test_each_filter_removes_more_known_tails_so_ranks_only_improve():
    kg = planted_kg()
    first = {f: protocol_ranks(planted_scorer, kg, 2, KGProtocol(filter=f))[0]
             for f in SWITCHES["filter"].choices}
    # raw: 1, 2, 4 above 3; train drops 1; train+valid drops 2 too; all drops 4 (a test tail)
    assert first == {"raw": 4.0, "train": 3.0, "train+valid": 2.0, "all": 1.0}
    assert len(filter_triples(kg, "raw")) == 0
    assert len(filter_triples(kg, "all")) == len(kg.all_triples())


def test_heads_and_tails_doubles_the_queries_and_ranks_heads_by_the_reciprocal():
    kg = planted_kg()
    seen = []

    def scorer(h, r):
        seen.append(r.clone())
        return planted_scorer(h, r)

    tails = protocol_ranks(planted_scorer, kg, 2, KIT)
    both = protocol_ranks(scorer, kg, 2, KGProtocol(direction="both"))
    assert len(both) == 2 * len(tails) == 2 * len(kg.test)
    np.testing.assert_array_equal(both[:len(tails)], tails)  # tails first, unchanged
    assert set(torch.cat(seen).tolist()) == {0, 2}  # r0 and its reciprocal r0 + 2
    # head query (?, r0, 3) = (3, r0^-1, ?): 1, 2, 3, 4 score above the true head 0, and no
    # other head of (r0, 3) is known
    assert both[2] == 5.0
    np.testing.assert_array_equal(query_facts(2, "both"), [0, 1, 0, 1])


def two_kgs() -> MultiSourceKG:
    """KG a's test facts against KG b's splits, a0-b0 and a1-b1 linked, a2 not linked."""
    a = KG("a", 3, train=np.array([[0, 1, 2], [2, 1, 0]]), valid=np.zeros((0, 3), np.int64),
           test=np.array([[0, 0, 1], [0, 1, 1], [1, 2, 0], [2, 0, 1], [0, 3, 1]]))
    b = KG("b", 3, train=np.array([[0, 0, 1], [0, 4, 1]]), valid=np.array([[0, 2, 1]]),
           test=np.array([[0, 1, 1]]))
    return MultiSourceKG("toy", {"a": a, "b": b}, 5, {("a", "b"): np.array([[0, 0], [1, 1]])})


def test_duplicate_removal_removes_exactly_the_linked_duplicates():
    ms = two_kgs()
    rule = data_rule(ms, per_kg=0)
    dup = cross_lingual_duplicates(rule, "a")
    # (0, r0, 1) is b's train fact through the links; (0, r1, 1) only b's *test* fact;
    # (1, r2, 0) is b's valid fact (0, r2, 1) the other way round; a2 is not linked
    np.testing.assert_array_equal(dup, [True, False, False, False, False])
    kept = scored_queries(KGProtocol(duplicates="kept"), dup)
    removed = scored_queries(KGProtocol(duplicates="removed", direction="both"), dup)
    assert kept.all() and len(kept) == 5
    np.testing.assert_array_equal(removed, np.tile(~dup, 2))


def test_pair_seen_elsewhere_partitions_the_test_facts():
    ms = two_kgs()
    rule = data_rule(ms, per_kg=0)
    seen = pair_seen_elsewhere(rule, "a", {name: kg.train for name, kg in ms.kgs.items()})
    # pair {0, 1}: b's train has it under r0 and r4 -> every fact on it but none other is seen;
    # (1, r2, 0): same pair, reversed; (2, r0, 1): a2-a1 appears nowhere
    np.testing.assert_array_equal(seen, [True, True, True, False, True])
    # the fact itself is not "elsewhere": b alone with (0, r0, 1) leaves a's (0, r0, 1) unseen
    only_itself = pair_seen_elsewhere(rule, "a", {"b": ms.kgs["b"].train[:1]})
    np.testing.assert_array_equal(only_itself, [False, True, True, False, True])
    # a reversed copy under the same relation is another relation (the reciprocal) ...
    assert pair_seen_elsewhere(rule, "a", {"a": np.array([[1, 0, 0]])})[0]
    assert pair_seen_elsewhere(rule, "a", {"a": np.array([[1, 0, 2]])})[3]
    # ... while the fact itself, in the target's own training, is not
    assert not pair_seen_elsewhere(rule, "a", {"a": np.array([[2, 0, 1]])})[3]
    assert seen.sum() + (~seen).sum() == len(ms.kgs["a"].test)


def test_switch_table_drives_types_defaults_and_validation():
    hints = typing.get_type_hints(KGProtocol)
    for name, switch in SWITCHES.items():
        assert typing.get_args(hints[name]) == tuple(switch.choices)
        assert getattr(KIT, name) == switch.kit
    assert KIT.changed() == {} and KENS.changed() == {"training": "train", "filter": "train"}
    with pytest.raises(ConfigError, match="filter='nope'.*'raw', 'train'"):
        KGProtocol(filter="nope")


def test_training_choice_reads_the_rest_of_valid_or_not():
    ms = two_kgs()
    ms.kgs["a"].valid = np.array([[2, 2, 1], [1, 1, 2]])
    rule = data_rule(ms, per_kg=1)
    train_only = target_training(rule, "a", "train")
    both = target_training(rule, "a", "train+valid")
    np.testing.assert_array_equal(train_only, np.unique(ms.kgs["a"].train, axis=0))
    assert len(both) == len(train_only) + 1  # the valid fact outside the selection
    assert not any((row == rule.selection["a"][0]).all() for row in both)


def test_cli_takes_choices_and_defaults_from_the_table(capsys):
    from sellakit.cli import build_parser

    args = build_parser().parse_args(["bench", "kg-protocols", "--out", "x.json"])
    assert {name: getattr(args, name) for name in SWITCHES} == {
        name: getattr(KENS, name) for name in SWITCHES}
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["bench", "kg-protocols", "--filter", "nope", "--out", "x"])
    assert exit_.value.code == 2
    assert "raw, train, train+valid, all" in capsys.readouterr().err.replace("'", "")


def test_benchmark_on_a_derived_split_grids_every_switch_and_resumes(tmp_cache):
    from sellakit.benchmarks.kg_protocols import kg_protocols_benchmark, kg_protocols_markdown
    from sellakit.kg.data import derived_multisource
    from sellakit.kg.train import TrainConfig

    ms = derived_multisource("nations", n_sources=2, seed=0)
    tiny = TrainConfig.quick(dim=4, epochs=1, n_negatives=8, batch_size=4096)
    results, ranks = kg_protocols_benchmark(ms, "s0", train=tiny, progress=False)
    n = len(ms.kgs["s0"].test)
    assert len(results["grid"]) == 2 * 4 * 2 * 2
    assert {r["n"] for r in results["grid"] if r["direction"] == "tails"
            and r["duplicates"] == "kept"} == {n}
    wide = ranks.pivot_table(index=["training", "direction", "query"], columns="filter",
                             values="rank")
    assert (wide["raw"] >= wide["train"]).all() and (wide["train"] >= wide["train+valid"]).all()
    assert (wide["train+valid"] >= wide["all"]).all()
    for row in results["subsets"]:  # each partition's two sides cover the test facts
        other = next(r for r in results["subsets"] if r["training"] == row["training"]
                     and r["subset"] == row["subset"] and r["inside"] != row["inside"])
        assert row["facts"] + other["facts"] == n
    assert not any(m["cached"] for m in results["models"].values())
    again, _ = kg_protocols_benchmark(ms, "s0", train=tiny, progress=False)
    assert all(m["cached"] for m in again["models"].values())
    assert again["grid"] == results["grid"]
    text = kg_protocols_markdown(results, command="sellakit bench kg-protocols ...")
    assert "trained on train, filter train, tails, duplicates kept" in text


def test_bench_kg_ablations_option_takes_names_of_the_ablation_table():
    """Network KD where it acts: ``--encoder gnn --ablations=-network`` runs the three KD
    levels and KD without network KD only; a name the student has not is refused."""
    import argparse

    from sellakit.cli import _kg_ablations

    def args(**kw):
        return argparse.Namespace(**{"preset": "quick", "model": "rotate", "encoder": "gnn",
                                     "no_ablations": False, "ablations": None} | kw)

    assert _kg_ablations(args(ablations="-network")) == ("-network",)
    assert _kg_ablations(args()) is True and _kg_ablations(args(no_ablations=True)) is False
    with pytest.raises(ConfigError, match="-network is not an ablation.*--encoder none"):
        _kg_ablations(args(ablations="-network", encoder="none"))
