"""`run_rlaif`, the demo's RLAIF stage, end to end on a tiny world and a nano model."""

from __future__ import annotations

import json
import math
import random
from dataclasses import replace

from rlhf.demo.presets import PRESETS
from rlhf.demo.rlaif import run_rlaif


def test_run_rlaif_judges_measures_and_trains_a_reward_model(tmp_path):
    from rlhf.models.tiny import make_tiny_checkpoint
    from rlhf.toyworld import RaterPool, World, build_corpus, tokenizer_texts, write_response

    world = World.build(0, n_sft=10, n_rating=8, n_rl=5, n_eval=5)
    sft = make_tiny_checkpoint(tmp_path / "sft", tokenizer_texts(world, build_corpus(world)), vocab_size=400)
    tasks, rng = world.tasks("rating"), random.Random(0)
    cands = [[write_response(t, q, rng) for q in ("concise", "verbose", "wrong")] for t in tasks]
    (tmp_path / "data").mkdir()
    cand_path, rank_path = tmp_path / "data" / "candidates.jsonl", tmp_path / "data" / "rankings.jsonl"
    cand_path.write_text(
        "".join(json.dumps({"prompt": t.prompt, "responses": c}) + "\n" for t, c in zip(tasks, cands))
    )
    ranks = RaterPool.build(seed=0).label(tasks, cands, seed=0, raters_per_prompt=2)
    rank_path.write_text("".join(json.dumps(r) + "\n" for r in ranks))
    preset = replace(PRESETS["fast"], k=2, max_new_tokens=4, batch_size=4)

    out = run_rlaif(tmp_path, world, sft, cand_path, rank_path, preset, seed=0)

    assert (tmp_path / "reward-rlaif" / "final" / "config.json").is_file()
    assert out["reward_model"] == str(tmp_path / "reward-rlaif" / "final")
    assert out["counts"]["items"] == len(tasks) and out["judge"] == "ai:sft"
    for key in (
        "judge_vs_gold",
        "raters_vs_gold",
        "judge_vs_raters",
        "raters_vs_raters",
        "same_position_rate",
    ):
        assert 0 <= out[key] <= 1, key
    # a random nano policy's held-out samples may all tie on gold (nothing to order): nan, not an error
    acc = out["reward_model_heldout_accuracy_vs_gold"]
    assert math.isnan(acc) or 0 <= acc <= 1
    rows = [json.loads(x) for x in (tmp_path / "data" / "ai_rankings.jsonl").read_text().splitlines()]
    assert len(rows) == len(tasks) and all(r["annotator"] == "ai:sft" for r in rows)
