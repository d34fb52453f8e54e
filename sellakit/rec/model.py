"""SeLLa-Rec's recommendation layer, and the TALLRec- and CoLLM-style baselines, in one model.

:class:`SpecialTokenRec` reads a prompt (:mod:`sellakit.rec.prompts`) and replaces the input
embeddings at its slot tokens, per sample, with projected vectors:

- ``<User_ID>`` / ``<Item_ID>``: ``P_C(e_u)``, ``P_C(e_i)`` — MF user/item vectors through the
  collaborative projector (SeLLa-Rec: MLP ``d_cf -> 1024 -> GELU -> d_llm``, initialised from the
  alignment projector; CoLLM: ``d_cf -> 10 d_cf -> ReLU -> d_llm``);
- ``<Warm_ID>``: ``P_S(t_i)`` — the item's row of the aligned semantic table through a
  ``d_llm -> d_llm`` linear map;
- ``<KG_ID>``: ``P_K(k_i)`` — the item's KG vector (:mod:`sellakit.kg.items`; zero for an item
  the KG does not know) through its own projector. :attr:`SpecialTokenRec.kg_ablation` replaces
  ``k_i`` at scoring time: ``"zero"`` (every item as an unknown one) or ``"shuffle"`` (another
  item's vector, a seeded permutation).

The score is ``P(Yes) / (P(Yes) + P(No))`` from the next-token distribution at the last
position, i.e. ``sigmoid(logit_Yes - logit_No)``; training (:mod:`sellakit.rec.train`)
minimises the binary cross-entropy of that same score (CoLLM trains on the answer too), or,
as SeLLa-Rec's code, the LM loss on the tokens after the slots (:meth:`SpecialTokenRec.lm_loss`,
``RecConfig.loss="lm"``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from sellakit.config import autocast_off
from sellakit.errors import ConfigError
from sellakit.rec.config import RecConfig
from sellakit.rec.prefix import PrefixCache, cache_keyword
from sellakit.rec.prompts import EncodedPrompt, collate

__all__ = ["SpecialTokenRec", "collm_mapping", "add_lora", "collate_rows", "score_prompts",
           "copy_table", "ScaledDirection", "ShrunkStart", "input_embedding_norm"]


def collm_mapping(d_cf: int, d_llm: int) -> nn.Module:
    """CoLLM's CIE mapping: ``Linear(d, 10 d) -> ReLU -> Linear(10 d, d_llm)``."""
    return nn.Sequential(nn.Linear(d_cf, 10 * d_cf), nn.ReLU(), nn.Linear(10 * d_cf, d_llm))


class ScaledDirection(nn.Module):
    """``scale * inner(x) / |inner(x)|``: a slot vector whose direction ``inner`` (a projector)
    learns and whose norm is one learnable scale, initialised to the norm of the LLM's ordinary
    input embeddings. The LLM then reads slot vectors at the size of its own tokens, however far
    the projector's raw outputs are from it (a few steps of Adam move them by a lot)."""

    def __init__(self, inner: nn.Module, scale: float):
        super().__init__()
        self.inner = inner
        self.scale = nn.Parameter(torch.tensor(float(scale)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * nn.functional.normalize(self.inner(x), dim=-1)


class ShrunkStart(nn.Module):
    """``shared + shrink * inner(x)``: a learned direction every row shares plus a small
    multiple of the alignment projector's output (``RecConfig.projector_start="shrunk"``); the
    alignment's item geometry survives at a size that does not swamp what the LLM reads, and
    the slot-scaling rule (:class:`ScaledDirection`) rescales the sum."""

    def __init__(self, inner: nn.Module, shared: torch.Tensor, shrink: float):
        super().__init__()
        self.inner = inner
        self.shared = nn.Parameter(shared.detach().clone().float())
        self.shrink = float(shrink)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shared + self.shrink * self.inner(x)


def input_embedding_norm(llm) -> float:
    """The median norm of the LLM's input-embedding rows (what a slot vector is scaled to)."""
    return float(llm.get_input_embeddings().weight.detach().float().norm(dim=1).median())


def add_lora(model, config: RecConfig):
    """Wrap ``model`` with a fresh LoRA adapter (PEFT); only the adapter is trainable."""
    from peft import LoraConfig, get_peft_model

    targets = [t for t in config.lora_targets
               if any(name.endswith(t) for name, _ in model.named_modules())]
    if not targets:
        raise ConfigError(f"None of RecConfig.lora_targets={config.lora_targets} names a "
                          f"module of {type(model).__name__}. Fix: set RecConfig.lora_targets "
                          "to its projection names (e.g. ('q_proj', 'v_proj') for "
                          "Llama/Qwen).")
    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha,
                      lora_dropout=config.lora_dropout, target_modules=targets, bias="none",
                      task_type="CAUSAL_LM")
    if config.gradient_checkpointing:
        # Non-reentrant: gradients reach the (replaced) input embeddings and the LoRA weights
        # without the inputs having to require grad.
        # Newer transformers call it activation checkpointing (the old name warns); older
        # releases have only the old name.
        if hasattr(model, "activation_checkpointing_enable"):
            model.activation_checkpointing_enable({"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs={"use_reentrant": False})
    return get_peft_model(model, lora)


class SpecialTokenRec(nn.Module):
    """An LLM scoring Yes/No prompts, with slot inputs replaced by projected vectors.

    Args:
        llm: the causal LM (with or without LoRA); shared between methods, never copied.
        answer_ids: token ids of "Yes" and "No".
        user_table / item_table: CF embedding tables (``nn.Embedding``) for ``<User_ID>`` and
            ``<Item_ID>``; None for text-only prompts.
        cf_projector: maps CF vectors to the LLM's input space (shared by users and items).
        semantic: the ``(n_items, d_llm)`` semantic table for ``<Warm_ID>`` (``nn.Embedding``).
        semantic_projector: ``d_llm -> d_llm`` map for ``<Warm_ID>``.
        kg_table: the frozen ``(n_items, d_kg)`` KG vectors for ``<KG_ID>`` (``nn.Embedding``).
        kg_projector: ``d_kg -> d_llm`` map for ``<KG_ID>``.
    """

    #: What ``<KG_ID>`` reads: ``"none"`` (the item's own vector), ``"zero"``, ``"shuffle"``.
    KG_ABLATIONS = ("none", "zero", "shuffle")

    def __init__(self, llm, answer_ids: tuple[int, int], *, user_table: nn.Embedding | None = None,
                 item_table: nn.Embedding | None = None, cf_projector: nn.Module | None = None,
                 semantic: nn.Embedding | None = None,
                 semantic_projector: nn.Module | None = None,
                 kg_table: nn.Embedding | None = None, kg_projector: nn.Module | None = None):
        super().__init__()
        self.llm = llm
        self.answer_ids = tuple(answer_ids)
        self.user_table, self.item_table, self.cf_projector = user_table, item_table, cf_projector
        self.semantic, self.semantic_projector = semantic, semantic_projector
        self.kg_table, self.kg_projector = kg_table, kg_projector
        self.kg_ablation, self._kg_permutation = "none", None

    #: Parameter prefixes of the tables (no decay, ``RecConfig.lr_tables``).
    TABLES = ("user_table", "item_table", "semantic")

    def configure_optimizers(self, config: RecConfig, lr: float, *, authors: bool = False
                             ) -> torch.optim.Optimizer:
        """AdamW on the trainable parameters: the tables (no decay, ``config.lr_tables``) apart
        from projectors and LoRA (``lr``, ``config.weight_decay``); with ``authors``, one group
        with SeLLa-Rec's stage-3 settings (:attr:`RecConfig.AUTHORS_STAGE3`)."""
        trainable = [(name, p) for name, p in self.named_parameters() if p.requires_grad]
        if not trainable:
            raise ConfigError("Nothing to train: no parameter of the model requires grad.")
        if authors:
            settings = RecConfig.AUTHORS_STAGE3
            return torch.optim.AdamW([{"params": [p for _, p in trainable]}], lr=settings["lr"],
                                     betas=settings["betas"],
                                     weight_decay=settings["weight_decay"])
        tables = [p for name, p in trainable if name.split(".")[0] in self.TABLES]
        others = [p for name, p in trainable if name.split(".")[0] not in self.TABLES]
        return torch.optim.AdamW(
            [g for g in ({"params": others, "lr": lr, "weight_decay": config.weight_decay},
                         {"params": tables, "lr": config.lr_tables, "weight_decay": 0.0})
             if g["params"]])

    def slot_vectors(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The vector that goes into each slot of the batch (rows x d_llm)."""
        vectors = {}
        if "slot_user" in batch:
            vectors["user"] = self.cf_projector(self.user_table(batch["uid"]))
        if "slot_item" in batch:
            vectors["item"] = self.cf_projector(self.item_table(batch["iid"]))
        if "slot_warm" in batch:
            vectors["warm"] = self.semantic_projector(self.semantic(batch["iid"]))
        if "slot_kg" in batch:
            vectors["kg"] = self.kg_projector(self.kg_input(batch["iid"]))
        return vectors

    def kg_input(self, iid: torch.Tensor) -> torch.Tensor:
        """The KG vectors ``<KG_ID>`` reads for items ``iid``, under :attr:`kg_ablation`."""
        if self.kg_ablation == "zero":
            return torch.zeros(*iid.shape, self.kg_table.embedding_dim,
                               device=iid.device, dtype=self.kg_table.weight.dtype)
        if self.kg_ablation == "shuffle":
            iid = self._kg_permutation.to(iid.device)[iid]
        return self.kg_table(iid)

    def set_kg_ablation(self, mode: str, seed: int = 0) -> None:
        """What ``<KG_ID>`` reads from now on (one of :attr:`KG_ABLATIONS`); ``"shuffle"``
        gives each item (padding aside) the vector of another, by a permutation of ``seed``."""
        if mode not in self.KG_ABLATIONS or (mode != "none" and self.kg_table is None):
            raise ConfigError(f"kg_ablation={mode!r}: choose one of {self.KG_ABLATIONS}, on a "
                              "model with a <KG_ID> slot (a KG method's row).")
        self.kg_ablation = mode
        if mode == "shuffle":
            n = self.kg_table.num_embeddings
            order = torch.randperm(n - 1, generator=torch.Generator().manual_seed(seed)) + 1
            self._kg_permutation = torch.cat([torch.zeros(1, dtype=torch.long), order])

    def hidden_states(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The final hidden states at every position of the batch (rows x tokens x d_llm)."""
        ids, mask = batch["input_ids"], batch["attention_mask"]
        embeds = self.llm.get_input_embeddings()(ids)
        rows = torch.arange(len(ids), device=ids.device)
        for name, vector in self.slot_vectors(batch).items():
            # Out of place: with gradient checkpointing the embedding output is a leaf.
            embeds = embeds.index_put((rows, batch[f"slot_{name}"]), vector.to(embeds.dtype))
        # Right padding: real tokens sit at 0..last, so the default positions are right. With a
        # cached text (``past``, prefix.py) the batch holds the suffix alone and its positions.
        decoder = self.llm.get_decoder()
        past = {cache_keyword(decoder): batch["past"]} if "past" in batch else {}
        return decoder(inputs_embeds=embeds, attention_mask=mask, use_cache=bool(past),
                       position_ids=batch.get("position_ids"), **past).last_hidden_state

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """``logit(Yes) - logit(No)`` at the answer position, one per row (float32); with
        ``batch["lm_loss"]`` the batch's :meth:`lm_loss` (a scalar)."""
        if batch.get("lm_loss"):
            return self.lm_loss(batch)
        rows = torch.arange(len(batch["input_ids"]), device=batch["input_ids"].device)
        hidden = self.hidden_states(batch)[rows, batch["last"]]
        if batch.get("full_vocabulary"):
            return self.answer_logits(hidden, None)
        logits = self.answer_logits(hidden, list(self.answer_ids))
        return logits[:, 0] - logits[:, 1]

    def lm_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """SeLLa-Rec's LM loss (``RecConfig.loss="lm"``): the mean cross-entropy, over the
        whole vocabulary, of every token after the first slot (the target title when the slots
        precede it, and the answer cue) and of the answer (Yes/No by ``label``) at the last
        position. Slot tokens are no targets (their inputs are overwritten); a prompt without
        slots contributes its answer alone."""
        ids, last = batch["input_ids"], batch["last"]
        rows = torch.arange(len(ids), device=ids.device)
        positions = torch.arange(ids.shape[1], device=ids.device)[None]
        names = [k for k in batch if k.startswith("slot_")]
        slots = torch.stack([batch[k] for k in names], 1) if names else last[:, None]
        next_is_slot = (positions[..., None] + 1 == slots[:, None]).any(-1)
        keep = (positions >= slots.min(1).values[:, None]) & (positions < last[:, None]) \
            & ~next_is_slot
        targets = torch.where(keep, torch.roll(ids, -1, dims=1), -100)
        answer = torch.where(batch["label"] > 0.5, self.answer_ids[0], self.answer_ids[1])
        targets[rows, last] = answer
        chosen = targets != -100
        logits = self.answer_logits(self.hidden_states(batch)[chosen], None)
        return nn.functional.cross_entropy(logits, targets[chosen])

    def answer_logits(self, hidden: torch.Tensor, token_ids: list[int] | None) -> torch.Tensor:
        """Next-token logits (float32) from final hidden states, for ``token_ids`` only (the
        full-vocabulary product is never formed for the Yes/No score) or for every token."""
        head = self.llm.get_output_embeddings()
        weight = head.weight if token_ids is None else head.weight[token_ids]
        # Outside any autocast (RecConfig.cpu_bf16): a bfloat16 product would round
        # logit(Yes) - logit(No) to steps of about 0.06 and tie many scores.
        with autocast_off(hidden.device):
            logits = hidden.float() @ weight.float().T
        if getattr(head, "bias", None) is not None:
            logits = logits + (head.bias if token_ids is None else head.bias[token_ids]).float()
        cap = getattr(self.llm.config, "final_logit_softcapping", None)  # Gemma 2
        if cap:
            logits = torch.tanh(logits / cap) * cap
        return logits


def collate_rows(prompts: Sequence[EncodedPrompt], frame: pd.DataFrame, pad_id: int,
                 device, *, prefix: PrefixCache | None = None,
                 index: Sequence[int] | None = None) -> dict[str, torch.Tensor]:
    """One batch on ``device``: the prompts right-padded (:func:`~sellakit.rec.prompts.collate`)
    plus their rows' ``uid``, ``iid`` (what the slot vectors are looked up by) and ``label``.
    With ``prefix``, the batch holds the suffixes and the cached text of rows ``index``
    (:meth:`PrefixCache.batch`).

    Args:
        prompts: encoded prompts, one per row of ``frame`` and in its order.
        frame: the rows of a split frame the prompts were built from (``uid``, ``iid``,
            ``label``).
        pad_id: the tokenizer's pad token id.
        device: where the tensors go.
    """
    batch = collate(prompts, pad_id) if prefix is None else prefix.batch(index, prompts, device)
    batch["uid"] = torch.tensor(frame.uid.to_numpy(), dtype=torch.long)
    batch["iid"] = torch.tensor(frame.iid.to_numpy(), dtype=torch.long)
    batch["label"] = torch.tensor(frame.label.to_numpy(), dtype=torch.float32)
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}


@torch.no_grad()
def score_prompts(model: SpecialTokenRec, prompts: Sequence[EncodedPrompt], frame: pd.DataFrame,
                  *, pad_id: int, batch_size: int = 32, accelerator=None,
                  progress: bool = False, desc: str = "scoring",
                  prefix: PrefixCache | None = None) -> np.ndarray:
    """``P(Yes) / (P(Yes) + P(No))`` for every prompt, in the order given.

    Prompts are sorted by length so each batch pads little; with several processes each scores
    a share and the scores are gathered. With ``prefix`` (built from the same rows), only the
    suffixes run through the LLM.
    """
    from accelerate.utils import gather_object

    rank, world = (accelerator.process_index, accelerator.num_processes) if accelerator \
        else (0, 1)
    device = next(p.device for p in model.parameters())
    was_training = model.training
    model.eval()
    order = np.argsort([len(p.ids) for p in prompts], kind="stable")
    batches = [order[s:s + batch_size] for s in range(0, len(order), batch_size)][rank::world]
    pairs = []
    for index in tqdm(batches, desc=desc, disable=not progress, leave=False):
        logits = model(collate_rows([prompts[i] for i in index], frame.iloc[index], pad_id,
                                     device, prefix=prefix, index=index))
        pairs.extend(zip(index.tolist(), torch.sigmoid(logits).cpu().tolist()))
    model.train(was_training)
    if world > 1:
        pairs = gather_object(pairs)
    scores = np.full(len(prompts), np.nan)
    for i, s in pairs:
        scores[i] = s
    return scores


def copy_table(weights: torch.Tensor | np.ndarray, *, trainable: bool) -> nn.Embedding:
    """An ``nn.Embedding`` initialised from ``weights`` (copied, so the source stays intact)."""
    table = nn.Embedding.from_pretrained(torch.as_tensor(np.asarray(weights), dtype=torch.float32)
                                         .clone(), freeze=not trainable)
    return table
