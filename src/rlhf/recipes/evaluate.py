"""Evaluate a policy on held-out prompts and text: `rlhf eval`.

What a practitioner reads after a PPO or DPO run, from one command:

- **responses** to ``eval.prompts`` from the policy (``model.path``) and, with ``eval.baseline``
  (say the SFT model), from the baseline, decoded alike (greedy by default);
- **scores** of each: the proxy (``eval.reward_model`` or ``eval.reward_function``) and, with
  ``eval.gold``, a scorer you trust more (``module:function``; the toy task's is
  ``rlhf.toyworld.reward:gold``). Proxy up while gold falls is reward hacking;
- **win rates** of the policy against the baseline under each scorer, ties counted half, with a
  95% interval: 125 prompts cannot tell 0.53 from 0.50;
- **KL** of the policy to ``eval.reference`` (default: the baseline), estimated on
  ``eval.kl_samples`` responses per prompt *sampled* at temperature 1 (the only responses on
  which the summed log-ratio is unbiased), with its standard error;
- **length, missing EOS, diversity** (distinct-1/2 over all responses, the share of repeated word
  bigrams within one): the shapes reward hacking takes;
- **NLL and perplexity** of each model on ``eval.text`` (demonstration records, or pretraining
  text as ``{"prompt": "", "completion": text}``): forgetting.

Writes ``config.yaml``, ``report.json`` and ``samples.jsonl`` (each prompt with both responses
and their scores) to ``eval.output_dir``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from accelerate.utils import gather_object

from rlhf.config import ConfigError
from rlhf.data.io import write_jsonl_atomic
from rlhf.data.records import Prompt, load_records
from rlhf.data.tokenize import encode_prompt, render_prompt, tokenize_demonstrations
from rlhf.eval.kl import sampled_kl_terms
from rlhf.eval.metrics import kl_summary, win_rate_interval
from rlhf.eval.nll import text_nll
from rlhf.eval.responses import response_stats
from rlhf.models.loading import check_model_path, load_policy, load_tokenizer
from rlhf.recipes.loop import gather_in_order, sampling_accelerator
from rlhf.recipes.run_dir import RunDir
from rlhf.rollout.engine import make_engine
from rlhf.rollout.generate import Generation, SamplingParams, sampling_params
from rlhf.rollout.reward_fn import call_reward_fn, load_reward_fn
from rlhf.rollout.reward_model import RewardModel
from rlhf.sections import ModelConfig, SamplingSection

if TYPE_CHECKING:  # hints only
    from transformers import PreTrainedTokenizerBase


@dataclass
class EvalSection(SamplingSection):
    """The sampling keys of rlhf.sections.SamplingSection, for the compared responses (greedy by
    default: what a user of the model sees), and:"""

    temperature: float = 0.0
    batch_size: int = 32
    """sequences decoded or scored at once"""
    prompts: str = ""
    """held-out prompt records (JSONL, parquet or a saved `datasets` directory)"""
    baseline: str = ""
    """a second causal LM to compare against (the SFT model): win rates; same tokenizer as model.path"""
    reference: str = ""
    """the model KL is measured to (default: eval.baseline); same tokenizer as model.path"""
    reward_model: str = ""
    """the proxy: a reward model directory (AutoModelForSequenceClassification, num_labels=1); its
    tokenizer may differ from model.path's (it then reads the text)"""
    reward_format: Literal["pair", "chat"] = "pair"
    """how eval.reward_model reads a prompt and response: pair, as `rlhf reward` trains; chat, the
    conversation through its chat template (reward models trained elsewhere on chat transcripts)"""
    reward_function: str = ""
    """the proxy as a Python callable 'module:function' (prompts, completions, **kw) -> list[float]"""
    gold: str = ""
    """a trusted scorer 'module:function', same signature (the toy task: rlhf.toyworld.reward:gold)"""
    text: str = ""
    """held-out text for NLL / perplexity: demonstration records, or {"prompt": "", "completion": text}"""
    kl_samples: int = 4
    """responses per prompt sampled at temperature 1 for the KL estimate (0: no KL)"""
    max_length: int = 512
    """longest eval.text record in tokens (longer ones are cut)"""
    seed: int = 0
    """sampling seed"""
    output_dir: str = "runs/eval"
    """where config.yaml, report.json and samples.jsonl go"""


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    eval: EvalSection = field(default_factory=EvalSection)


def check(cfg: Config) -> dict[str, Any]:
    """Every config error before any model is loaded; returns the imported callables."""
    e = cfg.eval
    check_model_path(cfg.model.path)
    if not e.prompts and not e.text:
        raise ConfigError(
            "eval.prompts or eval.text: nothing to evaluate on; give held-out prompts, text, or both"
        )
    for key in ("baseline", "reference", "reward_model"):
        if getattr(e, key):
            check_model_path(getattr(e, key), f"eval.{key}")
    if e.reward_format != "pair" and not e.reward_model:
        raise ConfigError(
            f"eval.reward_format={e.reward_format} is how eval.reward_model reads, and there is none"
        )
    if e.reward_model and e.reward_function:
        raise ConfigError("eval.reward_model and eval.reward_function are both set; the proxy is one of them")
    if not e.prompts and (e.baseline or e.reward_model or e.reward_function or e.gold):
        raise ConfigError(
            "eval.baseline, eval.reward_model, eval.reward_function and eval.gold score responses: they "
            "need eval.prompts"
        )
    if e.reference and e.kl_samples == 0:
        raise ConfigError("eval.reference is only used for KL; eval.kl_samples=0 turns KL off")
    if e.max_new_tokens < 1 or e.kl_samples < 0 or e.batch_size < 1 or e.max_length < 2:
        raise ConfigError(
            "eval.max_new_tokens and eval.batch_size must be >= 1, eval.kl_samples >= 0, eval.max_length >= 2"
        )
    if e.temperature < 0 or not 0 < e.top_p <= 1:
        raise ConfigError("eval.temperature must be >= 0 and eval.top_p in (0, 1]")
    return {
        key: load_reward_fn(getattr(e, key), f"eval.{key}")
        for key in ("reward_function", "gold")
        if getattr(e, key)
    }


def _load(cfg: Config, path: str, key: str, tokenizer: PreTrainedTokenizerBase) -> torch.nn.Module:
    """A policy to compare or measure KL to; it must read token ids as model.path's tokenizer does."""
    if load_tokenizer(path, key).get_vocab() != tokenizer.get_vocab():
        raise ConfigError(
            f"{key}: {path} uses another tokenizer than model.path; compare models built on the same"
        )
    return load_policy(replace(cfg.model, path=path, lora_r=0), tokenizer, key).eval()


def score(
    cfg: Config,
    fns: dict[str, Any],
    reward_model: RewardModel | None,
    prompts: list[Prompt],
    texts: list[str],
    gens: list[Generation],
) -> dict[str, list[float]]:
    """Each response's score under the proxy ("reward": the reward model or function) and "gold";
    ``prompts`` as the records hold them, ``texts`` rendered for the policy (what functions read)."""
    e, out = cfg.eval, {}
    if reward_model is not None:
        out["reward"] = reward_model(prompts, [g.prompt_ids for g in gens], gens, 1, e.batch_size).tolist()
    for key, label in (("reward_function", "reward"), ("gold", "gold")):
        if key in fns:
            completions, finished = [g.text for g in gens], [g.finished for g in gens]
            out[label] = call_reward_fn(
                fns[key], texts, completions, finished, getattr(e, key), f"eval.{key}"
            ).tolist()
    return out


def evaluate(cfg: Config) -> Path:
    """Evaluate and write the report; returns ``eval.output_dir``."""
    fns = check(cfg)
    e = cfg.eval
    torch.manual_seed(e.seed)
    # 1. data, before any model: a bad record stops the run here
    records = load_records(e.prompts, "prompt", "eval.prompts") if e.prompts else []
    text_records = load_records(e.text, "demonstration", "eval.text") if e.text else []
    tokenizer = load_tokenizer(cfg.model.path)
    examples = []
    if text_records:  # tokenized once, for every model
        examples, _ = tokenize_demonstrations(text_records, tokenizer, e.max_length)
        if not examples:
            raise ConfigError(
                f"eval.text: no record of {e.text} has a completion token within eval.max_length"
            )
    acc = sampling_accelerator(e.seed)
    rank, world, say = acc.process_index, acc.num_processes, acc.print
    run = RunDir(e.output_dir, acc.is_main_process)
    run.write_config(cfg)
    models = {"policy": load_policy(replace(cfg.model, lora_r=0), tokenizer).eval().to(acc.device)}
    if e.baseline:
        models["baseline"] = _load(cfg, e.baseline, "eval.baseline", tokenizer).to(acc.device)
    reference = None
    if e.kl_samples and (e.reference or e.baseline):
        reference = (
            _load(cfg, e.reference, "eval.reference", tokenizer).to(acc.device)
            if e.reference
            else models["baseline"]
        )
    # the proxy reward model, loaded before anything is generated (its tokenizer may differ)
    reward_model = (
        RewardModel(
            e.reward_model,
            cfg.model,
            tokenizer,
            "eval.reward_model",
            acc.device,
            fmt=e.reward_format,
            format_key="eval.reward_format",
        )
        if e.reward_model
        else None
    )
    report: dict[str, Any] = {
        "models": {"policy": cfg.model.path, **({"baseline": e.baseline} if e.baseline else {})}
    }
    stats: dict[str, dict[str, float]] = {name: {} for name in models}

    if records:
        # 2. responses: greedy (or eval.temperature) from each model; KL on samples at temperature 1.
        # Under accelerate launch each process takes every world-th prompt; the rows are gathered.
        names = list(models)
        mine = list(range(rank, len(records), world))
        texts = [render_prompt(tokenizer, records[i].prompt) for i in mine]
        ids = [encode_prompt(tokenizer, records[i].prompt) for i in mine]
        params = sampling_params(e, n=1, seed=e.seed)
        gens, kl_terms = {}, []
        for name, model in models.items():
            engine = make_engine(e.engine, model, tokenizer, e.batch_size)
            gens[name] = [gs[0] for gs in engine.generate_ids(ids, params)] if ids else []
            if name == "policy" and reference is not None and ids:
                kl_params = SamplingParams(
                    e.max_new_tokens, 1.0, n=e.kl_samples, seed=e.seed + 1, stop=list(e.stop)
                )
                kl_terms = sampled_kl_terms(
                    engine, reference, ids, kl_params, tokenizer.pad_token_id, e.batch_size
                )
        # 3. score: the proxy and the gold scorer, every model's responses in one call each
        flat = [g for name in names for g in gens[name]]
        raw = [records[i].prompt for i in mine]
        scorers = [
            label
            for label, on in (("reward", reward_model or "reward_function" in fns), ("gold", "gold" in fns))
            if on
        ]
        local = {label: [] for label in scorers}  # a process with no prompts (more processes than prompts)
        if flat:
            local = score(
                cfg,
                fns,
                reward_model,
                [p for _ in names for p in raw],
                [t for _ in names for t in texts],
                flat,
            )
        rows = [
            {
                "index": i,
                "prompt": texts[j],
                **{name: gens[name][j] for name in names},
                **{
                    f"{name}_{label}": local[label][k * len(mine) + j]
                    for k, name in enumerate(names)
                    for label in scorers
                },
            }
            for j, i in enumerate(mine)
        ]
        rows = gather_in_order(acc, rows)
        if world > 1:
            kl_terms = gather_object(kl_terms)
        n_prompts = len(rows)
        for name in names:
            stats[name].update(response_stats([row[name] for row in rows]))
            for label in scorers:
                stats[name][f"{label}_mean"] = sum(row[f"{name}_{label}"] for row in rows) / n_prompts
        if kl_terms:
            stats["policy"].update(kl_summary(kl_terms))
        if e.baseline:
            report["win_rate"] = {
                label: vars(
                    win_rate_interval(
                        [r[f"policy_{label}"] for r in rows], [r[f"baseline_{label}"] for r in rows]
                    )
                )
                for label in scorers
            }
        if acc.is_main_process:
            written = []
            for r in rows:  # the prompt, then each model's response and its scores
                line = {"prompt": r["prompt"]}
                for name in names:
                    line[name] = r[name].text
                    line.update({f"{name}_{label}": r[f"{name}_{label}"] for label in scorers})
                written.append(line)
            write_jsonl_atomic(Path(e.output_dir) / "samples.jsonl", written)
        report["prompts"] = n_prompts

    if examples:  # 4. forgetting: NLL of held-out text (split across processes)
        for name, model in models.items():
            stats[name].update(text_nll(model, acc, examples, tokenizer.pad_token_id, e.batch_size))
    report.update(stats)
    run.write_json("report.json", report)
    say(format_report(report))
    return Path(e.output_dir)


def format_report(report: dict[str, Any]) -> str:
    """The report as a few lines of text: one row a model, then the win rates."""
    names = [n for n in ("policy", "baseline") if n in report]
    keys = sorted({k for n in names for k in report[n]})
    lines = [f"[eval] {report['prompts']} prompts" if "prompts" in report else "[eval] held-out text only"]
    lines += [
        f"  {k:>16}: " + "  ".join(f"{n} {report[n][k]:.4g}" for n in names if k in report[n]) for k in keys
    ]
    for label, w in report.get("win_rate", {}).items():
        lines.append(
            f"  win rate ({label}): {w['rate']:.3f} [{w['low']:.3f}, {w['high']:.3f}] "
            f"({w['wins']} wins, {w['ties']} ties, {w['losses']} losses)"
        )
    return "\n".join(lines)
