"""Loading Hugging Face models (dtype, LoRA, padding), reward heads, and tiny offline models."""
