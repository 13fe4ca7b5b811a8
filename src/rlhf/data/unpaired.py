"""Unpaired feedback (KTO) -> tokenized rows laid out as DPO pairs.

Each record ``{prompt, completion, label}`` becomes one row: the prompt, the completion in the
"chosen" slot, and, in the "rejected" slot, the KL sample: the completion of another record whose
prompt differs, which KTO reads under this prompt to estimate its reference point
(rlhf.losses.kto). The partner is the next record in file order (wrapping around) with another
prompt, fixed once here, as TRL does. A KL sample longer than the room the prompt leaves is cut:
it is only read for an estimate, never trained towards, so losing its end is harmless, and
dropping the record for it would be wrong.
"""

from __future__ import annotations

import json

from rlhf.data.readers import DataError
from rlhf.data.records import Unpaired
from rlhf.data.tokenize import TruncationStats, encode_prompt, encode_response, fit_prompt


def kl_partners(prompts: list) -> list[int]:
    """For each example, the index of the next one (cyclically) whose prompt differs.

    >>> kl_partners(["a", "a", "b", "c"])
    [2, 2, 3, 0]
    """
    keys = [json.dumps(p, sort_keys=True) for p in prompts]
    n = len(keys)
    out = []
    for i in range(n):
        k = next((k for k in range(1, n) if keys[(i + k) % n] != keys[i]), None)
        if k is None:
            raise DataError(
                "KTO estimates its reference point from completions written for other prompts, "
                f"but all {n} records share one prompt"
            )
        out.append((i + k) % n)
    return out


def tokenize_unpaired(
    records: list[Unpaired], tokenizer, max_length: int, max_prompt_length: int = 0
) -> tuple[list[dict], TruncationStats]:
    """Unpaired records -> ``{prompt_ids, chosen_ids, rejected_ids, weight, desirable}`` rows for
    ``rlhf.recipes.dpo_rows.PairCollator`` (module docstring); records too long are dropped."""
    stats = TruncationStats()
    kept = []
    for rec in records:
        completion = encode_response(tokenizer, rec.completion)
        prompt = fit_prompt(
            encode_prompt(tokenizer, rec.prompt), len(completion), max_length, max_prompt_length, stats
        )
        if prompt is not None:
            kept.append((rec, prompt, completion))
    if not kept:
        return [], stats
    partners = kl_partners([rec.prompt for rec, _, _ in kept])
    rows = []
    for (rec, prompt, completion), j in zip(kept, partners):
        room = max(max_length - len(prompt), 1)
        rows.append(
            {
                "prompt_ids": prompt,
                "chosen_ids": completion,
                "rejected_ids": kept[j][2][:room],
                "weight": rec.weight,
                "desirable": float(rec.label),
            }
        )
    return rows, stats
