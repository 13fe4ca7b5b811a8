"""Rollout speed: Hugging Face ``generate`` against KVCacheEngine on the 10M tiny GPT-2.

Cases (prompts of PROMPT_TOKENS tokens, up to 32 new tokens):
  batch16     16 prompts x 1 sample at temperature 1, every row forced to full length
              (min_new_tokens = 32)
  grpo4x4     4 prompts x 4 samples (a GRPO group shape): the engine prefills each prompt once
  early-stop  16 prompts, greedy, on a copy of the model whose EOS logit is raised so that rows
              end at different steps (1 to 32 tokens, 14 on average): the engine drops finished
              rows, generate keeps them as padding. Greedy, so both produce the same tokens.
each in fp32 and bf16 (HF: the model converted to bf16; engine: its own bf16 copy).

tokens/s counts generated tokens over the whole call (prefill included), best of ``--repeats``
calls, HF and the engine taking turns.
FLOPs are 2 x flop_params x tokens forwarded (prompt tokens prefilled + rows decoded), against
the machine's measured matmul rate (bench/common.py), the ceiling.

    .venv/bin/python bench/bench_generate.py [--quick] [--wait-quiet 300]
"""

from __future__ import annotations

import copy
import random
import time

import torch
from common import (
    BUSY,
    PROMPT_TOKENS,
    bench_parser,
    busy_cpu_seconds,
    checkpoint,
    flop_params,
    measure_quietly,
    peak,
    sentence,
    start,
    table,
    write_results,
)

NEW_TOKENS = 32
CASES = {
    "batch16": (16, 1, NEW_TOKENS, 1.0),
    "grpo4x4": (4, 4, NEW_TOKENS, 1.0),
    "early-stop": (16, 1, 0, 0.0),
}
"""case -> (prompts, samples per prompt, min_new_tokens, temperature)"""
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}
EOS_BOOST = 0.7
"""early-stop: EOS logit raised by about this much (the model's logits are about 0.1 apart)"""


def eos_likely(model, eos: int):
    """A copy whose EOS logit is raised through one coordinate: ln_f's bias there is set, and the
    (tied) EOS embedding reads it. EOS never enters as input, so nothing else changes."""
    model = copy.deepcopy(model)
    with torch.no_grad():
        model.transformer.ln_f.bias[0] += 1.0
        model.lm_head.weight[eos, 0] += EOS_BOOST
    return model


class HFRunner:
    """Plain ``model.generate`` with the same sampling settings (the strongest HF baseline)."""

    def __init__(self, model, tok):
        self.model, self.tok = model, tok

    @torch.no_grad()
    def __call__(self, prompts: list[list[int]], n: int, min_new: int, temperature: float) -> dict:
        ids = torch.tensor([p for p in prompts for _ in range(n)])  # equal lengths: no padding
        sample = temperature > 0
        out = self.model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=NEW_TOKENS,
            min_new_tokens=min_new or None,
            do_sample=sample,
            temperature=temperature if sample else None,
            top_k=0 if sample else None,
            top_p=1.0 if sample else None,
            pad_token_id=self.tok.pad_token_id,
            eos_token_id=self.tok.eos_token_id,
        )
        new = out[:, ids.shape[1] :].tolist()
        eos = self.tok.eos_token_id
        lengths = [r.index(eos) + 1 if eos in r else len(r) for r in new]
        # generate runs every row until the longest is done
        return {"new_tokens": sum(lengths), "forwarded": ids.numel() + len(new) * (len(new[0]) - 1)}


class EngineRunner:
    def __init__(self, model, tok, dtype):
        from rlhf.rollout.engine import KVCacheEngine

        self.engine = KVCacheEngine(model, tok, batch_size=64, dtype=dtype)

    def sync_ms(self, model, repeats: int = 3) -> float:
        """Best time of ``sync_weights`` (re-packing the weights after an optimizer step)."""
        best = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            self.engine.sync_weights(model)
            best = min(best, time.perf_counter() - t)
        return 1e3 * best

    def __call__(self, prompts: list[list[int]], n: int, min_new: int, temperature: float) -> dict:
        from rlhf.rollout.generate import SamplingParams

        params = SamplingParams(NEW_TOKENS, temperature, n=n, min_new_tokens=min_new, seed=0)
        self.engine.generate_ids(prompts, params)
        s = self.engine.last_stats
        return {"new_tokens": s["new_tokens"], "forwarded": s["prefill_tokens"] + s["row_steps"]}


def measure(runners: dict, prompts: list[list[int]], n: int, min_new: int, temperature: float, repeats: int):
    """Best of ``repeats`` calls of each runner (after one warm-up call each), the runners taking
    turns so that both see the same machine (its speed drifts by 10% over minutes); and the load
    other processes put on the machine meanwhile."""
    for run in runners.values():
        run(prompts, n, min_new, temperature)
    best, work = dict.fromkeys(runners, float("inf")), {}
    busy0, own0, t0 = busy_cpu_seconds(), time.process_time(), time.perf_counter()
    for _ in range(repeats):
        for name, run in runners.items():
            t = time.perf_counter()
            work[name] = run(prompts, n, min_new, temperature)
            best[name] = min(best[name], time.perf_counter() - t)
    wall = time.perf_counter() - t0
    other = max(0.0, busy_cpu_seconds() - busy0 - (time.process_time() - own0)) / wall
    rows = {
        k: {**work[k], "seconds": best[k], "tokens_per_s": work[k]["new_tokens"] / best[k]} for k in runners
    }
    return {"rows": rows, "other_load": other}


def main() -> None:
    ap = bench_parser(__doc__, "fewer repeats (smoke test)", recipe=False)
    ap.add_argument("--repeats", type=int, default=None, help="timed calls per row (best is kept)")
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    ap.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=list(PRECISIONS))
    args = ap.parse_args()
    repeats = args.repeats or (2 if args.quick else 9)

    from transformers import AutoModelForCausalLM, AutoTokenizer

    info, rates = start(args)

    directory, vocab = checkpoint("10m")
    tok = AutoTokenizer.from_pretrained(str(directory))
    base = AutoModelForCausalLM.from_pretrained(str(directory)).eval()
    n_flop = flop_params(directory, lm_head=True)
    rng = random.Random(0)
    prompts = [tok(sentence(vocab, PROMPT_TOKENS, rng))["input_ids"] for _ in range(16)]
    assert all(len(p) == PROMPT_TOKENS for p in prompts)

    rows = []
    for case in args.cases:
        n_prompts, n, min_new, temperature = CASES[case]
        fp32 = eos_likely(base, tok.eos_token_id) if case == "early-stop" else base
        for precision in args.precisions:
            dtype = PRECISIONS[precision]
            hf_model = fp32 if dtype == torch.float32 else copy.deepcopy(fp32).to(dtype)
            runners = {"hf-generate": HFRunner(hf_model, tok), "kv-engine": EngineRunner(fp32, tok, dtype)}
            pair = measure_quietly(
                args.wait_quiet, measure, runners, prompts[:n_prompts], n, min_new, temperature, repeats
            )
            hf = pair["rows"]["hf-generate"]
            for engine, row in pair["rows"].items():
                row.update(case=case, precision=precision, engine=engine, prompts=n_prompts, n=n)
                row["flops_per_s"] = 2 * n_flop * row["forwarded"] / row["seconds"]
                row["of_matmul"] = row["flops_per_s"] / peak(rates, precision)
                row["vs_hf"] = row["tokens_per_s"] / hf["tokens_per_s"]
                row["other_load"], row["attempts"] = pair["other_load"], pair["attempts"]
                run = runners[engine]
                if isinstance(run, EngineRunner):
                    row["decoder"] = run.engine.decoder.name
                    row["sync_ms"] = run.sync_ms(fp32)
                rows.append(row)
                busy = (
                    f"; BUSY MACHINE: others used {row['other_load']:.1f} cores"
                    if row["other_load"] > BUSY
                    else ""
                )
                print(
                    f"  {case} {precision} {engine}: {row['tokens_per_s']:.0f} tokens/s "
                    f"({row['vs_hf']:.2f}x HF), {row['flops_per_s'] / 1e9:.1f} GFLOP/s{busy}"
                )

    shown = [{**r, "GFLOP/s": r["flops_per_s"] / 1e9, "of matmul": f"{r['of_matmul']:.1%}"} for r in rows]
    print()
    print(
        table(
            shown,
            ["case", "precision", "engine", "new_tokens", "seconds", "tokens_per_s", "vs_hf"]
            + ["GFLOP/s", "of matmul", "sync_ms", "other_load"],
        )
    )
    path = write_results(
        "generate_quick" if args.quick else "generate",
        {
            "benchmark": "generate",
            "machine": info,
            "matmul_flops_per_s": rates,
            "setup": {
                "model": "tiny GPT-2 10m (bench/common.py checkpoint)",
                "prompt_tokens": PROMPT_TOKENS,
                "max_new_tokens": NEW_TOKENS,
                "cases": {
                    k: dict(zip(("prompts", "n", "min_new_tokens", "temperature"), v))
                    for k, v in CASES.items()
                },
                "sampling": "no top-k / top-p; temperature 0 is greedy",
                "repeats": repeats,
                "timing": "best of the repeats; HF and the engine alternate call by call",
                "tokens_per_s": "generated tokens / seconds of the best call (prefill included)",
                "flops": "2 x flop_params x forwarded tokens (prefill prompt tokens + decoded rows)",
                "other_load": "mean cores used by other processes during the row's calls",
                "sync_ms": "KVCacheEngine.sync_weights: the policy's weights into the engine's copy",
            },
            "rows": rows,
        },
    )
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
