"""Every forward of the demo's evaluation passes the attention mask. Without it transformers warns
("We strongly recommend passing in an `attention_mask`") on a padded batch, and the model reads the
padding as text. `rlhf eval` is checked in tests/recipes/test_eval.py, the whole fast demo in
test_demo.py."""

import pytest
import torch

from rlhf.models.tiny import build_tiny_model, train_tokenizer
from rlhf.toyworld import World, tokenizer_texts

MASK_WARNING = "attention_mask"


@pytest.fixture(scope="module")
def world():
    return World.build(0, n_sft=20, n_rating=20, n_rl=10, n_eval=12)


@pytest.fixture(scope="module")
def tok(world):
    return train_tokenizer(tokenizer_texts(world)[:2000], 400)


def test_the_capture_sees_a_forward_without_the_mask(tok, transformers_warnings):
    """The check below is no check unless a forward without the mask is caught."""
    model = build_tiny_model(tok, "gpt2", "nano", seed=0).eval()
    ids = torch.tensor([[5, 6, 7], [5, 6, tok.pad_token_id]])  # (2, 3), the second row padded
    with transformers_warnings() as messages, torch.no_grad():
        model(input_ids=ids)
    assert any(MASK_WARNING in m for m in messages), messages


def test_the_demo_evaluation_passes_the_mask(world, tok, transformers_warnings):
    from transformers import AutoModelForSequenceClassification

    from rlhf.demo.evaluate import evaluate_best_of_n, evaluate_policy, reward_model_accuracies

    policy = build_tiny_model(tok, "gpt2", "nano", seed=0).eval()
    sft = build_tiny_model(tok, "gpt2", "nano", seed=1).eval()
    sft.config.num_labels = 1
    reward_model = AutoModelForSequenceClassification.from_config(sft.config).eval()
    tasks = world.tasks("eval")
    web = ["the web text of a document", "a much longer second document of the web text kind"]
    with transformers_warnings() as messages:
        evaluate_policy("policy", policy, tok, tasks, sft, 6, 2, 0, web, 32)
        evaluate_best_of_n("best-of-4", sft, reward_model, tok, tasks, 4, 6, 0)
        reward_model_accuracies(reward_model, sft, tok, tasks, 4, 6, 0)
    assert not [m for m in messages if MASK_WARNING in m], messages
