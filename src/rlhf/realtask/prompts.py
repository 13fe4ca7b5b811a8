"""The task's prompts: every family's train and held-out split, and the training split cut into
the stages' disjoint sets (demonstrations, rating, RL), as chat prompts for SmolLM2's template."""

from __future__ import annotations

import random
import re

from rlhf.realtask.benign import BENIGN
from rlhf.realtask.family import Family, Task
from rlhf.realtask.harmful import HARMFUL

FAMILIES: tuple[Family, ...] = HARMFUL + BENIGN

# the user turn of a rendered ChatML prompt (SmolLM2) or of rlhf.models.tiny's template
_USER_TURN = re.compile(r"(?:<\|im_start\|>user|<\|user\|>)\n(.*?)(?:<\|im_end\|>|<\|end\|>)", re.S)


def tasks(split: str, families: tuple[Family, ...] = FAMILIES) -> list[Task]:
    """Every task of ``split`` ("train", "dev" or "heldout") over ``families``, in family order."""
    return [t for f in families for t in f.tasks(split)]


def stage_sets(sizes: dict[str, int], seed: int = 0) -> dict[str, list[Task]]:
    """The training tasks shuffled and cut into disjoint sets of the given sizes, in order
    (e.g. {"sft": 300, "rating": 160, "rl": 200}); each set keeps harmful and benign in the same
    proportion as the whole, as a stratified cut."""
    pool = tasks("train")
    rng = random.Random(f"{seed}:stage-sets")
    groups = [[t for t in pool if t.harmful], [t for t in pool if not t.harmful]]
    for g in groups:
        rng.shuffle(g)
    if sum(sizes.values()) > len(pool):
        raise ValueError(
            f"stage sets ask for {sum(sizes.values())} prompts; the training split has {len(pool)}"
        )
    out: dict[str, list[Task]] = {}
    used = [0, 0]
    for name, n in sizes.items():
        n_harm = round(n * len(groups[0]) / len(pool))
        picked = []
        for gi, k in ((0, n_harm), (1, n - n_harm)):
            if used[gi] + k > len(groups[gi]):
                kind = "harmful" if gi == 0 else "benign"
                raise ValueError(
                    f"stage set {name!r} needs {k} {kind} prompts; only {len(groups[gi]) - used[gi]} left"
                )
            picked += groups[gi][used[gi] : used[gi] + k]
            used[gi] += k
        rng.shuffle(picked)
        out[name] = picked
    return out


def chat(request: Task | str) -> list[dict[str, str]]:
    """A task (or any question) as a one-turn chat prompt (the model's chat template adds its
    system prompt)."""
    return [{"role": "user", "content": request if isinstance(request, str) else request.prompt}]


def user_message(prompt: str | list[dict[str, str]]) -> str:
    """The user's message of a chat prompt: of a message list, or of a prompt rendered by a
    ChatML template (the text between the last "<|im_start|>user" and its "<|im_end|>"), or by
    rlhf.models.tiny's."""
    if isinstance(prompt, list):
        return [m["content"] for m in prompt if m["role"] == "user"][-1]
    found = _USER_TURN.findall(prompt)
    return found[-1] if found else prompt


def family_sample(per_family: int, seed: int = 0, split: str = "heldout") -> list[Task]:
    """Up to ``per_family`` tasks of ``split`` (held-out, or dev) of each family (all of them when
    it has no more), drawn with ``seed``, in family order."""
    rng = random.Random(f"{seed}:{split}")
    out = []
    for family in FAMILIES:
        pool = family.tasks(split)
        out += rng.sample(pool, min(per_family, len(pool)))
    return out
