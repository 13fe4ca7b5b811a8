"""The reference generation engine: batched Hugging Face ``generate`` with a KV cache.

Prompts are left-padded so that every row's next token sits in the last column; generation stops
per row at EOS or a stop string. Sampling is reproducible: the generator is seeded per call, and
batches are formed in prompt order.

This engine is the reference that the fast one (``rlhf.rollout.engine.KVCacheEngine``) is tested
against; both implement ``rlhf.rollout.engine.RolloutEngine``.

Log-probs: ``Generation.logprobs[t]`` is log softmax(logits_t / temperature)[token_t], the sampled
token under the temperature-scaled distribution *before* top-k / top-p truncation and before the
``min_new_tokens`` EOS mask (temperature 1 when decoding greedily). That is what a training forward
recomputes (``rlhf.losses.logprobs.token_logprobs(logits, tokens, temperature)``), so PPO's ratio
starts at 1; the truncated distribution would put -inf on tokens the trained policy can still
assign mass to.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from rlhf.data.collators import pad
from rlhf.data.records import Prompt
from rlhf.data.tokenize import encode_prompt
from rlhf.losses.logprobs import softmax_logprobs
from rlhf.sections import SamplingSection


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
    stop: list[str] = field(default_factory=list)
    """stop strings: the response text is cut after the first occurrence and the row finishes"""
    min_new_tokens: int = 0
    """EOS is masked out until this many tokens were generated (stop strings still apply)"""


def sampling_params(s: SamplingSection, n: int = 1, seed: int = 0, **extra) -> SamplingParams:
    """The engines' parameters from a config's sampling section (rlhf.sections.SamplingSection);
    ``extra``: SamplingParams fields a section adds (min_new_tokens) or a call overrides (stop)."""
    extra.setdefault("stop", list(s.stop))
    return SamplingParams(s.max_new_tokens, s.temperature, s.top_p, s.top_k, n=n, seed=seed, **extra)


@dataclass
class Generation:
    prompt_ids: list[int]
    response_ids: list[int]
    """generated tokens, ending with EOS if the model stopped"""
    text: str
    """response text, special tokens removed (cut after the stop string if one ended it)"""
    finished: bool
    """the response ended with EOS or a stop string (rather than hitting max_new_tokens)"""
    logprobs: list[float] | None = None
    """log-prob of each response token under softmax(logits / temperature), before top-k/top-p"""


def first_stop(tokenizer, ids: list[int], stop: list[str]) -> tuple[int, str] | None:
    """(tokens to keep, text cut after the stop string) for the earliest stop string in the text
    of ``ids``, or None. The kept tokens end with the token that completed the stop string."""
    text = tokenizer.decode(ids, skip_special_tokens=True)
    hits = [(i + len(s), s) for s in stop if (i := text.find(s)) >= 0]
    if not hits:
        return None
    end = min(hits)[0]
    # the shortest token prefix whose text reaches past the stop string's end
    keep = next(
        k for k in range(1, len(ids) + 1) if len(tokenizer.decode(ids[:k], skip_special_tokens=True)) >= end
    )
    return keep, text[:end]


def make_generation(
    tokenizer, prompt_ids: list[int], ids: list[int], logprobs: list[float] | None, params: SamplingParams
) -> Generation:
    """A Generation from the raw tokens of one row: cut at the first EOS, else at a stop string."""
    eos = tokenizer.eos_token_id
    if eos in ids:
        keep = ids.index(eos) + 1
        ids, logprobs = ids[:keep], logprobs[:keep] if logprobs is not None else None
        return Generation(prompt_ids, ids, tokenizer.decode(ids, skip_special_tokens=True), True, logprobs)
    hit = first_stop(tokenizer, ids, params.stop) if params.stop else None
    if hit is not None:
        keep, text = hit
        return Generation(prompt_ids, ids[:keep], text, True, logprobs[:keep] if logprobs else logprobs)
    return Generation(prompt_ids, ids, tokenizer.decode(ids, skip_special_tokens=True), False, logprobs)


class StopOnText:
    """A ``generate`` stopping criterion: a row is done once its *response* text holds a stop
    string. (HF's own ``stop_strings`` also match across the prompt/response boundary.)"""

    def __init__(self, tokenizer, prompt_width: int, stop: list[str]):
        self.tokenizer, self.width, self.stop = tokenizer, prompt_width, stop

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        texts = self.tokenizer.batch_decode(input_ids[:, self.width :], skip_special_tokens=True)
        return torch.tensor([any(s in t for s in self.stop) for t in texts], device=input_ids.device)


class HFGenerateEngine:
    """Sample responses with ``model.generate``; ``batch_size`` prompts x n responses at a time.

    The reference for ``KVCacheEngine``, not the fast path: for the log-probs it keeps every
    step's raw logits of a batch, (batch, max_new_tokens, vocab) floats at once.
    """

    def __init__(self, model, tokenizer, batch_size: int = 64):
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size

    def sync_weights(self, model) -> None:
        """Nothing to copy: this engine samples from the model it was given."""

    def generate(self, prompts: list[Prompt], params: SamplingParams) -> list[list[Generation]]:
        """``params.n`` generations for each prompt, in prompt order."""
        return self.generate_ids([encode_prompt(self.tokenizer, p) for p in prompts], params)

    @torch.no_grad()
    def generate_ids(self, prompt_ids: list[list[int]], params: SamplingParams) -> list[list[Generation]]:
        """As ``generate``, for prompts already tokenized."""
        tok, model = self.tokenizer, self.model
        was_training = model.training
        model.eval()
        out: list[list[Generation]] = [[] for _ in prompt_ids]
        torch.manual_seed(params.seed)
        rows = [i for i in range(len(prompt_ids)) for _ in range(params.n)]
        sample = params.temperature > 0
        for start in range(0, len(rows), self.batch_size):
            chunk = rows[start : start + self.batch_size]
            seqs = [prompt_ids[i] for i in chunk]
            ids = pad(seqs, tok.pad_token_id, left=True)  # (B, T): every row's next token is last
            mask = pad([[1] * len(q) for q in seqs], 0, left=True)
            gen = model.generate(
                input_ids=ids.to(model.device),
                attention_mask=mask.to(model.device),
                max_new_tokens=params.max_new_tokens,
                min_new_tokens=params.min_new_tokens or None,
                do_sample=sample,
                temperature=params.temperature if sample else None,
                top_p=params.top_p if sample else None,
                top_k=params.top_k if sample else None,
                pad_token_id=tok.pad_token_id,
                eos_token_id=tok.eos_token_id,
                stopping_criteria=[StopOnText(tok, ids.shape[1], params.stop)] if params.stop else None,
                return_dict_in_generate=True,
                output_logits=True,  # raw logits, before temperature and truncation
            )
            new = gen.sequences[:, ids.shape[1] :]  # (B, N)
            logits = torch.stack(gen.logits, 1)  # (B, N, V)
            temperature = params.temperature if sample else 1.0
            logp = softmax_logprobs(logits, new.unsqueeze(-1), temperature).squeeze(-1)  # (B, N)
            for row, lp, i in zip(new.tolist(), logp.tolist(), chunk):
                out[i].append(make_generation(tok, prompt_ids[i], row, lp, params))
        model.train(was_training)
        return out
