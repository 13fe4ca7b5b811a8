"""Bytes a process holds for a model: its parameters, gradients and optimizer state.

Counted from what the process actually stores: a DTensor's local shard under FSDP2, a ZeRO-3
parameter's partition (``ds_tensor``), DeepSpeed's flat fp32 partitions and their Adam moments
under ZeRO, the whole tensor otherwise. bench/bench_memory.py reports them per engine.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


def _local(t: torch.Tensor) -> torch.Tensor:
    if hasattr(t, "ds_tensor"):  # ZeRO-3 partitioned parameter: this process's partition
        return t.ds_tensor
    if hasattr(t, "to_local"):  # FSDP2 DTensor: this process's shard
        return t.to_local()
    return t


def tensor_bytes(tensors: Iterable[torch.Tensor | None]) -> int:
    seen, total = set(), 0
    for t in tensors:
        if t is None:
            continue
        local = _local(t)
        key = (local.data_ptr(), local.numel())
        if key in seen or local.numel() == 0:
            continue
        seen.add(key)
        total += local.numel() * local.element_size()
    return total


def parameter_bytes(model: torch.nn.Module | None) -> int:
    return 0 if model is None else tensor_bytes(model.parameters())


def gradient_bytes(model: torch.nn.Module | None, optimizer: torch.optim.Optimizer | None = None) -> int:
    """Gradients held now (call between backward and the optimizer step). ZeRO keeps them in
    its own partitioned buffers, which the optimizer wrapper exposes."""
    if model is None:
        return 0
    grads = [p.grad for p in model.parameters()]
    inner = _deepspeed_optimizer(optimizer)
    if inner is not None:
        for name in ("averaged_gradients", "grads_in_partition", "fp32_partitioned_groups_flat_grad"):
            value = getattr(inner, name, None)
            if isinstance(value, dict):
                grads += [g for v in value.values() for g in (v if isinstance(v, list) else [v])]
            elif isinstance(value, list):
                grads += [g for v in value for g in (v if isinstance(v, list) else [v])]
            elif isinstance(value, torch.Tensor):
                grads.append(value)
    return tensor_bytes(grads)


def _deepspeed_optimizer(optimizer: torch.optim.Optimizer) -> object | None:
    """DeepSpeed's ZeRO optimizer under accelerate's wrapper (None for a torch optimizer)."""
    opt = getattr(optimizer, "optimizer", None)  # accelerate's wrapper
    if opt is not None and type(opt).__module__.startswith("deepspeed"):
        return opt
    return None


def optimizer_bytes(optimizer: torch.optim.Optimizer | None) -> int:
    """Adam moments and, under ZeRO, the fp32 master partitions."""
    if optimizer is None:
        return 0
    inner = _deepspeed_optimizer(optimizer)
    torch_opt = optimizer
    while hasattr(torch_opt, "optimizer") and not isinstance(torch_opt, torch.optim.Optimizer):
        torch_opt = torch_opt.optimizer
    if inner is not None:
        torch_opt = inner.optimizer
    tensors = [v for state in torch_opt.state.values() for v in state.values() if isinstance(v, torch.Tensor)]
    if inner is not None:  # master weights: the flat fp32 partitions the inner optimizer steps
        tensors += [p for group in torch_opt.param_groups for p in group["params"]]
    return tensor_bytes(t for t in tensors if t.dim() > 0)
