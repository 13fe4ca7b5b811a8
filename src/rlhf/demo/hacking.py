"""The demo's reward-hacking stage: the failure RLHF is watched for, reproduced on purpose.

Raters who favour long, confident answers (``toyworld/raters.py``: ``length_bias``,
``confidence_bias``) rank the same candidate sets as the demo's raters; a reward model learns their
taste, and PPO with a weak KL penalty optimises it. The reward model's score (the proxy) climbs
while the gold reward of the very same samples falls and the answers grow longer: the
overoptimisation of Gao et al. (2022), "Scaling Laws for Reward Model Overoptimization", in
miniature. The demo's own reward model (fair raters) watches the run as
``rewards.heldout_model``: the check a practitioner without a gold scorer can make.
``proxy_vs_gold`` condenses a PPO run's ``metrics.jsonl`` into that curve.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from rlhf.demo.presets import Preset
from rlhf.toyworld import RaterPool, World

HACKED = "ppo (biased raters)"
"""the row of the results table for the policy this stage trains"""


def run_reward_hacking(
    root: Path,
    world: World,
    sft_dir: Path,
    fair_rm: Path,
    candidates: list[list[str]],
    preset: Preset,
    seed: int,
) -> Path:
    """Biased rankings of ``candidates`` -> ``reward-biased/`` -> PPO against it in ``ppo-biased/``,
    watched by the fair raters' reward model ``fair_rm``; returns the policy's ``final/``."""
    from rlhf.demo.stages import rank, run_ppo, train_reward_model

    pool = RaterPool.build(seed=seed, length_bias=preset.hacking_bias, confidence_bias=preset.hacking_bias)
    rankings = rank(root / "data" / "rankings-biased.jsonl", world, candidates, pool, preset, seed)
    rm_dir = train_reward_model(root / "reward-biased", sft_dir, rankings, preset, seed)
    hacked = replace(preset, ppo_kl_coef=preset.hacking_kl_coef, ppo_steps=preset.hacking_steps)
    watch = {"rewards.heldout_model": fair_rm}
    return run_ppo(root, world, sft_dir, rm_dir, hacked, seed, name="ppo-biased", extra=watch)


def proxy_vs_gold(metrics: Path, windows: int = 6) -> list[dict[str, float | str]]:
    """A PPO run's steps cut into ``windows`` consecutive spans of (nearly) equal length, each
    averaged: KL to the reference, the proxy score the policy was trained on (``score``: the reward
    model's, normalised and penalised), the gold reward of the same samples, response length in
    tokens, the share of repeated word bigrams in a response, and (when the run had a
    ``rewards.heldout_model``) that model's normalised score of the same samples.

    Returns [{"steps": "1-20", "kl", "proxy", "gold", "length", "repeated"[, "heldout"]}, ...];
    steps without ``gold`` (a run outside the demo) are left out.
    """
    rows = [r for r in map(json.loads, metrics.read_text().splitlines()) if "gold" in r]
    k = min(windows, len(rows))
    bounds = [round(i * len(rows) / k) for i in range(k + 1)]
    out = []
    for lo, hi in zip(bounds, bounds[1:]):
        span = rows[lo:hi]
        row: dict[str, float | str] = {"steps": f"{span[0]['step']}-{span[-1]['step']}"}
        keys = (
            ("kl", "kl"),
            ("proxy", "score"),
            ("gold", "gold"),
            ("length", "response_length"),
            ("repeated", "repeated_bigrams"),
        )
        if all("score_heldout" in r for r in span):
            keys += (("heldout", "score_heldout"),)
        for name, key in keys:
            row[name] = sum(r.get(key, 0.0) for r in span) / len(span)
        out.append(row)
    return out
