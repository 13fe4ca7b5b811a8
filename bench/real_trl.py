"""The peer's side of one real-model benchmark row: TRL (bench_real.py runs it with the python of
.venv-trl116 for DPO and GRPO, .venv-trl112 for PPO, the last TRL release with PPOTrainer).

TRL is set up as a user who wants speed would: weights loaded in bf16 and ``bf16=True``, gradient
checkpointing off (its trainers turn it on by default), the same attention kernel as ours, no
evaluation, saving or sample generations during training, logging every step (as ours does).
DPO: reference log-probs precomputed before training (``precompute_ref_log_probs``, as ours).
GRPO: ``beta=0`` (TRL's default: no reference model), one iteration a generation, fixed-length
completions (``min_new_tokens``). PPO: one PPO epoch of one minibatch, no stop token so every
response has ``response_length`` tokens, a separate value model started from the reward model.
Each optimizer step is timed through a TrainerCallback's ``on_step_end``.

A row may name other precisions (``dtype`` of the weights, ``bf16`` autocast; default bf16 weights
with ``bf16=True``), GRPO's ``beta`` and the algos ``sft`` (SFTTrainer on prompt/completion records)
and ``reward`` (RewardTrainer on prompt/chosen/rejected pairs, starting from ``reward_model``): the
toy-model benchmarks (bench/toy_peer.py) run their peer rows through this worker.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from common import StepTimer, set_threads  # noqa: E402
from real_setup import LORA, LR, PROMPT_TOKENS, RESPONSE_TOKENS, read_row, report  # noqa: E402


def peft_config(row: dict):
    if row["mode"] != "lora":
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=LORA["r"],
        lora_alpha=LORA["alpha"],
        lora_dropout=LORA["dropout"],
        target_modules=LORA["targets"],
        task_type="CAUSAL_LM",
    )


def common_args(row: dict, steps: int) -> dict:
    return {
        "output_dir": str(Path(row["work"]) / ("peer-" + row["name"])),
        "max_steps": steps,
        "learning_rate": LR,
        "bf16": row.get("bf16", True),
        "gradient_checkpointing": False,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        "seed": 0,
        "dataloader_num_workers": 0,
        "use_cpu": True,
    }


def load(cls, path: str, row: dict, **kw):
    dtype = getattr(torch, row.get("dtype", "bfloat16"))
    return cls.from_pretrained(path, dtype=dtype, attn_implementation=row["attn"], **kw)


def timer_callback(timer: StepTimer):
    from transformers import TrainerCallback

    class Timed(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            timer(state.global_step)

    return Timed()


def dpo(row: dict, steps: int, timer: StepTimer) -> dict:
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    tok = AutoTokenizer.from_pretrained(row["model"])
    args = DPOConfig(
        **common_args(row, steps),
        per_device_train_batch_size=row["prompts"],
        precompute_ref_log_probs=True,
        max_length=PROMPT_TOKENS + RESPONSE_TOKENS,
    )
    trainer = DPOTrainer(
        model=load(AutoModelForCausalLM, row["model"], row),
        args=args,
        train_dataset=load_dataset("json", data_files=row["data"]["pairs"], split="train"),
        processing_class=tok,
        peft_config=peft_config(row),
        callbacks=[timer_callback(timer)],
    )
    trainer.train()
    return {"precompute_ref_log_probs": True, "loss_type": list(args.loss_type)}


def grpo(row: dict, steps: int, timer: StepTimer) -> dict:
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    tok = AutoTokenizer.from_pretrained(row["model"])
    args = GRPOConfig(
        **common_args(row, steps),
        per_device_train_batch_size=row["prompts"] * row["samples"],
        num_generations=row["samples"],
        max_completion_length=RESPONSE_TOKENS,
        generation_kwargs={"min_new_tokens": RESPONSE_TOKENS},
        temperature=1.0,
        beta=row.get("beta", 0.0),
        num_iterations=1,
    )
    reward = load(AutoModelForSequenceClassification, row["reward_model"], row, num_labels=1)
    trainer = GRPOTrainer(
        model=load(AutoModelForCausalLM, row["model"], row),
        reward_funcs=reward,
        args=args,
        train_dataset=load_dataset("json", data_files=row["data"]["prompts"], split="train"),
        processing_class=tok,
        reward_processing_classes=AutoTokenizer.from_pretrained(row["reward_model"]),
        peft_config=peft_config(row),
        callbacks=[timer_callback(timer)],
    )
    trainer.train()
    return {"beta": args.beta, "loss_type": args.loss_type, "generation": "transformers generate"}


def sft(row: dict, steps: int, timer: StepTimer) -> dict:
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    args = SFTConfig(
        **common_args(row, steps),
        per_device_train_batch_size=row["prompts"],
        max_length=PROMPT_TOKENS + RESPONSE_TOKENS,
        packing=False,
    )
    trainer = SFTTrainer(
        model=load(AutoModelForCausalLM, row["model"], row),
        args=args,
        train_dataset=load_dataset("json", data_files=row["data"]["demos"], split="train"),
        processing_class=AutoTokenizer.from_pretrained(row["model"]),
        peft_config=peft_config(row),
        callbacks=[timer_callback(timer)],
    )
    trainer.train()
    return {"packing": False, "completion_only_loss": args.completion_only_loss}


def reward(row: dict, steps: int, timer: StepTimer) -> dict:
    from datasets import load_dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    args = RewardConfig(
        **common_args(row, steps),
        per_device_train_batch_size=row["prompts"],
        max_length=PROMPT_TOKENS + RESPONSE_TOKENS,
    )
    trainer = RewardTrainer(
        model=load(AutoModelForSequenceClassification, row["reward_model"], row, num_labels=1),
        args=args,
        train_dataset=load_dataset("json", data_files=row["data"]["pairs"], split="train"),
        processing_class=AutoTokenizer.from_pretrained(row["reward_model"]),
        callbacks=[timer_callback(timer)],
    )
    trainer.train()
    return {"center_rewards_coefficient": args.center_rewards_coefficient}


def ppo(row: dict, steps: int, timer: StepTimer) -> dict:
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer
    from trl.experimental.ppo import PPOConfig, PPOTrainer

    tok = AutoTokenizer.from_pretrained(row["model"])
    data = load_dataset("json", data_files=row["data"]["prompts"], split="train")
    data = data.map(lambda r: {"input_ids": tok(r["prompt"])["input_ids"]}, remove_columns=["prompt"])
    args = PPOConfig(
        **common_args(row, steps),
        per_device_train_batch_size=row["prompts"],
        gradient_accumulation_steps=1,
        num_mini_batches=1,
        num_ppo_epochs=1,
        local_rollout_forward_batch_size=row["prompts"],
        total_episodes=row["prompts"] * steps,
        response_length=RESPONSE_TOKENS,
        stop_token=None,
        temperature=1.0,
        kl_coef=0.05,
        num_sample_generations=0,
    )
    lora = peft_config(row)
    trainer = PPOTrainer(
        args=args,
        processing_class=tok,
        model=load(AutoModelForCausalLM, row["model"], row),
        ref_model=None if lora else load(AutoModelForCausalLM, row["model"], row),
        reward_model=load(AutoModelForSequenceClassification, row["reward_model"], row, num_labels=1),
        value_model=load(AutoModelForSequenceClassification, row["reward_model"], row, num_labels=1),
        train_dataset=data,
        peft_config=lora,
        callbacks=[timer_callback(timer)],
    )
    trainer.train()
    return {"num_ppo_epochs": 1, "num_mini_batches": 1, "stop_token": None, "value_model": "reward model"}


def main() -> None:
    import trl

    row = read_row()
    set_threads(row["threads"])
    steps = row["warmup"] + row["steps"]
    timer = StepTimer(row["warmup"])
    run = {"dpo": dpo, "grpo": grpo, "ppo": ppo, "sft": sft, "reward": reward}[row["algo"]]
    if row.get("verbose"):
        extra = run(row, steps, timer)
    else:
        import contextlib
        import io

        buf = io.StringIO()
        try:
            with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
                extra = run(row, steps, timer)
        except BaseException:
            sys.stderr.write(buf.getvalue())
            raise
    settings = {
        "trl": trl.__version__,
        "weights": row.get("dtype", "bfloat16"),
        "bf16": row.get("bf16", True),
        "gradient_checkpointing": False,
        "attn_implementation": row["attn"],
        **extra,
    }
    report(timer, row, settings)


if __name__ == "__main__":
    main()
