"""Sizes of the demo: `default` (about 17 minutes on 2 CPU cores, 12 with the base model cached) and
`fast` (about 1)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Preset:
    world: dict[str, int] = field(default_factory=dict)
    """sizes passed to World.build (splits, knowledge base)"""
    vocab_size: int = 1024
    """BPE vocabulary trained on the world's text"""
    model_size: str = "1m"
    """rlhf.models.tiny size of the base model"""
    mixed_precision: str = "no"
    """train.mixed_precision of every training stage (bf16 is faster where the CPU supports it)"""
    attn_implementation: str = "eager"
    """model.attn_implementation of every stage; eager beats sdpa for these small heads (bench/)"""
    max_length: int = 96
    """tokens per training row"""
    pretrain_steps: int = 600
    """optimizer steps of base-model pretraining (packed rows)"""
    pretrain_lr: float = 3e-3
    sft_steps: int = 150
    sft_lr: float = 1e-3
    k: int = 4
    """responses per rating prompt"""
    raters_per_prompt: int = 5
    """distinct simulated raters ranking each prompt's K responses (labeling overlap)"""
    reward_epochs: float = 1.0
    """passes over the rankings; more overfits (InstructGPT trains one)"""
    reward_lr: float = 3e-4
    batch_size: int = 16
    max_new_tokens: int = 24
    """longest generated response"""
    kl_samples: int = 2
    """sampled responses per eval prompt for the KL-to-SFT estimate"""
    ppo_algo: str = "ppo"
    """algo.name of the RL stage: an algorithm of recipes/algorithms/ (ppo, grpo, rloo, online_dpo)"""
    ppo_steps: int = 80
    """RL iterations against the reward model"""
    ppo_batch: int = 8
    """prompts per RL iteration"""
    ppo_samples: int = 4
    """responses per prompt in an RL iteration"""
    ppo_lr: float = 1e-4
    ppo_critic_lr: float = 1e-4
    ppo_critic: str = "reward"
    """critic.init of the PPO stage: reward (a copy of the reward model) or shared (a value head on
    the policy)"""
    ppo_kl_coef: float = 0.15
    """per-token KL penalty to the SFT model"""
    dpo_epochs: float = 0.33
    """DPO passes over the simulated rankings (expanded to pairs)"""
    dpo_lr: float = 1e-4
    dpo_beta: float = 0.5
    """at 0.1 (or a whole epoch) DPO drifts far from SFT (KL 3-5) and declines benign look-alikes"""
    best_of: int = 16
    """n of the best-of-n row (sampled from SFT, picked by the reward model, at inference)"""
    rs_n: int = 8
    """samples per RL prompt for rejection-sampling SFT"""
    rs_steps: int = 60
    """SFT steps on the reward model's best samples (rejection-sampling fine-tuning)"""
    rlaif: bool = True
    """add the RLAIF row: the SFT model judges the candidates, a reward model on its labels, the same RL"""
    ppo_epochs: int = 2
    ppo_minibatches: int = 2
    ptx_coef: float = 0.05
    """the ppo-ptx row: the PPO stage again, plus this weight on the NLL of pretraining web text in
    every policy step (InstructGPT's PPO-ptx gamma; 0: no row)"""
    ptx_batch: int = 8
    """web-text documents in each policy step's NLL term"""
    web_eval_docs: int = 200
    """held-out web-text documents whose NLL measures forgetting (the table's web NLL, the RL runs'
    eval_nll)"""
    hacking: bool = True
    """add the reward-hacking row: raters who favour long, confident answers rank the same candidates,
    a reward model learns their taste, and PPO with a weak KL penalty optimises it (demo/hacking.py)"""
    hacking_bias: float = 1.0
    """those raters' length_bias and confidence_bias (toyworld/raters.py)"""
    hacking_kl_coef: float = 0.05
    """the weak per-token KL penalty of that PPO run"""
    hacking_steps: int = 120
    """its RL iterations"""
    gold_rows: bool = True
    """add the rows whose learners see gold itself: PPO rewarded by the gold scorer, DPO on the
    candidates ranked by it (the most a perfect reward model or perfect raters would give them)"""


PRESETS = {
    # ~3M-parameter base model in bf16 autocast: about 17 minutes on 2 CPU cores
    "default": Preset(
        world={"n_rating": 1800},
        model_size="3m",
        mixed_precision="bf16",
        pretrain_steps=2000,
        sft_steps=150,
        raters_per_prompt=3,
    ),
    # ~1M-parameter base model: about a minute; what the tests run
    "fast": Preset(
        world={"n_sft": 200, "n_rating": 160, "n_rl": 100, "n_eval": 60},
        model_size="1m",
        pretrain_steps=250,
        sft_steps=80,
        raters_per_prompt=3,
        kl_samples=1,
        ppo_steps=20,
        rlaif=False,
        best_of=4,
        rs_n=4,
        rs_steps=20,
        hacking_steps=20,
        web_eval_docs=50,
    ),
}
