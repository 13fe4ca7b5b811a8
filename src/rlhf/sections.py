"""Config sections shared by the verbs: ``model``, ``data``, ``train``, and the sampling options.

Each verb's config (``rlhf.recipes.<verb>.Config``) composes these with its own section. A section
that generates (``rollout``, ``sample``, ``best_of_n``'s ``sample``, ``eval``, ``constitution``)
extends ``SamplingSection``, so its sampling keys are written and documented once and read the same
in every verb (``rollout.temperature``, ``sample.temperature``, ...); rlhf.rollout.generate's
``sampling_params`` turns one into the engines' ``SamplingParams``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal


@dataclass
class ModelConfig:
    path: str = ""
    """Hugging Face model directory, hub id, or GGUF file (converted once into a cached checkpoint,
    see docs/real-models.md); a causal LM (reward models start from one too)"""
    gguf_file: str = ""
    """a GGUF file inside the directory model.path; the same as giving the file's path as model.path"""
    dtype: Literal["float32", "bfloat16"] = "float32"
    """dtype the weights are loaded and trained in"""
    lora_r: int = 0
    """LoRA rank (peft); 0 trains every weight"""
    lora_alpha: int = 16
    """LoRA scaling numerator (the update is scaled by alpha / r)"""
    lora_dropout: float = 0.0
    """dropout on the LoRA branch"""
    lora_target_modules: list[str] = field(default_factory=lambda: ["all-linear"])
    """module names LoRA adapts; 'all-linear' adapts every linear layer but the output head"""
    attn_implementation: Literal["auto", "sdpa", "eager"] = "auto"
    """attention kernel (transformers' attn_implementation); auto is transformers' default (sdpa).
    On CPU in bf16, eager is faster for small heads and short sequences (bench/)"""
    trust_remote_code: bool = False
    """allow model code shipped with the checkpoint (only for checkpoints you trust)"""

    def __post_init__(self) -> None:
        # one path from here on: copies made with another path (a reference or reward model built
        # from this section) must not inherit a file name meant for this directory
        if self.gguf_file:
            self.path = str(Path(self.path) / self.gguf_file) if self.path else self.gguf_file
            self.gguf_file = ""


@dataclass
class DataConfig:
    train: str = ""
    """training records: JSONL file, parquet file, or a saved `datasets` directory (dir:split for a
    DatasetDict split other than train)"""
    eval: str = ""
    """held-out records in the same format (empty: no evaluation)"""
    max_length: int = 512
    """longest tokenized prompt + response; longer records are truncated or dropped (see docs/data.md)"""
    max_prompt_length: int = 0
    """if > 0, prompts are cut from the left to at most this many tokens before anything else"""


@dataclass
class TrainConfig:
    output_dir: str = "runs/default"
    """run directory: config.yaml, metrics.jsonl, checkpoints/, final/"""
    max_steps: int = 0
    """optimizer steps; 0 means `epochs` passes over the training data"""
    epochs: float = 1.0
    """passes over the data when max_steps is 0"""
    batch_size: int = 8
    """records per device per micro-batch (a reward record is one prompt with all its responses)"""
    grad_accum: int = 1
    """micro-batches per optimizer step; global batch = batch_size x grad_accum x processes"""
    lr: float = 1e-4
    """peak learning rate (AdamW)"""
    weight_decay: float = 0.0
    """AdamW weight decay"""
    adam_betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    """AdamW beta1, beta2"""
    max_grad_norm: float = 1.0
    """clip the global gradient norm to this; 0 disables clipping"""
    warmup_steps: int = 0
    """linear warmup steps"""
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    """learning-rate decay after warmup"""
    mixed_precision: Literal["no", "bf16"] = "no"
    """bf16 autocast for the forward pass (weights stay in model.dtype)"""
    seed: int = 0
    """seed for initialisation, data order and dropout"""
    log_every: int = 10
    """steps between metrics.jsonl lines"""
    eval_every: int = 0
    """steps between evaluations on data.eval (0: only at the end)"""
    save_every: int = 0
    """steps between checkpoints (0: only the final model)"""
    keep_checkpoints: int = 2
    """how many of the newest checkpoints to keep"""
    resume: bool = True
    """resume from the newest checkpoint in output_dir if there is one"""
    report_to: list[Literal["none", "tensorboard", "wandb", "trackio"]] = field(
        default_factory=lambda: ["none"]
    )
    """experiment trackers that get the config and every metrics.jsonl line (several: tensorboard,wandb);
    offline: TensorBoard files in output_dir/tensorboard, W&B in offline mode (docs/tracking.md)"""


@dataclass
class SamplingSection:
    """How responses are sampled: the keys every generating section shares (a subclass may change a
    default, or add what only it needs)."""

    max_new_tokens: int = 128
    """longest response in tokens"""
    temperature: float = 1.0
    """sampling temperature (0: greedy)"""
    top_p: float = 1.0
    """nucleus sampling mass (1: off)"""
    top_k: int = 0
    """sample among the k most likely tokens (0: off)"""
    stop: list[str] = field(default_factory=list)
    """stop strings: a response ends after the first one (besides EOS)"""
    engine: Literal["kv_cache", "hf"] = "kv_cache"
    """kv_cache: rlhf's engine; hf: transformers' generate (the reference)"""
    batch_size: int = 64
    """sequences the engine decodes at once"""
