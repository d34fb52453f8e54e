"""Adam for embedding tables with sparse gradients: :class:`torch.optim.SparseAdam`'s update,
row by row.

``SparseAdam`` reads and writes its moment tables through sparse tensors (``sparse_mask`` and a
sparse add per table and step), which on a CPU costs more than the update itself: about a
quarter of a KG model's training step here. :class:`RowAdam` gathers the batch's rows of the
moments with ``index_select``, updates them with the same operations in the same order, and
writes them back with ``index_copy_`` / ``index_add_``. The parameters and moments are
bit-identical to ``SparseAdam``'s (``tests/test_kg.py`` checks it), and its ``state_dict`` has
the same keys.
"""

from __future__ import annotations

import math

import torch

from sellakit.errors import ConfigError

__all__ = ["RowAdam"]


class RowAdam(torch.optim.Optimizer):
    """Lazy Adam over parameters whose gradients are sparse (``nn.Embedding(sparse=True)``):
    only the rows in a step's gradient move, exactly as :class:`torch.optim.SparseAdam`.

    Args:
        params: the tables (every gradient must be sparse).
        lr, betas, eps: as :class:`torch.optim.SparseAdam`.
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8):
        if not lr > 0 or not eps > 0 or not all(0 <= b < 1 for b in betas):
            raise ConfigError(f"RowAdam needs lr > 0, eps > 0 and betas in [0, 1): got lr={lr}, "
                             f"betas={betas}, eps={eps}.")
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})

    @torch.no_grad()
    def step(self, closure=None):
        """One update of every parameter that has a gradient (its rows only)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is not None:
                    self._update(param, group)
        return loss

    def _update(self, param: torch.Tensor, group: dict) -> None:
        if not param.grad.is_sparse:
            raise ConfigError("RowAdam needs sparse gradients (nn.Embedding(sparse=True)); "
                               "use torch.optim.Adam for dense parameters.")
        grad = param.grad.coalesce()  # the update is not linear: one row per index
        rows, values = grad._indices()[0], grad._values()
        if values.numel() == 0:
            return
        (beta1, beta2), state = group["betas"], self.state[param]
        if not state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        state["step"] += 1
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        # SparseAdam's arithmetic, in its order: old + (new - old) * (1 - beta)
        old_avg, old_sq = exp_avg.index_select(0, rows), exp_avg_sq.index_select(0, rows)
        avg = values.sub(old_avg).mul_(1 - beta1).add_(old_avg)
        sq = values.pow(2).sub_(old_sq).mul_(1 - beta2).add_(old_sq)
        exp_avg.index_copy_(0, rows, avg)
        exp_avg_sq.index_copy_(0, rows, sq)
        step = state["step"]
        step_size = group["lr"] * math.sqrt(1 - beta2 ** step) / (1 - beta1 ** step)
        param.index_add_(0, rows, -step_size * avg.div_(sq.sqrt_().add_(group["eps"])))
