"""AI judges: label preferences with a model instead of (or beside) people.

RLAIF (Lee et al. 2023, "RLAIF vs. RLHF: Scaling Reinforcement Learning from Human Feedback with
AI Feedback") and the RL stage of Constitutional AI (Bai et al. 2022) replace human raters with
an LLM asked which of two responses is better. Here:

    base.py       Comparison, Judgement, the Judge protocol, the position swap (Zheng et al. 2023)
    template.py   the comparison prompt and its option labels
    local.py      LocalJudge: a Hugging Face causal LM, read from its option-token log-probs
    endpoint.py   EndpointJudge: any OpenAI-compatible chat-completions server (httpx, async)
    verdict.py    reading a reply: log-probs, else a parsed verdict; clear errors
    cache.py      the endpoint judge's on-disk reply cache (SQLite)
    labels.py     candidate sets / pairs -> comparisons -> ranking and pair records (soft labels)
    agreement.py  AI labels vs existing labels, by the labeling app's agreement statistics
    run.py        `rlhf judge`

Importing this package does not import torch; ``LocalJudge`` and ``EndpointJudge`` are loaded
when first used.
"""

from rlhf.feedback.judge.base import Comparison, Judge, JudgeError, Judgement, combine_orders, position_stats
from rlhf.feedback.judge.template import JudgeTemplate, load_template

__all__ = [
    "Comparison",
    "EndpointJudge",
    "Judge",
    "JudgeError",
    "JudgeTemplate",
    "Judgement",
    "LocalJudge",
    "combine_orders",
    "load_template",
    "position_stats",
]


def __getattr__(name: str):
    if name == "LocalJudge":
        from rlhf.feedback.judge.local import LocalJudge

        return LocalJudge
    if name == "EndpointJudge":
        from rlhf.feedback.judge.endpoint import EndpointJudge

        return EndpointJudge
    raise AttributeError(name)
