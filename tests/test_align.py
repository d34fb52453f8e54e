"""Alignment measures and the contrastive trainer (small generated data)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sellakit.align import (AlignConfig, AlignedTables, Projector, alignment_uniformity, info_nce,
                            linear_cka, mutual_knn, retrieval_recall, train_aligned_mf)


def test_measures_on_known_cases():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 16))
    rotation, _ = np.linalg.qr(rng.normal(size=(16, 16)))
    assert linear_cka(x, x @ rotation) == pytest.approx(1.0)
    assert linear_cka(x, rng.normal(size=(200, 8))) < 0.2
    assert mutual_knn(x, x @ rotation, k=5) == pytest.approx(1.0)
    assert mutual_knn(x, rng.normal(size=(200, 16)), k=5) < 0.15
    assert retrieval_recall(x, x, k=1) == 1.0
    assert retrieval_recall(x, rng.normal(size=(200, 16)), k=10) < 0.2
    same = alignment_uniformity(x, x)
    assert same["alignment"] == pytest.approx(0.0, abs=1e-12)


def test_info_nce_masks_duplicates():
    anchors = torch.eye(3)[[0, 1, 1]]
    positives = torch.eye(3)[[0, 1, 1]]
    ids = torch.tensor([5, 7, 7])
    loss = info_nce(anchors, positives, ids, temperature=0.1)
    # Without masking, rows 1 and 2 would each see their twin as an equally good negative.
    logits = anchors @ positives.T / 0.1
    unmasked = torch.nn.functional.cross_entropy(logits, torch.arange(3))
    assert loss < 1e-3
    assert unmasked == pytest.approx(2 * np.log(2) / 3, abs=1e-3)


def test_alignment_pulls_spaces_together(small_split, tmp_path):
    rng = np.random.default_rng(0)
    semantic = rng.normal(size=(small_split.n_items, 24)).astype(np.float32)
    config = AlignConfig.quick(dim=16, projector_hidden=32, max_epochs=30, patience=30,
                               batch_size=256, lr=1e-2, weight_decay=1e-6, measure_every=5,
                               snapshot_items=40, measure_k=5)
    result = train_aligned_mf(small_split, semantic, config, progress=False)
    history = result.history.set_index("epoch")
    best = result.train.best_step
    assert history.loc[best, "recall@5"] > history.loc[0, "recall@5"] + 0.3
    assert history.loc[best, "alignment"] < history.loc[0, "alignment"]
    assert set(result.snapshots) >= {0, best} and result.snapshots[0].shape == (40, 24)
    # both sides move: the semantic table is trained too
    assert not np.allclose(result.model.semantic.detach().numpy(), semantic)
    # what the hybrid projection layer will load: the file keeps its keys, and AlignedTables
    # reads back exactly what the model holds
    result.save(tmp_path / "aligned.pt")
    saved = torch.load(tmp_path / "aligned.pt")
    assert set(saved) == {"projector", "user_embedding", "item_embedding", "semantic", "config",
                          "best_epoch", "semantic_mean"}
    assert saved["best_epoch"] == best
    tables = AlignedTables.load(tmp_path / "aligned.pt")
    np.testing.assert_array_equal(tables.item, result.model.item_embedding.weight.detach())
    np.testing.assert_array_equal(tables.semantic, result.model.semantic.detach())
    assert tables.best_epoch == best and tables.config["dim"] == 16
    assert Projector.dims(tables.projector_state) == (16, 24, 32)
    items = result.model.item_embedding.weight[:5].detach()
    with torch.no_grad():
        torch.testing.assert_close(tables.projector()(items), result.model.projector(items))
        assert not torch.allclose(tables.projector(trained=False)(items),
                                  result.model.projector(items))
    with pytest.raises(ValueError, match="AlignResult.save"):
        torch.save({"semantic": saved["semantic"]}, tmp_path / "other.pt")
        AlignedTables.load(tmp_path / "other.pt")


def test_the_seed_alone_sets_the_aligned_mf(small_split):
    """Two runs with one seed agree bit for bit, whatever drew from torch's RNG before (the
    initial projector once depended on it, so a notebook that read plain MF from the cache got
    another aligned MF)."""
    semantic = np.random.default_rng(0).normal(size=(small_split.n_items, 12)).astype(np.float32)
    config = AlignConfig.quick(dim=8, projector_hidden=16, max_epochs=3, patience=3,
                               batch_size=256, measure_every=3, snapshot_items=10)
    first = train_aligned_mf(small_split, semantic, config, progress=False)
    torch.rand(1000)  # other work draws from the global generator in between
    again = train_aligned_mf(small_split, semantic, config, progress=False)
    for epoch, snapshot in first.snapshots.items():
        np.testing.assert_array_equal(snapshot, again.snapshots[epoch])


def test_the_aligned_mf_trains_on_one_thread_and_gives_the_threads_back(small_split,
                                                                        monkeypatch):
    """On two threads the fit's sums land in another order from run to run (notebook 05's
    SeLLa-Rec AUC moved 0.49-0.60 with it): the fit runs on one, the caller keeps its own."""
    from sellakit.align import contrastive

    semantic = np.random.default_rng(0).normal(size=(small_split.n_items, 12)).astype(np.float32)
    config = AlignConfig.quick(dim=8, projector_hidden=16, max_epochs=2, patience=2,
                               batch_size=256, measure_every=2, snapshot_items=10)
    seen = []
    real_train = contrastive.train_cf

    def train_cf(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real_train(*args, **kwargs)

    monkeypatch.setattr(contrastive, "train_cf", train_cf)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        train_aligned_mf(small_split, semantic, config, progress=False)
        assert seen == [1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_compare_alignment_reads_both_models_back_from_the_cache(small_split, tmp_cache):
    from sellakit.align import compare_alignment

    semantic = np.random.default_rng(0).normal(size=(small_split.n_items, 12)).astype(np.float32)
    config = AlignConfig.quick(dim=8, projector_hidden=16, max_epochs=4, patience=4,
                               batch_size=256, measure_every=2, snapshot_items=10)
    _, first, record = compare_alignment(small_split, semantic, config, progress=False,
                                         use_cache=True)
    _, again, record_again = compare_alignment(small_split, semantic, config, progress=False,
                                               use_cache=True)
    assert not first.history.attrs.get("from_cache") and again.history.attrs["from_cache"]
    parts = ("plain", "aligned", "before", "after")  # (json: NaN equals NaN)
    assert json.dumps({k: record_again[k] for k in parts}, sort_keys=True) == \
        json.dumps({k: record[k] for k in parts}, sort_keys=True)
    for epoch, snapshot in first.snapshots.items():
        np.testing.assert_array_equal(snapshot, again.snapshots[epoch])
    np.testing.assert_array_equal(again.tables().semantic, first.tables().semantic)
    # another LLM table is another entry
    _, other, _ = compare_alignment(small_split, semantic + 1, config, progress=False,
                                    use_cache=True)
    assert not other.history.attrs.get("from_cache")


def test_a_frozen_semantic_table_stays_as_given(small_split):
    """Notebook 04's exercise 2: ``train_semantic=False`` keeps the LLM's (centred) table
    exactly while the projector still learns to find each item's row."""
    from sellakit.llm import center_items

    semantic = np.random.default_rng(2).normal(size=(small_split.n_items, 24)).astype(np.float32)
    config = AlignConfig.quick(dim=16, projector_hidden=32, max_epochs=20, patience=20,
                               batch_size=256, lr=1e-2, weight_decay=1e-6, measure_every=5,
                               snapshot_items=20, measure_k=5, train_semantic=False)
    result = train_aligned_mf(small_split, semantic, config, progress=False)
    np.testing.assert_array_equal(result.model.semantic.detach().numpy(),
                                  center_items(semantic)[0])
    history = result.history.set_index("epoch")
    assert history.loc[result.train.best_step, "recall@5"] > history.loc[0, "recall@5"] + 0.2


def test_unseen_items_keep_their_llm_rows(small_split):
    """MF's weight decay, none on the semantic table: rows of items that never reach the
    InfoNCE term (items unseen in train) keep their centred LLM rows (cosine >= 0.99), while
    rows of trained items move."""
    from sellakit.llm import center_items

    import dataclasses

    held_out = [1, 2, 3]  # these items' training rows are removed: unseen in train
    small_split = dataclasses.replace(
        small_split, train=small_split.train[~small_split.train.iid.isin(held_out)])
    rng = np.random.default_rng(1)
    semantic = (rng.normal(size=(small_split.n_items, 24)) + 3.0).astype(np.float32)
    semantic[0] = 0.0
    config = AlignConfig.quick(dim=16, projector_hidden=32, max_epochs=15, patience=15,
                               lr=1e-2, weight_decay=1e-2, measure_every=5, snapshot_items=20)
    result = train_aligned_mf(small_split, semantic, config, progress=False)
    centred, mean = center_items(semantic)
    np.testing.assert_allclose(result.semantic_mean, mean)
    trained = result.model.semantic.detach().numpy()
    seen = np.zeros(small_split.n_items, dtype=bool)
    seen[small_split.train.iid.unique()] = True
    unseen = np.flatnonzero(~seen)[1:]  # row 0 is padding
    assert set(held_out) <= set(unseen)
    cosine = (trained * centred).sum(1) / (np.linalg.norm(trained, axis=1)
                                           * np.linalg.norm(centred, axis=1) + 1e-12)
    assert cosine[unseen].min() >= 0.99
    np.testing.assert_array_equal(trained[unseen], centred[unseen])  # not even decayed
    # the test can fail: trained rows do move, and decay on the table would move the others
    assert np.abs(trained[seen] - centred[seen]).max() > 1e-3


def test_semantic_table_must_match_items(small_split):
    with pytest.raises(ValueError, match="semantic table has 3 rows"):
        train_aligned_mf(small_split, np.zeros((3, 4), np.float32), AlignConfig.quick())


def test_recall_by_group_searches_all_items_and_reports_chance():
    from sellakit.align import own_cosine, own_ranks, pairwise_cosines, recall_by_group

    rng = np.random.default_rng(0)
    target = rng.normal(size=(41, 8))
    projected = target + rng.normal(scale=1e-3, size=target.shape)  # trained: found
    projected[21:] = rng.normal(size=(20, 8))  # never trained: random
    curve = recall_by_group(projected, target, {"trained": np.arange(1, 21),
                                                "held out": np.arange(21, 41)}, ks=(1, 10, 40))
    trained = curve[curve.group == "trained"].set_index("k")
    held = curve[curve.group == "held out"].set_index("k")
    assert trained.recall.tolist() == [1.0, 1.0, 1.0]
    assert held.loc[1, "recall"] < 0.3 and held.loc[40, "recall"] == 1.0
    assert trained.chance.tolist() == [1 / 40, 10 / 40, 1.0]
    assert own_ranks(target[:3], target[:3]).tolist() == [0, 0, 0]
    assert np.allclose(own_cosine(target, 2 * target), 1.0)
    assert len(pairwise_cosines(target, sample=10)) == 45
