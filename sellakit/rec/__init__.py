"""The recommendation layer, after alignment: SeLLa-Rec's special-token prompts on an LLM, with
TALLRec- and CoLLM-style baselines and SeLLa-Rec's ablations.

Stage order: data -> cf -> llm -> align -> rec. ``rec`` reads the aligned MF only through
:class:`sellakit.align.AlignedTables`.
"""

from sellakit.rec.config import RecConfig, make_accelerator
from sellakit.rec.methods import (ABLATIONS, METHODS, RecRun, prepare_stage2, run_methods,
                                  sample_rows, template_for)
from sellakit.rec.model import (SpecialTokenRec, add_lora, collate_rows, collm_mapping,
                                copy_table, score_prompts)
from sellakit.rec.prompts import (SLOT_TOKENS, TEMPLATES, EncodedPrompt, PromptBuilder,
                                  add_slot_tokens, answer_token_ids, collate)
from sellakit.rec.train import train_rec

__all__ = ["TEMPLATES", "SLOT_TOKENS", "PromptBuilder", "EncodedPrompt", "collate",
           "add_slot_tokens", "answer_token_ids",
           "SpecialTokenRec", "collm_mapping", "add_lora", "copy_table", "collate_rows",
           "score_prompts",
           "RecConfig", "make_accelerator", "train_rec",
           "METHODS", "ABLATIONS", "RecRun", "run_methods", "sample_rows", "prepare_stage2",
           "template_for"]
