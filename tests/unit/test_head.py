"""logits_to_keep as an index: the same logits as the int form, from a contiguous selection."""

import pytest
import torch

from rlhf.models.head import last_positions
from rlhf.models.tiny import build_tiny_model, train_tokenizer


def test_last_positions_are_the_trailing_indices():
    assert last_positions(7, 3, "cpu").tolist() == [4, 5, 6]
    with pytest.raises(ValueError, match="keep must be in"):
        last_positions(7, 0, "cpu")


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_index_keeps_the_logits_of_the_int_form(arch):
    tok = train_tokenizer([f"word {i} and {i * 3}" for i in range(100)], 200)
    model = build_tiny_model(tok, arch, "nano", seed=0).eval()
    ids = torch.randint(5, len(tok), (3, 12))
    with torch.no_grad():
        by_int = model(input_ids=ids, logits_to_keep=5).logits
        by_index = model(input_ids=ids, logits_to_keep=last_positions(12, 5, "cpu")).logits
    torch.testing.assert_close(by_index, by_int)
