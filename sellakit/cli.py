"""The command line: ``sellakit`` (or ``python -m sellakit``).

Commands::

    sellakit run [--quick|--paper] [--serial] [NOTEBOOK ...]   execute the series, write the summary
    sellakit data export ml-1m --format collm DIR       CoLLM-format pickles (or --format parquet)
    sellakit data fetch ml-1m                           fetch into the cache and print the counts
    sellakit bench cf --dataset ml-1m --models mf,lightgcn,sasrec --out FILE.json
    sellakit bench align --dataset ml-1m --quick --out FILE.json
    sellakit bench kg --data-dir DIR --target el [--preset quick|paper] --out FILE.json
    sellakit bench kg-eval --data-dir DIR --target el --out FILE.json
    sellakit bench kg-protocols --target el --out FILE.json   KEnS's protocol, every switch
    sellakit bench rec --dataset ml-1m --preset quick --methods mf,tallrec,collm,sella --out F.json
    accelerate launch -m sellakit bench rec --preset paper --model Qwen/Qwen2-7B --out F.json
    sellakit bench rec-kg --dataset ml-100k-cold-items --grid G.json --out F.json  the <KG_ID> study
    sellakit bench rec-scoring --out FILE.json         batched vs one-at-a-time prompts/s
    sellakit bench rec-prefix --out FILE.json          stage-3 step: cached text vs whole prompt
    sellakit bench rec-curve --sizes 512,1024,2048 --out bench/rec_ml1m_curve.json
    sellakit bench rec-grid --out bench/rec_ml1m_grid.json
    sellakit bench rec-study --grid bench/rec_ml1m_grid.json --out bench/rec_ml1m_study.json
    sellakit bench cuda --shape-dir DIR --out FILE.json  the CUDA path on a GPU
    sellakit bench series --out bench/quick_series_side_by_side.json  make run's time, cold and warm
    sellakit cache                                      where the cache is, what it holds
    sellakit book [--source DIR] [--site DIR]           the static site of the executed notebooks
"""

from __future__ import annotations

import argparse
import os
import sys

from sellakit.data.catalog import DATASETS, load_split
from sellakit.errors import SellakitError

__all__ = ["main"]


#: ``--serial`` of ``sellakit run`` and ``bench series``.
SERIAL_HELP = ("one notebook at a time (quick mode otherwise runs the series' two chains, "
               "03-05 and 00-02, 06-08, side by side on a machine with 2 or more "
               "CPUs; paper mode always runs one at a time)")


def _cmd_run(args) -> int:
    from sellakit.runner import build_dir, run_series

    from sellakit.config import quick_mode

    # --quick / --paper win; otherwise SELLAKIT_QUICK decides (quick unless it is 0).
    quick = True if args.quick else False if args.paper else quick_mode()
    # quick runs are what the boxes promise: their executed copies are the committed notebooks;
    # paper mode runs one notebook at a time (one GPU's memory holds one model)
    run_series(args.notebooks or None, quick=quick, publish=quick,
               side_by_side=quick and not args.serial and (os.cpu_count() or 1) >= 2)
    print((build_dir() / "summary.md").read_text())
    return 0


def _cmd_data(args) -> int:
    split = load_split(args.dataset, amazon_ratings=args.amazon_ratings,
                       amazon_meta=args.amazon_meta)
    if args.action == "fetch":
        print(split)
        print(split.summary().to_string())
        return 0
    from sellakit.data.export import export_split

    for path in export_split(split, args.dir, args.format, force=args.force):
        print(path)
    return 0


def _bench_ctr(args) -> int:
    """cf, align, rec: a CTR split, then the target's benchmark."""
    from sellakit.benchmarks import align as align_bench
    from sellakit.benchmarks import cf, rec

    preset = "quick" if args.quick else args.preset
    split = load_split(args.dataset, amazon_ratings=args.amazon_ratings,
                       amazon_meta=args.amazon_meta)
    if args.target == "cf":
        models = _names(args.models)
        results, scores = cf.cf_benchmark(split, models, preset=preset, seed=args.seed)
        results["_versus"]["scores_file"] = _write_beside(args.out, scores, ".scores.parquet")
        markdown = cf.cf_markdown(results, command=args.command, dataset=split.name)
    elif args.target == "align":
        results, scores = align_bench.align_benchmark(split, preset=preset, seed=args.seed,
                                                      model=args.model)
        results["scores_file"] = _write_beside(args.out, scores, ".scores.parquet")
        markdown = align_bench.align_markdown(results, command=args.command)
    else:
        from accelerate import PartialState

        methods = _names(args.methods)
        results, scores = rec.rec_benchmark(split, methods, preset=preset, seed=args.seed,
                                            seeds=args.seeds, model=args.model,
                                            aligned=args.aligned)
        if not PartialState().is_main_process:  # under accelerate launch: one writer
            return 0
        results["_run"]["scores_file"] = _write_beside(args.out, scores, ".scores.parquet")
        markdown = rec.rec_markdown(results, command=args.command)
    return _report(args.out, results, markdown)


def _bench_rec_kg(args) -> int:
    """The <KG_ID> study (issue 25): per-row scores beside the JSON, resumable."""
    from sellakit.benchmarks import rec_kg, rec_study

    choice = rec_study.study_choice(args.grid) if args.grid else None  # before any work
    rows = {"test_rows": args.test_rows} if args.test_rows else {}
    split = load_split(args.dataset)
    results, scores = rec_kg.rec_kg_benchmark(
        split, _names(args.methods), out=args.out, source=args.source,
        preset="quick" if args.quick else args.preset,
        seed=args.seed, seeds=args.seeds, model=args.model, choice=choice, rec_overrides=rows)
    results["_run"]["scores_file"] = _write_beside(args.out, scores, ".scores.parquet")
    return _report(args.out, results, rec_kg.rec_kg_markdown(results, command=args.command))


def _bench_rec_scoring(args) -> int:
    from sellakit.benchmarks import rec

    results = rec.rec_scoring_benchmark(model=args.model, rows=args.rows,
                                        batch_size=args.batch_size, seed=args.seed)
    return _report(args.out, results, rec.rec_scoring_markdown(results, command=args.command))


def _bench_rec_prefix(args) -> int:
    from sellakit.benchmarks import rec

    results = rec.rec_prefix_benchmark(model=args.model, rows=args.rows, seed=args.seed)
    return _report(args.out, results, rec.rec_prefix_markdown(results, command=args.command))


def _bench_rec_study(args) -> int:
    """rec-curve, rec-grid, rec-study: resumable, each part written as it finishes."""
    from sellakit.benchmarks import rec_study

    split = load_split(args.dataset, amazon_ratings=args.amazon_ratings,
                       amazon_meta=args.amazon_meta)
    common = dict(out=args.out, preset="quick" if args.quick else args.preset, seed=args.seed,
                  model=args.model, command=args.command)
    if args.target == "rec-curve":
        results, _ = rec_study.rec_curve(split, sizes=[int(n) for n in _names(args.sizes)],
                                         variants=_names(args.variants), **common)
        return _report(args.out, results, rec_study.curve_markdown(results))
    if args.target == "rec-grid":
        results, _ = rec_study.rec_grid(split, **common)
        return _report(args.out, results, rec_study.grid_markdown(results))
    results, _ = rec_study.rec_study(split, choice=rec_study.study_choice(args.grid),
                                     seeds=args.seeds, ablation_seeds=args.ablation_seeds,
                                     methods=_names(args.methods) if args.methods
                                     else rec_study.STUDY_METHODS,
                                     overrides={k: v for k, v in (
                                         ("train_rows", args.train_rows),
                                         ("stage1_rows", args.stage1_rows),
                                         ("slot_scale", args.slot_scale)) if v} or None,
                                     **common)
    return _report(args.out, results, rec_study.study_markdown(results))


def _bench_kg(args) -> int:
    """kg, kg-sweep, kg-eval, kg-protocols: DBP-5L (path, SELLAKIT_DBP5L, cache, download)
    or a derived split."""
    from sellakit.benchmarks import kg as kg_bench
    from sellakit.kg import derived_multisource, load_dbp5l

    ms = load_dbp5l(args.data_dir) if args.kg_dataset == "dbp5l" else \
        derived_multisource(args.kg_dataset.split("-")[0], seed=0)
    if args.target == "kg-protocols":
        return _bench_kg_protocols(args, ms)
    if args.target == "kg":
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(args.threads)  # times are compared at one thread count
        try:
            targets = list(ms.kgs) if args.kg_target == "all" else _names(args.kg_target)
            results, ranks = kg_bench.kg_benchmark(
                ms, targets, preset=args.preset, seed=args.seed, seeds=args.seeds,
                j2_seeds=args.j2_seeds, ablations=_kg_ablations(args), model=args.model,
                encoder=args.encoder, setting=args.setting,
                out=args.out)  # each finished target kept beside it; resumes
        finally:
            torch.set_num_threads(before)
        results["ranks_file"] = _write_beside(args.out, ranks, ".ranks.parquet")
        markdown = kg_bench.kg_markdown(results, command=args.command)
    elif args.target == "kg-sweep":
        return _bench_kg_sweep(args, ms)
    else:
        results = kg_bench.kg_eval_benchmark(ms, args.kg_target, seed=args.seed)
        markdown = kg_bench.kg_eval_markdown(results, command=args.command)
    return _report(args.out, results, markdown)


def _kg_ablations(args) -> bool | tuple[str, ...]:
    """``--ablations NAMES`` (checked against the ablation table of the student that runs),
    else every ablation unless ``--no-ablations``."""
    if not args.ablations:
        return not args.no_ablations
    from dataclasses import replace

    from sellakit.errors import ConfigError
    from sellakit.kg.compare import StudentConfig, ablation_configs

    student = StudentConfig.preset(args.preset)
    student = replace(student, train=replace(student.train, model=args.model,
                                             encoder=args.encoder))
    known, names = ablation_configs(student), tuple(_names(args.ablations))
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ConfigError(f"--ablations {args.ablations!r}: {', '.join(unknown)} is not an "
                          f"ablation of this student (--encoder {args.encoder}); choose from "
                          f"{', '.join(known)} (write --ablations=-network for a leading -).")
    return names


def _bench_kg_protocols(args, ms) -> int:
    """kg-protocols: the target-only model under the chosen switches and every other."""
    from sellakit.benchmarks import kg_protocols
    from sellakit.kg.switches import SWITCHES, KGProtocol

    protocol = KGProtocol(**{name: getattr(args, name) for name in SWITCHES})
    results, ranks = kg_protocols.kg_protocols_benchmark(ms, args.kg_target, protocol=protocol,
                                                         preset=args.preset, seed=args.seed)
    results["ranks_file"] = _write_beside(args.out, ranks, ".ranks.parquet")
    markdown = kg_protocols.kg_protocols_markdown(results, command=args.command)
    return _report(args.out, results, markdown)


def _bench_kg_sweep(args, ms) -> int:
    """kg-sweep: the low-resource or width sweep, each point written as it finishes."""
    import torch

    from sellakit.benchmarks import kg_sweeps

    torch.set_num_threads(args.threads)
    floats = [float(x) for x in _names(args.facts)], [float(x) for x in _names(args.links)]
    points = kg_sweeps.sweep_points(args.sweep, facts=floats[0], links=floats[1],
                                    dims=[int(x) for x in _names(args.dims)], grid=args.grid)
    results, ranks = kg_sweeps.kg_sweep(
        ms, args.sweep, _names(args.kg_target), points=points, preset=args.preset,
        seed=args.seed, epochs=args.epochs, out=args.out)  # each finished point kept
    results["ranks_file"] = _write_beside(args.out, ranks, ".ranks.parquet")
    return _report(args.out, results, kg_sweeps.sweep_markdown(results, command=args.command))


def _write_beside(out: str, frame, suffix: str) -> str:
    """Per-row (per-query) values beside the JSON ``out``, so every interval in it can be
    recomputed; returns the file's name."""
    from pathlib import Path

    from sellakit.cache import atomic_file

    path = Path(out).with_suffix(suffix)
    with atomic_file(path) as tmp:
        frame.to_parquet(tmp, index=False)
    return path.name


def _bench_series(args) -> int:
    from sellakit.benchmarks import series

    stems = _names(args.notebooks) if args.notebooks else None
    results = series.series_benchmark(args.out, cache=args.cache, stems=stems,
                                      command=args.command, serial=args.serial)
    return _report(args.out, results, series.series_markdown(results, command=args.command))


def _bench_cuda(args) -> int:
    from pathlib import Path

    from sellakit.align import AlignedTables
    from sellakit.benchmarks.cuda import cuda_check

    if args.aligned and Path(args.aligned).exists():
        AlignedTables.load(args.aligned)  # a bad file: one line now, not a part's traceback

    cuda_check(shape_dir=args.shape_dir, out=args.out, aligned=args.aligned, rows=args.rows,
               parts=tuple(_names(args.parts)),
               sizes=tuple(int(x) for x in _names(args.sizes)), score_rows=args.score_rows,
               device=args.device, command=args.command)
    return 0


def _report(out: str, results: dict, markdown: str) -> int:
    from sellakit.benchmarks import write_report

    write_report(out, results, markdown)
    print(markdown)
    return 0


def _cmd_book(args) -> int:
    from sellakit.book import build_book

    index = build_book(args.source, args.site)
    print(f"book written: {index}")
    return 0


def _cmd_cache(args) -> int:
    from sellakit.cache import cache_dir

    root = cache_dir()
    print(f"sellakit cache: {root} (set SELLAKIT_CACHE to move it)")
    for path in sorted(root.glob("*/*")):
        if path.parent.name == "locks":
            continue
        # lstat: a link (dangling or not) counts as itself, never stops the listing
        size = sum(p.lstat().st_size for p in path.rglob("*")) if path.is_dir() \
            and not path.is_symlink() else path.lstat().st_size
        link = f" -> {os.readlink(path)}" if path.is_symlink() else ""
        print(f"  {path.relative_to(root)}{link}  {size / 1e6:.1f} MB")
    return 0


class _Parser(argparse.ArgumentParser):
    """Argument errors (an unknown choice, a missing option) as one line and exit 2, like the
    kit's own errors; the usage is one ``--help`` away."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="sellakit", description=__doc__,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="execute notebooks (quick mode by default)")
    mode = run.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true",
                      help="quick mode (the default unless SELLAKIT_QUICK=0)")
    mode.add_argument("--paper", action="store_true", help="the paper protocol (GPU advised)")
    run.add_argument("notebooks", nargs="*", help="notebook stems, e.g. 01_data (default: all)")
    run.add_argument("--serial", action="store_true", help=SERIAL_HELP)
    run.set_defaults(func=_cmd_run)

    data = sub.add_parser("data", help="fetch a data set, or export its split")
    data_sub = data.add_subparsers(dest="action", required=True)
    fetch = data_sub.add_parser("fetch", help="fetch into the cache; print the split's counts")
    fetch.add_argument("dataset", choices=DATASETS)
    export = data_sub.add_parser("export", help="write the split for other code bases")
    export.add_argument("dataset", choices=DATASETS)
    export.add_argument("dir", help="output folder")
    export.add_argument("--format", choices=["collm", "parquet"], default="collm")
    export.add_argument("--force", action="store_true",
                        help="replace the contents of a folder that already holds files")
    for command in (fetch, export):
        command.set_defaults(func=_cmd_data)

    _add_bench(sub)
    for command in (fetch, export):
        _add_amazon(command)

    cache = sub.add_parser("cache", help="show the cache folder and its entries")
    cache.set_defaults(func=_cmd_cache)

    book = sub.add_parser("book", help="render the executed notebooks as a static site")
    book.add_argument("--source", help="executed notebooks (default: build/notebooks)")
    book.add_argument("--site", help="site folder (default: build/book)")
    book.set_defaults(func=_cmd_book)
    return parser


def _add_amazon(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--amazon-ratings", help="Amazon 2018 Books ratings CSV")
    parser.add_argument("--amazon-meta", help="Amazon 2018 meta_Books JSON lines")


def _add_bench(sub) -> None:
    """``sellakit bench TARGET``: one subcommand per target, each with its own options."""
    from sellakit.benchmarks import TARGETS

    bench = sub.add_parser("bench", help="benchmarks that make the README's tables",
                           description="Each target writes --out FILE.json and FILE.md "
                                       "(the table, with the command that made it).")
    targets = bench.add_subparsers(dest="target", required=True, metavar="TARGET",
                                   title="targets")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--seed", type=int, default=2025)
    common.add_argument("--out", required=True,
                        help="JSON file (checked before the run); a .md table goes beside it")
    llm = argparse.ArgumentParser(add_help=False)
    llm.add_argument("--model", default="smollm2-135m", help="LLM (HF id or folder)")
    ctr = _ctr_parent("ml-1m")

    def target(name: str, parents: list, func) -> argparse.ArgumentParser:
        parser = targets.add_parser(name, parents=[common, *parents], help=TARGETS[name],
                                    description=TARGETS[name])
        parser.set_defaults(func=func)
        _add_preset(parser, name)
        return parser

    from sellakit.cf.models import CF_MODELS
    target("cf", [ctr], _bench_ctr).add_argument(
        "--models", default=",".join(n for n, s in CF_MODELS.items() if not s.takes_item_kg),
        help="comma-separated names from sellakit.cf.models.CF_MODELS (default: all but KG's)")
    target("align", [ctr, llm], _bench_ctr)
    rec = target("rec", [ctr, llm], _bench_ctr)
    from sellakit.rec.methods import METHODS, method_help
    rec.add_argument("--methods", default=",".join(METHODS),
                     help="comma-separated, from the method table: " + method_help())
    rec.add_argument("--aligned", help="a saved aligned MF (notebook 04 writes "
                                       "build/aligned_mf.pt); left out: aligned here after "
                                       "stage 1, on the stage-1 model's item states")
    rec.add_argument("--seeds", type=int, default=1,
                     help="seeds --seed, --seed+1, ... on the same rows (mean ± sd, pooled "
                          "paired intervals)")
    scoring = target("rec-scoring", [llm], _bench_rec_scoring)
    scoring.add_argument("--rows", type=int, default=128, help="test prompts")
    scoring.add_argument("--batch-size", type=int, default=32)
    prefix = target("rec-prefix", [llm], _bench_rec_prefix)
    prefix.add_argument("--rows", type=int, default=32, help="training prompts")
    # its own parent: set_defaults on a child would change the shared --dataset of every target
    _add_rec_kg(target("rec-kg", [_ctr_parent("ml-100k-cold-items"), llm], _bench_rec_kg))
    _add_rec_study_targets(target, [ctr, llm])
    _add_kg_targets(target)
    _add_series(target("series", [], _bench_series))
    cuda = target("cuda", [], _bench_cuda)
    cuda.add_argument("--shape-dir", required=True,
                      help="SmolLM2-135M's config.json and tokenizer files (no weights)")
    cuda.add_argument("--aligned", default="build/aligned_mf.pt")
    cuda.add_argument("--rows", type=int, default=512)
    cuda.add_argument("--parts", default="padding,stages,sweep135m,sweep7b")
    cuda.add_argument("--sizes", default="8,16,32,64,128",
                      help="micro-batch sizes of the 135M sweep (the 7B sweep: 4,8,16,32)")
    cuda.add_argument("--score-rows", type=int, default=512)
    cuda.add_argument("--device", default="cuda", help="cpu: a dry run with small sizes")


def _ctr_parent(dataset: str) -> argparse.ArgumentParser:
    """The CTR targets' shared options, ``--dataset`` defaulting to ``dataset``."""
    ctr = argparse.ArgumentParser(add_help=False)
    ctr.add_argument("--dataset", choices=DATASETS, default=dataset)
    ctr.add_argument("--quick", action="store_true", help="same as --preset quick")
    _add_amazon(ctr)
    return ctr


def _add_rec_kg(parser: argparse.ArgumentParser) -> None:
    """``sellakit bench rec-kg``'s own options (the <KG_ID> study, ML-100k)."""
    from sellakit.rec.methods import method_help

    parser.add_argument("--methods", default="mf,tallrec,collm,collm_kg,sella,sella_kg,text_kg",
                        help="comma-separated, from the method table: " + method_help())
    parser.add_argument("--source", default="film+likes",
                        choices=_TableNames("sellakit.kg.items", "ITEM_KG_SOURCES"),
                        help="the items' KG vectors: the film KG alone or joined with the "
                             "training likes")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--test-rows", type=int, default=None,
                        help="test rows sampled (default: the preset's)")
    parser.add_argument("--grid", default=None,
                        help="rec-grid's JSON (e.g. bench/rec_ml1m_grid.json): every method runs "
                             "in the configuration it chose on validation, stage 1 on BCE, as in "
                             "rec-study (left out: the preset's)")


def _add_series(parser: argparse.ArgumentParser) -> None:
    """``sellakit bench series``'s own options (the quick series' time)."""
    parser.add_argument("--cache", default=None,
                        help="an empty folder for the kit's cache (default: cache/ in the "
                             "parts folder beside --out); run in a clean clone, as the "
                             "notebooks write figures/ and build/")
    parser.add_argument("--notebooks", default=None,
                        help="comma-separated stems (default: the whole series)")
    parser.add_argument("--serial", action="store_true", help=SERIAL_HELP)


def _add_preset(parser: argparse.ArgumentParser, target: str) -> None:
    """``--preset`` where the target has a config: exactly its presets, the table's help."""
    configs = _bench_configs()
    if target in configs:
        config, default = configs[target]
        parser.add_argument("--preset", choices=config.PRESETS, default=default,
                            help=config.preset_help())


def _bench_configs() -> dict:
    """``sellakit bench`` targets that take ``--preset`` -> the config whose presets they offer
    and the default preset (kg: the teacher's presets, which the student shares; a test checks
    that)."""
    from sellakit.align.contrastive import AlignConfig
    from sellakit.cf.train import CFConfig
    from sellakit.kg.compare import StudentConfig
    from sellakit.kg.pretrain import TeacherConfig
    from sellakit.rec.config import RecConfig

    return {"cf": (CFConfig, "paper"), "align": (AlignConfig, "paper"),
            "rec": (RecConfig, "paper"), "kg": (TeacherConfig, "quick"),
            "kg-protocols": (StudentConfig, "quick"), "kg-sweep": (TeacherConfig, "quick"),
            "rec-kg": (RecConfig, "quick"),
            "rec-curve": (RecConfig, "compare"), "rec-grid": (RecConfig, "compare"),
            "rec-study": (RecConfig, "study")}


class _TableNames:
    """The names of a variant table (``module.table``) as argparse choices, read when first
    asked: the tables import torch, which ``sellakit --help`` or ``sellakit cache`` need not."""

    def __init__(self, module: str, table: str):
        self.module, self.table = module, table

    def _names(self) -> list[str]:
        import importlib

        return list(getattr(importlib.import_module(self.module), self.table))

    def __contains__(self, name: object) -> bool:
        return name in self._names()

    def __iter__(self):
        return iter(self._names())


def _add_rec_study_targets(target, parents: list) -> None:
    """rec-curve, rec-grid, rec-study (their presets: RecConfig's)."""
    curve = target("rec-curve", parents, _bench_rec_study)
    curve.add_argument("--sizes", default="512,1024,2048,4096",
                       help="training rows of each stage 1 (the same valid and test rows)")
    curve.add_argument("--variants", default="qv_r8_bce",
                       help="comma-separated, from rec_study.CURVE_VARIANTS: " + "; ".join(
                           f"{k}: {v.help}" for k, v in _curve_variants().items()))
    target("rec-grid", parents, _bench_rec_study)
    study = target("rec-study", parents, _bench_rec_study)
    study.add_argument("--grid", default="bench/rec_ml1m_grid.json",
                       help="rec-grid's JSON: the configuration it chose on validation")
    study.add_argument("--seeds", type=int, default=3, help="seeds of stages 2-3")
    study.add_argument("--ablation-seeds", type=int, default=3,
                       help="how many of those seeds the ablations run")
    study.add_argument("--train-rows", type=int, default=None,
                       help="training rows (default: the preset's)")
    study.add_argument("--stage1-rows", type=int, default=None,
                       help="stage 1 trains on a stratified subset of this many training rows "
                            "(default: every one; rec-curve says how many it needs); stage 3 "
                            "trains on every one")
    study.add_argument("--methods", default=None,
                       help="comma-separated, a subset of rec_study.STUDY_METHODS (default: "
                            "all of them)")
    study.add_argument("--slot-scale", default=None, choices=("family", "none", "input_norm"),
                       help="the slot-scaling rule of every token method (RecConfig.slot_scale;"
                            " default: the preset's, family); a run per rule, compared on "
                            "validation, chooses one")


def _curve_variants() -> dict:
    from sellakit.benchmarks.rec_study import CURVE_VARIANTS

    return dict(CURVE_VARIANTS)


def _add_kg_targets(target) -> None:
    sweep = target("kg-sweep", [], _bench_kg)
    sweep.add_argument("--sweep", choices=_TableNames("sellakit.benchmarks.kg_sweeps",
                                                      "SWEEP_NAMES"), default="low-resource",
                       help="low-resource: the target's facts and links cut to fractions; "
                            "width: the student's d with and without KD")
    sweep.add_argument("--facts", default="0.1,0.25,0.5,1", help="fractions of training facts")
    sweep.add_argument("--links", default="0.2,0.5,1", help="fractions of links")
    sweep.add_argument("--dims", default="8,16,32,64", help="student widths (width sweep)")
    sweep.add_argument("--grid", choices=["axes", "cross"], default="axes",
                       help="axes: facts with every link, links with every fact; cross: all")
    sweep.add_argument("--epochs", type=int, default=None,
                       help="cap every model's epochs (a smoke run; left out: the preset's)")
    sweep.add_argument("--threads", type=int, default=2)
    for name in ("kg-sweep", "kg", "kg-eval", "kg-protocols"):
        parser = target(name, [], _bench_kg) if name != "kg-sweep" else sweep
        parser.add_argument("--data-dir", default=None,
                            help="DBP-5L folder (KEnS data/); left out: $SELLAKIT_DBP5L, the "
                                 "cache, or a download from GitHub when online")
        parser.add_argument("--dataset", dest="kg_dataset", default="dbp5l",
                            choices=["dbp5l", "umls-derived", "nations-derived",
                                     "kinships-derived"],
                            help="dbp5l (real) or a derived multi-source split of a PyKEEN set")
        parser.add_argument("--target", dest="kg_target", default="el",
                            help="target KG (el, ja, es, fr, en; for kg also comma-separated "
                                 "or all)")
        if name == "kg":
            parser.add_argument("--model", choices=_TableNames("sellakit.kg.models",
                                                               "INTERACTIONS"),
                                default="rotate", help="interaction of every model compared")
            parser.add_argument("--encoder", choices=_TableNames("sellakit.kg.models",
                                                                 "ENCODERS"), default="none",
                                help="entity encoder (gnn: aggregate each entity's in-edges)")
            parser.add_argument("--setting", choices=_TableNames("sellakit.kg.compare",
                                                                 "SETTING_NAMES"),
                                default="new-kg", help="new-kg: the teacher never saw the "
                                "target (the paper's); all-kgs: a teacher of every KG")
            parser.add_argument("--seeds", type=int, default=3,
                                help="seeds of every row (from --seed)")
            parser.add_argument("--j2-seeds", type=int, default=None,
                                help="how many of those seeds the J2 rows run (default all; 0: "
                                     "no J2 rows, for encoders whose joint retrain costs "
                                     "hours on a CPU)")
            parser.add_argument("--threads", type=int, default=2,
                                help="torch threads: every time is measured at this count")
            parser.add_argument("--no-ablations", action="store_true",
                                help="skip the KD ablations (one seed each)")
            parser.add_argument("--ablations", default=None,
                                help="only these KD ablations, comma-separated names of "
                                     "sellakit.kg.compare.ablation_configs (e.g. "
                                     "--ablations=-network with --encoder gnn: the three KD "
                                     "levels against KD without network KD)")
        if name == "kg-protocols":
            _add_switches(parser)


def _add_switches(parser: argparse.ArgumentParser) -> None:
    """One option per protocol switch (sellakit.kg.switches.SWITCHES): its options as the
    choices, the table's meanings as help, KEnS's protocol as the default."""
    from sellakit.kg.switches import KENS, SWITCHES, switch_help

    for name, switch in SWITCHES.items():
        parser.add_argument(f"--{name}", choices=list(switch.choices),
                            default=getattr(KENS, name),
                            help=f"{switch_help(name)} (default: KEnS's, %(default)s; the "
                                 f"kit's: {switch.kit})")


#: (option, its attribute, smallest value): whole-number options, checked before any work.
_AT_LEAST = (("--seed", "seed", 0), ("--seeds", "seeds", 1), ("--j2-seeds", "j2_seeds", 0),
             ("--threads", "threads", 1), ("--rows", "rows", 1),
             ("--ablation-seeds", "ablation_seeds", 1), ("--train-rows", "train_rows", 1),
             ("--stage1-rows", "stage1_rows", 1),
             ("--batch-size", "batch_size", 1), ("--score-rows", "score_rows", 1),
             ("--epochs", "epochs", 1), ("--test-rows", "test_rows", 1))
#: (option, its attribute): comma-separated lists that must name at least one entry.
_LISTS = (("--models", "models"), ("--methods", "methods"), ("--parts", "parts"),
          ("--target", "kg_target"), ("--sizes", "sizes"), ("--facts", "facts"),
          ("--links", "links"), ("--dims", "dims"), ("--variants", "variants"))


def _names(text: str) -> list[str]:
    """The entries of a comma-separated option, blanks dropped."""
    return [name.strip() for name in text.split(",") if name.strip()]


def _check_args(args: argparse.Namespace) -> None:
    """Every option's range and shape, before anything is loaded or trained (a
    :class:`ConfigError` naming the option and what it takes)."""
    from sellakit.errors import ConfigError

    for option, attr, low in _AT_LEAST:
        value = getattr(args, attr, None)
        if value is not None and value < low:
            raise ConfigError(f"{option} {value}: give a whole number of at least {low}.")
    for option, attr in _LISTS:
        text = getattr(args, attr, None)
        if text is not None and not _names(text):
            raise ConfigError(f"{option} {text!r} names nothing; give one or more names, "
                              "comma-separated (see sellakit bench TARGET --help).")
    if getattr(args, "sizes", None) is not None:
        bad = [size for size in _names(args.sizes) if not size.isdigit() or int(size) < 1]
        if bad:
            raise ConfigError(f"--sizes {args.sizes!r}: {', '.join(bad)} is not a whole number "
                              "of at least 1; give sizes such as 8,16,32.")
    if getattr(args, "out", None) is not None:
        from sellakit.benchmarks import check_out

        check_out(args.out)


#: Path options whose value is written as its environment variable in a table's command when
#: they are equal, so a committed table names no machine's folder (a test checks the name).
_PATH_VARIABLES = {"--data-dir": "SELLAKIT_DBP5L"}


def command_text(argv: list[str]) -> str:
    """The command a table prints: ``sellakit`` and ``argv``, a path option given the value of
    its variable (:data:`_PATH_VARIABLES`) written as ``"$VARIABLE"``."""
    words = list(argv)
    for i, word in enumerate(words):
        option, _, value = word.partition("=")
        variable = _PATH_VARIABLES.get(option)
        if variable is None or not os.environ.get(variable):
            continue
        given = value if value else (words[i + 1] if i + 1 < len(words) else "")
        if os.path.abspath(given) == os.path.abspath(os.environ[variable]):
            if value:
                words[i] = f'{option}="${variable}"'
            else:
                words[i + 1] = f'"${variable}"'
    return "sellakit " + " ".join(words)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.command = command_text(argv)
    try:
        _check_args(args)  # before minutes of work, not after
        return args.func(args)
    except (SellakitError, OSError) as err:  # one paragraph a person can act on, no traceback
        print(f"sellakit: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
