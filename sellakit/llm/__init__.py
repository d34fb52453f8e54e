"""The LLM side: backbone loading, item semantic embeddings, and the recommendation layer
(SeLLa-Rec's special-token prompts, with TALLRec- and CoLLM-style baselines)."""

from sellakit.llm.backbone import Backbone, load_backbone, tiny_random_llama
from sellakit.llm.methods import ABLATIONS, METHODS, CFTables, RecRun, run_methods
from sellakit.llm.rec import RecConfig, SpecialTokenRec
from sellakit.llm.semantic import item_semantic_embeddings

__all__ = ["Backbone", "load_backbone", "tiny_random_llama", "item_semantic_embeddings",
           "RecConfig", "SpecialTokenRec", "run_methods", "RecRun", "CFTables", "METHODS",
           "ABLATIONS"]
