"""The SmolLM2 demo's table: every row evaluated on the held-out prompts (each kept in
``<root>/eval/<row>.json`` and read back by a rerun), then the figures that compare rows (general
answers kept against the base model, gold win rate against SFT)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rlhf.demo.smollm_eval import evaluate_best_of_n, evaluate_model
from rlhf.demo.smollm_preset import SmolPreset
from rlhf.eval.metrics import win_rate_interval
from rlhf.realtask import general
from rlhf.realtask.family import Task


def evaluation_rows(
    root: Path,
    p: SmolPreset,
    seed: int,
    heldout: list[Task],
    dirs: dict[str, Path],
    rm_dir: Path,
    only: tuple[str, ...] | None = None,
) -> list[dict[str, Any]]:
    """Every row on the held-out prompts: ``dirs`` ({"base", "sft", ...}: model directories),
    then best-of-n from SFT picked by the reward model (``only``: just these rows)."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    # the trained stages' tokenizer has a pad token the base's vocabulary lacks (loading.py adds
    # one distinct from EOS), so the base model reads through its own
    tok, base_tok = AutoTokenizer.from_pretrained(dirs["sft"]), AutoTokenizer.from_pretrained(dirs["base"])
    load = lambda d: AutoModelForCausalLM.from_pretrained(d).eval()  # noqa: E731
    models: dict[str, Any] = {}
    refs = lambda: {k: models.setdefault(k, load(dirs[k])) for k in ("sft", "base")}  # noqa: E731
    names = [*dirs, f"best-of-{p.best_of}"]
    rows = []
    for name in names if only is None else [n for n in names if n in only]:
        cache = root / "eval" / f"{name}.json"
        if cache.is_file():
            rows.append(json.loads(cache.read_text()))
            continue
        if name in dirs:
            model = refs()[name] if name in ("sft", "base") else load(dirs[name])
            t = base_tok if name == "base" else tok
            row = {**evaluate_model(name, model, t, heldout, refs(), p, seed), "model_dir": str(dirs[name])}
        else:
            rm = AutoModelForSequenceClassification.from_pretrained(rm_dir).eval()
            row = evaluate_best_of_n(name, refs()["sft"], rm, tok, heldout, p, seed)
            row.update(model_dir=str(dirs["sft"]), reward_model_dir=str(rm_dir))
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(row))
        rows.append(row)
    return rows


def compare_rows(rows: list[dict[str, Any]]) -> list[int]:
    """Fill in each row's general answers kept (against ``rows[0]``, the base model) and gold win
    rate against ``rows[1]`` (SFT), dropping the per-prompt lists they come from; returns the base
    model's per-question rightness."""
    base_right = rows[0]["_general_right"]
    sft_gold = rows[1]["_gold_scores"]
    for row in rows:
        right = row.pop("_general_right", None)
        if right is not None:
            row["general_right"] = sum(right)
            # a base model that answers nothing right (a tiny test model) has nothing to keep
            row["general_kept"] = general.kept(base_right, right) if any(base_right) else None
        w = win_rate_interval(row.pop("_gold_scores"), sft_gold)
        row["gold_win_rate_vs_sft"] = w.rate
        row["gold_win_interval"] = [w.low, w.high]
        row["gold_wins_ties_losses"] = [w.wins, w.ties, w.losses]
    return base_right
