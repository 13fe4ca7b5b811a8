"""Prompts and responses -> token ids, with the truncation rule of docs/data.md.

Prompt: a string is tokenized as it is (with the tokenizer's own special tokens, e.g. a BOS);
chat messages are rendered with the tokenizer's chat template and a generation prompt. Response:
tokenized without special tokens, then EOS appended, so the model learns to stop.

Truncation rule, applied per record (a ranking's prompt is shared by its K responses):
  1. if ``max_prompt_length > 0`` the prompt is cut from the left to that many tokens;
  2. if prompt + longest response is still over ``max_length``, the prompt is cut from the left
     until it fits, keeping at least ``MIN_PROMPT_TOKENS``;
  3. if it still does not fit, the record is dropped: a response cut short would teach the model
     to stop without EOS, or the reward model to score half an answer.
Both counts are reported by the run.
"""

from __future__ import annotations

from dataclasses import dataclass

from rlhf.data.readers import DataError
from rlhf.data.records import Demonstration, Prompt

IGNORE = -100
"""the label of a position that takes no loss (prompt, padding): torch's cross_entropy ignore_index"""

MIN_PROMPT_TOKENS = 1


@dataclass
class TruncationStats:
    records: int = 0
    truncated: int = 0
    """records whose prompt was cut from the left"""
    dropped: int = 0
    """records whose response alone did not fit in max_length"""
    all_tied: int = 0
    """rankings dropped because every response tied (no comparison to learn from)"""

    def summary(self) -> str:
        tied = f", {self.all_tied} all-tied rankings dropped" if self.all_tied else ""
        cut = f"{self.truncated} prompts truncated, {self.dropped} dropped as too long"
        return f"{self.records} records, {cut}{tied}"


def render_prompt(tokenizer, prompt: Prompt) -> str:
    """A prompt as text: strings as they are, chat messages through the chat template."""
    if isinstance(prompt, str):
        return prompt
    if not getattr(tokenizer, "chat_template", None):
        raise DataError("a prompt is a list of chat messages but the tokenizer has no chat template")
    return tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)


def encode_prompt(tokenizer, prompt: Prompt) -> list[int]:
    text = render_prompt(tokenizer, prompt)
    # a rendered chat template already holds the special tokens it needs
    return tokenizer(text, add_special_tokens=isinstance(prompt, str))["input_ids"]


def encode_response(tokenizer, response: str) -> list[int]:
    ids = tokenizer(response, add_special_tokens=False)["input_ids"]
    # a response written with its EOS already (e.g. "...<|end|>") must not get a second one
    if not ids or ids[-1] != tokenizer.eos_token_id:
        ids = ids + [tokenizer.eos_token_id]
    return ids


def fit_prompt(
    prompt_ids: list[int],
    longest_response: int,
    max_length: int,
    max_prompt_length: int,
    stats: TruncationStats,
) -> list[int] | None:
    """Apply the truncation rule; returns the (possibly cut) prompt, or None to drop the record."""
    stats.records += 1
    cut = prompt_ids
    if max_prompt_length > 0 and len(cut) > max_prompt_length:
        cut = cut[-max_prompt_length:]
    room = max_length - longest_response
    if len(cut) > room:
        if room < MIN_PROMPT_TOKENS:
            stats.dropped += 1
            return None
        cut = cut[-room:]
    if len(cut) < len(prompt_ids):
        stats.truncated += 1
    return cut


def tokenize_demonstrations(
    records: list[Demonstration], tokenizer, max_length: int, max_prompt_length: int = 0
) -> tuple[list[dict[str, list[int]]], TruncationStats]:
    """Demonstrations -> ``{"input_ids", "labels"}`` with the prompt masked (IGNORE) in labels, and
    ``"kl_weights"`` (one per token: the record's ``kl_weight``) where a record's is not 1."""
    stats = TruncationStats()
    out = []
    for rec in records:
        response = encode_response(tokenizer, rec.completion)
        prompt = fit_prompt(
            encode_prompt(tokenizer, rec.prompt), len(response), max_length, max_prompt_length, stats
        )
        if prompt is None:
            continue
        example = {"input_ids": prompt + response, "labels": [IGNORE] * len(prompt) + response}
        if rec.kl_weight != 1.0:
            example["kl_weights"] = [rec.kl_weight] * len(example["input_ids"])
        out.append(example)
    return out, stats


def tokenize_groups(
    groups, tokenizer, max_length: int, max_prompt_length: int = 0
) -> tuple[list[dict], TruncationStats]:
    """PreferenceGroups -> dicts for ``collate_groups``; groups without comparisons are dropped
    (counted in ``all_tied``: an all-tied ranking carries no Bradley-Terry signal)."""
    stats = TruncationStats()
    out = []
    for g in groups:
        responses = [encode_response(tokenizer, r) for r in g.responses]
        prompt = fit_prompt(
            encode_prompt(tokenizer, g.prompt), max(map(len, responses)), max_length, max_prompt_length, stats
        )
        if prompt is None:
            continue
        if not g.better:
            stats.all_tied += 1
            continue
        out.append(
            {
                "prompt_ids": prompt,
                "response_ids": responses,
                "better": g.better,
                "worse": g.worse,
                "margins": g.margins,
                "weight": g.weight,
            }
        )
    return out, stats
