"""Every published number the kit quotes, once, with its backbone, protocol and source.

Benchmark tables and notebooks read these rows and print them labelled *published*: they are
context for our measurements, never results of this kit. The sources:

* CoLLM Table II: Zhang et al., *CoLLM: Integrating Collaborative Embeddings into Large
  Language Models for Recommendation*, TKDE (arXiv 2310.19488);
* BinLLM Table 2: Zhang et al., *Text-like Encoding of Collaborative Information in Large
  Language Models for Recommendation*, ACL 2024 (arXiv 2406.03210);
* DMKGC Table 1: Sheng et al., *Conditional Diffusion Guided Knowledge Transfer for
  Multi-Domain KG Completion*, WWW 2026, which reprints TransE, RotatE, KEnS and SS-AGA.

Example::

    >>> from sellakit.published import published
    >>> [row.method for row in published("ml-1m", kind="cf")]
    ['MF', 'LightGCN', 'SASRec']
    >>> published("ml-1m", kind="llm")[0].label
    'TALLRec — published, CoLLM Table II (Vicuna-7B)'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Published", "PUBLISHED", "published", "llm_rec_context"]

COLLM_TABLE_II = "CoLLM Table II"
BINLLM_TABLE_2 = "BinLLM Table 2"
DMKGC_TABLE_1 = "DMKGC Table 1 reprint"
COLLM_PROTOCOL = "CoLLM's ML-1M / Amazon-Book CTR split, test rows, AUC and UAUC"
DBP5L_PROTOCOL = "DBP-5L tail prediction, filtered, as reported (filters differ from ours)"
#: What each DBP-5L method's released code does (research/dbp5l_anchors.md, section 1.2-1.3),
#: where it is known: ``sellakit bench kg-protocols`` prints it beside the row.
DBP5L_CODE_PROTOCOLS = {
    "TransE": "single-KG baseline as SS-AGA's table assembled it; tails; filter not stated",
    "RotatE": "single-KG baseline as SS-AGA's table assembled it; tails; filter not stated",
    "KEnS": "KEnS code: tails, train tails filtered; target on train, supporter KGs on train "
            "+ valid (holding many of the target's test facts through the links)",
    "SS-AGA": "SS-AGA code: tails, raw ranks (default run); target on train, supporter KGs on "
              "train + valid",
    "DMKGC": "DMKGC code: tails, train + valid tails filtered; one joint model over the five "
             "KGs; the released code keeps the epoch of best test MRR",
}


@dataclass(frozen=True)
class Published:
    """One published row.

    Attributes:
        method: as the paper names it.
        dataset: ``ml-1m``, ``amazon-book`` or ``dbp5l``.
        kind: ``cf`` (a CF model), ``llm`` (an LLM recommender) or ``kg`` (KG completion).
        metrics: as reported; CTR rows as fractions (``auc``, ``uauc``), KG rows in % (``mrr``,
            ``hits@1``, ``hits@10``; a metric the paper does not report is absent).
        backbone: the LLM behind it, where there is one.
        target: the target KG (DBP-5L language), where there is one.
        source: paper and table.
        protocol: what was measured.
    """

    method: str
    dataset: str
    kind: Literal["cf", "llm", "kg"]
    metrics: dict[str, float] = field(hash=False)
    source: str
    protocol: str
    backbone: str | None = None
    target: str | None = None

    @property
    def label(self) -> str:
        """``"TALLRec — published, CoLLM Table II (Vicuna-7B)"``: how tables name the row."""
        backbone = f" ({self.backbone})" if self.backbone else ""
        return f"{self.method} — published, {self.source}{backbone}"


def _ctr(method: str, dataset: str, kind: str, auc: float, uauc: float, source: str,
         backbone: str | None = None) -> Published:
    return Published(method, dataset, kind, {"auc": auc, "uauc": uauc}, source, COLLM_PROTOCOL,
                     backbone)


def _dbp5l(method: str, rows: dict[str, tuple[float, float, float | None]]) -> list[Published]:
    """``rows``: language -> (H@1, H@10, MRR) in %, MRR None where not reported."""
    return [Published(method, "dbp5l", "kg",
                      {k: v for k, v in zip(("hits@1", "hits@10", "mrr"), values)
                       if v is not None},
                      DMKGC_TABLE_1, DBP5L_CODE_PROTOCOLS.get(method, DBP5L_PROTOCOL),
                      target=language)
            for language, values in rows.items()]


PUBLISHED: tuple[Published, ...] = (
    _ctr("MF", "ml-1m", "cf", 0.6482, 0.6361, COLLM_TABLE_II),
    _ctr("LightGCN", "ml-1m", "cf", 0.5959, 0.6499, COLLM_TABLE_II),
    _ctr("SASRec", "ml-1m", "cf", 0.7078, 0.6884, COLLM_TABLE_II),
    _ctr("MF", "amazon-book", "cf", 0.7134, 0.5565, COLLM_TABLE_II),
    _ctr("LightGCN", "amazon-book", "cf", 0.7103, 0.5639, COLLM_TABLE_II),
    _ctr("SASRec", "amazon-book", "cf", 0.6887, 0.5714, COLLM_TABLE_II),
    _ctr("TALLRec", "ml-1m", "llm", 0.7097, 0.6818, COLLM_TABLE_II, "Vicuna-7B"),
    _ctr("CoLLM-MF", "ml-1m", "llm", 0.7295, 0.6875, COLLM_TABLE_II, "Vicuna-7B"),
    _ctr("BinLLM", "ml-1m", "llm", 0.7425, 0.6956, BINLLM_TABLE_2, "Vicuna-7B"),
    *_dbp5l("TransE", {"el": (13.1, 43.7, 24.3), "ja": (21.1, 48.5, 25.3),
                       "es": (13.5, 45.0, 24.4), "fr": (17.5, 48.8, 27.6),
                       "en": (7.3, 29.3, 16.9)}),
    *_dbp5l("RotatE", {"el": (14.5, 36.2, 26.2), "ja": (26.4, 60.2, 39.8),
                       "es": (21.2, 53.9, 33.8), "fr": (23.2, 55.5, 35.1),
                       "en": (12.3, 30.4, 20.7)}),
    *_dbp5l("KEnS", {"el": (28.1, 56.9, None), "ja": (32.1, 65.3, None),
                     "es": (23.6, 60.1, None), "fr": (25.5, 62.9, None),
                     "en": (15.1, 39.8, None)}),
    *_dbp5l("SS-AGA", {"el": (30.8, 58.6, 35.3), "ja": (34.6, 66.9, 42.9),
                       "es": (25.5, 61.9, 36.6), "fr": (27.1, 65.5, 38.3),
                       "en": (16.3, 41.3, 23.1)}),
    *_dbp5l("DMKGC", {"el": (41.9, 91.0, 61.0), "ja": (42.0, 82.4, 56.3),
                      "es": (33.0, 77.7, 49.1), "fr": (38.6, 82.3, 54.2),
                      "en": (20.9, 64.2, 36.3)}),
)


def published(dataset: str, *, kind: str | None = None, target: str | None = None
              ) -> list[Published]:
    """The published rows of ``dataset`` (``amazon_book`` and ``amazon-book`` alike), of one
    ``kind`` and ``target`` when given, in the order above."""
    dataset = dataset.replace("_", "-")
    return [row for row in PUBLISHED
            if row.dataset == dataset and kind in (None, row.kind)
            and target in (None, row.target)]


def llm_rec_context(dataset: str) -> list[Published]:
    """The published rows an LLM-recommender table stands beside: MF and the LLM methods."""
    return [row for row in published(dataset) if row.kind == "llm" or row.method == "MF"]
