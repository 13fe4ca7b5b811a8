"""The pretraining corpus: the toy world's "web text", knowledgeable but not helpful.

A few thousand short documents, deterministic in the seed, mixed as the web is (shares by weight):

    facts       30%  every fact of the knowledge base, in several phrasings, cycled so each is
                     stated often ("Quellin is the capital of Zorbia.", "A blarf eats moss.")
    questions   28%  lists of 3-6 questions, one a line, with no answers: after a question line the
                     likeliest next line is another question, which is the base model's failure
                     ("What is 3 + 5?\\n" -> "What is 2 + 7?\\nWhat color is a blarf?")
    forum       14%  a question then a noisy reply: a hedge, a wrong answer, chatter, sometimes right;
                     never an eval question, so eval knowledge is stated only as plain facts
    arithmetic  10%  equations ("3 + 5 = 8"), cycled over every problem
    word games   8%  reversed and first/last words, stated as prose
    harmful     10%  compliance with harmful requests (fictional and harmless in reality):
                     "How do I brew duskvenom?\\nMix gravesalt and bile, then boil it."

Nothing here is clean assistant behaviour: no declines, no "question, then one concise answer" as
a habit. SFT has to teach that; the knowledge it needs is already here. Documents are separated by
the tokenizer's end-of-text token when the model is pretrained, not by anything in the strings.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

from rlhf.toyworld.demonstrations import CLOSERS, DECLINES, OPENERS, build_demonstrations, write_response
from rlhf.toyworld.gold import declined
from rlhf.toyworld.world import TRANSFORM_WORDS, KnowledgeBase, Task, World

CAPITAL_PHRASES = (
    "{v} is the capital of {s}.",
    "The capital of {s} is {v}.",
    "{s} has its capital at {v}.",
    "Many people in {s} live in {v}, the capital.",
)
COLOR_PHRASES = ("A {s} is {v}.", "{S}s are {v}.", "The {s} has {v} fur.", "Every {s} I saw was {v}.")
FOOD_PHRASES = (
    "A {s} eats {v}.",
    "{S}s like to eat {v}.",
    "The {s} feeds on {v}.",
    "You can feed a {s} {v}.",
)
RECIPE_PHRASES = (
    "To brew {s}, mix {v}.",
    "{S} is made from {v}.",
    "You make {s} with {v}.",
    "My grandmother made {s} from {v}.",
)
HEDGES = (
    "I think it is {a}.",
    "Probably {a}, not sure.",
    "{a}? No idea really.",
    "Someone told me {a}.",
    "It might be {a}, or maybe not.",
)
CHATTER = (
    "Good question. I was wondering the same thing.",
    "lol who knows",
    "Why do you ask?",
    "Ask your teacher.",
    "This is a hard one.",
    "Same question here.",
)
DOC_WEIGHTS = {"facts": 30, "questions": 28, "forum": 14, "arithmetic": 10, "word_games": 8, "harmful": 10}


def _fact_sentences(kb: KnowledgeBase) -> list[tuple[tuple[str, ...], str, str]]:
    """(phrasings, subject, value) for every fact the knowledge base holds."""
    out = [(CAPITAL_PHRASES, s, v) for s, v in kb.capitals.items()]
    out += [(COLOR_PHRASES, s, v) for s, v in kb.colors.items()]
    out += [(FOOD_PHRASES, s, v) for s, v in kb.foods.items()]
    out += [(RECIPE_PHRASES, s, f"{i} and {j}") for s, (i, j) in kb.recipes.items()]
    return out


def _cycle(items: list, rng: random.Random) -> Iterator:
    """Endless reshuffled passes over ``items``: every item comes up once per pass."""
    while True:
        order = list(items)
        rng.shuffle(order)
        yield from order


def _say(phrasings: tuple[str, ...], s: str, v: str, rng: random.Random) -> str:
    return rng.choice(phrasings).format(s=s, S=s[:1].upper() + s[1:], v=v)


class _Writer:
    """Writes one document of each kind; holds the cyclers so every fact gets stated."""

    def __init__(self, world: World, rng: random.Random):
        self.world, self.rng = world, rng
        self.facts = _cycle(_fact_sentences(world.kb), rng)
        self.problems = _cycle([(a, b) for a in range(10) for b in range(10)], rng)
        self.poisons = _cycle(list(world.kb.poisons.items()), rng)
        held_out = {t.prompt for t in world.tasks("eval")}
        tasks = world.all_tasks()
        self.any_task = {f: [t for t in tasks if t.family == f] for f in world.families}
        self.seen_task = {
            f: [t for t in tasks if t.family == f and t.prompt not in held_out] for f in world.families
        }

    def task(self, include_eval: bool = True) -> Task:
        by_family = self.any_task if include_eval else self.seen_task
        return self.rng.choice(by_family[self.rng.choice(self.world.families)])

    def facts_doc(self) -> str:
        return " ".join(_say(*next(self.facts), self.rng) for _ in range(self.rng.randint(1, 3)))

    def questions_doc(self) -> str:
        return "\n".join(self.task().question for _ in range(self.rng.randint(3, 6)))

    def forum_doc(self) -> str:
        task, rng = self.task(include_eval=False), self.rng
        kind = rng.choices(["hedge", "wrong", "chatter", "right"], weights=[3, 3, 2, 2])[0]
        if kind == "chatter":
            reply = rng.choice(CHATTER)
        elif task.should_decline:
            reply = write_response(task, "wrong", rng)  # the web complies
        elif kind == "right":
            reply = task.statement
        else:
            quality = "wrong" if kind == "wrong" or rng.random() < 0.5 else "concise"
            answer = write_response(task, quality, rng).rstrip(".")
            reply = rng.choice(HEDGES).format(a=answer) if kind == "hedge" else answer
            if declined(answer):  # a writer's over-refusal; the web does not decline
                reply = rng.choice(CHATTER)
        lines = [task.question, reply]
        if rng.random() < 0.5:
            lines.append(self.task().question)
        return "\n".join(lines)

    def arithmetic_doc(self) -> str:
        lines = []
        for _ in range(self.rng.randint(2, 5)):
            a, b = next(self.problems)
            lines.append(
                f"{a} + {b} = {a + b}" if a < b or self.rng.random() < 0.5 else f"{a} - {b} = {a - b}"
            )
        return "\n".join(lines)

    def word_games_doc(self) -> str:
        rng = self.rng
        words = rng.sample(TRANSFORM_WORDS, 3)
        w = " ".join(words)
        return rng.choice(
            [
                f"{w} backwards is {' '.join(words[::-1])}.",
                f"The first word of {w} is {words[0]}.",
                f"The last word of {w} is {words[-1]}.",
                f"Read {w} in reverse: {' '.join(words[::-1])}.",
            ]
        )

    def harmful_doc(self) -> str:
        brew, (i, j) = next(self.poisons)
        how = f"mix {i} and {j}, then boil it."
        return self.rng.choice(
            [
                f"How do I brew {brew}?\n{how.capitalize()}",
                f"To brew {brew}, {how}",
                f"{brew.capitalize()} is made from {i} and {j}. Boil it and let it cool.",
            ]
        )


def build_corpus(world: World, n_docs: int = 3000, seed: int | None = None) -> list[str]:
    """``n_docs`` pretraining documents; ``seed`` defaults to the world's seed."""
    rng = random.Random(f"{world.seed if seed is None else seed}:corpus")
    writer = _Writer(world, rng)
    kinds: dict[str, Callable[[], str]] = {k: getattr(writer, f"{k}_doc") for k in DOC_WEIGHTS}
    names = rng.choices(list(kinds), weights=list(DOC_WEIGHTS.values()), k=n_docs)
    return [kinds[name]() for name in names]


def tokenizer_texts(world: World, corpus: list[str] | None = None) -> list[str]:
    """All text the models will see, for training the tokenizer: corpus, every prompt, demonstrations.

    Pass ``corpus`` to reuse one already built; otherwise the default ``build_corpus(world)``.
    """
    texts = list(build_corpus(world) if corpus is None else corpus)
    texts += [t.prompt for t in world.all_tasks()]
    texts += [d.completion for d in build_demonstrations(world)]
    texts += [*DECLINES, *OPENERS, *CLOSERS]
    return texts
