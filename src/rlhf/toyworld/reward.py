"""The toy world's gold scorer as a reward callable, for any config key that takes ``module:function``:

    rlhf eval ... eval.gold=rlhf.toyworld.reward:gold          # the true win rate of a policy
    rlhf ppo  ... rewards.function=rlhf.toyworld.reward:gold   # RL on the gold score itself

It scores prompts of the world of seed 0 (the demo's default); for another seed, wrap it:
``def gold(prompts, completions, **kw): return reward.gold(prompts, completions, seed=7)``.
"""

from __future__ import annotations

from functools import lru_cache

from rlhf.toyworld.world import World


@lru_cache(maxsize=4)
def _world(seed: int) -> World:
    return World.build(seed)


def gold(prompts: list[str], completions: list[str], seed: int = 0, **_) -> list[float]:
    """``World.gold`` of each (prompt, completion); a prompt the world does not know is an error."""
    world = _world(seed)
    return [world.gold(p, c) for p, c in zip(prompts, completions)]
