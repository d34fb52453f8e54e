"""CF models and the trainer on small planted-signal data (generated, not MovieLens)."""

from __future__ import annotations

import typing

import numpy as np
import pandas as pd
import pytest
import torch

from sellakit.cf import (CF_MODELS, MF, BiasedMF, CFConfig, CFModelSpec, build_model, fit_and_evaluate,
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
    with pytest.raises(ConfigError, match="choose one of mf, biased_mf, lightgcn, sasrec"):
        build_model("bpr", 3, 3, dim=4, train_edges=None)
    with pytest.raises(ConfigError, match="'mf', 'biased_mf', 'lightgcn', 'sasrec'"):
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
        model = build_model(name, 5, 6, train_edges=edges, item_kg=np.zeros((6, 3)), **settings)
        assert type(model) is spec.model_class and model.item_embedding.embedding_dim == 8
        assert hasattr(model, "user_embedding") == spec.model_class.uses_user_embedding
    assert build_model("sasrec", 5, 6, **settings).max_len == 6
    assert build_model("mf", 5, 6, **settings).max_len == 25  # reads no history
    assert build_model("lightgcn", 5, 6, train_edges=edges, **settings).n_layers == 1
    assert build_model("sasrec", 5, 6, **settings).encoder.layers[0].self_attn.num_heads == 2
    with pytest.raises(ConfigError, match="train_edges"):
        build_model("lightgcn", 5, 6, dim=8)


class ScaledMF(MF):
    """MF times a learned temperature: the kind of model a student adds (here only in a
    test)."""

    def __init__(self, n_users: int, n_items: int, dim: int = 8):
        super().__init__(n_users, n_items, dim)
        self.temperature = torch.nn.Parameter(torch.ones(()))

    def forward(self, uid, iid, his=None):
        return super().forward(uid, iid, his) * self.temperature

    def configure_optimizers(self, lr, weight_decay):
        """No decay on the temperature (the model owns its optimiser groups)."""
        tables = [p for p in self.parameters() if p is not self.temperature]
        return [torch.optim.Adam([{"params": tables, "weight_decay": weight_decay},
                                  {"params": [self.temperature], "weight_decay": 0.0}], lr=lr)]


def test_a_new_model_is_its_class_plus_one_row(small_split):
    row = CFModelSpec("scaled_mf", ScaledMF, {"dim": "dim"}, {"dim": 16, "lr": 1e-2})
    table = with_model(row)
    assert list(table) == [*CF_MODELS, "scaled_mf"] and "scaled_mf" not in CF_MODELS
    model = build_model("scaled_mf", small_split.n_users, small_split.n_items, table=table,
                        dim=16, n_layers=3, history_len=4)  # settings not in its row are left
    config = CFConfig.quick("mf", max_epochs=8, patience=8, batch_size=256, lr=1e-2,
                            weight_decay=1e-5)
    result = train_cf(small_split, config, model=model, progress=False)
    assert result.model is model and model.temperature.item() != 1.0
    assert result.best_valid["auc"] > 0.6
    assert predict(model, small_split.valid).shape == (len(small_split.valid),)


def _bias_split(seed: int = 0):
    """GENERATED ratings whose label depends on a user and an item level only (no
    interaction term), over months 0..5: train 0-3, valid 4, test 5 (the last 30 users arrive
    in month 4: user-cold); and the planted levels."""
    from sellakit.data.protocol import SplitSpec, split_by_months

    rng = np.random.default_rng(seed)
    n_users, n_items = 150, 60
    user_level, item_level = rng.normal(0, 1.0, n_users), rng.normal(0, 1.5, n_items)
    rows = []
    for u in range(n_users):
        for i in rng.choice(n_items, 25, replace=False):
            liked = rng.random() < 1 / (1 + np.exp(-(user_level[u] + item_level[i])))
            first_month = 4 if u >= n_users - 30 else 0
            rows.append((u, f"item{i:03d}", 5 if liked else 2,
                         int(rng.integers(first_month * 30 * 86400, 6 * 30 * 86400))))
    ratings = pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"])
    meta = pd.DataFrame({"item": [f"item{i:03d}" for i in range(n_items)],
                         "title": [f"Item {i}" for i in range(n_items)],
                         "genres": [["g"]] * n_items})
    month = (ratings.timestamp // (30 * 86400)).clip(upper=5)
    spec = SplitSpec(train_months=(0, 3), valid_months=(4, 4), test_months=(5, 5))
    split = split_by_months(ratings, meta, spec, name="planted_bias_unit_test", month=month)
    return split, user_level, item_level


def test_biased_mf_learns_the_planted_user_and_item_levels():
    """A real row of the table: its learned biases rank users and items as the planted levels
    do; a user unseen in train keeps bias 0, so its rows are ranked by the item's bias (MF
    scores them all alike)."""
    from scipy.stats import spearmanr

    split, user_level, item_level = _bias_split()
    assert CF_MODELS["biased_mf"].model_class is BiasedMF
    config = CFConfig.quick("biased_mf", dim=8, lr=1e-2, max_epochs=60, patience=10,
                            batch_size=256)
    result = train_cf(split, config, progress=False)
    model = result.model
    assert isinstance(model, BiasedMF) and result.best_valid["auc"] > 0.7
    seen_items = np.unique(split.train.iid)
    original = np.array([int(key[4:]) for key in split.item_ids])  # iid - 1 -> planted index
    learned = model.item_bias.weight.detach().numpy()[seen_items, 0]
    assert spearmanr(learned, item_level[original[seen_items - 1]]).statistic > 0.8
    seen_users = np.unique(split.train.uid)
    learned = model.user_bias.weight.detach().numpy()[seen_users, 0]
    planted = user_level[split.user_ids[seen_users - 1].astype(int)]
    assert spearmanr(learned, planted).statistic > 0.6
    unseen = sorted(set(range(1, split.n_users)) - set(seen_users))
    assert unseen and np.all(model.user_bias.weight.detach().numpy()[unseen] == 0)
    cold = split.test[~split.test.uid.isin(split.train.uid) & split.test.iid.isin(seen_items)]
    assert len(cold) > 20 and np.std(predict(model, cold)) > 0.05


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
