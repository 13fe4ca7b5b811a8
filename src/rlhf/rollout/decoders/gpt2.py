"""GPT-2 (learned positions, pre-LayerNorm, GELU MLP) as a handful of fused ops per layer.

Matches ``transformers``' GPT2LMHeadModel (eager or sdpa attention) to fp32 rounding: same
positions for left-padded rows (cumsum of the mask - 1), same attention scaling, and
``gelu_new`` as ``F.gelu(approximate="tanh")`` (one kernel instead of NewGELU's seven ops).
Dropout is left out: sampling runs the model in eval mode.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rlhf.rollout.decoders.cache import KVCache, attention_dtype, decode_attention, prefill_attention, reserve

ACTIVATIONS = {
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_fast": lambda x: F.gelu(x, approximate="tanh"),
    "gelu": F.gelu,
    "relu": F.relu,
}
LAYER = (
    "ln1_w",
    "ln1_b",
    "qkv_w",
    "qkv_b",
    "o_w",
    "o_b",
    "ln2_w",
    "ln2_b",
    "fc_w",
    "fc_b",
    "proj_w",
    "proj_b",
)


def source_weights(model) -> dict[str, torch.Tensor]:
    """The model's weights in this decoder's layout: matmul weights as (in, out), which is what
    GPT-2's Conv1D stores, so ``addmm(bias, x, w)`` needs no transpose."""
    t = model.transformer
    out = {
        "wte": t.wte.weight,
        "wpe": t.wpe.weight,
        "lnf_w": t.ln_f.weight,
        "lnf_b": t.ln_f.bias,
        "lm_head": model.lm_head.weight,  # (V, d); tied to wte unless the config unties them
    }
    for i, blk in enumerate(t.h):
        mods = (blk.ln_1, blk.attn.c_attn, blk.attn.c_proj, blk.ln_2, blk.mlp.c_fc, blk.mlp.c_proj)
        for j, m in enumerate(mods):
            out[f"{i}.{LAYER[2 * j]}"] = m.weight
            out[f"{i}.{LAYER[2 * j + 1]}"] = m.bias
    return out


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
        self.d, self.heads = cfg.n_embd, cfg.n_head
        self.head_dim = self.d // self.heads
        self.eps = cfg.layer_norm_epsilon
        self.act = ACTIVATIONS[cfg.activation_function]
        base = self.head_dim**-0.5 if cfg.scale_attn_weights else 1.0
        inverse = cfg.scale_attn_by_inverse_layer_idx
        self.scales = [base / (i + 1) if inverse else base for i in range(cfg.n_layer)]
        self.max_positions = cfg.n_positions
        self.device, self.dtype = model.device, dtype
        self.attn_dtype = attention_dtype(dtype, model.device)
        # own contiguous copies: training can then change the model freely until the next load()
        self.w = {
            k: v.detach().to(model.device, dtype, copy=True).contiguous()
            for k, v in source_weights(model).items()
        }
        self.layers = [tuple(self.w[f"{i}.{k}"] for k in LAYER) for i in range(cfg.n_layer)]
        self.cache: KVCache | None = None

    @torch.no_grad()
    def load(self, model) -> None:
        for k, v in source_weights(model).items():
            self.w[k].copy_(v)

    def _blocks(self, x: torch.Tensor, attend) -> torch.Tensor:
        """The transformer blocks on flattened tokens.  Shape: (N, d) -> (N, d) after ln_f.

        ``attend(layer, qkv (N, 3d)) -> (N, d)`` does attention against the cache.
        """
        d, eps = (self.d,), self.eps
        for i, (ln1_w, ln1_b, qkv_w, qkv_b, o_w, o_b, ln2_w, ln2_b, fc_w, fc_b, proj_w, proj_b) in enumerate(
            self.layers
        ):
            a = F.layer_norm(x, d, ln1_w, ln1_b, eps)
            o = attend(i, torch.addmm(qkv_b, a, qkv_w))  # one fused q/k/v matmul
            x = torch.addmm(x, o, o_w).add_(o_b)  # the residual rides in as addmm's bias
            a = F.layer_norm(x, d, ln2_w, ln2_b, eps)
            h = self.act(torch.addmm(fc_b, a, fc_w))
            x = torch.addmm(x, h, proj_w).add_(proj_b)
        return F.layer_norm(x, d, self.w["lnf_w"], self.w["lnf_b"], eps)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return torch.matmul(x, self.w["lm_head"].t()).float()  # (B, V)

    def prefill(
        self, ids: torch.Tensor, mask: torch.Tensor, max_new_tokens: int, repeats: int = 1
    ) -> torch.Tensor:
        b, t = ids.shape
        ids, mask = ids.to(self.device), mask.to(self.device)
        if t + max_new_tokens > self.max_positions:
            raise ValueError(
                f"prompt ({t} tokens) + max_new_tokens ({max_new_tokens}) exceed the model's "
                f"{self.max_positions} positions (config n_positions)"
            )
        cache = self.cache = reserve(
            self.cache,
            len(self.layers),
            b * repeats,
            self.heads,
            t + max_new_tokens,
            self.head_dim,
            self.attn_dtype,
            self.device,
        )
        pos = cache.start(mask)  # (B, T)
        h, dh = self.heads, self.head_dim

        def attend(i: int, qkv: torch.Tensor) -> torch.Tensor:
            qkv = qkv.to(self.attn_dtype).view(b, t, 3, h, dh)
            q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # (B, H, T, Dh) each
            cache.append(i, k, v)
            return prefill_attention(q, k, v, mask, self.scales[i]).view(b * t, h * dh).to(self.dtype)

        x = (self.w["wte"][ids] + self.w["wpe"][pos]).view(b * t, self.d)
        x = self._blocks(x, attend).view(b, t, self.d)[:, -1]  # only the last position is sampled from
        cache.advance(t)
        logits = self._logits(x)
        if repeats > 1:  # prefix sharing: one prefill per prompt, its cache rows copied n times
            cache.select(torch.arange(b, device=self.device).repeat_interleave(repeats))
            logits = logits.repeat_interleave(repeats, 0)
        return logits

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        cache = self.cache
        b, h, dh = tokens.shape[0], self.heads, self.head_dim
        pos = cache.pos[:b]
        bias = cache.bias[:b, : cache.length + 1]

        def attend(i: int, qkv: torch.Tensor) -> torch.Tensor:
            q, k, v = qkv.to(self.attn_dtype).view(b, 3, h, dh).unbind(1)  # (B, H, Dh) each
            keys, values = cache.append(i, k.unsqueeze(2), v.unsqueeze(2))
            return decode_attention(q, keys, values, bias, self.scales[i]).to(self.dtype)

        x = self.w["wte"][tokens] + self.w["wpe"][pos]  # (B, d)
        x = self._blocks(x, attend)
        cache.advance(1)
        return self._logits(x)

    def select(self, rows: torch.Tensor) -> None:
        self.cache.select(rows.to(self.device))
