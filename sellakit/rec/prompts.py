"""Recommendation prompts with special-token slots whose positions are known by construction.

A template is plain text with ``{history}`` and ``{target}`` fields and slot markers such as
``{user}``, ``{item}`` and ``{warm}``. Each slot becomes one special token (``<User_ID>``,
``<Item_ID>``, ``<Warm_ID>`` for SeLLa-Rec; ``<UserID>``, ``<TargetItemID>`` for CoLLM) whose
input embedding the model later overwrites. The text between slots is tokenised piece by piece
and the slot tokens are inserted between the pieces, so the position of every slot is recorded
while the prompt is built; nothing searches the token ids afterwards.

The prompt ends with ``#Answer:``; the next-token distribution at the last position gives the
score ``P(Yes) / (P(Yes) + P(No))``. Batches are right-padded (:func:`collate`), so no query
row of the attention is fully masked (with left padding a padded row attends to nothing). On
an H200 the left-padded layout turned to NaN scores after its first LoRA steps; the
right-padded one trained with finite losses (the exact trigger was not isolated; README).

Example::

    >>> from sellakit.rec import PromptBuilder, TEMPLATES
    >>> builder = PromptBuilder(tokenizer, TEMPLATES["sella"])  # doctest: +SKIP
    >>> encoded = builder.encode(["Heat (1995)"], "Casino (1995)")  # doctest: +SKIP
    >>> encoded.slots  # doctest: +SKIP
    {'user': 41, 'item': 57, 'warm': 58}
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from sellakit.data.catalog import MOVIE_WORDS, ItemWords
from sellakit.errors import ConfigError

__all__ = ["TEMPLATES", "TEMPLATES_BEFORE_TITLE", "LAYOUTS", "SLOT_TOKENS", "PromptBuilder", "EncodedPrompt", "collate",
           "add_slot_tokens", "answer_token_ids", "slot_names", "with_item_words",
           "KG_TOKEN", "add_kg_token"]

# The text every template shares comes first: instruction, history titles, target title. Its
# key/value states under the frozen LLM are computed once per row and reused (prefix.py); the
# slots and the answer cue follow the ``{suffix}`` marker. ``{item_noun}`` and ``{item_nouns}``
# are the data set's words for its items (:class:`~sellakit.data.catalog.ItemWords`).
_TEXT = ('#Question: A user has given high ratings to the following {item_nouns}: {history}. '
         'Will the user enjoy the {item_noun} "{target}"? Answer with "Yes" or "No".{suffix}')
_CUE = "\n#Answer:"

#: Prompt templates, by the key a method's row names (CoLLM's wording, reordered so the text
#: comes first; the answer follows "#Answer:").
TEMPLATES: dict[str, str] = {
    # TALLRec-style: titles only.
    "text": _TEXT + _CUE,
    # CoLLM-style: one token for the user, one for the target item.
    "collm": _TEXT + " Features: user{user}, {item_noun}{item}." + _CUE,
    # SeLLa-Rec: user and item collaborative tokens plus the item's semantic token.
    "sella": _TEXT + " Features: user{user}, {item_noun}{item}{warm}." + _CUE,
}
# SeLLa-Rec without <Warm_ID> (an ablation): the CoLLM wording with SeLLa-Rec's tokens.
TEMPLATES["sella_no_warm"] = TEMPLATES["collm"]
# The KG slot ``{kg}`` (:data:`KG_TOKEN`): the target item's KG vector, after the item's other
# slots; alone on the text prompt in ``text_kg``.
TEMPLATES["collm_kg"] = _TEXT + " Features: user{user}, {item_noun}{item}{kg}." + _CUE
TEMPLATES["sella_kg"] = _TEXT + " Features: user{user}, {item_noun}{item}{warm}{kg}." + _CUE
TEMPLATES["text_kg"] = _TEXT + " Features: {item_noun}{kg}." + _CUE

# The authors' order (``RecConfig.slot_position="before_title"``): the slots after the history,
# before the target title. The cached text is the instruction and history alone.
_HEAD = "#Question: A user has given high ratings to the following {item_nouns}: {history}."
_ASK = ' Will the user enjoy the {item_noun} "{target}"? Answer with "Yes" or "No".' + _CUE

#: The same keys as :data:`TEMPLATES`, with the slots before the target title.
TEMPLATES_BEFORE_TITLE: dict[str, str] = {
    "text": _HEAD + "{suffix}" + _ASK,
    "collm": _HEAD + "{suffix} Features: user{user}, {item_noun}{item}." + _ASK,
    "sella": _HEAD + "{suffix} Features: user{user}, {item_noun}{item}{warm}." + _ASK,
}
TEMPLATES_BEFORE_TITLE["sella_no_warm"] = TEMPLATES_BEFORE_TITLE["collm"]
TEMPLATES_BEFORE_TITLE.update({
    "collm_kg": _HEAD + "{suffix} Features: user{user}, {item_noun}{item}{kg}." + _ASK,
    "sella_kg": _HEAD + "{suffix} Features: user{user}, {item_noun}{item}{warm}{kg}." + _ASK,
    "text_kg": _HEAD + "{suffix} Features: {item_noun}{kg}." + _ASK,
})

#: The templates of each slot position (``RecConfig.slot_position``).
LAYOUTS: dict[str, dict[str, str]] = {"after_text": TEMPLATES,
                                      "before_title": TEMPLATES_BEFORE_TITLE}

#: Which special token fills each slot, per slot family.
SLOT_TOKENS: dict[str, dict[str, str]] = {
    "collm": {"user": "<UserID>", "item": "<TargetItemID>"},
    "sella": {"user": "<User_ID>", "item": "<Item_ID>", "warm": "<Warm_ID>"},
}

#: The KG slot's token. It is registered by :func:`add_kg_token` only when a KG method runs, so
#: the vocabulary (and every number) of a run without one stays as it was.
KG_TOKEN = "<KG_ID>"

_SLOT = re.compile(r"\{(user|item|warm|kg|suffix)\}")


def slot_names(template: str) -> list[str]:
    """The slots of ``template`` in order (``["user", "item", "warm"]``), the marker aside."""
    return [name for name in _SLOT.findall(template) if name != "suffix"]


def with_item_words(template: str, words: ItemWords) -> str:
    """``template`` speaking of ``words``' items: its ``{item_noun}`` and ``{item_nouns}``
    filled in (every other field is left for the builder)."""
    return template.replace("{item_nouns}", words.plural).replace("{item_noun}", words.noun)


def add_slot_tokens(tokenizer, model) -> list[str]:
    """Register every slot token as a special token; resize the embedding matrix only when the
    vocabulary has no spare rows for them. Returns the tokens added."""
    wanted = sorted({t for tokens in SLOT_TOKENS.values() for t in tokens.values()})
    missing = [t for t in wanted if t not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_special_tokens({"additional_special_tokens": missing},
                                     replace_extra_special_tokens=False)
    rows = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) > rows:
        # Rows of slot tokens are never read (their inputs are overwritten), so no mean-init.
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    return missing


def add_kg_token(tokenizer, model) -> list[str]:
    """Register :data:`KG_TOKEN` like the other slot tokens; a resize it needs draws its new
    row from a forked random state, so the draws that follow (LoRA's start) are those of a run
    without it. Returns the tokens added."""
    if KG_TOKEN in tokenizer.get_vocab():
        return []
    tokenizer.add_special_tokens({"additional_special_tokens": [KG_TOKEN]},
                                 replace_extra_special_tokens=False)
    weight = model.get_input_embeddings().weight
    if len(tokenizer) > weight.shape[0]:
        with torch.random.fork_rng(devices=[weight.device] if weight.is_cuda else []):
            model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    return [KG_TOKEN]


def answer_token_ids(tokenizer) -> tuple[int, int]:
    """Token ids of the answers "Yes" and "No" as they follow "#Answer:" (with a space)."""
    ids = []
    for word in ("Yes", "No"):
        spaced = tokenizer(f" {word}", add_special_tokens=False).input_ids
        bare = tokenizer(word, add_special_tokens=False).input_ids
        if len(spaced) == 1:
            ids.append(spaced[0])
        elif len(bare) == 1:
            ids.append(bare[0])
        else:
            raise ConfigError(f"The tokenizer splits {word!r} into several tokens ({spaced}); "
                              "the Yes/No score needs one token per answer. Fix: use a model "
                              "whose tokenizer has single tokens for ' Yes' and ' No'.")
    return ids[0], ids[1]


@dataclass
class EncodedPrompt:
    """Token ids of one prompt and the index of each slot in them (before padding)."""

    ids: list[int]
    slots: dict[str, int]
    #: tokens before the ``{suffix}`` marker: the text the frozen LLM's cache covers.
    prefix_len: int = 0


class PromptBuilder:
    """Build prompts from a template; slot tokens are placed, and their positions kept, as the
    ids are assembled.

    Args:
        tokenizer: a Hugging Face tokenizer that already knows the slot tokens
            (:func:`add_slot_tokens`).
        template: one of :data:`TEMPLATES` (or your own with the same fields).
        slot_tokens: slot name -> special token (default SeLLa-Rec's).
        history_len: how many of the user's most recent liked titles to show.
        words: how the prompt speaks of the items (default MovieLens' *movie(s)*; a split's
            are :func:`sellakit.data.catalog.item_words` of its name).
    """

    def __init__(self, tokenizer, template: str, *, slot_tokens: dict[str, str] | None = None,
                 history_len: int = 10, words: ItemWords = MOVIE_WORDS):
        self.tokenizer = tokenizer
        # The words go in once, here, so a title holding "{item_noun}" is quoted as it is.
        self.template = with_item_words(template, words)
        self.history_len = history_len
        if template.count("{suffix}") != 1:
            raise ConfigError("A prompt template needs exactly one {suffix} marker after its "
                              "text part (where the cached text ends and the slots begin). Fix: "
                              "start from one of sellakit.rec.TEMPLATES.")
        self.slot_names = slot_names(template)
        tokens = slot_tokens or SLOT_TOKENS["sella"]
        vocab = tokenizer.get_vocab()
        for name in self.slot_names:
            if tokens.get(name) not in vocab:
                raise ConfigError(f"Slot {{{name}}}: token {tokens.get(name)!r} is not in the "
                                  "tokenizer. Fix: call add_slot_tokens(tokenizer, model) first.")
        self.slot_ids = {name: vocab[tokens[name]] for name in self.slot_names}
        self.prefix = tokenizer("", add_special_tokens=True).input_ids  # BOS where the model has one

    def text(self, history: Sequence[str], target: str) -> str:
        """The prompt as text (slot markers shown as their tokens), for reading."""
        pieces = _SLOT.split(self.template)
        out = []
        for index, piece in enumerate(pieces):
            if index % 2:
                out.append(self.tokenizer.convert_ids_to_tokens(self.slot_ids[piece])
                           if piece != "suffix" else "")
            else:
                out.append(self._fill(piece, history, target))
        return "".join(out)

    def encode(self, history: Sequence[str], target: str) -> EncodedPrompt:
        ids, slots, prefix_len = list(self.prefix), {}, 0
        for index, piece in enumerate(_SLOT.split(self.template)):
            if piece == "suffix" and index % 2:
                prefix_len = len(ids)
            elif index % 2:  # a slot name
                slots[piece] = len(ids)
                ids.append(self.slot_ids[piece])
            elif piece:
                ids.extend(self.tokenizer(self._fill(piece, history, target),
                                          add_special_tokens=False).input_ids)
        return EncodedPrompt(ids, slots, prefix_len)

    def encode_rows(self, frame: pd.DataFrame, titles: np.ndarray) -> list[EncodedPrompt]:
        """Prompts for the rows of a split frame (``his`` = earlier liked items, ``iid``)."""
        return [self.encode([titles[i] for i in his[-self.history_len:]], titles[iid])
                for his, iid in zip(frame["his"], frame["iid"])]

    def _fill(self, piece: str, history: Sequence[str], target: str) -> str:
        listed = ", ".join(f'"{t}"' for t in history) if len(history) else "none yet"
        return piece.replace("{history}", listed).replace("{target}", target)


def collate(prompts: Sequence[EncodedPrompt], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a batch (every row starts at position 0, so slot positions stay as built).

    Returns ``input_ids``, ``attention_mask``, ``last`` (each row's last real position, where
    the answer is read) and ``slot_<name>`` (one position per row).
    """
    width = max(len(p.ids) for p in prompts)
    input_ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    slots: dict[str, list[int]] = {name: [] for name in prompts[0].slots}
    for row, prompt in enumerate(prompts):
        input_ids[row, :len(prompt.ids)] = torch.tensor(prompt.ids)
        mask[row, :len(prompt.ids)] = 1
        for name, position in prompt.slots.items():
            slots[name].append(position)
    batch = {"input_ids": input_ids, "attention_mask": mask, "last": mask.sum(1) - 1}
    batch.update({f"slot_{name}": torch.tensor(pos) for name, pos in slots.items()})
    return batch
