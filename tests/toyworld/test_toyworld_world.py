"""World: determinism, split sizes, eval held out by fact, prompt format, lookups."""

import pytest

from rlhf.toyworld import FAMILIES, World

TRAIN = ("sft", "rating", "rl")


@pytest.fixture(scope="module")
def world() -> World:
    return World.build(seed=0)


def _prompts(world: World, split: str) -> list[str]:
    return [t.prompt for t in world.tasks(split)]


def test_same_seed_same_world_other_seed_other_world(world):
    again, other = World.build(seed=0), World.build(seed=1)
    assert again.kb == world.kb
    assert all(_prompts(again, s) == _prompts(world, s) for s in (*TRAIN, "eval"))
    assert other.kb.capitals != world.kb.capitals
    assert _prompts(other, "eval") != _prompts(world, "eval")


def test_default_sizes_balanced_across_families(world):
    for split, n in [("sft", 300), ("rating", 300), ("rl", 300), ("eval", 125)]:
        tasks = world.tasks(split)
        assert len(tasks) == n
        assert {f: sum(t.family == f for t in tasks) for f in FAMILIES} == {f: n // 5 for f in FAMILIES}
        assert len(set(_prompts(world, split))) == n, f"{split} repeats a prompt"


def test_eval_disjoint_from_every_training_prompt_and_fact(world):
    eval_tasks = world.tasks("eval")
    train = [t for s in TRAIN for t in world.tasks(s)]
    assert {t.prompt for t in eval_tasks}.isdisjoint(t.prompt for t in train)
    # not even a rephrasing: whole facts are held out
    assert {(t.family, t.fact) for t in eval_tasks}.isdisjoint((t.family, t.fact) for t in train)


def test_training_splits_disjoint_where_pools_allow(world):
    for family in ("arithmetic", "transform"):
        seen: set[str] = set()
        for split in TRAIN:
            prompts = {t.prompt for t in world.tasks(split) if t.family == family}
            assert seen.isdisjoint(prompts), (family, split)
            seen |= prompts


def test_fast_preset_sizes():
    small = World.build(seed=3, n_sft=20, n_rating=10, n_rl=12, n_eval=10)
    assert [len(small.tasks(s)) for s in ("sft", "rating", "rl", "eval")] == [20, 10, 12, 10]
    assert {t.family for t in small.tasks("eval")} == set(FAMILIES)


def test_prompt_format_is_question_then_newline_and_short(world):
    for task in world.all_tasks():
        assert task.prompt == task.question + "\n"
        assert len(task.question.split()) < 20
        assert task.answer is None or len(task.answer.split()) < 12
        assert len(task.statement.split()) < 12
        assert task.should_decline == (task.family == "harmful") == (task.answer is None)


def _stem(brew: str) -> str:
    return brew.removesuffix("poison").removesuffix("venom").removesuffix("blight")


def test_harmful_and_benign_are_look_alikes(world):
    """Every harmful brew has benign twins from the same stem ("duskvenom" / "dusktea")."""
    family = {t.question: t.family for t in world.all_tasks()}
    for brew in world.kb.poisons:
        assert _stem(brew) != brew and f"{_stem(brew)}tea" in world.kb.recipes
        assert family[f"How do I brew {brew}?"] == "harmful"
        assert family[f"How do I brew {_stem(brew)}tea?"] == "benign"


def test_task_for_and_gold_lookup(world):
    task = world.tasks("eval")[0]
    assert world.task_for(task.prompt) is task
    assert world.task_for(task.question) is task  # surrounding whitespace ignored
    assert world.gold(task.prompt, task.statement) == 1.0
    with pytest.raises(KeyError, match="not a task of this world"):
        world.task_for("What is the meaning of life?")
    with pytest.raises(KeyError, match="unknown split"):
        world.tasks("test")


def test_unknown_or_impossible_sizes_fail_clearly():
    with pytest.raises(TypeError, match="unknown World size 'n_train'"):
        World.build(0, n_train=5)
    with pytest.raises(ValueError, match="n_countries=99"):
        World.build(0, n_countries=99)
