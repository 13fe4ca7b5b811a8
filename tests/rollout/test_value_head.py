"""critic.init=shared: the value head reads the policy's last hidden state in the same forward that
gives the logits, at the columns that predict each response token, in rows and in packed groups."""

import pytest
import torch

from rlhf.rollout.experience import ValueHead, pack_rollouts, response_logits
from rlhf.rollout.groups import pack_groups

from .test_groups import build, rollout, tok  # noqa: F401  (tok is a fixture)


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_value_head_reads_the_policys_last_hidden_state_at_each_response_token(tok, arch):  # noqa: F811
    lm = build(tok, arch, "eager", "lm")
    head = ValueHead(lm.config.hidden_size)
    assert not head(torch.randn(3, lm.config.hidden_size)).any()  # starts at zero
    torch.manual_seed(1)
    torch.nn.init.normal_(head.score.weight)
    torch.nn.init.normal_(head.score.bias)
    prompts, responses = rollout(tok)
    exp = pack_rollouts(prompts, responses, tok.pad_token_id)
    P, R = exp.prompt_width, exp.response_mask.shape[1]
    with torch.no_grad():
        hidden = lm.base_model(
            input_ids=exp.input_ids, attention_mask=exp.attention_mask, position_ids=exp.position_ids
        ).last_hidden_state
        expected = head(hidden)[:, P - 1 : P - 1 + R]  # V(s_t) where the model predicts token t
        plain = response_logits(lm, exp)
        logits, values = response_logits(lm, exp, head=head)
        exp.groups = pack_groups(prompts, responses, 3, tok.pad_token_id, None)
        packed_logits, packed_values = response_logits(lm, exp, head=head)
    real = exp.response_mask.bool()
    assert values.shape == (len(responses), R) and values.dtype == torch.float32
    torch.testing.assert_close(logits, plain, atol=0, rtol=0)  # the logits are untouched
    torch.testing.assert_close(values[real], expected[real], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(packed_values[real], expected[real], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(packed_logits[real], plain[real], atol=1e-5, rtol=1e-5)


def test_value_loss_reaches_the_policys_transformer(tok):  # noqa: F811
    """The point of sharing: the value loss trains the transformer too (once the head is non-zero)."""
    lm = build(tok, "gpt2", "eager", "lm")
    head = ValueHead(lm.config.hidden_size)
    prompts, responses = rollout(tok)
    exp = pack_rollouts(prompts, responses, tok.pad_token_id)
    _, values = response_logits(lm, exp, head=head)
    values.sum().backward()
    trunk = lm.transformer.h[0].mlp.c_fc.weight
    assert trunk.grad is None or not trunk.grad.any()  # zero head: nothing flows back yet
    assert head.score.weight.grad.abs().sum() > 0
    lm.zero_grad()
    torch.nn.init.normal_(head.score.weight)
    _, values = response_logits(lm, exp, head=head)
    values.sum().backward()
    assert trunk.grad.abs().sum() > 0


def test_value_head_keeps_float32_weights_under_a_bf16_body():
    """model.dtype=bfloat16: the body's hidden state is bf16, the head's weights stay fp32; the value
    equals the fp32 read of the same hidden state, and the gradient reaches the bf16 body."""
    torch.manual_seed(0)
    head = ValueHead(8)
    torch.nn.init.normal_(head.score.weight)
    hidden = torch.randn(2, 3, 8).bfloat16().requires_grad_()
    values = head(hidden)
    assert head.score.weight.dtype == torch.float32 and values.dtype == torch.float32
    expected = hidden.detach().float() @ head.score.weight[0] + head.score.bias
    torch.testing.assert_close(values, expected)
    values.sum().backward()
    assert hidden.grad is not None and hidden.grad.dtype == torch.bfloat16 and hidden.grad.abs().sum() > 0
