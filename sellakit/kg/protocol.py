"""One data rule for every KG model: the teacher, the joint baselines, scratch and students.

Each KG's facts fall into three parts, fixed once (seeded) and shared by every model:

* **test**: DBP-5L's test split, scored once at the end;
* **selection**: a fixed subset of the valid split (``per_kg`` triples, default 1,000), the
  only facts any model is selected on (epochs, temperature, early stopping);
* **training**: train plus the rest of valid (as KEnS and SS-AGA do for their supporting
  KGs; here for every KG, the target included, so one teacher can serve all five).

A model that *protects* a set of KGs never trains on a re-expression of their held-out facts
(test ∪ selection): any triple of any KG that the alignment maps onto one of them is dropped,
where the alignment is every link joined transitively, held-out links and DBP-5L's el↔en
line identity included (:func:`sellakit.kg.data.leak_free_triples`). The teacher protects
every KG (it is reused for each target); J2, scratch and a student for target ``T`` protect
``T``.

Example::

    >>> rule = data_rule(ms)                                   # doctest: +SKIP
    >>> triples, removed = rule.training("el", protect=("el",))  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from sellakit.kg.data import MultiSourceKG, canonical_ids, canonical_keys

__all__ = ["SELECTION_PER_KG", "DataRule", "data_rule"]

SELECTION_PER_KG = 1000


@dataclass
class DataRule:
    """The split of every KG into training, selection and test facts (see the module doc).

    Attributes:
        ms: the data.
        selection: KG name -> its selection facts (a fixed subset of valid, local ids).
        rest_of_valid: KG name -> the valid facts outside the selection (training facts).
        per_kg: selection size asked for; seed: the draw's seed.
    """

    ms: MultiSourceKG
    selection: dict[str, np.ndarray]
    rest_of_valid: dict[str, np.ndarray]
    per_kg: int
    seed: int
    _banned: dict = field(default_factory=dict, repr=False)

    def held_out(self, name: str) -> np.ndarray:
        """Test ∪ selection facts of KG ``name`` (local ids): what no model may train on."""
        return np.concatenate([self.ms.kgs[name].test, self.selection[name]])

    def protected(self, protect: Iterable[str] | None) -> dict[str, np.ndarray]:
        """Held-out facts of each KG in ``protect`` (None: every KG)."""
        return {k: self.held_out(k) for k in (self.ms.kgs if protect is None else protect)}

    @cached_property
    def canon(self) -> dict[str, np.ndarray]:
        """:func:`sellakit.kg.data.canonical_ids` of the data, computed once per rule."""
        return canonical_ids(self.ms)

    def _reexpressed(self, name: str, triples: np.ndarray, protect) -> np.ndarray:
        """Boolean mask: which of ``triples`` re-express a protected held-out fact."""
        keys = canonical_keys(triples, self.canon[name], self.ms.n_relations)
        return np.isin(keys, self.banned_keys(protect))

    def training(self, name: str, protect: Iterable[str] | None = None, *,
                 rest_of_valid: bool = True) -> tuple[np.ndarray, int]:
        """KG ``name``'s training facts (train ∪ rest of valid, duplicates dropped) minus every
        re-expression of a protected KG's held-out facts (the rule of
        :func:`sellakit.kg.data.leak_free_triples`); and how many were dropped.
        ``rest_of_valid=False``: train only (KEnS's and SS-AGA's target;
        :mod:`sellakit.kg.switches`)."""
        kg = self.ms.kgs[name]
        extra = [self.rest_of_valid[name]] if rest_of_valid else []
        facts = np.unique(np.concatenate([kg.train, *extra]), axis=0)
        dropped = self._reexpressed(name, facts, protect)
        return facts[~dropped], int(dropped.sum())

    def leaks(self, name: str, triples: np.ndarray, protect: Iterable[str] | None = None
              ) -> int:
        """How many of ``triples`` (local ids of KG ``name``) re-express a held-out fact of a
        protected KG: 0 for every training graph the kit builds (the leakage tests)."""
        return int(self._reexpressed(name, np.asarray(triples), protect).sum())

    def banned_keys(self, protect: Iterable[str] | None = None) -> np.ndarray:
        """Sorted canonical keys (:func:`sellakit.kg.data.canonical_keys`) of the protected
        KGs' held-out facts (kept per ``protect``: every model of a target asks again)."""
        key = None if protect is None else tuple(protect)
        if key not in self._banned:
            parts = [canonical_keys(facts, self.canon[k], self.ms.n_relations)
                     for k, facts in self.protected(key).items()]
            self._banned[key] = np.unique(np.concatenate(parts)) if parts else \
                np.zeros(0, np.int64)
        return self._banned[key]

    @property
    def fingerprint(self) -> str:
        """A short hash of every selection subset (recorded beside results)."""
        digest = hashlib.sha256(f"{self.per_kg}:{self.seed}".encode())
        for name in sorted(self.selection):
            digest.update(name.encode() + np.ascontiguousarray(self.selection[name]).tobytes())
        return digest.hexdigest()[:16]

    def summary(self) -> dict:
        """Per KG: training facts (everything protected), selection and test sizes."""
        return {name: {"train+rest_of_valid": int(len(kg.train) + len(self.rest_of_valid[name])),
                       "selection": int(len(self.selection[name])), "test": int(len(kg.test))}
                for name, kg in self.ms.kgs.items()}


def data_rule(ms: MultiSourceKG, per_kg: int = SELECTION_PER_KG, seed: int = 0) -> DataRule:
    """Draw each KG's selection subset once (``per_kg`` valid facts, ``seed``); a KG with
    fewer valid facts uses all of them for selection and trains on none."""
    rng = np.random.default_rng(seed)
    selection, rest = {}, {}
    for name, kg in ms.kgs.items():
        chosen = np.sort(rng.choice(len(kg.valid), min(per_kg, len(kg.valid)), replace=False))
        others = np.setdiff1d(np.arange(len(kg.valid)), chosen)
        selection[name], rest[name] = kg.valid[chosen], kg.valid[others]
    return DataRule(ms, selection, rest, per_kg, seed)
