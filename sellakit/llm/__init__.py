"""The LLM side: backbone loading and item semantic embeddings. The recommendation layer built on
them is a later stage of its own (``rec``, after alignment); nothing here imports it."""

from sellakit.llm.backbone import Backbone, load_backbone, prepare_backbone, tiny_random_llama
from sellakit.llm.semantic import center_items, item_semantic_embeddings

__all__ = ["Backbone", "load_backbone", "prepare_backbone", "tiny_random_llama",
           "item_semantic_embeddings", "center_items"]
