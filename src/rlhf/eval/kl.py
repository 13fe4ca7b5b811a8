"""KL of a policy to a reference, estimated on responses (Schulman, "Approximating KL divergence":
the k1 estimator log pi(y|x) - log ref(y|x), summed over a response's tokens).

- ``sampled_kl_terms``: on responses *sampled* from the policy at temperature 1, the only
  responses on which the estimate is unbiased (``rlhf.eval.metrics.kl_summary`` averages them).
  log pi is the rollout engine's own record of each sampled token, so only the reference runs a
  forward (`rlhf eval`, the demos).
- ``teacher_forced_kl``: on given responses, both models scored by a forward at the sampling
  temperature (the training `kl` of PPO's held-out evaluation).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from rlhf.data.collators import pad
from rlhf.data.tokenize import IGNORE
from rlhf.losses.kl import kl_penalty
from rlhf.losses.logprobs import next_token_logprobs, token_logprobs
from rlhf.rollout.experience import pack_rollouts, response_logits, response_tokens

if TYPE_CHECKING:  # hints only
    from accelerate import Accelerator

    from rlhf.rollout.engine import RolloutEngine
    from rlhf.rollout.generate import Generation, SamplingParams


@torch.no_grad()
def sequence_logprobs(
    model: torch.nn.Module,
    prompts: list[list[int]],
    responses: list[list[int]],
    pad_id: int,
    batch_size: int = 32,
) -> torch.Tensor:
    """Sum of log p(response | prompt) for each (prompt ids, response ids).  Shape: (N,)"""
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(prompts), batch_size):
        p, r = prompts[start : start + batch_size], responses[start : start + batch_size]
        ids = pad([a + b for a, b in zip(p, r)], pad_id)
        mask = pad([[1] * (len(a) + len(b)) for a, b in zip(p, r)], 0)
        labels = pad([[IGNORE] * len(a) + b for a, b in zip(p, r)], IGNORE)
        logits = model(
            input_ids=ids.to(model.device), attention_mask=mask.to(model.device), use_cache=False
        ).logits
        out.append(next_token_logprobs(logits, labels.to(model.device)).sum(-1).cpu())
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0)


def kl_terms(
    gens: list[Generation], reference: torch.nn.Module, pad_id: int, batch_size: int = 32
) -> list[tuple[float, float]]:
    """(log pi(y|x), log ref(y|x)) of each generation: the engine's record, the reference's forward."""
    ref = sequence_logprobs(
        reference, [g.prompt_ids for g in gens], [g.response_ids for g in gens], pad_id, batch_size
    )
    return [(sum(g.logprobs), r) for g, r in zip(gens, ref.tolist())]


def sampled_kl_terms(
    engine: RolloutEngine,
    reference: torch.nn.Module,
    prompt_ids: list[list[int]],
    params: SamplingParams,
    pad_id: int,
    batch_size: int = 32,
) -> list[tuple[float, float]]:
    """``kl_terms`` of the responses ``engine``'s policy samples at ``params``: KL(policy ||
    reference) per response is their mean log pi(y|x) - log ref(y|x) (``kl_summary``)."""
    gens = [g for gs in engine.generate_ids(prompt_ids, params) for g in gs]
    return kl_terms(gens, reference, pad_id, batch_size)


@torch.no_grad()
def teacher_forced_kl(
    policy: torch.nn.Module,
    reference_logits: Callable,
    prompt_ids: list[list[int]],
    response_ids: list[list[int]],
    pad_id: int,
    temperature: float,
    accelerator: Accelerator,
) -> torch.Tensor:
    """Sum over each response's tokens of log pi - log ref, both at ``temperature``; the reference
    is read through ``reference_logits(experience)`` (the RL run's, LoRA-aware).  Shape: (N,)"""
    device = accelerator.device
    exp = pack_rollouts(prompt_ids, response_ids, pad_id).to(device)
    tokens = response_tokens(exp)
    with accelerator.autocast():
        logp = token_logprobs(response_logits(policy, exp), tokens, temperature)
        ref = token_logprobs(reference_logits(exp), tokens, temperature)
    return (kl_penalty(logp.float(), ref.float(), "k1") * exp.response_mask).sum(1).cpu()
