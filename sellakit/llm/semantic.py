"""Item semantic embeddings: what the LLM "thinks" of an item, read off its hidden state.

Per item, a short prompt (default ``"Movie: <title>"``) goes through the LLM; the vector is the
last layer's hidden state (after the final norm) at the final position, i.e. the state from
which the LLM would predict the next token (SeLLa-Rec, ``llm_embeds_movie.py``). Prompts are
batched by token length with left padding, so the final position is a real token in every row.
Results are float32 and cached on disk, keyed by the model, the adapter, the template and the
item titles.

Example::

    >>> from sellakit.llm import load_backbone, item_semantic_embeddings
    >>> table = item_semantic_embeddings(load_backbone(), ["Toy Story (1995)"])  # doctest: +SKIP
    >>> table.shape  # doctest: +SKIP
    (1, 576)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from sellakit.cache import cache_dir, cached_arrays, sha256_of, stored_arrays
from sellakit.config import autocast_off, cpu_bf16_active, cpu_bf16_autocast
from sellakit.errors import ConfigError, DataError
from sellakit.llm.backbone import Backbone, tokenizer_digest, weights_digest

__all__ = ["item_semantic_embeddings", "center_items", "DEFAULT_TEMPLATE"]

DEFAULT_TEMPLATE = "Movie: {title}"


def _fingerprint(backbone: Backbone) -> str:
    """Every weight's bytes and the config (:func:`weights_digest`), the tokenizer
    (:func:`tokenizer_digest`) and the name: another value anywhere in the model, swapped rows,
    another vocabulary or normalizer give another key."""
    return hashlib.sha256(f"{backbone.name}|{weights_digest(backbone)}|"
                          f"{tokenizer_digest(backbone.tokenizer)}".encode()).hexdigest()


@torch.no_grad()
def item_semantic_embeddings(backbone: Backbone, titles: Sequence[str], *,
                             template: str = DEFAULT_TEMPLATE, batch_size: int = 32,
                             adapter: str | None = None, use_cache: bool = True,
                             progress: bool = True, cpu_bf16: bool = False) -> np.ndarray:
    """One float32 row per title: the final-position, last-layer hidden state of its prompt.

    Args:
        backbone: from :func:`sellakit.llm.load_backbone`.
        titles: item titles; an empty title gets a zero row (e.g. the padding id 0).
        template: the item prompt, with ``{title}``.
        batch_size: prompts per forward pass (sorted by length, so little padding).
        adapter: a PEFT (LoRA) adapter folder to apply during extraction (stage 1), or None.
        use_cache: read and write ``<cache>/derived/semantic/<key>.npz`` (the key hashes the
            weights, tokenizer, template, adapter and titles in order; an entry of another shape
            or with non-finite values is computed again). A title already extracted for
            another list with the same model, template and adapter is read from that entry,
            not run again (notebook 08's MovieLens-100K titles are mostly notebook 03's).
        cpu_bf16: bfloat16 autocast on a CPU that has it natively (the quick notebooks;
            :func:`sellakit.config.cpu_bf16_autocast`): about 1.7 times faster on 2 cores,
            cosine 0.9999 to float32's states; in the key, so the two never mix.
    """
    if "{title}" not in template:
        raise ConfigError(f"template {template!r} has no {{title}} placeholder.")
    titles = [str(t) for t in titles]
    bf16 = cpu_bf16_active(backbone.device, backbone.dtype, cpu_bf16)
    source = hashlib.sha256(json.dumps({"model": _fingerprint(backbone), "template": template,
                                        "adapter": _adapter_key(adapter)}
                                       | ({"cpu_bf16": True} if bf16 else {})).encode()
                            ).hexdigest()
    key = hashlib.sha256(json.dumps({"source": source, "titles": titles}).encode()
                         ).hexdigest()[:24]

    def compute() -> dict[str, np.ndarray]:
        known = _rows_extracted_before(source, titles) if use_cache else {}
        missing = sorted({t for t in titles if t and t not in known})
        if missing:
            model = backbone.model
            if adapter is not None:
                from peft import PeftModel

                model = PeftModel.from_pretrained(model, adapter)
            # Exactly the precision the key says, whatever autocast the caller is in.
            with autocast_off(backbone.device), \
                    cpu_bf16_autocast(backbone.device, backbone.dtype, bf16):
                known.update(zip(missing, _extract(model, backbone, missing, template,
                                                   batch_size, progress)))
            if adapter is not None:
                model.unload()  # give the base model back without the adapter's layers
        table = np.zeros((len(titles), backbone.hidden_size), dtype=np.float32)
        for row, title in enumerate(titles):
            if title:
                table[row] = known[title]
        return {"table": table, "titles": np.array(titles, dtype=str),
                "source": np.array(source)}

    if not use_cache:
        return compute()["table"]
    shapes = {"table": (len(titles), backbone.hidden_size),  # one row per title, in order
              "titles": (len(titles),), "source": ()}
    return cached_arrays("semantic", key, compute, shapes=shapes)["table"]


def _rows_extracted_before(source: str, titles: list[str]) -> dict[str, np.ndarray]:
    """Title -> row from the kit's other semantic entries of the same ``source`` (model,
    template, adapter). A prompt's last state does not depend on the batch it ran in: padding is
    on the left and masked, and RoPE sees only relative positions (last digits aside)."""
    wanted, rows = set(filter(None, titles)), {}
    for path in sorted((cache_dir() / "derived" / "semantic").glob("*.npz")):
        stored = stored_arrays("semantic", path.stem)
        if stored is None or str(stored.get("source", "")) != source:
            continue
        for title, row in zip(stored["titles"].tolist(), stored["table"]):
            if title in wanted:
                rows.setdefault(title, row)
        if len(rows) == len(wanted):
            break
    return rows


def _adapter_key(adapter: str | None) -> str | None:
    if adapter is None:
        return None
    weights = sorted(Path(adapter).glob("adapter_model.*"))
    if not weights:
        raise DataError(f"{adapter} holds no adapter_model.* file. Fix: pass the folder "
                        "written by a PEFT model's save_pretrained().")
    return sha256_of(weights[0])


def _extract(model, backbone: Backbone, titles: list[str], template: str, batch_size: int,
             progress: bool) -> np.ndarray:
    tokenizer = backbone.tokenizer
    prompts = [template.format(title=t) for t in titles]
    lengths = [len(tokenizer(p)["input_ids"]) for p in prompts]
    order = np.argsort(lengths, kind="stable")
    table = np.zeros((len(titles), backbone.hidden_size), dtype=np.float32)
    # The decoder alone: its last_hidden_state is the last layer after the final norm, and
    # skipping the LM head saves a (tokens x vocabulary) product we would throw away.
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder = base.get_decoder()
    batches = range(0, len(order), batch_size)
    for start in tqdm(batches, desc="item embeddings", disable=not progress, leave=False):
        index = order[start:start + batch_size]
        encoded = tokenizer([prompts[i] for i in index], padding=True, return_tensors="pt")
        encoded = {k: v.to(backbone.device) for k, v in encoded.items()}
        hidden = decoder(**encoded).last_hidden_state
        # Left padding: position -1 is each prompt's last real token.
        table[index] = hidden[:, -1].float().cpu().numpy()
    table[[i for i, t in enumerate(titles) if not t]] = 0.0
    return table


def center_items(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(table - mean, mean)``, the mean taken over the rows that hold an item (non-zero rows;
    the padding row stays 0).

    An LLM's item states share one large direction (on SmolLM2-135M, mean pairwise cosine
    about 0.96, norm about 48); what tells items apart is the rest (norm about 9, pairwise
    cosine about 0.01). A cosine InfoNCE toward the raw states mostly learns the shared
    direction; toward the centred ones it has to tell items apart.
    """
    table = np.asarray(table, dtype=np.float32)
    present = np.linalg.norm(table, axis=1) > 0
    mean = table[present].mean(0) if present.any() else np.zeros(table.shape[1], np.float32)
    centred = np.where(present[:, None], table - mean, 0.0).astype(np.float32)
    return centred, mean.astype(np.float32)
