"""Prompt records read for generation: as written, rendered by the chat template, and tokenized,
each cut to leave room for the response."""

from __future__ import annotations

from rlhf.data.readers import DataError
from rlhf.data.records import Prompt, load_records
from rlhf.data.tokenize import TruncationStats, encode_prompt, fit_prompt, render_prompt


def load_prompts(
    path: str,
    key: str,
    tokenizer,
    max_new_tokens: int,
    max_length: int,
    max_prompt_length: int,
) -> tuple[list[Prompt], list[str], list[list[int]], TruncationStats]:
    """The prompts of ``path``'s records (``key`` names the file in errors): as written, rendered,
    and tokenized, each cut to leave ``max_new_tokens`` within ``max_length`` (data.max_length) and
    to at most ``max_prompt_length`` (data.max_prompt_length)."""
    records = load_records(path, "prompt", key)
    stats = TruncationStats()
    prompts, texts, ids = [], [], []
    for rec in records:
        cut = fit_prompt(
            encode_prompt(tokenizer, rec.prompt), max_new_tokens, max_length, max_prompt_length, stats
        )
        if cut is not None:
            prompts.append(rec.prompt)
            texts.append(render_prompt(tokenizer, rec.prompt))
            ids.append(cut)
    if not ids:
        raise DataError(f"{key}: no prompt of {path} fits data.max_length - rollout.max_new_tokens tokens")
    return prompts, texts, ids, stats
