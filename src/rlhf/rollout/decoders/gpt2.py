"""GPT-2 (learned positions, pre-LayerNorm, GELU MLP) as a handful of fused ops per layer.

Matches ``transformers``' GPT2LMHeadModel to fp32 rounding: same positions for left-padded rows
(cumsum of the mask - 1), same attention scaling, ``gelu_new`` as the tanh GELU. Where it departs
in form: q, k, v come from Conv1D's one matmul, with the attention scale folded into the q
weights (one op less a layer); bias, GELU and residual adds are fused into the matmuls
(``decoders.linear``). Dropout is left out: sampling runs the model in eval mode.
"""

from __future__ import annotations

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

ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu_fast": "gelu_tanh"}
ACTIVATIONS |= {"gelu": "gelu", "relu": "relu"}
"""config.activation_function -> decoders.linear activation"""


def sources(model) -> tuple[list[tuple[str, tuple]], dict[str, torch.Tensor]]:
    """The model's weights in decoder form: linears as (name, (weight (out, in), bias)), with the
    attention scale folded into q's rows; and the other tensors (norms, embeddings)."""
    cfg, t = model.config, model.transformer
    d, head_dim = cfg.n_embd, cfg.n_embd // cfg.n_head
    linears: dict[str, tuple] = {"lm_head": (model.lm_head.weight, None)}  # (V, d), tied to wte by default
    tensors = {"wte": t.wte.weight, "wpe": t.wpe.weight, "lnf_w": t.ln_f.weight, "lnf_b": t.ln_f.bias}
    for i, blk in enumerate(t.h):
        scale = head_dim**-0.5 if cfg.scale_attn_weights else 1.0
        scale = scale / (i + 1) if cfg.scale_attn_by_inverse_layer_idx else scale
        fold = torch.ones(3 * d, dtype=blk.attn.c_attn.weight.dtype, device=blk.attn.c_attn.weight.device)
        fold[:d] = scale
        # Conv1D stores (in, out): transpose to nn.Linear's (out, in)
        linears[f"{i}.qkv"] = (blk.attn.c_attn.weight.t() * fold[:, None], blk.attn.c_attn.bias * fold)
        for name, conv in (("o", blk.attn.c_proj), ("fc", blk.mlp.c_fc), ("proj", blk.mlp.c_proj)):
            linears[f"{i}.{name}"] = (conv.weight.t(), conv.bias)
        for name, norm in (("ln1", blk.ln_1), ("ln2", blk.ln_2)):
            tensors[f"{i}.{name}_w"], tensors[f"{i}.{name}_b"] = norm.weight, norm.bias
    return list(linears.items()), tensors


class GPT2Decoder:
    name = "gpt2"

    @staticmethod
    def unsupported(config) -> str | None:
        """Why this decoder cannot run ``config`` (None: it can)."""
        if config.activation_function not in ACTIVATIONS:
            return f"activation {config.activation_function!r}"
        if getattr(config, "add_cross_attention", False):
            return "cross-attention"
        return None

    def __init__(self, model, dtype: torch.dtype):
        cfg = model.config
        self.d, self.heads, self.head_dim = cfg.n_embd, cfg.n_head, cfg.n_embd // cfg.n_head
        self.eps, self.act = cfg.layer_norm_epsilon, ACTIVATIONS[cfg.activation_function]
        self.max_positions = cfg.n_positions
        self.device, self.dtype = model.device, dtype
        self.attn_dtype = attention_dtype(dtype, model.device)
        self.weights = Weights(*sources(model), dtype, model.device)
        self.lin, self.t = self.weights.lin, self.weights.t
        lt = [("qkv", "o", "fc", "proj"), ("ln1_w", "ln1_b", "ln2_w", "ln2_b")]
        self.layers = [
            (*(self.lin[f"{i}.{k}"] for k in lt[0]), *(self.t[f"{i}.{k}"] for k in lt[1]))
            for i in range(cfg.n_layer)
        ]
        self.cache = None

    def load(self, model) -> None:
        self.weights.load(*sources(model))

    def _blocks(self, x: torch.Tensor, attend, prompt: tuple[int, int] | None = None) -> torch.Tensor:
        """The transformer blocks on flattened tokens.  Shape: (N, d) -> (N, d) after ln_f.

        ``attend(layer, qkv (N, 3d)) -> (N, d)`` does attention against the cache. With ``prompt``
        = (B, T) (prefill), the last layer goes on past attention with each row's last position
        only, the one sampled from: (B * T, d) -> (B, d).
        """
        d, eps, act, last = (self.d,), self.eps, self.act, len(self.layers) - 1
        for i, (qkv, o, fc, proj, ln1_w, ln1_b, ln2_w, ln2_b) in enumerate(self.layers):
            a = attend(i, qkv(F.layer_norm(x, d, ln1_w, ln1_b, eps)))
            if i == last and prompt is not None:
                x, a = x.view(*prompt, -1)[:, -1], a.view(*prompt, -1)[:, -1]
            x = o.add(a, x)  # the residual fused in
            x = proj.add(fc(F.layer_norm(x, d, ln2_w, ln2_b, eps), act), x)
        return F.layer_norm(x, d, self.t["lnf_w"], self.t["lnf_b"], eps)

    def prefill(
        self, ids: torch.Tensor, mask: torch.Tensor, max_new_tokens: int, repeats: int = 1
    ) -> torch.Tensor:
        b, t = ids.shape
        if t + max_new_tokens > self.max_positions:
            raise ValueError(
                f"prompt ({t} tokens) + max_new_tokens ({max_new_tokens}) exceed the model's "
                f"{self.max_positions} positions (config n_positions)"
            )
        ids, mask = ids.to(self.device), mask.to(self.device)
        cache = self.cache = reserve(
            self.cache, len(self.layers), b * repeats, self.heads, t + max_new_tokens, self.head_dim,
            self.attn_dtype, self.device,
        )  # fmt: skip
        pos = cache.start(mask)  # (B, T)
        h, dh = self.heads, self.head_dim

        def attend(i: int, qkv: torch.Tensor) -> torch.Tensor:
            q, k, v = qkv.to(self.attn_dtype).view(b, t, 3, h, dh).permute(2, 0, 3, 1, 4).unbind(0)
            cache.append(i, k, v)  # (B, H, T, Dh) each
            return prefill_attention(q, k, v, mask).view(b * t, h * dh).to(self.dtype)

        x = (self.t["wte"][ids] + self.t["wpe"][pos]).view(b * t, self.d)
        x = self._blocks(x, attend, (b, t))  # (B, d): only the last position is sampled from
        return prefill_logits(cache, self.lin["lm_head"], x, t, repeats)

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        cache = self.cache
        b, h, dh = tokens.shape[0], self.heads, self.head_dim
        bias = cache.attention_bias()

        cast = self.attn_dtype != self.dtype  # skipping no-op casts saves two calls a layer

        def attend(i: int, qkv: torch.Tensor) -> torch.Tensor:
            qkv = (qkv.to(self.attn_dtype) if cast else qkv).view(b, 3, h, 1, dh)
            keys, values = cache.append(i, qkv[:, 1], qkv[:, 2])  # (B, H, 1, Dh) each
            out = decode_attention(qkv[:, 0, :, 0], keys, values, bias)  # q (B, H, Dh)
            return out.to(self.dtype) if cast else out

        x = self.t["wte"][tokens] + self.t["wpe"][cache.pos[:b]]  # (B, d)
        x = self._blocks(x, attend)
        cache.advance(1)
        return self.lin["lm_head"](x).float()

    def select(self, rows: torch.Tensor) -> None:
        self.cache.select(rows.to(self.device))
