"""Check and time the CUDA path of the kit on a GPU machine (one script, one run).

What it does, each part on its own so one failure does not hide the others:

0. ``padding``: one LoRA step on the same prompts, left-padded (the kit's former layout) and
   right-padded (the kit's layout), counting non-finite gradients.
1. ``stages``: SeLLa-Rec end to end on CUDA (bf16): the plain MF and the semantic table of
   stage 2, then :func:`sellakit.rec.run_methods` (tallrec, collm, sella) with the *paper*
   preset (LoRA r64 on every projection, gradient checkpointing, effective batch 128) on a
   small seeded sample of ML-1M rows. The LLM is **randomly initialised in SmolLM2-135M's
   shape** (its real config and tokenizer; the weights do not travel to the GPU machine), so
   the AUCs say nothing about quality: the check is that every stage runs, the loss is finite
   and validation picks a checkpoint.
2. ``sweep``: one SeLLa-Rec training step (forward + backward, LoRA + slot projectors) per
   micro-batch size, with and without gradient checkpointing, for the 135M shape and a
   **randomly initialised 7B Llama shape** (Vicuna-7B's dims: 4096 wide, 32 layers, 11008 MLP;
   SmolLM2's vocabulary), bf16: seconds per step, prompts per second, peak GPU memory. Then
   scoring throughput (length-sorted batches against one prompt at a time).
3. KG: run separately, ``sellakit bench kg --target all`` (see bench/README.md).

Command (on the GPU machine, the kit's cache in ``$SELLAKIT_CACHE``)::

    sellakit bench cuda --shape-dir DIR --aligned build/aligned_mf.pt --out OUT.json

``DIR`` holds SmolLM2-135M's config.json and tokenizer files (no weights). ``--device cpu`` is a
dry run with small sizes, to try the check before a GPU is at hand.
"""

from __future__ import annotations

import json
import time
import traceback

import numpy as np
import torch

from sellakit.benchmarks.report import markdown_table, write_report
from sellakit.errors import ConfigError

__all__ = ["cuda_check", "cuda_markdown"]

DEVICE = "cuda"  # set by cuda_check (one check per process)


def sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def peak_gib() -> float:
    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if DEVICE == "cuda" else 0.0


def reset_peak() -> None:
    if DEVICE == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def random_backbone(shape_dir: str, shape: str):
    """A randomly initialised causal LM of ``shape`` ("135m" or "7b") on CUDA in bf16."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, LlamaConfig

    from sellakit.llm import prepare_backbone

    tokenizer = AutoTokenizer.from_pretrained(shape_dir)
    if shape == "135m":
        config = AutoConfig.from_pretrained(shape_dir)
        name = "SmolLM2-135M shape, RANDOM init (CUDA check only)"
    else:
        config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=4096, intermediate_size=11008,
                             num_hidden_layers=32, num_attention_heads=32,
                             num_key_value_heads=32, max_position_embeddings=4096,
                             tie_word_embeddings=False,
                             pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
        name = "Llama-7B shape (Vicuna-7B dims), RANDOM init (CUDA check only)"
    torch.manual_seed(0)
    dtype = torch.bfloat16 if DEVICE == "cuda" else torch.float32
    with torch.device(DEVICE):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    return prepare_backbone(model, tokenizer, name, torch.device(DEVICE), dtype)


def padding(split, shape_dir: str) -> dict:
    """Non-finite LoRA gradients after one step on a left-padded batch (read at position -1,
    the kit's former layout) and on the kit's right-padded batch, same prompts and model."""
    from sellakit.rec import (TEMPLATES, PromptBuilder, RecConfig, SpecialTokenRec, add_lora,
                              add_slot_tokens, answer_token_ids, collate_rows, sample_rows)

    backbone = random_backbone(shape_dir, "135m")
    tokenizer = backbone.tokenizer
    add_slot_tokens(tokenizer, backbone.model)
    frame = sample_rows(split.train, 16, 2025)
    prompts = PromptBuilder(tokenizer, TEMPLATES["text"], history_len=10
                            ).encode_rows(frame, split.item_titles)
    llm = add_lora(backbone.model, RecConfig.paper())
    yes, no = answer_token_ids(tokenizer)
    batch = collate_rows(prompts, frame, tokenizer.pad_token_id, DEVICE)
    out = {"lengths": sorted({len(p.ids) for p in prompts})}

    def bad_grads(loss) -> int:
        llm.zero_grad(set_to_none=True)
        loss.backward()
        return sum(int((~torch.isfinite(p.grad)).sum()) for p in llm.parameters()
                   if p.grad is not None)

    # the former layout: left padding, logits at the last position
    width = batch["input_ids"].shape[1]
    ids = torch.full_like(batch["input_ids"], tokenizer.pad_token_id)
    mask = torch.zeros_like(batch["attention_mask"])
    for row, p in enumerate(prompts):
        ids[row, width - len(p.ids):] = torch.tensor(p.ids)
        mask[row, width - len(p.ids):] = 1
    logits = llm(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1
                                                                   ).clamp(min=0),
                 logits_to_keep=1).logits[:, -1].float()
    loss = nn_bce(logits[:, yes] - logits[:, no], batch["label"])
    out["left_padded"] = {"loss": round(loss.item(), 4), "nonfinite_lora_grads": bad_grads(loss)}
    model = SpecialTokenRec(llm, (yes, no))
    right = model(batch)
    loss = nn_bce(right, batch["label"])
    out["right_padded"] = {"loss": round(loss.item(), 4), "nonfinite_lora_grads": bad_grads(loss)}
    out["max_abs_logit_diff"] = (right - (logits[:, yes] - logits[:, no])).abs().max().item()
    backbone.model = llm.unload()
    return out


def nn_bce(logits, labels):
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)


def stages(split, shape_dir: str, aligned: str, rows: int) -> dict:
    from sellakit.rec import RecConfig, prepare_stage2, run_methods

    from pathlib import Path

    from sellakit.align import AlignedTables

    backbone = random_backbone(shape_dir, "135m")
    started = time.perf_counter()
    plain, align_config = prepare_stage2(split, preset="quick", progress=False)
    tables = AlignedTables.load(aligned) if aligned and Path(aligned).exists() else None
    if tables is not None and tables.item.shape[1] != plain.item_embedding.weight.shape[1]:
        tables = None  # a saved aligned MF of another width: align here, after stage 1
    stage2 = time.perf_counter() - started
    config = RecConfig.paper(train_rows=rows, valid_rows=rows // 2, test_rows=rows,
                             eval_every=2, grad_accum=2)
    started = time.perf_counter()
    run = run_methods(split, ["tallrec", "collm", "sella"], config, plain_mf=plain,
                      aligned=tables, align_config=None if tables else align_config,
                      backbone=backbone, progress=False)
    out = {"backbone": backbone.name, "rows": rows, "stage2_seconds": round(stage2, 1),
           "stage3_seconds": round(time.perf_counter() - started, 1),
           "peak_gib": peak_gib(), "methods": {}}
    for name, result in run.results.items():
        history = run.training[name].history
        out["methods"][name] = {"test_auc": result["test"]["auc"],
                                "seconds": result["seconds"], "best_step": result["best_step"],
                                "losses_finite": bool(np.isfinite(
                                    history.train_loss.dropna()).all()),
                                "valid_auc_by_step": history.valid_auc.round(4).tolist()}
    return out


def sweep(split, shape_dir: str, shape: str, sizes: list[int], score_rows: int) -> dict:
    from sellakit.benchmarks.rec import random_sella_scorer
    from sellakit.rec import (TEMPLATES, PromptBuilder, RecConfig, add_lora, add_slot_tokens,
                              collate_rows, sample_rows, score_prompts)

    backbone = random_backbone(shape_dir, shape)
    tokenizer = backbone.tokenizer
    add_slot_tokens(tokenizer, backbone.model)
    frame = sample_rows(split.train, max(sizes + [score_rows]), 2025)
    prompts = PromptBuilder(tokenizer, TEMPLATES["sella"], history_len=10
                            ).encode_rows(frame, split.item_titles)
    out = {"backbone": backbone.name, "params_b": round(sum(
        p.numel() for p in backbone.model.parameters()) / 1e9, 3),
        "mean_tokens": float(np.mean([len(p.ids) for p in prompts])), "train_steps": []}
    pad = tokenizer.pad_token_id
    for checkpointing in (True, False):
        llm = add_lora(backbone.model, RecConfig.paper(gradient_checkpointing=checkpointing))
        model = random_sella_scorer(llm, tokenizer, split.n_users, split.n_items,
                                    trainable=True).to(DEVICE)
        optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], 1e-4)
        model.train()
        for size in sizes:
            batch = collate_rows(prompts[:size], frame.iloc[:size], pad, DEVICE)
            out["train_steps"].append({"checkpointing": checkpointing, "batch": size,
                                       **_time_step(model, optimiser, batch)})
            print(json.dumps(out["train_steps"][-1]), flush=True)
        if checkpointing:  # scoring throughput once, with this adapter
            for name, size in (("batched", 64), ("one_at_a_time", 1)):
                n = score_rows if size > 1 else min(score_rows, 64)
                sync()
                t0 = time.perf_counter()
                score_prompts(model, prompts[:n], frame.iloc[:n], pad_id=pad, batch_size=size)
                sync()
                out[f"score_{name}_prompts_per_s"] = round(n / (time.perf_counter() - t0), 1)
        backbone.model = llm.unload()  # the bare model again for the next adapter
        getattr(backbone.model, "activation_checkpointing_disable",
                backbone.model.gradient_checkpointing_disable)()
        del model, optimiser, llm
        reset_peak()
    return out


def _time_step(model, optimiser, batch: dict) -> dict:
    """Seconds, prompts/s, loss and peak memory of one training step on ``batch`` (one warm-up,
    two timed), or ``{"oom": True}``."""
    reset_peak()
    try:
        times = []
        for _ in range(3):
            sync()
            t0 = time.perf_counter()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(batch),
                                                                        batch["label"])
            loss.backward()
            optimiser.step()
            optimiser.zero_grad(set_to_none=True)
            sync()
            times.append(time.perf_counter() - t0)
    except torch.OutOfMemoryError:
        return {"oom": True}
    step = float(np.mean(times[1:]))
    return {"seconds": round(step, 4), "prompts_per_s": round(len(batch["label"]) / step, 1),
            "loss": round(loss.item(), 4), "peak_gib": peak_gib()}


def cuda_markdown(result: dict, *, command: str) -> str:
    """The tables of one run (GPU, versions, each part)."""
    lines = [f"CUDA check on {result['device']} (torch {result['torch']}, transformers "
             f"{result['transformers']}, peft {result['peft']}); LLMs are RANDOMLY initialised "
             f"in the named shapes (weights do not travel to the GPU machine), bf16. "
             f"Command: `{command}`", ""]
    pad = result.get("padding", {})
    if "left_padded" in pad:
        lines += markdown_table(
            ["one LoRA step, 16 prompts", "loss", "non-finite LoRA grads"],
            [[name.replace("_", "-"), pad[name]["loss"], pad[name]["nonfinite_lora_grads"]]
             for name in ("left_padded", "right_padded")]) + [""]
    st = result.get("stages", {})
    if "methods" in st:
        lines += [f"Stages end to end ({st['backbone']}; paper preset on {st['rows']} train "
                  f"rows; stage 2 {st['stage2_seconds']} s, stage 3 {st['stage3_seconds']} s, "
                  f"peak {st['peak_gib']} GiB). AUCs of a random model say nothing about "
                  "quality.", ""]
        lines += markdown_table(
            ["method", "losses finite", "best step", "test AUC", "seconds"],
            [[m, v["losses_finite"], v["best_step"], f"{v['test_auc']:.3f}", v["seconds"]]
             for m, v in st["methods"].items()], numeric_from=2) + [""]
    for part in ("sweep135m", "sweep7b"):
        sw = result.get(part, {})
        if "train_steps" not in sw:
            continue
        lines += [f"{sw['backbone']}, {sw['params_b']} B parameters, prompts of "
                  f"{sw['mean_tokens']:.0f} tokens on average; LoRA r64 on every projection. "
                  f"Scoring: {sw['score_batched_prompts_per_s']} prompts/s in batches of 64, "
                  f"{sw['score_one_at_a_time_prompts_per_s']} one at a time.", ""]
        lines += markdown_table(
            ["checkpointing", "micro-batch", "s/step", "prompts/s", "peak GiB"],
            [[row["checkpointing"], row["batch"],
              *(("out of memory", "", "") if row.get("oom") else
                (row["seconds"], row["prompts_per_s"], row["peak_gib"]))]
             for row in sw["train_steps"]]) + [""]
    return "\n".join(lines)


#: The parts of the check, in the order they run by default.
PARTS = ("padding", "stages", "sweep135m", "sweep7b")


def cuda_check(*, shape_dir: str, out: str, aligned: str = "build/aligned_mf.pt",
               rows: int = 512, parts: tuple[str, ...] = ("padding", "stages", "sweep135m",
                                                          "sweep7b"),
               sizes: tuple[int, ...] = (8, 16, 32, 64, 128), score_rows: int = 512,
               device: str = "cuda", command: str = "sellakit bench cuda") -> dict:
    """Run the named ``parts`` (each on its own: one failure is reported and the others go on)
    and write the JSON after each part, then the markdown; returns the results."""
    unknown = [part for part in parts if part not in PARTS]
    if unknown or not parts:
        raise ConfigError(f"--parts {','.join(parts)}: {', '.join(unknown) or 'none'} is not a "
                          f"part; choose from {', '.join(PARTS)}.")
    global DEVICE
    DEVICE = device
    import peft
    import transformers

    from sellakit.data import collm_split, load_movielens_1m

    split = collm_split(load_movielens_1m())
    result = {"device": torch.cuda.get_device_name() if DEVICE == "cuda" else "cpu",
              "torch": torch.__version__, "transformers": transformers.__version__,
              "peft": peft.__version__}
    jobs = {"padding": lambda: padding(split, shape_dir),
            "stages": lambda: stages(split, shape_dir, aligned, rows),
            "sweep135m": lambda: sweep(split, shape_dir, "135m", list(sizes), score_rows),
            "sweep7b": lambda: sweep(split, shape_dir, "7b", [4, 8, 16, 32], score_rows // 2)}
    for part in parts:
        started = time.perf_counter()
        try:
            result[part] = jobs[part]()
        except Exception:  # report and go on: one run of this check on a GPU machine
            result[part] = {"error": traceback.format_exc()[-3000:]}
        result[part]["part_seconds"] = round(time.perf_counter() - started, 1)
        print(part, json.dumps(result[part])[:2000], flush=True)
        reset_peak()
        write_report(out, result, cuda_markdown(result, command=command))
    return result
