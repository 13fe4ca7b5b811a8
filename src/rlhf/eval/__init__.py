"""Evaluation: win rates, KL to a reference, diversity, reward-model agreement."""
