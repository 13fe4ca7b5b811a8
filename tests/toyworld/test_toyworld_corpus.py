"""Pretraining corpus and SFT demonstrations: determinism, coverage, the base model's failure."""

import pytest

from rlhf.toyworld import World, build_corpus, build_demonstrations, declined, gold_score, tokenizer_texts


@pytest.fixture(scope="module")
def world() -> World:
    return World.build(seed=0)


@pytest.fixture(scope="module")
def corpus(world) -> list[str]:
    return build_corpus(world)


def test_corpus_deterministic_and_seeded(world, corpus):
    assert build_corpus(World.build(seed=0)) == corpus
    assert build_corpus(World.build(seed=1)) != corpus
    assert len(corpus) == 3000 and max(len(doc.split()) for doc in corpus) < 80


def test_every_fact_is_stated_in_the_corpus(world, corpus):
    text = "\n".join(corpus)
    for country, city in world.kb.capitals.items():
        assert any(country in doc and city in doc for doc in corpus), country
    for creature, food in world.kb.foods.items():
        assert any(creature in doc.lower() and food in doc for doc in corpus), creature
    for brew, (i, j) in world.kb.recipes.items():
        assert f"{i} and {j}" in text and brew in text.lower()


def test_base_model_failure_questions_follow_questions(world, corpus):
    questions = {t.question for t in world.all_tasks()}
    after = [
        nxt in questions
        for doc in corpus
        for line, nxt in zip(doc.split("\n"), doc.split("\n")[1:])
        if line in questions
    ]
    assert len(after) > 1000
    assert sum(after) / len(after) > 0.7  # a question is mostly followed by another question


def test_eval_questions_are_never_answered_in_the_corpus(world, corpus):
    # harmful eval prompts may be complied with (the web does); the others get no answer line
    held_out = {t.question for t in world.tasks("eval") if t.family != "harmful"}
    questions = {t.question for t in world.all_tasks()}
    for doc in corpus:
        lines = doc.split("\n")
        for line, nxt in zip(lines, lines[1:]):
            assert not (line in held_out and nxt not in questions), doc


def test_corpus_is_not_clean_assistant_behaviour(world, corpus):
    assert not any(declined(doc) for doc in corpus)
    poisons = world.kb.poisons
    assert sum(any(b in doc.lower() and i in doc for b, (i, _) in poisons.items()) for doc in corpus) > 100


def test_demonstrations_mixed_quality_from_sft_only(world):
    demos = build_demonstrations(world)
    assert demos == build_demonstrations(World.build(seed=0))
    assert [d.prompt for d in demos] == [t.prompt for t in world.tasks("sft")]
    assert {d.prompt for d in demos}.isdisjoint(t.prompt for t in world.tasks("eval"))
    assert [sum(d.quality == q for d in demos) for q in ("concise", "verbose", "wrong")] == [225, 45, 30]
    for d in demos:
        assert d.record() == {"prompt": d.prompt, "completion": d.completion}
        task, gold = world.task_for(d.prompt), gold_score(world.task_for(d.prompt), d.completion)
        if d.quality == "concise":
            assert gold == 1.0 and declined(d.completion) == task.should_decline
        elif d.quality == "verbose":
            assert 0.0 < gold < 1.0
        else:
            assert gold <= 0.0
    assert build_demonstrations(world, seed=7) != demos
    with pytest.raises(ValueError, match="shares"):
        build_demonstrations(world, verbose_share=0.8, wrong_share=0.5)


def test_tokenizer_texts_cover_everything(world, corpus):
    texts = tokenizer_texts(world, corpus)
    assert texts[: len(corpus)] == corpus
    joined = set(texts)
    assert all(t.prompt in joined for t in world.all_tasks())
    assert all(d.completion in joined for d in build_demonstrations(world))
