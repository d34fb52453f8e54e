"""CF <-> LLM alignment: the contrastive trainer and the measures of agreement."""

from sellakit.align.contrastive import (AlignConfig, AlignedMF, AlignedTables, AlignResult,
                                        Projector, compare_alignment, info_nce, train_aligned_mf)
from sellakit.align.measures import (alignment_measures, alignment_uniformity, linear_cka,
                                     mutual_knn, own_cosine, own_ranks, pairwise_cosines,
                                     recall_by_group, retrieval_recall, state_geometry)

__all__ = ["AlignConfig", "AlignedMF", "AlignResult", "AlignedTables", "Projector", "info_nce",
           "train_aligned_mf",
           "compare_alignment",
           "alignment_measures", "alignment_uniformity", "linear_cka", "mutual_knn",
           "retrieval_recall", "state_geometry", "own_ranks", "recall_by_group", "own_cosine",
           "pairwise_cosines"]
