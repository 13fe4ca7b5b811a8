"""The decoders' linear layers: prepacked oneDNN weights with fused epilogues on CPU, addmm elsewhere.

At decode sizes (16 rows x a few hundred features) a CPU GEMM spends as long re-laying out the
weight as multiplying by it. ``torch.ops.mkldnn._reorder_linear_weight`` lays each weight out
once, in oneDNN's blocked format, and ``torch.ops.mkldnn._linear_pointwise`` multiplies by it,
with the bias and a GELU / SiLU, or a residual add or a multiply, fused in: the two ops
``torch.compile``'s CPU backend (Inductor) emits for frozen linears. On the bench machine that made
12 GPT-2 layers' matmuls about 1.25x faster in fp32 and 3x in bf16.

Both ops are private to torch, so ``packed_ok`` runs them once against ``F.linear`` and the plain
path (addmm on an (in, out) copy) is used when they are missing or disagree, and on GPUs.
A packed weight is an opaque oneDNN tensor: syncing means re-packing (``Linear.load``), not
``copy_``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import torch
import torch.nn.functional as F

PACKED_CPU = True
"""use prepacked oneDNN linears on CPU when they work (tests set it False to cover the addmm path)"""
BATCH_HINT = 16
"""rows the packed layout is tuned for; any row count works"""
UNARY = {
    "none": ("none", ""),
    "gelu_tanh": ("gelu", "tanh"),
    "gelu": ("gelu", "none"),
    "relu": ("relu", ""),
    "silu": ("swish", ""),
}
"""activation -> oneDNN post-op (name, algorithm)"""
PLAIN = {
    "none": None,
    "gelu_tanh": functools.partial(F.gelu, approximate="tanh"),
    "gelu": F.gelu,
    "relu": F.relu,
    "silu": F.silu,
}


@functools.cache
def packed_ok(dtype: torch.dtype) -> bool:
    """Whether the packed oneDNN linear exists here and matches F.linear (checked once per dtype)."""
    try:
        mk = torch.ops.mkldnn
        if not torch.backends.mkldnn.is_available():
            return False
        g = torch.Generator().manual_seed(0)
        w, b = torch.randn(24, 16, generator=g).to(dtype), torch.randn(24, generator=g).to(dtype)
        x, r = torch.randn(5, 16, generator=g).to(dtype), torch.randn(5, 24, generator=g).to(dtype)
        p = mk._reorder_linear_weight(w, BATCH_HINT)
        ref = F.linear(x.float(), w.float(), b.float())
        tol = 1e-4 if dtype == torch.float32 else 0.1
        got = mk._linear_pointwise(x, p, b, "gelu", [], "tanh").float()
        added = mk._linear_pointwise.binary(x, r, p, b, "add").float()
        return bool(
            torch.allclose(got, F.gelu(ref, approximate="tanh"), atol=tol)
            and torch.allclose(added, ref + r.float(), atol=tol)
        )
    except (RuntimeError, AttributeError):
        return False


class Linear:
    """y = act(x W^T + b), optionally + a residual or * another tensor.

    Shape: weight (out, in) as nn.Linear stores it; x (N, in) -> (N, out)
    """

    def __init__(
        self, weight: torch.Tensor, bias: torch.Tensor | None, dtype: torch.dtype, device: torch.device
    ):
        self.dtype, self.device = dtype, device
        self.packed = PACKED_CPU and device.type == "cpu" and packed_ok(dtype)
        self.load(weight, bias)

    @torch.no_grad()
    def load(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        """Take new weights (after an optimizer step): re-pack them, or copy in place."""
        w = weight.detach().to(self.device, self.dtype)
        b = None if bias is None else bias.detach().to(self.device, self.dtype)
        if self.packed:
            self.w = torch.ops.mkldnn._reorder_linear_weight(w.contiguous(), BATCH_HINT)
            self.b = None if b is None else b.clone()
        elif getattr(self, "w", None) is not None:
            self.w.copy_(w.t())
            if b is not None:
                self.b.copy_(b)
        else:
            self.w = w.t().contiguous()  # (in, out): addmm(b, x, w) with no transpose
            self.b = None if b is None else b.clone()

    def __call__(self, x: torch.Tensor, act: str = "none") -> torch.Tensor:
        if self.packed:
            name, algorithm = UNARY[act]
            return torch.ops.mkldnn._linear_pointwise(x, self.w, self.b, name, [], algorithm)
        y = torch.mm(x, self.w) if self.b is None else torch.addmm(self.b, x, self.w)
        return y if act == "none" else PLAIN[act](y)

    def add(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """residual + x W^T + b, the residual fused in as the matmul's accumulator."""
        if self.packed:
            return torch.ops.mkldnn._linear_pointwise.binary(x, residual, self.w, self.b, "add")
        y = torch.addmm(residual, x, self.w)
        return y if self.b is None else y.add_(self.b)

    def mul(self, x: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        """other * (x W^T + b): SwiGLU's up projection times silu(gate) in one op."""
        if self.packed:
            return torch.ops.mkldnn._linear_pointwise.binary(x, other, self.w, self.b, "mul")
        return self(x).mul_(other)


class Weights:
    """A decoder's own inference copy of a model's weights: packed ``Linear`` layers and plain
    tensors (norms, embeddings), so training can change the model freely until the next load()."""

    def __init__(
        self,
        linears: Iterable[tuple[str, tuple]],
        tensors: dict[str, torch.Tensor],
        dtype: torch.dtype,
        device: torch.device,
    ):
        self.lin, self.seen = {}, {}
        for k, (w, b) in linears:  # taken one at a time: a decoder may compute each as it goes
            self.lin[k], self.seen[k] = Linear(w, b, dtype, device), _seen(w, b)
        self.t = {k: v.detach().to(device, dtype, copy=True) for k, v in tensors.items()}
        self.seen |= {k: _seen(v) for k, v in tensors.items()}

    @torch.no_grad()
    def load(self, linears: Iterable[tuple[str, tuple]], tensors: dict[str, torch.Tensor]) -> None:
        """Copy new weights in (after an optimizer step), in place. An entry read straight from
        frozen model parameters (``requires_grad`` off), unchanged since the last load (the same
        tensors at the same version: a LoRA policy's LM head, embeddings and norms), is skipped:
        re-packing the SmolLM2 LM head alone was a fifth of a LoRA policy's sync. Trained
        parameters are always re-loaded: a fused optimizer step (torch's fused AdamW) changes
        them in place without bumping their version."""
        for k, (w, b) in linears:
            seen = _seen(w, b)
            if not _same(seen, self.seen[k]):
                self.lin[k].load(w, b)
                self.seen[k] = seen
        for k, v in tensors.items():
            seen = _seen(v)
            if not _same(seen, self.seen[k]):
                self.t[k].copy_(v)
                self.seen[k] = seen


def _seen(*ts: torch.Tensor | None) -> tuple | None:
    """What identifies the current contents of frozen model parameters ``ts``: the parameters and
    their versions; None when one is a computed tensor (a merged or concatenated weight) or a
    trained parameter, always re-loaded. The parameters themselves are kept, not their ids, which
    a freed tensor's successor could reuse."""
    if not all(t is None or (isinstance(t, torch.nn.Parameter) and not t.requires_grad) for t in ts):
        return None
    return ts, tuple(None if t is None else t._version for t in ts)


def _same(now: tuple | None, before: tuple | None) -> bool:
    """Whether two ``_seen`` records name the same parameters at the same versions."""
    if now is None or before is None or now[1] != before[1]:
        return False
    return all(a is b for a, b in zip(now[0], before[0]))
