"""CF models and the trainer on small planted-signal data (generated, not MovieLens)."""

from __future__ import annotations

import typing

import numpy as np
import pytest
import torch

from sellakit.cf import (CF_MODELS, MF, CFConfig, CFModelSpec, build_model, fit_and_evaluate,
                         predict, train_cf, with_model)
from sellakit.errors import ConfigError


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
    with pytest.raises(ConfigError, match="choose one of mf, lightgcn, sasrec"):
        build_model("bpr", 3, 3, dim=4, train_edges=None)
    with pytest.raises(ConfigError, match="'mf', 'lightgcn', 'sasrec'"):
        CFConfig(model="bpr")


def test_config_choices_and_presets_come_from_the_table():
    assert typing.get_args(typing.get_type_hints(CFConfig)["model"]) == tuple(CF_MODELS)
    for name, spec in CF_MODELS.items():
        quick, paper = CFConfig.preset("quick", model=name), CFConfig.preset("paper", model=name)
        for key, value in {**spec.defaults, **spec.quick}.items():
            assert getattr(quick, key) == value
        for key, value in {**spec.defaults, **spec.paper}.items():
            assert getattr(paper, key) == value
    assert CFConfig.quick("sasrec").history_len == 10 and CFConfig.paper("mf").patience == 100


def test_each_model_gets_only_the_settings_its_row_names():
    settings = dict(dim=8, n_layers=1, n_heads=2, dropout=0.0, history_len=6)
    edges = np.array([[1, 2], [1, 3]])
    for name, spec in CF_MODELS.items():
        model = build_model(name, 5, 6, train_edges=edges, **settings)
        assert type(model) is spec.model_class and model.item_embedding.embedding_dim == 8
        assert hasattr(model, "user_embedding") == spec.model_class.uses_user_embedding
    assert build_model("sasrec", 5, 6, **settings).max_len == 6
    assert build_model("mf", 5, 6, **settings).max_len == 25  # reads no history
    assert build_model("lightgcn", 5, 6, train_edges=edges, **settings).n_layers == 1
    assert build_model("sasrec", 5, 6, **settings).encoder.layers[0].self_attn.num_heads == 2
    with pytest.raises(ConfigError, match="train_edges"):
        build_model("lightgcn", 5, 6, dim=8)


class BiasedMF(MF):
    """MF plus a bias per item: the kind of model a student adds (here only in a test)."""

    def __init__(self, n_users: int, n_items: int, dim: int = 8):
        super().__init__(n_users, n_items, dim)
        self.item_bias = torch.nn.Embedding(n_items, 1)
        torch.nn.init.zeros_(self.item_bias.weight)

    def forward(self, uid, iid, his=None):
        return super().forward(uid, iid, his) + self.item_bias(iid).squeeze(-1)

    def configure_optimizers(self, lr, weight_decay):
        """No decay on the biases (the model owns its optimiser groups)."""
        biases = [self.item_bias.weight]
        tables = [p for p in self.parameters() if all(p is not b for b in biases)]
        return [torch.optim.Adam([{"params": tables, "weight_decay": weight_decay},
                                  {"params": biases, "weight_decay": 0.0}], lr=lr)]


def test_a_new_model_is_its_class_plus_one_row(small_split):
    row = CFModelSpec("biased_mf", BiasedMF, {"dim": "dim"}, {"dim": 16, "lr": 1e-2})
    table = with_model(row)
    assert list(table) == [*CF_MODELS, "biased_mf"] and "biased_mf" not in CF_MODELS
    model = build_model("biased_mf", small_split.n_users, small_split.n_items, table=table,
                        dim=16, n_layers=3, history_len=4)  # settings not in its row are left
    config = CFConfig.quick("mf", max_epochs=8, patience=8, batch_size=256, lr=1e-2,
                            weight_decay=1e-5)
    result = train_cf(small_split, config, model=model, progress=False)
    assert result.model is model and model.item_bias.weight.abs().sum() > 0
    assert result.best_valid["auc"] > 0.6
    assert predict(model, small_split.valid).shape == (len(small_split.valid),)


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
