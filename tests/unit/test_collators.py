"""rlhf.data.collators against literal tensors: padding, masks, -100 labels, group indices."""

from __future__ import annotations

import torch
from torch.testing import assert_close

from rlhf.data.collators import collate_groups, collate_sft, even_batches, pack_examples, pad, padded_share
from rlhf.data.rankings import to_group
from rlhf.data.records import Pair, Ranking

PAD = 3  # distinct from 0 so a pad value can't pass by accident


def test_pad_right_pads_to_the_longest():
    assert_close(pad([[5], [6, 7, 8], [9, 10]], PAD), torch.tensor([[5, 3, 3], [6, 7, 8], [9, 10, 3]]))


def test_collate_sft():
    batch = collate_sft(
        [
            {"input_ids": [10, 11, 20, 1], "labels": [-100, -100, 20, 1]},
            {"input_ids": [12, 21, 1], "labels": [-100, 21, 1]},
            {"input_ids": [13, 14, 15, 22, 23, 1], "labels": [-100, -100, -100, 22, 23, 1]},
        ],
        pad_id=PAD,
    )
    assert set(batch) == {"input_ids", "attention_mask", "labels"}
    assert_close(
        batch["input_ids"],
        torch.tensor([[10, 11, 20, 1, 3, 3], [12, 21, 1, 3, 3, 3], [13, 14, 15, 22, 23, 1]]),
    )
    assert_close(
        batch["attention_mask"], torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1]])
    )
    assert_close(
        batch["labels"],
        torch.tensor(
            [
                [-100, -100, 20, 1, -100, -100],
                [-100, 21, 1, -100, -100, -100],
                [-100, -100, -100, 22, 23, 1],
            ]
        ),
    )
    assert all(t.dtype == torch.long for t in batch.values())


def ex(ids: list[int], n_prompt: int) -> dict[str, list[int]]:
    return {"input_ids": ids, "labels": [-100] * n_prompt + ids[n_prompt:]}


def test_pack_examples_greedy_whole_examples():
    examples = [
        ex([10, 20, 1], 1),
        ex([11, 21], 1),
        ex([12, 13, 22, 1], 2),
        ex([14], 0),
        ex([15, 23, 24, 1], 1),
    ]
    rows = pack_examples(examples, max_length=5)
    assert rows == [
        {"input_ids": [10, 20, 1, 11, 21], "labels": [-100, 20, 1, -100, 21]},  # 3 + 2
        {"input_ids": [12, 13, 22, 1, 14], "labels": [-100, -100, 22, 1, 14]},  # 4 + 1
        {"input_ids": [15, 23, 24, 1], "labels": [-100, 23, 24, 1]},  # 4: the next would not fit
    ]
    # nothing lost or reordered
    assert sum((r["input_ids"] for r in rows), []) == sum((e["input_ids"] for e in examples), [])


def test_pack_examples_never_splits_an_example():
    rows = pack_examples([ex([1, 2, 3], 1), ex([4, 5, 6, 7, 8, 9], 2), ex([10], 0)], max_length=4)
    assert [r["input_ids"] for r in rows] == [[1, 2, 3], [4, 5, 6, 7, 8, 9], [10]]
    assert pack_examples([], max_length=4) == []


def test_packed_rows_collate():
    rows = pack_examples([ex([10, 20, 1], 1), ex([11, 21], 1), ex([12, 22, 1], 1)], max_length=5)
    batch = collate_sft(rows, pad_id=PAD)
    assert_close(batch["input_ids"], torch.tensor([[10, 20, 1, 11, 21], [12, 22, 1, 3, 3]]))
    assert_close(batch["labels"], torch.tensor([[-100, 20, 1, -100, 21], [-100, 22, 1, -100, -100]]))
    assert_close(batch["attention_mask"], torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]))


def test_collate_groups_offsets_indices_per_group():
    groups = [
        {
            "prompt_ids": [10, 11],
            "response_ids": [[20, 1], [21, 22, 1], [23, 1]],
            "better": [0, 0, 1],
            "worse": [1, 2, 2],
            "margins": [0.0, 0.0, 0.0],
            "weight": 1.0,
        },
        {
            "prompt_ids": [12],
            "response_ids": [[24, 1], [25, 1]],
            "better": [1],
            "worse": [0],
            "margins": [0.5],
            "weight": 2.0,
        },
    ]
    batch = collate_groups(groups, pad_id=PAD)
    assert_close(
        batch["input_ids"],
        torch.tensor(
            [
                [10, 11, 20, 1, 3],
                [10, 11, 21, 22, 1],
                [10, 11, 23, 1, 3],
                [12, 24, 1, 3, 3],
                [12, 25, 1, 3, 3],
            ]
        ),
    )
    assert_close(
        batch["attention_mask"],
        torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1], [1, 1, 1, 1, 0], [1, 1, 1, 0, 0], [1, 1, 1, 0, 0]]),
    )
    assert_close(batch["better"], torch.tensor([0, 0, 1, 4]))  # group 1's rows start at 3
    assert_close(batch["worse"], torch.tensor([1, 2, 2, 3]))
    assert_close(batch["pair_group"], torch.tensor([0, 0, 0, 1]))
    assert_close(batch["margin"], torch.tensor([0.0, 0.0, 0.0, 0.5]))
    assert_close(batch["group_weight"], torch.tensor([1.0, 2.0]))
    assert batch["better"].dtype == batch["pair_group"].dtype == torch.long
    assert batch["margin"].dtype == batch["group_weight"].dtype == torch.float32


def test_groups_from_records_to_batch():
    """Records -> groups -> (hand-tokenized) batch: ranking order and pair margin survive."""
    ranking = to_group(Ranking("p", ["r0", "r1", "r2"], [3, 1, 2], weight=0.5))
    pair = to_group(Pair("q", "c", "r", margin=1.5, weight=2.0))
    ids = {"p": [10], "q": [11], "r0": [20], "r1": [21], "r2": [22], "c": [23], "r": [24]}
    groups = [
        {
            "prompt_ids": ids[g.prompt],
            "response_ids": [ids[r] + [1] for r in g.responses],
            "better": g.better,
            "worse": g.worse,
            "margins": g.margins,
            "weight": g.weight,
        }
        for g in (ranking, pair)
    ]
    batch = collate_groups(groups, pad_id=PAD)
    assert_close(
        batch["input_ids"], torch.tensor([[10, 20, 1], [10, 21, 1], [10, 22, 1], [11, 23, 1], [11, 24, 1]])
    )
    # ranks [3, 1, 2]: 1 > 0, 1 > 2, 2 > 0; then the pair, offset by 3 rows
    assert_close(batch["better"], torch.tensor([1, 1, 2, 3]))
    assert_close(batch["worse"], torch.tensor([0, 2, 0, 4]))
    assert_close(batch["pair_group"], torch.tensor([0, 0, 0, 1]))
    assert_close(batch["margin"], torch.tensor([0.0, 0.0, 0.0, 1.5]))
    assert_close(batch["group_weight"], torch.tensor([0.5, 2.0]))


def test_pad_left_puts_padding_first():
    from rlhf.data.collators import pad

    assert pad([[5, 6], [7]], 0, left=True).tolist() == [[5, 6], [0, 7]]


def test_every_process_runs_as_many_evaluation_batches():
    items = list(range(7))
    shares = [even_batches(items, r, 2, 2) for r in range(2)]
    assert [len(s) for s in shares] == [2, 2]  # 4 and 3 items: two forwards each
    counted = sorted(x for s in shares for batch, real in s if real for x in batch)
    assert counted == items
    shares = [even_batches(list(range(5)), r, 4, 1) for r in range(4)]
    assert [len(s) for s in shares] == [2, 2, 2, 2] and [sum(real for _, real in s) for s in shares] == [
        2,
        1,
        1,
        1,
    ]


def test_every_process_takes_as_many_held_out_prompts():
    # one prompt on 2 processes: the second pads with a copy (index 0) and counts nothing
    assert [padded_share(1, r, 2) for r in range(2)] == [([0], 1), ([0], 0)]
    shares = [padded_share(7, r, 3) for r in range(3)]
    assert shares == [([0, 3, 6], 3), ([1, 4, 0], 2), ([2, 5, 0], 2)]
    assert sorted(i for idx, real in shares for i in idx[:real]) == list(range(7))
    assert padded_share(0, 1, 2) == ([], 0)


def test_kl_weights_collate_per_token_and_survive_packing():
    """A demonstration's kl_weight rides on its tokens: 1 for an example without one, 0 on padding."""
    weighted = {**ex([10, 20, 1], 1), "kl_weights": [0.0] * 3}
    batch = collate_sft([weighted, ex([11, 21], 1)], pad_id=PAD)
    assert_close(batch["kl_weights"], torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 0.0]]))
    assert "kl_weights" not in collate_sft([ex([11, 21], 1)], pad_id=PAD)

    rows = pack_examples([weighted, ex([11, 21], 1), {**ex([12, 22, 1], 1), "kl_weights": [2.0] * 3}], 5)
    assert [r["kl_weights"] for r in rows] == [[0.0, 0.0, 0.0, 1.0, 1.0], [2.0, 2.0, 2.0]]
    assert all("kl_weights" not in r for r in pack_examples([ex([11, 21], 1)], 5))
