"""The registry of RL algorithms: algo.name picks an object whose hooks the loop calls, and never
a branch on the name."""

from __future__ import annotations

import typing

import pytest
import torch
from torch.testing import assert_close

from rlhf.config import ConfigError, load_config
from rlhf.recipes import ppo, ppo_config
from rlhf.recipes.algorithms import ALGORITHMS, get_algorithm
from rlhf.recipes.algorithms.rloo import RLOO
from rlhf.rollout.experience import Experience

from .helpers import read_metrics
from .test_ppo import DIGITS, overrides, run


def test_registry_names_are_the_valid_algo_names_and_the_help():
    assert list(ALGORITHMS) == ["ppo", "grpo", "rloo", "online_dpo"]
    hints = typing.get_type_hints(ppo_config.AlgoSection)
    assert typing.get_args(hints["name"]) == tuple(ALGORITHMS)
    assert "algo.name=ppo|grpo|rloo|online_dpo" in ppo.SUMMARY
    with pytest.raises(ConfigError, match="algo.name"):
        load_config(ppo.Config, None, ["algo.name=reinforce"])
    with pytest.raises(ConfigError, match="reinforce"):
        get_algorithm("reinforce")


def _batch() -> Experience:
    """Two prompts x two samples, two response tokens each (the second row's last one padding)."""
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0], [1.0, 1.0], [1.0, 1.0]])
    exp = Experience(torch.zeros(4, 3), torch.ones(4, 3), torch.zeros(4, 3), mask, 1)
    exp.scores = torch.tensor([1.0, 0.0, 2.0, 2.0])
    exp.logprobs = torch.full((4, 2), -1.0) * mask
    exp.ref_logprobs = torch.full((4, 2), -1.5) * mask  # k1 = 0.5 a token
    return exp


def test_hooks_differ_where_the_algorithms_do():
    """Hand-derived advantages: grpo's group z-score, rloo's leave-one-out of score - beta * KL, none
    for online DPO; only ppo learns a critic; only grpo adds a per-token loss term."""
    a, exp = ppo_config.AlgoSection(), _batch()
    grpo_adv, returns = get_algorithm("grpo").advantages(exp, a, 2, 0.1, None)
    assert returns is None
    z = 0.5 / (0.5**0.5 + 1e-6)  # (1 - 0.5) / std([1, 0]), unbiased; group 2 is uniform: 0
    assert_close(grpo_adv, torch.tensor([[z, z], [-z, 0.0], [0.0, 0.0], [0.0, 0.0]]))
    rloo_adv, _ = get_algorithm("rloo").advantages(exp, a, 2, 0.1, None)
    seq = torch.tensor([1.0 - 0.1, 0.0 - 0.05, 2.0 - 0.1, 2.0 - 0.1])  # score - 0.1 * summed KL
    loo = torch.stack([seq[0] - seq[1], seq[1] - seq[0], seq[2] - seq[3], seq[3] - seq[2]])
    assert_close(rloo_adv, loo[:, None] * exp.response_mask)
    dpo_adv, _ = get_algorithm("online_dpo").advantages(exp, a, 2, 0.1, None)
    assert not dpo_adv.any()
    assert [name for name, x in ALGORITHMS.items() if x.critic] == ["ppo"]
    new_logp = exp.logprobs.clone()
    assert get_algorithm("grpo").token_loss(new_logp, exp, a, 0.1) is not None
    assert all(
        get_algorithm(k).token_loss(new_logp, exp, a, 0.1) is None for k in ("ppo", "rloo", "online_dpo")
    )


def test_the_loop_runs_the_registered_objects_hooks(nano_model, prompts, tmp_path, monkeypatch):
    """A variant registered under a name is what the loop calls: its advantages and loss hooks run
    every step, and their result trains the policy."""
    calls = []

    class Spy(RLOO):
        def advantages(self, exp, a, n, kl_coef, batch_std):
            calls.append("advantages")
            return super().advantages(exp, a, n, kl_coef, batch_std)

        def token_loss(self, new_logp, part, a, kl_coef):
            calls.append("token_loss")
            return None

    monkeypatch.setitem(ALGORITHMS, "rloo", Spy())
    out = tmp_path / "spy"
    run(
        *overrides(nano_model, prompts, out, "algo.name=rloo", f"rewards.function={DIGITS}"),
        "rollout.samples_per_prompt=4",
        "train.batch_size=4",
        "train.max_steps=2",
    )
    assert calls == ["advantages", "token_loss"] * 2
    assert "uniform_groups" in read_metrics(out)[0]  # a group baseline, as RLOO declares
