"""Three collaborative-filtering models for click-through prediction, as CoLLM uses them.

All take the same batch (``uid``, ``iid``, ``his``: the last ``L`` liked items, left-padded with 0)
and return one logit per row, so one trainer serves them all. Each exposes ``user_embedding``
and ``item_embedding`` tables for the later stages (alignment, special tokens).

* :class:`MF`: dot product of user and item vectors, no bias.
* :class:`LightGCN`: user and item vectors smoothed over the train graph of positive
  interactions (mean of the layer outputs), then a dot product.
* :class:`SASRec`: a causal self-attention encoder over the liked-item history; the last
  position's output is the user, dotted with the target item's vector.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from sellakit.errors import ConfigError

__all__ = ["MF", "LightGCN", "SASRec", "build_model"]


class MF(nn.Module):
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


class LightGCN(nn.Module):
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


class SASRec(nn.Module):
    """SASRec (Kang & McAuley, 2018) used as a CTR model over the liked-item history."""

    def __init__(self, n_users: int, n_items: int, dim: int = 64, max_len: int = 25,
                 n_layers: int = 2, n_heads: int = 1, dropout: float = 0.2):
        super().__init__()
        self.max_len = max_len
        self.item_embedding = nn.Embedding(n_items, dim, padding_idx=0)
        self.position_embedding = nn.Embedding(max_len, dim)
        # Kept for a uniform interface: SASRec has no user table; the sequence is the user.
        self.user_embedding = None
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
            raise ConfigError("SASRec needs the history tensor `his`.")
        return (self.encode(his) * self.item_embedding(iid)).sum(-1)


def build_model(name: str, n_users: int, n_items: int, *, dim: int, train_edges: np.ndarray,
                n_layers: int = 2, n_heads: int = 1, dropout: float = 0.2,
                history_len: int = 25) -> nn.Module:
    """Build ``"mf"``, ``"lightgcn"`` or ``"sasrec"`` with the given sizes."""
    name = name.lower()
    if name == "mf":
        return MF(n_users, n_items, dim)
    if name == "lightgcn":
        return LightGCN(n_users, n_items, train_edges, dim, n_layers)
    if name == "sasrec":
        return SASRec(n_users, n_items, dim, history_len, n_layers, n_heads, dropout)
    raise ConfigError(f"Unknown CF model {name!r}; choose mf, lightgcn or sasrec.")
