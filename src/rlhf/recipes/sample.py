"""K responses per prompt from any causal LM: `rlhf sample`.

Writes candidate sets, one JSON line a prompt: ``{"id", "prompt", "responses"}``. That is the file
the labeling app imports (`rlhf label import`); once people rank it, it is a ranking file that
`rlhf reward` and `rlhf dpo` read.

The model runs on accelerate's device (a GPU when there is one). Under `accelerate launch` each
process samples every n-th prompt (with the same seed, so the samples differ from a one-process
run's) and the main process gathers them in prompt order and writes the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from rlhf.config import ConfigError
from rlhf.data.io import write_jsonl_atomic
from rlhf.data.readers import DataError
from rlhf.data.records import load_records
from rlhf.models.loading import check_model_path, load_policy, load_tokenizer, without_lora
from rlhf.recipes.loop import gather_in_order, sampling_accelerator
from rlhf.rollout.generate import Generation, sampling_params
from rlhf.sections import ModelConfig, SamplingSection

if TYPE_CHECKING:  # hints only
    from accelerate import Accelerator
    from transformers import PreTrainedTokenizerBase


@dataclass
class SampleSection(SamplingSection):
    """The sampling keys of rlhf.sections.SamplingSection (temperature 0 makes every response the
    same), and:"""

    prompts: str = ""
    """prompt records: JSONL file, parquet file, or a saved `datasets` directory"""
    output: str = "samples.jsonl"
    """where the candidate sets are written (JSONL)"""
    n: int = 4
    """responses per prompt (K)"""
    seed: int = 0
    """sampling seed"""


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    sample: SampleSection = field(default_factory=SampleSection)


def check(model: ModelConfig, s: SampleSection) -> None:
    check_model_path(model.path)
    if not s.prompts:
        raise ConfigError("sample.prompts: a file of prompt records is required")
    if s.n < 1 or s.max_new_tokens < 1:
        raise ConfigError("sample.n and sample.max_new_tokens must be >= 1")
    if s.temperature < 0 or not 0 < s.top_p <= 1:
        raise ConfigError("sample.temperature must be >= 0 and sample.top_p in (0, 1]")


def generate(
    model_cfg: ModelConfig,
    s: SampleSection,
    accelerator: Accelerator,
    tokenizer: PreTrainedTokenizerBase,
    what: str = "sample.prompts",
) -> tuple[list, list[list[Generation]], list[int]]:
    """Load the model and prompts, sample this process's share of the prompts (every n-th, from
    its index); returns (all prompt records, generations of the share, the share's record indices)."""
    records = load_records(s.prompts, "prompt", what)
    model = load_policy(without_lora(model_cfg), tokenizer).eval().to(accelerator.device)
    from rlhf.rollout.engine import make_engine

    engine = make_engine(s.engine, model, tokenizer, s.batch_size)
    params = sampling_params(s, n=s.n, seed=s.seed)
    mine = list(range(accelerator.process_index, len(records), accelerator.num_processes))
    try:
        gens = engine.generate([records[i].prompt for i in mine], params) if mine else []
    except ValueError as err:  # e.g. a prompt with no tokens
        raise DataError(f"{what}: {err}") from err
    return records, gens, mine


def sample(cfg: Config) -> Path:
    """Sample and write the candidate sets; returns the output path."""
    check(cfg.model, cfg.sample)
    torch.manual_seed(cfg.sample.seed)
    acc = sampling_accelerator(cfg.sample.seed)
    records, gens, mine = generate(cfg.model, cfg.sample, acc, load_tokenizer(cfg.model.path))
    rows = gather_in_order(
        acc,
        [
            {"index": i, "responses": [g.text for g in gs], "cut": sum(not g.finished for g in gs)}
            for i, gs in zip(mine, gens)
        ],
    )
    out = Path(cfg.sample.output)
    if acc.is_main_process:
        sets = [
            {"id": f"p{r['index']}", "prompt": records[r["index"]].prompt, "responses": r["responses"]}
            for r in rows
        ]
        write_jsonl_atomic(out, sets)
    cut = sum(r["cut"] for r in rows)
    acc.print(
        f"[sample] {len(records)} prompts x {cfg.sample.n} responses -> {out} ({cut} cut at max_new_tokens)"
    )
    return out
