"""sellakit: a notebook-first kit for CF, CF-LLM alignment, SeLLa-Rec and multi-source KG distillation."""

__version__ = "0.1.0"
