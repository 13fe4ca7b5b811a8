"""Rollout engines: the interface PPO / GRPO, ``rlhf sample`` and best-of-n sample through, and
the fast implementation of it.

``RolloutEngine`` is what a loop needs: prompts in, ``n`` Generations per prompt out, and
``sync_weights`` after each optimizer step. ``HFGenerateEngine`` (rlhf.rollout.generate) is the
reference implementation; a vLLM engine can implement the same three methods.

``KVCacheEngine`` keeps its own inference copy of the policy in a per-family decoder
(rlhf.rollout.decoders) and runs the sampling loop itself:
- one prefill per prompt (last position's logits only), its cache rows repeated for the ``n``
  samples (prefix sharing);
- one decode step per token over a preallocated KV cache written in place;
- a finished row (EOS after ``min_new_tokens``, a stop string, or ``max_new_tokens``) leaves the
  batch and the cache at once, so it costs nothing further (``last_stats["row_steps"]``);
- reproducible: a ``torch.Generator`` seeded per call. The same call gives the same samples; a
  prompt's samples do depend on the other prompts of the batch (as with HF ``generate``).
Log-probs are those of ``rlhf.rollout.generate``: softmax(logits / T), before top-k / top-p.

``sync_weights(model)`` refreshes the engine's copy (re-packs it on CPU: about 25 ms for the 10M
GPT-2, bench/bench_generate.py). A forgotten sync cannot sample from a stale policy: ``generate``
re-syncs by itself when the model last synced from was changed in place since (``_fingerprint``).
"""

from __future__ import annotations

import logging
import time
from typing import Protocol

import torch

from rlhf.data.collators import pad
from rlhf.data.records import Prompt
from rlhf.data.tokenize import encode_prompt
from rlhf.rollout.decoders import build_decoder
from rlhf.rollout.generate import Generation, SamplingParams, make_generation
from rlhf.rollout.sampling import sample_step

log = logging.getLogger(__name__)
STATS = (
    "prompts",
    "rows",
    "prefill_tokens",
    "decode_steps",
    "row_steps",
    "new_tokens",
    "prefill_s",
    "decode_s",
)
"""the counters of ``KVCacheEngine.last_stats`` (plus ``seconds``, the whole call)"""


class RolloutEngine(Protocol):
    def generate(self, prompts: list[Prompt], params: SamplingParams) -> list[list[Generation]]:
        """``params.n`` generations for each prompt (string or chat messages), in prompt order."""

    def generate_ids(self, prompt_ids: list[list[int]], params: SamplingParams) -> list[list[Generation]]:
        """As ``generate``, for prompts already tokenized."""

    def sync_weights(self, model) -> None:
        """Make the engine sample from ``model``'s current weights (after an optimizer step)."""


def _fingerprint(model) -> tuple[list[int], torch.Tensor]:
    """What tells that ``model`` changed in place: its parameters' version counters (bumped by an
    in-place op) and the sums of its trainable ones (a fused optimizer, as the recipes use, updates
    weights in place without bumping the counters). The sums read only what trains: LoRA's
    adapters, or every weight in full fine-tuning (some 30 ms for 135M weights on one core)."""
    params = list(model.parameters())
    sums = [p.detach().sum(dtype=torch.float32) for p in params if p.requires_grad]
    return [p._version for p in params], torch.stack(sums) if sums else torch.zeros(0)


def _changed(before: tuple[list[int], torch.Tensor], after: tuple[list[int], torch.Tensor]) -> bool:
    return before[0] != after[0] or not torch.equal(before[1], after[1])


class KVCacheEngine:
    """Batched sampling with the engine's own KV-cached decoder.

    ``batch_size`` rows (prompts x n) decode together. ``dtype`` None keeps the model's dtype;
    torch.bfloat16 samples from a bf16 copy (as vLLM-based RL stacks do: training recomputes
    log-probs with the training model anyway). ``generic=True`` forces the HF-forward fallback.
    """

    def __init__(
        self,
        model,
        tokenizer,
        batch_size: int = 64,
        dtype: torch.dtype | None = None,
        generic: bool = False,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.eos = tokenizer.eos_token_id
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos
        self.decoder = build_decoder(model, dtype or model.dtype, generic)
        log.info("KVCacheEngine: %s decoder for %s", self.decoder.name, type(model).__name__)
        self.device = self.decoder.device
        self.model = model
        self._seen = _fingerprint(model)
        self.last_stats: dict[str, float] = {}
        """counters of the last call (STATS): prompts, rows (prompts x n), prefill_tokens (each
        prompt once), decode_steps, row_steps (active rows summed over decode steps: what
        finished rows no longer cost), new_tokens, prefill_s, decode_s, seconds"""

    def sync_weights(self, model) -> None:
        """Copy ``model``'s weights into the decoder (in place, no allocation)."""
        self.decoder.load(model)
        self.model, self._seen = model, _fingerprint(model)

    def generate(self, prompts: list[Prompt], params: SamplingParams) -> list[list[Generation]]:
        """``params.n`` generations for each prompt, in prompt order."""
        return self.generate_ids([encode_prompt(self.tokenizer, p) for p in prompts], params)

    @torch.no_grad()
    def generate_ids(self, prompt_ids: list[list[int]], params: SamplingParams) -> list[list[Generation]]:
        """As ``generate``, for prompts already tokenized."""
        _check(params, prompt_ids)
        if _changed(self._seen, _fingerprint(self.model)):
            # the model changed in place since the last sync: never sample from a stale copy
            self.sync_weights(self.model)
        t0 = time.perf_counter()
        self.last_stats = dict.fromkeys(STATS, 0)
        generator = torch.Generator(self.device).manual_seed(params.seed)
        per_batch = max(1, self.batch_size // params.n)  # whole prompts, so prefixes can be shared
        out: list[list[Generation]] = []
        for start in range(0, len(prompt_ids), per_batch):
            out += self._batch(prompt_ids[start : start + per_batch], params, generator)
        self.last_stats["seconds"] = time.perf_counter() - t0
        return out

    def _batch(self, prompts: list[list[int]], params: SamplingParams, generator) -> list[list[Generation]]:
        """Sample ``n`` responses for each of a batch of prompts."""
        stats, dec, n, steps = self.last_stats, self.decoder, params.n, params.max_new_tokens
        ids = pad(prompts, self.pad, left=True)  # (P, T): every row's next token is last
        mask = pad([[1] * len(p) for p in prompts], 0, left=True)
        rows = len(prompts) * n
        t0 = time.perf_counter()
        logits = dec.prefill(ids, mask, steps, repeats=n)  # (R, V)
        t1 = time.perf_counter()
        tokens = torch.full((rows, steps), self.pad, dtype=torch.long, device=self.device)  # (R, N)
        logps = torch.zeros(rows, steps, device=self.device)  # (R, N)
        lengths = [steps] * rows
        active = torch.arange(rows, device=self.device)  # original row of each active cache row
        text_ids: list[list[int]] | None = [[] for _ in range(rows)] if params.stop else None
        for step in range(steps):
            mask_eos = self.eos if step < params.min_new_tokens else None
            new, logp = sample_step(
                logits, params.temperature, params.top_k, params.top_p, mask_eos, generator
            )
            tokens[active, step] = new
            logps[active, step] = logp
            if step == steps - 1:
                break
            done = (
                new == self.eos if self.eos is not None else torch.zeros_like(new, dtype=torch.bool)
            )  # (B,)
            if text_ids is not None:
                done |= self._hit_stop(text_ids, active, new, params.stop)
            if done.any():
                keep = (~done).nonzero().squeeze(1)
                for r in active[done].tolist():
                    lengths[r] = step + 1
                if keep.numel() == 0:
                    break
                active, new = active[keep], new[keep]
                dec.select(keep)
            logits = dec.decode(new)
            stats["decode_steps"] += 1
            stats["row_steps"] += active.numel()
        t2 = time.perf_counter()
        stats["prompts"] += len(prompts)
        stats["rows"] += rows
        stats["prefill_tokens"] += int(mask.sum())
        stats["new_tokens"] += sum(lengths)
        stats["prefill_s"] += t1 - t0
        stats["decode_s"] += t2 - t1
        tok_lists, lp_lists = tokens.tolist(), logps.tolist()
        gens = [
            make_generation(
                self.tokenizer, prompts[r // n], tok_lists[r][: lengths[r]], lp_lists[r][: lengths[r]], params
            )
            for r in range(rows)
        ]
        return [gens[i * n : (i + 1) * n] for i in range(len(prompts))]

    def _hit_stop(self, text_ids: list[list[int]], active: torch.Tensor, new: torch.Tensor, stop: list[str]):
        """Which active rows' text now contains a stop string.  Shape: (B,) bool"""
        hits = []
        for r, t in zip(active.tolist(), new.tolist()):
            text_ids[r].append(t)
            text = self.tokenizer.decode(text_ids[r], skip_special_tokens=True)
            hits.append(any(s in text for s in stop))
        return torch.tensor(hits, device=self.device)


def _check(params: SamplingParams, prompt_ids: list[list[int]]) -> None:
    """Clear errors for settings a user can get wrong."""
    if params.n < 1:
        raise ValueError(f"SamplingParams.n must be at least 1, got {params.n}")
    if params.max_new_tokens < 1:
        raise ValueError(f"SamplingParams.max_new_tokens must be at least 1, got {params.max_new_tokens}")
    if not 0 < params.top_p <= 1:
        raise ValueError(f"SamplingParams.top_p must be in (0, 1], got {params.top_p}")
    if params.temperature < 0 or params.top_k < 0 or params.min_new_tokens < 0:
        raise ValueError("SamplingParams.temperature, top_k and min_new_tokens must not be negative")
    if any(len(p) == 0 for p in prompt_ids):
        raise ValueError("a prompt has no tokens; give it at least one (e.g. a BOS token)")


def make_engine(
    kind: str, model, tokenizer, batch_size: int = 64, dtype: torch.dtype | None = None
) -> RolloutEngine:
    """The engine a config names: "kv_cache" (ours; ``dtype`` picks its sampling copy's
    precision) or "hf" (transformers' ``generate``, the reference; always the model's dtype)."""
    if kind == "hf":
        from rlhf.rollout.generate import HFGenerateEngine

        return HFGenerateEngine(model, tokenizer, batch_size)
    if kind == "kv_cache":
        return KVCacheEngine(model, tokenizer, batch_size=batch_size, dtype=dtype)
    raise ValueError(f"unknown rollout engine {kind!r}; choose kv_cache or hf")
