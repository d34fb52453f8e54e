"""SeLLa-Rec's recommendation layer on the UNTRAINED tiny random Llama (unit-test stand-in) and
planted data: prompts and slot positions, embedding replacement, the Yes/No score, checkpoint
selection, every method end to end, and the two-process (accelerate launch) path."""

from __future__ import annotations

import json
import re
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from sellakit.llm import tiny_random_llama
from sellakit.rec import (ABLATIONS, LAYOUTS, METHODS, SLOT_TOKENS, TEMPLATES, PrefixCache,
                          PromptBuilder, RecConfig, SpecialTokenRec, add_lora, add_slot_tokens,
                          answer_token_ids, collate, collate_rows, collm_mapping, copy_table,
                          run_methods, score_prompts)

HERE = Path(__file__).parent


@pytest.fixture()
def tiny():
    backbone = tiny_random_llama()
    add_slot_tokens(backbone.tokenizer, backbone.model)
    return backbone


def test_slot_tokens_added_without_resize_when_rows_are_spare(tiny):
    assert tiny.model.get_input_embeddings().weight.shape[0] == 320  # spare rows were used
    full = tiny_random_llama(vocab_size=261)  # 256 bytes + 3 specials + Yes + No: no spare row
    added = add_slot_tokens(full.tokenizer, full.model)
    assert set(added) == {"<User_ID>", "<Item_ID>", "<Warm_ID>", "<UserID>", "<TargetItemID>"}
    assert full.model.get_input_embeddings().weight.shape[0] == len(full.tokenizer) == 266
    assert add_slot_tokens(full.tokenizer, full.model) == []  # idempotent


def test_slot_positions_are_known_by_construction(tiny):
    builder = PromptBuilder(tiny.tokenizer, TEMPLATES["sella"], history_len=2)
    titles = np.array(["", "Heat (1995)", "Casino (1995)", "Toy Story (1995)"])
    prompts = builder.encode_rows(
        __import__("pandas").DataFrame({"his": [np.array([1, 2, 3]), np.array([], int)],
                                        "iid": [2, 3]}), titles)
    text = builder.text(["Casino (1995)", "Toy Story (1995)"], "Casino (1995)")
    assert '"Casino (1995)", "Toy Story (1995)"' in text and "Heat" not in text  # last 2 only
    assert "<User_ID>" in text and "<Item_ID><Warm_ID>" in text and text.endswith("#Answer:")
    # the text comes first: every slot sits after it, in the suffix
    assert all(pos >= p.prefix_len for p in prompts for pos in p.slots.values())
    assert text.index('"Casino (1995)"?') < text.index("<User_ID>")
    assert tiny.tokenizer.decode(prompts[1].ids).count("none yet") == 1  # empty history
    ids = builder.slot_ids
    for prompt in prompts:
        assert {name: prompt.ids[pos] for name, pos in prompt.slots.items()} == ids
    batch = collate(prompts, tiny.tokenizer.pad_token_id)
    for name, token in ids.items():
        assert (batch["input_ids"][torch.arange(2), batch[f"slot_{name}"]] == token).all()
    assert (batch["attention_mask"].sum(1) == torch.tensor([len(p.ids) for p in prompts])).all()
    # right padding: every row starts with a real token (no fully masked attention row) and
    # the answer is read at each row's own last token
    assert batch["attention_mask"][:, 0].all()
    assert (batch["input_ids"][torch.arange(2), batch["last"]] == prompts[0].ids[-1]).all()


def test_builder_needs_registered_tokens():
    backbone = tiny_random_llama()
    with pytest.raises(ValueError, match="add_slot_tokens"):
        PromptBuilder(backbone.tokenizer, TEMPLATES["sella"])


def _model(tiny, warm: bool = True) -> SpecialTokenRec:
    torch.manual_seed(0)
    d = tiny.hidden_size
    return SpecialTokenRec(tiny.model, answer_token_ids(tiny.tokenizer),
                           user_table=copy_table(torch.randn(5, 8), trainable=True),
                           item_table=copy_table(torch.randn(4, 8), trainable=True),
                           cf_projector=collm_mapping(8, d),
                           semantic=copy_table(torch.randn(4, d), trainable=True) if warm else None,
                           semantic_projector=torch.nn.Linear(d, d) if warm else None)


def _batch(tiny, template="sella", uid=(1, 2), iid=(2, 3)):
    builder = PromptBuilder(tiny.tokenizer, TEMPLATES[template])
    prompts = [builder.encode(["Heat (1995)"] * (k + 1), "Casino (1995)") for k in range(2)]
    batch = collate(prompts, tiny.tokenizer.pad_token_id)
    batch.update(uid=torch.tensor(uid), iid=torch.tensor(iid))
    return batch


def test_cpu_bf16_autocast_acts_only_where_asked_and_keeps_scores_float32(tiny):
    """RecConfig.cpu_bf16: bfloat16 autocast only for a float32 model on a CPU with native
    bfloat16; the Yes/No logit stays float32 (a bfloat16 head would round it to steps of about
    0.06 and tie scores); a cache key carries the switch only where it acts."""
    from sellakit.config import cpu_bf16_active, cpu_bf16_autocast
    from sellakit.rec.methods import _key_settings

    cpu = torch.device("cpu")
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert cpu_bf16_active(cpu, torch.float32, True) == native
    assert not cpu_bf16_active(cpu, torch.float32, False)
    assert not cpu_bf16_active(cpu, torch.bfloat16, True)  # a bfloat16 model: nothing to cast
    assert not cpu_bf16_active(torch.device("cuda"), torch.float32, True)
    model = _model(tiny).eval()
    batch = _batch(tiny)
    with torch.no_grad():
        plain = model(batch)
        with cpu_bf16_autocast(cpu, torch.float32, True):
            cast = model(batch)
    assert plain.dtype == cast.dtype == torch.float32
    if native:  # the passes moved a little; the logit was not rounded to bfloat16's steps
        assert not torch.equal(cast, plain)
        assert not torch.equal(cast, cast.to(torch.bfloat16).float())
        np.testing.assert_allclose(cast.numpy(), plain.numpy(), atol=0.05)
    run = type("Run", (), {"bf16": native})()
    settings = {"seed": 1, "cpu_bf16": True}
    assert _key_settings(run, settings) == ([("cpu_bf16", True), ("seed", 1)] if native
                                            else [("seed", 1)])
    run.bf16 = False
    assert _key_settings(run, settings) == _key_settings(run, {"seed": 1})


def test_slot_embeddings_are_replaced_per_sample(tiny):
    model = _model(tiny).eval()
    batch = _batch(tiny)
    with torch.no_grad():
        logit = model(batch)
        # By hand: embed, overwrite the three rows, run the LLM.
        embeds = tiny.model.get_input_embeddings()(batch["input_ids"]).clone()
        vectors = model.slot_vectors(batch)
        for name in ("user", "item", "warm"):
            embeds[torch.arange(2), batch[f"slot_{name}"]] = vectors[name]
        out = tiny.model(inputs_embeds=embeds, attention_mask=batch["attention_mask"]
                         ).logits[torch.arange(2), batch["last"]]
        yes, no = answer_token_ids(tiny.tokenizer)
        torch.testing.assert_close(logit, out[:, yes] - out[:, no])
        # The slot tokens' own embedding rows are never read ...
        table = tiny.model.get_input_embeddings().weight
        table[list(PromptBuilder(tiny.tokenizer, TEMPLATES["sella"]).slot_ids.values())] += 5.0
        torch.testing.assert_close(model(batch), logit)
        # ... while the user's CF vector is: a different user, a different score.
        assert not torch.allclose(model(_batch(tiny, uid=(3, 4))), logit)


def test_score_is_yes_over_yes_plus_no(tiny):
    model = SpecialTokenRec(tiny.model, answer_token_ids(tiny.tokenizer)).eval()
    builder = PromptBuilder(tiny.tokenizer, TEMPLATES["text"])
    prompts = [builder.encode(["Heat (1995)"] * k, "Casino (1995)") for k in (0, 1, 3, 2)]
    frame = __import__("pandas").DataFrame({"uid": [1, 1, 2, 2], "iid": [1, 2, 3, 1],
                                            "label": [1, 0, 1, 0]})
    scores = score_prompts(model, prompts, frame, pad_id=tiny.tokenizer.pad_token_id,
                           batch_size=3)
    yes, no = answer_token_ids(tiny.tokenizer)
    with torch.no_grad():
        for prompt, score in zip(prompts, scores):  # one at a time, no padding
            logits = tiny.model(torch.tensor([prompt.ids])).logits[0, -1]
            probs = torch.softmax(logits, -1)
            assert score == pytest.approx(float(probs[yes] / (probs[yes] + probs[no])), abs=1e-5)


@pytest.fixture(scope="module")
def planted_run(small_split):
    from sellakit.align import AlignConfig
    from sellakit.cf import CFConfig, fit_and_evaluate

    split = small_split
    plain, _ = fit_and_evaluate(split, CFConfig.quick("mf", dim=16, max_epochs=30, lr=1e-2),
                                progress=False)
    # Stage 2 runs inside, after stage 1, on the stage-1 model's item states (SeLLa-Rec's order).
    align = AlignConfig.quick(dim=16, max_epochs=20, lr=1e-2, projector_hidden=64)
    # float32 passes: the checks below compare scores of one checkpoint along two paths (text
    # cache, whole prompt) to 1e-5; bfloat16 passes differ by about 2e-4 between them.
    config = RecConfig.quick(train_rows=96, valid_rows=48, test_rows=64, eval_every=4,
                             cpu_bf16=False)
    run = run_methods(split, METHODS + ABLATIONS, config, plain_mf=plain.model,
                      align_config=align, backbone=tiny_random_llama(), progress=False)
    run.plain_for_tests = plain.model  # the run keeps no plain MF; fresh_stage3_model reads it
    return run


def test_every_method_selected_on_valid_and_scored_once(planted_run):
    from sellakit.metrics import auc

    run = planted_run
    assert set(run.results) == set(METHODS + ABLATIONS)
    for name, result in run.results.items():
        assert result["test"]["rows"] == 64 and result["valid"]["rows"] == 48
        assert result["seed"] == 2025 and "test_warm" in result and "test_cold" in result
        if name == "mf":
            continue
        history = run.training[name].history
        assert history.step.iloc[0] == 0 and history.step.iloc[-1] == 12  # 96 rows / 8
        # The restored checkpoint is the best on validation, and it scores as recorded.
        assert run.training[name].best_valid["auc"] == pytest.approx(history.valid_auc.max())
        assert result["valid"]["auc"] == pytest.approx(history.valid_auc.max(), abs=1e-6)
        assert auc(run.rows["valid"].label, run.scores[name]["valid"]) == \
            pytest.approx(result["valid"]["auc"])
    # The model handed back is the selected checkpoint: re-scoring valid gives its scores.
    # (Last method trained, so the shared LoRA is as it was during its selection.)
    name = "sella_no_warm"
    builder = run.builders["sella_no_warm"]
    prompts = builder.encode_rows(run.rows["valid"], run.titles)
    rescored = score_prompts(run.models[name], prompts, run.rows["valid"],
                             pad_id=run.backbone.tokenizer.pad_token_id)
    np.testing.assert_allclose(rescored, run.scores[name]["valid"], atol=1e-5)

    assert "UNTRAINED" in run.results["sella"]["backbone"]


def test_stage3_keeps_stage1_lora_and_trains_only_its_parts(planted_run):
    run = planted_run
    llm = run.models["tallrec"].llm
    assert not any(p.requires_grad for n, p in llm.named_parameters())  # frozen after stage 3
    sella = run.models["sella"]
    assert sella.llm is llm  # one LLM for every method
    trained = {n.split(".")[0] for n, p in sella.named_parameters() if p.requires_grad}
    assert trained == {"user_table", "item_table", "cf_projector", "semantic",
                       "semantic_projector"}
    collm = run.models["collm"]
    assert not collm.user_table.weight.requires_grad  # CoLLM: CF model frozen
    assert run.models["sella_no_warm"].semantic is None


def _started(run, name: str, **switches) -> SpecialTokenRec:
    """``name``'s stage-3 model as it starts under ``run.config`` with ``switches``."""
    import dataclasses

    from sellakit.rec import fresh_stage3_model

    torch.manual_seed(0)
    return fresh_stage3_model(
        dataclasses.replace(run, config=dataclasses.replace(run.config, **switches)), name,
        run.plain_for_tests)


def test_each_stage3_switch_changes_only_its_part(planted_run):
    """Slot scaling, P_C start and <Warm_ID> rows each change what they name, nothing else;
    their defaults build today's models (CoLLM unscaled, SeLLa-Rec scaled)."""
    from sellakit.rec import ScaledDirection, ShrunkStart

    run = planted_run
    base = {n: _started(run, n) for n in ("collm", "sella", "sella_random_init")}
    assert not isinstance(base["collm"].cf_projector, ScaledDirection)
    assert isinstance(base["sella"].cf_projector, ScaledDirection)

    def same(a, b) -> bool:
        sa, sb = a.state_dict(), b.state_dict()
        return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)

    scaled = {n: _started(run, n, slot_scale="input_norm") for n in ("collm", "sella")}
    assert isinstance(scaled["collm"].cf_projector, ScaledDirection)
    assert same(scaled["sella"], base["sella"])
    assert not isinstance(_started(run, "sella", slot_scale="none").cf_projector,
                          ScaledDirection)
    shrunk = _started(run, "sella", projector_start="shrunk", shrink=0.2)
    assert isinstance(shrunk.cf_projector.inner, ShrunkStart)
    assert shrunk.cf_projector.inner.shrink == 0.2
    torch.testing.assert_close(shrunk.cf_projector.inner.inner.state_dict(),
                               base["sella"].cf_projector.inner.state_dict())
    assert same(_started(run, "sella_random_init", projector_start="shrunk"),
                base["sella_random_init"])  # a fresh row stays fresh
    raw = _started(run, "sella", warm_rows="raw")
    rows = base["sella"].semantic.weight[1:]
    torch.testing.assert_close(raw.semantic.weight[1:] - rows,
                               torch.as_tensor(run.semantic_mean).expand_as(rows))
    assert torch.equal(raw.item_table.weight, base["sella"].item_table.weight)


def test_projector_initialised_from_alignment(planted_run):
    run = planted_run
    # sella starts from the alignment projector; sella_random_init from scratch. Their first
    # validation (step 0) therefore differs, while both share the stage-1 model.
    first = {n: run.training[n].history.valid_auc.iloc[0]
             for n in ("sella", "sella_random_init")}
    assert first["sella"] != first["sella_random_init"]


def test_stage1_is_read_back_from_the_cache(small_split, tmp_cache):
    """A second run on the same prompts and settings restores stage 1's LoRA from the cache:
    the same validation record and the same test scores (scored anew from the restored
    weights); another setting trains again."""
    config = RecConfig.quick(train_rows=48, valid_rows=32, test_rows=32, eval_every=3)

    def stage1(cfg):
        return run_methods(small_split, ["tallrec"], cfg, plain_mf=None,
                           backbone=tiny_random_llama(), progress=False, use_cache=True)

    first, again = stage1(config), stage1(config)
    assert (first.results["tallrec"]["from_cache"], again.results["tallrec"]["from_cache"]) == \
        (False, True)
    assert again.training["tallrec"].best_step == first.training["tallrec"].best_step
    np.testing.assert_array_equal(again.scores["tallrec"]["valid"],
                                  first.scores["tallrec"]["valid"])
    np.testing.assert_allclose(again.scores["tallrec"]["test"], first.scores["tallrec"]["test"],
                               atol=1e-6)
    other = stage1(RecConfig.quick(train_rows=48, valid_rows=32, test_rows=32, eval_every=2))
    assert other.results["tallrec"]["from_cache"] is False


def test_stage2_runs_only_for_methods_that_read_it(small_split, monkeypatch):
    """Alignment after stage 1 (``align_config=``) runs when a method reads the aligned or
    LLM item tables, and not for CoLLM's rows or the KG slot alone (plain MF only)."""
    from sellakit.align import AlignConfig
    from sellakit.cf import CFConfig, fit_and_evaluate
    from sellakit.rec import methods as module

    plain, _ = fit_and_evaluate(small_split, CFConfig.quick("mf", dim=8, max_epochs=2),
                                progress=False)

    class Aligned(Exception):
        pass

    def stage2(*args):
        raise Aligned

    monkeypatch.setattr(module, "_stage2_after_stage1", stage2)
    config = RecConfig.quick(train_rows=16, valid_rows=8, test_rows=8, eval_every=2,
                             token_epochs=1)
    common = dict(plain_mf=plain.model, align_config=AlignConfig.quick(dim=8),
                  backbone=tiny_random_llama(), progress=False)
    run = run_methods(small_split, ["collm"], config, **common)  # raises Aligned if aligned
    assert run.aligned is None and "stage2" not in run.seconds
    assert "test" in run.scores["collm"]
    with pytest.raises(Aligned):
        run_methods(small_split, ["collm", "sella"], config, **common)


def test_stage3_is_read_back_from_the_cache(small_split, tmp_cache):
    """A second run from the same start restores each stage-3 method's selected weights: the
    same learning curve, selection and scores; another seed (another start) or another
    stage-3 setting trains again, while stage 1 is still read back."""
    from dataclasses import replace

    from sellakit.cf import CFConfig, fit_and_evaluate

    plain, _ = fit_and_evaluate(small_split, CFConfig.quick("mf", dim=8, max_epochs=5),
                                progress=False)
    config = RecConfig.quick(train_rows=48, valid_rows=32, test_rows=32, eval_every=3)

    def stage3(cfg):
        return run_methods(small_split, ["collm"], cfg, plain_mf=plain.model,
                           backbone=tiny_random_llama(), progress=False, use_cache=True)

    first, again = stage3(config), stage3(config)
    assert (first.results["collm"]["from_cache"], again.results["collm"]["from_cache"]) == \
        (False, True)
    # The text of the training and validation rows is read only by a stage 3 that trains.
    assert set(first.prefixes.built) == {"train", "valid", "test"}
    assert again.prefixes.built == ("test",) and set(again.prefixes) == set(first.prefixes)
    pd.testing.assert_frame_equal(again.training["collm"].history,
                                  first.training["collm"].history)
    assert again.training["collm"].best_step == first.training["collm"].best_step
    for part in ("valid", "test"):
        np.testing.assert_allclose(again.scores["collm"][part], first.scores["collm"][part],
                                   atol=1e-6)
    for name, p in first.models["collm"].named_parameters():
        if p.requires_grad:
            torch.testing.assert_close(dict(again.models["collm"].named_parameters())[name], p)
    for other in (replace(config, seed=7), replace(config, slot_scale="input_norm")):
        run = stage3(other)
        assert run.results["collm"]["from_cache"] is False
    assert run.training["tallrec"].history.attrs.get("from_cache")  # a stage-3 setting only


def test_scores_are_read_back_from_the_cache(small_split, tmp_cache, monkeypatch):
    """Under cache_scores a second run reads every method's test scores, a slot ablation's and a
    lone row's back without scoring (the scorers fail if called) and builds no text cache; a
    corrupted entry is scored again, to the same values; without cache_scores nothing is kept."""
    import sellakit.rec.methods as methods
    from sellakit.cf import CFConfig, fit_and_evaluate
    from sellakit.rec import score_rows

    plain, _ = fit_and_evaluate(small_split, CFConfig.quick("mf", dim=8, max_epochs=5),
                                progress=False)
    config = RecConfig.quick(train_rows=48, valid_rows=32, test_rows=32, eval_every=3)

    def scored(**switches) -> tuple:
        run = run_methods(small_split, ["tallrec", "collm"], config, plain_mf=plain.model,
                          backbone=tiny_random_llama(), progress=False, use_cache=True,
                          **switches)
        row = run.rows["test"].iloc[[3]]
        probes = [score_rows(run, "collm", "test", slot="item", mode="shuffle", seed=3),
                  score_rows(run, "collm", row), score_rows(run, "collm", row, slot="user")]
        return run, [run.scores[n]["test"] for n in ("tallrec", "collm")] + probes

    plain_run, fresh = scored()
    assert not (tmp_cache / "derived" / "scores").exists()
    first, kept = scored(cache_scores=True)
    entries = sorted((tmp_cache / "derived" / "scores").glob("*.npz"))
    assert len(entries) == 5 and first.prefixes.built == ("test",)
    for a, b in zip(kept, fresh):
        np.testing.assert_allclose(a, b, atol=1e-6)

    def fail(*args, **kwargs):
        raise AssertionError("scored again although the kit's cache holds these scores")

    with monkeypatch.context() as patched:
        patched.setattr(methods, "score_prompts", fail)
        patched.setattr(methods, "slot_ablation", fail)
        again, read = scored(cache_scores=True)
    assert again.prefixes.built == ()
    for a, b in zip(read, kept):
        np.testing.assert_array_equal(a, b)
    for entry in entries:
        entry.write_bytes(entry.read_bytes()[:100])  # truncated: unusable
    with pytest.warns(UserWarning, match="cannot be used"):
        third, recomputed = scored(cache_scores=True)
    assert third.prefixes.built == ("test",)
    for a, b in zip(recomputed, kept):
        np.testing.assert_allclose(a, b, atol=1e-6)
    with pytest.raises(ValueError, match="no split 'nope'"):
        score_rows(third, "collm", "nope")


def test_unknown_method_and_missing_alignment_are_clear(small_split):
    with pytest.raises(ValueError, match="Unknown methods"):
        run_methods(small_split, ["bert4rec"], RecConfig.quick(), plain_mf=None)
    with pytest.raises(ValueError, match="aligned_mf.pt"):
        run_methods(small_split, ["sella"], RecConfig.quick(), plain_mf=None)


@pytest.mark.slow  # four fresh Python processes (launcher, two workers, one alone): ~30 s CPU
def test_two_processes_score_like_one(tmp_path):
    """`accelerate launch --multi_gpu --num_processes 2` on a CPU: two gloo processes; training
    runs through DDP and the gathered scores of a fixed model equal a single process's, in the
    same order. (`--cpu` would force one process.)"""
    # This checkout's sellakit (not whichever one is installed) and the tests' conftest.
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(HERE.parent), str(HERE)])}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           str(HERE / "distributed_rec.py"), str(tmp_path)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    two = json.loads((tmp_path / "scores.json").read_text())
    assert two["world"] == 2
    single = subprocess.run([sys.executable, str(HERE / "distributed_rec.py"), str(tmp_path)],
                            env=env, capture_output=True, text=True, timeout=600)
    assert single.returncode == 0, single.stderr[-3000:]
    one = json.loads((tmp_path / "scores.json").read_text())
    assert one["world"] == 1
    np.testing.assert_allclose(two["fixed_scores"], one["fixed_scores"], atol=1e-5)
    assert two["trained_rows"] == 64 and np.isfinite(two["valid_auc"])


def test_pictures_and_score_explorer(planted_run):
    from sellakit.viz import ScoreExplorer, nearest_vocabulary, prompt_html, valid_curves

    run = planted_run
    tokenizer = run.backbone.tokenizer
    row = run.rows["test"].iloc[[0]]
    prompt = run.builders["sella"].encode_rows(row, run.titles)[0]
    page = prompt_html(tokenizer, prompt)
    assert [page.count(f'data-slot="{s}"') for s in ("user", "item", "warm")] == [1, 1, 1]
    assert f"<sub>{prompt.slots['warm']}</sub>" in page
    nearest = nearest_vocabulary(run.models["sella"], tokenizer, prompt, int(row.uid.iloc[0]),
                                 int(row.iid.iloc[0]), k=3)
    assert nearest.slot.tolist() == ["user", "item", "warm"]
    assert all(text.count("'") >= 6 for text in nearest["nearest tokens (cosine)"])
    # A slot token's own row (never read, drawn by a resize) is never shown as a neighbour,
    # even where it points exactly along the slot vector.
    batch = collate([prompt], tokenizer.pad_token_id)
    batch.update(uid=torch.as_tensor(row.uid.to_numpy()), iid=torch.as_tensor(row.iid.to_numpy()))
    user = run.models["sella"].slot_vectors(batch)["user"][0].detach()
    table = run.models["sella"].llm.get_input_embeddings().weight
    slot_row = tokenizer.get_vocab()["<User_ID>"]
    kept = table[slot_row].detach().clone()
    with torch.no_grad():
        table[slot_row] = user
    try:
        again = nearest_vocabulary(run.models["sella"], tokenizer, prompt,
                                   int(row.uid.iloc[0]), int(row.iid.iloc[0]), k=3)
    finally:
        with torch.no_grad():
            table[slot_row] = kept
    assert "<User_ID>" not in again["nearest tokens (cosine)"].iloc[0]
    figure = valid_curves(run)
    assert len(figure.data) == 2 * len(run.training)
    # The widget: picking a user lists their test rows; picking one scores it with every method.
    explorer = ScoreExplorer(run, mf_scores=lambda rows: run.scores["mf"]["test"][rows.index])
    first = explorer.last.copy()
    users = explorer.user.options
    explorer.user.value = users[-1]
    second = explorer.last
    assert explorer.last.attrs["uid"] == users[-1] != first.attrs["uid"]
    assert second.method.tolist() == list(run.results)
    assert ((second["P(Yes)"] > 0) & (second["P(Yes)"] < 1)).all()
    assert "sellakit-scores" in explorer.table.value and "sellakit-slot" in explorer.prompt.value
    # The score shown for the chosen row is the one recorded when the test split was scored.
    index = explorer.item.value
    shown = dict(zip(second.method, second["P(Yes)"]))
    assert shown["sella_no_warm"] == pytest.approx(run.scores["sella_no_warm"]["test"][index],
                                                   abs=1e-5)
    # Switching a slot off: zeroed it moves sella's score by what slot_ablation gives; "none"
    # shows the intact scores again.
    from sellakit.rec import slot_ablation

    assert second.attrs["switched_off"] is None and list(explorer.switch.options)[1:] == [
        ("user", "user"), ("item", "item"), ("warm", "warm")]
    explorer.switch.value = "item"
    off = explorer.last.attrs["switched_off"]
    row = run.rows["test"].loc[[index]]
    zeroed = slot_ablation(run.models["sella"], run.builders["sella"].encode_rows(
        row, run.titles), row, "item", mode="zero", pad_id=tokenizer.pad_token_id)[0]
    assert (off["slot"], off["mode"]) == ("item", "zero") and off["score"] == pytest.approx(
        zeroed, abs=1e-6)
    assert off["move"] == pytest.approx(zeroed - shown["sella"], abs=1e-6)
    assert "sellakit-switched" in explorer.table.value
    explorer.mode.value = "shuffle"
    off = explorer.last.attrs["switched_off"]
    assert off["mode"] == "shuffle" and (off["donor"]["uid"], off["donor"]["iid"]) != (
        int(row.uid.iloc[0]), int(row.iid.iloc[0]))
    explorer.switch.value = None
    assert explorer.last.attrs["switched_off"] is None


def test_gradient_checkpointing_trains_lora_and_slots(small_split):
    """The paper preset's checkpointing path: gradients still reach LoRA and the slot inputs."""
    backbone = tiny_random_llama()
    add_slot_tokens(backbone.tokenizer, backbone.model)
    llm = add_lora(backbone.model, RecConfig(gradient_checkpointing=True))
    assert backbone.model.is_gradient_checkpointing
    model = _model(backbone)
    model.llm = llm
    model.train()
    batch = _batch(backbone)
    model(batch).sum().backward()
    lora = [p for n, p in llm.named_parameters() if "lora_B" in n]
    assert lora and all(p.grad is not None for p in lora)
    assert model.cf_projector[0].weight.grad.abs().sum() > 0
    assert model.semantic_projector.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("layout", ["after_text", "before_title"])
@pytest.mark.parametrize("template", ["text", "collm", "sella"])
def test_cached_text_scores_and_trains_like_the_whole_prompt(tiny, template, layout):
    """The text's key/value cache, reused: scores agree within 1e-4 with the whole prompt run
    at once (rows of different text lengths in one batch), and so do the slot gradients; in
    both slot positions (``before_title``: the cache holds instruction and history only)."""
    from sellakit.rec import LAYOUTS

    import pandas as pd

    from sellakit.rec import PrefixCache, ScaledDirection, collate_rows

    model = _model(tiny, warm=template == "sella") if template != "text" else \
        SpecialTokenRec(tiny.model, answer_token_ids(tiny.tokenizer))
    if template == "sella":
        model.cf_projector = ScaledDirection(model.cf_projector, 3.0)
    model.eval()
    slot_tokens = SLOT_TOKENS["collm" if template == "collm" else "sella"]
    builder = PromptBuilder(tiny.tokenizer, LAYOUTS[layout][template], slot_tokens=slot_tokens)
    prompts = [builder.encode(["Heat (1995)"] * k, f"Casino {k} (1995)") for k in range(6)]
    frame = pd.DataFrame({"uid": [1, 2, 3, 4, 1, 2], "iid": [1, 2, 3, 1, 2, 3],
                          "label": [1, 0, 1, 0, 1, 0]})
    cache = PrefixCache.build(tiny.model, prompts, batch_size=4, share=layout == "before_title")
    assert len({len(t) for t in cache.text_ids}) > 1  # the batches mix text lengths
    pad = tiny.tokenizer.pad_token_id
    whole = score_prompts(model, prompts, frame, pad_id=pad, batch_size=4)
    cached = score_prompts(model, prompts, frame, pad_id=pad, batch_size=4, prefix=cache)
    np.testing.assert_allclose(cached, whole, atol=1e-4)
    if template == "text":
        return
    grads = []
    for kwargs in ({}, {"prefix": cache, "index": np.arange(6)}):
        model.zero_grad()
        model(collate_rows(prompts, frame, pad, "cpu", **kwargs)).sum().backward()
        grads.append(model.user_table.weight.grad.clone())
    torch.testing.assert_close(grads[1], grads[0], atol=1e-4, rtol=1e-3)
    # A cache built from other rows is refused, not silently misread.
    other = PrefixCache.build(tiny.model, prompts[::-1])
    with pytest.raises(ValueError, match="text differs"):
        score_prompts(model, prompts, frame, pad_id=pad, prefix=other)


# The templates as they were written before the data sets' words came from the dataset table:
# ML-1M's prompts must stay these, token for token.
_ML1M_TEXT = ('#Question: A user has given high ratings to the following movies: {history}. '
              'Will the user enjoy the movie "{target}"? Answer with "Yes" or "No".{suffix}')
_ML1M_TEMPLATES = {
    "text": _ML1M_TEXT + "\n#Answer:",
    "collm": _ML1M_TEXT + " Features: user{user}, movie{item}.\n#Answer:",
    "sella": _ML1M_TEXT + " Features: user{user}, movie{item}{warm}.\n#Answer:",
    "sella_no_warm": _ML1M_TEXT + " Features: user{user}, movie{item}.\n#Answer:",
}


@pytest.mark.parametrize("template", sorted(_ML1M_TEMPLATES))
def test_ml1m_prompts_are_the_movie_prompts_token_for_token(tiny, template):
    from sellakit.data.catalog import DATASET_TABLE, item_words

    words = item_words("ml-1m")
    assert words is DATASET_TABLE["ml-1m"].words and words.item_template == "Movie: {title}"
    slots = SLOT_TOKENS["collm" if template == "collm" else "sella"]
    new = PromptBuilder(tiny.tokenizer, TEMPLATES[template], slot_tokens=slots, words=words)
    old = PromptBuilder(tiny.tokenizer, _ML1M_TEMPLATES[template], slot_tokens=slots)
    assert new.template == _ML1M_TEMPLATES[template]
    for history in ([], ["Heat (1995)"], ["Heat (1995)", "Casino (1995)"]):
        assert new.text(history, "Toy Story (1995)") == old.text(history, "Toy Story (1995)")
        assert new.encode(history, "Toy Story (1995)") == old.encode(history, "Toy Story (1995)")


def test_book_prompts_speak_of_books(tiny):
    """A Book split's run builds its prompts with the dataset table's words (found by the
    split's name), and its stage-2 item prompt says "Book"."""
    from sellakit.data.catalog import load_split

    split = load_split("amazon-book-synthetic")
    config = RecConfig.quick(train_rows=16, valid_rows=16, test_rows=16, eval_every=2)
    run = run_methods(split, ["tallrec"], config, plain_mf=None, backbone=tiny_random_llama(),
                      progress=False)
    text = run.builders["text"].text(["Silent Witness"], "Dragon Throne")
    assert 'high ratings to the following books: "Silent Witness"' in text
    assert 'enjoy the book "Dragon Throne"' in text and "movie" not in text
    assert run.words.item_template == "Book: {title}"
    sella = PromptBuilder(tiny.tokenizer, TEMPLATES["sella"], words=run.words)
    assert "Features: user<User_ID>, book<Item_ID><Warm_ID>." in sella.text([], "Dragon Throne")


def test_dataset_rows_describe_their_splits():
    from sellakit.data import DATASETS, load_split
    from sellakit.data.catalog import DATASET_TABLE, dataset_of_split, item_words
    from sellakit.errors import ConfigError

    assert DATASETS == ("ml-1m", "amazon-book", "amazon-book-synthetic", "ml-100k",
                        "ml-100k-cold-items")
    split = load_split("amazon-book-synthetic")
    row = dataset_of_split(split.name)
    assert row is DATASET_TABLE["amazon-book-synthetic"] and split.spec == row.spec
    assert row.published is None and DATASET_TABLE["amazon-book"].published == "amazon-book"
    assert item_words("planted_unit_test") == item_words("ml-1m")  # unlisted: the movie words
    # bench rec's table stands beside the published rows of the data set's key, if it has one
    from sellakit.benchmarks.rec import _published_rows
    assert [r.method for r in _published_rows("ml-1m")] == ["MF", "TALLRec", "CoLLM-MF",
                                                            "BinLLM"]
    assert [(r.method, r.dataset) for r in _published_rows("amazon_book")] == \
        [("MF", "amazon-book")]
    assert _published_rows(split.name) == _published_rows("planted_unit_test") == []
    with pytest.raises(ConfigError, match="choose from ml-1m, amazon-book"):
        load_split("netflix")


def test_adding_a_method_is_one_table_row(small_split, monkeypatch):
    """A new method is one RecMethod row: the table checks it, run_methods accepts it, asks
    for the inputs its fields imply, builds its prompt from its template and its stage-3 model
    from its fields. (The row goes into a copy of the table, never the real one.)"""
    from dataclasses import replace

    from sellakit.cf import CFConfig, fit_and_evaluate
    from sellakit.errors import ConfigError
    from sellakit.rec import methods

    new = methods.RecMethod("sella_plain_frozen", "SeLLa-Rec on the plain MF, CF fixed",
                            "tokens", template="sella", slots="sella", tables="plain",
                            projector="fresh", warm=True, ablation=True)
    real = tuple(methods.METHOD_TABLE.values())
    table = methods.method_table([*real, new])
    assert "sella_plain_frozen" not in methods.METHOD_TABLE  # the real table is untouched
    monkeypatch.setattr(methods, "METHOD_TABLE", table)
    assert methods.template_for("sella_plain_frozen") == "sella"
    assert "sella_plain_frozen: SeLLa-Rec on the plain MF" in methods.method_help()
    with pytest.raises(ConfigError, match=r"sella_plain_frozen needs the LLM's raw item table"):
        run_methods(small_split, ["sella_plain_frozen"], RecConfig.quick(), plain_mf=None)

    plain, _ = fit_and_evaluate(small_split, CFConfig.quick("mf", dim=16, max_epochs=3),
                                progress=False)
    backbone = tiny_random_llama()
    semantic = np.random.default_rng(0).normal(size=(small_split.n_items, backbone.hidden_size))
    config = RecConfig.quick(train_rows=32, valid_rows=32, test_rows=32, eval_every=2)
    run = run_methods(small_split, ["sella_plain_frozen"], config, plain_mf=plain.model,
                      semantic=semantic, backbone=backbone, progress=False)
    assert set(run.results) == {"sella_plain_frozen"} and "tallrec" in run.models
    model = run.models["sella_plain_frozen"]
    assert model.semantic is not None and not model.user_table.weight.requires_grad
    np.testing.assert_allclose(model.item_table.weight.numpy(),
                               plain.model.item_embedding.weight.detach().numpy())
    assert run.builders["sella"].slot_names == ["user", "item", "warm"]

    # Rows whose fields contradict each other or their template are refused, with the fix.
    for bad, message in ((replace(new, warm=False), "needs no {warm} slot"),
                         (replace(new, projector="alignment"), "projector='fresh'"),
                         (replace(new, template="nope"), "not a key of TEMPLATES"),
                         (replace(new, slots="collm"), "family fills"),
                         (replace(new, name="sella"), "two rows")):
        with pytest.raises(ConfigError, match=re.escape(message)):
            methods.method_table([*real, bad])


def test_warmup_cosine_schedule_is_the_hand_written_one():
    """Warm-up reaches its first step at 1/warm (transformers' get_cosine_schedule_with_warmup
    spends its step 0 at learning rate 0), decays to 0 at the last step and stays there (the
    library's cosine rises again past it, as Accelerate's scheduler, stepped once per process,
    can reach)."""
    import math

    from transformers import get_cosine_schedule_with_warmup

    from sellakit.rec.train import _warmup_cosine

    factor = _warmup_cosine(100, 0.1)
    assert [factor(s) for s in (0, 4, 9)] == pytest.approx([0.1, 0.5, 1.0])
    assert factor(55) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    assert factor(100) == factor(130) == 0.0
    assert _warmup_cosine(10, 0.0)(0) == 1.0  # no warm-up: cosine from the first step
    optimiser = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    library = get_cosine_schedule_with_warmup(optimiser, 10, 100).lr_lambdas[0]
    assert library(0) == 0.0 != factor(0) and library(130) > 0.0 == factor(130)


def test_every_rec_preset_names_its_stage2_presets():
    from sellakit.align import AlignConfig
    from sellakit.cf import CFConfig
    from sellakit.errors import ConfigError
    from sellakit.rec import prepare_stage2

    assert tuple(RecConfig.STAGE2_PRESETS) == RecConfig.PRESETS
    assert dict(RecConfig.STAGE2_PRESETS) == {"quick": "quick", "compare": "quick",
                                              "study": "quick", "paper": "paper"}
    for base in RecConfig.STAGE2_PRESETS.values():
        assert base in CFConfig.PRESETS and base in AlignConfig.PRESETS
    with pytest.raises(ConfigError, match="not a rec preset; choose one of quick, compare"):
        prepare_stage2(None, preset="huge")


# SeLLa-Rec as its authors train it (issue 23, point 2): the slots before the target title, the
# text cache once per history, the LM loss on the tokens after the slots, their optimiser.


def _rows(tiny):
    """Six rows of three histories (two targets each), the authors' slot position."""
    builder = PromptBuilder(tiny.tokenizer, LAYOUTS["before_title"]["sella"],
                            slot_tokens=SLOT_TOKENS["sella"])
    prompts = [builder.encode(["Heat (1995)"] * (k // 2), f"Casino {k} (1995)")
               for k in range(6)]
    frame = pd.DataFrame({"uid": [1, 1, 2, 2, 3, 3], "iid": [1, 2, 3, 1, 2, 3],
                          "label": [1, 0, 1, 0, 1, 0]})
    return builder, prompts, frame


def test_before_title_puts_the_slots_before_the_title_and_caches_each_history_once(tiny):
    builder, prompts, _ = _rows(tiny)
    text = builder.text(["Heat (1995)"], "Casino (1995)")
    assert text.index("<User_ID>") < text.index("<Warm_ID>") < text.index('"Casino (1995)"')
    # The cached text ends where the slots' clause begins: instruction and history only.
    prefix = tiny.tokenizer.decode(prompts[2].ids[:prompts[2].prefix_len])
    assert prefix.endswith('"Heat (1995)".') and "Casino" not in prefix
    cache = PrefixCache.build(tiny.model, prompts, batch_size=4, share=True)
    assert len(cache) == 6 and len(cache.states) == 3  # one entry per distinct history
    assert list(cache.row_state) == [0, 0, 1, 1, 2, 2]
    assert len(PrefixCache.build(tiny.model, prompts, batch_size=4).states) == 6


def test_lm_loss_targets_the_title_and_answer_and_agrees_cached(tiny):
    """The LM loss's targets are the tokens after the first slot (title, cue; no slot token)
    and the answer; its value and slot gradients agree with and without the cache, and the
    title tokens add gradient beyond the answer's."""
    _, prompts, frame = _rows(tiny)
    model = _model(tiny)
    model.eval()
    pad = tiny.tokenizer.pad_token_id
    cache = PrefixCache.build(tiny.model, prompts, batch_size=4, share=True)
    losses, grads = [], []
    for kwargs in ({}, {"prefix": cache, "index": np.arange(6)}):
        model.zero_grad()
        loss = model({**collate_rows(prompts, frame, pad, "cpu", **kwargs), "lm_loss": True})
        loss.backward()
        losses.append(float(loss.detach()))
        grads.append(model.user_table.weight.grad.clone())
    assert losses[1] == pytest.approx(losses[0], abs=1e-4)
    torch.testing.assert_close(grads[1], grads[0], atol=1e-4, rtol=1e-3)
    assert grads[0].abs().sum() > 0
    # The answer alone (loss="answer_lm") gives the slots another gradient: the title counts.
    model.zero_grad()
    batch = collate_rows(prompts, frame, pad, "cpu")
    logits = model({**batch, "full_vocabulary": True})
    yes, no = answer_token_ids(tiny.tokenizer)
    torch.nn.functional.cross_entropy(
        logits, torch.where(batch["label"] > 0.5, yes, no)).backward()
    assert not torch.allclose(model.user_table.weight.grad, grads[0])


def test_lm_loss_reads_exactly_the_tokens_after_the_slots(tiny, monkeypatch):
    """Every target of the LM loss, decoded: the title's clause and the cue, then the answer."""
    _, prompts, frame = _rows(tiny)
    model = _model(tiny)
    seen = {}
    original = torch.nn.functional.cross_entropy

    def spy(logits, targets, *args, **kwargs):
        seen["targets"] = targets
        return original(logits, targets, *args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "cross_entropy", spy)
    model.lm_loss(collate_rows(prompts[:1], frame.iloc[:1], tiny.tokenizer.pad_token_id, "cpu"))
    ids = prompts[0].ids
    after_warm = ids[prompts[0].slots["warm"] + 1:]
    yes, _ = answer_token_ids(tiny.tokenizer)
    # After <User_ID> come ", movie" (targets), <Item_ID> and <Warm_ID> (not targets), then
    # the title clause and cue; the answer last.
    between = ids[prompts[0].slots["user"] + 1:prompts[0].slots["item"]]
    assert seen["targets"].tolist() == between + after_warm + [yes]
    assert "Casino 0 (1995)" in tiny.tokenizer.decode(after_warm)


def test_authors_stage3_optimiser_is_one_group_at_their_settings(tiny):
    from sellakit.rec.train import _prepared

    class Plain:  # the single-process Accelerate handle's prepare, for the optimiser alone
        def prepare(self, *parts):
            return parts

    model = _model(tiny)
    for p in model.llm.parameters():
        p.requires_grad_(False)
    _, (_, optimiser, _, _) = _prepared(model, 16, 1, RecConfig(), 1e-3, Plain(),
                                        authors_optim=True)
    (group,) = optimiser.param_groups
    assert (group["initial_lr"], group["weight_decay"], group["betas"]) == (2e-4, 0.01,
                                                                             (0.9, 0.95))
    _, (_, kit, _, _) = _prepared(model, 16, 1, RecConfig(), 1e-3, Plain())
    assert [g["initial_lr"] for g in kit.param_groups] == [1e-3, 1e-4]
    assert RecConfig(stage3_optim="authors").lr_tokens == RecConfig().lr_tokens


def test_stage3_switches_leave_stage1s_cache_key_alone():
    """A stage 1 cached before the switches existed is still found: stage 3's switches and the
    slot position (whose prompts' ids the key holds) are not in its settings; stage 1's are."""
    from sellakit.rec.methods import _stage1_settings

    base = _stage1_settings(RecConfig())
    for switch in ({"slot_position": "before_title"}, {"projector_start": "shrunk"},
                   {"warm_rows": "raw"}, {"slot_scale": "none"}, {"stage3_optim": "authors"},
                   {"shrink": 0.5}):
        assert _stage1_settings(RecConfig(**switch)) == base
    assert _stage1_settings(RecConfig(loss="lm")) != base
    # Under a stage-1 loss of its own, stage 3's loss is not stage 1's (the grid's LM-loss cells
    # trained their BCE stage 1 again in a new process when it was in the key)
    bce = _stage1_settings(RecConfig(stage1_loss="bce", loss="bce"))
    assert _stage1_settings(RecConfig(stage1_loss="bce", loss="lm")) == bce
    assert _stage1_settings(RecConfig(stage1_loss="lm", loss="lm")) != bce


def test_a_shrunk_start_is_a_row_of_the_sella_family_on_aligned_tables():
    from sellakit.errors import ConfigError
    from sellakit.rec import RecMethod, method_table

    rows = [RecMethod("tallrec", "stage 1", "text", template="text"),
            RecMethod("sella_shrunk", "shrunk start", "tokens", template="sella", slots="sella",
                      tables="aligned", projector="shrunk", warm=True)]
    assert method_table(rows)["sella_shrunk"].projector == "shrunk"
    collm = RecMethod("collm_shrunk", "no", "tokens", template="collm", slots="collm",
                      tables="aligned", projector="shrunk")
    with pytest.raises(ConfigError, match="alignment projector"):
        method_table([rows[0], collm])
