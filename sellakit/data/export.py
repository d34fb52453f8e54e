"""Write a :class:`~sellakit.data.protocol.CTRSplit` for other code bases.

* ``collm``: ``train_ood2.pkl``, ``valid_ood2.pkl``, ``test_ood2.pkl``, pandas pickles with
  CoLLM's columns (``uid, iid, label, timestamp, his, his_title, title, flag, not_cold``), so
  CoLLM's and SeLLa-Rec's own scripts read the kit's split. As in CoLLM's files, ``his`` starts
  with the padding id 0 and ``his_title`` with an empty title; ``flag`` holds the month index.
* ``parquet``: ``train.parquet``, ``valid.parquet``, ``test.parquet`` with the same columns,
  plus ``items.parquet`` (iid, item key, title) for everyone else.

The folder is written atomically: a failed export leaves no partial files behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pandas as pd

from sellakit.data.protocol import CTRSplit
from sellakit.errors import ConfigError

__all__ = ["export_split", "collm_frame"]


def collm_frame(split: CTRSplit, frame: pd.DataFrame) -> pd.DataFrame:
    """One split in CoLLM's column layout."""
    titles = split.item_titles
    his = [[0, *map(int, h)] for h in frame.his]
    return pd.DataFrame({
        "uid": frame.uid.to_numpy(), "iid": frame.iid.to_numpy(),
        "label": frame.label.to_numpy(), "timestamp": frame.timestamp.to_numpy(),
        "his": his, "his_title": [[titles[i] for i in h] for h in his],
        "title": titles[frame.iid.to_numpy()], "flag": frame.month.to_numpy(),
        "not_cold": frame.not_cold.to_numpy(),
    })


def export_split(split: CTRSplit, out_dir: str | os.PathLike, fmt: str = "collm") -> list[Path]:
    """Write ``split`` into ``out_dir`` as ``"collm"`` pickles or ``"parquet"``; return the files."""
    if fmt not in {"collm", "parquet"}:
        raise ConfigError(f"format {fmt!r}: use 'collm' or 'parquet'.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=out))
    try:
        for name, frame in split.frames().items():
            table = collm_frame(split, frame)
            if fmt == "collm":
                table.to_pickle(staging / f"{name}_ood2.pkl")
            else:
                table.to_parquet(staging / f"{name}.parquet")
        if fmt == "parquet":
            pd.DataFrame({"iid": range(1, split.n_items), "item": split.item_ids,
                          "title": split.item_titles[1:]}).to_parquet(staging / "items.parquet")
        written = []
        for path in sorted(staging.iterdir()):
            os.replace(path, out / path.name)
            written.append(out / path.name)
        return written
    finally:
        shutil.rmtree(staging, ignore_errors=True)
