"""What each slot carries: a trained model scored again with one slot's vector zeroed or
shuffled across rows, the rest of every prompt unchanged (per-row scores, for a paired
interval against the intact scores).

Example::

    >>> from sellakit.rec.probe import slot_ablation
    >>> ablated = slot_ablation(model, prompts, frame, "user", mode="shuffle", pad_id=pad)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
import torch

from sellakit.errors import ConfigError
from sellakit.rec.model import SpecialTokenRec, collate_rows
from sellakit.rec.prefix import PrefixCache
from sellakit.rec.prompts import EncodedPrompt

__all__ = ["SLOT_ABLATIONS", "slot_ablation"]

#: How a slot is taken away: ``zero`` (its vector set to 0) or ``shuffle`` (row ``r`` gets the
#: vector of another row, a seeded permutation: the slot's values stay, their pairing goes).
SLOT_ABLATIONS = ("zero", "shuffle")


@torch.no_grad()
def slot_ablation(model: SpecialTokenRec, prompts: Sequence[EncodedPrompt], frame: pd.DataFrame,
                  slot: str, *, mode: Literal["zero", "shuffle"] = "shuffle", pad_id: int,
                  prefix: PrefixCache | None = None, batch_size: int = 32,
                  seed: int = 0, donors: pd.DataFrame | None = None) -> np.ndarray:
    """``P(Yes) / (P(Yes) + P(No))`` of every prompt with slot ``slot`` (``"user"``,
    ``"item"`` or ``"warm"``) ablated by ``mode``; the other slots and the text as scored
    normally, so ``scores - these`` is what the slot adds row by row. Under ``"shuffle"``
    row ``r`` reads the vector of ``donors``' row ``r`` (``uid``, ``iid``; default: the rows
    of ``frame`` in a permutation seeded by ``seed``), e.g. another row for a lone prompt."""
    if mode not in SLOT_ABLATIONS:
        raise ConfigError(f"slot_ablation(mode={mode!r}): choose one of {SLOT_ABLATIONS}.")
    if donors is not None and len(donors) != len(frame):
        raise ConfigError(f"slot_ablation: donors has {len(donors)} rows for {len(frame)} "
                          "prompts; give one donor row per prompt.")
    donor = frame.iloc[np.random.default_rng(seed).permutation(len(frame))] \
        if donors is None else donors
    original = model.slot_vectors

    def ablated(batch: dict) -> dict:
        vectors = original(batch)
        if slot not in vectors:
            raise ConfigError(f"slot_ablation: the prompts have no {slot!r} slot (they have "
                              f"{sorted(vectors)}); name one of those.")
        vectors[slot] = torch.zeros_like(vectors[slot]) if mode == "zero" else original(
            {**batch, "uid": batch["donor_uid"], "iid": batch["donor_iid"]})[slot]
        return vectors

    device = next(p.device for p in model.parameters())
    was_training = model.training
    model.eval()
    model.slot_vectors = ablated  # this instance only, removed below
    scores = np.full(len(prompts), np.nan)
    try:
        for start in range(0, len(prompts), batch_size):
            index = np.arange(start, min(start + batch_size, len(prompts)))
            batch = collate_rows([prompts[i] for i in index], frame.iloc[index], pad_id,
                                 device, prefix=prefix, index=index)
            batch["donor_uid"] = torch.as_tensor(donor.uid.to_numpy()[index], device=device)
            batch["donor_iid"] = torch.as_tensor(donor.iid.to_numpy()[index], device=device)
            scores[index] = torch.sigmoid(model(batch)).cpu().numpy()
    finally:
        del model.slot_vectors
        model.train(was_training)
    return scores
