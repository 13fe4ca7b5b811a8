"""An RL rollout batch, and the forward passes that fill it (log-probs, values).

Layout: every sequence is its prompt *left*-padded to the batch's widest prompt P, then its
response *right*-padded to the longest response R. So response token t of every row sits in
column P + t, and the model's output at column P + t - 1 predicts it: the per-token tensors of a
batch are plain slices ``[:, P-1 : P+R-1]``, response-aligned, with no per-row gather. Position
ids are counted from each row's first real token, as the generation engines count them, so the
log-probs recomputed here are those of the distribution the tokens were sampled from.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, fields

import torch
from torch import nn

from rlhf.data.collators import pad
from rlhf.models import shared_prompt
from rlhf.models.attention import training_attention
from rlhf.models.head import last_positions
from rlhf.rollout.groups import Groups


@dataclass
class Experience:
    """One rollout batch of B (prompt, response) rows; per-token tensors are response-aligned.

    input_ids       (B, P+R)  left-padded prompt, then right-padded response
    attention_mask  (B, P+R)
    position_ids    (B, P+R)
    response_mask   (B, R)    1 on response tokens (EOS included)
    logprobs        (B, R)    log pi_old(a_t | s_t) at sampling temperature
    ref_logprobs    (B, R)    log pi_ref(a_t | s_t)
    values          (B, R)    V_old(s_t), or None without a critic
    scores          (B,)      sequence reward after normalisation, clipping and penalties
    advantages      (B, R)
    returns         (B, R)    value targets, or None without a critic
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    response_mask: torch.Tensor
    prompt_width: int
    logprobs: torch.Tensor | None = None
    ref_logprobs: torch.Tensor | None = None
    values: torch.Tensor | None = None
    scores: torch.Tensor | None = None
    advantages: torch.Tensor | None = None
    returns: torch.Tensor | None = None
    groups: Groups | None = None
    """the same rows packed one prompt to n responses, for the forwards (rollout/groups.py)"""

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def select(self, rows: torch.Tensor | list[int]) -> Experience:
        """The rows ``rows`` (a minibatch), trimmed to their own longest prompt and response; still
        packed in ``groups`` when ``rows`` are whole groups."""
        rows = torch.as_tensor(rows, dtype=torch.long)
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = v[rows] if isinstance(v, torch.Tensor) else v
        out["groups"] = None
        exp = Experience(**out).trimmed()
        if self.groups is not None:
            exp.groups = self.groups.take(rows.to(self.groups.group.device), exp.response_mask.shape[1])
        return exp

    def trimmed(self) -> Experience:
        """Drop prompt columns that are padding in every row and response columns past the end."""
        mask = self.attention_mask
        P, R = self.prompt_width, self.response_mask.shape[1]
        lead = int((mask[:, :P].sum(0) == 0).sum())  # left-pad columns shared by all rows
        keep_r = int(self.response_mask.sum(1).max()) if len(self) else 0
        if lead == 0 and keep_r == R:
            return self
        cols = slice(lead, P + keep_r)
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name in ("input_ids", "attention_mask", "position_ids"):
                v = v[:, cols]
            elif isinstance(v, torch.Tensor) and v.dim() == 2:
                v = v[:, :keep_r]
            out[f.name] = v
        out["prompt_width"] = P - lead
        return Experience(**out)

    def to(self, device) -> Experience:
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = v.to(device) if isinstance(v, (torch.Tensor, Groups)) else v
        return Experience(**out)


def pack_rollouts(prompt_ids: list[list[int]], response_ids: list[list[int]], pad_id: int) -> Experience:
    """Token lists -> an Experience with only the sequence tensors filled in."""
    if any(len(r) == 0 for r in response_ids):
        raise ValueError("an empty response has no tokens to train on")
    P = max(len(p) for p in prompt_ids)
    prompts = pad(prompt_ids, pad_id, left=True)  # (B, P)
    prompt_mask = pad([[1] * len(p) for p in prompt_ids], 0, left=True)
    responses = pad(response_ids, pad_id)  # (B, R)
    response_mask = pad([[1] * len(r) for r in response_ids], 0)
    mask = torch.cat([prompt_mask, response_mask], 1)
    position_ids = (mask.cumsum(1) - 1).clamp(min=0)
    return Experience(
        input_ids=torch.cat([prompts, responses], 1),
        attention_mask=mask,
        position_ids=position_ids,
        response_mask=response_mask.float(),
        prompt_width=P,
    )


def _accepts(model: nn.Module, name: str) -> bool:
    """Whether the transformers model under ``model``'s wrappers (DDP, PEFT, whose own forward
    passes its keyword arguments on) takes ``name``."""
    return _forward_takes(type(shared_prompt.base_model(model)), name)


@functools.cache
def _forward_takes(cls: type, name: str) -> bool:
    """Whether ``cls.forward`` has a parameter ``name`` (read once per class: it is on the hot path)."""
    try:
        return name in inspect.signature(cls.forward).parameters
    except (TypeError, ValueError):
        return False


def response_logits(model: nn.Module, exp: Experience, head: nn.Module | None = None):
    """The model's logits at the positions that predict each response token, from the packed
    groups when ``exp`` has them.  Shape: (B, R, V)

    With ``head`` (a ``ValueHead`` on the policy's own transformer, critic.init=shared), the same
    forward also gives V(s_t) from the last hidden state at those positions: returns
    (logits (B, R, V), values (B, R)). The hidden state is the LM head's input, caught by a hook:
    after the model's final norm, only the columns the logits are kept for, and no other layer's
    hidden states held (as ``output_hidden_states`` would).
    """
    R, g = exp.response_mask.shape[1], exp.groups
    kwargs = {"use_cache": False}  # a scoring/training forward: building a KV cache is wasted work
    input_ids, attention_mask, position_ids, read = _inputs(exp, model)
    if _accepts(model, "logits_to_keep"):  # the LM head runs on the columns read only
        keep = g.keep if g is not None else R + 1
        kwargs["logits_to_keep"] = last_positions(input_ids.shape[1], keep, input_ids.device)
    caught: list[torch.Tensor] = []
    if head is not None:
        lm_head = getattr(model, "module", model).get_output_embeddings()
        hook = lm_head.register_forward_pre_hook(lambda _module, args: caught.append(args[0]))
    try:
        with training_attention(input_ids):
            out = model(
                input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, **kwargs
            )
    finally:
        if head is not None:
            hook.remove()
    if head is None:
        return read(out.logits)
    return read(out.logits), head(read(caught[-1])).float()


def _inputs(exp: Experience, model: nn.Module):
    """What ``model`` reads for ``exp`` (its rows, or its packed groups with their 4D mask), and
    how to read, from an output for the last W columns of those inputs, the columns that predict
    each response token: (input_ids, attention_mask, position_ids, read)."""
    g = exp.groups
    if g is not None:
        return g.input_ids, g.attention_mask(model), g.position_ids, g.read
    R = exp.response_mask.shape[1]

    def read(x: torch.Tensor) -> torch.Tensor:  # column P - 1 on, of the full sequence
        start = x.shape[1] - R - 1
        return x[:, start : start + R]

    return exp.input_ids, exp.attention_mask, exp.position_ids, read


def response_tokens(exp: Experience) -> torch.Tensor:
    """The response token ids.  Shape: (B, R)"""
    R = exp.response_mask.shape[1]
    return exp.input_ids[:, exp.input_ids.shape[1] - R :]


class TokenValueModel(nn.Module):
    """Per-token values V(s_t) from a sequence-classification model (a reward model, say).

    ``AutoModelForSequenceClassification`` pools its head at the last token; a critic needs the
    head at every position, so this runs the model's transformer body and applies the same head
    (``score``) to all hidden states. Wrapping it as one module keeps DDP's gradient hooks.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        inner = model.get_base_model() if hasattr(model, "get_base_model") else model
        self.body = getattr(inner, inner.base_model_prefix, None)
        self.head = score_head(inner)
        if self.body is None or not isinstance(self.head, nn.Linear):
            raise ValueError(
                f"{type(inner).__name__} has no transformer body + linear `score` head; "
                "use critic.init=policy or another reward model class"
            )

    @property
    def _no_split_modules(self) -> list[str]:
        """the wrapped model's transformer blocks: FSDP2 shards the critic block by block"""
        return list(getattr(self.model, "_no_split_modules", None) or [])

    def forward(self, input_ids, attention_mask, position_ids) -> torch.Tensor:
        """Shape: (B, T) -> (B, T)"""
        if _is_fsdp(self.model):
            # a reward model sharded for inference (FSDP2): only its own forward gathers the
            # parameters outside the blocks (embeddings, final norm, head), so run it whole
            return head_outputs(self.model, self.head, input_ids, attention_mask, position_ids)
        hidden = self.body(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False
        ).last_hidden_state
        return self.head(hidden).squeeze(-1)


def head_outputs(
    model: nn.Module,
    head: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    position_ids: torch.Tensor,
) -> torch.Tensor:
    """A sequence-classification model's score head at every position, caught before the model
    pools it at each row's last token: the model's own forward runs, through whatever wraps it
    (DDP, FSDP2, DeepSpeed), so gradients and sharded parameters are handled as in any forward.

    Shape: (B, T) -> (B, T)
    """
    caught: list[torch.Tensor] = []
    hook = head.register_forward_hook(lambda _module, _args, out: caught.append(out))
    try:
        model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False)
    finally:
        hook.remove()
    return caught[-1].squeeze(-1)


def score_head(model: nn.Module) -> nn.Module | None:
    """The score head (``score`` or ``classifier``) of the sequence-classification model under
    ``model``'s wrappers; None when it has neither."""
    base = shared_prompt.base_model(model)
    return getattr(base, "score", None) or getattr(base, "classifier", None)


def _is_fsdp(model: nn.Module) -> bool:
    """True when ``model`` is an FSDP2 unit (``fully_shard`` applied to it)."""
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


class ValueHead(nn.Module):
    """critic.init=shared: V(s_t) as a linear read of the policy's last hidden state: one model,
    one forward and backward for both (the value-head models of trlx and early TRL). Stiennon et
    al. 2020 kept the value function separate because its updates can damage the pretrained
    policy early on; so the head starts at zero (the first value-loss gradients move the head
    only) and the recipe weights its loss by critic.vf_coef.

    Shape: (..., hidden) -> (...)
    """

    def __init__(self, hidden: int):
        super().__init__()
        self.score = nn.Linear(hidden, 1)
        nn.init.zeros_(self.score.weight)
        nn.init.zeros_(self.score.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        # the head keeps float32 weights whatever the body's dtype (model.dtype=bfloat16): it is
        # one row, and a value regressed in bf16 loses its low bits; under autocast it runs in bf16
        return self.score(hidden.to(self.score.weight.dtype)).squeeze(-1)


def response_values(critic: nn.Module, exp: Experience) -> torch.Tensor:
    """V(s_t) for each response token t, read at the column that precedes it (in the packed
    groups when ``exp`` has them).  Shape: (B, R)"""
    input_ids, attention_mask, position_ids, read = _inputs(exp, critic)
    with training_attention(input_ids):
        values = critic(input_ids, attention_mask, position_ids)
    return read(values).float()
