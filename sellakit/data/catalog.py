"""The click-through data sets the kit knows by name, each on its CoLLM protocol split."""

from __future__ import annotations

from sellakit.data import amazon
from sellakit.data.movielens import load_movielens_1m
from sellakit.data.protocol import CTRSplit, collm_split
from sellakit.errors import ConfigError, DataError

__all__ = ["DATASETS", "load_split"]

#: Names :func:`load_split` accepts (and ``--dataset`` on the command line).
DATASETS = ("ml-1m", "amazon-book", "amazon-book-synthetic")


def load_split(dataset: str, *, amazon_ratings: str | None = None,
               amazon_meta: str | None = None, seed: int = 0) -> CTRSplit:
    """The CTR split of ``dataset`` (one of :data:`DATASETS`) on its CoLLM protocol.

    Raises:
        ConfigError: an unknown name. DataError: Amazon Book without its two files.
    """
    if dataset == "ml-1m":
        return collm_split(load_movielens_1m())
    if dataset == "amazon-book":
        if not (amazon_ratings and amazon_meta):
            raise DataError("amazon-book needs its two files: --amazon-ratings Books.csv and "
                            "--amazon-meta meta_Books.json (Amazon 2018), or amazon_ratings= "
                            "and amazon_meta= in Python. Offline, use amazon-book-synthetic.")
        ratings, items = amazon.load_amazon_books(amazon_ratings, amazon_meta)
        return amazon.amazon_book_split(ratings, items)
    if dataset == "amazon-book-synthetic":
        ratings, items = amazon.generate_amazon_book_synthetic(seed=seed)
        return amazon.amazon_book_split(ratings, items, name=amazon.SYNTHETIC_NAME)
    raise ConfigError(f"dataset={dataset!r} is not known; choose from {', '.join(DATASETS)}.")
