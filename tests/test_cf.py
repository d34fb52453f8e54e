"""CF models and the trainer on small planted-signal data (generated, not MovieLens)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sellakit.cf import CFConfig, build_model, fit_and_evaluate, predict, train_cf


# SASRec reads ~5 liked items per row here: one block without dropout suits so little data.
SMALL = {"mf": {}, "lightgcn": {}, "sasrec": {"n_layers": 1, "dropout": 0.0, "max_epochs": 80,
                                              "patience": 15, "batch_size": 128}}


@pytest.mark.parametrize("model", ["mf", "lightgcn", "sasrec"])
def test_each_model_learns_the_planted_signal(small_split, model):
    settings = {"max_epochs": 40, "patience": 8, "batch_size": 256, "dim": 16, "lr": 1e-2,
                "weight_decay": 1e-5, **SMALL[model]}
    config = CFConfig.quick(model, **settings)
    result, record = fit_and_evaluate(small_split, config, progress=False)
    assert record["valid"]["auc"] > 0.6, record["valid"]
    assert set(record) >= {"valid", "test", "test_warm", "test_cold", "seconds", "seed"}
    assert record["seed"] == config.seed


@pytest.mark.parametrize("model", ["mf", "lightgcn"])
def test_cached_fit_returns_the_same_model_and_replaces_a_damaged_entry(small_split, tmp_cache,
                                                                         model):
    config = CFConfig.quick(model, max_epochs=6, patience=3, batch_size=256, dim=8, lr=1e-2)
    first, record = fit_and_evaluate(small_split, config, progress=False, use_cache=True)
    again, record_again = fit_and_evaluate(small_split, config, progress=False, use_cache=True)
    assert (record["cached"], record_again["cached"]) == (False, True)
    assert record_again["test"] == record["test"] and again.best_step == first.best_step
    np.testing.assert_array_equal(predict(again.model, small_split.test),
                                  predict(first.model, small_split.test))
    assert again.history.equals(first.history)
    # another setting is another entry; a damaged entry is trained again, not trusted
    other = fit_and_evaluate(small_split, CFConfig.quick(model, max_epochs=5, patience=3,
                                                         batch_size=256, dim=8, lr=1e-2),
                             progress=False, use_cache=True)[1]
    assert other["cached"] is False
    entries = sorted((tmp_cache / "derived" / "cf").glob("*.pt"))
    assert len(entries) == 2
    for entry in entries:
        entry.write_bytes(b"not a torch file")
    assert fit_and_evaluate(small_split, config, progress=False,
                            use_cache=True)[1]["cached"] is False


def test_early_stopping_keeps_the_best_validation_epoch(small_split):
    config = CFConfig.quick("mf", max_epochs=30, patience=5, batch_size=256, dim=16, lr=3e-2)
    result = train_cf(small_split, config, progress=False)
    history = result.history
    assert result.best_step == int(history.loc[history.valid_auc.idxmax(), "epoch"])
    # The returned model is the best epoch's: its validation AUC is the recorded best.
    from sellakit.metrics import ctr_metrics

    again = ctr_metrics(small_split.valid, predict(result.model, small_split.valid))
    assert again["auc"] == pytest.approx(result.best_valid["auc"], abs=1e-9)


def test_training_never_reads_test(small_split):
    import copy

    blind = copy.copy(small_split)
    blind.test = None  # any access would fail
    train_cf(blind, CFConfig.quick("mf", max_epochs=3, dim=8), progress=False)


def test_seeds_make_runs_repeatable(small_split):
    config = CFConfig.quick("mf", max_epochs=5, patience=5, dim=8)
    first = train_cf(small_split, config, progress=False).history.valid_auc.to_numpy()
    second = train_cf(small_split, config, progress=False).history.valid_auc.to_numpy()
    np.testing.assert_allclose(first, second)


def test_sasrec_handles_empty_history():
    model = build_model("sasrec", 5, 10, dim=8, train_edges=None, history_len=4)
    his = torch.tensor([[0, 0, 0, 0], [0, 0, 3, 4]])
    out = model(torch.tensor([1, 2]), torch.tensor([1, 2]), his)
    assert torch.isfinite(out).all()


def test_unknown_model_is_named():
    with pytest.raises(ValueError, match="choose mf, lightgcn or sasrec"):
        build_model("bpr", 3, 3, dim=4, train_edges=None)


def test_mf_twice_with_one_seed_is_bit_identical(small_split):
    """Deterministic algorithms, one seed, the same thread count: the same weights, bit for
    bit (another thread count may round sums differently; see seed_everything)."""
    from sellakit.config import seed_everything

    config = CFConfig.preset("quick", model="mf", dim=16, max_epochs=5, lr=1e-2)
    seed_everything(config.seed, deterministic=True)
    try:
        first = train_cf(small_split, config, progress=False).model.state_dict()
        second = train_cf(small_split, config, progress=False).model.state_dict()
    finally:
        torch.use_deterministic_algorithms(False)
    assert all(torch.equal(first[k], second[k]) for k in first)
