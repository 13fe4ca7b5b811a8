"""Config of `rlhf ppo` (the algorithms of recipes/algorithms), and the checks that run before any
model is loaded."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from rlhf.config import ConfigError
from rlhf.models.loading import check_model_path
from rlhf.recipes.algorithms import ALGORITHMS, get_algorithm
from rlhf.rollout.reward_fn import RewardFn
from rlhf.sections import DataConfig, ModelConfig, SamplingSection, TrainConfig

AlgoName = Literal[tuple(ALGORITHMS)]  # the registry's names: a new algorithm is a valid algo.name


@dataclass
class AlgoSection:
    name: AlgoName = "ppo"
    """ppo: critic + GAE (InstructGPT); grpo: group-normalised advantages, KL in the loss
    (DeepSeekMath); rloo: leave-one-out baseline (Ahmadian et al. 2024); online_dpo: the DPO loss on
    each prompt's best and worst fresh sample by the reward (Guo et al. 2024), beta = kl_coef"""
    epochs: int = 1
    """passes over each rollout batch"""
    minibatches: int = 1
    """optimizer steps per pass; the rollout batch (train.batch_size x samples_per_prompt) must divide"""
    micro_batch: int = 0
    """sequences per forward/backward inside a minibatch (0: the whole minibatch)"""
    clip: float = 0.2
    """policy-ratio clip range (Schulman et al. 2017, eq. 7)"""
    clip_high: float = 0.0
    """upper side of the ratio's clip range, 1 + clip_high (0: clip, the symmetric range); DAPO's
    clip-higher takes 0.28 with clip 0.2, against entropy collapse"""
    ratio_level: Literal["token", "sequence"] = "token"
    """grpo, rloo: the importance ratio clipped per token (PPO) or per response, the geometric mean of
    its tokens' ratios (GSPO, Zheng et al. 2025, which clips at about 3e-4 / 4e-4: algo.clip,
    algo.clip_high)"""
    loss_agg: Literal["token", "sequence", "constant"] = "token"
    """how the policy's per-token losses become one: token (mean over every response token of the
    update; DAPO), sequence (each response's mean, then the mean over responses; GRPO's paper,
    which favours long wrong answers), constant (token sum / (responses x rollout.max_new_tokens);
    Dr. GRPO)"""
    scale_rewards: Literal["group", "batch", "none"] = "group"
    """grpo only: what divides a score minus its group's mean: group (the group's std; DeepSeekMath),
    batch (the rollout batch's std; Lite PPO), none (Dr. GRPO)"""
    value_clip: float = 0.2
    """value-prediction clip range around the rollout's values (0: no clipping)"""
    gamma: float = 1.0
    """discount"""
    lam: float = 0.95
    """GAE lambda (Schulman et al. 2016)"""
    whiten_advantages: bool = True
    """normalise PPO advantages to mean 0, std 1 over the rollout batch"""
    kl_coef: float = 0.05
    """KL coefficient: per-token penalty in the reward (ppo, rloo), in the loss (grpo), or DPO's
    beta (online_dpo)"""
    kl_target: float = 0.0
    """> 0: adapt kl_coef toward this KL per sequence (Ziegler et al. 2019); 0: fixed"""
    kl_horizon: int = 10000
    """adaptive controller horizon, in rollouts"""
    reference: bool = True
    """run the reference policy, whose log-probs give the KL penalty and the `kl` metric. false
    (with kl_coef=0, kl_target=0) loads no reference and skips its forward each step, as recipes
    that drop the KL term do (DAPO, Dr. GRPO); then no `kl` is logged"""
    kl_estimator: Literal["k1", "k2", "k3", "abs"] = "k1"
    """estimator of the reward penalty (ppo, rloo); grpo's loss term always uses k3"""
    entropy_coef: float = 0.0
    """entropy bonus in the policy loss"""


@dataclass
class RolloutSection(SamplingSection):
    """The sampling keys of rlhf.sections.SamplingSection (temperature > 0: the training log-probs
    use the same temperature; top_p < 1 or top_k > 0 make the rollouts off-policy for the loss), and:"""

    max_new_tokens: int = 64
    samples_per_prompt: int = 1
    """responses per prompt; grpo and rloo need >= 2 (their baseline is the group)"""
    min_new_tokens: int = 0
    """EOS is masked until this many tokens were generated (benchmarks use it for fixed lengths)"""
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    """weights the engine samples with (auto: the policy's; bfloat16: a bf16 copy, synced each step)"""
    share_prompt: bool = True
    """with samples_per_prompt > 1, run each prompt once for all its responses in the forwards after
    generation (one row, 4D attention mask; needs eager or sdpa attention), when that costs less"""
    samples_every: int = 10
    """steps between files of sampled responses in samples/ (0: never)"""


@dataclass
class RewardsSection:
    model: str = ""
    """reward model directory (AutoModelForSequenceClassification, num_labels=1)"""
    format: Literal["pair", "chat"] = "pair"
    """how rewards.model (and rewards.heldout_model) read a prompt and response: pair, as `rlhf
    reward` trains (prompt, response, EOS); chat, the conversation through the reward model's chat
    template (reward models trained elsewhere on chat transcripts)"""
    function: str = ""
    """instead of a model: 'module:function' returning one float per completion"""
    normalize: bool = True
    """(score - reward_mean) / reward_std with the statistics `rlhf reward` stored in the model config"""
    clip: float = 0.0
    """clip scores to [-clip, clip] after normalising (0: off)"""
    missing_eos_penalty: float = 0.0
    """subtracted from the score of responses cut at max_new_tokens"""
    heldout_model: str = ""
    """a second reward model that only watches (trained on rankings the first never saw, say): its
    score of every step's samples is logged as score_heldout (normalised like score) and
    score_heldout_raw. score climbing while score_heldout stalls or falls is reward hacking"""


@dataclass
class CriticSection:
    init: Literal["reward", "policy", "shared"] = "reward"
    """ppo's value model: a copy of the reward model (InstructGPT), a copy of the policy with a new
    scalar head, or (shared) a value head on the policy's own transformer: no second model, one
    forward and backward for both"""
    lr: float = 1e-5
    """critic learning rate (with init=shared: the value head's; the transformer gets train.lr)"""
    vf_coef: float = 0.1
    """init=shared: weight of the value loss in the policy's loss"""


@dataclass
class PtxSection:
    data: str = ""
    """demonstrations or pretraining text (demonstration records) for PPO-ptx; empty: off"""
    coef: float = 0.0
    """gamma of InstructGPT eq. 2: weight of the NLL on data in every policy step"""
    batch_size: int = 8
    """records per policy step (and per forward of the ptx.eval evaluation)"""
    eval: str = ""
    """held-out demonstration records or pretraining text whose NLL under the policy is logged as
    eval_nll / eval_ppl at every evaluation (step 0, every train.eval_every steps, the end): the
    forgetting watch. Works with coef=0"""


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=lambda: DataConfig(max_length=1024))
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(output_dir="runs/ppo", lr=1e-6, batch_size=16, log_every=1)
    )
    algo: AlgoSection = field(default_factory=AlgoSection)
    rollout: RolloutSection = field(default_factory=RolloutSection)
    rewards: RewardsSection = field(default_factory=RewardsSection)
    critic: CriticSection = field(default_factory=CriticSection)
    ptx: PtxSection = field(default_factory=PtxSection)


def check(cfg: Config, reward_fn: RewardFn | None = None) -> RewardFn | None:
    """Reject a config that cannot run, before any work; returns the reward callable if one is set
    (``reward_fn``, a callable given to ``ppo.train`` from Python, or rewards.function imported)."""
    from rlhf.recipes.loop import exact_div
    from rlhf.rollout.reward_fn import load_reward_fn

    check_model_path(cfg.model.path)
    if not cfg.data.train:
        raise ConfigError("data.train: a file of prompt records is required")
    if reward_fn is not None and (cfg.rewards.model or cfg.rewards.function):
        raise ConfigError(
            "a reward function was passed to ppo.train: leave rewards.model and rewards.function unset"
        )
    if reward_fn is None and bool(cfg.rewards.model) == bool(cfg.rewards.function):
        raise ConfigError(
            "set exactly one of rewards.model (a reward model directory) and rewards.function "
            "('module:function')"
        )
    fn = reward_fn
    if cfg.rewards.heldout_model:
        check_model_path(cfg.rewards.heldout_model, "rewards.heldout_model")
    if cfg.rewards.model:
        check_model_path(cfg.rewards.model, "rewards.model")
    elif fn is None:
        fn = load_reward_fn(cfg.rewards.function)
    if cfg.rewards.format != "pair" and not (cfg.rewards.model or cfg.rewards.heldout_model):
        raise ConfigError(
            f"rewards.format={cfg.rewards.format} is how a reward model reads; rewards.function reads text "
            "as it is"
        )
    a, r = cfg.algo, cfg.rollout
    algorithm = get_algorithm(a.name)
    algorithm.check(cfg)
    if algorithm.group_baseline and r.samples_per_prompt < 2:
        raise ConfigError(
            f"algo.name={a.name} needs rollout.samples_per_prompt >= 2 (the group is its baseline)"
        )
    if algorithm.critic and cfg.critic.init == "reward" and not cfg.rewards.model:
        raise ConfigError(
            "critic.init=reward needs rewards.model; with a reward function use critic.init=policy"
        )
    if algorithm.critic and cfg.critic.init == "shared" and cfg.critic.vf_coef <= 0:
        raise ConfigError(f"critic.vf_coef must be > 0 with critic.init=shared (got {cfg.critic.vf_coef})")
    if cfg.train.grad_accum != 1:
        raise ConfigError("train.grad_accum must be 1 for ppo: use algo.minibatches and algo.micro_batch")
    if a.epochs < 1 or a.minibatches < 1:
        raise ConfigError("algo.epochs and algo.minibatches must be >= 1")
    rollouts = cfg.train.batch_size * r.samples_per_prompt
    mb = exact_div(
        rollouts,
        a.minibatches,
        "rollout batch (train.batch_size x rollout.samples_per_prompt) / algo.minibatches",
    )
    if a.micro_batch:
        exact_div(mb, a.micro_batch, "minibatch size / algo.micro_batch")
    if r.temperature <= 0:
        raise ConfigError("rollout.temperature must be > 0: RL needs sampled responses")
    if cfg.train.eval_every < 0:
        raise ConfigError(f"train.eval_every must be >= 0 (got {cfg.train.eval_every})")
    if cfg.train.eval_every and not (cfg.data.eval or cfg.ptx.eval):
        raise ConfigError(
            f"train.eval_every={cfg.train.eval_every} needs data.eval (held-out prompts) or ptx.eval "
            "(held-out text)"
        )
    if cfg.ptx.coef > 0 and not cfg.ptx.data:
        raise ConfigError("ptx.coef > 0 needs ptx.data")
    if a.clip <= 0 or a.clip_high < 0:
        raise ConfigError(f"algo.clip must be > 0 and algo.clip_high >= 0 (got {a.clip} and {a.clip_high})")
    if a.ratio_level == "sequence" and not algorithm.sequence_advantages:
        takers = " or ".join(name for name, x in ALGORITHMS.items() if x.sequence_advantages)
        raise ConfigError(
            f"algo.ratio_level=sequence is for algo.name={takers}, whose advantages belong to whole "
            f"responses; {a.name}'s do not"
        )
    if a.scale_rewards != "group" and algorithm.scale_rewards_note is not None:
        takers = " or ".join(name for name, x in ALGORITHMS.items() if x.scale_rewards_note is None)
        raise ConfigError(
            f"algo.scale_rewards={a.scale_rewards} is for algo.name={takers}; {algorithm.scale_rewards_note}"
        )
    if a.kl_target < 0:
        raise ConfigError("algo.kl_target must be >= 0")
    if not a.reference and (a.kl_coef != 0 or a.kl_target > 0):
        raise ConfigError(
            f"algo.reference=false needs algo.kl_coef=0 and algo.kl_target=0 (got {a.kl_coef} and "
            f"{a.kl_target}): the KL penalty is measured against the reference"
        )
    return fn
