"""Multi-source knowledge graphs: DBP-5L (real), PyKEEN's bundled sets, a *derived* split.

A :class:`MultiSourceKG` holds several KGs (each with its own local entity ids and
train/valid/test triples ``(head, relation, tail)``), one relation vocabulary shared by all,
and entity alignment links between pairs of KGs.

* :func:`load_dbp5l` reads DBP-5L (EL, JA, ES, FR, EN; KEnS release) from, in order, a folder
  (``path=`` / ``--data-dir``), ``$SELLAKIT_DBP5L``, the kit's cache, or a download from the
  public KEnS GitHub repository when online. Every file is checked against its pinned sha256.
* :func:`load_multisource` is what notebooks 06-07 call: DBP-5L where any of those has it, else
  the derived stand-in below, with a ``note`` saying how to get the real benchmark.
* :func:`load_pykeen` reads Nations, Kinships or UMLS from the PyKEEN wheel (offline).
* :func:`derived_multisource` cuts one of those into overlapping sources with renamed ids and a
  held-out part of the alignment. Its name always contains ``derived``: it is a stand-in for
  quick runs and tests, not a real multi-source benchmark.

Leakage: :func:`leak_free_triples` removes from a set of triples every fact that, re-expressed
through the alignment, is a held-out fact of some KG; :mod:`sellakit.kg.protocol` says which
facts are held out (test and a fixed selection subset of valid) for every model.

Example::

    >>> ms = derived_multisource("nations", n_sources=3, seed=0)  # doctest: +SKIP
    >>> ms.name                                                    # doctest: +SKIP
    'nations-derived-3'
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sellakit.cache import Asset, atomic_dir, cache_dir, fetch, lock, sha256_of
from sellakit.errors import CacheError, DataError

__all__ = ["KG", "MultiSourceKG", "DataError", "DBP5L_LANGUAGES", "DBP5L_SHA256", "DBP5L_ENV",
           "load_dbp5l", "locate_dbp5l", "load_multisource", "load_pykeen", "derived_multisource",
           "canonical_ids", "canonical_keys", "leak_free_triples", "entity_offsets", "linked_roots"]

DBP5L_LANGUAGES = ("el", "ja", "es", "fr", "en")
DBP5L_PAIRS = ("el-en", "el-es", "el-fr", "el-ja", "en-fr", "es-en", "es-fr", "ja-en", "ja-es",
               "ja-fr")
#: Raw-file sites of the KEnS repository (Chen et al., Findings of EMNLP 2020), tried in order.
DBP5L_URLS = ("https://raw.githubusercontent.com/stasl0217/KEnS/master/data/{file}",
              "https://raw.githubusercontent.com/stasl0217/KEnS/main/data/{file}")
#: sha256 of every DBP-5L file we read (from the release's files; see SHA256SUMS).
DBP5L_SHA256 = {
    "kg/el-test.tsv": "5a92d7bf13cf757fea735cf6f1627dc2c3b3d7a9dca4d0193849d74355151da2",
    "kg/el-train.tsv": "5d3da01697b17adbf7e52ab9f7c69de86e26354f6563d6538f9e7a9a1a660a57",
    "kg/el-val.tsv": "3d17aaf605f382ba6ec35e06242f65304262aaf60da26cdea8754b7bbf319e4d",
    "kg/en-test.tsv": "7041e57ab44cae2d4554c5aad2888ca7c9f28e8111c925430d6cf12a9981257c",
    "kg/en-train.tsv": "6743c64b7522e12c9e8e9a96d27114e1dee81c5cc35bb2ede9bb6095ad70a4de",
    "kg/en-val.tsv": "9079d8e43e6b09c2ebf83a678a73b1de65332198a283f440ec8d332eeecb5cbf",
    "kg/es-test.tsv": "ca4d17f24556935d566f3f4fc6f51a25aef78239a67c65d1df6f826c8088a42e",
    "kg/es-train.tsv": "4d6439b9776b7f2d9d8e774c84acc8333c492a3380d97cf9cbf708694893e619",
    "kg/es-val.tsv": "fa84460c562107ada7485c12030ddf7c57cbc30ab319e3362dbfdd9c1e2e3f9b",
    "kg/fr-test.tsv": "f39b32d4222f5a903fa07d4f687a2e92e0a054a2aaf8fce2e16151af7b9781b9",
    "kg/fr-train.tsv": "26b587ef18c8ae8190dec97fdacf0aad3500564715c84f4d0178125563c3b4c2",
    "kg/fr-val.tsv": "839140da5b0f7cba17d9ea856be2094a91618a3b389433eed814b6a79bedb2d4",
    "kg/ja-test.tsv": "6efc4c20fc343ac4c5813d28e850d8ca46b2da8f452cc25e39c3d57cef312e28",
    "kg/ja-train.tsv": "bbc337115cd5ef6db3f98b316fe8d171f3d20bbfc7b70076758e585c34766c1c",
    "kg/ja-val.tsv": "eff9a10e9300d222444433ac6a930882b5905bb6caad1484425914ea6921ad63",
    "seed_alignlinks/el-en.tsv": "523370fba7580bb10b8e9dd5f3788d73664fe191def69b7add0695525cbebcb8",
    "seed_alignlinks/el-es.tsv": "00c744cf498a5d34f31598f1a76c9d36120591f80d2dba8b927901fbd6dc9f0e",
    "seed_alignlinks/el-fr.tsv": "f2214d7f7978c8c454f16b6b8a76c1c0b86255dcc98e098bedba538ed7b1339a",
    "seed_alignlinks/el-ja.tsv": "103baf3cc4896af82d03e9d65fe2278a63e0d67145af2b78b16919461585e43e",
    "seed_alignlinks/en-fr.tsv": "1970e21b82e09a50b944eb6fa5d691fac102563fc6177b5e6491931920afe6c1",
    "seed_alignlinks/es-en.tsv": "e92ad7d75818e851f8d1860bd6ec5d5c7f3491a27c49a8fc8045ed7eb000202c",
    "seed_alignlinks/es-fr.tsv": "c1f892d7c015fdf7ae41207c50e6e6fff0c1144411e810bd9ed221bf8309dd75",
    "seed_alignlinks/ja-en.tsv": "04a009f51f6f9e372dbd98bb1f5af6978db32df1575cd84be9107ed97341bd53",
    "seed_alignlinks/ja-es.tsv": "3e84cf0f4540bf2e7b60854ba644c7c61fce8e6395a2c9f0fee9b942fd86b252",
    "seed_alignlinks/ja-fr.tsv": "c032f15074aede29ef9bee0276e51eb412272d64e54991df17241351ce8527f4",
    "entity/el.tsv": "d9db5a9a1faae6d3acb2c811130a1a7a8c8e325c636695f613a76117e3878013",
    "entity/en.tsv": "37560dfa953f0a485f56b1f085b29a95c63ce153d073e7e651fc71cec0733aa5",
    "entity/es.tsv": "b0fda6cbf9c58b1e1637740aa266ca9dbc2162a3dd52a170bf2dc848b8f80b50",
    "entity/fr.tsv": "0ed055479431f6c15db29b98142ba95c846b37cdfd5f449b8b64020c30919ecb",
    "entity/ja.tsv": "c2a69c58d8c0aaaa4394ea693d36738e5c3d83486a86b418dda29ccf9b2868f4",
    "relations.txt": "2b16826c685ac784792c735e789ea3b19d40a10cbdee9fffe04915d3abb588a8",
}


@dataclass
class KG:
    """One knowledge graph: local entity ids ``0..n_entities-1``; triples as ``(n, 3)`` int64."""

    name: str
    n_entities: int
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    entity_labels: list[str] | None = None
    n_relations: int | None = None  # known for a single-source set (PyKEEN's)
    relation_labels: list[str] | None = None

    def all_triples(self) -> np.ndarray:
        """Train, valid and test stacked (the filter set of the filtered protocol)."""
        return np.concatenate([self.train, self.valid, self.test])

    def __repr__(self) -> str:
        return (f"KG({self.name!r}: {self.n_entities:,} entities, train {len(self.train):,}, "
                f"valid {len(self.valid):,}, test {len(self.test):,})")


@dataclass
class MultiSourceKG:
    """Several KGs over one relation vocabulary, with alignment links between pairs.

    Attributes:
        name: contains ``derived`` for a split cut from a single-source set.
        kgs: KG name -> :class:`KG` (local entity ids).
        n_relations: size of the shared relation vocabulary.
        links: ``(a, b)`` -> ``(n, 2)`` array of (entity in ``a``, entity in ``b``): the links a
            model may train on.
        heldout_links: links hidden from training (alignment test), same layout; may be empty.
        same_entities: pairs known to be one entity that are *not* training links (DBP-5L's
            el and en entity files share their line numbers); used by the leakage rule only.
        relation_labels: names of the relations, when known.
        source: where the files came from (a folder, or what a derived split was cut from).
        note: why this data was chosen, when it replaces what was asked for (the stand-in).
    """

    name: str
    kgs: dict[str, KG]
    n_relations: int
    links: dict[tuple[str, str], np.ndarray]
    heldout_links: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    same_entities: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    relation_labels: list[str] | None = None
    source: str = ""
    note: str = ""

    @property
    def derived(self) -> bool:
        return "derived" in self.name

    @property
    def title(self) -> str:
        """What figure titles and table captions call the data: ``DBP-5L``, or the stand-in's
        name marked as derived."""
        if self.name == "dbp5l":
            return "DBP-5L"
        return f"{self.name} (derived stand-in)" if self.derived else self.name

    def summary(self):
        """One row per KG: entities, triples per split, links to the others."""
        import pandas as pd

        rows = []
        for name, kg in self.kgs.items():
            n_links = sum(len(v) for (a, b), v in self.links.items() if name in (a, b))
            rows.append({"kg": name, "entities": kg.n_entities, "train": len(kg.train),
                         "valid": len(kg.valid), "test": len(kg.test), "links": n_links})
        return pd.DataFrame(rows).set_index("kg")

    def __repr__(self) -> str:
        n_links = sum(len(v) for v in self.links.values())
        return (f"MultiSourceKG({self.name!r}: {', '.join(self.kgs)}; {self.n_relations} "
                f"relations; {n_links:,} links; from {self.source})")


# ----------------------------------------------------------------------------- DBP-5L

#: The environment variable that points the kit at a local DBP-5L folder (the KEnS ``data/``).
DBP5L_ENV = "SELLAKIT_DBP5L"
DBP5L_HOME = "https://github.com/stasl0217/KEnS (folder data/)"
#: The stand-in notebooks 06-07 use when DBP-5L cannot be had (see :func:`load_multisource`).
STANDIN_BASE = "umls"


def _cached_dbp5l() -> Path:
    return cache_dir() / "datasets" / "dbp5l"


def _is_complete(root: Path) -> bool:
    """Every file present and matching its pin (a cached copy is checked like a given one)."""
    try:
        _verify_folder(root, "the cache")
    except DataError:
        return False
    return True


def _verify_folder(root: Path, given_as: str) -> None:
    """Raise :class:`DataError` unless ``root`` holds every DBP-5L file with its sha256."""
    if not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "does not exist"
        raise DataError(
            f"DBP-5L folder {root} ({given_as}) {what}. Fix: pass the folder that holds "
            "kg/, entity/, seed_alignlinks/ and relations.txt of the KEnS release "
            f"(--data-dir DIR on the command line, path= in Python, or {DBP5L_ENV}=DIR), or "
            f"leave it out to download the files from {DBP5L_HOME} when online.")
    for rel, digest in DBP5L_SHA256.items():
        file = root / rel
        if not file.exists():
            raise DataError(f"DBP-5L file {file} is missing ({given_as}). Fix: copy the "
                            f"complete KEnS `data/` folder to {root}.")
        if sha256_of(file) != digest:
            raise DataError(f"DBP-5L file {file} has the wrong sha256 (expected {digest}); "
                            "it is damaged or from another release. Fix: copy it again from "
                            f"{DBP5L_HOME}, file data/{rel}.")


def _import_into_cache(root: Path) -> None:
    """Keep a copy of a verified local DBP-5L in the cache, so later runs (another checkout,
    a notebook without a path) find it without a path or a download."""
    final = _cached_dbp5l()
    with lock("dbp5l-dir"):
        if _is_complete(final):
            return
        with atomic_dir(final) as tmp:
            for rel in DBP5L_SHA256:
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                (tmp / rel).write_bytes((root / rel).read_bytes())


def locate_dbp5l(path: str | Path | None = None) -> Path | None:
    """The verified DBP-5L folder, without downloading: ``path``, else ``$SELLAKIT_DBP5L``,
    else the kit's cache; None when none of them has it.

    A folder given by ``path`` or the variable must be complete and match the pinned sha256
    (else :class:`DataError`, naming the file and the fix); it is then copied into the cache
    once, so later calls need neither.
    """
    for given, given_as in ((path, "path="), (os.environ.get(DBP5L_ENV), f"${DBP5L_ENV}")):
        if given:
            root = Path(given).expanduser().resolve()
            _verify_folder(root, given_as)
            _import_into_cache(root)
            return root
    final = _cached_dbp5l()
    with lock("dbp5l-dir"):
        if _is_complete(final):
            return final
        if final.exists():  # junk or damaged files under the kit's name: never served
            shutil.rmtree(final, ignore_errors=True)
        return None


def _download_dbp5l() -> Path:
    """Every DBP-5L file from the KEnS repository into the cache, each checked by sha256."""
    final = _cached_dbp5l()
    with lock("dbp5l-dir"):
        if _is_complete(final):
            return final
        try:
            with atomic_dir(final) as tmp:
                for rel, digest in DBP5L_SHA256.items():
                    asset = Asset(filename="dbp5l-" + rel.replace("/", "-"), sha256=digest,
                                  urls=tuple(u.format(file=rel) for u in DBP5L_URLS),
                                  licence="KEnS release (see github.com/stasl0217/KEnS)")
                    got = fetch(asset, allow_pip=False)
                    (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                    (tmp / rel).write_bytes(got.read_bytes())
        except CacheError as err:
            raise DataError(
                f"DBP-5L is not on this machine and could not be downloaded from {DBP5L_HOME} "
                "(offline?). Fix: copy the KEnS `data/` folder (kg/, entity/, "
                f"seed_alignlinks/, relations.txt) to this machine and pass it with "
                f"{DBP5L_ENV}=DIR (notebooks, any command), --data-dir DIR (command line) or "
                "load_dbp5l(path=DIR) (Python); or connect to the internet and run again. "
                f"Details: {err}") from err
    return final


def _read_ints(path: Path) -> np.ndarray:
    rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines() if line]
    return np.asarray([[int(float(x)) for x in row[:3]] for row in rows], dtype=np.int64)


def load_dbp5l(path: str | Path | None = None, *, languages=DBP5L_LANGUAGES,
               download: bool = True) -> MultiSourceKG:
    """DBP-5L, found in this order: ``path`` (the KEnS ``data/`` folder), ``$SELLAKIT_DBP5L``,
    the kit's cache, a download from the KEnS repository (when ``download``). Every file is
    checked against its pinned sha256; a verified local folder is copied into the cache once.

    Entity ids stay local to each language; relation ids are global (``relations.txt``). Link
    files ``l1-l2.tsv`` (CRLF, float-formatted ids) give (entity of l1, entity of l2); all seed
    links are training links, as in KEnS (``heldout_links`` is empty). ``el-en.tsv`` pairs have
    identical ids on both sides; ids never share a space here, so that quirk cannot leak.

    Raises:
        DataError: a given folder is incomplete or damaged, or no source has DBP-5L.
    """
    root = locate_dbp5l(path)
    if root is None:
        if not download:
            raise DataError(f"DBP-5L is not in the kit's cache. Fix: set {DBP5L_ENV}=DIR (the "
                            f"KEnS data/ folder), pass path=DIR, or allow the download from "
                            f"{DBP5L_HOME}.")
        root = _download_dbp5l()
    relations = (root / "relations.txt").read_text(encoding="utf-8").splitlines()
    kgs = {}
    for lang in languages:
        labels = (root / "entity" / f"{lang}.tsv").read_text(encoding="utf-8").splitlines()
        splits = [_read_ints(root / "kg" / f"{lang}-{s}.tsv") for s in ("train", "val", "test")]
        n = max(len(labels), 1 + max(int(s[:, [0, 2]].max()) for s in splits))
        kgs[lang] = KG(lang, n, *splits, entity_labels=labels + [""] * (n - len(labels)))
    links = {}
    for pair in DBP5L_PAIRS:
        a, b = pair.split("-")
        if a in kgs and b in kgs:
            links[(a, b)] = np.unique(_read_pairs(root / "seed_alignlinks" / f"{pair}.tsv"),
                                      axis=0)
    n_rel = max(len(relations), 1 + max(int(kg.all_triples()[:, 1].max()) for kg in kgs.values()))
    same = {}
    if "el" in kgs and "en" in kgs:  # the entity files are aligned line by line
        shared = np.arange(min(kgs["el"].n_entities, kgs["en"].n_entities))
        same[("el", "en")] = np.stack([shared, shared], 1)
    return MultiSourceKG("dbp5l", kgs, n_rel, links, same_entities=same,
                         relation_labels=relations, source=str(root))


def load_multisource(path: str | Path | None = None, *, download: bool = True,
                     standin: str = STANDIN_BASE) -> MultiSourceKG:
    """DBP-5L as :func:`load_dbp5l` finds it; where no source has it, the **derived stand-in**
    ``derived_multisource(standin)`` (three sources cut from a PyKEEN set, offline), whose
    ``note`` says so and how to get the real benchmark. What notebooks 06-07 load.

    A folder given by ``path`` or ``$SELLAKIT_DBP5L`` that is incomplete or damaged still
    raises :class:`DataError`: the stand-in replaces a missing benchmark, never a broken one.
    """
    try:
        return load_dbp5l(path, download=download)
    except DataError:
        if path or os.environ.get(DBP5L_ENV):
            raise
    ms = derived_multisource(standin, seed=0)
    ms.note = (f"DBP-5L was not found (no path, no ${DBP5L_ENV}, not in the cache, no download "
               f"from {DBP5L_HOME}), so this runs on {ms.name}, a derived stand-in cut from "
               f"PyKEEN's {_PYKEEN[standin]}: small, single-source underneath, not comparable "
               "with the papers. For the real benchmark, copy the KEnS data/ folder to this "
               f"machine and set {DBP5L_ENV}=/path/to/data (or connect to the internet) and "
               "run again.")
    return ms


def _read_pairs(path: Path) -> np.ndarray:
    rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]
    return np.asarray([[int(float(a)), int(float(b))] for a, b, *_ in rows], dtype=np.int64)


# ----------------------------------------------------------------------------- PyKEEN sets

_PYKEEN = {"nations": "Nations", "kinships": "Kinships", "umls": "UMLS"}


def load_pykeen(name: str) -> KG:
    """Nations, Kinships or UMLS from the PyKEEN wheel (no network) as one :class:`KG`."""
    if name.lower() not in _PYKEEN:
        raise DataError(f"Unknown PyKEEN set {name!r}: the offline ones are "
                        f"{', '.join(_PYKEEN)}.")
    try:
        import pykeen.datasets as datasets
    except ImportError as err:
        raise DataError("PyKEEN is not installed. Fix: in the kit's checkout, pip install -c "
                        "constraints.txt -e '.[kg]' (the tested version; or make install).") \
            from err
    ds = getattr(datasets, _PYKEEN[name.lower()])()
    def by_id(mapping: dict[str, int]) -> list[str]:
        return [label for label, _ in sorted(mapping.items(), key=lambda kv: kv[1])]

    return KG(name.lower(), ds.num_entities, ds.training.mapped_triples.numpy().astype(np.int64),
              ds.validation.mapped_triples.numpy().astype(np.int64),
              ds.testing.mapped_triples.numpy().astype(np.int64),
              entity_labels=by_id(ds.entity_to_id), n_relations=ds.num_relations,
              relation_labels=by_id(ds.relation_to_id))


def derived_multisource(base: str = "umls", *, n_sources: int = 3, keep: float = 0.7,
                        heldout_links: float = 0.5, valid: float = 0.1, test: float = 0.1,
                        seed: int = 0) -> MultiSourceKG:
    """A **derived** multi-source split of a PyKEEN set (a stand-in, named as such).

    Each source keeps a random ``keep`` share of all the base set's triples (so sources overlap),
    gets its own random renaming of entity ids and its own train/valid/test split. The true
    alignment (same base entity) links every pair of sources; ``heldout_links`` of it is hidden
    as an alignment test set.
    """
    kg = load_pykeen(base)
    rng = np.random.default_rng(seed)
    everything = kg.all_triples()
    kgs, renames = {}, {}
    for i in range(n_sources):
        name = f"s{i}"
        chosen = everything[rng.random(len(everything)) < keep]
        ents = np.unique(chosen[:, [0, 2]])
        new_ids = rng.permutation(len(ents))
        mapping = np.full(kg.n_entities, -1, dtype=np.int64)
        mapping[ents] = new_ids
        renames[name] = mapping
        triples = np.stack([mapping[chosen[:, 0]], chosen[:, 1], mapping[chosen[:, 2]]], 1)
        order = rng.permutation(len(triples))
        n_va, n_te = int(valid * len(triples)), int(test * len(triples))
        te, va, tr = np.split(triples[order], [n_te, n_te + n_va])
        # keep valid/test entities seen in train (the DBP-5L convention)
        seen = np.zeros(len(ents), bool)
        seen[tr[:, [0, 2]].ravel()] = True
        va = va[seen[va[:, 0]] & seen[va[:, 2]]]
        te = te[seen[te[:, 0]] & seen[te[:, 2]]]
        labels = [""] * len(ents)
        for old, new in zip(ents, new_ids):
            labels[new] = f"{name}:{kg.entity_labels[old]}"
        kgs[name] = KG(name, len(ents), tr, va, te, entity_labels=labels)
    links, hidden = {}, {}
    names = list(kgs)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            both = np.flatnonzero((renames[a] >= 0) & (renames[b] >= 0))
            pairs = np.stack([renames[a][both], renames[b][both]], 1)
            pairs = pairs[rng.permutation(len(pairs))]
            n_hidden = int(round(heldout_links * len(pairs)))
            hidden[(a, b)], links[(a, b)] = pairs[:n_hidden], pairs[n_hidden:]
    return MultiSourceKG(f"{base}-derived-{n_sources}", kgs, kg.n_relations, links, hidden,
                         relation_labels=kg.relation_labels,
                         source=f"derived from PyKEEN {_PYKEEN[base.lower()]} (seed {seed})")


# ----------------------------------------------------------------------------- leakage

def entity_offsets(ms: MultiSourceKG, names: list[str] | None = None
                   ) -> tuple[dict[str, int], int]:
    """Where each KG's entities start when the KGs ``names`` (default all) are laid end to end
    in one id space, and the total."""
    offsets, total = {}, 0
    for name in names or list(ms.kgs):
        offsets[name], total = total, total + ms.kgs[name].n_entities
    return offsets, total


def linked_roots(n: int, pairs: np.ndarray) -> np.ndarray:
    """For each node ``0..n-1``, the smallest node joined to it by a chain of ``pairs``
    (union-find over the links; one id per connected component)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    smallest = np.full(component.max() + 1 if n else 0, n, dtype=np.int64)
    np.minimum.at(smallest, component, np.arange(n))
    return smallest[component]


def canonical_ids(ms: MultiSourceKG) -> dict[str, np.ndarray]:
    """Per KG, the id of each entity's alignment class (union-find over every pair known to be
    one entity: training links, held-out links and ``same_entities``).

    Two entities get the same class id when a chain of such pairs joins them, so a fact and
    its re-expression in another KG map to the same canonical triple.
    """
    offsets, total = entity_offsets(ms)
    tables = (ms.links, ms.heldout_links, ms.same_entities)
    pairs = [np.stack([offsets[a] + p[:, 0], offsets[b] + p[:, 1]], 1)
             for table in tables for (a, b), p in table.items() if len(p)]
    roots = linked_roots(total, np.concatenate(pairs) if pairs else np.zeros((0, 2)))
    return {name: roots[offsets[name]:offsets[name] + kg.n_entities]
            for name, kg in ms.kgs.items()}


def canonical_keys(triples: np.ndarray, canon: np.ndarray, n_relations: int) -> np.ndarray:
    """One int64 per canonical triple ``(class(h), r, class(t))`` (class ids < 2**31).

    ``canon`` is one KG's row of :func:`canonical_ids`; a fact and its re-expression in any
    linked KG get the same key."""
    triples = np.asarray(triples, dtype=np.int64).reshape(-1, 3)
    h, r, t = canon[triples[:, 0]], triples[:, 1], canon[triples[:, 2]]
    return (h * n_relations + r) * (1 << 31) + t


def leak_free_triples(ms: MultiSourceKG, kg_name: str, triples: np.ndarray,
                      held_out: dict[str, np.ndarray]) -> tuple[np.ndarray, int]:
    """``triples`` of KG ``kg_name`` minus every re-expression of a held-out fact.

    A triple (h, r, t) is removed when the alignment (every pair of :func:`canonical_ids`,
    joined transitively) maps it onto a triple (h', r, t') of ``held_out[k]`` for any KG ``k``
    (local ids of ``k``); relations are shared, so the relation must match. Returns the kept
    triples and how many were removed. :class:`sellakit.kg.protocol.DataRule` says what is
    held out.
    """
    canon = canonical_ids(ms)
    parts = [canonical_keys(facts, canon[k], ms.n_relations) for k, facts in held_out.items()]
    banned = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    keep = ~np.isin(canonical_keys(triples, canon[kg_name], ms.n_relations), banned)
    return np.asarray(triples)[keep], int((~keep).sum())
