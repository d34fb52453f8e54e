"""The click-through data sets the kit knows by name, each on its CoLLM protocol split: one row
per data set (:data:`DATASET_TABLE`), read by :func:`load_split`, the command line's
``--dataset`` choices and the prompts' words for the data set's items.

Adding a data set is one :class:`Dataset` row (plus its loader)::

    Dataset("ml-100k", _load_ml100k, MOVIE_WORDS, split_name="ml-100k", spec=ML100K_SPEC)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from sellakit.data import amazon, ml100k
from sellakit.data.movielens import load_movielens_1m
from sellakit.data.protocol import COLLM_ML1M, CTRSplit, SplitSpec, collm_split
from sellakit.errors import ConfigError, DataError

__all__ = ["DATASETS", "DATASET_TABLE", "Dataset", "ItemWords", "MOVIE_WORDS", "load_split",
           "dataset_of_split", "item_words"]


@dataclass(frozen=True)
class ItemWords:
    """How prompts speak of a data set's items.

    Attributes:
        noun: one item (``"movie"``: *Will the user enjoy the movie "..."?*).
        plural: several items (``"movies"``: *high ratings to the following movies*).
        label: the item prompt's label of a title (``"Movie"``: ``"Movie: Heat (1995)"``).
    """

    noun: str
    plural: str
    label: str

    @property
    def item_template(self) -> str:
        """The prompt whose last hidden state is an item's semantic vector
        (:func:`sellakit.llm.item_semantic_embeddings`), ``"Movie: {title}"``."""
        return f"{self.label}: {{title}}"


#: MovieLens' words, and the words of a split the table does not list (stand-ins built in
#: tests): the wording the kit's prompts have always used.
MOVIE_WORDS = ItemWords("movie", "movies", "Movie")
BOOK_WORDS = ItemWords("book", "books", "Book")


@dataclass(frozen=True)
class Dataset:
    """One data set :func:`load_split` can load.

    Attributes:
        name: as ``load_split`` and ``--dataset`` spell it.
        load: ``load(amazon_ratings=, amazon_meta=, seed=)`` -> its split (arguments it does not
            need are ignored).
        words: how prompts speak of its items.
        split_name: the name its split carries (``CTRSplit.name``), by which a split finds
            its row.
        spec: the months and positive rule of its split (``CTRSplit.spec``).
        published: its key in :mod:`sellakit.published` (None: no published rows, e.g. a
            stand-in).
    """

    name: str
    load: Callable[..., CTRSplit]
    words: ItemWords
    split_name: str
    spec: SplitSpec | None = None
    published: str | None = None


def _load_ml1m(**_) -> CTRSplit:
    return collm_split(load_movielens_1m())


def _load_ml100k(**_) -> CTRSplit:
    return ml100k.ml100k_split()


def _load_ml100k_cold_items(*, seed: int = ml100k.COLD_ITEMS_SEED, **_) -> CTRSplit:
    return ml100k.ml100k_cold_items_split(seed=seed)


def _load_amazon_book(*, amazon_ratings: str | None = None, amazon_meta: str | None = None,
                      **_) -> CTRSplit:
    if not (amazon_ratings and amazon_meta):
        raise DataError("amazon-book needs its two files: --amazon-ratings Books.csv and "
                        "--amazon-meta meta_Books.json (Amazon 2018), or amazon_ratings= "
                        "and amazon_meta= in Python. Offline, use amazon-book-synthetic.")
    ratings, items = amazon.load_amazon_books(amazon_ratings, amazon_meta)
    return amazon.amazon_book_split(ratings, items)


def _load_amazon_book_synthetic(*, seed: int = 0, **_) -> CTRSplit:
    ratings, items = amazon.generate_amazon_book_synthetic(seed=seed)
    return amazon.amazon_book_split(ratings, items, name=amazon.SYNTHETIC_NAME)


#: Every data set by name, in the order the command line lists them.
DATASET_TABLE: Mapping[str, Dataset] = MappingProxyType({row.name: row for row in (
    Dataset("ml-1m", _load_ml1m, MOVIE_WORDS, split_name="ml-1m", spec=COLLM_ML1M,
            published="ml-1m"),
    Dataset("amazon-book", _load_amazon_book, BOOK_WORDS, split_name="amazon_book",
            spec=amazon.AMAZON_BOOK_SPEC, published="amazon-book"),
    Dataset("amazon-book-synthetic", _load_amazon_book_synthetic, BOOK_WORDS,
            split_name=amazon.SYNTHETIC_NAME, spec=amazon.AMAZON_BOOK_SPEC),
    Dataset("ml-100k", _load_ml100k, MOVIE_WORDS, split_name="ml-100k",
            spec=ml100k.ML100K_SPEC),
    # ``seed`` (load_split's) draws the held-out fifth of the movies
    Dataset("ml-100k-cold-items", _load_ml100k_cold_items, MOVIE_WORDS,
            split_name="ml-100k-cold-items", spec=ml100k.ML100K_SPEC),
)})

#: Names :func:`load_split` accepts (and ``--dataset`` on the command line).
DATASETS = tuple(DATASET_TABLE)


def load_split(dataset: str, *, amazon_ratings: str | None = None,
               amazon_meta: str | None = None, seed: int = 0) -> CTRSplit:
    """The CTR split of ``dataset`` (one of :data:`DATASETS`) on its CoLLM protocol.

    Raises:
        ConfigError: an unknown name. DataError: Amazon Book without its two files.
    """
    if dataset not in DATASET_TABLE:
        raise ConfigError(f"dataset={dataset!r} is not known; choose from "
                          f"{', '.join(DATASETS)}.")
    return DATASET_TABLE[dataset].load(amazon_ratings=amazon_ratings, amazon_meta=amazon_meta,
                                       seed=seed)


def dataset_of_split(split_name: str) -> Dataset | None:
    """The row whose split carries ``split_name`` (``CTRSplit.name``), None when none does."""
    return next((row for row in DATASET_TABLE.values() if row.split_name == split_name), None)


def item_words(split_name: str) -> ItemWords:
    """How prompts speak of the items of the split named ``split_name``: its data set's words,
    :data:`MOVIE_WORDS` for a split the table does not list."""
    row = dataset_of_split(split_name)
    return MOVIE_WORDS if row is None else row.words
