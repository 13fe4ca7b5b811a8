"""Which kernel ``scaled_dot_product_attention`` runs for a training forward on CPU.

For a forward that autograd records, sdpa on CPU picks its flash kernel, whose backward is slow
for short rows: with SmolLM2's 9 query and 3 key/value heads of 64 in bf16, one layer's attention
forward and backward took 17 ms with the flash kernel and 8 ms with the math kernel at 4 rows of
96 tokens, 19 and 11 ms at 8 x 64, 16 and 10 ms at 2 x 160, but 36 and 52 ms at 4 x 256 (the math
kernel holds the T x T scores and reads them back). So forwards with grad over at most
MATH_MAX_TOKENS columns run the math kernel; longer rows, no-grad forwards (where the flash
forward is the faster one) and GPUs keep sdpa's own choice. Both kernels compute the same
softmax(q k^T / sqrt(d) + mask) v; in bf16 they differ by rounding only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

MATH_MAX_TOKENS = 192
"""the longest row (columns a forward reads) that runs the math kernel"""


def use_math_kernel(input_ids: torch.Tensor) -> bool:
    """Whether a forward over ``input_ids`` (B, T) runs sdpa's math kernel (see the module doc)."""
    return (
        input_ids.device.type == "cpu" and torch.is_grad_enabled() and input_ids.shape[-1] <= MATH_MAX_TOKENS
    )


@contextlib.contextmanager
def training_attention(input_ids: torch.Tensor) -> Iterator[None]:
    """Run the forward over ``input_ids`` inside this to give it the faster kernel for its rows.
    The backward runs the kernel that the forward recorded."""
    if not use_math_kernel(input_ids):
        yield
        return
    with sdpa_kernel(SDPBackend.MATH):
        yield
