"""The CF models of the kit for click-through prediction, as CoLLM uses them, and their table.

All take the same batch (``uid``, ``iid``, ``his``: the last ``L`` liked items, left-padded with 0)
and return one logit per row, so one trainer serves them all. Each has an ``item_embedding``
table, and a ``user_embedding`` table where :attr:`CFModel.uses_user_embedding` says so, for the
later stages (alignment, special tokens).

* :class:`MF`: dot product of user and item vectors, no bias.
* :class:`BiasedMF`: the same plus a global, a user and an item bias (the classic biased MF,
  Koren et al., 2009), the biases free of weight decay; a user or item unseen in training keeps
  a bias near 0, so it is scored by the global and the other side's bias, not at 0.5.
* :class:`LightGCN`: user and item vectors smoothed over the train graph of positive
  interactions (mean of the layer outputs), then a dot product.
* :class:`SASRec`: a causal self-attention encoder over the liked-item history; the last
  position's output is the user, dotted with the target item's vector.
* :class:`KGMF`: MF whose item vector is its own plus a learned map of the item's fixed KG
  vector (CKE-style; :mod:`sellakit.kg.items`), so an item unseen in training still has one.

**The table.** :data:`CF_MODELS` holds one frozen :class:`CFModelSpec` per model: its class,
CoLLM's tuned settings, the preset budgets and the settings its constructor takes. The config's
``model`` choices, the command line's ``--models`` and :func:`build_model` read it; a new model
is its class (a :class:`CFModel`) plus one row (see :func:`with_model`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import ClassVar, Literal

import numpy as np
import torch
from torch import nn

from sellakit.errors import ConfigError

__all__ = ["CFModel", "MF", "BiasedMF", "KGMF", "LightGCN", "SASRec", "CFModelSpec", "CF_MODELS",
           "CFModelName",
           "model_spec", "with_model", "build_model"]


class CFModel(nn.Module):
    """What the trainer (:func:`sellakit.cf.train_cf`) asks of a CF model.

    ``forward(uid, iid, his)`` returns one logit per row. :attr:`max_len` is how many history
    slots the model reads (what :func:`sellakit.cf.predict` builds by default; a model that
    reads no history ignores ``his``). :meth:`configure_optimizers` returns its optimisers.
    """

    #: whether the model has a ``user_embedding`` table (SASRec: the sequence is the user)
    uses_user_embedding: ClassVar[bool] = True
    #: history slots the model reads (25: CoLLM's); a model that reads none ignores ``his``
    max_len: int = 25

    def configure_optimizers(self, lr: float, weight_decay: float
                             ) -> list[torch.optim.Optimizer]:
        """Adam with L2 in the gradient (CoLLM's settings) over every parameter."""
        return [torch.optim.Adam(self.parameters(), lr=lr, weight_decay=weight_decay)]


class MF(CFModel):
    """Matrix factorisation: ``logit = <e_u, e_i>`` (CoLLM's MF, no bias)."""

    def __init__(self, n_users: int, n_items: int, dim: int = 256, init_std: float = 0.1):
        super().__init__()
        self.user_embedding = nn.Embedding(n_users, dim, padding_idx=0)
        self.item_embedding = nn.Embedding(n_items, dim, padding_idx=0)
        for table in (self.user_embedding, self.item_embedding):
            nn.init.normal_(table.weight, std=init_std)

    def forward(self, uid: torch.Tensor, iid: torch.Tensor, his: torch.Tensor | None = None
                ) -> torch.Tensor:
        return (self.user_embedding(uid) * self.item_embedding(iid)).sum(-1)


class BiasedMF(MF):
    """``logit = b + b_u + b_i + <e_u, e_i>``: MF with a global, a user and an item bias.

    The biases start at 0 and are not decayed (:meth:`configure_optimizers`), so they carry
    the popularity and taste levels that a bias-free MF can only fold into its vectors.
    """

    def __init__(self, n_users: int, n_items: int, dim: int = 256, init_std: float = 0.1):
        super().__init__(n_users, n_items, dim, init_std)
        self.global_bias = nn.Parameter(torch.zeros(()))
        self.user_bias = nn.Embedding(n_users, 1, padding_idx=0)
        self.item_bias = nn.Embedding(n_items, 1, padding_idx=0)
        for table in (self.user_bias, self.item_bias):
            nn.init.zeros_(table.weight)

    def forward(self, uid: torch.Tensor, iid: torch.Tensor, his: torch.Tensor | None = None
                ) -> torch.Tensor:
        return (super().forward(uid, iid, his) + self.global_bias
                + self.user_bias(uid).squeeze(-1) + self.item_bias(iid).squeeze(-1))

    def biases(self) -> list[nn.Parameter]:
        """The global, user and item bias parameters."""
        return [self.global_bias, self.user_bias.weight, self.item_bias.weight]

    def configure_optimizers(self, lr: float, weight_decay: float
                             ) -> list[torch.optim.Optimizer]:
        """Adam; L2 on the vectors only (decayed biases would pull every score to 0.5)."""
        biases = self.biases()
        tables = [p for p in self.parameters() if all(p is not b for b in biases)]
        return [torch.optim.Adam([{"params": tables, "weight_decay": weight_decay},
                                  {"params": biases, "weight_decay": 0.0}], lr=lr)]


class KGMF(MF):
    """MF with the item's KG vector added (CKE-style, Zhang et al., 2016, with the KG vectors
    pre-trained and fixed): ``logit = <e_u, e_i + W k_i>``.

    Args:
        item_kg: ``(n_items, d_kg)`` KG vectors (row = iid; zero for an item the KG does not
            know, whose item vector is then its own alone).
    """

    def __init__(self, n_users: int, n_items: int, item_kg: np.ndarray, dim: int = 256,
                 init_std: float = 0.1):
        super().__init__(n_users, n_items, dim, init_std)
        kg = torch.as_tensor(np.asarray(item_kg), dtype=torch.float32)
        if kg.shape[0] != n_items or kg.ndim != 2 or not torch.isfinite(kg).all():
            raise ConfigError(f"KGMF: item_kg has shape {tuple(kg.shape)}; it needs one finite "
                              f"row per item ({n_items}, row 0 padding). Fix: pass "
                              "sellakit.kg.items.item_kg_vectors(...).vectors.")
        self.register_buffer("item_kg", kg)
        self.kg_map = nn.Linear(kg.shape[1], dim, bias=False)
        nn.init.normal_(self.kg_map.weight, std=init_std / max(kg.shape[1], 1) ** 0.5)

    def item_vectors(self, iid: torch.Tensor) -> torch.Tensor:
        """``e_i + W k_i``: what the user vector is dotted with."""
        return self.item_embedding(iid) + self.kg_map(self.item_kg[iid])

    def forward(self, uid: torch.Tensor, iid: torch.Tensor, his: torch.Tensor | None = None
                ) -> torch.Tensor:
        return (self.user_embedding(uid) * self.item_vectors(iid)).sum(-1)


class LightGCN(CFModel):
    """LightGCN (He et al., 2020) on the symmetric-normalised user-item graph.

    Args:
        edges: ``(2, E)`` array of (uid, iid) pairs, the positive train interactions.
    """

    def __init__(self, n_users: int, n_items: int, edges: np.ndarray, dim: int = 64,
                 n_layers: int = 2, init_std: float = 0.1):
        super().__init__()
        self.n_users, self.n_items, self.n_layers = n_users, n_items, n_layers
        self.user_embedding = nn.Embedding(n_users, dim, padding_idx=0)
        self.item_embedding = nn.Embedding(n_items, dim, padding_idx=0)
        for table in (self.user_embedding, self.item_embedding):
            nn.init.normal_(table.weight, std=init_std)
        self.register_buffer("adjacency", _normalised_adjacency(edges, n_users, n_items),
                             persistent=False)

    def propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        """User and item tables after propagation (mean over layers 0..K)."""
        layer = torch.cat([self.user_embedding.weight, self.item_embedding.weight])
        total = layer
        for _ in range(self.n_layers):
            layer = torch.sparse.mm(self.adjacency, layer)
            total = total + layer
        total = total / (self.n_layers + 1)
        return total[: self.n_users], total[self.n_users:]

    def forward(self, uid: torch.Tensor, iid: torch.Tensor, his: torch.Tensor | None = None
                ) -> torch.Tensor:
        users, items = self.propagate()
        return (users[uid] * items[iid]).sum(-1)


def _normalised_adjacency(edges: np.ndarray, n_users: int, n_items: int) -> torch.Tensor:
    users, items = np.asarray(edges[0]), np.asarray(edges[1]) + n_users
    rows = np.concatenate([users, items])
    cols = np.concatenate([items, users])
    degree = np.bincount(rows, minlength=n_users + n_items).astype(np.float32)
    inv_sqrt = np.power(degree, -0.5, where=degree > 0, out=np.zeros_like(degree))
    values = inv_sqrt[rows] * inv_sqrt[cols]
    size = n_users + n_items
    index = torch.from_numpy(np.vstack([rows, cols]))
    return torch.sparse_coo_tensor(index, torch.from_numpy(values.astype(np.float32)),
                                   (size, size), check_invariants=True).coalesce()


class SASRec(CFModel):
    """SASRec (Kang & McAuley, 2018) used as a CTR model over the liked-item history."""

    uses_user_embedding: ClassVar[bool] = False  # the sequence is the user

    def __init__(self, n_users: int, n_items: int, dim: int = 64, max_len: int = 25,
                 n_layers: int = 2, n_heads: int = 1, dropout: float = 0.2):
        super().__init__()
        self.max_len = max_len
        self.item_embedding = nn.Embedding(n_items, dim, padding_idx=0)
        self.position_embedding = nn.Embedding(max_len, dim)
        layer = nn.TransformerEncoderLayer(dim, n_heads, dim_feedforward=dim, dropout=dropout,
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        nn.init.normal_(self.item_embedding.weight, std=0.1)
        self.register_buffer("causal", nn.Transformer.generate_square_subsequent_mask(max_len),
                             persistent=False)

    def encode(self, his: torch.Tensor) -> torch.Tensor:
        """The user representation: the output at the last (most recent) position."""
        his = his[:, -self.max_len:]
        length = his.shape[1]
        positions = torch.arange(length, device=his.device)
        keep = (his != 0).unsqueeze(-1).to(self.item_embedding.weight.dtype)
        # Padded slots are zeroed rather than masked as keys (as the original SASRec does): a
        # query with every key masked would turn into NaN and spread through later layers.
        hidden = self.dropout(self.item_embedding(his) + self.position_embedding(positions)) * keep
        hidden = self.encoder(hidden, mask=self.causal[:length, :length], is_causal=True)
        return self.norm(hidden[:, -1])

    def forward(self, uid: torch.Tensor, iid: torch.Tensor, his: torch.Tensor | None = None
                ) -> torch.Tensor:
        if his is None:
            raise ConfigError("SASRec needs the history tensor `his` (the last liked items, "
                              "from sellakit.cf.batch_tensors); pass it as the third argument.")
        return (self.encode(his) * self.item_embedding(iid)).sum(-1)


@dataclass(frozen=True)
class CFModelSpec:
    """One CF model of the kit: its class and the settings that go with it.

    Attributes:
        name: the ``CFConfig.model`` value (and ``--models`` entry) that picks it.
        model_class: the :class:`CFModel` subclass.
        arguments: constructor keyword -> the ``CFConfig`` field it is read from (only these
            reach the constructor).
        defaults: CoLLM's tuned settings (sellakit/research: CoLLM ``baseline_train_*.py``),
            the base of both presets.
        quick: the quick preset's settings on top of ``defaults`` and the common quick budget.
        paper: the paper preset's settings on top of ``defaults``.
        takes_train_edges: the constructor also takes ``edges``, the positive training pairs.
        takes_item_kg: the constructor also takes ``item_kg``, the items' KG vectors (given to
            :func:`build_model`; :func:`sellakit.cf.train_cf` then takes the built model).
    """

    name: str
    model_class: type[CFModel]
    arguments: Mapping[str, str]
    defaults: Mapping[str, float] = field(default_factory=dict)
    quick: Mapping[str, float] = field(default_factory=dict)
    paper: Mapping[str, float] = field(default_factory=dict)
    takes_train_edges: bool = False
    takes_item_kg: bool = False


_COLLM = {"weight_decay": 1e-4}
#: The CF model table, name -> row (read-only).
CF_MODELS: Mapping[str, CFModelSpec] = MappingProxyType({spec.name: spec for spec in (
    # MF: CoLLM's patience 100; the others peak within ~10 epochs here, 20 suffices.
    CFModelSpec("mf", MF, {"dim": "dim"}, {"dim": 256, "lr": 1e-3, **_COLLM},
                paper={"patience": 100}),
    # MF's settings (the kit's own baseline, not in CoLLM): only the biases differ.
    CFModelSpec("biased_mf", BiasedMF, {"dim": "dim"}, {"dim": 256, "lr": 1e-3, **_COLLM},
                paper={"patience": 100}),
    CFModelSpec("lightgcn", LightGCN, {"dim": "dim", "n_layers": "n_layers"},
                {"dim": 64, "lr": 1e-2, **_COLLM}, paper={"patience": 20},
                takes_train_edges=True),
    # quick: attention over 25 slots costs ~1 s a batch on 2 cores, so a shorter history
    CFModelSpec("sasrec", SASRec, {"dim": "dim", "max_len": "history_len",
                                   "n_layers": "n_layers", "n_heads": "n_heads",
                                   "dropout": "dropout"},
                {"dim": 64, "lr": 1e-2, **_COLLM}, paper={"patience": 20},
                quick={"history_len": 10, "max_epochs": 30, "patience": 5}),
    # MF's settings; the KG vectors come from sellakit.kg.items (issue 25)
    CFModelSpec("mf_kg", KGMF, {"dim": "dim"}, {"dim": 256, "lr": 1e-3, **_COLLM},
                paper={"patience": 100}, takes_item_kg=True),
)})
#: The names of :data:`CF_MODELS` as a type, read from the table (``CFConfig.model``, checked
#: when a config is made).
CFModelName = Literal[tuple(CF_MODELS)]  # type: ignore[valid-type]


def model_spec(name: str, table: Mapping[str, CFModelSpec] | None = None) -> CFModelSpec:
    """The row of ``name`` in ``table`` (default :data:`CF_MODELS`)."""
    table = CF_MODELS if table is None else table
    if name not in table:
        raise ConfigError(f"Unknown CF model {name!r}; choose one of {', '.join(table)} (the "
                          "rows of sellakit.cf.models.CF_MODELS).")
    return table[name]


def with_model(spec: CFModelSpec, table: Mapping[str, CFModelSpec] | None = None
               ) -> Mapping[str, CFModelSpec]:
    """A copy of ``table`` (default :data:`CF_MODELS`) with ``spec`` added: how a new model is
    tried before its row joins the table in this module (and its name ``CFModelName``)."""
    return MappingProxyType({**(CF_MODELS if table is None else table), spec.name: spec})


def build_model(name: str, n_users: int, n_items: int, *, train_edges: np.ndarray | None = None,
                table: Mapping[str, CFModelSpec] | None = None,
                item_kg: np.ndarray | None = None, **settings) -> CFModel:
    """A fresh model ``name`` (a row of ``table``, default :data:`CF_MODELS`) of the given
    sizes; of ``settings`` (``CFConfig`` fields) only those its row names reach it, the
    others keep the constructor's defaults."""
    spec = model_spec(name.lower(), table)
    kwargs = {arg: settings[source] for arg, source in spec.arguments.items()
              if source in settings}
    if spec.takes_train_edges:
        if train_edges is None:
            raise ConfigError(f"CF model {spec.name!r} needs train_edges=, the (2, E) array of "
                              "positive training (uid, iid) pairs.")
        kwargs["edges"] = train_edges
    if spec.takes_item_kg:
        if item_kg is None:
            raise ConfigError(f"CF model {spec.name!r} needs item_kg=, the items' KG vectors "
                              "(sellakit.kg.items.item_kg_vectors(...).vectors): build it with "
                              "build_model(..., item_kg=) and pass it to train_cf(model=).")
        kwargs["item_kg"] = item_kg
    return spec.model_class(n_users, n_items, **kwargs)
