"""The <KG_ID> slot (issue 25) on the UNTRAINED tiny random Llama and planted data: the slot
reads the item's KG vector only through its projector; zeroing it at scoring time leaves every
other input as the prompt without the slot; unknown items; the KG rows of the method table; and
the item KG vectors (sellakit.kg.items) on a small generated film KG."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import torch

from sellakit.errors import ConfigError
from sellakit.llm import tiny_random_llama
from sellakit.rec import (ABLATIONS, KG_METHODS, KG_TOKEN, METHODS, SLOT_TOKENS, TEMPLATES,
                          PromptBuilder, RecConfig, SpecialTokenRec, add_kg_token,
                          add_slot_tokens, answer_token_ids, collate, collm_mapping, copy_table,
                          run_methods, score_kg_ablation)

D_KG = 6


@pytest.fixture()
def tiny():
    backbone = tiny_random_llama()
    add_slot_tokens(backbone.tokenizer, backbone.model)
    add_kg_token(backbone.tokenizer, backbone.model)
    return backbone


def _kg_table() -> torch.Tensor:
    """Four items (row 0 padding); item 3 is unknown to the KG: zero, as kg.items gives it."""
    table = torch.randn(4, D_KG)
    table[0] = table[3] = 0
    return table


def _model(tiny, kg: bool = True) -> SpecialTokenRec:
    torch.manual_seed(0)
    d = tiny.hidden_size
    parts = dict(user_table=copy_table(torch.randn(5, 8), trainable=True),
                 item_table=copy_table(torch.randn(4, 8), trainable=True),
                 cf_projector=collm_mapping(8, d))
    if kg:  # built after the CF parts, so those start as in the model without the slot
        parts.update(kg_table=copy_table(_kg_table(), trainable=False),
                     kg_projector=collm_mapping(D_KG, d))
    return SpecialTokenRec(tiny.model, answer_token_ids(tiny.tokenizer), **parts).eval()


def _batch(tiny, template: str, iid=(2, 3)):
    tokens = {**SLOT_TOKENS["collm"], "kg": KG_TOKEN}
    builder = PromptBuilder(tiny.tokenizer, TEMPLATES[template], slot_tokens=tokens)
    prompts = [builder.encode(["Heat (1995)"] * (k + 1), "Casino (1995)") for k in range(2)]
    batch = collate(prompts, tiny.tokenizer.pad_token_id)
    batch.update(uid=torch.tensor((1, 2)), iid=torch.tensor(iid))
    return batch


def _input_embeddings(model: SpecialTokenRec, batch) -> torch.Tensor:
    embeds = model.llm.get_input_embeddings()(batch["input_ids"]).clone()
    for name, vector in model.slot_vectors(batch).items():
        embeds[torch.arange(len(embeds)), batch[f"slot_{name}"]] = vector
    return embeds


@torch.no_grad()
def test_kg_slot_changes_scores_only_through_its_projector(tiny):
    model, batch = _model(tiny), _batch(tiny, "collm_kg")
    logit = model(batch)
    out = tiny.model(inputs_embeds=_input_embeddings(model, batch),
                     attention_mask=batch["attention_mask"]).logits[torch.arange(2),
                                                                    batch["last"]]
    yes, no = answer_token_ids(tiny.tokenizer)
    torch.testing.assert_close(logit, out[:, yes] - out[:, no])
    # the KG vector matters: another item's vector, another score ...
    model.kg_table.weight[2] += 3.0
    moved = model(batch)
    assert not torch.allclose(moved[0], logit[0])
    torch.testing.assert_close(moved[1], logit[1])  # item 3's row did not move
    # ... but only through P_K: a projector blind to its input makes the table irrelevant
    model.kg_projector[-1].weight.zero_()
    blind = model(batch)
    model.kg_table.weight.copy_(torch.randn_like(model.kg_table.weight))
    torch.testing.assert_close(model(batch), blind)
    # and the <KG_ID> token's own embedding row is never read
    tiny.model.get_input_embeddings().weight[tiny.tokenizer.get_vocab()[KG_TOKEN]] += 5.0
    torch.testing.assert_close(model(batch), blind)


@torch.no_grad()
def test_zeroed_kg_slot_leaves_the_no_slot_prompts_input_and_reads_as_unknown(tiny):
    with_kg, plain = _model(tiny), _model(tiny, kg=False)
    batch, no_slot = _batch(tiny, "collm_kg"), _batch(tiny, "collm")
    with_kg.set_kg_ablation("zero")
    embeds = _input_embeddings(with_kg, batch)
    kg_at = batch["slot_kg"]
    # every position but <KG_ID>'s is the no-slot prompt's input, position for position
    for row in range(2):
        keep = torch.ones(batch["attention_mask"][row].sum(), dtype=torch.bool)
        keep[kg_at[row]] = False
        width = int(no_slot["attention_mask"][row].sum())
        torch.testing.assert_close(embeds[row, :len(keep)][keep],
                                   _input_embeddings(plain, no_slot)[row, :width])
    # the zeroed slot reads P_K(0): what an item unknown to the KG (item 3, a zero row) gets
    unknown = with_kg.kg_projector(torch.zeros(D_KG))
    torch.testing.assert_close(embeds[0, kg_at[0]], unknown)
    with_kg.set_kg_ablation("none")
    torch.testing.assert_close(with_kg.slot_vectors(batch)["kg"][1], unknown)  # item 3
    assert not torch.allclose(with_kg.slot_vectors(batch)["kg"][0], unknown)


def test_shuffled_kg_slot_reads_another_items_vector(tiny):
    model = _model(tiny)
    model.set_kg_ablation("shuffle", seed=1)
    iid = torch.arange(4)
    perm = model._kg_permutation
    assert perm[0] == 0 and sorted(perm.tolist()) == [0, 1, 2, 3]
    torch.testing.assert_close(model.kg_input(iid), model.kg_table.weight[perm])
    model.set_kg_ablation("shuffle", seed=1)
    assert torch.equal(model._kg_permutation, perm)  # seeded
    model.set_kg_ablation("none")
    torch.testing.assert_close(model.kg_input(iid), model.kg_table.weight)
    with pytest.raises(ConfigError, match="kg_ablation='noise'"):
        model.set_kg_ablation("noise")
    with pytest.raises(ConfigError, match="<KG_ID> slot"):
        _model(tiny, kg=False).set_kg_ablation("zero")


def test_kg_token_is_added_apart_and_leaves_the_random_stream_alone():
    full = tiny_random_llama(vocab_size=261)  # no spare row: the KG token needs a resize
    add_slot_tokens(full.tokenizer, full.model)
    ids = dict(full.tokenizer.get_vocab())
    torch.manual_seed(5)
    assert add_kg_token(full.tokenizer, full.model) == [KG_TOKEN]
    after = torch.rand(3)
    torch.manual_seed(5)
    torch.testing.assert_close(after, torch.rand(3))  # the resize drew from a forked stream
    assert full.model.get_input_embeddings().weight.shape[0] == len(full.tokenizer) == 267
    assert {k: v for k, v in full.tokenizer.get_vocab().items() if k != KG_TOKEN} == ids
    assert add_kg_token(full.tokenizer, full.model) == []  # idempotent
    assert KG_TOKEN not in {t for family in SLOT_TOKENS.values() for t in family.values()}


def test_kg_rows_of_the_method_table():
    from dataclasses import replace

    from sellakit.rec import methods

    assert set(KG_METHODS) == {"collm_kg", "sella_kg", "text_kg"}
    assert not set(KG_METHODS) & set(METHODS + ABLATIONS)  # the defaults need no KG vectors
    table = methods.METHOD_TABLE
    for kg, partner in (("collm_kg", "collm"), ("sella_kg", "sella")):  # the partner + <KG_ID>
        fields = {f: getattr(table[kg], f) for f in ("stage", "slots", "tables", "projector",
                                                     "warm", "cf_trainable")}
        assert fields == {f: getattr(table[partner], f) for f in fields}
        assert TEMPLATES[kg].replace("{kg}", "") == TEMPLATES[partner]
    assert table["text_kg"].inputs == ("plain_mf", "kg")
    real = tuple(table.values())
    for bad, message in ((replace(table["collm_kg"], kg=False), "kg=False needs no {kg}"),
                         (replace(table["collm"], kg=True), "kg=True needs a {kg}"),
                         (replace(table["text_kg"], tables="plain"), "fills {kg} alone")):
        with pytest.raises(ConfigError, match=re.escape(message)):
            methods.method_table([r for r in real if r.name != bad.name] + [bad])


@pytest.fixture(scope="module")
def kg_run(small_split):
    from sellakit.align import AlignConfig
    from sellakit.cf import CFConfig, fit_and_evaluate

    plain, _ = fit_and_evaluate(small_split, CFConfig.quick("mf", dim=16, max_epochs=5,
                                                            lr=1e-2), progress=False)
    vectors = np.random.default_rng(0).normal(size=(small_split.n_items, D_KG))
    vectors[0] = vectors[1::7] = 0  # padding, and items the KG does not know
    config = RecConfig.quick(train_rows=48, valid_rows=32, test_rows=32, eval_every=3)
    run = run_methods(small_split, ["collm", "collm_kg", "sella_kg", "text_kg"], config,
                      plain_mf=plain.model, backbone=tiny_random_llama(), progress=False,
                      align_config=AlignConfig.quick(dim=16, max_epochs=3, projector_hidden=32),
                      kg_vectors=vectors.astype(np.float32))
    run.plain_for_tests = plain.model
    return run


def test_kg_methods_train_their_projector_on_frozen_vectors(kg_run):
    from sellakit.rec import fresh_stage3_model

    run = kg_run
    assert set(run.results) == {"collm", "collm_kg", "sella_kg", "text_kg"}
    for name in KG_METHODS:
        model = run.models[name]
        assert not model.kg_table.weight.requires_grad
        np.testing.assert_array_equal(model.kg_table.weight.numpy(), run.kg_vectors)
        assert np.isfinite(run.scores[name]["test"]).all()
    trained = {n.split(".")[0] for n, p in run.models["text_kg"].named_parameters()
               if p.requires_grad}
    assert trained == {"kg_projector"} and run.models["text_kg"].user_table is None
    assert run.builders["text_kg"].slot_names == ["kg"]
    assert run.builders["sella_kg"].slot_names == ["user", "item", "warm", "kg"]
    # the CF parts of collm_kg start as collm's (the KG projector is built after them)
    starts = {}
    for name in ("collm", "collm_kg"):
        torch.manual_seed(0)
        starts[name] = fresh_stage3_model(run, name, run.plain_for_tests).cf_projector
    for a, b in zip(starts["collm"].parameters(), starts["collm_kg"].parameters()):
        assert torch.equal(a, b)


def test_kg_ablation_at_scoring_time(kg_run):
    run = kg_run
    zero = score_kg_ablation(run, "collm_kg", "zero")
    shuffled = score_kg_ablation(run, "collm_kg", "shuffle", seed=0)
    assert zero.shape == shuffled.shape == run.scores["collm_kg"]["test"].shape
    assert not np.allclose(zero, run.scores["collm_kg"]["test"])
    assert run.models["collm_kg"].kg_ablation == "none"  # put back
    again = score_kg_ablation(run, "collm_kg", "shuffle", seed=0)
    np.testing.assert_allclose(again, shuffled)
    # rows whose items the KG does not know already read the zero vector: unchanged
    unknown = (run.rows["test"].iid.to_numpy() % 7 == 1)
    if unknown.any():
        np.testing.assert_allclose(zero[unknown], run.scores["collm_kg"]["test"][unknown],
                                   atol=1e-5)


def test_kg_methods_need_vectors_of_the_splits_shape(small_split):
    with pytest.raises(ConfigError, match=r"\['text_kg'\] need kg_vectors="):
        run_methods(small_split, ["text_kg"], RecConfig.quick(), plain_mf=torch.nn.Identity())
    with pytest.raises(ConfigError, match="one finite row per item"):
        run_methods(small_split, ["text_kg"], RecConfig.quick(), plain_mf=torch.nn.Identity(),
                    kg_vectors=np.zeros((3, D_KG)))


def test_kg_mf_adds_the_mapped_kg_vector_to_the_item(small_split):
    from sellakit.cf import CFConfig, build_model, train_cf
    from sellakit.cf.models import CF_MODELS, KGMF

    vectors = np.random.default_rng(1).normal(size=(small_split.n_items, D_KG))
    vectors[0] = vectors[5] = 0
    model = build_model("mf_kg", small_split.n_users, small_split.n_items, item_kg=vectors,
                        dim=8)
    assert isinstance(model, KGMF) and CF_MODELS["mf_kg"].takes_item_kg
    uid, iid = torch.tensor([1, 2, 3]), torch.tensor([5, 6, 7])
    with torch.no_grad():
        by_hand = (model.user_embedding(uid) * (model.item_embedding(iid) + torch.as_tensor(
            vectors[[5, 6, 7]], dtype=torch.float32) @ model.kg_map.weight.T)).sum(-1)
        torch.testing.assert_close(model(uid, iid), by_hand)
        # an item the KG does not know (a zero row) is its MF vector alone
        torch.testing.assert_close(model.item_vectors(iid[:1]), model.item_embedding(iid[:1]))
    with pytest.raises(ConfigError, match="needs item_kg="):
        train_cf(small_split, CFConfig.quick("mf_kg", dim=8, max_epochs=1), progress=False)
    with pytest.raises(ConfigError, match="one finite row per item"):
        build_model("mf_kg", 5, 6, item_kg=np.zeros((4, 3)))
    result = train_cf(small_split, CFConfig.quick("mf_kg", dim=8, max_epochs=2, lr=1e-2),
                      model=model, progress=False)
    assert not any(n == "item_kg" for n, _ in result.model.named_parameters())  # fixed
    assert torch.equal(result.model.item_kg, torch.as_tensor(vectors, dtype=torch.float32))


def _generated_film_kg(split, n_linked: int = 60, seed: int = 0):
    """A GENERATED film KG for the planted split: each of the first ``n_linked`` items links
    to a film with a genre (its planted group) and two of 30 actors."""
    from sellakit.data.ml100k import FilmKG

    rng = np.random.default_rng(seed)
    items = [key.split(":")[0] for key in split.item_ids[:n_linked]]  # iids 1..n_linked
    rows = []
    for k, item in enumerate(items):
        rows.append((f"film{k}", "genre", f"genre{k % 4}"))
        rows += [(f"film{k}", "actor", f"actor{a}") for a in rng.choice(30, 2, replace=False)]
    return FilmKG(pd.DataFrame(rows, columns=["head", "relation", "tail"]),
                  pd.DataFrame({"item": items, "entity": [f"film{k}" for k in range(n_linked)]}),
                  source="GENERATED unit-test film KG")


def test_item_kg_vectors_known_unknown_and_cached(small_split, tmp_cache):
    from sellakit.data.ml100k import film_multisource
    from sellakit.kg.items import item_kg_config, item_kg_vectors, with_heldout_film
    from sellakit.kg.train import TrainConfig

    split = small_split
    ms = with_heldout_film(film_multisource(split, _generated_film_kg(split)), n_valid=10,
                           n_test=10)
    config = item_kg_config(train=TrainConfig.quick(dim=4, epochs=2, eval_every=1,
                                                     batch_size=64, n_negatives=16))
    liked = set(split.train[split.train.label == 1].iid)
    for source in ("film", "film+likes"):
        got = item_kg_vectors(ms, split.n_items, source, config=config, progress=False)
        assert got.vectors.shape == (split.n_items, 8) and got.width == 8  # RotatE: re, im
        assert not got.known[0] and not got.vectors[0].any()
        linked = np.zeros(split.n_items, bool)
        linked[1:61] = True
        expected = linked if source == "film" else linked | np.isin(np.arange(split.n_items),
                                                                      list(liked))
        # a film whose every fact was held out is in no training fact: unknown too
        assert not (got.known & ~expected).any() and got.known[expected].mean() > 0.9
        assert not got.vectors[~got.known].any() and np.abs(got.vectors[got.known]).sum(1).all()
        assert got.link_prediction["n"] == 10 and 0 < got.link_prediction["mrr"] <= 1
        again = item_kg_vectors(ms, split.n_items, source, config=config, progress=False)
        assert again.cached and not got.cached
        np.testing.assert_array_equal(again.vectors, got.vectors)
    with pytest.raises(ConfigError, match="Unknown item-KG source 'wikidata'"):
        item_kg_vectors(ms, split.n_items, "wikidata", config=config)


@pytest.mark.slow  # end to end: two seeds of MF, KG-aware MF and the tiny LLM's stages (~90 s CPU)
def test_rec_kg_study_is_resumable_and_pairs_each_method(small_split, tmp_cache, tmp_path,
                                                          monkeypatch):
    """The study on the tiny model and a GENERATED film KG: per-row scores of every method, its
    ablations and mf_kg on the test rows for each seed; a rerun reads finished seeds back."""
    from sellakit.benchmarks import rec_kg
    from sellakit.kg.items import item_kg_config
    from sellakit.kg.train import TrainConfig

    split, out = small_split, tmp_path / "study.json"
    common = dict(out=out, kg=_generated_film_kg(split), heldout=(10, 10), seeds=2,
                  kg_config=item_kg_config(train=TrainConfig.quick(dim=4, epochs=2,
                                                                   batch_size=64)),
                  rec_overrides=dict(train_rows=32, valid_rows=24, test_rows=40, eval_every=2),
                  backbone=tiny_random_llama(), progress=False)
    methods = ["mf", "collm", "collm_kg"]
    results, scores = rec_kg.rec_kg_benchmark(split, methods, **common)
    assert set(scores.method) == {"mf", "collm", "collm_kg", "collm_kg|zero",
                                  "collm_kg|shuffle", "mf_kg", "item_rate", "item_user_rate",
                                  "biased_mf"}  # bench rec's simple baselines beside mf_kg
    assert set(scores.seed) == {2025, 2026} and (scores.groupby(["method", "seed"]).size()
                                                 == 40).all()
    run = results["_run"]
    valid = run["valid_auc"]  # every CF baseline's validation AUC, per seed
    assert set(valid[2025]) == set(rec_kg.CF_BASELINES)
    strongest = run["strongest_baseline"]
    assert strongest == max(rec_kg.CF_BASELINES,
                            key=lambda b: np.mean([valid[s][b] for s in valid]))
    assert set(results["comparisons"]) == {"collm_kg vs collm", "collm_kg vs collm_kg|zero",
                                           "collm_kg vs collm_kg|shuffle",
                                           f"collm_kg vs {strongest}", "mf_kg vs mf"}
    pair = results["comparisons"]["collm_kg vs collm"]["all"]
    assert pair["lo"] <= pair["diff"] <= pair["hi"] and "verdict" in pair
    assert run["kg"]["link_prediction"]["n"] == 10
    assert set(run["seconds"][2025]) == {"cf", "rec", "ablation", "baselines", "total"}
    text = rec_kg.rec_kg_markdown(results, command="sellakit bench rec-kg ...")
    assert "collm_kg vs collm" in text and "sellakit bench rec-kg" in text
    assert "Strongest CF baseline on validation (of item_rate, " in text and strongest in text
    # resumable: the finished seeds are read back, nothing is trained again
    monkeypatch.setattr(rec_kg, "_one_seed", lambda *a, **k: pytest.fail("retrained"))
    assert (scores[scores.seed == 2025].iid.to_numpy()
            == scores[scores.seed == 2026].iid.to_numpy()).all()  # the same rows each seed
    again, rescored = rec_kg.rec_kg_benchmark(split, methods, **common)
    pd.testing.assert_frame_equal(rescored, scores)


def test_rec_kg_scores_its_slices_from_the_test_sample_alone(small_split):
    """Under the compare preset (which scores every item-cold test row as a split of its own)
    the study's runs build no item-cold split: its slices are masks over the test sample, and
    on the cold-item protocol that split's text cache would outgrow the machine's memory."""
    from sellakit.benchmarks.rec_kg import run_overrides
    from sellakit.rec import RecConfig
    from sellakit.rec.methods import sample_splits

    assert RecConfig.compare().item_cold_rows  # the preset's own switch, which the study drops
    config = RecConfig.preset("compare", **run_overrides(
        2025, {"slot_position": "after_text", "loss": "bce", "projector_start": "fresh"}))
    assert not config.item_cold_rows and config.stage1_loss == "bce"
    assert config.sample_seed == 2025 and config.projector_start == "fresh"
    assert set(sample_splits(small_split, config)) == {"train", "valid", "test"}
    assert RecConfig.preset("compare", **run_overrides(2025, None, {"test_rows": 9})).test_rows == 9


def test_rec_kg_faces_the_strongest_cf_baseline_on_validation():
    """The KG methods face the CF baseline with the best seed-mean validation AUC (count
    rates, MF with biases, plain MF or the KG-aware MF), ties to the earlier in the table."""
    from sellakit.benchmarks import rec_kg
    from sellakit.benchmarks.rec import SIMPLE_BASELINES

    assert rec_kg.CF_BASELINES == (*SIMPLE_BASELINES, "mf_kg")
    base = {b: 0.6 for b in rec_kg.CF_BASELINES}
    valid = {1: {**base, "item_user_rate": 0.70, "mf_kg": 0.66},
             2: {**base, "item_user_rate": 0.66, "mf_kg": 0.68}}
    assert rec_kg.strongest_on_validation(valid) == "item_user_rate"  # 0.68 against 0.67
    valid[2]["mf_kg"] = 0.76  # now 0.71 on the mean of the seeds
    assert rec_kg.strongest_on_validation(valid) == "mf_kg"
    assert rec_kg.strongest_on_validation({1: base}) == "item_rate"  # a tie: the earlier
    assert rec_kg.strongest_on_validation({}) is None
    methods = ["collm", "collm_kg", "collm_kg|zero", "mf", "mf_kg", "item_rate"]
    assert rec_kg._pairs(methods, "item_rate") == [
        ("collm_kg", "collm"), ("collm_kg", "collm_kg|zero"), ("collm_kg", "item_rate"),
        ("mf_kg", "mf")]  # last: what the KG vector adds to MF
    assert rec_kg._pairs(methods)[-2] == ("collm_kg", "item_rate")  # none given: the first
    assert ("mf_kg", "mf") not in rec_kg._pairs(["collm", "collm_kg", "mf_kg"])


def test_bench_rec_kg_refuses_a_grid_file_without_a_choice_before_any_work(tmp_path, capsys):
    from sellakit.cli import main

    grid = tmp_path / "grid.json"
    grid.write_text('{"cells": {}}')
    out = tmp_path / "x.json"
    assert main(["bench", "rec-kg", "--grid", str(grid), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no grid result to read the chosen configuration" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.json"]  # nothing ran


def test_bench_rec_kg_is_a_target_and_refuses_a_split_without_film_links(tmp_path, capsys):
    from sellakit.cli import main

    assert main(["bench", "rec-kg", "--dataset", "amazon-book-synthetic", "--out",
                 str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the film KG links MovieLens-100k's movies" in err
    assert not list(tmp_path.iterdir())  # refused before anything ran or was written
    with pytest.raises(SystemExit):
        main(["bench", "rec-kg", "--source", "wikidata", "--out", str(tmp_path / "x.json")])
    assert "invalid choice: 'wikidata'" in capsys.readouterr().err


def test_bench_rec_kg_grid_names_the_missing_grid_file(tmp_path, capsys):
    from sellakit.cli import main

    grid = tmp_path / "no_grid.json"
    assert main(["bench", "rec-kg", "--grid", str(grid), "--out", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err
    assert str(grid) in err and "rec-grid" in err
    assert not (tmp_path / "x.json").exists()
