"""The fallback decoder: any causal LM's own forward, with a ``DynamicCache``.

No faster than ``generate`` per step, but it keeps the engine's contract for every model (and
wrapped ones, e.g. peft LoRA): prefill once per prompt with the last position's logits only,
prefix sharing by repeating cache rows, and finished rows dropped from the batch and the cache
(``DynamicCache.batch_select_indices``).
"""

from __future__ import annotations

import copy

import torch


class GenericDecoder:
    name = "generic"

    @staticmethod
    def unsupported(config) -> str | None:
        return None

    def __init__(self, model, dtype: torch.dtype):
        # same dtype: sample from the model itself (always current, nothing to sync); another
        # dtype: a converted copy that load() refreshes
        self.model = model if dtype == model.dtype else copy.deepcopy(model).to(dtype)
        self.device = model.device
        self.cache = None
        self.mask: torch.Tensor | None = None  # (B, T) attention mask so far
        self.pos: torch.Tensor | None = None  # (B,) next position id

    @torch.no_grad()
    def load(self, model) -> None:
        if self.model is not model:
            src = model.state_dict()
            for k, v in self.model.state_dict().items():
                v.copy_(src[k])

    def _forward(self, ids: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        was_training = self.model.training
        self.model.eval()  # no dropout while sampling
        try:
            out = self.model(
                input_ids=ids,
                attention_mask=self.mask,
                position_ids=pos,
                past_key_values=self.cache,
                use_cache=True,
                logits_to_keep=1,  # only the last position is sampled from
            )
        finally:
            self.model.train(was_training)
        self.cache = out.past_key_values
        return out.logits[:, -1].float()  # (B, V)

    @torch.no_grad()
    def prefill(
        self, ids: torch.Tensor, mask: torch.Tensor, max_new_tokens: int, repeats: int = 1
    ) -> torch.Tensor:
        from transformers import DynamicCache

        ids, mask = ids.to(self.device), mask.to(self.device)
        self.cache = DynamicCache(config=self.model.config)
        self.mask = mask
        pos = (mask.cumsum(-1) - 1).clamp(min=0)  # (B, T), as HF generate
        logits = self._forward(ids, pos)
        self.pos = pos[:, -1] + 1
        if repeats > 1:
            self.cache.batch_repeat_interleave(repeats)
            self.mask = self.mask.repeat_interleave(repeats, 0)
            self.pos = self.pos.repeat_interleave(repeats, 0)
            logits = logits.repeat_interleave(repeats, 0)
        return logits

    @torch.no_grad()
    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        self.mask = torch.cat([self.mask, self.mask.new_ones(self.mask.shape[0], 1)], 1)
        logits = self._forward(tokens.view(-1, 1), self.pos.view(-1, 1))
        self.pos = self.pos + 1
        return logits

    def select(self, rows: torch.Tensor) -> None:
        rows = rows.to(self.device)
        self.cache.batch_select_indices(rows)
        self.mask, self.pos = self.mask[rows], self.pos[rows]
