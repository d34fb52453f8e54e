"""The frozen LLM's key/value states of each prompt's text, computed once and reused.

A prompt is ``text + suffix``: the text (instruction, history titles, target title) comes first
and is the same for every method; the suffix holds the slot tokens and the answer cue
(:data:`~sellakit.rec.prompts.TEMPLATES`). With the slots before the target title
(``RecConfig.slot_position="before_title"``, :data:`~sellakit.rec.prompts.LAYOUTS`) the text is
the instruction and history, and the suffix carries the slots, the target title and the cue;
rows sharing a text (a user's history) share one cached entry. While the LLM is frozen (stage 3, and every scoring
pass), the text's keys and values never change, so :class:`PrefixCache` computes them once per
row, without grad, and a step runs only the ~10 suffix tokens through the LLM, attending to the
cached text. Epochs, stage-3 methods and scoring all reuse one cache.

Row ``b`` of a batch keeps its own positions: its text sits at ``0 .. L_b - 1`` (right-padded
to the batch's longest text, the padding masked out) and its suffix at ``L_b, L_b + 1, ...``,
exactly where the whole prompt would put it. Cached and uncached scores agree to float
rounding (``tests/test_rec.py``; ``sellakit bench rec-prefix`` on the real model).

Example::

    >>> from sellakit.rec import PrefixCache
    >>> cache = PrefixCache.build(llm, prompts)  # doctest: +SKIP
    >>> scores = score_prompts(model, prompts, frame, pad_id=pad, prefix=cache)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from sellakit.errors import ConfigError
from sellakit.rec.prompts import EncodedPrompt

__all__ = ["PrefixCache", "DiskStates"]


class PrefixCache:
    """Per row, the keys and values of every layer over the prompt's text part.

    Args:
        states: one tensor per row, ``(layers, 2, kv_heads, text_len, head_dim)``.
        text_ids: each row's text token ids (checked against the prompts a batch is built from,
            so a cache is never paired with other rows' text).
    """

    def __init__(self, states: list[torch.Tensor], text_ids: list[tuple[int, ...]],
                 row_state: Sequence[int] | None = None):
        self.states = states
        self.text_ids = text_ids
        #: Row ``i``'s states are ``states[row_state[i]]``: rows sharing a text (one history
        #: under ``slot_position="before_title"``) share one entry.
        self.row_state = np.arange(len(states)) if row_state is None else np.asarray(row_state)
        self.lengths = np.array([len(t) for t in text_ids])

    def __len__(self) -> int:
        return len(self.text_ids)

    @property
    def nbytes(self) -> int:
        """Memory (or, memory-mapped, disk) the cached states take."""
        if isinstance(self.states, DiskStates):
            return self.states.nbytes
        return sum(s.numel() * s.element_size() for s in self.states)

    @classmethod
    def build(cls, llm, prompts: Sequence[EncodedPrompt], *, batch_size: int = 16,
              progress: bool = False, desc: str = "text prefix",
              share: bool = False) -> PrefixCache:
        """Run each prompt's text through ``llm`` (in eval mode, batched by length); with
        ``share``, each distinct text once (rows with one history under
        ``slot_position="before_title"``). Without it every row keeps its own entry, so the
        batches, and the numbers, stay those of a cache built before sharing existed."""
        row_text, text_ids, row_state = _texts(prompts, share)
        states: list[torch.Tensor | None] = [None] * len(text_ids)
        _run_text(llm, text_ids, batch_size, progress, desc, states.__setitem__)
        return cls(states, row_text, row_state)

    @classmethod
    def stored(cls, llm, prompts: Sequence[EncodedPrompt], key: str, *, batch_size: int = 16,
               progress: bool = False, desc: str = "text prefix", share: bool = False
               ) -> PrefixCache:
        """As :meth:`build`, kept in the kit's cache as ``derived/prefix/<key>/`` in bfloat16
        and memory-mapped (half the float32 size, paged in as batches read it): an entry is
        written whole (atomically, then sealed) or not at all, and a sealed one is read back
        instead of computed, so a killed run resumes from it. ``key`` must change with
        everything the states depend on (the LLM's weights, LoRA included, and the rows'
        text). Scores agree with :meth:`build`'s to bfloat16 rounding
        (``tests/test_rec_study.py``)."""
        from sellakit.cache import atomic_dir, cache_dir, lock, seal_folder, sealed_folder

        row_text, text_ids, row_state = _texts(prompts, share)
        folder = cache_dir() / "derived" / "prefix" / key
        with lock(f"prefix-{key}"):
            record = sealed_folder(folder) if folder.is_dir() else None
            if record is None or record.get("rows") != len(text_ids):
                with atomic_dir(folder) as tmp:
                    _write_states(llm, text_ids, tmp, batch_size, progress, desc)
                    seal_folder(tmp, {"rows": len(text_ids)})
        states = DiskStates(folder, next(llm.parameters()).dtype)
        if states.text_ids() != [list(t) for t in text_ids]:
            raise ConfigError(f"{folder}: the cached text is not these rows' text. Fix: give "
                              "each set of rows its own key (it hashes the rows' token ids).")
        return cls(states, row_text, row_state)

    def batch(self, index: Sequence[int], prompts: Sequence[EncodedPrompt], device
              ) -> dict[str, torch.Tensor]:
        """What :class:`~sellakit.rec.model.SpecialTokenRec` reads for rows ``index`` whose
        prompts are ``prompts``: the suffix ids, their positions, the slot positions within the
        suffix, the attention mask over text and suffix, and the cache (``past``)."""
        from transformers import DynamicCache

        for i, prompt in zip(index, prompts):
            if tuple(prompt.ids[:prompt.prefix_len]) != self.text_ids[i]:
                raise ConfigError(f"Row {i}: the prompt's text differs from the cached one. "
                                  "Fix: build the cache from the same rows, in the same order.")
        # Suffixes differ in length when they carry the target title (slots before the title):
        # right-padded and masked, each row's answer read at its own last position.
        suffix_len = torch.tensor([len(p.ids) - p.prefix_len for p in prompts])
        width_suffix = int(suffix_len.max())
        lengths = torch.as_tensor(self.lengths[list(index)])
        width = int(lengths.max())
        first = self.states[self.row_state[index[0]]]
        stacked = first.new_zeros((len(index),) + first.shape[:-2] + (width, first.shape[-1]))
        mask = torch.zeros((len(index), width + width_suffix), dtype=torch.long)
        ids = torch.zeros((len(index), width_suffix), dtype=torch.long)
        for row, (i, prompt) in enumerate(zip(index, prompts)):
            stacked[row, ..., :self.lengths[i], :] = self.states[self.row_state[i]]
            mask[row, :self.lengths[i]] = 1
            mask[row, width:width + suffix_len[row]] = 1
            ids[row, :suffix_len[row]] = torch.tensor(prompt.ids[prompt.prefix_len:])
        stacked = stacked.to(device)
        past = DynamicCache([(stacked[:, layer, 0], stacked[:, layer, 1])
                             for layer in range(stacked.shape[1])])
        batch = {"input_ids": ids, "attention_mask": mask,
                 "position_ids": lengths[:, None] + torch.arange(width_suffix)[None],
                 "last": suffix_len - 1}
        for name in prompts[0].slots:
            batch[f"slot_{name}"] = torch.tensor([p.slots[name] - p.prefix_len for p in prompts])
        batch = {k: v.to(device) for k, v in batch.items()}
        batch["past"] = past
        return batch


def _texts(prompts: Sequence[EncodedPrompt], share: bool
           ) -> tuple[list[tuple[int, ...]], list[tuple[int, ...]], list[int]]:
    """Each row's text ids, the texts to run (each distinct one once with ``share``) and the
    entry each row reads."""
    if any(p.prefix_len < 1 for p in prompts):
        raise ConfigError("A prompt has no text before its suffix. Fix: build prompts with "
                          "a template holding the {suffix} marker (TEMPLATES).")
    row_text = [tuple(p.ids[:p.prefix_len]) for p in prompts]
    first: dict[tuple[int, ...], int] = {}
    row_state = [first.setdefault(t, len(first)) if share else i
                 for i, t in enumerate(row_text)]
    return row_text, list(first) if share else row_text, row_state


@torch.no_grad()
def _run_text(llm, text_ids: list[tuple[int, ...]], batch_size: int, progress: bool, desc: str,
              keep) -> None:
    """``keep(i, states)`` for each text ``i``: its keys and values of every layer,
    ``(layers, 2, kv_heads, len, head_dim)``, from ``llm`` in eval mode, batched by length."""
    device = next(llm.parameters()).device
    decoder = llm.get_decoder()
    was_training = llm.training
    llm.eval()
    order = np.argsort([len(t) for t in text_ids], kind="stable")
    for start in tqdm(range(0, len(order), batch_size), desc=desc, disable=not progress,
                      leave=False):
        index = order[start:start + batch_size]
        width = max(len(text_ids[i]) for i in index)
        ids = torch.zeros((len(index), width), dtype=torch.long)
        mask = torch.zeros((len(index), width), dtype=torch.long)
        for row, i in enumerate(index):
            ids[row, :len(text_ids[i])] = torch.tensor(text_ids[i])
            mask[row, :len(text_ids[i])] = 1
        # Right padding: real tokens precede the pads, so (causal) they never see them.
        out = decoder(input_ids=ids.to(device), attention_mask=mask.to(device),
                      use_cache=True)
        cache = out.cache if hasattr(out, "cache") else out.past_key_values
        layers = torch.stack([torch.stack(pair, dim=1) for pair in _key_values(cache)],
                             dim=1)  # (B, layers, 2, h, W, d)
        for row, i in enumerate(index):
            keep(i, layers[row, :, :, :, :len(text_ids[i])].contiguous())
    llm.train(was_training)


def _write_states(llm, text_ids: list[tuple[int, ...]], folder, batch_size: int,
                  progress: bool, desc: str) -> None:
    """The states of ``text_ids`` into ``folder``: ``states.npy`` (bfloat16 bits as uint16,
    token-major ``(tokens, layers, 2, kv_heads, head_dim)``, filled batch by batch, never whole
    in memory), ``offsets.npy`` (each text's first token) and ``text.npy`` (the ids)."""
    from numpy.lib.format import open_memmap

    config = llm.config
    heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    offsets = np.concatenate([[0], np.cumsum([len(t) for t in text_ids])]).astype(np.int64)
    states = open_memmap(folder / "states.npy", mode="w+", dtype=np.uint16,
                         shape=(int(offsets[-1]), config.num_hidden_layers, 2, heads, head_dim))

    def keep(i: int, value: torch.Tensor) -> None:
        bits = value.to(torch.bfloat16).permute(3, 0, 1, 2, 4).contiguous().view(torch.int16)
        states[offsets[i]:offsets[i + 1]] = bits.cpu().numpy().view(np.uint16)

    _run_text(llm, text_ids, batch_size, progress, desc, keep)
    states.flush()
    del states
    np.save(folder / "offsets.npy", offsets)
    np.save(folder / "text.npy", np.concatenate([np.asarray(t, dtype=np.int64)
                                                 for t in text_ids]))


class DiskStates:
    """The memory-mapped states of :meth:`PrefixCache.stored`: entry ``j`` is
    ``(layers, 2, kv_heads, len_j, head_dim)`` in ``dtype``, read from disk when asked."""

    def __init__(self, folder, dtype: torch.dtype):
        self.folder, self.dtype = folder, dtype
        self.offsets = np.load(folder / "offsets.npy")
        self.bits = np.load(folder / "states.npy", mmap_mode="r")
        if self.bits.shape[0] != self.offsets[-1]:
            raise ConfigError(f"{folder}: states.npy holds {self.bits.shape[0]} tokens, its "
                              f"offsets {self.offsets[-1]}. Fix: remove the folder.")

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, j: int) -> torch.Tensor:
        part = np.array(self.bits[self.offsets[j]:self.offsets[j + 1]]).view(np.int16)
        value = torch.from_numpy(part).view(torch.bfloat16).to(self.dtype)
        return value.permute(1, 2, 3, 0, 4)

    @property
    def nbytes(self) -> int:
        return int(self.bits.nbytes)

    def text_ids(self) -> list[list[int]]:
        """Each entry's text ids, as written."""
        text = np.load(self.folder / "text.npy")
        return [text[a:b].tolist() for a, b in zip(self.offsets[:-1], self.offsets[1:])]


def _key_values(cache) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``(keys, values)`` per layer of a transformers cache (its layout changed in v4.56)."""
    if hasattr(cache, "layers"):
        return [(layer.keys, layer.values) for layer in cache.layers]
    return list(zip(cache.key_cache, cache.value_cache))


def cache_keyword(decoder) -> str:
    """The decoder's name for a past cache: ``cache`` in transformers 5.x, formerly
    ``past_key_values``."""
    import inspect

    return "cache" if "cache" in inspect.signature(decoder.forward).parameters \
        else "past_key_values"
