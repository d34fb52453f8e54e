"""The LLM side: backbone loading and item semantic embeddings."""

from sellakit.llm.backbone import Backbone, load_backbone, tiny_random_llama
from sellakit.llm.semantic import item_semantic_embeddings

__all__ = ["Backbone", "load_backbone", "tiny_random_llama", "item_semantic_embeddings"]
