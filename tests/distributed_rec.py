"""Run by tests/test_rec.py, alone or under ``accelerate launch --cpu --num_processes 2``:
stage-1 training on planted data with the UNTRAINED tiny random Llama (unit-test stand-in),
then the scores of a fixed, freshly seeded model, written by the main process."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from conftest import planted_ratings
from sellakit.data.protocol import SplitSpec, split_by_months
from sellakit.llm import tiny_random_llama
from sellakit.rec import (TEMPLATES, PromptBuilder, RecConfig, SpecialTokenRec, add_lora,
                          answer_token_ids, make_accelerator, sample_rows, score_prompts,
                          train_rec)


def main(out: Path) -> None:
    ratings, meta = planted_ratings()
    month = (ratings.timestamp // (30 * 86400)).clip(upper=5)
    split = split_by_months(ratings, meta, SplitSpec(train_months=(0, 3), valid_months=(4, 4),
                                                     test_months=(5, 5)), month=month)
    config = RecConfig.quick(train_rows=64, valid_rows=40, eval_every=2, batch_size=4)
    accelerator = make_accelerator(config)
    backbone = tiny_random_llama(seed=1)
    builder = PromptBuilder(backbone.tokenizer, TEMPLATES["text"], history_len=3)
    data = {}
    for name, n in (("train", 64), ("valid", 40)):
        frame = sample_rows(getattr(split, name), n, config.seed)
        data[name] = (builder.encode_rows(frame, split.item_titles), frame)
    answers = answer_token_ids(backbone.tokenizer)
    pad = backbone.tokenizer.pad_token_id
    # A fixed model first (same seed everywhere): its scores must not depend on the world size.
    fixed = SpecialTokenRec(tiny_random_llama(seed=2).model, answers)
    fixed_scores = score_prompts(fixed, *data["valid"], pad_id=pad, batch_size=3,
                                 accelerator=accelerator)
    trained = train_rec(SpecialTokenRec(add_lora(backbone.model, config), answers),
                        data["train"], data["valid"], config, lr=1e-3, pad_id=pad,
                        accelerator=accelerator, progress=False)
    if accelerator.is_main_process:
        (out / "scores.json").write_text(json.dumps({
            "world": accelerator.num_processes, "fixed_scores": fixed_scores.tolist(),
            "trained_rows": len(data["train"][0]),
            "valid_auc": float(trained.history.valid_auc.max())}))
    accelerator.wait_for_everyone()
    torch.distributed.destroy_process_group() if torch.distributed.is_initialized() else None


if __name__ == "__main__":
    main(Path(sys.argv[1]))
