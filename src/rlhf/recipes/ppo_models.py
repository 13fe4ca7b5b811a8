"""The models of `rlhf ppo` and their forwards: the policy, the frozen reference, the critic.

With LoRA (model.lora_r > 0) the reference is the policy with its adapters switched off, no second
copy. The critic (an algorithm with ``critic``) is a copy of the reward model (InstructGPT), of
the policy with a scalar head, or a value head on the policy's own transformer (critic.init=shared:
one forward and one backward for both). Trained models go through ``accelerator.prepare`` with
their optimizers; frozen ones keep bf16 weights under bf16 mixed precision.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import torch

from rlhf.config import ConfigError
from rlhf.models import shared_prompt
from rlhf.models.loading import load_policy, load_scalar_model
from rlhf.recipes.engines import engine_of
from rlhf.recipes.loop import check_finite, make_optimizer, make_scheduler, optimizer_step
from rlhf.recipes.ppo_config import Config
from rlhf.recipes.rl_sharding import average_and_clip, backward, shard_frozen, whole_load
from rlhf.rollout.experience import (
    Experience,
    TokenValueModel,
    ValueHead,
    response_logits,
    response_values,
)
from rlhf.rollout.reward_model import RewardModel, Scorer, frozen

if TYPE_CHECKING:  # hints only
    from pathlib import Path

    from accelerate import Accelerator
    from transformers import PreTrainedTokenizerBase


@dataclass
class RLModels:
    """The trained and frozen models of one run, prepared by accelerate."""

    policy: torch.nn.Module
    unwrapped: torch.nn.Module
    """the policy without accelerate's wrapper (generation engines and adapters read it)"""
    ref: torch.nn.Module | None
    """None with LoRA (adapters off) or without a reference (algo.reference=false)"""
    critic: torch.nn.Module | None
    shared_critic: bool
    """critic is a ValueHead read off the policy's own last hidden state"""
    optimizer: torch.optim.Optimizer
    scheduler: object
    c_optimizer: torch.optim.Optimizer | None = None
    c_scheduler: object | None = None
    c_accelerator: object | None = None
    """under DeepSpeed, the critic's own Accelerator (one DeepSpeed engine each, as OpenRLHF has)"""
    replicated_head: bool = False
    """under FSDP2 and DeepSpeed the shared critic's value head (hidden_size + 1 numbers) is whole
    in every process, in no engine; its gradients are averaged over processes at its step"""

    @property
    def extra_accelerators(self) -> dict:
        """Accelerators besides the run's, by checkpoint subdirectory."""
        return {"critic": self.c_accelerator} if self.c_accelerator is not None else {}

    def backward(self, accelerator: Accelerator, loss: torch.Tensor, boundary: bool) -> None:
        """The policy's backward (with critic.init=shared, the value head's too); ``boundary``:
        the last backward before the optimizer step (rl_sharding.backward)."""
        backward(accelerator, loss, boundary)

    def critic_backward(self, accelerator: Accelerator, loss: torch.Tensor, boundary: bool) -> None:
        """A separate critic's backward, through its own Accelerator under DeepSpeed."""
        backward(self.c_accelerator or accelerator, loss, boundary)

    def forward(self, part: Experience, values: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The policy's logits and, with a critic (and ``values``), its values; one forward with
        critic.init=shared (whose values come with the logits whatever ``values`` says)."""
        if self.shared_critic:
            return response_logits(self.policy, part, head=self.critic)
        logits = response_logits(self.policy, part)
        return logits, response_values(self.critic, part) if values and self.critic is not None else None

    def critic_values(self, part: Experience) -> torch.Tensor:
        """A separate critic's values (its own forward)."""
        return response_values(self.critic, part)

    def reference_logits(self, exp: Experience) -> torch.Tensor:
        if self.ref is not None:
            return response_logits(self.ref, exp)
        with self.unwrapped.disable_adapter():
            return response_logits(self.policy, exp)

    def check_shared_prompt(self, longest: int, scorers: list) -> None:
        """ConfigError (rollout.share_prompt) unless every model that reads packed rows takes the 4D mask."""
        critic = None if self.shared_critic else self.critic
        for model in (self.policy, self.ref, critic, *scorers):
            if model is not None:
                shared_prompt.check(model, longest, "rollout.share_prompt")

    def step(
        self, accelerator: Accelerator, cfg: Config, step: int, loss: float, last_ckpt: Path | None
    ) -> None:
        """One optimizer step of the policy, then of a critic."""
        optimizer_step(
            accelerator, self.policy, self.optimizer, self.scheduler, cfg.train, step, loss, last_ckpt
        )
        if self.replicated_head:
            norm = average_and_clip(accelerator, self.critic, cfg.train.max_grad_norm)
            check_finite(norm, step, "value head gradient norm", last_ckpt)  # before the weights change
            self.c_optimizer.step()
            self.c_scheduler.step()
            self.c_optimizer.zero_grad(set_to_none=True)
        elif self.critic is not None:
            optimizer_step(
                self.c_accelerator or accelerator,
                self.critic,
                self.c_optimizer,
                self.c_scheduler,
                cfg.train,
                step,
                loss,
                last_ckpt,
            )


def build_models(
    cfg: Config,
    tokenizer: PreTrainedTokenizerBase,
    accelerator: Accelerator,
    critic: bool,
    scorers: list,
    opt_steps: int,
) -> RLModels:
    """Load the policy, the reference and (``critic``) the critic, make the optimizers and prepare
    them; ``scorers`` (reward models, None for a function) join the frozen models' bf16 cast."""
    a, device = cfg.algo, accelerator.device
    policy = load_policy(cfg.model, tokenizer).eval()
    lora = cfg.model.lora_r > 0
    # with LoRA the reference is the policy with its adapters switched off: no second copy
    ref = (
        None
        if lora or not a.reference
        else frozen(load_policy(replace(cfg.model, lora_r=0), tokenizer)).to(device)
    )
    if cfg.train.mixed_precision == "bf16":  # frozen models keep bf16 weights: no casts in every forward
        for model in (ref, *scorers):
            if model is not None:
                model.to(torch.bfloat16)
    value_model = None
    shared = critic and cfg.critic.init == "shared"
    if shared:  # a value head on the policy's own transformer, as wide as its last hidden state
        lm_head = policy.get_output_embeddings()
        if not isinstance(lm_head, torch.nn.Linear):
            raise ConfigError(
                f"critic.init=shared: {type(policy).__name__} has no linear output layer to size a value "
                "head by"
            )
        value_model = ValueHead(lm_head.in_features)
    elif critic:
        init = cfg.rewards.model if cfg.critic.init == "reward" else cfg.model.path
        with whole_load(cfg.train.seed):  # its new value head drawn as on every other engine
            body = load_scalar_model(
                replace(cfg.model, path=init, lora_r=0), tokenizer, f"critic.init={cfg.critic.init}"
            )
        value_model = TokenValueModel(body.eval())
    optimizer = make_optimizer(policy, cfg.train)
    scheduler = make_scheduler(optimizer, cfg.train, opt_steps)
    trained = [policy, optimizer]
    if value_model is not None:
        critic_train = replace(cfg.train, lr=cfg.critic.lr)
        c_optimizer = make_optimizer(value_model, critic_train)
        c_scheduler = make_scheduler(c_optimizer, critic_train, opt_steps)
        trained += [value_model, c_optimizer]
    c_accelerator, engine = None, engine_of(accelerator)
    # under FSDP2 and DeepSpeed the shared critic's head stays whole and outside the engine (one
    # backward cannot go through two DeepSpeed engines; FSDP2's wrap policy finds no transformer
    # block in it): the policy's engine runs the one backward, RLModels.step averages the head's
    # gradients over processes, as DDP does, and steps it
    whole_head = shared and engine in ("fsdp2", "zero2", "zero3")
    if whole_head:
        prepared = [*accelerator.prepare(*trained[:2]), value_model.to(device), c_optimizer]
        accelerator.register_for_checkpointing(value_model, c_optimizer)
    elif engine == "fsdp2" and value_model is not None:  # accelerate: one model a call
        prepared = [*accelerator.prepare(*trained[:2]), *accelerator.prepare(*trained[2:])]
    elif engine.startswith("zero") and value_model is not None:
        # accelerate sends every backward to the one DeepSpeed engine an Accelerator holds: the
        # critic gets a second Accelerator (same process-wide state and DeepSpeed settings)
        from accelerate import Accelerator

        c_accelerator = Accelerator(gradient_accumulation_steps=cfg.train.grad_accum)
        prepared = [*accelerator.prepare(*trained[:2]), *c_accelerator.prepare(*trained[2:])]
    else:
        prepared = accelerator.prepare(*trained)
    accelerator.register_for_checkpointing(scheduler)
    # frozen models sharded for inference under FSDP2/ZeRO-3 (whole elsewhere); after the critic's
    # head is drawn, since DeepSpeed's engine set-up draws random numbers too
    ref = shard_frozen(accelerator, ref)
    for model in scorers:
        shard_frozen(accelerator, model)  # in place: the scorers keep their handle
    out = RLModels(
        prepared[0], accelerator.unwrap_model(prepared[0]), ref, None, shared, prepared[1], scheduler
    )
    if value_model is not None:
        out.critic, out.c_optimizer, out.c_scheduler = prepared[2], prepared[3], c_scheduler
        out.c_accelerator, out.replicated_head = c_accelerator, whole_head
        accelerator.register_for_checkpointing(c_scheduler)
    return out


def check_critic_init(cfg: Config, critic: bool, reward_model: RewardModel | None) -> None:
    """critic.init=reward copies the reward model, which must read the policy's tokens."""
    if critic and cfg.critic.init == "reward" and not reward_model.same_vocab:
        raise ConfigError(
            "critic.init=reward: rewards.model uses another tokenizer than model.path, so it cannot read "
            "the policy's tokens as a critic; use critic.init=policy or critic.init=shared"
        )


def make_scorer(
    cfg: Config,
    tokenizer: PreTrainedTokenizerBase,
    reward_fn: Callable | None,
    device: torch.device | str,
    path: str | None = None,
    key: str = "rewards.model",
) -> Scorer:
    """The run's sequence rewards (rollout/reward_model.py: Scorer) from ``rewards.*``: the reward
    function, or the reward model at ``path`` (rewards.model when None). ``key``: the config key
    that named the model (rewards.model, or rewards.heldout_model for the one that only watches)."""
    path = cfg.rewards.model if path is None else path
    rm = None
    if path:
        rm = RewardModel(path, cfg.model, tokenizer, key, device, cfg.rewards.format, "rewards.format")
    return Scorer(
        rm,
        reward_fn,
        fn_spec=cfg.rewards.function,
        normalize=cfg.rewards.normalize,
        batch_size=cfg.rollout.batch_size,
        say=lambda message: print(f"[ppo] rewards.normalize: {message}"),
    )
