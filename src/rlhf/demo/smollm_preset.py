"""Sizes of `rlhf demo --preset smollm`: the harmless-and-still-helpful task on SmolLM2-135M-Instruct."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SmolPreset:
    base: str = ""
    """base model directory; empty: the packaged SmolLM2-135M-Instruct (converted once, cached)"""
    n_sft: int = 576
    """training prompts with a demonstration (harmful: a refusal; benign: the base model's answer)"""
    n_rating: int = 888
    """training prompts whose K samples the simulated raters rank (no RL stage trains on them): with
    the RL prompts', 1,008 rankings, and all but 4 training prompts used. On the dev split
    (docs/demo-smollm.md), on one SFT model, the reward model orders the plain refusal and the base
    model's answer right on 0.00 / 0.98 of the harmful requests (the 36 whose base answer does not
    decline) / look-alikes (the 66 whose base answer answers) with 216 rankings (96 rating
    prompts: it puts the answer first whatever was asked), 0.64 to 0.83 / 0.86 to 0.98 with 600
    (two sets of rankings), and 0.81 / 0.98 with 1,008. Ranking 1,008 and training on them cost
    some 700 s more than 216"""
    n_rl: int = 120
    """training prompts of the RL stage"""
    heldout_per_family: int = 3
    """held-out prompts per family evaluated (at most the family's held-out split)"""
    n_replay: int = 146
    """general questions (``realtask.replay``) whose base-model answers join the demonstrations, so
    that SFT keeps the base model's general knowledge (0: none)"""
    replay_repeats: int = 1
    """times each replayed general answer appears among the demonstrations (at sft_lr 6e-4, 3
    kept fewer dev general answers than 1: 8 of 12 against 10)"""
    demo_tokens: int = 48
    """tokens of the base model's answers to the SFT prompts before trimming to whole sentences"""
    demo_words: int = 45
    """longest demonstration answer in words"""
    demo_samples: int = 4
    """sampled base-model answers to each benign SFT prompt whose greedy answer does not answer it
    (off topic, looping, a refusal): the first that does is taught (0: greedy answers only). With
    greedy answers only, 99 of the 367 look-alikes go untaught, most in the families SFT then
    refuses ("kill", "hack", "broken into", games); at 4, 4 do. On the dev split, with SFT at
    4.5e-4: declines 0.96 / answers 0.79 / general kept 0.92 and a dev text NLL of 4.57, against
    0.98 / 0.75 / 1.00 and 4.78 with greedy answers only (docs/demo-smollm.md)"""
    demo_temperature: float = 0.7
    """sampling temperature of those answers"""
    lora_r: int = 16
    """LoRA rank of every trained stage (0: full fine-tuning)"""
    lora_alpha: int = 32
    lora_targets: str = "all-linear"
    """model.lora_target_modules of every trained stage, comma-separated module names (attention
    only, q_proj,k_proj,v_proj,o_proj, at sft_lr 6e-4: dev 0.83 / 0.70, against 1.00 / 0.79)"""
    mixed_precision: str = "bf16"
    """train.mixed_precision of every stage (weights stay float32; bf16 matmuls)"""
    max_length: int = 128
    """tokens per training row (chat prompt with its system turn + response)"""
    batch_size: int = 8
    sft_steps: int = 192
    """about 2.4 epochs of the demonstrations (some 650: the refusals, the benign answers that pass
    the gold rule and the replayed general answers); one epoch underfits (docs/demo-smollm.md)"""
    sft_lr: float = 4.5e-4
    """on the dev split (docs/demo-smollm.md), SFT tells harmful requests from look-alikes better
    the harder it trains: 0.71 / 0.56 (declines harmful / answers benign) at 1e-4, 0.85 / 0.73 at
    3e-4, 0.98 / 0.75 at 4.5e-4, 1.00 / 0.79 at 6e-4; what it forgets grows with it (dev text NLL
    4.20, 4.60, 4.78, 4.90 against the base model's 3.80), and at 6e-4 it loses 2 of the 12 dev
    general answers, at 4.5e-4 none"""
    sft_schedule: str = "constant"
    """train.schedule of SFT: constant after warmup (a cosine decay over the same steps refused more
    look-alikes and kept fewer general answers)"""
    sft_warmup: int = 6
    sft_kl_coef: float = 0.3
    """sft.kl_coef: weight of KL(base || SFT) on every demonstration token, against forgetting. On
    the dev split (docs/demo-smollm.md), at seed 0 / seed 1: declines harmful 0.93 / 0.96, answers
    benign 0.79 / 0.73, dev general kept 11 / 11 of 12, dev text NLL 4.11 / 4.12 (base 3.80),
    against 0.96 / 0.94, 0.79 / 0.75, 11 / 9 and 4.57 / 4.66 without it (0: off); at 1, 0.84 /
    0.79 / 12 of 12 / 3.89 at seed 0: the pull starts to hold SFT back from declining"""
    sft_refusal_kl_weight: float = 1.0
    """each refusal demonstration's ``kl_weight``: how much sft_kl_coef holds it to the base model,
    which would not have refused (1: as every other demonstration; 0: the refusals are learnt from
    their NLL alone, and the pull holds only the answers the base model gave itself). On the dev
    split at sft_kl_coef 1 (docs/demo-smollm.md), weights 0.5, 0.3 and 0 trade look-alikes answered
    for harmful requests declined, and each gets fewer of the two right together than the preset"""
    k: int = 4
    """samples per rating prompt from SFT"""
    base_samples: int = 1
    """samples per rating prompt from the base model, ranked beside SFT's K: SFT's samples of one
    prompt mostly make the same choice (decline, or answer), so without them most comparisons are
    between two refusals or two answers, ordered by rater noise alone (0: SFT's only)"""
    refusal_candidate: bool = True
    """SFT's plain refusal (``realtask.demonstrations.REFUSAL``) ranked beside the samples of every
    rating prompt, so every ranking compares declining with answering: the raters rank it first on
    a harmful request and last on a look-alike. Without it a refusal is ranked mostly where SFT
    samples one, on harmful requests, and the reward model can learn that a refusal scores high
    whatever was asked. On the dev split (docs/demo-smollm.md) PPO declines 0.88 and answers 0.74
    with it, 0.94 and 0.57 without it, and 0.85 and 0.71 when the refusal joins only as many
    look-alikes as harmful requests; DPO, which follows the rankings' balance, answers more and
    declines fewer (0.52) with it"""
    raters_per_prompt: int = 1
    """one ranking per prompt: a second rater of the same K samples costs the reward model a pass
    over the same responses again; more prompts (rate_rl_prompts) buy more distinct responses"""
    rate_rl_prompts: bool = True
    """rank K samples of the RL prompts too (the reward model then sees the prompts PPO trains
    on, as InstructGPT's did; the rating set stays the prompts no RL stage trains on)"""
    rate_sft_prompts: bool = False
    """rank K samples of the SFT prompts too: 1,584 rankings, every training prompt but 4. On the
    dev split (docs/demo-smollm.md) the reward model then orders the plain refusal and the base
    model's answer right on every dev prompt where they differ (36 harmful requests and 66
    look-alikes; 29 and 65 on the preset's 1,008), yet PPO and RLOO against it answer fewer dev
    look-alikes than SFT (0.67 to 0.74 against 0.79) while PPO gets its own RL prompts more
    right: a drift toward refusing, not the reward model's decisions, bounds the RL rows. It
    costs the ranking some 90 s and the reward model some 390 s"""
    reward_epochs: float = 2.0
    reward_lr: float = 1e-3
    """at 3e-4, or for 1 epoch, the reward model stays near chance on unseen rankings
    (docs/demo-smollm.md, "Measured since")"""
    reward_schedule: str = "constant"
    """train.schedule of the reward model (after reward_warmup steps)"""
    reward_warmup: int = 3
    max_new_tokens: int = 32
    """longest response in RL and evaluation"""
    ppo_steps: int = 12
    ppo_batch: int = 8
    """prompts per RL iteration"""
    rl_on_rating_prompts: bool = False
    """the RL stage trains on the rating prompts too (1,008 instead of 120; the reward model has
    seen them all): its steps then draw on many more of the training wordings. On the dev split
    (docs/demo-smollm.md) PPO drifts toward refusing look-alikes as far as on the 120"""
    ppo_samples: int = 4
    """samples per prompt: 32 rollouts a step (a PPO step costs some 25 CPU s; most of its time is
    sampling and scoring)"""
    ppo_lr: float = 5e-5
    """on the dev split, 1e-4 (12 steps, or 36: KL to SFT 1.09) moved further from SFT for no gain
    beyond an evaluation's noise, against the 216-ranking reward model and the 600-ranking one"""
    ppo_critic_lr: float = 1e-3
    """the shared critic's value head starts from nothing: a fast rate lets it catch up in a few steps"""
    ppo_kl_coef: float = 0.05
    """per-token KL penalty to the SFT model (the RL stage's start)"""
    ppo_lam: float = 1.0
    """GAE lambda: 1 (the Monte-Carlo return minus the value) leans least on a value head that is
    only a few steps old"""
    ppo_critic: str = "shared"
    """critic.init: shared (a value head on the policy: one model less to run on 2 cores) or reward"""
    ppo_ptx_coef: float = 0.0
    """PPO-ptx (InstructGPT's gamma): weight of the NLL of the replayed general answers (the base
    model's own, from the demonstrations) in every policy step, against forgetting (0: off)"""
    dpo_steps: int = 74
    """optimizer steps of DPO, batch_size pairs each, whatever the number of rankings (592 of the
    pairs that the rankings of 4 SFT samples, a base sample and the refusal give)"""
    dpo_lr: float = 1e-4
    dpo_beta: float = 0.1
    dpo_reference: str = "adapters_off"
    """dpo.reference: adapters_off (SFT is the policy with its LoRA adapters off: no pass over the
    whole data before training) or precompute"""
    best_of: int = 4
    """n of the best-of-n row (samples from SFT, the reward model's pick)"""
    kl_samples: int = 1
    """sampled responses per held-out prompt for the KL estimates"""
    general_tokens: int = 16
    """tokens of each answer to a general question"""

    @property
    def stage_sizes(self) -> dict[str, int]:
        """The disjoint training prompt sets' sizes, in the order ``prompts.stage_sets`` cuts them."""
        return {"sft": self.n_sft, "rating": self.n_rating, "rl": self.n_rl}


SMOL_PRESETS = {
    "smollm": SmolPreset(),
}
