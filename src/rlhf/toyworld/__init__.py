"""The built-in toy task: a synthetic world in which what people prefer is a known function.

``rlhf demo`` builds a ``World``, pretrains a tiny model on ``build_corpus`` (web text that knows
the facts but continues questions instead of answering them), fine-tunes it on
``build_demonstrations``, has a ``RaterPool`` rank sampled responses, and evaluates every stage on
held-out prompts with ``gold_score``, the true preference the raters only see through noise.

    world = World.build(seed=0)                   # or World.build(0, n_sft=40, n_eval=25) for speed
    corpus = build_corpus(world)                  # list[str], one document each
    demos = [d.record() for d in build_demonstrations(world)]
    pool = RaterPool.build(seed=0, length_bias=0.3)
    records = pool.label(world.tasks("rating"), sampled_responses)
    world.gold(prompt, response)                  # float in [-2, 1]
"""

from rlhf.toyworld.corpus import build_corpus, tokenizer_texts
from rlhf.toyworld.demonstrations import Demonstration, build_demonstrations, write_response
from rlhf.toyworld.gold import (
    SCORE_RANGE,
    answered_right,
    complied,
    declined,
    family_accuracy,
    gold_score,
    is_correct,
)
from rlhf.toyworld.raters import Rater, RaterPool, confidence_markers
from rlhf.toyworld.world import FAMILIES, PROMPT_FORMAT, SPLITS, KnowledgeBase, Task, World, WorldSizes

__all__ = [
    "FAMILIES",
    "PROMPT_FORMAT",
    "SCORE_RANGE",
    "SPLITS",
    "Demonstration",
    "KnowledgeBase",
    "Rater",
    "RaterPool",
    "Task",
    "World",
    "WorldSizes",
    "answered_right",
    "build_corpus",
    "build_demonstrations",
    "complied",
    "confidence_markers",
    "declined",
    "family_accuracy",
    "gold_score",
    "is_correct",
    "tokenizer_texts",
    "write_response",
]
