"""The policy behind `rlhf serve`: chat messages in, text deltas out, one token at a time.

Sampling runs on the rollout engine's own decoders (``rlhf.rollout.decoders``: one prefill, its
cache rows shared by the ``n`` choices, then one decode step per token) and its sampling step
(``rlhf.rollout.sampling.sample_step``), so a served model samples exactly as it did in RL.
Log-probs follow the engine's convention: log softmax(logits / temperature) at the sampled token
(temperature 1 when greedy), before top-p; ``top_logprobs`` lists the most likely tokens of that
same distribution.

Text is released as it becomes final: a suffix that could still grow into a stop string is held
back, and so is a trailing partial UTF-8 character ("\\ufffd"), so a stream never shows text that
the complete reply would not contain. As in OpenAI's API, the stop string itself is not returned.
One request decodes at a time (the decoder holds one KV cache); others wait on a lock. A request
carries a stop flag (``rlhf.serve.worker``): set, it frees the lock within one decode step, or
stops waiting for it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from rlhf.rollout.decoders import build_decoder
from rlhf.rollout.sampling import sample_step


@dataclass
class GenRequest:
    prompt_ids: list[int]
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    n: int = 1
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    logprobs: bool = False
    top_logprobs: int = 0


@dataclass
class TokenLogprob:
    token: str
    logprob: float
    top: list[tuple[str, float]]

    def to_json(self) -> dict:
        def entry(text: str, lp: float) -> dict:
            return {"token": text, "logprob": lp, "bytes": list(text.encode("utf-8"))}

        return {**entry(self.token, self.logprob), "top_logprobs": [entry(t, lp) for t, lp in self.top]}


@dataclass
class Delta:
    """What one choice adds in one decode step."""

    index: int
    text: str
    logprobs: list[TokenLogprob]
    finish_reason: str | None = None
    """None while running; "stop" (EOS or a stop string) or "length" (max_tokens) at the end"""
    tokens: int = 1
    """tokens generated (EOS included): 1 per step; the sum in ``complete``'s result"""


def held_back(text: str, stops: list[str]) -> int:
    """How many trailing characters of ``text`` must wait: the longest suffix that begins a stop
    string, and a trailing replacement character (an incomplete UTF-8 sequence)."""
    hold = len(text) - len(text.rstrip("\ufffd"))
    for s in stops:
        for k in range(min(len(s) - 1, len(text)), 0, -1):
            if text.endswith(s[:k]):
                hold = max(hold, k)
                break
    return hold


class _Row:
    """Detokenization state of one choice."""

    def __init__(self, index: int):
        self.index, self.ids, self.sent, self.done = index, [], 0, False


class ChatModel:
    def __init__(self, model, tokenizer, name: str, prompt_format: str = "auto"):
        self.model, self.tokenizer, self.name = model.eval(), tokenizer, name
        has_template = bool(getattr(tokenizer, "chat_template", None))
        if prompt_format == "chat" and not has_template:
            raise ValueError("--prompt-format chat: the tokenizer has no chat template")
        self.chat = prompt_format == "chat" or (prompt_format == "auto" and has_template)
        self.decoder = build_decoder(model, model.dtype)
        self.context = getattr(model.config, "max_position_embeddings", None) or 2048
        self.eos = tokenizer.eos_token_id
        self.lock = threading.Lock()

    def encode(self, messages: list[dict[str, str]]) -> list[int]:
        """Token ids of the conversation, ending where the assistant's reply begins. Without a chat
        template (``prompt_format`` raw) the message contents are joined as they are."""
        if self.chat:
            text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            return self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return self.tokenizer("".join(m["content"] for m in messages))["input_ids"]

    def _token_text(self, token: int) -> str:
        return self.tokenizer.decode([token], skip_special_tokens=False)

    def _release(self, row: _Row, req: GenRequest, final: str | None) -> tuple[str, str | None]:
        """(new text to send, finish reason) after a token was appended to ``row``."""
        text = self.tokenizer.decode(row.ids, skip_special_tokens=True)
        hits = [i for s in req.stop if (i := text.find(s)) >= 0]
        if hits:
            end, final = min(hits), "stop"
        elif final is not None:
            end = len(text)
        else:
            end = len(text) - held_back(text, req.stop)
        new, row.sent = text[row.sent : max(end, row.sent)], max(end, row.sent)
        return new, final

    def _acquire(self, stop: threading.Event | None) -> bool:
        """Take the model's lock, giving up (False) once ``stop`` is set."""
        while not self.lock.acquire(timeout=0.05):
            if stop is not None and stop.is_set():
                return False
        if stop is not None and stop.is_set():
            self.lock.release()
            return False
        return True

    def stream(self, req: GenRequest, stop: threading.Event | None = None) -> Iterator[list[Delta]]:
        """Yield, per decode step, the deltas of the choices still running. Holds the model's lock
        from the first step until it finishes, ``stop`` is set (checked after every step), or the
        generator is closed."""
        if not self._acquire(stop):
            return
        try:
            yield from self._decode(req, stop)
        finally:
            self.lock.release()

    @torch.no_grad()
    def _decode(self, req: GenRequest, stop: threading.Event | None) -> Iterator[list[Delta]]:
        dec = self.decoder
        ids = torch.tensor([req.prompt_ids])  # (1, T)
        logits = dec.prefill(ids, torch.ones_like(ids), req.max_tokens, repeats=req.n)  # (n, V)
        seed = req.seed if req.seed is not None else int.from_bytes(os.urandom(4), "little")
        generator = torch.Generator(dec.device).manual_seed(seed)
        rows = [_Row(i) for i in range(req.n)]
        active = list(range(req.n))
        for step in range(req.max_tokens):
            tokens, logp = sample_step(logits, req.temperature, 0, req.top_p, None, generator)
            top = None
            if req.logprobs and req.top_logprobs > 0:
                scaled = logits / req.temperature if req.temperature > 0 else logits
                top = torch.log_softmax(scaled, -1).topk(req.top_logprobs, -1)  # (B, k)
            deltas, keep = [], []
            for b, r in enumerate(active):
                row, tok = rows[r], int(tokens[b])
                last = step == req.max_tokens - 1
                lps = []
                if tok == self.eos:
                    text, finish = self._release(row, req, "stop")
                else:
                    row.ids.append(tok)
                    text, finish = self._release(row, req, "length" if last else None)
                    if req.logprobs:
                        alts = (
                            []
                            if top is None
                            else [
                                (self._token_text(i), float(v))
                                for v, i in zip(top.values[b].tolist(), top.indices[b].tolist())
                            ]
                        )
                        lps.append(TokenLogprob(self._token_text(tok), float(logp[b]), alts))
                deltas.append(Delta(r, text, lps, finish))
                if finish is None:
                    keep.append(b)
            yield deltas
            if not keep or (stop is not None and stop.is_set()):
                return
            if len(keep) < len(active):
                dec.select(torch.tensor(keep, device=dec.device))
                active = [active[b] for b in keep]
                tokens = tokens[keep]
            logits = dec.decode(tokens)

    def complete(self, req: GenRequest) -> list[Delta]:
        """The whole reply of each choice as one Delta (text, all log-probs, finish reason)."""
        return merge_deltas(list(self.stream(req)), req.n)


def merge_deltas(steps: list[list[Delta]], n: int) -> list[Delta]:
    """The whole reply of each of ``n`` choices as one Delta (text, log-probs, finish reason,
    token count) from the per-step deltas."""
    out = [Delta(i, "", [], None, 0) for i in range(n)]
    for deltas in steps:
        for d in deltas:
            o = out[d.index]
            o.text += d.text
            o.logprobs += d.logprobs
            o.finish_reason = d.finish_reason or o.finish_reason
            o.tokens += d.tokens
    return out


def load_chat_model(
    path: str,
    name: str | None = None,
    dtype: str = "float32",
    device: str = "auto",
    prompt_format: str = "auto",
) -> ChatModel:
    """Load a Hugging Face model directory (or hub id) for serving."""
    from rlhf.models.loading import load_policy, load_tokenizer
    from rlhf.sections import ModelConfig

    tokenizer = load_tokenizer(path, "--model")
    model = load_policy(ModelConfig(path=path, dtype=dtype), tokenizer, "--model")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model = model.to(device)
    if name is None:
        from pathlib import Path

        p = Path(path)
        name = p.parent.name if p.name in ("final", "adapter") and p.parent.name else p.name or path
    return ChatModel(model, tokenizer, name, prompt_format)
