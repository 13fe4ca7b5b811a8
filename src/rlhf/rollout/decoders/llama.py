"""Llama-family decoders (Llama, Qwen2, Mistral): RMSNorm, RoPE, grouped-query attention, SwiGLU.

Matches ``transformers``' LlamaForCausalLM / Qwen2ForCausalLM / MistralForCausalLM to fp32
rounding. Where it departs in form (not in math):
- q, k and v are one matmul against the three weights concatenated (Qwen2's q/k/v biases too),
  with the attention scale folded into q's rows (RoPE is linear, so scaling before it is exact);
- SwiGLU is up(x) * silu(gate(x)) with the SiLU and the product fused into the two matmuls, and
  residual adds fused into o_proj / down_proj (``decoders.linear``);
- RoPE is applied to q and k together as x * cos + roll(x, D/2) * sin', with sin' = (-sin, sin)
  on the two halves, which equals HF's x * cos + rotate_half(x) * sin in three ops;
- grouped-query attention reads each kv head once for its G query heads (no ``repeat_kv``).
cos/sin come from the model's own ``rotary_emb`` (``inv_freq`` and ``attention_scaling``), so
static RoPE scalings (linear, llama3, yarn) carry over; length-dependent ones fall back.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F

from rlhf.rollout.decoders.cache import (
    attention_dtype,
    decode_attention,
    prefill_attention,
    prefill_logits,
    reserve,
)
from rlhf.rollout.decoders.linear import Weights
from rlhf.rollout.decoders.lora import linear_weights, lora_base


def _cat(*ts: torch.Tensor | None) -> torch.Tensor | None:
    return None if ts[0] is None else torch.cat(ts, 0)


def sources(model) -> tuple[Iterator[tuple[str, tuple]], dict[str, torch.Tensor]]:
    """The model's weights in decoder form: linears as (name, (weight (out, in), bias or None)),
    the attention scale folded into q's rows; and the norms and embeddings. A LoRA model's
    adapters are merged in (decoders.lora)."""
    model = lora_base(model)
    m = model.model
    tensors = {"embed": m.embed_tokens.weight, "norm": m.norm.weight}
    for i, layer in enumerate(m.layers):
        tensors[f"{i}.in_norm"] = layer.input_layernorm.weight
        tensors[f"{i}.post_norm"] = layer.post_attention_layernorm.weight
    return _linears(model), tensors


def _linears(model) -> Iterator[tuple[str, tuple]]:
    """The linears one at a time, each computed when it is taken: a LoRA weight merged in float32
    is dropped once the next one is taken, so the merges reuse the memory of the ones before.
    Built all at once, SmolLM2-135M's merged weights were 540 MB of fresh pages every sync, each
    page zero-filled by the kernel on first touch."""
    yield "lm_head", (model.lm_head.weight, None)  # (V, d)
    for i, layer in enumerate(model.model.layers):
        at, mlp = layer.self_attn, layer.mlp
        s = at.scaling
        (q_w, q_b), (k_w, k_b), (v_w, v_b) = (linear_weights(x) for x in (at.q_proj, at.k_proj, at.v_proj))
        dtype = torch.promote_types(torch.promote_types(q_w.dtype, k_w.dtype), v_w.dtype)
        qkv = torch.cat([(q_w * s).to(dtype), k_w.to(dtype), v_w.to(dtype)], 0)
        del q_w, k_w, v_w
        yield f"{i}.qkv", (qkv, _cat(None if q_b is None else q_b * s, k_b, v_b))
        del qkv
        for name, lin in (
            ("o", at.o_proj),
            ("gate", mlp.gate_proj),
            ("up", mlp.up_proj),
            ("down", mlp.down_proj),
        ):
            yield f"{i}.{name}", linear_weights(lin)


class LlamaDecoder:
    name = "llama"

    @staticmethod
    def unsupported(config) -> str | None:
        """Why this decoder cannot run ``config`` (None: it can)."""
        if config.hidden_act != "silu":
            return f"activation {config.hidden_act!r}"
        rope = (getattr(config, "rope_parameters", None) or {}).get("rope_type", "default")
        if rope in ("dynamic", "longrope"):
            return f"length-dependent RoPE {rope!r}"
        if getattr(config, "partial_rotary_factor", 1.0) != 1.0:
            return "partial rotary embeddings"
        window = getattr(config, "sliding_window", None)
        sliding = "sliding_attention" in (getattr(config, "layer_types", None) or ["sliding_attention"])
        if window and sliding and window < config.max_position_embeddings:
            return f"sliding-window attention ({window} < {config.max_position_embeddings} positions)"
        return None

    def __init__(self, model, dtype: torch.dtype):
        model = lora_base(model)
        cfg = model.config
        self.d, self.heads, self.kv_heads = cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads
        self.head_dim = model.model.layers[0].self_attn.head_dim
        self.eps = cfg.rms_norm_eps
        self.device, self.dtype = model.device, dtype
        self.attn_dtype = attention_dtype(dtype, model.device)
        self.weights = Weights(*sources(model), dtype, model.device)
        self.lin, self.t = self.weights.lin, self.weights.t
        names = ("qkv", "o", "gate", "up", "down")
        self.layers = [
            (*(self.lin[f"{i}.{k}"] for k in names), self.t[f"{i}.in_norm"], self.t[f"{i}.post_norm"])
            for i in range(cfg.num_hidden_layers)
        ]
        rotary = model.model.rotary_emb
        self.inv_freq = rotary.inv_freq.detach().float().to(model.device)  # (D/2,)
        self.rope_scaling = float(rotary.attention_scaling)
        self.cos = self.sin = torch.zeros(0, self.head_dim, dtype=self.attn_dtype, device=model.device)
        self.cache = None

    def load(self, model) -> None:
        self.weights.load(*sources(model))

    def _rope_tables(self, length: int) -> None:
        """cos and signed sin for positions [0, length), as HF's rotary embedding computes them."""
        if self.cos.shape[0] >= length:
            return
        pos = torch.arange(length, device=self.device, dtype=torch.float)
        freqs = pos[:, None] * self.inv_freq  # (L, D/2)
        cos, sin = freqs.cos() * self.rope_scaling, freqs.sin() * self.rope_scaling
        self.cos = torch.cat([cos, cos], -1).to(self.attn_dtype)  # (L, D)
        self.sin = torch.cat([-sin, sin], -1).to(self.attn_dtype)

    def _rope(self, qk: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """Shape: qk (..., heads, Dh), cos/sin broadcastable to it"""
        return torch.addcmul(qk * cos, qk.roll(self.head_dim // 2, -1), sin)

    def _blocks(self, x: torch.Tensor, attend, prompt: tuple[int, int] | None = None) -> torch.Tensor:
        """The decoder layers on flattened tokens.  Shape: (N, d) -> (N, d) after the final norm.

        ``attend(layer, qkv (N, (H + 2 Hkv) Dh)) -> (N, H Dh)`` applies RoPE and attention. With
        ``prompt`` = (B, T) (prefill), the last layer goes on past attention with each row's last
        position only, the one sampled from: (B * T, d) -> (B, d).
        """
        d, eps, last = (self.d,), self.eps, len(self.layers) - 1
        for i, (qkv, o, gate, up, down, in_norm, post_norm) in enumerate(self.layers):
            a = attend(i, qkv(F.rms_norm(x, d, in_norm, eps)))
            if i == last and prompt is not None:
                x, a = x.view(*prompt, -1)[:, -1], a.view(*prompt, -1)[:, -1]
            x = o.add(a, x)  # the residual fused in
            a = F.rms_norm(x, d, post_norm, eps)
            x = down.add(up.mul(a, gate(a, "silu")), x)
        return F.rms_norm(x, d, self.t["norm"], eps)

    def prefill(
        self, ids: torch.Tensor, mask: torch.Tensor, max_new_tokens: int, repeats: int = 1
    ) -> torch.Tensor:
        b, t = ids.shape
        ids, mask = ids.to(self.device), mask.to(self.device)
        cache = self.cache = reserve(
            self.cache, len(self.layers), b * repeats, self.kv_heads, t + max_new_tokens, self.head_dim,
            self.attn_dtype, self.device,
        )  # fmt: skip
        pos = cache.start(mask)  # (B, T)
        self._rope_tables(t + max_new_tokens)
        cos, sin = self.cos[pos].unsqueeze(2), self.sin[pos].unsqueeze(2)  # (B, T, 1, Dh)
        h, hkv, dh = self.heads, self.kv_heads, self.head_dim

        def attend(i: int, qkv: torch.Tensor) -> torch.Tensor:
            qkv = qkv.to(self.attn_dtype).view(b, t, h + 2 * hkv, dh)
            qk = self._rope(qkv[:, :, : h + hkv], cos, sin)  # (B, T, H + Hkv, Dh)
            q, k = qk[:, :, :h].transpose(1, 2), qk[:, :, h:].transpose(1, 2)  # (B, H | Hkv, T, Dh)
            v = qkv[:, :, h + hkv :].transpose(1, 2)
            cache.append(i, k, v)
            return prefill_attention(q, k, v, mask).view(b * t, h * dh).to(self.dtype)

        x = self.t["embed"][ids].view(b * t, self.d)
        x = self._blocks(x, attend, (b, t))  # (B, d): only the last position is sampled from
        return prefill_logits(cache, self.lin["lm_head"], x, t, repeats)

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        cache = self.cache
        b, h, hkv, dh = tokens.shape[0], self.heads, self.kv_heads, self.head_dim
        pos = cache.pos[:b]
        cos, sin = self.cos[pos][:, None, None], self.sin[pos][:, None, None]  # (B, 1, 1, Dh), for all layers
        bias = cache.attention_bias()

        cast = self.attn_dtype != self.dtype  # skipping no-op casts saves two calls a layer

        def attend(i: int, qkv: torch.Tensor) -> torch.Tensor:
            qkv = (qkv.to(self.attn_dtype) if cast else qkv).view(b, h + 2 * hkv, 1, dh)
            qk = self._rope(qkv[:, : h + hkv], cos, sin)  # (B, H + Hkv, 1, Dh)
            keys, values = cache.append(i, qk[:, h:], qkv[:, h + hkv :])
            out = decode_attention(qk[:, :h, 0], keys, values, bias)
            return out.to(self.dtype) if cast else out

        x = self._blocks(self.t["embed"][tokens], attend)
        cache.advance(1)
        return self.lin["lm_head"](x).float()

    def select(self, rows: torch.Tensor) -> None:
        self.cache.select(rows.to(self.device))
