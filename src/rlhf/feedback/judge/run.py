"""`rlhf judge`: label candidate sets or pairs with an AI judge (RLAIF; RL-CAI with a constitution).

    rlhf judge model.path=runs/sft/final judge.input=candidates.jsonl judge.rankings_output=ai.jsonl
    rlhf judge judge.kind=endpoint endpoint.url=http://127.0.0.1:8000/v1 endpoint.model=policy \\
        judge.input=pairs.jsonl judge.pairs_output=ai_pairs.jsonl judge.constitution=default

Writes the ranking and/or pair files (``labels.py``: soft labels ``probs`` / ``prob``), and a
report next to the first of them (``<name>.report.json``): counts, the judge's position-bias
statistics, and with ``judge.reference`` its agreement with existing rankings.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rlhf.config import ConfigError
from rlhf.data.readers import read_records
from rlhf.data.records import parse_ranking
from rlhf.sections import ModelConfig


@dataclass
class JudgeSection:
    kind: Literal["local", "endpoint"] = "local"
    """local: the causal LM at model.path; endpoint: an OpenAI-compatible server (endpoint.*)"""
    input: str = ""
    """candidate sets {prompt, responses} or pairs {prompt, chosen, rejected} (JSONL / parquet / datasets)"""
    rankings_output: str = ""
    """ranking records written here (annotator ai:<name>, soft labels in 'probs' and 'scores')"""
    pairs_output: str = ""
    """pair records written here (chosen = the judge's preference, 'prob' = P(chosen better))"""
    template: str = ""
    """YAML file of the comparison prompt (text, criterion, options, system); empty: the built-in one"""
    constitution: str = ""
    """constitution YAML ('default': the built-in one): a principle drawn per comparison (RL-CAI)"""
    weight: Literal["none", "confidence"] = "none"
    """confidence: pair records get weight = 2 * prob - 1, which `rlhf reward` multiplies into its loss"""
    reference: str = ""
    """ranking file (human or simulated) to report the judge's agreement with; empty: none"""
    name: str = ""
    """the judge's name in 'annotator' (ai:<name>); empty: the model directory or endpoint model"""
    seed: int = 0
    """seed of the principle draws"""
    batch_size: int = 32
    """local: comparison prompts per forward"""
    chat: Literal["auto", "on", "off"] = "auto"
    """local: wrap the prompt in the tokenizer's chat template (auto: if it has one)"""


@dataclass
class EndpointSection:
    url: str = ""
    """base URL of the server, e.g. http://127.0.0.1:8000/v1 (requests go to {url}/chat/completions)"""
    model: str = ""
    """model name sent with each request"""
    api_key_env: str = "OPENAI_API_KEY"
    """environment variable holding the API key (never put the key itself in a config file)"""
    logprobs: bool = True
    """ask for logprobs + top_logprobs; replies without them are read from the text verdict"""
    top_logprobs: int = 5
    """alternatives per token to ask for (OpenAI allows up to 20)"""
    max_tokens: int = 4
    """longest reply; the verdict is its first token"""
    concurrency: int = 8
    """requests in flight at once"""
    max_retries: int = 5
    """retries of a request after 429 / 5xx / a timeout, with exponential backoff"""
    backoff: float = 0.5
    """seconds before the first retry; doubled each retry, with jitter"""
    timeout: float = 60.0
    """seconds per request"""
    cache: str = "auto"
    """SQLite file of replies, so a re-run pays nothing twice; auto: next to the first output; none: off"""


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    judge: JudgeSection = field(default_factory=JudgeSection)
    endpoint: EndpointSection = field(default_factory=EndpointSection)


def _first_output(j: JudgeSection) -> Path:
    return Path(j.rankings_output or j.pairs_output)


def check(cfg: Config) -> None:
    j, e = cfg.judge, cfg.endpoint
    if not j.input:
        raise ConfigError("judge.input: a file of candidate sets or pairs is required")
    if not j.rankings_output and not j.pairs_output:
        raise ConfigError("judge.rankings_output or judge.pairs_output: say where the labels go")
    if j.batch_size < 1:
        raise ConfigError("judge.batch_size must be >= 1")
    if j.kind == "endpoint":
        if not e.url or not e.model:
            raise ConfigError("endpoint.url and endpoint.model are required with judge.kind=endpoint")
        if not e.url.startswith(("http://", "https://")):
            raise ConfigError(f"endpoint.url must start with http:// or https://, got {e.url!r}")
        if e.concurrency < 1 or e.max_retries < 0 or e.max_tokens < 1 or not 0 <= e.top_logprobs <= 20:
            raise ConfigError(
                "endpoint.concurrency and endpoint.max_tokens must be >= 1, endpoint.max_retries >= 0, "
                "endpoint.top_logprobs in [0, 20]"
            )


def _model_name(path: str) -> str:
    p = Path(path)
    return p.parent.name if p.name == "final" and p.parent.name else p.name or path


def build_judge(cfg: Config, template):
    """The judge the config asks for (loads the model for a local judge)."""
    j, e = cfg.judge, cfg.endpoint
    if j.kind == "endpoint":
        from rlhf.feedback.judge.cache import JudgeCache
        from rlhf.feedback.judge.endpoint import EndpointJudge

        cache = None
        if e.cache != "none":
            cache = JudgeCache(
                _first_output(j).with_suffix(".cache.sqlite") if e.cache == "auto" else e.cache
            )
        judge = EndpointJudge(
            e.url,
            e.model,
            os.environ.get(e.api_key_env, ""),
            template,
            logprobs=e.logprobs,
            top_logprobs=e.top_logprobs,
            max_tokens=e.max_tokens,
            concurrency=e.concurrency,
            max_retries=e.max_retries,
            timeout=e.timeout,
            backoff=e.backoff,
            cache=cache,
        )
        judge.name = j.name or e.model
        return judge
    from rlhf.feedback.judge.local import LocalJudge
    from rlhf.models.loading import load_policy, load_tokenizer, without_lora

    tokenizer = load_tokenizer(cfg.model.path)
    model = load_policy(without_lora(cfg.model), tokenizer).eval()
    chat = None if j.chat == "auto" else j.chat == "on"
    return LocalJudge(model, tokenizer, template, j.name or _model_name(cfg.model.path), j.batch_size, chat)


def label(judge, items, constitution: str = "", seed: int = 0, weight: str = "none"):
    """Judge every pair of every item; returns (ranking records, pair records, report)."""
    from rlhf.feedback.constitution import load_constitution
    from rlhf.feedback.judge.base import position_stats
    from rlhf.feedback.judge.labels import comparisons, to_records

    principles = load_constitution(constitution).criteria() if constitution else None
    comps, index, counts = comparisons(items, principles, seed)
    results = judge.judge(comps)
    rankings, pairs = to_records(items, index, results, f"ai:{judge.name}", counts, weight)
    report: dict[str, Any] = {
        "judge": f"ai:{judge.name}",
        "counts": vars(counts),
        "position": position_stats(results),
        "judge_stats": dict(getattr(judge, "stats", {})),
    }
    return rankings, pairs, report


def read_reference(path: str) -> list[dict[str, Any]]:
    """Ranking records of ``path``, checked, as plain dicts."""
    out = []
    for where, rec in read_records(path, "judge.reference"):
        r = parse_ranking(rec, where)
        out.append({"prompt": r.prompt, "responses": r.responses, "ranks": r.ranks, "annotator": r.annotator})
    return out


def run(cfg: Config) -> dict[str, Any]:
    """Judge, write the label files and the report; returns the report."""
    from rlhf.data.io import write_jsonl_atomic
    from rlhf.feedback.judge.agreement import agreement_report
    from rlhf.feedback.judge.labels import read_items
    from rlhf.feedback.judge.template import load_template

    check(cfg)
    j = cfg.judge
    template = load_template(j.template)
    if j.constitution:
        from rlhf.feedback.constitution import load_constitution

        load_constitution(j.constitution)  # a bad file stops the run before the model loads
    items = read_items(j.input)
    reference = read_reference(j.reference) if j.reference else None
    judge = build_judge(cfg, template)
    try:
        rankings, pairs, report = label(judge, items, j.constitution, j.seed, j.weight)
    finally:
        if getattr(judge, "cache", None) is not None:
            judge.cache.close()
    if j.rankings_output:
        write_jsonl_atomic(j.rankings_output, rankings)
    if j.pairs_output:
        write_jsonl_atomic(j.pairs_output, pairs)
    if reference is not None:
        report["agreement"] = agreement_report(rankings, reference)
    path = _first_output(j).with_suffix(".report.json")
    path.write_text(json.dumps(report, indent=2) + "\n")
    c, pos = report["counts"], report["position"]
    print(
        f"[judge] {c['items']} items, {c['comparisons']} comparisons x 2 orders by {report['judge']}: "
        f"same position after the swap {pos['same_position_rate']:.1%}, position 1 preferred "
        f"{pos['first_position_rate']:.1%}; {len(pairs)} pairs ({c['undecided']} undecided, {c['identical']} "
        f"identical left out) -> {', '.join(p for p in (j.rankings_output, j.pairs_output) if p)}"
    )
    if "agreement" in report:
        a = report["agreement"]
        print(
            f"[judge] agreement on {a['tasks']} tasks: with reference raters "
            f"{a['ai_vs_reference']['value']}, reference raters with each other "
            f"{a['reference_vs_reference']['value']}"
        )
    print(f"[judge] report -> {path}")
    return report


def judge_labels(cfg: Config) -> Path:
    """The CLI entry point: ``run``, returning the first output path."""
    run(cfg)
    return _first_output(cfg.judge)
