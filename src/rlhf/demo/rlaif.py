"""RLAIF on the toy task: the demo's SFT model prompted as the judge, instead of the raters.

    1. the SFT model judges every pair of the demo's candidate sets (both orders, log-odds
       combined: rlhf.feedback.judge), giving one AI ranking per rating prompt
    2. its agreement with the gold ordering (``gold_score``) and with the simulated raters'
       rankings, by the labeling app's statistics, next to the raters' own figures
    3. a reward model trained on the AI rankings with the demo's reward settings, and its held-out
       pairwise accuracy against gold (the figure the demo reports for the human-label RM)

Lee et al. 2023 (RLAIF) use a far larger off-the-shelf LLM as the labeler; here the judge is the
1-3M-parameter policy itself, which was never trained to compare answers. Whatever it scores is
the honest figure for "a small SFT model as its own judge", and the demo reports it as it is.
The comparison prompt is written in the model's own plain-prompt format (no chat template: the
demo's models were trained on raw "question\\n" prompts).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rlhf.demo.presets import Preset
from rlhf.toyworld import World, gold_score
from rlhf.toyworld.raters import competition_ranks


def _records(path: Path) -> list[dict]:
    import json

    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_rlaif(
    root: str | Path,
    world: World,
    sft_dir: str | Path,
    candidates_path: str | Path,
    rankings_path: str | Path,
    preset: Preset,
    seed: int,
) -> dict[str, Any]:
    """Judge, measure, train the RLAIF reward model; returns its path and the agreement figures."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    from rlhf.data.io import write_jsonl_atomic
    from rlhf.demo.evaluate import reward_model_accuracy
    from rlhf.demo.stages import train_reward_model
    from rlhf.feedback.judge.agreement import agreement_report, gold_table
    from rlhf.feedback.judge.labels import read_items
    from rlhf.feedback.judge.local import LocalJudge
    from rlhf.feedback.judge.run import label

    root, seconds = Path(root), {}
    t0 = time.perf_counter()
    # 1. the SFT model as the judge of the demo's candidate sets
    tok = AutoTokenizer.from_pretrained(sft_dir)
    sft_model = AutoModelForCausalLM.from_pretrained(sft_dir).eval()
    judge = LocalJudge(sft_model, tok, name="sft", batch_size=64, chat=False)
    items = read_items(str(candidates_path), "candidates")
    ai_rankings, _, report = label(judge, items, seed=seed)
    ai_path = write_jsonl_atomic(root / "data" / "ai_rankings.jsonl", ai_rankings)
    seconds["judge"] = round(time.perf_counter() - t0, 1)

    # 2. agreement with gold and with the simulated raters
    tasks = [world.task_for(it.prompt) for it in items]
    gold_ranks = [competition_ranks([gold_score(t, r) for r in it.responses]) for t, it in zip(tasks, items)]
    gold = gold_table([it.prompt for it in items], [it.responses for it in items], gold_ranks)
    agreement = agreement_report(ai_rankings, _records(Path(rankings_path)), gold)

    # 3. reward model on the AI labels, with the demo's reward-stage settings
    t1 = time.perf_counter()
    rm_dir = train_reward_model(root / "reward-rlaif", Path(sft_dir), ai_path, preset, seed)
    seconds["reward_model"] = round(time.perf_counter() - t1, 1)
    rm = AutoModelForSequenceClassification.from_pretrained(rm_dir).eval()
    rm_acc = reward_model_accuracy(
        rm, sft_model, tok, world.tasks("eval"), preset.k, preset.max_new_tokens, seed + 1
    )
    seconds["total"] = round(time.perf_counter() - t0, 1)

    gold_acc = agreement["gold_accuracy"]
    result = {
        "judge": report["judge"],
        "ai_rankings": str(ai_path),
        "reward_model": str(rm_dir),
        "judge_vs_gold": gold_acc.get("ai:sft", {}).get("value"),
        "raters_vs_gold": gold_acc["reference_mean"]["value"],
        "judge_vs_raters": agreement["ai_vs_reference"]["value"],
        "raters_vs_raters": agreement["reference_vs_reference"]["value"],
        "same_position_rate": report["position"]["same_position_rate"],
        "first_position_rate": report["position"]["first_position_rate"],
        "reward_model_heldout_accuracy_vs_gold": rm_acc,
        "agreement": agreement,
        "counts": report["counts"],
        "prompts_truncated": judge.stats["truncated"],
        "seconds": seconds,
    }
    print(
        f"[rlaif] SFT model as judge: pairwise accuracy vs gold {result['judge_vs_gold']:.3f} (simulated "
        f"raters {result['raters_vs_gold']:.3f}); agreement with raters {result['judge_vs_raters']:.3f} "
        f"(raters with each other {result['raters_vs_raters']:.3f}); same position after the swap "
        f"{result['same_position_rate']:.1%}; RLAIF reward model held-out accuracy vs gold {rm_acc:.3f}"
    )
    return result
