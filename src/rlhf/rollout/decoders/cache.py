"""A preallocated KV cache written in place, and the attention the fast decoders share.

Layout per layer: keys and values (rows, kv_heads, max_len, head_dim). Rows are the outermost
dimension, so the active rows are always the first ``rows`` of the buffer: dropping finished rows
moves the survivors to the front (one gather of the filled part), no new allocation.

Left padding: a row's pad positions get -inf in ``bias`` (rows, max_len), an additive attention
bias shared by all layers and heads; positions not yet written are never read (attention reads
``[:length]``). ``pos`` holds each row's next position id, counted over its real tokens only
(cumsum of the mask - 1, as Hugging Face ``generate`` does), so output matches HF exactly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class KVCache:
    def __init__(
        self,
        layers: int,
        rows: int,
        kv_heads: int,
        max_len: int,
        head_dim: int,
        dtype: torch.dtype,
        device: torch.device,
    ):
        shape = (rows, kv_heads, max_len, head_dim)
        self.k = [torch.empty(shape, dtype=dtype, device=device) for _ in range(layers)]
        self.v = [torch.empty(shape, dtype=dtype, device=device) for _ in range(layers)]
        self.bias = torch.zeros(rows, max_len, dtype=dtype, device=device)
        self.pos = torch.zeros(rows, dtype=torch.long, device=device)
        self.rows = 0
        """active rows"""
        self.padded = False
        """some row has left padding (else the bias is all zeros and skipped)"""
        self.length = 0
        """filled positions (prompt width + tokens decoded so far)"""

    @property
    def capacity(self) -> int:
        return self.k[0].shape[0]

    def start(self, mask: torch.Tensor) -> torch.Tensor:
        """Begin a batch of left-padded prompts; returns their position ids.

        Shape: mask (B, T) of 0/1 -> positions (B, T)
        """
        b, t = mask.shape
        self.rows, self.length = b, 0
        self.padded = bool((mask == 0).any())
        self.bias[:b].zero_()
        self.bias[:b, :t].masked_fill_(mask == 0, float("-inf"))
        pos = (mask.cumsum(-1) - 1).clamp(min=0)  # (B, T)
        self.pos[:b] = pos[:, -1] + 1
        self._views()
        return pos

    def select(self, rows: torch.Tensor) -> None:
        """Keep (and reorder, or repeat) the given active rows: row i becomes old row rows[i].

        Shape: rows (B',), B' <= capacity
        """
        b, t = rows.shape[0], self.length
        if b > self.capacity:
            raise ValueError(f"{b} rows do not fit a cache of {self.capacity}")
        for buf in (*self.k, *self.v):
            buf[:b, :, :t] = buf[rows, :, :t]  # the gather copies first, so overlap is safe
        self.bias[:b, :t] = self.bias[rows, :t]
        self.pos[:b] = self.pos[rows]
        self.rows = b
        self._views()

    def _views(self) -> None:
        """Views of the active rows, made once per batch change rather than per layer and step:
        4-d ones to write into, and (rows * Hkv, max_len, D) ones to read (the active rows are
        the buffer's first ones, so rows and heads merge without the copy ``torch.matmul`` makes
        of 4-d slices)."""
        b, (_, hkv, s, d) = self.rows, self.k[0].shape
        self.k4, self.v4 = [k[:b] for k in self.k], [v[:b] for v in self.v]
        self.k3, self.v3 = [k.view(b * hkv, s, d) for k in self.k4], [v.view(b * hkv, s, d) for v in self.v4]

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write keys/values after the filled positions; return the layer's keys and values so far.

        Shape: k, v (B, Hkv, T_new, D) -> (B * Hkv, length + T_new, D) each, views of the cache.
        ``length`` moves on in ``advance`` once every layer has written.
        """
        t0, t1 = self.length, self.length + k.shape[2]
        self.k4[layer][:, :, t0:t1] = k
        self.v4[layer][:, :, t0:t1] = v
        return self.k3[layer][:, :t1], self.v3[layer][:, :t1]

    def attention_bias(self) -> torch.Tensor | None:
        """The additive bias over the keys a decode step reads (filled + the new one), or None when
        no row has padding (one op less a layer).  Shape: (B, length + 1)"""
        return self.bias[: self.rows, : self.length + 1] if self.padded else None

    def advance(self, tokens: int) -> None:
        """Every layer wrote ``tokens`` new positions: the prompt (prefill), or one decoded token,
        which also moves each row's next position id on."""
        self.length += tokens
        if self.length > tokens:
            self.pos[: self.rows] += 1


def attention_dtype(dtype: torch.dtype, device: torch.device) -> torch.dtype:
    """The dtype of the cache and of attention: float32 on CPU, where one-query bf16 attention
    runs 2-3x slower than fp32 (small batched matmuls without bf16 kernels); else ``dtype``.
    Weights and their matmuls stay in ``dtype``."""
    return torch.float32 if device.type == "cpu" else dtype


def reserve(
    cache: KVCache | None,
    layers: int,
    rows: int,
    kv_heads: int,
    max_len: int,
    head_dim: int,
    dtype: torch.dtype,
    device: torch.device,
) -> KVCache:
    """``cache`` if it holds ``rows`` x ``max_len``, else a larger one. Grown, never shrunk: later
    calls reuse the same buffers, already paged in."""
    if cache is not None and cache.capacity >= rows and cache.k[0].shape[2] >= max_len:
        return cache
    if cache is not None:
        rows, max_len = max(rows, cache.capacity), max(max_len, cache.k[0].shape[2])
    return KVCache(layers, rows, kv_heads, max_len, head_dim, dtype, device)


def decode_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None):
    """Attention of one new query per row over its cached keys, grouped-query aware. The
    1/sqrt(head_dim) scale is already folded into q (the decoders scale q's weights).

    q (B, H, D); k, v (B * Hkv, T, D) from ``KVCache.append``; bias (B, T) additive or None
    -> (B, H * D). With H = G * Hkv, query head h reads kv head h // G (as HF's ``repeat_kv``):
    viewing the queries as (B * Hkv, G, D) lets one batched matmul serve all G heads.
    Two ``bmm`` on the cache's strided views beat ``scaled_dot_product_attention`` (about 20%)
    and ``matmul`` on 4-d slices (which copies them) on CPU at these sizes (16 rows, 8 heads of
    32, 33..64 keys); bf16 bmm is slow on CPU, so the cache is fp32 there (``attention_dtype``).
    """
    b, h, d = q.shape
    bh = k.shape[0]
    g = h * b // bh
    scores = torch.bmm(q.reshape(bh, g, d), k.transpose(1, 2))  # (B * Hkv, G, T)
    if bias is not None:
        scores.view(b, bh // b, g, -1).add_(bias.view(b, 1, 1, -1))
    return torch.bmm(torch.softmax(scores, dim=-1), v).view(b, h * d)  # (B * Hkv, G, D) -> (B, H * D)


HAND_PREFILL_MAX = 256
"""prompts up to this many tokens use the hand attention on CPU (it holds B x H x T x T scores)"""


def prefill_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor):
    """Causal attention over left-padded prompts (scale folded into q, as above).

    q (B, H, T, D); k, v (B, Hkv, T, D); mask (B, T) of 0/1 -> (B, T, H * D).
    A pad query may attend to itself, so no softmax row is empty (NaN); pad outputs are never
    read, and pad keys are masked out for every real query. On CPU, short prompts use two
    matmuls, 1.5x faster than ``scaled_dot_product_attention`` with a mask at 16 x 32 tokens;
    longer ones (and GPUs) use SDPA, which never holds the T x T scores.
    """
    b, h, t, d = q.shape
    hkv = k.shape[1]
    causal = torch.ones(t, t, dtype=torch.bool, device=q.device).tril()  # (T, T)
    allowed = (causal & mask.bool()[:, None, None, :]) | torch.eye(t, dtype=torch.bool, device=q.device)
    if q.device.type != "cpu" or t > HAND_PREFILL_MAX:
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, scale=1.0, enable_gqa=hkv != h)
        return out.transpose(1, 2).reshape(b, t, h * d)
    g = h // hkv  # query heads per kv head, as in decode_attention
    scores = torch.matmul(q.reshape(b, hkv, g * t, d), k.transpose(-1, -2)).view(b, hkv, g, t, t)
    scores.masked_fill_(~allowed.unsqueeze(1), float("-inf"))  # allowed (B, 1, 1, T, T)
    out = torch.matmul(torch.softmax(scores, dim=-1).view(b, hkv, g * t, t), v)  # (B, Hkv, G*T, D)
    return out.view(b, h, t, d).transpose(1, 2).reshape(b, t, h * d)


def prefill_logits(cache: KVCache, lm_head, x: torch.Tensor, t: int, repeats: int) -> torch.Tensor:
    """End a prefill of ``t`` tokens: next-token logits from the last hidden states ``x`` (B, d),
    and with ``repeats`` > 1 (prefix sharing) every prompt's cache rows copied that many times.

    Shape: (B, d) -> (B * repeats, V) float32
    """
    cache.advance(t)
    logits = lm_head(x).float()  # (B, V)
    if repeats > 1:  # one prefill per prompt, its cache rows copied n times
        cache.select(torch.arange(x.shape[0], device=x.device).repeat_interleave(repeats))
        logits = logits.repeat_interleave(repeats, 0)
    return logits
