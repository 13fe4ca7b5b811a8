"""Llama-family decoders (Llama, Qwen2, Mistral): RMSNorm, RoPE, grouped-query attention, SwiGLU.

Matches ``transformers``' LlamaForCausalLM / Qwen2ForCausalLM / MistralForCausalLM to fp32
rounding. Where it departs in form (not in math):
- q, k and v are one matmul against the three weights concatenated (Qwen2's q/k/v biases too);
  gate and up are one matmul; every weight is stored pre-transposed as (in, out).
- RoPE is applied to q and k together as x * cos + roll(x, D/2) * sin', with sin' = (-sin, sin)
  on the two halves, which equals HF's x * cos + rotate_half(x) * sin in three ops.
- Grouped-query attention reads each kv head once for its G query heads (no ``repeat_kv``).
cos/sin come from the model's own ``rotary_emb`` (``inv_freq`` and ``attention_scaling``), so
static RoPE scalings (linear, llama3, yarn) carry over; length-dependent ones fall back.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rlhf.rollout.decoders.cache import KVCache, attention_dtype, decode_attention, prefill_attention, reserve

LAYER = ("in_norm", "qkv_w", "qkv_b", "o_w", "o_b", "post_norm", "gu_w", "gu_b", "down_w", "down_b")


def _cat(*ts: torch.Tensor | None) -> torch.Tensor | None:
    return None if ts[0] is None else torch.cat(ts, 0)


def source_weights(model) -> dict[str, torch.Tensor | None]:
    """The model's weights in this decoder's layout: matmuls as (in, out); absent biases None."""
    m = model.model
    out: dict[str, torch.Tensor | None] = {
        "embed": m.embed_tokens.weight,
        "norm": m.norm.weight,
        "lm_head": model.lm_head.weight,  # (V, d)
    }
    for i, layer in enumerate(m.layers):
        at, mlp = layer.self_attn, layer.mlp
        out |= {
            f"{i}.in_norm": layer.input_layernorm.weight,
            f"{i}.qkv_w": torch.cat([at.q_proj.weight, at.k_proj.weight, at.v_proj.weight], 0).t(),
            f"{i}.qkv_b": _cat(at.q_proj.bias, at.k_proj.bias, at.v_proj.bias),
            f"{i}.o_w": at.o_proj.weight.t(),
            f"{i}.o_b": at.o_proj.bias,
            f"{i}.post_norm": layer.post_attention_layernorm.weight,
            f"{i}.gu_w": torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight], 0).t(),
            f"{i}.gu_b": _cat(mlp.gate_proj.bias, mlp.up_proj.bias),
            f"{i}.down_w": mlp.down_proj.weight.t(),
            f"{i}.down_b": mlp.down_proj.bias,
        }
    return out


def _linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    return torch.mm(x, w) if b is None else torch.addmm(b, x, w)


def _residual(x: torch.Tensor, h: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    x = torch.addmm(x, h, w)  # the residual rides in as addmm's bias
    return x if b is None else x.add_(b)


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
        cfg = model.config
        attn = model.model.layers[0].self_attn
        self.d, self.heads, self.kv_heads = cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads
        self.head_dim = attn.head_dim
        self.scale = attn.scaling
        self.eps = cfg.rms_norm_eps
        self.inter = cfg.intermediate_size
        self.device, self.dtype = model.device, dtype
        self.attn_dtype = attention_dtype(dtype, model.device)
        self.w = {
            k: None if v is None else v.detach().to(model.device, dtype, copy=True).contiguous()
            for k, v in source_weights(model).items()
        }
        self.layers = [tuple(self.w[f"{i}.{k}"] for k in LAYER) for i in range(cfg.num_hidden_layers)]
        rotary = model.model.rotary_emb
        self.inv_freq = rotary.inv_freq.detach().float().to(model.device)  # (D/2,)
        self.rope_scaling = float(rotary.attention_scaling)
        self.cos = self.sin = torch.zeros(0, self.head_dim, dtype=self.attn_dtype, device=model.device)
        self.cache: KVCache | None = None

    @torch.no_grad()
    def load(self, model) -> None:
        for k, v in source_weights(model).items():
            if v is not None:
                self.w[k].copy_(v)

    def _rope_tables(self, length: int) -> None:
        """cos and signed sin for positions [0, length), as HF's rotary embedding computes them."""
        if self.cos.shape[0] >= length:
            return
        freqs = (
            torch.arange(length, device=self.device, dtype=torch.float)[:, None] * self.inv_freq
        )  # (L, D/2)
        cos, sin = freqs.cos() * self.rope_scaling, freqs.sin() * self.rope_scaling
        self.cos = torch.cat([cos, cos], -1).to(self.attn_dtype)  # (L, D)
        self.sin = torch.cat([-sin, sin], -1).to(self.attn_dtype)

    def _blocks(self, x: torch.Tensor, attend) -> torch.Tensor:
        """The decoder layers on flattened tokens.  Shape: (N, d) -> (N, d) after the final norm.

        ``attend(layer, qkv (N, (H + 2 Hkv) Dh)) -> (N, H Dh)`` applies RoPE and attention.
        """
        d, eps, inter = (self.d,), self.eps, self.inter
        for i, (in_norm, qkv_w, qkv_b, o_w, o_b, post_norm, gu_w, gu_b, down_w, down_b) in enumerate(
            self.layers
        ):
            o = attend(i, _linear(F.rms_norm(x, d, in_norm, eps), qkv_w, qkv_b))
            x = _residual(x, o, o_w, o_b)
            gu = _linear(F.rms_norm(x, d, post_norm, eps), gu_w, gu_b)  # (N, 2I): gate | up
            x = _residual(x, F.silu(gu[:, :inter]).mul_(gu[:, inter:]), down_w, down_b)
        return F.rms_norm(x, d, self.w["norm"], eps)

    def _rope(self, qk: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """Shape: qk (..., heads, Dh), cos/sin broadcastable to it"""
        return torch.addcmul(qk * cos, qk.roll(self.head_dim // 2, -1), sin)

    def prefill(
        self, ids: torch.Tensor, mask: torch.Tensor, max_new_tokens: int, repeats: int = 1
    ) -> torch.Tensor:
        b, t = ids.shape
        ids, mask = ids.to(self.device), mask.to(self.device)
        cache = self.cache = reserve(
            self.cache,
            len(self.layers),
            b * repeats,
            self.kv_heads,
            t + max_new_tokens,
            self.head_dim,
            self.attn_dtype,
            self.device,
        )
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
            return prefill_attention(q, k, v, mask, self.scale).view(b * t, h * dh).to(self.dtype)

        x = self.w["embed"][ids].view(b * t, self.d)
        x = self._blocks(x, attend).view(b, t, self.d)[:, -1]  # only the last position is sampled from
        cache.advance(t)
        logits = torch.matmul(x, self.w["lm_head"].t()).float()  # (B, V)
        if repeats > 1:  # prefix sharing: one prefill per prompt, its cache rows copied n times
            cache.select(torch.arange(b, device=self.device).repeat_interleave(repeats))
            logits = logits.repeat_interleave(repeats, 0)
        return logits

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        cache = self.cache
        b, h, hkv, dh = tokens.shape[0], self.heads, self.kv_heads, self.head_dim
        pos = cache.pos[:b]
        cos, sin = self.cos[pos].unsqueeze(1), self.sin[pos].unsqueeze(1)  # (B, 1, Dh), shared by layers
        bias = cache.bias[:b, : cache.length + 1]

        def attend(i: int, qkv: torch.Tensor) -> torch.Tensor:
            qkv = qkv.to(self.attn_dtype).view(b, h + 2 * hkv, dh)
            qk = self._rope(qkv[:, : h + hkv], cos, sin)  # (B, H + Hkv, Dh)
            keys, values = cache.append(i, qk[:, h:].unsqueeze(2), qkv[:, h + hkv :].unsqueeze(2))
            return decode_attention(qk[:, :h], keys, values, bias, self.scale).to(self.dtype)

        x = self._blocks(self.w["embed"][tokens], attend)
        cache.advance(1)
        return torch.matmul(x, self.w["lm_head"].t()).float()

    def select(self, rows: torch.Tensor) -> None:
        self.cache.select(rows.to(self.device))
