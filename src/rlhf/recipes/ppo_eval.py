"""Held-out evaluation during `rlhf ppo`: how the policy does on prompts it never trains on, and
how much of some held-out text it forgets.

    data.eval   held-out prompt records. One response per prompt, sampled as the rollouts are and
                with the same seed at every evaluation (so two evaluations differ by the policy
                only), scored by the training reward. Logged as eval_score (normalised, penalised
                and clipped as the training `score`), eval_score_raw, eval_kl (per response, to
                the reference), eval_length, eval_no_eos_share, eval_repeated_bigrams,
                eval_distinct_2, and the caller's sample metrics as eval_<name>.
    ptx.eval    held-out demonstration records (or pretraining text): the policy's token-mean NLL
                on their completions, eval_nll and eval_ppl. A rise from the step-0 value is
                catastrophic forgetting (InstructGPT's "alignment tax"), what PPO-ptx is against.

An evaluation runs before the first step of a fresh run (step 0: the starting policy), every
``train.eval_every`` steps, and after the last step; each is its own metrics.jsonl line.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from accelerate.utils import gather_object

from rlhf.data.collators import padded_share
from rlhf.data.prompts import load_prompts
from rlhf.eval.kl import teacher_forced_kl
from rlhf.eval.metrics import repetition
from rlhf.eval.nll import text_nll
from rlhf.recipes.ppo_config import Config
from rlhf.recipes.ppo_models import RLModels
from rlhf.recipes.run_dir import RunDir
from rlhf.recipes.sft import load_examples
from rlhf.rollout.generate import SamplingParams
from rlhf.rollout.reward_model import Scorer
from rlhf.rollout.reward_shaping import postprocess_scores

if TYPE_CHECKING:  # hints only
    from accelerate import Accelerator
    from transformers import PreTrainedTokenizerBase

    from rlhf.rollout.engine import RolloutEngine


@dataclass
class HeldOut:
    """What a held-out evaluation reads: prompts (data.eval) and text (ptx.eval); either may be empty."""

    prompts: list = field(default_factory=list)
    """the records' prompts (text or chat messages)"""
    prompt_texts: list[str] = field(default_factory=list)
    prompt_ids: list[list[int]] = field(default_factory=list)
    text: list = field(default_factory=list)
    """tokenized demonstration examples (rlhf.data.tokenize)"""

    def __bool__(self) -> bool:
        return bool(self.prompt_ids or self.text)


def load_held_out(cfg: Config, tokenizer: PreTrainedTokenizerBase) -> HeldOut:
    """Read data.eval (as data.train is read) and ptx.eval (as ptx.data is); a bad file fails here,
    before any model is loaded."""
    held = HeldOut()
    if cfg.data.eval:
        d = cfg.data
        held.prompts, held.prompt_texts, held.prompt_ids, _ = load_prompts(
            d.eval, "data.eval", tokenizer, cfg.rollout.max_new_tokens, d.max_length, d.max_prompt_length
        )
    if cfg.ptx.eval:
        held.text = load_examples(cfg.ptx.eval, "ptx.eval", tokenizer, cfg)[0]
    return held


@dataclass
class HeldOutEval:
    """The held-out evaluation of one run (the eval_* metrics of the module docstring, for the
    policy as it is now), logged as its own metrics.jsonl line when called."""

    held: HeldOut
    models: RLModels
    engine: RolloutEngine
    scorer: Scorer
    params: SamplingParams
    cfg: Config
    accelerator: Accelerator
    pad_id: int
    run: RunDir
    sample_metrics: Callable | None = None

    def __call__(self, done: int) -> float:
        """Log the evaluation of the policy after ``done`` steps; returns its seconds."""
        t = time.perf_counter()
        result = self.metrics()
        seconds = time.perf_counter() - t
        self.run.log({"step": done, **result, "time_eval": seconds})
        say = self.accelerator.print
        say(
            f"[{self.cfg.algo.name}] step {done} eval: "
            + ", ".join(f"{k} {v:.4g}" for k, v in result.items())
        )
        return seconds

    @torch.no_grad()
    def metrics(self) -> dict[str, float]:
        """The eval_* metrics: on the held-out prompts (data.eval), then the held-out text (ptx.eval)."""
        out: dict[str, float] = {}
        if self.held.prompt_ids:
            out.update(self._on_prompts())
        if self.held.text:
            nll = text_nll(
                self.models.policy, self.accelerator, self.held.text, self.pad_id, self.cfg.ptx.batch_size
            )
            out.update(eval_nll=nll["nll"], eval_ppl=nll["ppl"])
        return out

    def _on_prompts(self) -> dict[str, float]:
        cfg, accelerator, pad_id, scorer = self.cfg, self.accelerator, self.pad_id, self.scorer
        reference_logits = self.models.reference_logits if cfg.algo.reference else None
        r, rank, world = cfg.rollout, accelerator.process_index, accelerator.num_processes
        held = self.held
        # every process takes as many prompts, padded with copies of the first whose rows are dropped:
        # under FSDP2/ZeRO-3 each scoring and KL forward is collective, and a process with fewer
        # forwards (or none) would leave the others waiting forever
        mine, real = padded_share(len(held.prompt_ids), rank, world)
        raw_prompts, texts, ids = (
            [held.prompts[i] for i in mine],
            [held.prompt_texts[i] for i in mine],
            [held.prompt_ids[i] for i in mine],
        )
        rows: list[dict] = []
        if ids:
            gens = [gs[0] for gs in self.engine.generate_ids(ids, self.params)]
            responses = [g.response_ids or [pad_id] for g in gens]
            finished = torch.tensor([g.finished for g in gens])
            raw = scorer(raw_prompts, texts, ids, gens, accelerator.autocast, 1).float().cpu()
            score = postprocess_scores(
                raw,
                finished,
                scorer.mean,
                scorer.std,
                cfg.rewards.clip or None,
                cfg.rewards.missing_eos_penalty or None,
            )
            kl = torch.full((len(ids),), float("nan"))
            if reference_logits is not None:
                kl = torch.cat(
                    [
                        teacher_forced_kl(
                            self.models.policy,
                            reference_logits,
                            ids[s],
                            responses[s],
                            pad_id,
                            r.temperature,
                            accelerator,
                        )
                        for s in (slice(i, i + r.batch_size) for i in range(0, len(ids), r.batch_size))
                    ]
                )
            rows = [
                {
                    "prompt": p,
                    "text": g.text,
                    "score": float(s),
                    "score_raw": float(x),
                    "kl": float(k),
                    "length": len(resp) if g.response_ids else 0,
                    "finished": g.finished,
                }
                for p, g, s, x, k, resp in zip(texts, gens, score, raw, kl, responses)
            ][:real]
        rows = gather_object(rows) if world > 1 else rows
        mean = lambda key: sum(float(x[key]) for x in rows) / len(rows)  # noqa: E731
        completions = [x["text"] for x in rows]
        out = {
            "eval_score": mean("score"),
            "eval_score_raw": mean("score_raw"),
            "eval_length": mean("length"),
            "eval_no_eos_share": 1.0 - mean("finished"),
            **{f"eval_{k}": v for k, v in repetition(completions).items()},
        }
        if reference_logits is not None:
            out["eval_kl"] = mean("kl")
        if self.sample_metrics is not None:
            out.update(
                {
                    f"eval_{k}": v
                    for k, v in self.sample_metrics([x["prompt"] for x in rows], completions).items()
                }
            )
        return out
