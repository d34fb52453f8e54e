"""The recommendation layer, after alignment: SeLLa-Rec's special-token prompts on an LLM, with
TALLRec- and CoLLM-style baselines and SeLLa-Rec's ablations.

Stage order: data -> cf -> llm -> align -> rec. ``rec`` reads the aligned MF only through
:class:`sellakit.align.AlignedTables`.
"""

from sellakit.rec.config import NOTEBOOK_QUICK_ROWS, RecConfig, make_accelerator
from sellakit.rec.methods import (ABLATIONS, METHOD_NAMES, METHOD_TABLE, METHODS, RecMethod,
                                  RecRun, fresh_stage3_model, method_help, method_table,
                                  prepare_stage2, run_methods, sample_rows, sample_splits,
                                  score_rows, template_for)
from sellakit.rec.methods import KG_METHODS, score_kg_ablation
from sellakit.rec.model import (ScaledDirection, ShrunkStart, SpecialTokenRec, add_lora, collate_rows,
                                collm_mapping, copy_table, input_embedding_norm, score_prompts)
from sellakit.rec.prefix import PrefixCache
from sellakit.rec.prompts import (LAYOUTS, SLOT_TOKENS, TEMPLATES, TEMPLATES_BEFORE_TITLE,
                                  EncodedPrompt, PromptBuilder,
                                  add_slot_tokens, answer_token_ids, collate)
from sellakit.rec.prompts import KG_TOKEN, add_kg_token
from sellakit.rec.probe import SLOT_ABLATIONS, slot_ablation
from sellakit.rec.train import slot_norms, train_rec

__all__ = ["TEMPLATES", "TEMPLATES_BEFORE_TITLE", "LAYOUTS", "SLOT_TOKENS", "PromptBuilder", "EncodedPrompt", "collate",
           "add_slot_tokens", "answer_token_ids",
           "SpecialTokenRec", "collm_mapping", "add_lora", "copy_table", "collate_rows",
           "score_prompts", "ScaledDirection", "ShrunkStart", "input_embedding_norm", "PrefixCache",
           "RecConfig", "NOTEBOOK_QUICK_ROWS", "make_accelerator", "train_rec", "slot_norms",
           "METHODS", "ABLATIONS", "METHOD_NAMES", "METHOD_TABLE", "RecMethod", "method_table",
           "method_help", "RecRun", "run_methods", "sample_rows", "sample_splits",
           "prepare_stage2", "template_for", "fresh_stage3_model", "score_rows",
           "KG_METHODS", "KG_TOKEN", "add_kg_token", "score_kg_ablation",
           "SLOT_ABLATIONS", "slot_ablation"]
