"""A local Hugging Face causal LM as the judge, read from its option-token log-probs.

For each comparison prompt the model's next-token distribution is read once (one forward, no
sampling), and P(position 1 wins) = softmax over the two option tokens only (Lee et al. 2023,
RLAIF, sec. 2.1: the log-probs of the option tokens, normalised over the options). Both orders
are asked and combined in log-odds (``base.combine_orders``), which cancels a constant position
bias exactly.

Option tokens: each option's continuation is tokenized ("A" after a chat template's assistant header or
a prompt ending in whitespace, " A" after "Answer:", as a BPE tokenizer would write it). Where the two
share leading tokens (a tokenizer that splits " A" into " " + "A"), the shared tokens are appended to
the prompt and the first differing token is compared: their ratio is then exactly the ratio of the two
continuations' first differing tokens, which is the whole answer for one-token labels.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rlhf.data.collators import pad
from rlhf.data.tokenize import encode_prompt
from rlhf.feedback.judge.base import Comparison, JudgeError, Judgement, both_orders, judgements
from rlhf.feedback.judge.template import JudgeTemplate
from rlhf.losses.logprobs import softmax_logprobs


def option_token_ids(tokenizer, continuations: tuple[str, str]) -> tuple[list[int], int, int]:
    """(shared leading token ids, first differing id of option 1, of option 2)."""
    a, b = (tokenizer(c, add_special_tokens=False)["input_ids"] for c in continuations)
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    if n == len(a) or n == len(b):
        raise JudgeError(
            f"judge options {continuations[0]!r} and {continuations[1]!r} tokenize to {a} and {b}: one is a "
            "prefix of the other, so the first token cannot tell them apart; choose other labels"
        )
    return a[:n], a[n], b[n]


class LocalJudge:
    """Judge with a causal LM in memory. ``chat`` None: use the tokenizer's chat template if it
    has one (an instruction-tuned model), else the raw text (a model trained on plain prompts)."""

    def __init__(
        self,
        model,
        tokenizer,
        template: JudgeTemplate | None = None,
        name: str = "local",
        batch_size: int = 32,
        chat: bool | None = None,
    ):
        self.model, self.tokenizer, self.name = model, tokenizer, name
        self.template = template or JudgeTemplate()
        self.batch_size = batch_size
        self.chat = bool(getattr(tokenizer, "chat_template", None)) if chat is None else chat
        # after a chat template's assistant header, or a prompt ending in whitespace, the reply starts
        # fresh; after "Answer:" a BPE tokenizer writes the label with its leading space (" A")
        lead = "" if self.chat or self.template.text[-1:].isspace() else " "
        self.shared, self.id_first, self.id_second = option_token_ids(
            tokenizer, (lead + self.template.options[0], lead + self.template.options[1])
        )
        self.max_length = getattr(model.config, "max_position_embeddings", None) or 1 << 30
        self.stats = {"forwards": 0, "truncated": 0}
        """prompts scored (two per comparison) and prompts cut from the left to fit the context"""

    def encode(self, prompt, first: str, second: str, criterion: str | None) -> list[int]:
        """Token ids of one comparison prompt, shared option tokens appended, cut to fit."""
        t = self.template
        if self.chat:
            ids = encode_prompt(self.tokenizer, t.messages(prompt, first, second, criterion))
        else:
            ids = encode_prompt(self.tokenizer, t.render(prompt, first, second, criterion))
        ids = ids + self.shared
        if len(ids) > self.max_length:
            # the end (the responses and the answer slot) matters most; the count is reported
            self.stats["truncated"] += 1
            ids = ids[-self.max_length :]
        return ids

    @torch.no_grad()
    def option_logprobs(self, prompt_ids: list[list[int]]) -> torch.Tensor:
        """log p(option 1), log p(option 2) at the end of each prompt.  Shape: (N, 2)"""
        model = self.model
        was_training = model.training
        model.eval()
        out = torch.zeros(len(prompt_ids), 2)
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        order = sorted(range(len(prompt_ids)), key=lambda i: len(prompt_ids[i]))  # similar lengths batch well
        options = torch.tensor([self.id_first, self.id_second], device=model.device)
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            seqs = [prompt_ids[i] for i in rows]
            # right padding: positions stay 0..T-1 for every architecture; read each row at its own end
            ids = pad(seqs, pad_id).to(model.device)  # (B, T)
            mask = pad([[1] * len(s) for s in seqs], 0).to(model.device)  # (B, T)
            logits = model(input_ids=ids, attention_mask=mask).logits  # (B, T, V)
            last = torch.tensor([len(s) - 1 for s in seqs], device=model.device)
            at_end = logits[torch.arange(len(seqs)), last]  # (B, V)
            out[rows] = softmax_logprobs(at_end, options.expand(len(seqs), 2)).cpu()  # (B, 2)
        self.stats["forwards"] += len(prompt_ids)
        model.train(was_training)
        return out

    def first_position_probs(self, items: Sequence[tuple]) -> list[float]:
        """P(position 1 wins) for each (prompt, first, second, criterion), over the two options only."""
        lp = self.option_logprobs([self.encode(*item) for item in items])  # (N, 2)
        return torch.sigmoid((lp[:, 0] - lp[:, 1]).double()).tolist()

    def judge(self, comparisons: Sequence[Comparison]) -> list[Judgement]:
        return judgements(self.first_position_probs(both_orders(comparisons)))
