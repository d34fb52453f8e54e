"""sellakit.kg: data, leakage, evaluator parity with PyKEEN, subgraph, KD terms (small data)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from sellakit.kg.data import (DBP5L_ENV, DataError, canonical_ids, derived_multisource,
                              leak_free_triples, load_dbp5l, load_multisource, load_pykeen,
                              locate_dbp5l)
from sellakit.kg.evaluate import evaluate, metrics_from_ranks, ranks_from_scores
from sellakit.errors import ConfigError
from sellakit.kg.models import Interaction, KGEModel


@pytest.fixture(scope="module")
def ms():
    return derived_multisource("nations", n_sources=3, keep=0.7, seed=1)


def test_pykeen_sets_offline():
    kg = load_pykeen("umls")
    assert (kg.n_entities, len(kg.train), len(kg.valid), len(kg.test)) == (135, 5216, 652, 661)
    with pytest.raises(DataError, match="offline ones"):
        load_pykeen("fb15k")


def test_derived_split_is_named_and_aligned(ms):
    assert "derived" in ms.name and ms.derived
    # links join the same base entity: labels agree after the source prefix
    for (a, b), pairs in {**ms.links, **ms.heldout_links}.items():
        la, lb = ms.kgs[a].entity_labels, ms.kgs[b].entity_labels
        assert all(la[x].split(":", 1)[1] == lb[y].split(":", 1)[1] for x, y in pairs)
    assert sum(len(p) for p in ms.heldout_links.values()) > 0
    # ids are renamed per source
    (a, b), pairs = next(iter(ms.links.items()))
    assert not np.array_equal(pairs[:, 0], pairs[:, 1])


def test_leakage_removed(ms):
    """No training triple, re-expressed through the alignment, is a protected held-out fact."""
    from sellakit.kg.pretrain import build_joint
    from sellakit.kg.protocol import data_rule

    target = "s0"
    rule = data_rule(ms, per_kg=40)
    canon = canonical_ids(ms)
    banned = {(canon[target][h], r, canon[target][t]) for h, r, t in rule.held_out(target)}
    removed_total = 0
    for name in ms.kgs:
        raw = np.unique(np.concatenate([ms.kgs[name].train, rule.rest_of_valid[name]]), axis=0)
        raw_hits = sum((canon[name][h], r, canon[name][t]) in banned for h, r, t in raw)
        kept, removed = rule.training(name, (target,))
        assert removed == raw_hits
        removed_total += removed
        assert not any((canon[name][h], r, canon[name][t]) in banned for h, r, t in kept)
        assert rule.leaks(name, kept, (target,)) == 0
        assert rule.leaks(name, raw, (target,)) == removed
    assert removed_total > 0  # the derived sources overlap, so there was leakage to remove
    # and the whole joint training graph (bridges included) is clean
    joint = build_joint(ms, rule, mode="swapping", protect=(target,))
    inv = {}
    for name, ids in joint.ids.items():
        for local, gid in enumerate(ids):
            inv[int(gid)] = canon[name][local]
    assert not any((inv[h], r, inv[t]) in banned for h, r, t in joint.triples)


def test_data_rule_splits_valid_once(ms):
    """Selection facts are a fixed part of valid, the rest trains, and nothing is lost."""
    from sellakit.kg.protocol import data_rule

    rule, again = data_rule(ms, per_kg=30, seed=3), data_rule(ms, per_kg=30, seed=3)
    assert rule.fingerprint == again.fingerprint != data_rule(ms, per_kg=30, seed=4).fingerprint
    for name, kg in ms.kgs.items():
        assert len(rule.selection[name]) == min(30, len(kg.valid))
        both = np.concatenate([rule.selection[name], rule.rest_of_valid[name]])
        assert np.array_equal(np.unique(both, axis=0), np.unique(kg.valid, axis=0))
        assert len(rule.held_out(name)) == len(kg.test) + len(rule.selection[name])


def test_same_entities_count_as_one_for_leakage():
    """DBP-5L's el and en entity files share line numbers: a Greek fact written in English ids
    is a re-expression even without a seed link (the identity pairs are not training links)."""
    from sellakit.kg.data import KG, MultiSourceKG, leak_free_triples

    a = KG("a", 3, np.array([[0, 0, 1]]), np.zeros((0, 3), np.int64), np.array([[1, 0, 2]]))
    b = KG("b", 3, np.array([[1, 0, 2], [0, 0, 1]]), np.zeros((0, 3), np.int64),
           np.zeros((0, 3), np.int64))
    plain = MultiSourceKG("toy", {"a": a, "b": b}, 1, {("a", "b"): np.zeros((0, 2), np.int64)})
    same = MultiSourceKG("toy", {"a": a, "b": b}, 1, {("a", "b"): np.zeros((0, 2), np.int64)},
                         same_entities={("a", "b"): np.stack([np.arange(3)] * 2, 1)})
    assert leak_free_triples(plain, "b", b.train, {"a": a.test})[1] == 0
    kept, removed = leak_free_triples(same, "b", b.train, {"a": a.test})
    assert removed == 1 and kept.tolist() == [[0, 0, 1]]


def test_ranks_match_pykeen_rank_based_evaluator():
    from pykeen.evaluation import RankBasedEvaluator

    gen = torch.Generator().manual_seed(0)
    n, e = 300, 40
    scores = torch.round(torch.randn(n, e, generator=gen) * 3) / 3  # many ties
    true = torch.randint(0, e, (n,), generator=gen)
    known = torch.rand(n, e, generator=gen) < 0.2
    ours = metrics_from_ranks(ranks_from_scores(scores, true, known))
    filtered = scores.clone()
    mask = known.clone()
    mask[torch.arange(n), true] = False
    filtered[mask] = float("nan")  # PyKEEN's convention for filtered candidates
    hrt = torch.stack([torch.zeros(n, dtype=torch.long), torch.zeros(n, dtype=torch.long),
                       true], 1)
    evaluator = RankBasedEvaluator()
    evaluator.process_scores_(hrt, "tail", filtered, filtered[torch.arange(n), true][:, None])
    result = evaluator.finalize()
    theirs = {"mrr": result.get_metric("tail.realistic.inverse_harmonic_mean_rank"),
              **{f"hits@{k}": result.get_metric(f"tail.realistic.hits_at_{k}")
                 for k in (1, 3, 10)}}
    for key, value in theirs.items():
        assert abs(ours[key] - value) <= 1e-6, (key, ours[key], value)


def test_evaluate_filters_known_tails():
    # a model that scores every tail equally: realistic rank = (1 + C) / 2 after filtering
    n_ent, n_rel = 10, 2
    triples = np.array([[0, 0, 1], [0, 0, 2], [3, 1, 4]])
    out = evaluate(lambda h, r: torch.zeros(len(h), n_ent), triples[:1], triples,
                   n_candidates=n_ent, n_relations=n_rel, return_ranks=True)
    assert out["ranks"][0] == pytest.approx((1 + (n_ent - 1)) / 2)  # tail 2 filtered out
    both = evaluate(lambda h, r: torch.zeros(len(h), n_ent), triples, triples,
                    n_candidates=n_ent, n_relations=n_rel, both=True)
    assert both["n"] == 6


@pytest.mark.parametrize("model", ["rotate", "transe", "complex"])
def test_models_score_shapes(model):
    m = KGEModel(7, 3, 4, model)
    h, r = torch.tensor([0, 1]), torch.tensor([0, 5])
    assert m.score_tails(h, r).shape == (2, 7)
    assert m.score_tails(h, r, 5).shape == (2, 5)
    q = m.query(h, r)
    assert torch.allclose(m.score_query(q, torch.tensor([[3], [4]])).squeeze(1),
                          m.score_tails(h, r)[[0, 1], [3, 4]], atol=1e-5)


def test_config_and_cli_choices_come_from_the_interaction_table():
    import typing

    from sellakit.cli import build_parser
    from sellakit.kg.models import INTERACTIONS, MODELS, resolve_interaction
    from sellakit.kg.train import TrainConfig

    assert typing.get_args(typing.get_type_hints(TrainConfig)["model"]) == tuple(INTERACTIONS)
    assert MODELS == tuple(INTERACTIONS) == ("rotate", "transe", "complex")
    for name in INTERACTIONS:
        assert build_parser().parse_args(["bench", "kg", "--model", name, "--out", "x.json"]
                                         ).model == name
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "kg", "--model", "distmult", "--out", "x.json"])
    with pytest.raises(ConfigError, match="choose one of rotate, transe, complex"):
        resolve_interaction("distmult")


class DistMult(Interaction):
    """``<e_h * w_r, e_t>`` in real coordinates: the kind of interaction a student adds (here
    only in a test)."""

    name = "distmult"
    entity_reals = relation_reals = 1
    distance = False

    @staticmethod
    def transform(e, w):
        return e * w


def test_a_new_interaction_is_its_class_plus_one_row(ms):
    """One class (its facts as ClassVars) and one row of the resolver: the model scores,
    trains, and a narrower student warm-starts from it."""
    from sellakit.kg.distill import warm_start
    from sellakit.kg.models import INTERACTIONS, resolve_interaction
    from sellakit.kg.train import TrainConfig, train_kge

    table = {**INTERACTIONS, DistMult.name: DistMult}
    assert resolve_interaction("distmult", table) is DistMult and "distmult" not in INTERACTIONS
    kg = ms.kgs["s0"]
    model = KGEModel(kg.n_entities, ms.n_relations, 8, resolve_interaction("distmult", table))
    assert model.width == 8 and model.relation.weight.shape == (2 * ms.n_relations, 8)
    h, r = torch.tensor([0, 1]), torch.tensor([0, 1])
    e_h, e_t = model.entity.weight[h], model.entity.weight
    assert torch.allclose(model.score_tails(h, r), (e_h * model.relation.weight[r]) @ e_t.T,
                          atol=1e-6)
    config = TrainConfig(dim=8, epochs=3, batch_size=256, n_negatives=16, lr=0.05)
    before = model.score_tails(h, r).detach().clone()
    result = train_kge(kg.train, kg.n_entities, ms.n_relations, config, model=model,
                       progress=False)
    assert result.model is model and not torch.equal(model.score_tails(h, r), before)
    narrow = KGEModel(kg.n_entities, ms.n_relations, 4, DistMult)
    coords = warm_start(narrow, model, np.arange(kg.n_entities))
    assert torch.equal(narrow.relation.weight, model.relation.weight[:, coords])


def test_configure_optimizers_leaves_the_model_as_built():
    """The tables are sparse from construction (SparseAdam's rows), so configuring the
    optimisers changes nothing on the model it is asked of."""
    model = KGEModel(7, 3, 4, "rotate")
    assert model.entity.sparse and model.relation.sparse
    state = {k: v.clone() for k, v in model.state_dict().items()}
    optimisers = model.configure_optimizers(0.01)
    assert [type(o).__name__ for o in optimisers] == ["SparseAdam"]
    assert model.entity.sparse and all(torch.equal(state[k], v)
                                       for k, v in model.state_dict().items())


def test_neighbour_table_lists_in_edges():
    from sellakit.kg.models import neighbour_table

    graph = np.array([[0, 0, 2], [1, 1, 2], [3, 0, 2], [2, 1, 0]])
    heads, rels, mask = neighbour_table(graph, 4, k=2, seed=0)
    assert mask.sum(1).tolist() == [1, 0, 2, 0]  # entity 2 has 3 in-edges, capped at 2
    assert (heads[0, 0], rels[0, 0]) == (2, 1)
    edges = {(h, r) for h, r, t in graph if t == 2}
    assert {(heads[2, j], rels[2, j]) for j in range(2)} <= edges


@pytest.mark.parametrize("model", ["rotate", "transe", "complex"])
def test_gnn_encoder_starts_as_the_shallow_model_and_caches_in_eval(model):
    from sellakit.kg.train import TrainConfig, build_model

    graph = np.array([[0, 0, 1], [1, 1, 2], [2, 0, 3], [3, 2, 0], [4, 1, 0]])
    gnn = build_model(TrainConfig(model=model, encoder="gnn", dim=4), 6, 3, graph)
    shallow = KGEModel(6, 3, 4, model)
    shallow.load_state_dict({k: v for k, v in gnn.state_dict().items()
                             if k.startswith(("entity", "relation"))})
    h, r = torch.tensor([0, 3]), torch.tensor([1, 4])
    assert torch.allclose(gnn.score_tails(h, r), shallow.score_tails(h, r))  # W starts at 0
    with torch.no_grad():
        gnn.combine.weight.normal_()
    gnn.eval()
    with torch.no_grad():
        live = gnn.score_tails(h, r)
        assert not torch.allclose(live, shallow.score_tails(h, r))  # neighbours now count
        table = gnn.entity_table()
        assert gnn.entity_table() is table  # encoded once in eval mode
        assert torch.allclose(gnn.score_tails(h, r), live)
    gnn.train()
    assert gnn._table is None  # training again drops the cached table
    # the in-edges are buffers: saved and checked with the weights
    assert {"neighbour_heads", "neighbour_relations", "neighbour_mask"} <= set(gnn.state_dict())


def test_gnn_encoder_trains_and_distils(ms):
    """A GNN model trains end to end (dense W beside sparse tables) and serves as a teacher;
    with an encoder the network KD term is on, and J1 comes from the teacher's run."""
    from sellakit.kg.compare import StudentConfig, train_scratch, train_student
    from sellakit.kg.pretrain import TeacherConfig, pretrain_teacher
    from sellakit.kg.protocol import data_rule
    from sellakit.kg.train import TrainConfig

    rule = data_rule(ms, per_kg=50)
    arch = dict(encoder="gnn", gnn_neighbours=4, epochs=4, eval_every=2, batch_size=256,
                n_negatives=32, lr=0.03)
    teacher = pretrain_teacher(ms, rule, TeacherConfig(train=TrainConfig(dim=16, **arch)),
                               progress=False)
    assert teacher.model.combine.weight.abs().sum() > 0  # W moved away from zero
    assert set(teacher.j1) == set(ms.kgs) and {"valid_mrr_s0", "valid_mrr_s1"} <= set(
        teacher.history)
    # J1 of s0 is the run's best epoch on s0's own selection facts
    s0 = teacher.history.dropna(subset=["valid_mrr_s0"])
    assert teacher.j1["s0"]["best_epoch"] == int(s0.epoch[s0.valid_mrr_s0.idxmax()])
    student = StudentConfig(train=TrainConfig(dim=8, **arch))
    scratch = train_scratch(ms, rule, "s0", student, progress=False)
    kd, _ = train_student(ms, rule, "s0", teacher, student, progress=False)
    history = kd.result.history
    assert np.isfinite(history.loss).all()
    assert {"kd_feature", "kd_network", "kd_prediction"} <= set(history)
    assert kd.result.best_valid["mrr"] > 0 and scratch.result.best_valid["mrr"] > 0
    assert set(kd.seconds) == {"build", "precompute", "train"}


def test_joint_modes(ms):
    from sellakit.kg.pretrain import build_joint
    from sellakit.kg.protocol import data_rule

    rule = data_rule(ms)
    swap = build_joint(ms, rule, mode="swapping")
    share = build_joint(ms, rule, mode="sharing")
    mapping = build_joint(ms, rule, mode="mapping")
    assert swap.n_bridges > 0 and len(swap.links) > 0
    assert share.n_entities < swap.n_entities  # linked entities merged
    (a, b), pairs = next(iter(ms.links.items()))
    assert np.array_equal(share.ids[a][pairs[:, 0]], share.ids[b][pairs[:, 1]])
    assert mapping.n_bridges == 0 and len(mapping.links) == len(swap.links)


def _small_teacher(ms, rule, dim=8):
    from sellakit.kg.pretrain import build_joint

    joint = build_joint(ms, rule, mode="swapping")
    torch.manual_seed(0)
    return joint, KGEModel(joint.n_entities, ms.n_relations, dim)


def test_subgraph_options(ms):
    from sellakit.kg.protocol import data_rule
    from sellakit.kg.subgraph import build_linked_subgraph

    rule = data_rule(ms, per_kg=50)
    joint, teacher = _small_teacher(ms, rule)
    n_t = ms.kgs["s0"].n_entities
    sub = build_linked_subgraph(ms, rule, joint, "s0", fanout=3, predicted=True,
                                teacher=teacher, threshold=-1.0)
    assert sub.n_entities > n_t and sub.n_background_triples > 0 and sub.n_bridge_triples > 0
    assert sub.n_predicted_links >= 0 and len(sub.teacher_ids) == sub.n_entities
    assert np.array_equal(sub.teacher_ids[:n_t], joint.ids["s0"])
    bare = build_linked_subgraph(ms, rule, joint, "s0", fanout=0)
    assert bare.n_background_triples == 0 and bare.n_bridge_triples > 0  # links only
    shared = build_linked_subgraph(ms, rule, joint, "s0", fanout=3, link_mode="sharing")
    assert shared.n_bridge_triples == 0 and shared.n_entities < sub.n_entities
    with pytest.raises(Exception, match="link_mode"):
        build_linked_subgraph(ms, rule, joint, "s0", link_mode="mapping")


def test_warm_start_is_the_teachers_strongest_coordinates(ms):
    """A student of the teacher's width starts *as* the teacher; a narrower one on the
    coordinates of largest energy, relations on the same coordinates."""
    from sellakit.kg.distill import strongest_coordinates, warm_start
    from sellakit.kg.protocol import data_rule

    rule = data_rule(ms)
    joint, teacher = _small_teacher(ms, rule)
    with torch.no_grad():
        teacher.entity.weight[:, 2] *= 10  # coordinate 2 (real part) dominates
    ids = joint.ids["s0"]
    h, r = torch.tensor([0, 1, 2]), torch.tensor([0, 1, 2])
    same = KGEModel(len(ids), ms.n_relations, 8)
    warm_start(same, teacher, ids)
    assert torch.allclose(same.score_tails(h, r), teacher.score_query(
        teacher.query(torch.as_tensor(ids)[h], r), torch.as_tensor(ids)), atol=1e-5)
    narrow = KGEModel(len(ids), ms.n_relations, 4)
    coords = warm_start(narrow, teacher, ids)
    assert 2 in coords.tolist() and coords.tolist() == strongest_coordinates(teacher, 4).tolist()
    assert torch.equal(narrow.relation.weight, teacher.relation.weight[:, coords])
    with pytest.raises(Exception, match="wider"):
        warm_start(KGEModel(len(ids), ms.n_relations, 16), teacher, ids)


def test_kd_terms_read_precomputed_targets(ms):
    from sellakit.kg.data import canonical_ids
    from sellakit.kg.distill import KD_TERMS, Distiller, KDConfig
    from sellakit.kg.protocol import data_rule
    from sellakit.kg.subgraph import build_linked_subgraph

    rule = data_rule(ms, per_kg=50)
    joint, teacher = _small_teacher(ms, rule)
    sub = build_linked_subgraph(ms, rule, joint, "s0", fanout=3)
    n_t = sub.n_target_entities
    student = KGEModel(sub.n_entities, ms.n_relations, 4)
    kwargs = dict(queries=sub.triples, n_target=n_t, banned=rule.banned_keys(("s0",)),
                  canon=canonical_ids(ms)["s0"])
    h, r, t = (torch.as_tensor(x) for x in sub.triples[:2].T)  # training queries
    neg = torch.tensor([4, 5, 6])
    q = student.query(h, r)
    logits = torch.cat([student.score_query(q, t[:, None]), student.score_query(q, neg)], 1)
    full = Distiller(teacher, sub.teacher_ids, student.width, KDConfig(top_k=5), **kwargs)
    assert full.candidates.shape[1] == 5 and int(full.candidates.max()) < n_t
    batch = {"h": h, "r": r, "t": t, "negatives": neg, "query": q, "logits": logits}
    loss, parts = full(student, batch)
    assert set(parts) == {"kd_feature", "kd_prediction"}  # network folds into feature here
    loss.backward()
    assert student.entity.weight.grad is not None
    assert all(p.grad is None for p in teacher.parameters())  # the teacher stays frozen
    # the teacher's targets are read, not recomputed: a changed teacher changes nothing
    with torch.no_grad():
        teacher.entity.weight.mul_(3)
    again, _ = full(student, batch)
    assert torch.allclose(again, loss)
    for term in ("feature", "prediction"):
        _, parts = Distiller(teacher, sub.teacher_ids, student.width,
                             KDConfig(top_k=5).without(term), **kwargs)(student, batch)
        assert f"kd_{term}" not in parts and len(parts) == 1
    assert KD_TERMS == ("feature", "network", "prediction")


def test_kd_candidates_never_reexpress_held_out_facts(ms):
    """Top-k candidates whose fact is a held-out one (here: every test fact of the target made
    the teacher's top answer) are skipped."""
    from sellakit.kg.data import canonical_ids, canonical_keys
    from sellakit.kg.distill import Distiller, KDConfig
    from sellakit.kg.protocol import data_rule
    from sellakit.kg.subgraph import build_linked_subgraph

    rule = data_rule(ms, per_kg=50)
    joint, teacher = _small_teacher(ms, rule)
    sub = build_linked_subgraph(ms, rule, joint, "s0", fanout=3)
    canon = canonical_ids(ms)["s0"]
    held = rule.held_out("s0")
    # queries that share (h, r) with held-out facts, so the candidates can hit them
    queries = np.concatenate([sub.triples, held[:, [0, 1, 0]]])
    kd = Distiller(teacher, sub.teacher_ids, 8, KDConfig(top_k=40), queries=queries,
                   n_target=sub.n_target_entities, banned=rule.banned_keys(("s0",)),
                   canon=canon)
    used = canonical_keys(kd.candidate_triples(), canon, ms.n_relations)
    assert len(used) > 0
    assert not np.isin(used, canonical_keys(held, canon, ms.n_relations)).any()
    unfiltered = Distiller(teacher, sub.teacher_ids, 8, KDConfig(top_k=40), queries=queries,
                           n_target=sub.n_target_entities, banned=np.zeros(0, np.int64),
                           canon=canon)
    assert np.isin(canonical_keys(unfiltered.candidate_triples(), canon, ms.n_relations),
                   canonical_keys(held, canon, ms.n_relations)).any()  # the check can fail


def test_dbp5l_missing_folder_names_the_fix(tmp_path):
    with pytest.raises(DataError, match="--data-dir"):
        load_dbp5l(tmp_path / "nope")
    (tmp_path / "kg").mkdir()
    with pytest.raises(DataError, match="missing"):
        load_dbp5l(tmp_path)


def _offline(monkeypatch):
    import urllib.request

    def refuse(*args, **kwargs):
        raise OSError("network unreachable")
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def test_dbp5l_offline_download_error(tmp_cache, monkeypatch):
    monkeypatch.delenv(DBP5L_ENV, raising=False)
    _offline(monkeypatch)
    with pytest.raises(DataError) as err:
        load_dbp5l(None)
    message = str(err.value)
    assert "--data-dir DIR" in message and DBP5L_ENV in message and "github.com" in message
    assert "pip download" not in message and "None" not in message
    assert not (tmp_cache / "datasets" / "dbp5l").exists()  # nothing half-written
    assert locate_dbp5l() is None


def test_without_dbp5l_the_notebooks_get_the_named_stand_in(tmp_cache, monkeypatch):
    monkeypatch.delenv(DBP5L_ENV, raising=False)
    _offline(monkeypatch)
    ms = load_multisource()
    assert ms.derived and "derived" in ms.title and DBP5L_ENV in ms.note
    assert ms.relation_labels is not None and len(ms.relation_labels) == ms.n_relations


def test_a_broken_dbp5l_folder_is_an_error_not_a_stand_in(tmp_cache, tmp_path, monkeypatch):
    (tmp_path / "kg").mkdir()
    monkeypatch.setenv(DBP5L_ENV, str(tmp_path))
    with pytest.raises(DataError, match=f"missing \\(\\${DBP5L_ENV}\\)"):
        load_multisource()
    monkeypatch.setenv(DBP5L_ENV, str(tmp_path / "nope"))
    with pytest.raises(DataError, match="does not exist"):
        load_multisource()


# The real files: CI sets SELLAKIT_DBP5L (.ci/run, when ../shared/data/dbp5l exists).
DBP5L = os.environ.get(DBP5L_ENV)
needs_dbp5l = pytest.mark.skipif(
    not DBP5L, reason=f"DBP-5L not on this machine: set {DBP5L_ENV} to the KEnS data/ folder")


@needs_dbp5l
def test_dbp5l_counts():
    ms = load_dbp5l(DBP5L)
    counts = {k: (len(v.train), len(v.valid), len(v.test)) for k, v in ms.kgs.items()}
    assert counts == {"el": (8670, 4152, 1017), "ja": (17979, 8633, 2162),
                      "es": (33036, 16220, 4810), "fr": (30139, 14705, 4171),
                      "en": (48652, 24051, 7464)}
    assert ms.n_relations == 960 and not ms.derived and ms.title == "DBP-5L"


@needs_dbp5l
def test_dbp5l_from_a_path_is_kept_in_the_cache(tmp_cache, monkeypatch):
    """After one load from a folder, a load without a path or variable works offline (another
    checkout, a notebook without DATA_DIR)."""
    first = load_dbp5l(DBP5L)
    monkeypatch.delenv(DBP5L_ENV)
    _offline(monkeypatch)
    again = load_multisource()
    assert again.source == str(tmp_cache / "datasets" / "dbp5l") and not again.note
    assert {k: len(v.test) for k, v in again.kgs.items()} == \
        {k: len(v.test) for k, v in first.kgs.items()}


@needs_dbp5l
def test_dbp5l_variable_comes_before_the_cache(tmp_cache):
    ms = load_multisource()  # SELLAKIT_DBP5L is set
    assert ms.name == "dbp5l" and ms.source == str(Path(DBP5L).resolve())


def test_kg_markdown_shapes():
    """The table reads the flat one-target JSON shape of the issue (and published rows)."""
    from sellakit.benchmarks.kg import aims, kg_markdown, time_accounting
    from sellakit.kg import kd_comparisons

    row = {"mrr": 0.3, "hits@1": 0.2, "hits@3": 0.35, "hits@10": 0.5, "n": 10, "seconds": 1.0,
           "best_epoch": 4, "max_epochs": 40}
    rng = np.random.default_rng(0)
    ranks = {m: [rng.integers(1, 20, 200).astype(float)] for m in ("kd", "j2", "scratch")}
    ranks["kd"] = [r / 2 for r in ranks["j2"]]  # KD ranks every query higher
    results = {"target": "el", "dataset": "dbp5l", "teacher": row, "scratch": row,
               "kd": {**row, "seconds": 2.0}, "j1": row, "j2": {**row, "seconds": 10.0},
               "joint": row, "ablations": {"-feature": row}, "teacher_seconds": 9.0,
               "temperature": {"chosen": 2.0, "seconds": 3.0},
               "preset": "quick", "seed": 1, "seeds": 1, "j2_seeds": 1,
               "data_rule": {"selection_per_kg": 1000},
               "teacher_config": {"model": "rotate", "dim": 64, "mode": "swapping",
                                  "best_epoch": 10, "max_epochs": 60},
               "student": {"model": "rotate", "dim": 32}}
    results["_comparisons"] = kd_comparisons(ranks)
    results["time"] = time_accounting(results, 9.0, n_targets=5)
    results["aims"] = aims(results)
    assert results["_comparisons"]["kd - j2"]["verdict"] == "better"
    assert results["time"]["break_even_targets"] == round(9.0 / 8.0, 2)
    assert results["aims"]["student_at_most_half_of_j2"]
    table = kg_markdown(results, command="sellakit bench kg")
    assert "| el | student + KD (tau 2.0) | 30.0 |" in table and "published" in table
    assert "| el | kd - j2 |" in table


def test_rotate_matrix_scorer_equals_pykeen_scores():
    """The evaluator's RotatE scorer (one matrix product) gives PyKEEN's broadcast scores."""
    from pykeen.models import RotatE
    from pykeen.triples import CoreTriplesFactory

    from sellakit.kg.evaluate import rotate_tail_scorer

    triples = torch.randint(0, 60, (300, 3)) % torch.tensor([60, 6, 60])
    model = RotatE(triples_factory=CoreTriplesFactory.create(triples, num_entities=60,
                                                             num_relations=6),
                   embedding_dim=16, random_seed=0)
    heads, rels = torch.arange(12) * 5, torch.arange(12) % 6
    with torch.no_grad():
        theirs = model.score_t(torch.stack([heads, rels], 1)).double()
        ours = rotate_tail_scorer(model.entity_representations[0](indices=None),
                                  model.relation_representations[0](indices=None))(heads, rels)
    assert ours.shape == (12, 60)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    assert torch.equal(ours.argsort(1)[:, -5:], theirs.argsort(1)[:, -5:])


def test_junk_in_the_cached_dbp5l_is_never_served(tmp_cache, monkeypatch):
    """A cache folder under DBP-5L's name whose files do not match the pins is removed."""
    from sellakit.kg.data import DBP5L_SHA256

    monkeypatch.delenv(DBP5L_ENV, raising=False)
    junk = tmp_cache / "datasets" / "dbp5l"
    for rel in DBP5L_SHA256:
        (junk / rel).parent.mkdir(parents=True, exist_ok=True)
        (junk / rel).write_text("0\t0\t0\n")
    assert locate_dbp5l() is None and not junk.exists()


@needs_dbp5l
def test_no_held_out_fact_reaches_any_training_graph_on_dbp5l():
    """For all five targets: 0 canonical overlaps between the target's test ∪ selection facts
    and the teacher's graph, J2's, scratch's, the student's subgraph and its KD candidates
    (ranked by an *untrained* teacher of the real shape: the filter does not depend on how good
    the teacher is). The el↔en line identity is part of the rule, and without it leaks appear."""
    from dataclasses import replace

    from sellakit.kg.data import canonical_keys
    from sellakit.kg.distill import Distiller, KDConfig
    from sellakit.kg.pretrain import build_joint
    from sellakit.kg.protocol import data_rule
    from sellakit.kg.subgraph import build_linked_subgraph

    ms = load_dbp5l()
    rule, canon = data_rule(ms), canonical_ids(ms)

    def joint_keys(joint):
        inv = np.full(joint.n_entities, -1, np.int64)
        for name, ids in joint.ids.items():
            assert (inv[ids][inv[ids] >= 0] == canon[name][inv[ids] >= 0]).all()  # one class
            inv[ids] = canon[name]
        return canonical_keys(joint.triples, inv, ms.n_relations)

    teacher_joint = build_joint(ms, rule)
    teacher_keys = joint_keys(teacher_joint)
    torch.manual_seed(0)
    untrained = KGEModel(teacher_joint.n_entities, ms.n_relations, 4)
    for target in ms.kgs:
        banned = rule.banned_keys((target,))
        assert len(banned) >= len(ms.kgs[target].test)
        assert not np.isin(teacher_keys, banned).any(), target
        assert not np.isin(joint_keys(build_joint(ms, rule, protect=(target,))), banned).any()
        scratch, _ = rule.training(target, (target,))
        assert not np.isin(canonical_keys(scratch, canon[target], ms.n_relations), banned).any()
        sub = build_linked_subgraph(ms, rule, teacher_joint, target, fanout=5)
        sub_canon = np.asarray([canon[name][local] for name, local in sub.origin])
        assert not np.isin(canonical_keys(sub.triples, sub_canon, ms.n_relations), banned).any()
        held = rule.held_out(target)  # queries sharing (h, r) with held-out facts stress it
        kd = Distiller(untrained, sub.teacher_ids, 8, KDConfig(top_k=32),
                       queries=np.concatenate([sub.triples, held]),
                       n_target=sub.n_target_entities, banned=banned, canon=canon[target])
        used = canonical_keys(kd.candidate_triples(), canon[target], ms.n_relations)
        assert len(used) > 0 and not np.isin(used, banned).any(), target
    # the line identity matters: without it, English training facts re-express Greek test facts
    plain = replace(ms, same_entities={})
    en_plain, _ = data_rule(plain).training("en", ("el",))
    assert rule.leaks("en", en_plain, ("el",)) > 0
