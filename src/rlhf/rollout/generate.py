"""The reference generation engine: batched Hugging Face ``generate`` with a KV cache.

Prompts are left-padded so that every row's next token sits in the last column; generation stops
per row at EOS. Sampling is reproducible: the generator is seeded per call, and batches are
formed in prompt order.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rlhf.data.collators import pad
from rlhf.data.records import Prompt
from rlhf.data.tokenize import encode_prompt


@dataclass
class SamplingParams:
    max_new_tokens: int = 32
    """longest response in tokens"""
    temperature: float = 1.0
    """0 decodes greedily"""
    top_p: float = 1.0
    """nucleus sampling mass (1: off)"""
    top_k: int = 0
    """sample among the k most likely tokens (0: off)"""
    n: int = 1
    """responses per prompt"""
    seed: int = 0
    """sampling seed"""


@dataclass
class Generation:
    prompt_ids: list[int]
    response_ids: list[int]
    """generated tokens, ending with EOS if the model stopped"""
    text: str
    """response text, special tokens removed"""
    finished: bool
    """the model ended the response with EOS (rather than hitting max_new_tokens)"""


class HFGenerateEngine:
    """Sample responses with ``model.generate``; ``batch_size`` prompts x n responses at a time."""

    def __init__(self, model, tokenizer, batch_size: int = 64):
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size

    @torch.no_grad()
    def generate(self, prompts: list[Prompt], params: SamplingParams) -> list[list[Generation]]:
        """``params.n`` generations for each prompt, in prompt order."""
        tok, model = self.tokenizer, self.model
        was_training = model.training
        model.eval()
        encoded = [encode_prompt(tok, p) for p in prompts]
        out: list[list[Generation]] = [[] for _ in prompts]
        torch.manual_seed(params.seed)
        rows = [i for i in range(len(prompts)) for _ in range(params.n)]
        for start in range(0, len(rows), self.batch_size):
            chunk = rows[start : start + self.batch_size]
            seqs = [encoded[i] for i in chunk]
            ids = pad(seqs, tok.pad_token_id, left=True)  # (B, T): every row's next token is last
            mask = pad([[1] * len(q) for q in seqs], 0, left=True)
            sample = params.temperature > 0
            gen = model.generate(
                input_ids=ids.to(model.device),
                attention_mask=mask.to(model.device),
                max_new_tokens=params.max_new_tokens,
                do_sample=sample,
                temperature=params.temperature if sample else None,
                top_p=params.top_p if sample else None,
                top_k=params.top_k if sample else None,
                pad_token_id=tok.pad_token_id,
                eos_token_id=tok.eos_token_id,
            )
            new = gen[:, ids.shape[1] :].tolist()
            for row, i in zip(new, chunk):
                finished = tok.eos_token_id in row
                if finished:
                    row = row[: row.index(tok.eos_token_id) + 1]
                else:
                    row = [t for t in row if t != tok.pad_token_id]
                text = tok.decode(row, skip_special_tokens=True)
                out[i].append(Generation(encoded[i], row, text, finished))
        model.train(was_training)
        return out
