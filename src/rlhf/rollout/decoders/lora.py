"""LoRA policies in the fast decoders: the adapters merged into the decoder's own weight copy.

A peft LoRA model computes ``x W^T + s (x A^T) B^T`` in every linear; for sampling the decoder
holds ``W + s B A`` instead (what ``merge_and_unload`` would write), so a LoRA policy decodes at
the speed of a plain one. The merge happens in the decoder's copy only: the trained model keeps
its adapters. It is re-done at each ``load`` (after every optimizer step), a rank-r product per
linear, a small fraction of one decode step's matmuls over a whole rollout.

Only plain LoRA is merged; anything else peft can wrap (DoRA, other tuner types, adapted
embeddings or heads) makes ``lora_base`` return None, and the engine falls back to the generic
decoder, which runs the model's own forward.
"""

from __future__ import annotations

import torch


def _is_peft(model) -> bool:
    return hasattr(model, "peft_config") and hasattr(model, "get_base_model")


def lora_base(model):
    """The transformers model under a peft LoRA wrapper, ``model`` itself when it is not wrapped,
    or None when the wrapper holds something the decoders cannot merge."""
    if not _is_peft(model):
        return model
    from peft.tuners.lora import Linear as LoraLinear
    from peft.tuners.tuners_utils import BaseTunerLayer

    base = model.get_base_model()
    for module in base.modules():
        if isinstance(module, BaseTunerLayer):
            if type(module) is not LoraLinear:  # embeddings, convolutions, other tuners
                return None
            if any(module.use_dora.get(a, False) for a in module.active_adapters):
                return None
            if any(getattr(module, "lora_bias", {}).get(a, False) for a in module.active_adapters):
                return None
        elif type(module).__name__ == "ModulesToSaveWrapper":
            return None
    return base


def linear_weights(linear) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(weight, bias) of a linear layer as it computes now, in nn.Linear's (out, in) layout for a
    torch Linear: for a LoRA-wrapped one, the base weight plus each active adapter's delta (none
    while adapters are disabled or already merged into the base)."""
    base = getattr(linear, "base_layer", None)
    if base is None:
        return linear.weight, linear.bias
    weight = base.weight
    if not linear.disable_adapters and not linear.merged:
        for name in linear.active_adapters:
            if name not in linear.lora_A:
                continue
            # summed in fp32: a small delta would round away on a bf16 weight
            if linear.fan_in_fan_out:  # Conv1D layout (GPT-2): peft's own transposed delta
                weight = weight.float() + linear.get_delta_weight(name).float()
                continue
            # W + s B A as one fp32 addmm: no rounded bf16 delta, no separate delta tensor (on
            # SmolLM2-135M at rank 16 this halved the merge, a twentieth of a bench PPO LoRA step)
            a, b = linear.lora_A[name].weight, linear.lora_B[name].weight
            weight = torch.addmm(weight.float(), b.float(), a.float(), alpha=linear.scaling[name])
    return weight, base.bias
