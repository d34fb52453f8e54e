"""Write a :class:`~sellakit.data.protocol.CTRSplit` for other code bases.

* ``collm``: ``train_ood2.pkl``, ``valid_ood2.pkl``, ``test_ood2.pkl``, pandas pickles with
  CoLLM's columns (``uid, iid, label, timestamp, his, his_title, title, flag, not_cold``), so
  CoLLM's and SeLLa-Rec's own scripts read the kit's split. As in CoLLM's files, ``his`` starts
  with the padding id 0 and ``his_title`` with an empty title; ``flag`` holds the month index.
* ``parquet``: ``train.parquet``, ``valid.parquet``, ``test.parquet`` with the same columns,
  plus ``items.parquet`` (iid, item key, title) for everyone else.

The folder is written atomically (staged beside it, then renamed whole): a failed or interrupted
export leaves no partial files behind; stale staging folders are swept on the next export. Only a
new or empty folder, or one an earlier export made, is written: nothing of a user's is deleted.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from sellakit.data.protocol import CTRSplit
from sellakit.errors import ConfigError
from sellakit.output import MARKER, check_output_dir, replace_dir

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


def export_split(split: CTRSplit, out_dir: str | os.PathLike, fmt: str = "collm", *,
                 force: bool = False) -> list[Path]:
    """Write ``split`` into ``out_dir`` as ``"collm"`` pickles or ``"parquet"``; return the files.

    The files are written into a staging folder beside ``out_dir``, which then replaces it
    whole, so an interrupted export leaves the old folder (or none), never a mix. A folder of
    an earlier export (it carries :data:`sellakit.output.MARKER`) is replaced only with
    ``force``; a folder holding anyone else's files, a link, the working directory, the home
    folder or a folder of the repository is refused (:func:`sellakit.output.check_output_dir`).
    """
    if fmt not in {"collm", "parquet"}:
        raise ConfigError(f"format {fmt!r}: use 'collm' or 'parquet'.")
    out = check_output_dir(out_dir, option="the export folder", replace=force)
    with replace_dir(out) as staging:
        for name, frame in split.frames().items():
            table = collm_frame(split, frame)
            if fmt == "collm":
                table.to_pickle(staging / f"{name}_ood2.pkl")
            else:
                table.to_parquet(staging / f"{name}.parquet")
        if fmt == "parquet":
            pd.DataFrame({"iid": range(1, split.n_items), "item": split.item_ids,
                          "title": split.item_titles[1:]}).to_parquet(staging / "items.parquet")
        names = sorted(path.name for path in staging.iterdir() if path.name != MARKER)
    return [Path(out_dir) / name for name in names]
