"""The registry of RL algorithms `rlhf ppo` runs: algo.name -> its hooks (algorithms/base.py).

A new variant is one small file defining an ``Algorithm`` and one entry here; its name becomes a
valid ``algo.name`` and appears in ``rlhf ppo --help``.
"""

from __future__ import annotations

from rlhf.config import ConfigError
from rlhf.recipes.algorithms.base import Algorithm, UpdateTerm
from rlhf.recipes.algorithms.grpo import GRPO
from rlhf.recipes.algorithms.online_dpo import OnlineDPO
from rlhf.recipes.algorithms.ppo import PPO
from rlhf.recipes.algorithms.rloo import RLOO

ALGORITHMS: dict[str, Algorithm] = {algo.name: algo for algo in (PPO(), GRPO(), RLOO(), OnlineDPO())}
"""algo.name -> algorithm, in the order --help lists them"""

__all__ = ["ALGORITHMS", "Algorithm", "UpdateTerm", "get_algorithm"]


def get_algorithm(name: str) -> Algorithm:
    """The registered algorithm called ``name``; ConfigError naming algo.name otherwise."""
    try:
        return ALGORITHMS[name]
    except KeyError:
        raise ConfigError(f"algo.name: expected one of {', '.join(ALGORITHMS)}, got {name!r}") from None
