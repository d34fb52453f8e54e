"""The finished parts of a long benchmark, kept beside its ``--out`` file so a killed run
resumes: ``rec-curve``, ``rec-grid``, ``rec-study``, ``rec-kg``, ``kg`` and ``kg-sweep`` all keep
theirs here (one store, one way to resume)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from sellakit.errors import ConfigError

__all__ = ["PartStore"]


class PartStore:
    """Finished parts of a long run, beside its ``--out`` file: ``<out>.parts/<name>.json``
    (the part's record) and ``.parquet`` (its per-row scores), each written atomically, the
    record last, so a part is either done or absent. ``settings`` must match the folder's
    (else :class:`ConfigError`: another run's parts are never mixed in)."""

    def __init__(self, out: str | Path, settings: dict):
        from sellakit.cache import atomic_file

        self.folder = Path(out).with_suffix(".parts")
        self.folder.mkdir(parents=True, exist_ok=True)
        settings = json.loads(json.dumps(settings, default=str))
        path = self.folder / "settings.json"
        if path.exists() and json.loads(path.read_text()) != settings:
            raise ConfigError(f"{self.folder} holds the parts of a run with other settings. "
                              "Fix: give another --out, or remove that folder to start again.")
        with atomic_file(path) as tmp:
            tmp.write_text(json.dumps(settings, indent=1))

    def done(self, name: str) -> bool:
        return (self.folder / f"{name}.json").exists()

    def save(self, name: str, record: dict, scores: pd.DataFrame) -> None:
        from sellakit.cache import atomic_file

        with atomic_file(self.folder / f"{name}.parquet") as tmp:
            scores.to_parquet(tmp, index=False)
        with atomic_file(self.folder / f"{name}.json") as tmp:
            tmp.write_text(json.dumps(record, indent=1, default=float))

    def read(self, name: str) -> tuple[dict, pd.DataFrame] | None:
        """One finished part's record and scores, or None when it is not done."""
        if not self.done(name):
            return None
        return (json.loads((self.folder / f"{name}.json").read_text()),
                pd.read_parquet(self.folder / f"{name}.parquet"))

    def load(self) -> tuple[dict[str, dict], pd.DataFrame]:
        """Every finished part's record, and all their scores."""
        names = sorted(p.stem for p in self.folder.glob("*.json") if p.stem != "settings")
        records = {n: json.loads((self.folder / f"{n}.json").read_text()) for n in names}
        frames = [pd.read_parquet(self.folder / f"{n}.parquet") for n in names]
        return records, pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
