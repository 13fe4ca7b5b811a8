"""KTO (rlhf.losses.kto) against numbers worked out by hand, its reference point, and its
registration in the DPO family; unpaired records and their KL partners."""

from __future__ import annotations

import json

import pytest
import torch
from torch.testing import assert_close

from rlhf.data.readers import DataError
from rlhf.data.records import Unpaired, load_records
from rlhf.data.unpaired import kl_partners
from rlhf.losses.dpo import DPO_LOSSES, PairLogps
from rlhf.losses.kto import kl_reference_point, kto_loss

t = torch.tensor


def worked_example(**kw):
    # r = policy - ref = [1, -2]; KL sample log-ratios [1, 0.5] -> z0 = 0.75; beta 0.5
    policy = t([-2.0, -3.0], requires_grad=True)
    policy_kl = t([-5.0, -4.0], requires_grad=True)
    out = kto_loss(policy, t([-3.0, -1.0]), policy_kl, t([-6.0, -4.5]), t([True, False]), 0.5, **kw)
    return out, policy, policy_kl


def test_kto_losses_by_hand_with_desirable_and_undesirable_weights():
    out, policy, policy_kl = worked_example(desirable_weight=2.0, undesirable_weight=1.5)
    # desirable: 2 - 2 sigmoid(0.5 (1 - 0.75)) = 2 sigmoid(-0.125)
    # undesirable: 1.5 - 1.5 sigmoid(0.5 (0.75 + 2)) = 1.5 sigmoid(-1.375)
    assert_close(out.losses, t([0.9375812532524875, 0.3027198333905683]))
    assert_close(out.rewards, t([0.5, -1.0]))  # beta * r
    assert_close(out.reference_point, t(0.375))  # beta * z0
    out.losses.sum().backward()
    # d/dpolicy: -lambda_D beta s(1 - s) at s = sigmoid(0.125); +lambda_U beta s(1 - s) at s = sigmoid(1.375):
    # a liked completion gains by rising, a disliked one by falling
    assert_close(policy.grad, t([-0.24902597501361748, 0.1208134841859463]))
    assert policy_kl.grad is None or torch.all(policy_kl.grad == 0)  # the reference point is detached


def test_equal_weights_of_one_and_the_reference_point_clamped_at_zero():
    out = worked_example()[0]
    assert_close(out.losses, t([0.9375812532524875 / 2, 0.3027198333905683 / 1.5]))
    # the KL samples' mean log-ratio is negative: a KL estimate below 0 is cut to 0
    assert_close(kl_reference_point(t([-6.0, -5.0]), t([-5.0, -5.0])), t(0.0))
    same = kto_loss(t([0.0]), t([0.0]), t([-6.0]), t([-5.0]), t([True]), 1.0)
    assert_close(same.losses, t([0.5]))  # 1 - sigmoid(0)


def test_kto_in_the_dpo_registry_arranges_rewards_around_the_reference_point():
    lp = PairLogps(
        t([-2.0, -3.0]), t([-5.0, -4.0]), t([-3.0, -1.0]), t([-6.0, -4.5]), t([4.0, 4.0]), t([4.0, 4.0]),
        t([1.0, 0.0]),
    )  # fmt: skip
    out = DPO_LOSSES["kto"](lp, beta=0.5, desirable_weight=2.0, undesirable_weight=1.5)
    assert_close(out.losses, t([0.9375812532524875, 0.3027198333905683]))
    # liked: its reward 0.5 above the point 0.375; disliked: the point above its reward -1
    assert_close(out.chosen_rewards, t([0.5, 0.375]))
    assert_close(out.rejected_rewards, t([0.375, -1.0]))
    with pytest.raises(ValueError, match="desirable"):
        DPO_LOSSES["kto"](lp._replace(desirable=None), beta=0.5)


def test_kl_partners_take_the_next_record_with_another_prompt():
    assert kl_partners(["a", "a", "b", "c"]) == [2, 2, 3, 0]
    chat = [{"role": "user", "content": "x"}]
    assert kl_partners([chat, chat, "x"]) == [2, 2, 0]
    with pytest.raises(DataError, match="all 2 records share one prompt"):
        kl_partners(["a", "a"])


def test_unpaired_records_and_their_errors(tmp_path):
    path = tmp_path / "fb.jsonl"
    rows = [
        {"prompt": "Hi?", "completion": "Hello.", "label": True},
        {"prompt": [{"role": "user", "content": "Hi?"}],
         "completion": [{"role": "assistant", "content": "Go."}], "label": False, "weight": 0.5},
    ]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert load_records(str(path), "unpaired") == [
        Unpaired("Hi?", "Hello.", True),
        Unpaired([{"role": "user", "content": "Hi?"}], "Go.", False, 0.5),
    ]
    path.write_text(json.dumps({"prompt": "Hi?", "completion": "Hello.", "label": 1}) + "\n")
    with pytest.raises(DataError, match=r"fb.jsonl:1: field 'label' must be true \(desirable\) or false"):
        load_records(str(path), "unpaired")
    path.write_text(json.dumps({"prompt": "Hi?", "completion": "Hello."}) + "\n")
    with pytest.raises(DataError, match="fb.jsonl:1: missing field 'label'"):
        load_records(str(path), "unpaired")
