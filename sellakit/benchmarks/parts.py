"""The finished parts of a long benchmark, kept beside its ``--out`` file so a killed run
resumes: ``rec-curve``, ``rec-grid``, ``rec-study``, ``rec-kg``, ``kg`` and ``kg-sweep`` all keep
theirs here (one store, one way to resume). Each part also records how much of the machine it
had (:meth:`PartStore.hosts`), so a table can say which of its times were taken beside other
work."""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from sellakit.errors import ConfigError

__all__ = ["PartStore", "HOSTS_FILE"]

#: One JSON line per written part: when it finished and the CPU it had (:meth:`PartStore.save`).
HOSTS_FILE = "hosts.jsonl"


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
        self._since = (time.perf_counter(), _cpu_seconds())
        self._host_lock = threading.Lock()  # parts of chains run side by side (bench series)

    def done(self, name: str) -> bool:
        return (self.folder / f"{name}.json").exists()

    def save(self, name: str, record: dict, scores: pd.DataFrame) -> None:
        from sellakit.cache import atomic_file

        with atomic_file(self.folder / f"{name}.parquet") as tmp:
            scores.to_parquet(tmp, index=False)
        with atomic_file(self.folder / f"{name}.json") as tmp:
            tmp.write_text(json.dumps(record, indent=1, default=float))
        with self._host_lock:
            self._log_host(name)

    def _log_host(self, name: str) -> None:
        """Append the part's CPU share since the store opened or the last part was written:
        this process's CPU seconds (its finished child processes' included, such as a
        notebook's kernel) over wall seconds x torch threads (near 1: the run had the
        threads it asked for; well below 1 on a busy machine: other work took the cores) and
        the load average at its end."""
        import torch

        wall = time.perf_counter() - self._since[0]
        cpu = _cpu_seconds() - self._since[1]
        threads = torch.get_num_threads()
        try:
            load = [round(x, 2) for x in os.getloadavg()]
        except (AttributeError, OSError):  # Windows has no load average
            load = None
        line = {"part": name,
                "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "threads": threads,
                "cpu_share": round(cpu / max(wall * threads, 1e-9), 3),
                "load_average": load, "cpus": os.cpu_count()}
        with open(self.folder / HOSTS_FILE, "a") as log:
            log.write(json.dumps(line) + "\n")
        self._since = (time.perf_counter(), _cpu_seconds())

    @staticmethod
    def hosts(out: str | Path) -> dict[str, dict]:
        """``{part: its last host line}`` of the parts beside ``out`` (empty without parts)."""
        path = Path(out).with_suffix(".parts") / HOSTS_FILE
        if not path.exists():
            return {}
        out_lines = {}
        for text in path.read_text().splitlines():
            try:
                line = json.loads(text)
            except json.JSONDecodeError:  # a line cut by a kill: that part has no host record
                continue
            out_lines[line["part"]] = line
        return out_lines

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


def _cpu_seconds() -> float:
    """CPU seconds of this process and of its finished (reaped) child processes."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system
