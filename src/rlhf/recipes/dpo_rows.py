"""DPO batches: B tokenized pairs -> one model batch holding both responses of every pair, and
the forward that turns it into per-sequence log-probs (shared-prompt rows or two rows a pair)."""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch

from rlhf.data.collators import pad
from rlhf.data.tokenize import IGNORE
from rlhf.losses.dpo import PairLogps, sequence_logps
from rlhf.models import shared_prompt
from rlhf.models.attention import training_attention
from rlhf.models.head import last_positions
from rlhf.models.shared_prompt import segment_mask


@dataclass(frozen=True)
class PairCollator:
    """B tokenized pairs -> one model batch holding both responses of every pair.

    share_prompt: one row per pair, prompt + chosen + rejected, with a 4D attention mask in
    which the rejected tokens see the prompt but not the chosen ones, and position ids that
    restart after the prompt: the same log-probs as two rows, for fewer tokens (the prompt is
    run once). Otherwise: 2B rows, prompt + response, with a 2D padding mask.

    Returns input_ids, position_ids (R, T); attention_mask (R, T) or (R, 1, T, T); targets
    (R, T, S), see losses.dpo.sequence_logps; weight (B,); desirable (B,) for unpaired rows (KTO:
    the completion is "chosen", the KL sample "rejected"); ref_logps (2B,) once precomputed;
    logits_to_keep: the trailing positions that predict a target, the only ones the LM head
    must score (0: all).
    """

    pad_id: int
    share_prompt: bool = True
    float_mask: torch.dtype | None = None
    """dtype of an additive 4D mask (eager attention adds it to the scores); None: boolean (sdpa)"""
    keep: bool = True
    """the model takes transformers' logits_to_keep"""
    left: bool = False

    def __call__(self, pairs: list[dict]) -> dict:
        sides = ["chosen_ids", "rejected_ids"]
        if self.share_prompt:
            rows = [[p["prompt_ids"]] + [p[k] for k in sides] for p in pairs]
        else:
            rows = [[p["prompt_ids"], p[k]] for k in sides for p in pairs]
        ids, seg, pos, tgt = [], [], [], [[] for _ in rows[0][1:]]
        for prompt, *responses in rows:
            n = len(prompt)
            r_ids, r_seg, r_pos, r_tgt = list(prompt), [0] * n, list(range(n)), []
            for s, resp in enumerate(responses):
                # position t predicts token t + 1, but every response's first token is predicted by
                # the prompt's last position (none when the prompt is empty: that token is not scored)
                before = [n - 1, *range(len(r_ids), len(r_ids) + len(resp) - 1)]
                r_tgt.append(dict(zip(before, resp)))
                r_ids, r_seg, r_pos = (
                    r_ids + resp,
                    r_seg + [s + 1] * len(resp),
                    r_pos + [*range(n, n + len(resp))],
                )
            ids.append(r_ids)
            seg.append(r_seg)
            pos.append(r_pos)
            for s, t in enumerate(r_tgt):
                tgt[s].append([t.get(i, IGNORE) for i in range(len(r_ids))])
        targets = torch.stack([pad(t, IGNORE, self.left) for t in tgt], -1)  # (R, T, S)
        first = int((targets != IGNORE).any(-1).any(0).int().argmax())  # first column with a target
        batch = {
            "input_ids": pad(ids, self.pad_id, self.left),
            "position_ids": pad(pos, 0, self.left),
            "attention_mask": self.mask(pad(seg, -1, self.left)),
            "targets": targets,
            "weight": torch.tensor([float(p["weight"]) for p in pairs]),
            "logits_to_keep": targets.size(1) - first if self.keep else 0,
        }
        if "desirable" in pairs[0]:  # unpaired feedback (KTO)
            batch["desirable"] = torch.tensor([p["desirable"] for p in pairs])
        if "ref" in pairs[0]:
            batch["ref_logps"] = torch.tensor([p["ref"][0] for p in pairs] + [p["ref"][1] for p in pairs])
        return batch

    def mask(self, seg: torch.Tensor) -> torch.Tensor:
        """Attention mask from segment ids (0 prompt, 1.. responses, -1 padding).  Shape: (R, T) ->
        (R, T) or (R, 1, T, T)"""
        if not self.share_prompt:
            return (seg >= 0).long()  # the model builds the causal mask (and keeps its fast paths)
        return segment_mask(seg, self.float_mask)


def make_collator(share_prompt: bool, model: torch.nn.Module, pad_id: int, longest: int) -> PairCollator:
    """The collator for ``model`` (unwrapped): mask kind from its attention, whether it takes
    logits_to_keep; a shared-prompt row must not outgrow a sliding attention window, which a
    custom mask would bypass."""
    if share_prompt:  # dpo.share_prompt
        shared_prompt.check(model, longest, "dpo.share_prompt")
    base = shared_prompt.base_model(model)
    return PairCollator(
        pad_id,
        share_prompt,
        shared_prompt.mask_dtype(model),
        "logits_to_keep" in inspect.signature(base.forward).parameters,
    )


def to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def forward_logps(model: torch.nn.Module, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed response log-probs and response token counts, the B chosen then the B rejected.

    Shape: (2B,), (2B,)
    """
    ids, k = batch["input_ids"], batch["logits_to_keep"]
    keep = {"logits_to_keep": last_positions(ids.shape[1], k, ids.device)} if k else {}
    with training_attention(ids):
        logits = model(
            input_ids=ids,
            attention_mask=batch["attention_mask"],
            position_ids=batch["position_ids"],
            use_cache=False,  # a training forward: building a KV cache is wasted work
            **keep,
        ).logits  # (R, K, V)
    sums, counts = sequence_logps(logits, batch["targets"][:, -logits.size(1) :])  # (R, S)
    return sums.T.reshape(-1), counts.T.reshape(-1)


def split_pairs(
    logps: torch.Tensor, ref: torch.Tensor, counts: torch.Tensor, desirable: torch.Tensor | None = None
) -> PairLogps:
    b = logps.size(0) // 2
    return PairLogps(logps[:b], logps[b:], ref[:b], ref[b:], counts[:b], counts[b:], desirable)
