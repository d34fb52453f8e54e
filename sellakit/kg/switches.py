"""Protocol switches: how the target KG is trained and scored, to teach what each choice does
and to read published DBP-5L rows beside the kit's.

The kit's protocol (target trained on train + rest of valid, filter train + valid + test,
tails, every test fact) is one point of a small space; the published rows sit at others
(KEnS: target trained on train only, filter train tails; SS-AGA's code: raw ranks; IMKGC and
DMKGC: filter train + valid). Each switch is a row of :data:`SWITCHES`, its options rows of
:class:`Choice` (what each means, who uses it, what the code reads); the ``Literal`` types,
:class:`KGProtocol`'s validation and the command line's choices and help come from there.

Two partitions of the target's test facts:

* **cross-lingual duplicates** (:func:`cross_lingual_duplicates`): test facts that occur with
  the same relation in another KG's train + valid through the alignment (the data rule's
  canonical ids: the seed links joined transitively, plus DBP-5L's el/en line identity). The
  published multi-source protocols train on them (supporter KGs use train + valid); the kit's
  data rule drops them from training; ``duplicates="removed"`` scores only the other facts.
* **entity pair seen elsewhere** (:func:`pair_seen_elsewhere`): test facts whose two entities
  occur together in a training fact under another relation (or the other way round), in any KG
  through the alignment: where multi-source knowledge can help most.

Example::

    >>> from sellakit.kg.switches import KENS, KGProtocol
    >>> KENS.label
    'trained on train, filter train, tails, duplicates kept'
    >>> KGProtocol(filter="raw").changed()
    {'filter': 'raw'}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Literal

import numpy as np
import torch

from sellakit.config import Config
from sellakit.kg.data import KG, canonical_keys
from sellakit.kg.evaluate import evaluate
from sellakit.kg.protocol import DataRule

__all__ = ["Choice", "Switch", "SWITCHES", "KGProtocol", "KIT", "KENS", "switch_help",
           "target_training", "filter_triples", "protocol_ranks", "query_facts",
           "scored_queries", "cross_lingual_duplicates", "pair_seen_elsewhere",
           "joint_training"]


@dataclass(frozen=True)
class Choice:
    """One option of a switch.

    Attributes:
        help: what it means.
        used_by: who uses it (papers' code, the kit).
        splits: the target's splits it reads (training: trained on, ``rest_of_valid`` being the
            valid facts outside the selection subset; filter: whose known tails are removed).
        flag: direction: heads are ranked too; duplicates: duplicated test facts left out.
    """

    help: str
    used_by: str
    splits: tuple[str, ...] = ()
    flag: bool = False


@dataclass(frozen=True)
class Switch:
    """One protocol switch: its options and the kit's choice."""

    name: str
    what: str
    choices: Mapping[str, Choice]
    kit: str


SWITCHES: Mapping[str, Switch] = MappingProxyType({switch.name: switch for switch in (
    Switch("training", "the facts the target-only model trains on", MappingProxyType({
        "train": Choice("the target's train split only", "KEnS and SS-AGA (for the target)",
                        splits=("train",)),
        "train+valid": Choice("train plus the valid facts outside the selection subset",
                              "the kit; KEnS and SS-AGA for their supporter KGs",
                              splits=("train", "rest_of_valid"))}), kit="train+valid"),
    Switch("filter", "the target's known true tails removed before ranking", MappingProxyType({
        "raw": Choice("nothing removed", "SS-AGA's code (its default run)"),
        "train": Choice("train tails of (h, r)", "KEnS", splits=("train",)),
        "train+valid": Choice("train and valid tails", "IMKGC, DMKGC",
                              splits=("train", "valid")),
        "all": Choice("train, valid and test tails", "the kit, JMAC",
                      splits=("train", "valid", "test"))}), kit="all"),
    Switch("direction", "which side of a test fact is ranked", MappingProxyType({
        "tails": Choice("(h, r, ?) only", "every DBP-5L paper, the kit"),
        "both": Choice("tails and heads (reciprocal relations): twice the queries",
                       "the single-KG protocol (PyKEEN)", flag=True)}), kit="tails"),
    Switch("duplicates", "test facts with a cross-lingual duplicate", MappingProxyType({
        "kept": Choice("every test fact scored", "the kit and every paper"),
        "removed": Choice("only test facts without a duplicate in another KG's train + valid",
                          "no paper; a fair reading of multi-source rows whose supporter KGs "
                          "train on the duplicates", flag=True)}), kit="kept"),
)})

TrainingName = Literal[tuple(SWITCHES["training"].choices)]  # type: ignore[valid-type]
FilterName = Literal[tuple(SWITCHES["filter"].choices)]  # type: ignore[valid-type]
DirectionName = Literal[tuple(SWITCHES["direction"].choices)]  # type: ignore[valid-type]
DuplicatesName = Literal[tuple(SWITCHES["duplicates"].choices)]  # type: ignore[valid-type]


def switch_help(name: str) -> str:
    """The command line's help of switch ``name``: each option, what it means, who uses it."""
    switch = SWITCHES[name]
    return f"{switch.what}: " + "; ".join(f"{option}: {choice.help} [{choice.used_by}]"
                                          for option, choice in switch.choices.items())


@dataclass(frozen=True)
class KGProtocol(Config):
    """One choice per switch of :data:`SWITCHES` (checked when made); the default is the kit's."""

    training: TrainingName = SWITCHES["training"].kit
    filter: FilterName = SWITCHES["filter"].kit
    direction: DirectionName = SWITCHES["direction"].kit
    duplicates: DuplicatesName = SWITCHES["duplicates"].kit

    def choice(self, switch: str) -> Choice:
        """The :class:`Choice` this protocol makes for ``switch``."""
        return SWITCHES[switch].choices[getattr(self, switch)]

    def changed(self) -> dict[str, str]:
        """The switches set away from the kit's choice."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if getattr(self, f.name) != SWITCHES[f.name].kit}

    @property
    def label(self) -> str:
        """``'trained on train, filter train, tails, duplicates kept'``."""
        return (f"trained on {self.training}, filter {self.filter}, {self.direction}, "
                f"duplicates {self.duplicates}")


#: The kit's protocol (every switch at its ``kit`` choice).
KIT = KGProtocol()
#: KEnS's protocol for the target: trained on train only, train tails filtered, tails ranked.
KENS = KGProtocol(training="train", filter="train")


def target_training(rule: DataRule, target: str, training: TrainingName) -> np.ndarray:
    """The target's own training facts under ``training`` (the data rule protecting the
    target, as scratch's)."""
    rest = "rest_of_valid" in SWITCHES["training"].choices[training].splits
    return rule.training(target, (target,), rest_of_valid=rest)[0]


def filter_triples(kg: KG, filter: FilterName) -> np.ndarray:
    """The triples whose tails the ``filter`` choice removes before ranking (none: raw)."""
    splits = {"train": kg.train, "valid": kg.valid, "test": kg.test}
    chosen = [splits[name] for name in SWITCHES["filter"].choices[filter].splits]
    return np.concatenate(chosen) if chosen else np.zeros((0, 3), np.int64)


def protocol_ranks(score_tails: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], kg: KG,
                   n_relations: int, protocol: KGProtocol) -> np.ndarray:
    """Realistic ranks of every test query of ``kg`` under ``protocol``'s filter and direction
    (tails first, then heads; every fact: the duplicates switch is applied by
    :func:`scored_queries`)."""
    return evaluate(score_tails, kg.test, filter_triples(kg, protocol.filter),
                    n_candidates=kg.n_entities, n_relations=n_relations,
                    both=protocol.choice("direction").flag, return_ranks=True)["ranks"]


def query_facts(n_facts: int, direction: DirectionName) -> np.ndarray:
    """The test fact behind each query of :func:`protocol_ranks` (heads follow tails)."""
    sides = 2 if SWITCHES["direction"].choices[direction].flag else 1
    return np.tile(np.arange(n_facts), sides)


def scored_queries(protocol: KGProtocol, duplicates: np.ndarray) -> np.ndarray:
    """Boolean per query of :func:`protocol_ranks`: scored under ``protocol`` (every query, or
    those of facts without a cross-lingual duplicate, ``duplicates`` being
    :func:`cross_lingual_duplicates`)."""
    facts = query_facts(len(duplicates), protocol.direction)
    keep = ~duplicates if protocol.choice("duplicates").flag else np.ones(len(duplicates), bool)
    return keep[facts]


def cross_lingual_duplicates(rule: DataRule, target: str) -> np.ndarray:
    """Boolean per test fact of ``target``: the same fact (same relation, aligned entities)
    is in another KG's train or valid split."""
    ms = rule.ms
    keys = canonical_keys(ms.kgs[target].test, rule.canon[target], ms.n_relations)
    others = [canonical_keys(np.concatenate([kg.train, kg.valid]), rule.canon[name],
                             ms.n_relations)
              for name, kg in ms.kgs.items() if name != target]
    return np.isin(keys, np.concatenate(others)) if others else np.zeros(len(keys), bool)


def _pair_codes(triples: np.ndarray, canon: np.ndarray, n_relations: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Per triple, its unordered canonical entity pair (one int64) and a code of its relation
    and orientation (``r``, or ``r + n_relations`` when the head is the larger class id)."""
    triples = np.asarray(triples, dtype=np.int64).reshape(-1, 3)
    h, t = canon[triples[:, 0]], canon[triples[:, 2]]
    pair = np.minimum(h, t) * (1 << 31) + np.maximum(h, t)
    return pair, triples[:, 1] + n_relations * (h > t)


def pair_seen_elsewhere(rule: DataRule, target: str, training: Mapping[str, np.ndarray]
                        ) -> np.ndarray:
    """Boolean per test fact of ``target``: its two entities occur together in a fact of
    ``training`` (KG name -> local triples, e.g. :func:`joint_training`) other than the fact
    itself, i.e. under another relation or the other way round, through the alignment."""
    ms = rule.ms
    coded = [_pair_codes(triples, rule.canon[name], ms.n_relations)
             for name, triples in training.items()]
    records = np.unique(np.stack([np.concatenate([p for p, _ in coded]),
                                  np.concatenate([c for _, c in coded])], 1), axis=0)
    test_pair, test_code = _pair_codes(ms.kgs[target].test, rule.canon[target], ms.n_relations)
    if not len(records):
        return np.zeros(len(test_pair), bool)
    pairs, first, counts = np.unique(records[:, 0], return_index=True, return_counts=True)
    at = np.minimum(np.searchsorted(pairs, test_pair), len(pairs) - 1)
    found = pairs[at] == test_pair
    # one code only, and it is the fact's own: the pair is seen only as this very fact
    return found & ((counts[at] > 1) | (records[first[at], 1] != test_code))


def joint_training(rule: DataRule, target: str) -> dict[str, np.ndarray]:
    """Every KG's training facts with ``target`` protected: the graph a joint model retrained
    for ``target`` (J2) sees, where :func:`pair_seen_elsewhere` looks."""
    return {name: rule.training(name, (target,))[0] for name in rule.ms.kgs}
