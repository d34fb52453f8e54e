"""Data sets and protocols: MovieLens (real), Amazon Book (real files or a named synthetic stand-in)."""

from sellakit.data.catalog import DATASETS, load_split
from sellakit.data.ml100k import film_multisource, load_ml100k_kg, ml100k_cold_items_split
from sellakit.data.movielens import MovieLens, load_movielens_1m, load_movielens_100k
from sellakit.data.protocol import COLLM_ML1M, CTRSplit, SplitSpec, collm_split, split_by_months
from sellakit.errors import DataError

__all__ = ["DataError", "MovieLens", "load_movielens_1m", "load_movielens_100k", "COLLM_ML1M",
           "CTRSplit", "SplitSpec", "collm_split", "split_by_months", "DATASETS", "load_split",
           "load_ml100k_kg", "ml100k_cold_items_split", "film_multisource"]
