"""Low-resource targets: fewer of the target's training facts, fewer of its links.

:func:`low_resource` returns the data and the data rule of a target that arrives with a
fraction of its training facts and of its alignment links, everything else unchanged:

* the **facts** kept are a seeded draw from the target's training facts under the rule (train
  plus the rest of valid, held-out re-expressions already dropped); the draws are nested
  (the 10% are inside the 25%, ...), so a sweep's points differ only by the facts added;
* the **links** kept are a nested seeded draw of each link table touching the target; the
  dropped links move to ``heldout_links``, so the alignment classes of the data rule (and so
  what counts as a re-expression of a held-out fact) stay exactly as before;
* selection and test facts, the filter of the filtered ranks and the other KGs do not change,
  so a teacher of the other KGs (the new-KG setting) is the same one at every point (the
  cache finds it).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from sellakit.errors import ConfigError
from sellakit.kg.data import MultiSourceKG
from sellakit.kg.protocol import DataRule

__all__ = ["ReducedRule", "low_resource", "nested_subset"]


def nested_subset(n: int, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of ``round(fraction * n)`` of ``n`` rows (at least one when n > 0): the
    first ones of one seeded permutation, so a smaller fraction's rows are inside a larger's."""
    if not 0 < fraction <= 1:
        raise ConfigError(f"fraction={fraction}: a fraction of facts or links is in (0, 1].")
    k = max(1, int(round(fraction * n))) if n else 0
    return np.sort(np.random.default_rng(seed).permutation(n)[:k])


@dataclass
class ReducedRule(DataRule):
    """The data rule with the ``target``'s training facts cut to ``facts`` (nested draws)."""

    target: str = ""
    facts: float = 1.0  # checked by nested_subset
    draw_seed: int = 0

    def training(self, name, protect=None, **options):
        kept, dropped = super().training(name, protect, **options)
        if name != self.target or self.facts >= 1:
            return kept, dropped
        return kept[nested_subset(len(kept), self.facts, self.draw_seed)], dropped


def low_resource(ms: MultiSourceKG, rule: DataRule, target: str, *, facts: float = 1.0,
                 links: float = 1.0, seed: int = 0) -> tuple[MultiSourceKG, DataRule]:
    """``ms`` and ``rule`` with ``target``'s training facts and links cut to the given
    fractions (see the module docstring)."""
    if target not in ms.kgs:
        raise ConfigError(f"target={target!r}: {ms.name} has no such KG; choose from "
                          f"{', '.join(ms.kgs)}.")
    for fraction in (facts, links):  # checked now, not at the first draw
        nested_subset(0, fraction, seed)
    kept, heldout = {}, {k: v for k, v in ms.heldout_links.items()}
    for pair, pairs in ms.links.items():
        if target not in pair or links >= 1:
            kept[pair] = pairs
            continue
        rows = nested_subset(len(pairs), links, seed)
        kept[pair] = pairs[rows]
        gone = np.delete(pairs, rows, axis=0)
        heldout[pair] = np.concatenate([heldout[pair], gone]) if pair in heldout else gone
    reduced = replace(ms, links=kept, heldout_links=heldout)
    return reduced, ReducedRule(reduced, rule.selection, rule.rest_of_valid, rule.per_kg,
                                rule.seed, target=target, facts=facts, draw_seed=seed)
