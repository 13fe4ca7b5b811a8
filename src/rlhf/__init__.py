"""rlhf: reinforcement learning from human feedback on any Hugging Face causal LM."""

__version__ = "0.1.0"
