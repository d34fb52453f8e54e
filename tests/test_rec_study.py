"""The LLM-recommender study (issue 23, points 3-6) on the UNTRAINED tiny random Llama and
planted data: the bf16 memory-mapped text cache, the study's row mix, stage 1's switches, the
learning curve, the grid and the study resuming after a kill, and the slot ablation."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from sellakit.llm import tiny_random_llama
from sellakit.rec import (PrefixCache, PromptBuilder, RecConfig, SLOT_TOKENS, SpecialTokenRec,
                          TEMPLATES, add_slot_tokens, answer_token_ids, copy_table,
                          score_prompts)

#: bf16 keeps 8 bits of mantissa: cached keys/values differ by up to ~0.4 % of their size, and
#: the Yes/No probability of the tiny model moves by well under this.
BF16_SCORE_TOLERANCE = 2e-3


@pytest.fixture()
def tiny():
    backbone = tiny_random_llama()
    add_slot_tokens(backbone.tokenizer, backbone.model)
    return backbone


def _sella(tiny, n_users: int = 8, n_items: int = 8) -> SpecialTokenRec:
    from sellakit.align import Projector

    rng = np.random.default_rng(0)
    d = tiny.hidden_size
    return SpecialTokenRec(tiny.model, answer_token_ids(tiny.tokenizer),
                           user_table=copy_table(rng.normal(size=(n_users, 4)), trainable=False),
                           item_table=copy_table(rng.normal(size=(n_items, 4)), trainable=False),
                           cf_projector=Projector(4, d),
                           semantic=copy_table(rng.normal(size=(n_items, d)), trainable=False),
                           semantic_projector=torch.nn.Linear(d, d)).eval()


def _prompts(tiny, n: int = 6):
    builder = PromptBuilder(tiny.tokenizer, TEMPLATES["sella"], slot_tokens=SLOT_TOKENS["sella"])
    prompts = [builder.encode(["Heat (1995)"] * (k % 4), f"Casino {k} (1995)") for k in range(n)]
    frame = pd.DataFrame({"uid": np.arange(n) % 7 + 1, "iid": (np.arange(n) * 3) % 7 + 1,
                          "label": np.arange(n) % 2})
    return prompts, frame


def test_bf16_memmapped_cache_scores_like_float32_and_is_read_back(tiny, tmp_cache, monkeypatch):
    """The stored cache (bf16 on disk, memory-mapped) scores within BF16_SCORE_TOLERANCE of the
    float32 one and of the whole prompt; a second call reads the sealed entry (no LLM pass); a
    damaged entry is recomputed, and a half-written one never exists."""
    from sellakit.rec import prefix

    model, (prompts, frame) = _sella(tiny), _prompts(tiny)
    pad = tiny.tokenizer.pad_token_id
    whole = score_prompts(model, prompts, frame, pad_id=pad, batch_size=4)
    memory = PrefixCache.build(tiny.model, prompts, batch_size=4)
    stored = PrefixCache.stored(tiny.model, prompts, "k1", batch_size=4)
    assert isinstance(stored.states, prefix.DiskStates) and stored.nbytes * 2 == memory.nbytes
    on_disk = score_prompts(model, prompts, frame, pad_id=pad, batch_size=4, prefix=stored)
    np.testing.assert_allclose(on_disk, whole, atol=BF16_SCORE_TOLERANCE)
    assert np.abs(on_disk - whole).max() > 0  # it really is rounded

    def no_llm(*args, **kwargs):
        raise AssertionError("the sealed entry should have been read back")

    monkeypatch.setattr(prefix, "_run_text", no_llm)
    again = PrefixCache.stored(tiny.model, prompts, "k1", batch_size=4)
    np.testing.assert_array_equal(
        score_prompts(model, prompts, frame, pad_id=pad, batch_size=4, prefix=again), on_disk)
    folder = tmp_cache / "derived" / "prefix" / "k1"
    with open(folder / "states.npy", "r+b") as handle:  # a flipped byte breaks the seal
        handle.seek(-1, 2)
        handle.write(b"\x01")
    with pytest.raises(AssertionError, match="read back"):
        PrefixCache.stored(tiny.model, prompts, "k1", batch_size=4)
    monkeypatch.undo()
    assert not list(folder.parent.glob(".k1.*"))  # the failed rewrite left nothing behind
    redone = PrefixCache.stored(tiny.model, prompts, "k1", batch_size=4)
    np.testing.assert_array_equal(
        score_prompts(model, prompts, frame, pad_id=pad, batch_size=4, prefix=redone), on_disk)
    with pytest.raises(ValueError, match="not these rows' text"):
        PrefixCache.stored(tiny.model, prompts[::-1], "k1", batch_size=4)

def test_study_rows_match_the_splits_mix_of_labels_and_cold_kinds(small_split):
    from sellakit.rec import sample_splits

    from types import SimpleNamespace

    config = RecConfig.quick(stratify=True, stratify_by="cold_kind", test_rows=60,
                             sample_seed=3)
    test = small_split.test.copy()  # planted: every test row is warm, so make cold ones
    test.loc[test.index % 5 == 0, "uid"] = 10_000 + test.index[test.index % 5 == 0]
    test.loc[test.index % 7 == 0, "iid"] = 20_000
    split = SimpleNamespace(train=small_split.train, valid=small_split.valid, test=test)
    rows = sample_splits(split, config)

    def kind(frame):
        return (2 * ~frame.uid.isin(small_split.train.uid)
                + ~frame.iid.isin(small_split.train.iid)).astype(int)

    full = test.groupby([test.label, kind(test)]).size() / len(test)
    got = rows["test"].groupby([rows["test"].label, kind(rows["test"])]).size() / 60
    assert len(rows["test"]) == 60 and len(full) == 8
    assert (got.reindex(full.index, fill_value=0) - full).abs().max() < 1 / 60 + 1e-9
    assert list(rows["test"].columns) == list(test.columns)  # no helper column left
    assert RecConfig.study().stratify_by == "cold_kind" and RecConfig.study().test_rows >= 2048


def test_stage1_switches_are_rows_and_validated():
    from sellakit.errors import ConfigError
    from sellakit.rec.methods import _stage1_config, _stage1_settings

    config = RecConfig.compare()
    assert config.with_lora("all_r64").lora_r == 64
    assert "down_proj" in config.with_lora("all_r64").lora_targets
    assert config.with_lora("qv_r8").lora_targets == ("q_proj", "v_proj")
    with pytest.raises(ConfigError, match="LORA_SETS"):
        config.with_lora("r3")
    with pytest.raises(ConfigError, match="stage1_loss"):
        RecConfig.compare(stage1_loss="mse")
    # The defaults leave stage 1's cache key as before; a stage-1 loss changes it and stage 1's.
    assert "stage1_loss" not in _stage1_settings(config)
    lm = RecConfig.compare(stage1_loss="lm", loss="bce")
    assert _stage1_settings(lm)["stage1_loss"] == "lm" and _stage1_config(lm).loss == "lm"
    assert _stage1_config(config) is config


def _overrides():
    return {"train_rows": 32, "valid_rows": 16, "test_rows": 16, "eval_every": 4,
            "history_len": 2, "batch_size": 8}


def test_curve_writes_each_size_and_resumes_after_a_kill(small_split, tmp_cache, tmp_path,
                                                        monkeypatch):
    from sellakit.benchmarks import rec_study

    out = tmp_path / "curve.json"
    loads = []

    def load():
        loads.append(1)
        return tiny_random_llama()

    real_save = rec_study.PartStore.save

    def killed_after_one(self, name, record, scores):
        if self.done("qv_r8_bce@16"):  # killed while the second size finishes
            raise KeyboardInterrupt("killed")
        real_save(self, name, record, scores)

    kwargs = dict(sizes=[16, 24], variants=["qv_r8_bce"], out=str(out), preset="quick",
                  load=load, overrides={k: v for k, v in _overrides().items()
                                        if k != "train_rows"}, progress=False)
    monkeypatch.setattr(rec_study.PartStore, "save", killed_after_one)
    with pytest.raises(KeyboardInterrupt):
        rec_study.rec_curve(small_split, **kwargs)
    assert json.loads(out.read_text())["runs"].keys() == {"qv_r8_bce@16"}  # written at once
    monkeypatch.setattr(rec_study.PartStore, "save", real_save)
    loads.clear()
    results, scores = rec_study.rec_curve(small_split, **kwargs)
    assert len(loads) == 1  # the finished size was not trained again
    assert set(results["runs"]) == {"qv_r8_bce@16", "qv_r8_bce@24"}
    assert [results["runs"][k]["train_rows"] for k in sorted(results["runs"])] == [16, 24]
    assert 0 <= results["item_rate"]["valid"]["auc"] <= 1
    assert set(scores["size"]) == {16, 24} and out.with_suffix(".md").exists()
    assert out.with_suffix(".scores.parquet").exists()
    hosts = json.loads(out.read_text())["_parts_host"]  # each part's machine, across the kill
    assert set(hosts) == {"qv_r8_bce@16", "qv_r8_bce@24"}
    assert all(0 < h["cpu_share"] and h["wall_s"] > 0 for h in hosts.values())
    assert "Machine per part (2 parts" in out.with_suffix(".md").read_text()
    with pytest.raises(ValueError, match="other settings"):
        rec_study.rec_curve(small_split, **{**kwargs, "seed": 1})


def test_part_hosts_name_the_parts_that_ran_beside_other_work(tmp_path):
    """A part whose 15-minute load exceeded the cores is named, and so is a long part with
    a low CPU share; a line cut by a kill is skipped, not fatal."""
    from sellakit.benchmarks.parts import HOSTS_FILE, PartStore
    from sellakit.benchmarks.report import host_note

    folder = tmp_path / "run.parts"
    folder.mkdir()
    line = {"finished": "2026-12-05T09:00:00+00:00", "wall_s": 10.0, "cpu_s": 19.0,
            "threads": 2, "cpu_share": 0.95, "cpus": 2}
    rows = [{**line, "part": "idle", "load_average": [2.0, 2.0, 2.1]},
            {**line, "part": "busy", "cpu_share": 0.5, "load_average": [4.0, 3.9, 3.8]}]
    (folder / HOSTS_FILE).write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"part"')
    hosts = PartStore.hosts(tmp_path / "run.json")
    assert set(hosts) == {"idle", "busy"}
    note = host_note(hosts)
    assert "CPU share 0.50-0.95" in note and \
        "beside other work (load above the cores at its end): busy." in note
    assert host_note({"idle": hosts["idle"]}).endswith("none had a load above the cores at its "
                                                       "end.")
    # a long part with a low CPU share is named though its end's load was within the cores
    slow = {**hosts["idle"], "cpu_share": 0.57, "wall_s": 3264.2}
    note = host_note({"idle": hosts["idle"], "slow": slow, "short": {**slow, "wall_s": 2.0}})
    assert note.endswith("partly on one thread): slow (0.57 over 3,264 s).")
    assert "short" not in note
    assert PartStore.hosts(tmp_path / "none.json") == {}
    windows = {"w": {**rows[0], "part": "w", "load_average": None}}
    assert host_note(windows).endswith("no load average on this system.")


def test_stage1_trains_on_its_subset_and_stage3_on_every_training_row(small_split, tmp_cache,
                                                                      monkeypatch):
    """``stage1_rows``: stage 1 fits a stratified subset of the training rows (the same for a
    second run), stage 3 every row; the stage-1 cache tells the two sizes apart."""
    import sellakit.rec.methods as methods
    from sellakit.rec import RecConfig, run_methods

    seen = []
    real_train = methods.train_rec

    def recording(model, train, valid, *args, **kwargs):
        seen.append((kwargs["desc"], len(train[0]), train[1].label.mean()))
        return real_train(model, train, valid, *args, **kwargs)

    monkeypatch.setattr(methods, "train_rec", recording)
    plain, _ = _stage2(small_split)(2025)
    config = RecConfig.preset("quick", seed=2025, stage1_rows=16, stratify=True,
                              **_overrides())
    run = run_methods(small_split, ["tallrec", "collm"], config, plain_mf=plain,
                      backbone=tiny_random_llama(), progress=False, use_cache=True)
    assert [(d, n) for d, n, *_ in seen] == [("tallrec", 16), ("collm", 32)]
    share = run.rows["train"].label.mean()
    assert abs(seen[0][2] - share) <= 1 / 16  # the subset keeps the labels' share
    again = run_methods(small_split, ["tallrec"], config, plain_mf=plain,
                        backbone=tiny_random_llama(), progress=False, use_cache=True)
    assert again.results["tallrec"]["from_cache"] and len(seen) == 2  # same subset, cached
    whole = RecConfig.preset("quick", seed=2025, stratify=True, **_overrides())
    whole = run_methods(small_split, ["tallrec"], whole, plain_mf=plain,
                        backbone=tiny_random_llama(), progress=False, use_cache=True)
    assert not whole.results["tallrec"]["from_cache"] and seen[-1][1] == 32


def _stage2(small_split):
    from sellakit.align import AlignConfig
    from sellakit.cf import CFConfig, fit_and_evaluate

    def make(seed):
        plain, _ = fit_and_evaluate(small_split, CFConfig.quick("mf", dim=8, max_epochs=5,
                                                                lr=1e-2, seed=seed),
                                    progress=False)
        return plain.model, AlignConfig.quick(dim=8, max_epochs=3, lr=1e-2,
                                              projector_hidden=16, seed=seed)
    return make


def test_grid_chooses_on_validation(small_split, tmp_cache, tmp_path, monkeypatch):
    from sellakit.benchmarks import rec_study

    monkeypatch.setattr(rec_study, "GRID_AXES", {"slot_position": ("after_text",
                                                                   "before_title"),
                                                 "loss": ("bce",), "projector_start": ("fresh",)})
    import gc
    import weakref

    import sellakit.rec

    real_run_methods, earlier = sellakit.rec.run_methods, {}

    def watched(split, methods, config, **kwargs):
        # A layout's runs (and their text caches) are gone before the next layout's first run
        # (the 24 GiB machine cannot hold two layouts' caches of the compare preset).
        gc.collect()
        alive = [pos for pos, refs in earlier.items() if pos != config.slot_position
                 and any(ref() is not None for ref in refs)]
        assert not alive, f"runs of {alive} still held when {config.slot_position} starts"
        run = real_run_methods(split, methods, config, **kwargs)
        earlier.setdefault(config.slot_position, []).append(weakref.ref(run))
        return run

    monkeypatch.setattr(sellakit.rec, "run_methods", watched)
    grid, scores = rec_study.rec_grid(
        small_split, out=str(tmp_path / "grid.json"), preset="quick", load=tiny_random_llama,
        stage2=_stage2(small_split), overrides=_overrides(), progress=False)
    assert set(earlier) == {"after_text", "before_title"}
    assert len(grid["cells"]) == 2
    best = max(grid["cells"].values(), key=lambda r: r["valid"]["auc"])
    assert grid["chosen_cell"] == best["cell"]
    assert set(scores.split) >= {"valid", "test"}
    assert rec_study.study_choice(tmp_path / "grid.json") == best["cell"]
    with pytest.raises(ValueError, match="run `sellakit bench rec-grid"):
        rec_study.study_choice(tmp_path / "none.json")
    # a grid not yet finished (its file is written after each cell) chooses nothing
    partial = json.loads((tmp_path / "grid.json").read_text())
    partial["cells"].pop("before_title+bce+fresh")
    (tmp_path / "partial.json").write_text(json.dumps(partial))
    with pytest.raises(ValueError, match=r"1 of 2 cells \(missing: before_title\+bce\+fresh\)"):
        rec_study.study_choice(tmp_path / "partial.json")


def test_study_resumes_after_a_kill_and_faces_the_strongest_baseline(small_split, tmp_cache,
                                                                     tmp_path, monkeypatch):
    from sellakit.benchmarks import rec_study
    from sellakit.errors import ConfigError

    choice = {"slot_position": "after_text", "loss": "bce", "projector_start": "fresh"}
    saved = []
    real_save = rec_study.PartStore.save

    def killed_after_five(self, name, record, frame):
        real_save(self, name, record, frame)
        saved.append(name)
        if len(saved) == 5:  # the three baselines, MF and stage 1 are done
            raise KeyboardInterrupt("killed")

    kwargs = dict(out=str(tmp_path / "study.json"), choice=choice, preset="quick", seeds=2,
                  ablation_seeds=1, methods=("mf", "tallrec", "sella", "sella_random_init"),
                  load=tiny_random_llama, stage2=_stage2(small_split),
                  overrides={**_overrides(), "prefix_storage": "disk_bf16",
                             "slot_scale": "input_norm"}, progress=False)
    with pytest.raises(ConfigError, match="--methods bogus"):
        rec_study.rec_study(small_split, **{**kwargs, "methods": ("sella", "bogus")})
    monkeypatch.setattr(rec_study.PartStore, "save", killed_after_five)
    with pytest.raises(KeyboardInterrupt):
        rec_study.rec_study(small_split, **kwargs)
    first_two = list(saved)
    results, scores = rec_study.rec_study(small_split, **kwargs)
    assert first_two == ["item_rate@2025", "item_user_rate@2025", "biased_mf@2025", "mf@2025",
                         "tallrec@2025"]
    assert saved[5:] and not set(saved[5:]) & set(first_two)  # finished parts not run again
    assert results["_run"]["repeated"] == {"tallrec": [2025], "sella_random_init": [2025]}
    versus = results["_versus_strongest"]
    assert versus["baseline"] in ("item_rate", "item_user_rate", "biased_mf", "mf")
    assert set(versus["rows"]) == {"tallrec", "sella", "sella_random_init"}
    assert set(scores.method) >= {"item_rate", "item_user_rate", "biased_mf", "sella"}
    assert set(scores.seed) == {2025, 2026}
    table = (tmp_path / "study.md").read_text()
    assert "released script" in table and "scaled by the rule `input_norm`" in table
    # P_C fresh makes sella_random_init sella: named, and compared on the seed both ran
    assert results["_run"]["same_scores"] == {"sella_random_init": {"as": "sella",
                                                                    "seed": 2025}}
    assert results["_ablations"]["sella_random_init"]["seeds"] == [2025]
    assert results["_ablations"]["sella_random_init"]["auc"]["diff"] == 0


def test_slot_ablation_zeroes_or_shuffles_one_slot(tiny):
    from sellakit.errors import ConfigError
    from sellakit.rec.probe import slot_ablation

    model, (prompts, frame) = _sella(tiny), _prompts(tiny)
    pad = tiny.tokenizer.pad_token_id
    intact = score_prompts(model, prompts, frame, pad_id=pad, batch_size=4)
    one_user = frame.assign(uid=1)  # shuffling a slot all rows share changes nothing
    np.testing.assert_allclose(
        slot_ablation(model, prompts, one_user, "user", pad_id=pad),
        score_prompts(model, prompts, one_user, pad_id=pad), atol=1e-5)
    for slot in ("user", "item", "warm"):
        for mode in ("zero", "shuffle"):
            ablated = slot_ablation(model, prompts, frame, slot, mode=mode, pad_id=pad)
            assert ablated.shape == intact.shape and np.abs(ablated - intact).max() > 1e-6
    assert "slot_vectors" not in vars(model)  # the instance is left as it was
    with pytest.raises(ConfigError, match="no 'kg' slot"):
        slot_ablation(model, prompts, frame, "kg", pad_id=pad)
    with pytest.raises(ConfigError, match="mode"):
        slot_ablation(model, prompts, frame, "user", mode="noise", pad_id=pad)
    # Named donors: row r reads donor r's vector; a row its own donor scores as intact.
    lone, other = frame.iloc[[0]], frame.iloc[[1]].reset_index(drop=True)
    np.testing.assert_allclose(
        slot_ablation(model, prompts[:1], lone, "item", pad_id=pad, donors=lone),
        intact[:1], atol=1e-5)
    moved = slot_ablation(model, prompts[:1], lone, "item", pad_id=pad, donors=other)
    assert abs(moved[0] - intact[0]) > 1e-6
    with pytest.raises(ConfigError, match="one donor row per prompt"):
        slot_ablation(model, prompts[:1], lone, "item", pad_id=pad, donors=frame)


def test_cached_text_takes_target_titles_of_different_lengths(tiny):
    """With the slots before the title the suffix carries the title, so a batch's suffixes
    differ in length: padded and masked, scores and the LM loss agree with the whole prompt."""
    from sellakit.rec import LAYOUTS, collate_rows

    model = _sella(tiny)
    builder = PromptBuilder(tiny.tokenizer, LAYOUTS["before_title"]["sella"],
                            slot_tokens=SLOT_TOKENS["sella"])
    prompts = [builder.encode(["Heat (1995)"] * (k % 3), "Casino" + " Royale" * k)
               for k in range(6)]
    frame = _prompts(tiny)[1]
    assert len({len(p.ids) - p.prefix_len for p in prompts}) == 6
    cache = PrefixCache.build(tiny.model, prompts, batch_size=4, share=True)
    pad = tiny.tokenizer.pad_token_id
    np.testing.assert_allclose(
        score_prompts(model, prompts, frame, pad_id=pad, batch_size=4, prefix=cache),
        score_prompts(model, prompts, frame, pad_id=pad, batch_size=4), atol=1e-4)
    with torch.no_grad():
        losses = [float(model({**collate_rows(prompts, frame, pad, "cpu", **kwargs),
                               "lm_loss": True}))
                  for kwargs in ({}, {"prefix": cache, "index": np.arange(6)})]
    assert losses[1] == pytest.approx(losses[0], abs=1e-4)


def test_forest_bars_span_each_interval_and_the_curve_draws_the_item_rate():
    from sellakit.viz import paired_forest, stage1_curve

    rows = pd.DataFrame({"label": ["sella", "collm"], "diff": [0.02, -0.01],
                         "lo": [-0.01, -0.05], "hi": [0.06, 0.01]})
    trace = paired_forest(rows, title="t").data[0]
    np.testing.assert_allclose(np.asarray(trace.x) + np.asarray(trace.error_x.array), rows.hi)
    np.testing.assert_allclose(np.asarray(trace.x) - np.asarray(trace.error_x.arrayminus),
                               rows.lo)
    curve = {"runs": {f"v@{n}": {"variant": "v", "train_rows": n, "valid": {"auc": a}}
                      for n, a in ((256, 0.55), (128, 0.5))},
             "item_rate": {"valid": {"auc": 0.7}}}
    fig = stage1_curve(curve)
    assert list(fig.data[0].x) == [128, 256] and list(fig.data[0].y) == [0.5, 0.55]
    assert fig.data[0].name == "v"  # an unknown variant keeps its id; a known one its help
    curve["runs"]["qv_r8_bce@64"] = {"variant": "qv_r8_bce", "train_rows": 64,
                                     "valid": {"auc": 0.5}}
    assert stage1_curve(curve).data[0].name.startswith("LoRA r8 on q, v; BCE")
    assert [shape.y0 for shape in fig.layout.shapes] == [0.7, 0.5]  # item rate, chance
    assert list(fig.layout.yaxis.range) == [0, 1]


def test_study_phases_name_the_shared_text_cache_once():
    """The text cache is built once for every seed and its count grows as later splits' rows
    are cached: the phases name it once, with the most any part recorded, and round."""
    from sellakit.benchmarks.rec_study import _phases

    def record(seed, cache, training):
        seconds = {"mf_and_stage2_settings": 0.1, "stage2": 82.34}
        if cache is not None:
            seconds["prefix_cache"] = cache
        return {"seed": seed, "seconds": seconds, "result": {"seconds": training}}

    phases = _phases({"tallrec@1": record(1, 318.8, 2921.94), "collm@1": record(1, 1069.9, 1143.2),
                      "collm@2": record(2, 1069.9, 382.7), "mf@2": record(2, None, 0.0)})
    assert phases["text cache (every split, once)"] == 1069.9
    assert not any(k.startswith("prefix_cache") for k in phases)
    assert phases["stage2@1"] == 82.3 and phases["stage2@2"] == 82.3
    assert phases["tallrec@1 (training)"] == 2921.9


def test_study_names_an_ablation_that_is_the_chosen_configuration():
    """An ablation whose scores equal an earlier method's at the same seed (P_C fresh makes
    ``sella_random_init`` ``sella``) is named in the table, not counted as a second finding."""
    from sellakit.benchmarks.rec_study import _same_scores

    def part(method, seed, values):
        return pd.DataFrame({"split": "test", "row": range(len(values)), "method": method,
                             "seed": seed, "score": values})

    scores = pd.concat([part("sella", 1, [0.1, 0.7, 0.3]), part("sella_random_init", 1,
                        [0.1, 0.7, 0.3]), part("sella_no_warm", 1, [0.1, 0.7, 0.31])])
    records = {f"{m}@1": {"method": m, "seed": 1} for m in scores.method.unique()}
    assert _same_scores(records, scores) == {"sella_random_init": {"as": "sella", "seed": 1}}


def test_an_ablation_run_for_fewer_seeds_faces_its_full_method_on_the_seeds_both_ran():
    """``sella_no_warm`` ran seed 1 only, ``sella`` seeds 1 and 2 (seed 2 much worse): the
    comparison pairs seed 1's rows alone, so the full method's other seed does not enter."""
    from sellakit.benchmarks.rec_study import versus_full

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400)
    good = labels + rng.normal(0, 1.0, 400)

    def part(method, seed, score):
        return pd.DataFrame({"split": "test", "row": range(400), "uid": range(400), "label": labels,
                             "method": method, "seed": seed, "score": score})

    scores = pd.concat([part("sella", 1, good), part("sella", 2, rng.normal(0, 1, 400)),
                        part("sella_no_warm", 1, good + rng.normal(0, 0.01, 400))])
    ablations = versus_full(scores)
    assert set(ablations) == {"sella_no_warm"}  # the others did not run
    row = ablations["sella_no_warm"]
    assert row["versus"] == "sella" and row["seeds"] == [1]
    assert abs(row["auc"]["diff"]) < 0.01 and row["verdict"] == "within noise"
