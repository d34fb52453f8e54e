"""``sellakit bench rec`` (the LLM recommenders, published rows beside them) and
``sellakit bench rec-scoring`` (batched against one-at-a-time scoring throughput)."""

from __future__ import annotations

from sellakit.benchmarks.report import markdown_table
from sellakit.data.protocol import CTRSplit
from sellakit.published import llm_rec_context

__all__ = ["rec_benchmark", "rec_markdown", "rec_scoring_benchmark", "rec_scoring_markdown",
           "random_sella_scorer"]

def rec_benchmark(split: CTRSplit, methods: list[str], *, preset: str = "quick",
                  seed: int = 2025, model: str = "smollm2-135m", aligned: str | None = None,
                  progress: bool = True) -> dict:
    """MF, TALLRec-style, CoLLM-style and SeLLa-Rec (and ablations) on ``split``.

    Returns ``{method: {"test": {"auc", "uauc", "rows"}, "test_warm", "test_cold", "valid",
    "seconds", "backbone", "seed", ...}}`` plus ``"_run"`` (preset, rows, stage-2 seconds).
    With ``accelerate launch``, every process runs this and the main one writes the file.
    """
    import time

    from sellakit.llm import load_backbone
    from sellakit.rec import RecConfig, make_accelerator, prepare_stage2, run_methods

    config = RecConfig.preset(preset, seed=seed)
    accelerator = make_accelerator(config)
    started = time.perf_counter()
    backbone = load_backbone(model, device=accelerator.device)
    plain, semantic, tables = prepare_stage2(split, backbone, preset=preset, seed=seed,
                                             aligned=aligned, progress=progress)
    stage2 = time.perf_counter() - started
    run = run_methods(split, methods, config, plain_mf=plain, aligned=tables, semantic=semantic,
                      backbone=backbone, accelerator=accelerator, progress=progress)
    results = {m: run.results[m] for m in methods}
    results["_run"] = {"preset": preset, "dataset": split.name, "backbone": backbone.name,
                       "device": str(accelerator.device), "processes": accelerator.num_processes,
                       "rows": {s: len(f) for s, f in run.rows.items()},
                       "stage1_seconds": round(run.training["tallrec"].seconds, 1)
                       if "tallrec" in run.training else None,
                       "stage2_seconds": round(stage2, 1), "config": vars(config)}
    return results


def rec_markdown(results: dict, *, command: str) -> str:
    """Our rows (AUC/UAUC on all, warm and cold test rows) and the published ones."""
    meta = results["_run"]
    rows = meta["rows"]
    lines = [f"LLM recommenders on {meta['dataset']}, preset {meta['preset']} "
             f"({rows['train']:,} train / {rows['valid']:,} valid / {rows['test']:,} test rows), "
             f"backbone {meta['backbone']}, {meta['device']} x{meta['processes']}. "
             f"Command: `{command}`", ""]
    table = [[name] + [f"{c:.4f}" for c in (
        r["valid"]["auc"], r["test"]["auc"], r["test"]["uauc"], r["test_warm"]["auc"],
        r["test_warm"]["uauc"], r["test_cold"]["auc"], r["test_cold"]["uauc"])]
        + [r["seconds"], r["seed"]] for name, r in results.items() if not name.startswith("_")]
    table += [[row.label, None, f"{row.metrics['auc']:.4f}", f"{row.metrics['uauc']:.4f}"]
              + [None] * 6 for row in llm_rec_context(meta["dataset"])]
    lines += markdown_table(["method", "valid AUC", "test AUC", "test UAUC", "warm AUC",
                             "warm UAUC", "cold AUC", "cold UAUC", "seconds", "seed"], table)
    lines += ["", f"Stage 1 (LoRA, text prompts) {meta['stage1_seconds']} s, shared by every "
              f"LLM method; stage 2 (plain + aligned MF, item vectors) {meta['stage2_seconds']} s. "
              "Seconds per method: its own training and validation."]
    return "\n".join(lines) + "\n"


def random_sella_scorer(llm, tokenizer, n_users: int, n_items: int, *, trainable: bool,
                        seed: int = 2025):
    """A SeLLa-Rec scorer over ``llm`` with random CF (256-d) and semantic tables of the real
    shapes, for timing: the tables' values do not change the cost."""
    import numpy as np
    from torch import nn

    from sellakit.align import Projector
    from sellakit.rec import SpecialTokenRec, answer_token_ids, copy_table

    rng = np.random.default_rng(seed)
    d = llm.get_input_embeddings().weight.shape[1]
    return SpecialTokenRec(
        llm, answer_token_ids(tokenizer),
        user_table=copy_table(rng.normal(size=(n_users, 256)), trainable=trainable),
        item_table=copy_table(rng.normal(size=(n_items, 256)), trainable=trainable),
        cf_projector=Projector(256, d),
        semantic=copy_table(rng.normal(size=(n_items, d)), trainable=trainable),
        semantic_projector=nn.Linear(d, d))


def rec_scoring_benchmark(*, model: str = "smollm2-135m", rows: int = 128,
                          batch_size: int = 32, history_len: int = 10, seed: int = 2025) -> dict:
    """Prompts per second of SeLLa-Rec scoring: length-sorted, right-padded batches against one
    prompt at a time, on the same ML-1M test prompts (seeded sample), same model, same run."""
    import time

    import numpy as np

    from sellakit.data import collm_split, load_movielens_1m
    from sellakit.llm import load_backbone
    from sellakit.rec import TEMPLATES, PromptBuilder, add_slot_tokens, sample_rows, score_prompts

    split = collm_split(load_movielens_1m())
    backbone = load_backbone(model)
    add_slot_tokens(backbone.tokenizer, backbone.model)
    frame = sample_rows(split.test, rows, seed)
    prompts = PromptBuilder(backbone.tokenizer, TEMPLATES["sella"],
                            history_len=history_len).encode_rows(frame, split.item_titles)
    scorer = random_sella_scorer(backbone.model, backbone.tokenizer, split.n_users,
                                 split.n_items, trainable=False, seed=seed
                                 ).to(backbone.device, backbone.dtype)
    pad = backbone.tokenizer.pad_token_id
    score_prompts(scorer, prompts[:4], frame.iloc[:4], pad_id=pad, batch_size=4)  # warm-up
    timings, scores = {}, {}
    for name, size in (("batched", batch_size), ("one_at_a_time", 1)):
        started = time.perf_counter()
        scores[name] = score_prompts(scorer, prompts, frame, pad_id=pad, batch_size=size)
        timings[name] = time.perf_counter() - started
    return {"model": backbone.name, "device": str(backbone.device),
            "dtype": str(backbone.dtype).removeprefix("torch."), "prompts": rows,
            "batch_size": batch_size, "history_len": history_len,
            "mean_tokens": float(np.mean([len(p.ids) for p in prompts])),
            "batched_prompts_per_s": rows / timings["batched"],
            "one_at_a_time_prompts_per_s": rows / timings["one_at_a_time"],
            "speedup": timings["one_at_a_time"] / timings["batched"],
            "max_abs_score_diff": float(np.abs(scores["batched"] - scores["one_at_a_time"]).max())}


def rec_scoring_markdown(result: dict, *, command: str) -> str:
    """Prompts per second of the two ways, on the same prompts."""
    lines = [f"SeLLa-Rec scoring throughput, {result['model']} on {result['device']} "
             f"({result['dtype']}), {result['prompts']} ML-1M test prompts of "
             f"{result['mean_tokens']:.0f} tokens on average. Command: `{command}`", ""]
    lines += markdown_table(["scoring", "prompts/s"], [
        [f"length-sorted batches of {result['batch_size']}, right-padded",
         f"{result['batched_prompts_per_s']:.2f}"],
        ["one prompt at a time", f"{result['one_at_a_time_prompts_per_s']:.2f}"]])
    lines += ["", f"Speed-up {result['speedup']:.2f}x; largest score difference between the two "
              f"{result['max_abs_score_diff']:.1e}."]
    return "\n".join(lines) + "\n"
