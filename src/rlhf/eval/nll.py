"""Held-out negative log-likelihood: what a model forgets.

The token-mean NLL (and perplexity) of a model on the completions of demonstration records, or on
plain text read as ``{"prompt": "", "completion": text}``. SFT logs it on data.eval, PPO on
ptx.eval (a rise from step 0 is InstructGPT's "alignment tax"), `rlhf eval` on eval.text, and the
demos on held-out web text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from rlhf.data.collators import collate_sft, even_batches
from rlhf.data.records import parse_demonstration
from rlhf.data.tokenize import tokenize_demonstrations
from rlhf.losses.logprobs import masked_nll

if TYPE_CHECKING:  # hints only
    from accelerate import Accelerator
    from transformers import PreTrainedTokenizerBase


@torch.no_grad()
def text_nll(
    model: torch.nn.Module,
    accelerator: Accelerator,
    examples: list[dict[str, list[int]]],
    pad_id: int,
    batch_size: int,
) -> dict[str, float]:
    """Token-mean NLL (``nll``) and perplexity (``ppl``) of ``model`` on tokenized demonstration
    ``examples``, split across ``accelerator``'s processes; ``model`` is left in the mode (train or
    eval) it came in."""
    was_training = model.training
    model.eval()
    nll = torch.zeros((), device=accelerator.device)
    count = torch.zeros((), device=accelerator.device)
    rank, world = accelerator.process_index, accelerator.num_processes
    for items, real in even_batches(examples, rank, world, batch_size):
        batch = {k: v.to(accelerator.device) for k, v in collate_sft(items, pad_id).items()}
        with accelerator.autocast():
            logits = model(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False
            ).logits
        s, c = masked_nll(logits, batch["labels"])
        if real:
            nll += s
            count += c
    nll, count = accelerator.reduce(nll, "sum"), accelerator.reduce(count, "sum")
    model.train(was_training)
    loss = (nll / count.clamp(min=1)).item()
    return {"nll": loss, "ppl": float(torch.tensor(loss).exp())}


def text_examples(
    tokenizer: PreTrainedTokenizerBase, texts: list[str], max_length: int, name: str = "text"
) -> list[dict[str, list[int]]]:
    """Plain ``texts`` as demonstration examples read from their start (empty prompt: every token
    is a label); a text longer than ``max_length`` tokens with its EOS is left out, as
    rlhf.data.tokenize keeps a completion whole. ``name`` names them in errors."""
    records = [
        parse_demonstration({"prompt": "", "completion": t}, f"{name} {i}") for i, t in enumerate(texts)
    ]
    return tokenize_demonstrations(records, tokenizer, max_length)[0]
