"""The several models of `rlhf ppo` on a sharding engine.

As OpenRLHF does with one DeepSpeed engine per model: each trained model (policy, critic) is
sharded with its own optimizer (under FSDP2, one ``accelerator.prepare`` call each: accelerate
takes one model a call), and each frozen model (reference, reward models) is sharded for
inference only (``fully_shard`` with no optimizer), so no process holds a whole copy of any of
them. The rollout engine samples from a whole copy of the policy (the "sampler's copy", as a
vLLM engine would hold), refreshed once per step from one collective gather, never per token:
generation itself has no collectives, so processes whose rows stop early wait for nobody.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import torch

from rlhf.recipes.engines import engine_of, is_sharded

if TYPE_CHECKING:  # hints only
    from collections.abc import Iterator

    from accelerate import Accelerator


def backward(accelerator: Accelerator, loss: torch.Tensor, boundary: bool) -> None:
    """``accelerator.backward(loss)`` as one of several backwards that make one optimizer step
    (algo.micro_batch's chunks, the PPO-ptx batch). Under DeepSpeed only the last of them
    (``boundary``) is the accumulation boundary: the engine steps there and only there (accelerate
    would step it after every backward). DeepSpeed does not divide the loss by the number of
    backwards (its gradient_accumulation_steps is train.grad_accum, 1 for the RL verbs), so the
    gradient is the sum of the backwards', as on every other engine."""
    if getattr(accelerator, "deepspeed_engine_wrapped", None) is None:
        accelerator.backward(loss)
        return
    accelerator.deepspeed_engine_wrapped.backward(loss, sync_gradients=boundary)


def average_and_clip(accelerator: Accelerator, module: torch.nn.Module, max_grad_norm: float) -> float:
    """Ready the gradients of a module that no engine holds, whole in every process (the shared
    critic's value head under FSDP2 and DeepSpeed), for its optimizer step: averaged over
    processes, as DDP does, then clipped. Collective. Returns the norm before clipping."""
    params = list(module.parameters())
    for p in params:
        if p.grad is None:  # every process reduces every tensor, in the same order
            p.grad = torch.zeros_like(p)
        if accelerator.num_processes > 1:
            torch.distributed.all_reduce(p.grad)
            p.grad /= accelerator.num_processes
    return float(torch.nn.utils.clip_grad_norm_(params, max_grad_norm or float("inf")))


@contextlib.contextmanager
def whole_load(seed: int) -> Iterator[None]:
    """A context in which from_pretrained builds a whole model even under ZeRO-3, with the
    random numbers of a fresh ``seed``: a newly initialised head (the critic's) is then the same
    tensor under DDP, FSDP2 and ZeRO-3, so a run does not depend on the engine. The cost: the
    model is whole in every process until DeepSpeed partitions it (which broadcasts rank 0's).

    Two things make the draw engine-dependent otherwise. transformers builds under zero.Init
    whenever its DeepSpeed config says stage 3, and accelerate's
    ``zero3_init_context_manager(enable=False)`` leaves that config registered (it registers a
    new one with the same stage), so the head was still drawn partitioned: the registration is
    lifted here and restored after. And the policy and reference, loaded partitioned before,
    draw other random numbers than whole loads do, so the generator is forked and seeded here
    (on CPU, where from_pretrained builds) instead of inheriting whatever they left."""
    from transformers.integrations import deepspeed as hf_deepspeed

    ref = getattr(hf_deepspeed, "_hf_deepspeed_config_weak_ref", None)  # transformers' own registry
    registered = ref() if ref is not None else None
    hf_deepspeed.unset_hf_deepspeed_config()
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            yield
    finally:
        if registered is not None:
            hf_deepspeed.set_hf_deepspeed_config(registered)


def block_classes(model: torch.nn.Module) -> set[str]:
    """Names of the transformer-block classes of ``model`` (Hugging Face's ``_no_split_modules``)."""
    names: set[str] = set()
    for module in model.modules():
        names |= set(getattr(module, "_no_split_modules", None) or [])
    return names


def shard_frozen(accelerator: Accelerator, model: torch.nn.Module | None) -> torch.nn.Module | None:
    """Shard a frozen model for inference (in place; returned). FSDP2: every transformer block
    and the root are ``fully_shard`` units, gathered layer by layer in each forward; under ZeRO-3
    an inference-only DeepSpeed engine (no optimizer) partitions it. Other engines keep it whole."""
    if model is None:
        return None
    engine = engine_of(accelerator)
    if engine == "fsdp2":
        from torch.distributed.fsdp import fully_shard

        blocks = block_classes(model)
        for module in list(model.modules()):
            if type(module).__name__ in blocks:
                fully_shard(module)
        fully_shard(model)
    elif engine == "zero3":
        import deepspeed

        ds = accelerator.state.deepspeed_plugin.deepspeed_config
        config = {
            "train_micro_batch_size_per_gpu": ds["train_micro_batch_size_per_gpu"],
            "zero_optimization": {
                k: v for k, v in ds["zero_optimization"].items() if not k.startswith("offload_optimizer")
            },
            "bf16": ds.get("bf16", {"enabled": False}),
        }
        model = deepspeed.initialize(model=model, config=config)[0].module
    return model


class RolloutCopy:
    """The whole policy the rollout engine reads. Under DDP and ZeRO-2 it is the policy itself;
    under FSDP2 and ZeRO-3 a copy of the policy's class, into which ``refresh`` gathers the
    sharded weights (collective: every process calls it, once per step)."""

    def __init__(self, accelerator: Accelerator, policy: torch.nn.Module) -> None:
        self.accelerator, self.policy = accelerator, policy
        self.sharded = is_sharded(accelerator)
        if not self.sharded:
            self.model = policy
            return
        from rlhf.recipes.saving import model_class

        with torch.device(accelerator.device):
            self.model = model_class(policy)(policy.config).eval().requires_grad_(False)
        self.refresh()

    @torch.no_grad()
    def refresh(self) -> torch.nn.Module:
        """Gather the policy's current weights into the copy; returns the model to sync from."""
        if not self.sharded:
            return self.model
        mine = dict(self.model.named_parameters())
        engine = engine_of(self.accelerator)
        if engine == "fsdp2":
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

            # full_state_dict without cpu_offload: every process receives the whole tensors
            state = get_model_state_dict(self.policy, options=StateDictOptions(full_state_dict=True))
            for name, value in state.items():
                if name in mine:
                    mine[name].copy_(value)
        else:  # zero3: each partitioned parameter gathered in turn, on every process
            import deepspeed

            for name, p in self.policy.named_parameters():
                with deepspeed.zero.GatheredParameters([p]):
                    if name in mine:
                        mine[name].copy_(p.data)
        return self.model
