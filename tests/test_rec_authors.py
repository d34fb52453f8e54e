"""SeLLa-Rec as its authors train it (issue 23, point 2) on the UNTRAINED tiny random Llama
(a unit-test stand-in): the slots before the target title, the text cache once per history,
the LM loss on the tokens after the slots, and the authors' stage-3 optimiser."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from sellakit.llm import tiny_random_llama
from sellakit.rec import (LAYOUTS, SLOT_TOKENS, PrefixCache, PromptBuilder, RecConfig,
                          SpecialTokenRec, add_slot_tokens, answer_token_ids, collate_rows,
                          collm_mapping, copy_table)


@pytest.fixture()
def tiny():
    backbone = tiny_random_llama()
    add_slot_tokens(backbone.tokenizer, backbone.model)
    return backbone


def _sella(tiny) -> SpecialTokenRec:
    torch.manual_seed(0)
    d = tiny.hidden_size
    return SpecialTokenRec(tiny.model, answer_token_ids(tiny.tokenizer),
                           user_table=copy_table(torch.randn(5, 8), trainable=True),
                           item_table=copy_table(torch.randn(4, 8), trainable=True),
                           cf_projector=collm_mapping(8, d),
                           semantic=copy_table(torch.randn(4, d), trainable=True),
                           semantic_projector=torch.nn.Linear(d, d))


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
    cache = PrefixCache.build(tiny.model, prompts, batch_size=4)
    assert len(cache) == 6 and len(cache.states) == 3  # one entry per distinct history
    assert list(cache.row_state) == [0, 0, 1, 1, 2, 2]


def test_lm_loss_targets_the_title_and_answer_and_agrees_cached(tiny):
    """The LM loss's targets are the tokens after the first slot (title, cue; no slot token)
    and the answer; its value and slot gradients agree with and without the cache, and the
    title tokens add gradient beyond the answer's."""
    _, prompts, frame = _rows(tiny)
    model = _sella(tiny)
    model.eval()
    pad = tiny.tokenizer.pad_token_id
    cache = PrefixCache.build(tiny.model, prompts, batch_size=4)
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
    model = _sella(tiny)
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

    model = _sella(tiny)
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
