"""Reference log-probs of `rlhf dpo`: precomputed once and cached in the run directory, a frozen
copy in memory, or the LoRA policy with its adapters switched off."""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import torch

from rlhf.models.adapters import adapters_off
from rlhf.models.loading import load_policy
from rlhf.recipes.dpo_rows import PairCollator, forward_logps, to_device
from rlhf.recipes.rl_sharding import shard_frozen
from rlhf.recipes.run_dir import RunDir
from rlhf.sections import ModelConfig

if TYPE_CHECKING:  # hints only
    from accelerate import Accelerator
    from transformers import PreTrainedTokenizerBase

REF_CACHE = "reference_logps.safetensors"
RefFn = Callable[[dict], torch.Tensor]
"""batch -> reference log-probs of its 2B rows (chosen then rejected), no gradient"""


class ReferenceSpec(NamedTuple):
    """What the reference strategies read of the config."""

    model: ModelConfig
    """the reference model: dpo.ref_model, or the policy's start (model.path); never LoRA"""
    key: str
    """the config key that names it, for errors"""
    separate: bool
    """dpo.ref_model names a model of its own (else precompute reads the policy before training)"""
    batch_size: int
    """pairs per forward when precomputing (train.batch_size)"""
    mixed_precision: str
    """train.mixed_precision: part of the precomputed cache's fingerprint"""


def _load_ref(
    spec: ReferenceSpec, tokenizer: PreTrainedTokenizerBase, accelerator: Accelerator
) -> torch.nn.Module:
    model = load_policy(spec.model, tokenizer, spec.key).to(accelerator.device).eval()
    # sharded for inference under FSDP2/ZeRO-3 (under ZeRO-3 from_pretrained built it partitioned:
    # it runs only inside a DeepSpeed engine), whole elsewhere
    return shard_frozen(accelerator, model.requires_grad_(False))


@torch.no_grad()
def all_logps(
    model: torch.nn.Module,
    accelerator: Accelerator,
    pairs: list[dict],
    collate: PairCollator,
    batch_size: int,
) -> torch.Tensor:
    """(chosen, rejected) log-probs of every pair; each process scores a contiguous share.  Shape: (N, 2)"""
    n, per = len(pairs), math.ceil(len(pairs) / accelerator.num_processes)
    # the last share is padded with copies of the last pair, so that every process gathers as much
    mine = [min(accelerator.process_index * per + j, n - 1) for j in range(per)]
    was_training = model.training
    model.eval()
    out = []
    for i in range(0, per, batch_size):
        batch = to_device(collate([pairs[k] for k in mine[i : i + batch_size]]), accelerator.device)
        with accelerator.autocast():
            out.append(forward_logps(model, batch)[0].view(2, -1).T)  # (b, 2)
    model.train(was_training)
    return accelerator.gather(torch.cat(out).contiguous())[:n].cpu()


def precomputed_reference(
    spec: ReferenceSpec,
    accelerator: Accelerator,
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    run: RunDir,
    splits: dict,
    collate: PairCollator,
) -> RefFn:
    """Reference log-probs of every split, computed once and cached in the run directory; a
    resumed run (same data, reference and precision) reads them back instead of redoing them."""
    from safetensors.torch import load_file, safe_open, save_file

    path = run.root / REF_CACHE
    ref_cfg = spec.model
    # the reference's files (a model retrained into the same directory is a new reference)
    where = Path(ref_cfg.path).expanduser()
    files = sorted(f for f in where.glob("*") if f.is_file()) if where.is_dir() else []
    stamps = [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    h = hashlib.sha256(repr((ref_cfg, stamps, spec.mixed_precision)).encode())
    for name in sorted(splits):
        for p in splits[name]:
            h.update(repr((name, p["prompt_ids"], p["chosen_ids"], p["rejected_ids"])).encode())
    key, cached = h.hexdigest(), None
    if path.is_file():
        with safe_open(str(path), "pt") as f:
            cached = load_file(str(path)) if (f.metadata() or {}).get("fingerprint") == key else None
    if cached is None:
        t0 = time.perf_counter()
        ref = _load_ref(spec, tokenizer, accelerator) if spec.separate else accelerator.unwrap_model(model)
        cached = {n: all_logps(ref, accelerator, s, collate, spec.batch_size) for n, s in splits.items()}
        if accelerator.is_main_process:
            save_file(cached, str(path.with_suffix(".tmp")), metadata={"fingerprint": key})
            path.with_suffix(".tmp").replace(path)
        accelerator.print(f"[dpo] reference log-probs computed in {time.perf_counter() - t0:.1f}s -> {path}")
    else:
        accelerator.print(f"[dpo] reference log-probs loaded from {path}")
    accelerator.wait_for_everyone()
    for name, pairs in splits.items():
        for p, (c, r) in zip(pairs, cached[name].tolist()):
            p["ref"] = (c, r)
    return lambda batch: batch["ref_logps"]


def frozen_reference(
    spec: ReferenceSpec,
    accelerator: Accelerator,
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    run: RunDir,
    splits: dict,
    collate: PairCollator,
) -> RefFn:
    """A frozen copy of the reference model held in memory, run on every batch."""
    ref = _load_ref(spec, tokenizer, accelerator)
    return torch.no_grad()(lambda batch: forward_logps(ref, batch)[0])


def adapters_off_reference(
    spec: ReferenceSpec,
    accelerator: Accelerator,
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    run: RunDir,
    splits: dict,
    collate: PairCollator,
) -> RefFn:
    """The LoRA policy itself with its adapters disabled (peft): the base model, no second copy."""
    peft_model = accelerator.unwrap_model(model)

    @torch.no_grad()
    def ref(batch: dict) -> torch.Tensor:
        with adapters_off(peft_model):
            return forward_logps(peft_model, batch)[0]

    return ref


def no_reference(
    spec: ReferenceSpec,
    accelerator: Accelerator,
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    run: RunDir,
    splits: dict,
    collate: PairCollator,
) -> RefFn:
    """Reference-free losses (SimPO): zeros in the reference's place, which they never read."""
    return lambda batch: torch.zeros(2 * len(batch["weight"]), device=batch["weight"].device)


REFERENCES = {
    "none": no_reference,
    "precompute": precomputed_reference,
    "frozen": frozen_reference,
    "adapters_off": adapters_off_reference,
}
