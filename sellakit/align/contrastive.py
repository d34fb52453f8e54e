"""Contrastive alignment of MF with the LLM's item semantics (SeLLa-Rec's first layer).

MF is trained with its BCE loss plus an InfoNCE term that pulls each item's projected CF
embedding ``P(e_i)`` (MLP ``d_cf -> 1024 -> GELU -> d_llm``) towards the item's semantic
embedding ``t_i`` and away from the other items of the batch:

    L = BCE(<e_u, e_i>, y) + w * InfoNCE(anchor = t_i, positive = P(e_i), negatives = P(e_j))

with cosine similarity and temperature 0.2. As in SeLLa-Rec's code, the anchors are the semantic
rows (LLM -> CF), and the semantic table is a parameter initialised from the LLM embeddings, so
both sides move. The batch holds interaction rows, so an item can occur several times: its
other copies are masked out of the negatives (SeLLa-Rec's code counts them as negatives).
Early stopping on validation AUC; the projector is kept for the hybrid projection layer.

Example::

    >>> from sellakit.align import AlignConfig, train_aligned_mf
    >>> result = train_aligned_mf(split, semantic_table, AlignConfig.quick())  # doctest: +SKIP
    >>> result.history[["epoch", "valid_auc", "recall@10"]]  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import ClassVar
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from sellakit.align.measures import alignment_measures, linear_cka, mutual_knn
from sellakit.cache import cached_state
from sellakit.cf.models import MF
from sellakit.cf.train import (CFConfig, fit_and_evaluate, score_valid_and_test,
                               train_cf)
from sellakit.config import bounded, pick_device, seed_everything
from sellakit.data.protocol import CTRSplit
from sellakit.errors import DataError
from sellakit.selection import ExtraLoss, TrainResult

__all__ = ["AlignConfig", "Projector", "AlignedMF", "AlignmentTerm", "info_nce",
           "train_aligned_mf", "AlignResult", "AlignedTables", "compare_alignment"]


@dataclass(frozen=True)
class AlignConfig(CFConfig):
    """MF settings plus the alignment term's.

    Attributes:
        temperature: InfoNCE temperature (SeLLa-Rec: 0.2).
        align_weight: weight of the InfoNCE term next to BCE.
        projector_hidden: hidden width of the projector MLP (SeLLa-Rec: 1024).
        measure_k: k of mutual k-NN and Recall@k.
        measure_every: measure (and snapshot) every this many epochs, plus epoch 0 and the
            selected epoch.
        snapshot_items: how many items (most frequent in train) to keep projections of at each
            measured epoch, for the epoch slider of the map.
        align_rows: rows of each batch that enter the InfoNCE term (None: all). Fewer rows mean
            fewer negatives and a much cheaper step (the logits are rows x rows).
        center_semantic: align to the item states minus their mean item state
            (:func:`sellakit.llm.center_items`); the mean is kept in the saved tables.
        train_semantic: let the alignment move the semantic table too (SeLLa-Rec: both sides
            move); False keeps the LLM's states fixed and moves only MF and the projector.

    The aligned MF keeps MF's weight decay (CoLLM's coupled L2, what its settings were tuned
    with) on its tables and projector and puts none on the semantic table, so rows of items
    that never reach the InfoNCE term (items unseen in train) stay exactly as the LLM gave
    them. (Decoupled decay, AdamW, at the same coefficient left MF under-regularised: on ML-1M
    with the quick settings its validation AUC stalled near 0.60 where plain MF reaches 0.67.)
    """

    PRESETS: ClassVar[tuple[str, ...]] = ("quick", "paper")

    temperature: float = bounded(0.2, above=0)
    align_weight: float = bounded(1.0, at_least=0)
    projector_hidden: int = bounded(1024, at_least=1)
    measure_k: int = bounded(10, at_least=1)
    measure_every: int = bounded(10, at_least=1)
    snapshot_items: int = bounded(600, at_least=0)
    align_rows: int | None = bounded(None, at_least=1)
    center_semantic: bool = True
    train_semantic: bool = True

    @classmethod
    def quick(cls, **overrides) -> AlignConfig:
        """MF's quick settings; 256 rows of each batch in the InfoNCE term, for a CPU."""
        base = {**vars(CFConfig.quick("mf")), "align_rows": 256}
        return cls(**{**base, **overrides})

    @classmethod
    def paper(cls, **overrides) -> AlignConfig:
        """MF's paper settings with the alignment term, from scratch, every row in InfoNCE."""
        base = vars(CFConfig.paper("mf"))
        return cls(**{**base, **overrides})


class Projector(nn.Module):
    """``d_in -> hidden -> GELU -> d_out``: CF vectors into the LLM's embedding space."""

    def __init__(self, d_in: int, d_out: int, hidden: int = 1024):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.Linear(hidden, d_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    @staticmethod
    def dims(state: dict[str, torch.Tensor]) -> tuple[int, int, int]:
        """``(d_in, d_out, hidden)`` — the constructor's arguments — of the projector whose
        :meth:`state_dict` is ``state`` (e.g. the ``"projector"`` entry of the aligned MF file)."""
        first, last = state["net.0.weight"], state["net.2.weight"]
        return int(first.shape[1]), int(last.shape[0]), int(first.shape[0])


class AlignedMF(MF):
    """MF with a projector and a trainable semantic table (one row per item id)."""

    def __init__(self, n_users: int, n_items: int, semantic: np.ndarray, dim: int = 256,
                 hidden: int = 1024, temperature: float = 0.2):
        super().__init__(n_users, n_items, dim)
        if semantic.shape[0] != n_items:
            raise DataError(f"semantic table has {semantic.shape[0]} rows; the split has "
                            f"{n_items} item ids (padding included).")
        self.projector = Projector(dim, semantic.shape[1], hidden)
        self.semantic = nn.Parameter(torch.as_tensor(semantic, dtype=torch.float32).clone())
        self.temperature = temperature

    def configure_optimizers(self, lr: float, weight_decay: float
                             ) -> list[torch.optim.Optimizer]:
        """MF's Adam with its decay on the tables and projector, none on the semantic table
        (see :func:`sellakit.cf.train_cf`)."""
        others = [p for name, p in self.named_parameters() if name != "semantic"]
        groups = [{"params": others, "weight_decay": weight_decay}]
        if self.semantic.requires_grad:
            groups.append({"params": [self.semantic], "weight_decay": 0.0})
        return [torch.optim.Adam(groups, lr=lr, weight_decay=weight_decay)]

    def project_items(self, iid: torch.Tensor) -> torch.Tensor:
        """``P(e_i)``: the items' CF vectors in the LLM space."""
        return self.projector(self.item_embedding(iid))

    def alignment_loss(self, iid: torch.Tensor, rows: int | None = None) -> torch.Tensor:
        """InfoNCE over the batch's items (the first ``rows`` of them; the batch is shuffled)."""
        iid = iid[:rows] if rows else iid
        return info_nce(self.semantic[iid], self.project_items(iid), iid, self.temperature)


class AlignmentTerm(ExtraLoss):
    """``weight`` times the aligned MF's InfoNCE over the first ``rows`` of each batch's items:
    the alignment as :func:`sellakit.cf.train_cf`'s extra loss (part ``"info_nce"``)."""

    def __init__(self, weight: float, rows: int | None = None):
        super().__init__()
        self.weight, self.rows = weight, rows

    def forward(self, model: AlignedMF, batch: dict[str, torch.Tensor]
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        loss = model.alignment_loss(batch["iid"], self.rows)
        return self.weight * loss, {"info_nce": loss.detach()}


def info_nce(anchors: torch.Tensor, positives: torch.Tensor, ids: torch.Tensor,
             temperature: float) -> torch.Tensor:
    """InfoNCE with cosine similarity; row i's positive is column i, negatives the other
    columns except those carrying the same id (duplicates in the batch are not negatives)."""
    logits = F.normalize(anchors, dim=-1) @ F.normalize(positives, dim=-1).T / temperature
    duplicate = (ids.unsqueeze(0) == ids.unsqueeze(1)) & ~torch.eye(len(ids), dtype=torch.bool,
                                                                     device=ids.device)
    logits = logits.masked_fill(duplicate, float("-inf"))
    return F.cross_entropy(logits, torch.arange(len(ids), device=ids.device))


@dataclass
class AlignResult:
    """The aligned model, its learning curve (with the alignment measures per epoch), and the
    projected vectors of ``snapshot_iids`` at each epoch (for the map's epoch slider)."""

    train: TrainResult
    snapshot_iids: np.ndarray
    snapshots: dict[int, np.ndarray] = field(default_factory=dict)
    #: the mean item state subtracted before alignment (None: aligned to the raw states)
    semantic_mean: np.ndarray | None = None

    @property
    def model(self) -> AlignedMF:
        return self.train.model

    @property
    def history(self):
        return self.train.history

    def tables(self) -> AlignedTables:
        """What the hybrid projection layer starts from (see :class:`AlignedTables`)."""
        return AlignedTables.from_model(self.model, config=dict(vars(self.train.config)),
                                        best_epoch=self.train.best_step,
                                        semantic_mean=self.semantic_mean)

    def save(self, path) -> None:
        """Save :meth:`tables` to ``path`` (one ``torch.save`` file; :meth:`AlignedTables.load`
        reads it)."""
        self.tables().save(path)


@dataclass
class AlignedTables:
    """The aligned MF as stage 3 (:mod:`sellakit.rec`) starts from it: the MF user and item
    tables, the aligned semantic table and the projector's weights.

    Saved as one ``torch.save`` file (notebook 04's ``build/aligned_mf.pt``) with the keys
    ``user_embedding``, ``item_embedding``, ``semantic``, ``projector`` (the projector's
    ``state_dict``), ``config`` and ``best_epoch``; :meth:`load` is the one reader of that file.

    Attributes:
        user / item: ``(n_users, d_cf)`` / ``(n_items, d_cf)`` MF tables.
        semantic: ``(n_items, d_llm)`` semantic table, as trained with the alignment.
        projector_state: the :class:`Projector`'s ``state_dict`` (build one with
            :meth:`projector`).
        config: the alignment's settings (``AlignConfig`` as a dict), when known.
        best_epoch: the epoch kept on validation, when known.
    """

    user: np.ndarray
    item: np.ndarray
    semantic: np.ndarray
    projector_state: dict[str, torch.Tensor]
    config: dict = field(default_factory=dict)
    best_epoch: int | None = None
    semantic_mean: np.ndarray | None = None

    @classmethod
    def from_model(cls, model: AlignedMF, *, config: dict | None = None,
                   best_epoch: int | None = None,
                   semantic_mean: np.ndarray | None = None) -> AlignedTables:
        """The tables of a trained :class:`AlignedMF` (copied to the CPU)."""
        return cls(user=model.user_embedding.weight.detach().cpu().numpy(),
                   item=model.item_embedding.weight.detach().cpu().numpy(),
                   semantic=model.semantic.detach().cpu().numpy(),
                   projector_state={k: v.detach().cpu()
                                    for k, v in model.projector.state_dict().items()},
                   config=config or {}, best_epoch=best_epoch, semantic_mean=semantic_mean)

    def projector(self, *, trained: bool = True) -> Projector:
        """A :class:`Projector` of the aligned one's shape: with its trained weights, or with
        ``trained=False`` freshly initialised (from torch's global random state)."""
        d_in, d_out, hidden = Projector.dims(self.projector_state)
        projector = Projector(d_in, d_out, hidden=hidden)
        if trained:
            projector.load_state_dict(self.projector_state)
        return projector

    def save(self, path: str | Path) -> None:
        """Write the tables to ``path`` (one ``torch.save`` file, the keys above)."""
        torch.save({"projector": self.projector_state,
                    "user_embedding": torch.from_numpy(self.user),
                    "item_embedding": torch.from_numpy(self.item),
                    "semantic": torch.from_numpy(self.semantic),
                    "semantic_mean": None if self.semantic_mean is None
                    else torch.from_numpy(self.semantic_mean),
                    "config": self.config, "best_epoch": self.best_epoch}, path)

    @classmethod
    def load(cls, path: str | Path, split: CTRSplit | None = None) -> AlignedTables:
        """Read a file written by :meth:`save` (or :meth:`AlignResult.save`); with ``split``,
        also check that its tables have one row per user and item of ``split``.

        Raises :class:`~sellakit.errors.DataError` naming ``path`` for a file that is missing,
        not such a file, or made for another split."""
        fix = "Fix: pass the file written by AlignResult.save (notebook 04: build/aligned_mf.pt)."
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            missing = {"projector", "user_embedding", "item_embedding", "semantic"} - set(saved)
            if missing:
                raise DataError(f"{path}: no {sorted(missing)} in it. {fix}")
            tables = cls(user=saved["user_embedding"].numpy(),
                         item=saved["item_embedding"].numpy(),
                         semantic=saved["semantic"].numpy(), projector_state=saved["projector"],
                         config=saved.get("config", {}), best_epoch=saved.get("best_epoch"),
                         semantic_mean=None if saved.get("semantic_mean") is None
                         else saved["semantic_mean"].numpy())
            Projector.dims(tables.projector_state)
        except DataError:
            raise
        except Exception as err:  # noqa: BLE001 - torch raises many kinds for a bad file
            raise DataError(f"{path} is not a saved aligned MF (reading it raised "
                            f"{type(err).__name__}). {fix}") from err
        if split is not None:
            rows = (len(tables.user), len(tables.item), len(tables.semantic))
            if rows != (split.n_users, split.n_items, split.n_items):
                raise DataError(f"{path}: tables of {rows[0]:,} users and {rows[1]:,} items, "
                                f"but {split.name} has {split.n_users:,} and "
                                f"{split.n_items:,} (made for another split). Fix: align on "
                                "this split (notebook 04), or leave --aligned out.")
        return tables


def train_aligned_mf(split: CTRSplit, semantic: np.ndarray, config: AlignConfig, *,
                     progress: bool = True) -> AlignResult:
    """Train MF + alignment on ``split`` (early stop on validation AUC).

    Args:
        semantic: ``(n_items, d_llm)`` table from :func:`sellakit.llm.item_semantic_embeddings`,
            row ``iid`` for item ``iid`` (row 0 is padding); centred here when
            ``config.center_semantic``.

    The measures in the history compare the CF item table and ``P(e_i)`` with the *original*
    table aligned to (centred or raw; a fixed reference: the trainable table moves), over the
    items seen in train. Epoch 0 is the model at initialisation.
    """
    from sellakit.llm import center_items

    semantic_mean = None
    if config.center_semantic:
        semantic, semantic_mean = center_items(semantic)
    seed_everything(config.seed)  # the initial tables and projector, whatever ran before
    model = AlignedMF(split.n_users, split.n_items, semantic, dim=config.dim,
                      hidden=config.projector_hidden, temperature=config.temperature)
    model.semantic.requires_grad_(config.train_semantic)
    train_items = np.unique(split.train.iid.to_numpy())
    counts = split.train.iid.value_counts()
    snapshot_iids = np.sort(counts.index.to_numpy()[: config.snapshot_items])
    reference = semantic[train_items]
    result = AlignResult(train=None, snapshot_iids=snapshot_iids,  # type: ignore[arg-type]
                         semantic_mean=semantic_mean)

    @torch.no_grad()
    def measure(m: AlignedMF, epoch: int) -> dict:
        device = m.semantic.device
        items = torch.as_tensor(train_items, device=device)
        cf = m.item_embedding(items).float().cpu().numpy()
        projected = m.project_items(items).float().cpu().numpy()
        snap = torch.as_tensor(snapshot_iids, device=device)
        result.snapshots[epoch] = m.project_items(snap).float().cpu().numpy()
        return alignment_measures(cf, reference, projected, k=config.measure_k)

    def every_few_epochs(m: AlignedMF, epoch: int) -> dict:
        return {} if epoch % config.measure_every else measure(m, epoch)

    # On one CPU thread: on two, the step's sums land in another order from run to run (tables
    # 1e-6 apart), which notebook 05's SeLLa-Rec AUC on 192 rows turned into 0.49-0.60; on one,
    # two runs gave the same bits, in 132-137 s against 140-145 s for two runs at once on 2 cores.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result.train = train_cf(split, config, model=model,
                                extra_loss=AlignmentTerm(config.align_weight, config.align_rows),
                                on_epoch=every_few_epochs, progress=progress)
    finally:
        torch.set_num_threads(threads)
    # The selected epoch's measures and snapshot (the restored model), whatever its number.
    history, best = result.train.history, result.train.best_step
    for key, value in measure(result.model, best).items():
        history.loc[history.epoch == best, key] = value
    return result


def _cached_alignment(split: CTRSplit, semantic: np.ndarray, config: AlignConfig,
                      progress: bool) -> AlignResult:
    """:func:`train_aligned_mf` once per split, table and settings; later calls read the model,
    its learning curve and its snapshots back from the kit's cache."""
    fresh: list[AlignResult] = []

    def compute() -> dict:
        fresh.append(train_aligned_mf(split, semantic, config, progress=progress))
        done = fresh[0]
        return {"state": done.model.state_dict(), "history": done.history.to_dict("list"),
                "best_step": done.train.best_step, "best_valid": done.train.best_valid,
                "seconds": done.train.seconds, "n_train": done.train.n_train,
                "snapshot_iids": torch.from_numpy(done.snapshot_iids),
                "snapshots": {str(e): torch.from_numpy(a) for e, a in done.snapshots.items()},
                "semantic_mean": None if done.semantic_mean is None
                else torch.from_numpy(np.asarray(done.semantic_mean))}

    table = hashlib.sha256(np.ascontiguousarray(semantic, dtype=np.float32).tobytes())
    # "one thread": fits made before the fit ran on one thread are not read back
    key = config.cache_key(split.fingerprint(), table.hexdigest(), "one thread")
    def restore(stored: dict) -> AlignResult:
        model = AlignedMF(split.n_users, split.n_items, np.zeros(semantic.shape, np.float32),
                          dim=config.dim, hidden=config.projector_hidden,
                          temperature=config.temperature)
        model.load_state_dict(stored["state"])  # strict: every name and shape must match
        model.semantic.requires_grad_(config.train_semantic)
        model.to(pick_device(config.device)).eval()  # where a fresh fit would have left it
        history = pd.DataFrame(stored["history"])
        history.attrs["from_cache"] = True
        train = TrainResult(model=model, history=history, best_step=stored["best_step"],
                            best_valid=stored["best_valid"], seconds=stored["seconds"],
                            seed=config.seed, config=config, n_train=stored["n_train"])
        mean = stored["semantic_mean"]
        return AlignResult(train=train, snapshot_iids=stored["snapshot_iids"].numpy(),
                           snapshots={int(e): a.numpy() for e, a in stored["snapshots"].items()},
                           semantic_mean=None if mean is None else mean.numpy())

    restored, _ = cached_state("align", key, compute, restore=restore)
    return fresh[0] if fresh else restored


def compare_alignment(split: CTRSplit, semantic: np.ndarray, config: AlignConfig, *,
                      progress: bool = True, use_cache: bool = False
                      ) -> tuple[TrainResult, AlignResult, dict]:
    """Plain MF and aligned MF with the same settings and seed; test scored once each.

    Returns both results and the record the benchmark and notebook 04 report::

        {"plain": {"valid": .., "test": .., "test_warm": .., "test_cold": ..},
         "aligned": {...}, "before": {"cka", "mutual_knn@10", "recall@10", ...},
         "after": {...}, "plain_space": {"cka", "mutual_knn@10"}, "seconds": s, "seed": n}

    ``before`` is the aligned model at initialisation (epoch 0), ``after`` at the epoch chosen on
    validation; ``plain_space`` compares plain MF's trained item table with the LLM space.
    ``use_cache``: both models from the kit's cache when trained before on this split, table
    and settings (``seconds`` then counts what ran; the aligned history's ``attrs`` say
    ``from_cache``).
    """
    started = time.perf_counter()
    plain, plain_record = fit_and_evaluate(split, CFConfig(**{
        k: v for k, v in vars(config).items() if k in CFConfig.__dataclass_fields__}),
        progress=progress, use_cache=use_cache)
    aligned = (_cached_alignment(split, semantic, config, progress) if use_cache
               else train_aligned_mf(split, semantic, config, progress=progress))
    aligned_record = score_valid_and_test(aligned.model, split)
    history = aligned.history.set_index("epoch")
    k = config.measure_k
    columns = ["cka", f"mutual_knn@{k}", f"recall@{k}", "alignment", "uniformity"]
    train_items = np.unique(split.train.iid.to_numpy())
    plain_items = plain.model.item_embedding.weight.detach().cpu().numpy()[train_items]
    if config.center_semantic:  # the space the aligned model was aligned to
        from sellakit.llm import center_items

        semantic = center_items(semantic)[0]
    record = {
        "plain": {s: plain_record[s] for s in ("valid", "test", "test_warm", "test_cold")},
        "aligned": aligned_record,
        "before": {c: float(history.loc[0, c]) for c in columns},
        "after": {c: float(history.loc[aligned.train.best_step, c]) for c in columns},
        "plain_space": {"cka": linear_cka(plain_items, semantic[train_items]),
                        f"mutual_knn@{k}": mutual_knn(plain_items, semantic[train_items], k)},
        "best_epoch": {"plain": plain.best_step, "aligned": aligned.train.best_step},
        "seconds": round(time.perf_counter() - started, 1), "seed": config.seed,
        "dataset": split.name,
    }
    return plain, aligned, record
