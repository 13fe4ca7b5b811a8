"""The project's side of one real-model benchmark row (bench_real.py runs it in a subprocess).

The recipes run as a user runs them (`rlhf dpo` / `rlhf ppo` with algo.name=grpo|ppo), through
their ``callbacks`` hook so that each optimizer step is timed whole: for DPO the chosen+rejected
forward, loss, backward and optimizer step (reference log-probs precomputed before step 1, as
the peer is set up too); for GRPO and PPO generation, scoring, the reference/critic forwards,
advantages, the update and the rollout engine's weight sync.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import run_timed, set_threads  # noqa: E402
from real_setup import LORA, LR, RESPONSE_TOKENS, read_row, report  # noqa: E402


def model_overrides(row: dict) -> list[str]:
    out = [f"model.path={row['model']}", "model.dtype=bfloat16", f"model.attn_implementation={row['attn']}"]
    if row["mode"] == "lora":
        out += [
            f"model.lora_r={LORA['r']}",
            f"model.lora_alpha={LORA['alpha']}",
            f"model.lora_dropout={LORA['dropout']}",
            f"model.lora_target_modules=[{LORA['targets']}]",
        ]
    return out


def common_overrides(row: dict, steps: int) -> list[str]:
    return [
        f"train.output_dir={Path(row['work']) / ('ours-' + row['name'])}",
        f"train.max_steps={steps}",
        f"train.batch_size={row['prompts']}",
        f"train.lr={LR}",
        "train.mixed_precision=no",  # the weights are bf16 already: nothing to autocast
        "train.resume=false",
        "train.save_every=0",
        "train.log_every=1",
    ]


def dpo_config(row: dict, steps: int):
    from rlhf.config import load_config
    from rlhf.recipes.dpo import Config

    return load_config(
        Config,
        None,
        [
            *model_overrides(row),
            *common_overrides(row, steps),
            f"data.train={row['data']['pairs']}",
            "dpo.reference=precompute",
        ],
    )


def rl_config(row: dict, steps: int):
    from rlhf.config import load_config
    from rlhf.recipes.ppo import Config

    algo = row["algo"]
    rl = [
        f"data.train={row['data']['prompts']}",
        f"rewards.model={row['reward_model']}",
        "rewards.normalize=false",
        f"algo.name={algo}",
        "algo.epochs=1",
        "algo.minibatches=1",
        f"rollout.samples_per_prompt={row['samples']}",
        f"rollout.max_new_tokens={RESPONSE_TOKENS}",
        f"rollout.min_new_tokens={RESPONSE_TOKENS}",
        "rollout.engine=kv_cache",
        "rollout.dtype=bfloat16",
        "rollout.samples_every=0",
    ]
    if algo == "grpo":  # the peer's default beta = 0: no reference policy, no KL term
        rl += ["algo.reference=false", "algo.kl_coef=0"]
    else:  # the peer's PPO: KL to a reference; the value model starts from the reward model
        rl += ["algo.kl_coef=0.05", "critic.init=reward", f"critic.lr={LR}"]
    return load_config(Config, None, [*model_overrides(row), *common_overrides(row, steps), *rl])


def main() -> None:
    row = read_row()
    set_threads(row["threads"])
    steps = row["warmup"] + row["steps"]
    if row["algo"] == "dpo":
        from rlhf.recipes.dpo import train

        cfg = dpo_config(row, steps)
    else:
        from rlhf.recipes.ppo import train

        cfg = rl_config(row, steps)
    timer = run_timed(train, cfg, row["warmup"], row.get("verbose", False))
    settings = {
        "model.dtype": "bfloat16",
        "train.mixed_precision": "no",
        "model.attn_implementation": row["attn"],
    }
    if row["algo"] == "dpo":
        settings.update({"dpo.reference": "precompute", "dpo.share_prompt": cfg.dpo.share_prompt})
    else:
        settings.update({"rollout.engine": "kv_cache", "rollout.dtype": "bfloat16",
                         "rollout.share_prompt": cfg.rollout.share_prompt})  # fmt: skip
    report(timer, row, settings)


if __name__ == "__main__":
    main()
