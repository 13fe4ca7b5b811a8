"""The rollout engine's weight sync after an optimizer step, for a LoRA policy on the real model.

SmolLM2-135M-Instruct in bf16 weights under LoRA (rank 16 on every linear layer, its B matrices
drawn at random so that every merge does work), with the rollout engine's bf16 decoder
(rlhf/rollout/decoders): the CPU seconds of ``engine.sync_weights`` (each adapter merged into the
decoder's weight copy as one float32 addmm, only what changed re-packed) against, in the same run,
the way it was done before: peft's delta (rounded to the weights' dtype) added in float32 and
every weight re-packed, the frozen LM head, embeddings and norms included. Median of --repeats.

    .venv/bin/python bench/bench_sync.py [--repeats 7]
"""

from __future__ import annotations

import statistics
import time

import torch
from common import bench_parser, machine_info, set_threads, write_results

from rlhf.rollout.decoders.lora import lora_base


def previous_sync(engine, model) -> None:
    """The sync as it was: peft's delta per adapter, every decoder weight re-loaded."""

    def old_linear_weights(linear):
        base = getattr(linear, "base_layer", None)
        if base is None:
            return linear.weight, linear.bias
        weight = base.weight
        if not linear.disable_adapters and not linear.merged:
            for name in linear.active_adapters:
                if name in linear.lora_A:
                    weight = weight.float() + linear.get_delta_weight(name).float()
        return weight, base.bias

    from rlhf.rollout.decoders import llama

    saved = llama.linear_weights
    llama.linear_weights = old_linear_weights
    try:
        linears, tensors = llama.sources(model)
        linears = list(linears)  # every weight computed now, the old way, all at once
    finally:
        llama.linear_weights = saved
    weights = engine.decoder.weights
    with torch.no_grad():
        for k, (w, b) in linears:
            weights.lin[k].load(w, b)
        for k, v in tensors.items():
            weights.t[k].copy_(v)


def cpu_seconds(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t = time.process_time()
        fn()
        out.append(time.process_time() - t)
    return out


def main() -> None:
    ap = bench_parser(__doc__, recipe=False)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    threads = set_threads(args.threads)
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlhf.models.smollm import checkpoint_dir
    from rlhf.rollout.engine import KVCacheEngine

    path = str(checkpoint_dir())
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16).eval()
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear"))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.01)
    assert lora_base(model) is not None
    engine = KVCacheEngine(model, tokenizer, dtype=torch.bfloat16)
    assert engine.decoder.name == "llama"
    repeats = 2 if args.quick else args.repeats
    now, before = [], []
    for _ in range(repeats):  # alternately, so that a neighbour's load falls on both
        now += cpu_seconds(lambda: engine.sync_weights(model), 1)
        before += cpu_seconds(lambda: previous_sync(engine, model), 1)
    row = {
        "sync_cpu_s": statistics.median(now),
        "previous_cpu_s": statistics.median(before),
        "sync_times": now,
        "previous_times": before,
    }
    row["ratio"] = row["previous_cpu_s"] / row["sync_cpu_s"]
    print(f"{threads} threads: sync {row['sync_cpu_s']:.3f} CPU s, previous {row['previous_cpu_s']:.3f} "
          f"({row['ratio']:.2f}x)")  # fmt: skip
    path = write_results(
        "sync_quick" if args.quick else "sync",
        {"benchmark": "sync", "machine": machine_info(), "model": "SmolLM2-135M-Instruct bf16, LoRA r=16 "
         "all-linear, bf16 decoder", "rows": [row]},
    )  # fmt: skip
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
