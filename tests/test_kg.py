"""sellakit.kg: data, leakage, evaluator parity with PyKEEN, subgraph, KD terms (small data)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

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


@pytest.mark.parametrize("model", ["rotate", "transe", "complex"])
def test_scores_without_grad_equal_the_graph_path_exactly(model):
    """Evaluation and the frozen teacher score in place (no graph kept): the very same values
    as the differentiable path, to the bit, for shared and per-row candidates."""
    torch.manual_seed(0)
    m = KGEModel(50, 3, 8, model)
    queries = (m.query(torch.arange(20) % 50, torch.arange(20) % 6),
               m.query(torch.tensor([7]), torch.tensor([4])),  # one query
               m.query(torch.tensor(7), torch.tensor(4)))  # one unbatched query
    for q in queries:
        for candidates in (None, torch.arange(30), torch.tensor([3]),
                           torch.randint(0, 50, (*q.shape[:-1], 5))):
            with_graph = m.score_query(q, candidates)
            assert with_graph.requires_grad
            for no_graph in (torch.no_grad, torch.inference_mode):
                with no_graph():
                    assert torch.equal(m.score_query(q.detach(), candidates),
                                       with_graph.detach())


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
    """The tables are sparse from construction (RowAdam's rows), so configuring the
    optimisers changes nothing on the model it is asked of."""
    model = KGEModel(7, 3, 4, "rotate")
    assert model.entity.sparse and model.relation.sparse
    state = {k: v.clone() for k, v in model.state_dict().items()}
    optimisers = model.configure_optimizers(0.01)
    assert [type(o).__name__ for o in optimisers] == ["RowAdam"]
    assert model.entity.sparse and all(torch.equal(state[k], v)
                                       for k, v in model.state_dict().items())


def test_row_adam_is_sparse_adam_bit_for_bit():
    """RowAdam's parameters and moments equal torch's SparseAdam's exactly, over steps with
    repeated rows in one gradient (the lookups of h, t and negatives), a row seen again
    later, a step where only the relation table has a gradient, and a second group."""
    from sellakit.kg.optim import RowAdam

    def tables():
        torch.manual_seed(0)
        return [nn.Embedding(50, 6, sparse=True), nn.Embedding(8, 4, sparse=True)]

    ours, theirs = tables(), tables()
    opt_ours = RowAdam([{"params": [ours[0].weight]}, {"params": [ours[1].weight], "lr": 0.3}],
                       lr=0.05)
    opt_theirs = torch.optim.SparseAdam([{"params": [theirs[0].weight]},
                                         {"params": [theirs[1].weight], "lr": 0.3}], lr=0.05)
    gen = torch.Generator().manual_seed(1)
    for step in range(6):
        rows = torch.randint(0, 50, (30,), generator=gen)  # repeats: an uncoalesced gradient
        rels = torch.randint(0, 8, (30,), generator=gen)
        weights = torch.randn(30, generator=gen)
        for (ent, rel), opt in ((ours, opt_ours), (theirs, opt_theirs)):
            opt.zero_grad(set_to_none=True)
            loss = (rel(rels).sum(1) * weights).sum()
            if step != 3:
                loss = loss + (ent(rows).pow(2).sum(1) * weights).sum()
            loss.backward()
            opt.step()
    for mine, reference in zip(ours, theirs):
        assert torch.equal(mine.weight, reference.weight)
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(torch.as_tensor(opt_ours.state[mine.weight][key]),
                               torch.as_tensor(opt_theirs.state[reference.weight][key]))
    assert not torch.equal(ours[0].weight, tables()[0].weight)  # it did train
    dense = nn.Parameter(torch.zeros(3))
    dense.grad = torch.ones(3)
    with pytest.raises(ConfigError, match="sparse gradients"):
        RowAdam([dense]).step()


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


def _kd_batch(student, sub, neg):
    h, r, t = (torch.as_tensor(x) for x in sub.triples[:6].T)  # training queries
    h, r, t = torch.cat([h, t]), torch.cat([r, r + student.n_relations]), torch.cat([t, h])
    q = student.query(h, r)
    logits = torch.cat([student.score_query(q, t[:, None]), student.score_query(q, neg)], 1)
    return {"h": h, "r": r, "t": t, "negatives": neg, "query": q, "logits": logits}


def test_kd_terms_on_shared_negatives_read_a_frozen_teacher(ms):
    """Feature KD reads the teacher's rows, prediction KD scores the batch's true tails and
    shared negatives with the frozen teacher (taken at construction): a changed teacher
    changes nothing, the teacher never gets a gradient, each term switches off alone."""
    from sellakit.kg.distill import KD_TERMS, Distiller, KDConfig
    from sellakit.kg.protocol import data_rule
    from sellakit.kg.subgraph import build_linked_subgraph

    rule = data_rule(ms, per_kg=50)
    joint, teacher = _small_teacher(ms, rule)
    sub = build_linked_subgraph(ms, rule, joint, "s0", fanout=3)
    student = KGEModel(sub.n_entities, ms.n_relations, 4)
    kwargs = dict(graph=sub.triples, banned=rule.banned_keys(("s0",)),
                  canon=sub.canonical(rule.canon))
    batch = _kd_batch(student, sub, torch.tensor([4, 5, 6, 7]))
    full = Distiller(teacher, sub.teacher_ids, student.width, KDConfig(), **kwargs)
    loss, parts = full(student, batch)
    assert set(parts) == {"kd_feature", "kd_prediction"}  # network folds into feature here
    assert parts["kd_prediction"] > 0
    loss.backward()
    assert student.entity.weight.grad is not None
    assert all(p.grad is None for p in teacher.parameters())  # the teacher stays frozen
    with torch.no_grad():
        teacher.entity.weight.mul_(3)
        teacher.relation.weight.add_(1)
    again, _ = full(student, batch)
    assert torch.allclose(again, loss)
    for term in ("feature", "prediction"):
        _, parts = Distiller(teacher, sub.teacher_ids, student.width,
                             KDConfig().without(term), **kwargs)(student, batch)
        assert f"kd_{term}" not in parts and len(parts) == 1
    assert KD_TERMS == ("feature", "network", "prediction")


def test_prediction_kd_is_its_definition_on_masked_candidates(ms):
    """The prediction term equals tau^2 times the mean, over the queries that keep a
    candidate and whose head has a teacher row, of KL(softmax(z^T / tau) || softmax(z^S /
    tau)) over the candidates that are kept: not the true tail among the negatives, not an
    entity without a teacher row, not a re-expressed held-out fact. Computed here directly from
    the teacher's own scores, so the masks and the row selection can fail it."""
    from sellakit.kg.data import canonical_keys
    from sellakit.kg.distill import Distiller, KDConfig
    from sellakit.kg.protocol import data_rule
    from sellakit.kg.subgraph import build_linked_subgraph

    rule = data_rule(ms, per_kg=50)
    joint, teacher = _small_teacher(ms, rule)
    sub = build_linked_subgraph(ms, rule, joint, "s0", fanout=3)
    held, n_rel = rule.held_out("s0")[:10], ms.n_relations
    student = KGEModel(sub.n_entities, ms.n_relations, 4)
    neg = torch.arange(sub.n_entities)  # every entity: banned, unknown and true-tail columns
    batch = _kd_batch(student, sub, neg)
    h = torch.cat([batch["h"], torch.as_tensor(held[:, 0])])
    r = torch.cat([batch["r"], torch.as_tensor(held[:, 1])])
    t = torch.cat([batch["t"], torch.as_tensor(held[:, 2])])
    q = student.query(h, r)
    logits = torch.cat([student.score_query(q, t[:, None]), student.score_query(q, neg)], 1)
    logits = logits.masked_fill(torch.cat([torch.zeros(len(t), 1, dtype=torch.bool),
                                           neg[None] == t[:, None]], 1), -1e9)
    tau = 2.0
    kd = Distiller(teacher, sub.teacher_ids, student.width, KDConfig(temperature=tau),
                   graph=sub.triples, banned=rule.banned_keys(("s0",)),
                   canon=sub.canonical(rule.canon))
    columns = torch.cat([t[:, None], neg.expand(len(t), -1)], 1)
    # the held-out facts' re-expressions, straight from their canonical keys
    cc, hh, rr = columns.numpy(), h.numpy()[:, None], r.numpy()[:, None]
    facts = np.where((rr < n_rel)[..., None], np.stack(np.broadcast_arrays(hh, rr, cc), -1),
                     np.stack(np.broadcast_arrays(cc, rr - n_rel, hh), -1))
    banned = torch.as_tensor(np.isin(canonical_keys(facts, sub.canonical(rule.canon), n_rel),
                                     rule.banned_keys(("s0",))).reshape(cc.shape))
    assert banned[:, 1:].any()
    with torch.no_grad():
        view = kd.teacher_view
        z_t = torch.stack([view.score_query(view.query(h[i:i + 1], r[i:i + 1]),
                                            columns[i:i + 1])[0] for i in range(len(h))])
    for unknown_head in (False, True):  # every row kept; one row left out
        kd.known[h[0]] = not unknown_head
        drop = (logits <= -1e8) | ~kd.known[columns] | banned
        kept = [i for i in range(len(h)) if kd.known[h[i]] and not drop[i].all()]
        assert (len(kept) < len(h)) if unknown_head else (len(kept) == len(h))
        expected = []
        for i in kept:
            keep = ~drop[i]
            p = torch.softmax(z_t[i][keep] / tau, 0)
            expected.append((p * (p.log() - torch.log_softmax(logits[i][keep] / tau, 0))).sum())
        expected = torch.stack(expected).mean() * tau ** 2
        got = kd._prediction(h, r, t, neg, logits)
        assert torch.allclose(got, expected, rtol=1e-4, atol=1e-6), (got, expected)
        grad_got, = torch.autograd.grad(got, logits, retain_graph=True)
        grad_expected, = torch.autograd.grad(expected, logits, retain_graph=True)
        assert torch.allclose(grad_got, grad_expected, atol=1e-6)


def test_kd_columns_that_reexpress_held_out_facts_are_masked(ms):
    """Candidates (true tails, shared negatives) whose fact re-expresses a held-out one, read
    forward or from a reciprocal query, are exactly the masked ones; and masking them changes
    the prediction term (the check can fail)."""
    from sellakit.kg.data import canonical_keys
    from sellakit.kg.distill import Distiller, KDConfig
    from sellakit.kg.protocol import data_rule
    from sellakit.kg.subgraph import build_linked_subgraph

    rule = data_rule(ms, per_kg=50)
    joint, teacher = _small_teacher(ms, rule)
    sub = build_linked_subgraph(ms, rule, joint, "s0", fanout=3)
    canon, held = sub.canonical(rule.canon), rule.held_out("s0")[:20]
    banned = rule.banned_keys(("s0",))
    kd = Distiller(teacher, sub.teacher_ids, 8, KDConfig(), graph=sub.triples, banned=banned,
                   canon=canon)
    n_rel = ms.n_relations
    h = torch.as_tensor(np.concatenate([held[:, 0], held[:, 2]]))
    r = torch.as_tensor(np.concatenate([held[:, 1], held[:, 1] + n_rel]))
    columns = torch.arange(sub.n_target_entities)
    mask = kd.banned_columns(h, r, columns).numpy()
    hh, rr, cc = np.repeat(h.numpy(), len(columns)), np.repeat(r.numpy(), len(columns)), \
        np.tile(columns.numpy(), len(h))
    facts = np.where((rr < n_rel)[:, None], np.stack([hh, rr, cc], 1),
                     np.stack([cc, rr - n_rel, hh], 1))
    expected = np.isin(canonical_keys(facts, canon, n_rel), banned).reshape(mask.shape)
    assert expected.sum() >= 2 * len(held) and np.array_equal(mask, expected)
    student = KGEModel(sub.n_entities, ms.n_relations, 4)
    batch = _kd_batch(student, sub, columns)
    batch.update(h=h, r=r, t=torch.as_tensor(np.concatenate([held[:, 2], held[:, 0]])))
    q = student.query(batch["h"], batch["r"])
    batch["logits"] = torch.cat([student.score_query(q, batch["t"][:, None]),
                                 student.score_query(q, columns)], 1)
    free = Distiller(teacher, sub.teacher_ids, 8, KDConfig(), graph=sub.triples,
                     banned=np.zeros(0, np.int64), canon=canon)
    assert not torch.allclose(kd._prediction(h, r, batch["t"], columns, batch["logits"]),
                              free._prediction(h, r, batch["t"], columns, batch["logits"]))


def test_teacher_rows_fill_unseen_entities_from_linked_neighbours():
    """An entity without a teacher row takes the mean of its neighbours' rows that exist; one
    with none keeps no row (and a warm start leaves it as initialised)."""
    from sellakit.kg.distill import teacher_rows, warm_start

    table = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    ids = np.array([2, 0, -1, -1, -1])
    graph = np.array([[2, 0, 0], [1, 1, 2], [3, 0, 4]])  # 2 ~ {0, 1}; 3 and 4 only each other
    rows, known = teacher_rows(table, ids, graph)
    assert known.tolist() == [True, True, True, False, False]
    assert torch.equal(rows[0], table[2]) and torch.equal(rows[2], (table[2] + table[0]) / 2)
    teacher, student = KGEModel(3, 1, 2), KGEModel(5, 1, 2)
    before = student.entity.weight[3:].clone()
    warm_start(student, teacher, ids, graph)
    assert torch.equal(student.entity.weight[3:], before)
    assert torch.equal(student.entity.weight[2], (teacher.entity.weight[2]
                                                  + teacher.entity.weight[0]) / 2)


def test_new_kg_setting_teacher_never_sees_the_target(ms, tmp_cache):
    """The paper's setting: the teacher trains on the other KGs only (its own cache entry);
    the student's linked target entities take their partners' rows; every row of the
    comparison runs at every seed, J2 warm-started included, with time by phase; and the
    two-level comparisons cover KD apart from the warm start."""
    from sellakit.kg.compare import (METHODS, SETTINGS, StudentConfig, compare_on_target,
                                     kd_comparisons, resolve_setting, teacher_kgs)
    from sellakit.kg.pretrain import TeacherConfig, load_or_pretrain_teacher, teacher_cache_path
    from sellakit.kg.protocol import data_rule
    from sellakit.kg.train import TrainConfig

    rule = data_rule(ms, per_kg=50)
    arch = dict(epochs=2, eval_every=1, batch_size=512, n_negatives=16, lr=0.05)
    tcfg = TeacherConfig(train=TrainConfig(dim=8, **arch))
    new = resolve_setting("new-kg")
    assert [s.name for s in SETTINGS] == ["new-kg", "all-kgs"] and not new.teacher_sees_target
    kgs = teacher_kgs(ms, new, "s0")
    teacher = load_or_pretrain_teacher(ms, rule, tcfg, kgs=kgs, progress=False)
    assert "s0" not in teacher.joint.ids and set(teacher.j1) == set(kgs)
    assert teacher_cache_path(ms, rule, tcfg, kgs) != teacher_cache_path(ms, rule, tcfg)
    assert load_or_pretrain_teacher(ms, rule, tcfg, kgs=kgs, progress=False).cached
    student = StudentConfig(train=TrainConfig(dim=4, **arch))
    out = compare_on_target(ms, rule, "s0", teacher, student, tcfg, seeds=(1, 2),
                            progress=False)
    ranks = out.pop("_ranks")
    assert not out["teacher_saw_target"] and "teacher" not in out and "j1" not in out
    for method in METHODS:
        row = out[method.name]
        assert len(row["seeds"]) == 2 and len(ranks[method.name]) == 2
        assert {"build", "epochs", "validation"} <= set(row["phases"])
        assert row["seconds_per_epoch"] > 0 and row["epochs"] == 2
    assert out["subgraph"]["without_teacher_row"] < out["subgraph"]["target_entities"]
    comparisons = kd_comparisons(ranks)
    assert {"kd - j2", "kd - j2_warm", "kd - no_kd", "kd - kd_cold",
            "no_kd - j2"} <= set(comparisons)
    assert comparisons["kd - no_kd"]["seeds_a"] == 2
    with pytest.raises(ConfigError, match="new-kg"):
        resolve_setting("new")


def test_compare_rows_come_from_the_cache_the_second_time(ms, tmp_cache, monkeypatch):
    """A second comparison reads every row from the cache without training: the same metrics,
    recorded times, ranks and kept models (rebuilt strictly); a damaged entry is trained again
    with a warning; use_cache=False trains every row."""
    import sellakit.kg.compare as compare
    from sellakit.kg.pretrain import TeacherConfig, load_or_pretrain_teacher
    from sellakit.kg.protocol import data_rule
    from sellakit.kg.train import TrainConfig

    rule = data_rule(ms, per_kg=50)
    arch = dict(epochs=2, eval_every=1, batch_size=512, n_negatives=16, lr=0.05)
    tcfg = TeacherConfig(train=TrainConfig(dim=8, **arch))
    teacher = load_or_pretrain_teacher(ms, rule, tcfg, progress=False)
    student = compare.StudentConfig(train=TrainConfig(dim=4, **arch))
    trained = []
    real = compare.train_kge
    monkeypatch.setattr(compare, "train_kge", lambda *a, **k: trained.append(k["desc"])
                        or real(*a, **k))

    def run(**kw) -> dict:
        return compare.compare_on_target(ms, rule, "s0", teacher, student, tcfg, seeds=(1, 2),
                                         methods=("scratch", "kd", "no_kd"), progress=False,
                                         **kw)
    first = run()
    assert len(trained) == 6
    second = run()
    assert len(trained) == 6  # nothing trained
    ranks, models = first.pop("_ranks"), first.pop("_models")
    again, restored = second.pop("_ranks"), second.pop("_models")
    assert second == first  # metrics and recorded times
    assert again.keys() == ranks.keys() and all(
        np.array_equal(a, b) for name in ranks for a, b in zip(again[name], ranks[name]))
    assert set(restored) == set(models) == {"kd", "scratch"}
    for name, model in models.items():
        assert not restored[name].training
        state = restored[name].state_dict()
        assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    entries = sorted((tmp_cache / "derived" / "kg").glob("row-kd-2-*.pt"))
    assert len(entries) == 1
    entries[0].write_bytes(b"damaged")
    with pytest.warns(UserWarning, match="cannot be used"):
        third = run()
    assert trained[6:] == ["student s0"] and third["kd"]["mrr"] == first["kd"]["mrr"]
    assert entries[0].stat().st_size > 100  # written again
    run(use_cache=False)
    assert len(trained) == 13


def test_low_resource_targets_nest_and_keep_the_rule(ms, tmp_cache):
    """Fewer of the target's facts and links: nested draws, the other KGs and the alignment
    classes untouched (dropped links become held-out links), so the new-kg teacher's cache
    entry is the same one at every point."""
    from sellakit.kg.pretrain import TeacherConfig, teacher_cache_path
    from sellakit.kg.protocol import data_rule
    from sellakit.kg.resources import low_resource

    rule = data_rule(ms, per_kg=50)
    full, _ = rule.training("s0", ("s0",))
    quarter_ms, quarter = low_resource(ms, rule, "s0", facts=0.25, links=0.5)
    _, half = low_resource(ms, rule, "s0", facts=0.5)
    q, h = quarter.training("s0", ("s0",))[0], half.training("s0", ("s0",))[0]
    assert len(q) == round(0.25 * len(full)) and len(h) == round(0.5 * len(full))
    assert set(map(tuple, q)) <= set(map(tuple, h)) <= set(map(tuple, full))
    assert np.array_equal(quarter.training("s1", None)[0], rule.training("s1", None)[0])
    for name in ms.kgs:
        assert np.array_equal(quarter.canon[name], rule.canon[name])
    assert len(quarter_ms.links[("s0", "s1")]) < len(ms.links[("s0", "s1")])
    assert len(quarter_ms.links[("s1", "s2")]) == len(ms.links[("s1", "s2")])
    cfg, others = TeacherConfig(), ("s1", "s2")
    assert teacher_cache_path(quarter_ms, quarter, cfg, others) == \
        teacher_cache_path(ms, rule, cfg, others)
    with pytest.raises(ConfigError, match="fraction"):
        low_resource(ms, rule, "s0", facts=0.0)


def test_sweep_points_and_the_gap_table():
    """The sweeps' points come from the table and the grid; the figure's table puts the full
    point on both axes."""
    from sellakit.benchmarks.kg_sweeps import sweep_points
    from sellakit.viz import sweep_gaps

    axes = sweep_points("low-resource")
    assert len(axes) == 6 and {(p["facts"], p["links"]) for p in axes} >= {(0.1, 1.0),
                                                                           (1.0, 0.2)}
    assert len(sweep_points("low-resource", grid="cross")) == 12
    width = sweep_points("width", dims=(8, 16))
    assert [p["dim"] for p in width] == [None, 8, 16] and width[0]["methods"] == ("j2",)
    with pytest.raises(ConfigError, match="--sweep"):
        sweep_points("deep")
    gap = {"diff": 0.02, "lo": 0.01, "hi": 0.04}
    points = [{"target": "el", "facts": f, "links": lk, "comparisons": {"kd - j2": gap}}
              for f, lk in ((0.1, 1.0), (1.0, 1.0), (1.0, 0.5))]
    table = sweep_gaps({"points": points})
    assert sorted(zip(table.axis, table.fraction)) == [("facts", 0.1), ("facts", 1.0),
                                                       ("links", 0.5), ("links", 1.0)]
    assert np.allclose(table.gap, 2.0) and np.allclose(table.plus, 2.0)
    # KD − no KD (what KD adds to the warm start) is drawn too, and only the pairs asked for
    points[0]["comparisons"]["kd - no_kd"] = {"diff": -0.03, "lo": -0.05, "hi": -0.01}
    table = sweep_gaps({"points": points})
    assert set(table.comparison) == {"kd - j2", "kd - no_kd"}
    assert np.allclose(table[table.comparison == "kd - no_kd"].gap, -3.0)
    assert set(sweep_gaps({"points": points}, ("kd - no_kd",)).comparison) == {"kd - no_kd"}


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
    """The table reads the flat one-target JSON shape (new-kg setting), with the paired
    differences, the time account by phase, the aims and published rows."""
    from types import SimpleNamespace

    from sellakit.benchmarks.kg import aims, kg_markdown, time_accounting
    from sellakit.kg import kd_comparisons

    row = {"mrr": 0.3, "hits@1": 0.2, "hits@3": 0.35, "hits@10": 0.5, "n": 10, "seconds": 1.0,
           "best_epoch": 4, "max_epochs": 40, "phases": {"build": 0.5, "epochs": 0.5},
           "seconds_per_epoch": 0.1, "epochs": 5, "triples": 1000}
    rng = np.random.default_rng(0)
    ranks = {m: [rng.integers(1, 20, 200).astype(float)] for m in ("kd", "j2", "scratch")}
    ranks["kd"] = [r / 2 for r in ranks["j2"]]  # KD ranks every query higher
    results = {"target": "el", "dataset": "dbp5l", "teacher_saw_target": False,
               "scratch": row, "kd": {**row, "seconds": 2.0}, "j2": {**row, "seconds": 10.0},
               "joint": row, "ablations": {"-feature": row}, "teacher_seconds": 9.0,
               "preset": "quick", "seed": 1, "seeds": 1, "j2_seeds": 1, "setting": "new-kg",
               "data_rule": {"selection_per_kg": 1000},
               "teacher_config": {"model": "rotate", "dim": 64, "mode": "swapping",
                                  "max_epochs": 60},
               "student": {"model": "rotate", "dim": 32, "kd": {"temperature": 2.0}}}
    teacher = SimpleNamespace(seconds=9.0, rule=SimpleNamespace(ms=SimpleNamespace(
        kgs=dict.fromkeys("abcde"))), best_epoch=3, converged=True,
        joint=SimpleNamespace(ids={"a": 0}, triples=np.zeros((4, 3)), n_bridges=0, removed={}),
        cached=False)
    results["_comparisons"] = kd_comparisons(ranks)
    results["time"] = time_accounting(results, teacher)
    results["aims"] = aims(results)
    assert results["_comparisons"]["kd - j2"]["verdict"] == "better"
    assert results["time"]["teacher_serves"] == 1  # new-kg: a teacher per target
    assert results["time"]["break_even_targets"] == round(9.0 / 8.0, 2)
    assert results["time"]["rows"]["kd"]["us_per_triple_epoch"] == 100.0
    assert set(results["time"]["rows"]) == {"scratch", "kd", "j2"}
    assert not results["aims"]["end_to_end_at_most_half_of_j2"]  # (2 + 9) / 10
    table = kg_markdown(results, command="sellakit bench kg")
    assert "| el | student + KD (warm start) | 30.0 |" in table and "published" in table
    assert "| el | kd - j2 |" in table and "µs / triple-epoch" in table


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


def _kd_columns_are_leak_free(ms, rule, teacher, sub, target, banned, n_queries=200):
    """Prediction KD's candidates for queries sharing (h, r) with held-out facts (forward and
    reciprocal) against every student entity: the masked columns are exactly those whose fact
    re-expresses a held-out one, and there are some."""
    from sellakit.kg.data import canonical_keys
    from sellakit.kg.distill import Distiller, KDConfig

    canon = sub.canonical(rule.canon)
    kd = Distiller(teacher, sub.teacher_ids, 8, KDConfig(), graph=sub.triples, banned=banned,
                   canon=canon)
    held, n_rel = rule.held_out(target)[:n_queries], ms.n_relations
    h = np.concatenate([held[:, 0], held[:, 2]])
    r = np.concatenate([held[:, 1], held[:, 1] + n_rel])
    columns = np.arange(sub.n_entities)
    mask = kd.banned_columns(torch.as_tensor(h), torch.as_tensor(r),
                             torch.as_tensor(columns)).numpy()
    hh, rr, cc = np.repeat(h, len(columns)), np.repeat(r, len(columns)), np.tile(columns, len(h))
    facts = np.where((rr < n_rel)[:, None], np.stack([hh, rr, cc], 1),
                     np.stack([cc, rr - n_rel, hh], 1))
    expected = np.isin(canonical_keys(facts, canon, n_rel), banned).reshape(mask.shape)
    assert expected.sum() >= len(held) and np.array_equal(mask, expected), target


@needs_dbp5l
def test_no_held_out_fact_reaches_any_training_graph_on_dbp5l():
    """For all five targets, in both settings (a teacher of every KG; a teacher of the other
    KGs, the target arriving afterwards): 0 canonical overlaps between the target's test ∪
    selection facts and the teacher's graph, J2's, scratch's, the student's subgraph; and
    prediction KD masks exactly the candidates that re-express one (teacher *untrained*, of
    the real shape: the mask does not depend on how good the teacher is). The el↔en line identity is part of the rule, and without it leaks appear."""
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
        # the new-KG setting: a teacher of the other KGs, the student's subgraph around it
        others = build_joint(ms, rule, kgs=[k for k in ms.kgs if k != target])
        assert target not in others.ids and not np.isin(joint_keys(others), banned).any()
        new_untrained = KGEModel(others.n_entities, ms.n_relations, 4)
        for joint, model in ((teacher_joint, untrained), (others, new_untrained)):
            sub = build_linked_subgraph(ms, rule, joint, target, fanout=5)
            assert not np.isin(canonical_keys(sub.triples, sub.canonical(canon), ms.n_relations),
                               banned).any(), target
            _kd_columns_are_leak_free(ms, rule, model, sub, target, banned)
    # the line identity matters: without it, English training facts re-express Greek test facts
    plain = replace(ms, same_entities={})
    en_plain, _ = data_rule(plain).training("en", ("el",))
    assert rule.leaks("en", en_plain, ("el",)) > 0


@pytest.mark.parametrize("which", ["ml-100k", "ml-100k-cold-items"])
def test_no_valid_or_test_interaction_reaches_the_item_kg_graphs(which):
    """ML-100k (issue 25): the graphs the item KG vectors train on, for both splits and both
    sources, hold exactly the training likes (no valid or test interaction) and none of the
    held-out film facts (selection and test of the link-prediction check)."""
    from sellakit.data import load_split
    from sellakit.data.ml100k import LIKES, film_multisource
    from sellakit.kg.items import (ITEM_KG_SOURCES, item_kg_config, item_kg_graph,
                                   with_heldout_film)
    from sellakit.kg.pretrain import build_joint
    from sellakit.kg.protocol import data_rule

    split = load_split(which)
    ms = with_heldout_film(film_multisource(split))
    n_users = split.n_users - 1
    positives = split.train[split.train.label == 1]
    for source in ITEM_KG_SOURCES:
        graph = item_kg_graph(ms, source)
        rule = data_rule(graph, per_kg=len(ms.kgs["film"].valid))
        joint = build_joint(graph, rule, mode=item_kg_config().mode)
        likes = joint.triples[joint.triples[:, 1] == graph.relation_labels.index(LIKES)]
        if "interactions" not in graph.kgs:
            assert len(likes) == 0, source
        else:
            ids = joint.ids["interactions"]
            user_of = {j: u + 1 for u, j in enumerate(ids[:n_users])}
            item_of = {j: i + 1 for i, j in enumerate(ids[n_users:])}
            pairs = {(user_of[h], item_of[t]) for h, _, t in likes}
            assert pairs == set(zip(positives.uid, positives.iid)), source
            for frame in (split.valid, split.test):
                assert not pairs & set(zip(frame.uid, frame.iid)), source
        film_ids = joint.ids["film"]
        held = rule.held_out("film")
        assert len(held) == len(ms.kgs["film"].valid) + len(ms.kgs["film"].test) == 3000
        held_joint = np.stack([film_ids[held[:, 0]], held[:, 1], film_ids[held[:, 2]]], 1)
        trained = {tuple(t) for t in joint.triples.tolist()}
        assert not trained & {tuple(t) for t in held_joint.tolist()}, source
        assert rule.leaks("film", rule.training("film")[0]) == 0


def test_a_sweep_point_is_the_same_whatever_the_process_ran_before(ms, tmp_cache):
    """A point's rows are a function of the point and its seed: not of the torch random state
    the process left (a teacher trained in the same process or read from the cache, a part
    resumed in a fresh process). J2 is a point's first row and builds its model before
    training seeds, so without the point's own seed its start would depend on that state."""
    from sellakit.benchmarks.kg_sweeps import kg_sweep

    point = {"facts": 1.0, "links": 1.0, "dim": None, "methods": ("j2",)}

    def j2_ranks(draws: int):
        torch.rand(draws)  # what ran before in the process
        _, ranks = kg_sweep(ms, "width", ["s0"], points=[point], epochs=2, progress=False)
        return ranks.sort_values(list(ranks.columns)).reset_index(drop=True)

    first = j2_ranks(0)
    assert first.equals(j2_ranks(12345))
