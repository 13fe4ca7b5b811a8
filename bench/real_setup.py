"""What both sides of the real-model benchmark share: the rows, their sizes, the inputs and the
worker protocol. Imported by the project's worker (real_ours.py) and by the peer's (real_trl.py),
which runs in another venv, so only the standard library, torch and transformers are used here.

Inputs are built once by the driver (bench_real.py) into a work directory: the SmolLM2-135M-Instruct
checkpoint, a reward model made from it (its transformer with a seeded one-output score head, the
value model's starting point too) and the data. Every prompt is exactly PROMPT_TOKENS tokens and
every response RESPONSE_TOKENS tokens: text made of words that are one token each after a space,
so both tokenizations agree and no batch carries padding. Generation is forced to the full
RESPONSE_TOKENS on both sides (EOS masked until then, or no stop token).

A worker is run as ``python real_<side>.py ROW_JSON`` and prints one line ``RESULT {json}``: the
median step time, the step times, the CPU seconds of each step, the other processes' load during
the timed steps and its peak resident memory.
"""

from __future__ import annotations

import json
import random
import resource
import sys
from pathlib import Path
from typing import Any

PROMPT_TOKENS = 32
RESPONSE_TOKENS = 32
"""every response, EOS included where the side appends one"""
SEED = 0
LORA = {"r": 16, "alpha": 32, "dropout": 0.0, "targets": "all-linear"}
"""LoRA on every linear layer of the transformer (q, k, v, o, gate, up, down), not the LM head"""
LR = 1e-6
ALGOS = {
    # algo: (prompts a step, samples a prompt, untimed steps, timed steps)
    "dpo": (4, 1, 1, 3),
    "grpo": (2, 4, 1, 3),
    "ppo": (8, 1, 2, 5),  # its first steps still settle (memory first touched): 2 untimed, median of 5
}
UNITS = {"dpo": "pairs", "grpo": "completions", "ppo": "rollouts"}
QUICK = (1, 2)
"""untimed and timed steps of --quick (a smoke test)"""


def single_token_words(tokenizer, n: int = 400) -> list[str]:
    """``n`` lowercase words that are exactly one token after a space, in a seeded order."""
    vocab = tokenizer.get_vocab()
    words = sorted(
        tok[1:]
        for tok in vocab
        if tok.startswith("\u0120") and tok[1:].isalpha() and tok[1:].islower() and len(tok) > 3
    )
    rng = random.Random(SEED)
    rng.shuffle(words)
    out = []
    for w in words:
        if len(tokenizer(" " + w, add_special_tokens=False)["input_ids"]) == 1:
            out.append(w)
        if len(out) == n:
            return out
    raise RuntimeError(f"only {len(out)} single-token words in the tokenizer")


def text(words: list[str], n_tokens: int, rng: random.Random) -> str:
    return "".join(" " + rng.choice(words) for _ in range(n_tokens))


def write_data(model_dir: Path, work: Path, n_pairs: int, n_prompts: int) -> dict[str, str]:
    """pairs.jsonl (prompt, chosen, rejected) and prompts.jsonl (prompt) of exact token counts:
    one epoch is all a row runs (DPO's precomputed reference reads every pair).

    Responses have RESPONSE_TOKENS - 1 words: the trainers append EOS."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    words = single_token_words(tok)
    rng = random.Random(SEED)
    pairs, prompts = [], []
    for _ in range(max(n_pairs, n_prompts)):
        prompt = text(words, PROMPT_TOKENS, rng)  # the leading space keeps word 1 one token
        if len(tok(prompt, add_special_tokens=False)["input_ids"]) != PROMPT_TOKENS:
            raise RuntimeError(f"prompt is not {PROMPT_TOKENS} tokens: {prompt!r}")
        chosen, rejected = (text(words, RESPONSE_TOKENS - 1, rng) for _ in range(2))
        pairs.append({"prompt": prompt, "chosen": chosen, "rejected": rejected})
        prompts.append({"prompt": prompt})
    paths = {"pairs": work / "pairs.jsonl", "prompts": work / "prompts.jsonl"}
    for key, rows in (("pairs", pairs[:n_pairs]), ("prompts", prompts[:n_prompts])):
        paths[key].write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {k: str(v) for k, v in paths.items()}


def reward_model(model_dir: Path, out: Path) -> Path:
    """The policy's transformer with a seeded one-output score head, saved as a sequence
    classifier: the reward model of the RL rows and the value model's starting point."""
    if (out / "config.json").is_file():
        return out
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(SEED)
    model = AutoModelForSequenceClassification.from_pretrained(str(model_dir), num_labels=1)
    model.save_pretrained(str(out))
    AutoTokenizer.from_pretrained(str(model_dir)).save_pretrained(str(out))
    return out


def peak_rss_mb() -> float:
    """The peak resident memory of this process (Linux reports kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def read_row() -> dict[str, Any]:
    """The row a worker runs: its one argument, a JSON object (see bench_real.py: worker_args)."""
    if len(sys.argv) != 2:
        raise SystemExit(f"usage: {sys.argv[0]} ROW_JSON")
    return json.loads(sys.argv[1])


def allocator() -> str:
    """The malloc this worker runs: the allocator library mapped into it, or "system"."""
    maps = Path("/proc/self/maps")
    text = maps.read_text() if maps.exists() else ""
    return next((name for name in ("tcmalloc", "jemalloc", "mimalloc") if f"lib{name}" in text), "system")


def report(timer, row: dict[str, Any], settings: dict[str, Any]) -> None:
    """Print the worker's result line from a StepTimer (bench/common.py)."""
    import statistics

    times, cpu = timer.step_times(), timer.cpu_step_times()
    out = {
        "step_s": statistics.median(times),
        "step_times": times,
        "cpu_s": statistics.median(cpu),
        "cpu_times": cpu,
        "other_load": timer.other_load,
        "peak_rss_mb": peak_rss_mb(),
        "allocator": allocator(),
        "settings": settings,
    }
    print("RESULT " + json.dumps(out), flush=True)
