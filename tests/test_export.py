"""Export of a split in CoLLM's pickle layout and as parquet."""

from __future__ import annotations

import pandas as pd
import pytest

from sellakit.data.export import export_split

COLLM_COLUMNS = ["uid", "iid", "label", "timestamp", "his", "his_title", "title", "flag",
                 "not_cold"]


def test_collm_pickles(ml1m_split, tmp_path):
    written = export_split(ml1m_split, tmp_path, "collm")
    assert sorted(p.name for p in written) == ["test_ood2.pkl", "train_ood2.pkl",
                                               "valid_ood2.pkl"]
    train = pd.read_pickle(tmp_path / "train_ood2.pkl")
    assert list(train.columns) == COLLM_COLUMNS and len(train) == 33_891
    row = train.iloc[100]
    assert row.his[0] == 0 and row.his_title[0] == ""
    assert len(row.his) == len(row.his_title)
    assert row.title == ml1m_split.item_titles[row.iid]
    assert not list(tmp_path.parent.glob(f".{tmp_path.name}.*"))  # no staging left


def test_export_replaces_only_its_own_folder_and_only_when_forced(ml1m_split, tmp_path):
    from sellakit.errors import ConfigError
    from sellakit.output import MARKER

    out = tmp_path / "out"
    export_split(ml1m_split, out, "collm")  # a new folder: the kit's, with its marker
    assert (out / MARKER).is_file()
    with pytest.raises(ConfigError, match="already holds files.*--force"):
        export_split(ml1m_split, out, "parquet")
    export_split(ml1m_split, out, "parquet", force=True)  # replaced whole, no mix
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "items.parquet", "test.parquet",
                                                     "train.parquet", "valid.parquet"]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="did not write.*never deletes them"):
        export_split(ml1m_split, mine, "parquet", force=True)  # --force never deletes theirs
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    assert not list(tmp_path.glob(".*"))  # no staging left


def test_parquet(ml1m_split, tmp_path):
    export_split(ml1m_split, tmp_path, "parquet")
    test = pd.read_parquet(tmp_path / "test.parquet")
    assert len(test) == 7_331 and test.not_cold.sum() == 4_153
    items = pd.read_parquet(tmp_path / "items.parquet")
    assert len(items) == 3_255 and items.iid.min() == 1


def test_export_leaves_a_users_old_dotfiles_beside_the_folder(small_split, tmp_path):
    """The kit sweeps only its own stale temporaries: a user's ``.out.bak`` from last year
    beside the target survives an export."""
    import os

    mine = tmp_path / ".out.bak"
    mine.write_text("keep me")
    os.utime(mine, (0, 0))  # far older than the hour after which the kit's temporaries go
    export_split(small_split, tmp_path / "out", "parquet")
    assert mine.read_text() == "keep me"
