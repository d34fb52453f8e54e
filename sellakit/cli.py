"""The command line: ``sellakit`` (or ``python -m sellakit``).

Commands::

    sellakit run [--quick|--paper] [NOTEBOOK ...]      execute the series, write the summary
    sellakit data export ml-1m --format collm DIR       CoLLM-format pickles (or --format parquet)
    sellakit data fetch ml-1m                           fetch into the cache and print the counts
    sellakit bench cf --dataset ml-1m --models mf,lightgcn,sasrec --out FILE.json
    sellakit bench align --dataset ml-1m --quick --out FILE.json
    sellakit bench kg --data-dir DIR --target el [--preset quick|paper] --out FILE.json
    sellakit bench kg-eval --data-dir DIR --target el --out FILE.json
    sellakit bench rec --dataset ml-1m --preset quick --methods mf,tallrec,collm,sella --out F.json
    accelerate launch -m sellakit bench rec --preset paper --model Qwen/Qwen2-7B --out F.json
    sellakit bench rec-scoring --out FILE.json         batched vs one-at-a-time prompts/s
    sellakit cache                                      where the cache is, what it holds
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sellakit.data.catalog import DATASETS, load_split
from sellakit.errors import SellakitError

__all__ = ["main"]

def _cmd_run(args) -> int:
    from sellakit.runner import build_dir, run_series

    from sellakit.config import quick_mode

    # --quick / --paper win; otherwise SELLAKIT_QUICK decides (quick unless it is 0).
    quick = True if args.quick else False if args.paper else quick_mode()
    run_series(args.notebooks or None, quick=quick)
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

    for path in export_split(split, args.dir, args.format):
        print(path)
    return 0


def _cmd_bench(args) -> int:
    from sellakit import bench

    preset = "quick" if args.quick else args.preset
    command = "sellakit " + " ".join(sys.argv[1:])
    if args.what == "rec-scoring":
        results = bench.rec_scoring_benchmark(model=args.model, rows=args.rows,
                                              batch_size=args.batch_size, seed=args.seed)
        return _write_bench(args.out, results, bench.rec_scoring_markdown(results,
                                                                          command=command))
    split = load_split(args.dataset, amazon_ratings=args.amazon_ratings,
                       amazon_meta=args.amazon_meta)
    if args.what == "rec":
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        results = bench.rec_benchmark(split, methods, preset=preset, seed=args.seed,
                                      model=args.model, aligned=args.aligned)
        from accelerate import PartialState

        if not PartialState().is_main_process:  # under accelerate launch: one writer
            return 0
        return _write_bench(args.out, results, bench.rec_markdown(results, command=command))
    if args.what == "cf":
        models = [m.strip() for m in args.models.split(",") if m.strip()]
        results = bench.cf_benchmark(split, models, preset=preset, seed=args.seed)
        markdown = bench.cf_markdown(results, command=command, dataset=split.name)
    else:
        results = bench.align_benchmark(split, preset=preset, seed=args.seed, model=args.model)
        markdown = bench.align_markdown(results, command=command)
    return _write_bench(args.out, results, markdown)


def _write_bench(path: str, results: dict, markdown: str) -> int:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1, default=str) + "\n")
    out.with_suffix(".md").write_text(markdown)
    print(markdown)
    return 0


def _load_kg(args):
    """DBP-5L from --data-dir (downloaded when it is left out), or a derived PyKEEN split."""
    from sellakit.kg.data import derived_multisource, load_dbp5l

    if args.kg_dataset == "dbp5l":
        return load_dbp5l(args.data_dir)
    return derived_multisource(args.kg_dataset.split("-")[0], seed=0)


def _cmd_bench_kg(args) -> int:
    from sellakit.kg import bench as kgbench

    ms = _load_kg(args)
    command = "sellakit " + " ".join(sys.argv[1:])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.what == "kg":
        targets = list(ms.kgs) if args.target == "all" else args.target.split(",")
        results = kgbench.kg_benchmark(ms, targets, preset=args.preset, seed=args.seed,
                                       model=args.model, encoder=args.encoder)
        out.write_text(json.dumps(results, indent=1) + "\n")  # before the table: keep results
        markdown = kgbench.kg_markdown(results, command=command)
    else:
        results = kgbench.kg_eval_benchmark(ms, args.target, seed=args.seed)
        out.write_text(json.dumps(results, indent=1) + "\n")
        markdown = kgbench.kg_eval_markdown(results, command=command)
    out.with_suffix(".md").write_text(markdown)
    print(markdown)
    return 0


def _cmd_cache(args) -> int:
    from sellakit.cache import cache_dir

    root = cache_dir()
    print(f"sellakit cache: {root} (set SELLAKIT_CACHE to move it)")
    for path in sorted(root.glob("*/*")):
        if path.parent.name == "locks":
            continue
        size = sum(p.stat().st_size for p in path.rglob("*")) if path.is_dir() \
            else path.stat().st_size
        print(f"  {path.relative_to(root)}  {size / 1e6:.1f} MB")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sellakit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="execute notebooks (quick mode by default)")
    mode = run.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true",
                      help="quick mode (the default unless SELLAKIT_QUICK=0)")
    mode.add_argument("--paper", action="store_true", help="the paper protocol (GPU advised)")
    run.add_argument("notebooks", nargs="*", help="notebook stems, e.g. 01_data (default: all)")
    run.set_defaults(func=_cmd_run)

    data = sub.add_parser("data", help="fetch a data set, or export its split")
    data_sub = data.add_subparsers(dest="action", required=True)
    fetch = data_sub.add_parser("fetch", help="fetch into the cache; print the split's counts")
    fetch.add_argument("dataset", choices=DATASETS)
    export = data_sub.add_parser("export", help="write the split for other code bases")
    export.add_argument("dataset", choices=DATASETS)
    export.add_argument("dir", help="output folder")
    export.add_argument("--format", choices=["collm", "parquet"], default="collm")
    for command in (fetch, export):
        command.set_defaults(func=_cmd_data)

    bench = sub.add_parser("bench", help="benchmarks that make the README's tables")
    bench.add_argument("what", choices=["cf", "align", "rec", "rec-scoring"])
    bench.add_argument("--dataset", choices=DATASETS, default="ml-1m")
    bench.add_argument("--models", default="mf,lightgcn,sasrec")
    bench.add_argument("--preset", choices=["quick", "paper"], default="paper")
    bench.add_argument("--quick", action="store_true", help="same as --preset quick")
    bench.add_argument("--model", default="smollm2-135m",
                       help="LLM for align/rec/rec-scoring (HF id or folder)")
    bench.add_argument("--methods", default="mf,tallrec,collm,sella",
                       help="rec: from mf,tallrec,collm,sella and the ablations "
                            "sella_no_align,sella_random_init,sella_no_warm")
    bench.add_argument("--aligned", help="rec: stage 2's aligned MF (notebook 04 writes "
                                         "build/aligned_mf.pt); trained here if not given")
    bench.add_argument("--rows", type=int, default=128, help="rec-scoring: test prompts")
    bench.add_argument("--batch-size", type=int, default=32, help="rec-scoring: batch size")
    bench.add_argument("--seed", type=int, default=2025)
    bench.add_argument("--out", required=True, help="JSON file; a .md table is written beside it")
    bench.set_defaults(func=_cmd_bench)

    for command in (fetch, export, bench):
        command.add_argument("--amazon-ratings", help="Amazon 2018 Books ratings CSV")
        command.add_argument("--amazon-meta", help="Amazon 2018 meta_Books JSON lines")

    cache = sub.add_parser("cache", help="show the cache folder and its entries")
    cache.set_defaults(func=_cmd_cache)
    return parser


def build_kg_bench_parser() -> argparse.ArgumentParser:
    """``sellakit bench kg|kg-eval``: multi-source KG benchmarks (notebooks 06-07)."""
    parser = argparse.ArgumentParser(prog="sellakit bench", description=(
        "kg: teacher once, then scratch / joint retrain / student with KD / KD ablations on "
        "the target; kg-eval: our evaluator against PyKEEN's RankBasedEvaluator."))
    parser.add_argument("what", choices=["kg", "kg-eval"])
    parser.add_argument("--data-dir", default=None,
                        help="DBP-5L folder (KEnS data/: kg/, entity/, seed_alignlinks/, "
                             "relations.txt); left out: downloaded from GitHub when online")
    parser.add_argument("--dataset", dest="kg_dataset", default="dbp5l",
                        choices=["dbp5l", "umls-derived", "nations-derived", "kinships-derived"],
                        help="dbp5l (real) or a derived multi-source split of a PyKEEN set")
    parser.add_argument("--target", default="el",
                        help="target KG (el, ja, es, fr, en; comma-separated or `all` for kg)")
    parser.add_argument("--preset", choices=["quick", "paper"], default="quick")
    parser.add_argument("--model", choices=["rotate", "transe", "complex"], default="rotate",
                        help="kg: interaction of every model compared")
    parser.add_argument("--encoder", choices=["none", "gnn"], default="none",
                        help="kg: entity encoder (gnn: aggregate each entity's in-edges)")
    parser.add_argument("--seed", type=int, default=2025)
    parser.add_argument("--out", required=True, help="JSON file; a .md table is written beside")
    parser.set_defaults(func=_cmd_bench_kg)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) >= 2 and argv[0] == "bench" and argv[1] in ("kg", "kg-eval"):
        args = build_kg_bench_parser().parse_args(argv[1:])
    else:
        args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (SellakitError, OSError) as err:  # one paragraph a person can act on, no traceback
        print(f"sellakit: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
