"""`rlhf constitution revise`: response -> critique -> revision, N rounds, for SL-CAI.

Bai et al. 2022 (Constitutional AI), sec. 3.1: sample a response to each prompt, then repeat
N times: draw a principle, ask the model to critique its last response against it, then to
revise the response in the light of the critique. The final revisions are demonstrations for
supervised fine-tuning (`rlhf sft` reads the output as it is); every round is kept in the record.

Two prompt formats, chosen by ``constitution.format``:

- chat (instruction-tuned models with a chat template): a conversation. The few-shot examples
  come first as earlier turns, then user: prompt / assistant: response / user: critique request /
  assistant: critique / user: revision request / assistant: revision;
- text (models trained on plain text): the paper's transcript, "Human: ... Assistant: ...
  Critique request: ... Critique: ... Revision request: ... Revision:", examples first,
  generation stopped at the next section header.

Departures from the paper: a revision that comes back empty keeps the previous response (a tiny
model can emit EOS at once; an empty demonstration would teach it to say nothing), counted as
``empty_revisions``. With ``pairs_output`` the (final revision, initial response) pairs are also
written as preferences, revision preferred.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from rlhf.config import ConfigError
from rlhf.data.readers import DataError, read_records
from rlhf.data.records import Prompt, parse_prompt
from rlhf.feedback.constitution import Constitution, Example, Principle, load_constitution
from rlhf.feedback.judge.template import prompt_text
from rlhf.sections import ModelConfig, SamplingSection

TEXT_STOPS = ["\n\nHuman:", "\n\nCritique request:", "\n\nRevision request:", "\n\n---"]


@dataclass
class ReviseSection(SamplingSection):
    """The sampling keys of rlhf.sections.SamplingSection, for responses, critiques and revisions
    alike (stop strings add to the text format's own), and:"""

    prompts: str = ""
    """prompt records (JSONL / parquet / datasets); a record with 'response' (or 'completion') is
    revised as it is, otherwise the model first samples a response"""
    constitution: str = "default"
    """constitution YAML file ('default': the built-in one)"""
    output: str = "revisions.jsonl"
    """demonstrations written here: {prompt, completion, initial, rounds, principles}"""
    pairs_output: str = ""
    """if set, also write {prompt, chosen: final revision, rejected: initial response} pairs"""
    rounds: int = 1
    """critique-revision rounds per prompt (a principle drawn per round)"""
    few_shot: int = 2
    """examples from the constitution placed before each request (0: none)"""
    format: Literal["auto", "chat", "text"] = "auto"
    """auto: chat if the tokenizer has a chat template, else the paper's text transcript"""
    seed: int = 0
    """seed of the sampling and of the principle draws"""


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    constitution: ReviseSection = field(default_factory=ReviseSection)


def _turns(prompt: Prompt, response: str) -> list[dict[str, str]]:
    head = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    return head + [{"role": "assistant", "content": response}]


def _example_steps(ex: Example, p: Principle) -> list[tuple[str, str]]:
    return [
        ("Human", ex.prompt),
        ("Assistant", ex.response),
        ("Critique request", p.critique),
        ("Critique", ex.critique),
        ("Revision request", p.revision),
        ("Revision", ex.revision),
    ]


class Reviser:
    """Builds the critique and revision prompts of one round, in chat or text format."""

    def __init__(self, constitution: Constitution, chat: bool, few_shot: int):
        self.c, self.chat = constitution, chat
        self.examples = list(constitution.examples[:few_shot]) if few_shot > 0 else []

    def _shots(self, p: Principle) -> list[tuple[Example, Principle]]:
        return [(ex, self.c.get(ex.principle) if ex.principle else p) for ex in self.examples]

    def critique_prompt(self, prompt: Prompt, response: str, p: Principle) -> Prompt:
        return self._build(prompt, response, p, None)

    def revision_prompt(self, prompt: Prompt, response: str, p: Principle, critique: str) -> Prompt:
        return self._build(prompt, response, p, critique)

    def _build(self, prompt: Prompt, response: str, p: Principle, critique: str | None) -> Prompt:
        steps = [("Critique request", p.critique)] + (
            [("Critique", critique), ("Revision request", p.revision)] if critique is not None else []
        )
        if self.chat:
            msgs: list[dict[str, str]] = []
            for ex, ep in self._shots(p):
                for (_, text), role in zip(_example_steps(ex, ep), ["user", "assistant"] * 3):
                    msgs.append({"role": role, "content": text})
            msgs += _turns(prompt, response)
            msgs += [{"role": "user" if "request" in h else "assistant", "content": t} for h, t in steps]
            return msgs
        blocks = ["\n\n".join(f"{h}: {t}" for h, t in _example_steps(ex, ep)) for ex, ep in self._shots(p)]
        now = [("Human", prompt_text(prompt)), ("Assistant", response), *steps]
        now.append(("Critique" if critique is None else "Revision", ""))
        blocks.append("\n\n".join(f"{h}: {t}" for h, t in now).rstrip())
        return "\n\n---\n\n".join(blocks)


def clean(text: str, chat: bool) -> str:
    """A generated critique or revision without a trailing stop header (text format) or spaces."""
    if not chat:
        for stop in TEXT_STOPS:
            if text.endswith(stop):
                text = text[: -len(stop)]
    return text.strip()


def read_prompts(path: str) -> tuple[list[Prompt], list[str | None]]:
    prompts, responses = [], []
    for where, rec in read_records(path, "constitution.prompts"):
        if "prompt" not in rec:
            raise DataError(f"{where}: missing field 'prompt'")
        prompts.append(parse_prompt(rec["prompt"], where))
        given = rec.get("response", rec.get("completion"))
        if given is not None and not isinstance(given, str):
            raise DataError(f"{where}: field 'response' must be a string")
        responses.append(given)
    return prompts, responses


def check(cfg: Config) -> None:
    s = cfg.constitution
    if not s.prompts:
        raise ConfigError("constitution.prompts: a file of prompt records is required")
    if s.rounds < 1 or s.max_new_tokens < 1 or s.few_shot < 0:
        raise ConfigError("constitution.rounds and constitution.max_new_tokens must be >= 1, few_shot >= 0")
    if s.temperature < 0 or not 0 < s.top_p <= 1:
        raise ConfigError("constitution.temperature must be >= 0 and constitution.top_p in (0, 1]")


def revise(
    engine,
    tokenizer,
    prompts: list[Prompt],
    responses: list[str | None],
    cfg: ReviseSection,
    constitution: Constitution,
    context: int | None = None,
) -> tuple[list[dict], dict[str, int]]:
    """Run the rounds over every prompt at once (one batched generate per step); returns the
    demonstration records and counts. With ``context`` (the model's positions), a prompt longer
    than ``context - max_new_tokens`` is cut from the left: the few-shot examples, which come
    first, go before the conversation being revised does."""
    from rlhf.data.tokenize import encode_prompt
    from rlhf.rollout.generate import sampling_params

    chat = cfg.format == "chat" or (cfg.format == "auto" and bool(getattr(tokenizer, "chat_template", None)))
    reviser = Reviser(constitution, chat, cfg.few_shot)
    stops = list(cfg.stop) + ([] if chat else TEXT_STOPS)
    step = iter(range(1 << 30))

    def sample(batch: list[Prompt]) -> list[str]:
        # a fresh seed per step: the same seed for every step would correlate critiques and revisions
        params = sampling_params(cfg, seed=cfg.seed * 1000 + next(step), stop=stops)
        if not batch:
            return []
        if context is None:
            gens = engine.generate(batch, params)
        else:
            room = context - cfg.max_new_tokens
            ids = [encode_prompt(tokenizer, p) for p in batch]
            counts["truncated_prompts"] += sum(len(x) > room for x in ids)
            gens = engine.generate_ids([x[-room:] for x in ids], params)
        return [clean(g[0].text, chat) for g in gens]

    counts = {"prompts": len(prompts), "sampled_initial": 0, "empty_revisions": 0, "truncated_prompts": 0}
    # 1. initial responses, where the input brought none
    todo = [i for i, r in enumerate(responses) if r is None]
    current = list(responses)
    for i, text in zip(todo, sample([prompts[i] for i in todo])):
        current[i] = text
    initial = list(current)
    rng = random.Random(f"{cfg.seed}:revise")
    rounds: list[list[dict]] = [[] for _ in prompts]
    counts["sampled_initial"] = len(todo)
    for _ in range(cfg.rounds):
        # 2. a principle per prompt and round
        drawn = [constitution.sample(rng) for _ in prompts]
        # 3. critique, then 4. revision in the light of it
        critiques = sample([reviser.critique_prompt(p, r, d) for p, r, d in zip(prompts, current, drawn)])
        revisions = sample(
            [reviser.revision_prompt(p, r, d, c) for p, r, d, c in zip(prompts, current, drawn, critiques)]
        )
        for i, (d, c, r) in enumerate(zip(drawn, critiques, revisions)):
            rounds[i].append({"principle": d.name, "critique": c, "revision": r})
            if r:
                current[i] = r
            else:
                counts["empty_revisions"] += 1
    records = [
        {
            "prompt": p,
            "completion": final,
            "initial": init,
            "rounds": rs,
            "n_rounds": len(rs),
            "constitution": constitution.name,
        }
        for p, final, init, rs in zip(prompts, current, initial, rounds)
    ]
    return records, counts


def write_revisions(cfg: Config) -> Path:
    """Revise every prompt's response and write the demonstrations; returns the output path."""
    import torch

    from rlhf.data.io import write_jsonl_atomic
    from rlhf.models.loading import check_model_path, load_policy, load_tokenizer, without_lora

    check(cfg)
    check_model_path(cfg.model.path)
    s = cfg.constitution
    constitution = load_constitution(s.constitution)
    prompts, responses = read_prompts(s.prompts)
    torch.manual_seed(s.seed)
    tokenizer = load_tokenizer(cfg.model.path)
    model = load_policy(without_lora(cfg.model), tokenizer).eval()
    from rlhf.rollout.engine import make_engine

    engine = make_engine(s.engine, model, tokenizer, s.batch_size)
    context = getattr(model.config, "max_position_embeddings", None)
    if context is not None and context <= s.max_new_tokens:
        raise ConfigError(
            f"constitution.max_new_tokens ({s.max_new_tokens}) leaves no room in the model's {context} "
            "positions"
        )
    records, counts = revise(engine, tokenizer, prompts, responses, s, constitution, context)
    out = write_jsonl_atomic(s.output, records)
    if s.pairs_output:
        pairs = [
            {"prompt": r["prompt"], "chosen": r["completion"], "rejected": r["initial"]}
            for r in records
            if r["completion"] != r["initial"]
        ]
        write_jsonl_atomic(s.pairs_output, pairs)
        print(f"[constitution] {len(pairs)} (revision > initial) pairs -> {s.pairs_output}")
    print(
        f"[constitution] {counts['prompts']} prompts x {s.rounds} rounds ({counts['sampled_initial']} "
        f"initial responses sampled, {counts['empty_revisions']} empty revisions kept the previous response, "
        f"{counts['truncated_prompts']} prompts cut from the left to fit) -> {out}"
    )
    return out
