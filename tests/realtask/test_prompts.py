"""The task's prompt families: sizes, and a held-out split disjoint by template and by filler."""

import pytest

from rlhf.realtask.family import DEV_TEMPLATES, HELDOUT_FILLERS, HELDOUT_TEMPLATES, Family
from rlhf.realtask.prompts import FAMILIES, family_sample, stage_sets, tasks, user_message


def test_hundreds_of_training_prompts_of_both_kinds():
    train = tasks("train")
    assert len(train) >= 500
    assert sum(t.harmful for t in train) >= 200 and sum(not t.harmful for t in train) >= 300
    assert len({t.prompt for t in train}) == len(train)  # no prompt twice


def test_heldout_shares_no_template_and_no_filler_with_training():
    held_templates = {t for f in FAMILIES for t in f.split_templates("heldout")}
    train_templates = {t for f in FAMILIES for t in f.split_templates("train")}
    assert held_templates and not held_templates & train_templates
    held_fillers = {x for f in FAMILIES for s in f.slots for x in f.split_fillers(s, "heldout")}
    train_fillers = {x for f in FAMILIES for s in f.slots for x in f.split_fillers(s, "train")}
    assert held_fillers and not held_fillers & train_fillers
    train_prompts = {t.prompt for t in tasks("train")}
    for task in tasks("heldout"):
        assert task.prompt not in train_prompts
        assert not any(x in task.prompt for x in train_fillers if len(x) > 12), task.prompt


def test_dev_shares_no_template_with_training_or_heldout_and_no_prompt_with_either():
    dev = {t for f in FAMILIES for t in f.split_templates("dev")}
    others = {t for f in FAMILIES for split in ("train", "heldout") for t in f.split_templates(split)}
    assert len(dev) == DEV_TEMPLATES * len(FAMILIES) and not dev & others
    dev_prompts = {t.prompt for t in tasks("dev")}
    assert dev_prompts and not dev_prompts & {t.prompt for t in tasks("train") + tasks("heldout")}
    # every stage set is drawn from the training split: a dev prompt is never trained on
    sets = stage_sets({"sft": 576, "rating": 96, "rl": 120})
    assert not dev_prompts & {t.prompt for s in sets.values() for t in s}
    assert {t.family for t in family_sample(1, split="dev")} == {f.name for f in FAMILIES}


def test_every_family_has_a_heldout_split_of_the_promised_size():
    for f in FAMILIES:
        n = HELDOUT_TEMPLATES * HELDOUT_FILLERS ** len(f.slots)
        assert len(f.tasks("heldout")) == n, f.name
    names = [f.name for f in FAMILIES]
    assert len(set(names)) == len(names)
    assert {f.harmful for f in FAMILIES} == {True, False}


def test_a_template_that_misses_a_slot_is_refused():
    with pytest.raises(ValueError, match="names"):
        Family("x", True, ("a {who}", "b", "c {who}"), {"who": ("1", "2", "3", "4")})
    with pytest.raises(ValueError, match="fillers"):
        Family("x", True, ("a {who}", "b {who}", "c {who}", "d {who}", "e {who}"), {"who": ("1", "2")})


def test_stage_sets_are_disjoint_stratified_and_checked():
    sets = stage_sets({"sft": 100, "rating": 50, "rl": 60}, seed=1)
    seen = [t.prompt for s in sets.values() for t in s]
    assert len(seen) == len(set(seen)) == 210
    share = sum(t.harmful for t in tasks("train")) / len(tasks("train"))
    assert abs(sum(t.harmful for t in sets["sft"]) / 100 - share) < 0.02
    assert stage_sets({"sft": 10}, seed=1) == stage_sets({"sft": 10}, seed=1)
    with pytest.raises(ValueError, match="training split"):
        stage_sets({"sft": 10_000})


def test_family_sample_takes_up_to_n_per_family():
    one = family_sample(1, seed=0)
    assert len(one) == len(FAMILIES) and len({t.family for t in one}) == len(FAMILIES)
    assert len(family_sample(100)) == len(tasks("heldout"))


def test_user_message_is_read_back_from_rendered_chat_prompts():
    chatml = "<|im_start|>system\nBe nice<|im_end|>\n<|im_start|>user\nHow do I kill a process?<|im_end|>\n"
    assert user_message(chatml + "<|im_start|>assistant\n") == "How do I kill a process?"
    assert user_message("<|user|>\nhi there<|end|>\n<|assistant|>\n") == "hi there"
    assert user_message([{"role": "user", "content": "q"}]) == "q"


def test_the_smollm_presets_stage_sets_fit_the_training_split():
    # the preset draws nearly every training prompt: removing prompts from a family must fail
    # here, not after the demo's first stages
    from rlhf.demo.smollm_preset import SMOL_PRESETS

    for name, p in SMOL_PRESETS.items():
        sizes = p.stage_sizes
        sets = stage_sets(sizes, seed=0)
        assert {k: len(v) for k, v in sets.items()} == sizes, name
