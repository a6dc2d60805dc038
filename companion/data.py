"""Small data sets the course generates itself, so nothing is downloaded."""

import torch
from torch import Tensor

from companion.softmax import accumulation_dtype
from companion.validation import (
    check_finite,
    check_float_tensor,
    check_regression_options,
)


def regression_target(x: Tensor) -> Tensor:
    """Chapter 1's noise-free regression curve: ``f(x) = sin(2x) + x / 2``,
    elementwise on a finite float tensor ``x`` of any shape (float16 and bfloat16
    computed in float32, where ``2x`` cannot overflow)."""
    check_float_tensor(x, "x")
    check_finite(x, "x")
    wide = x.to(accumulation_dtype(x.dtype))
    return (torch.sin(2 * wide) + 0.5 * wide).to(x.dtype)


def regression_data(
    n: int, noise: float = 0.3, low: float = 0.0, high: float = 5.0, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """Sample ``n`` points ``x`` uniform on ``[low, high)``, sorted, and
    ``y = f(x) + noise * eps``.

    ``f`` is `regression_target` and ``eps ~ N(0, 1)``. A private generator seeded
    with ``seed`` makes the data independent of the global random state and the
    same on every machine for a given PyTorch version (chapter 1). ``noise`` is
    a finite number >= 0, ``low < high`` finite numbers, ``seed`` a non-negative
    integer. Returns ``(x, y)``, each of shape (n,) and dtype float32, on the CPU.
    """
    check_regression_options(n, noise, low, high, seed)
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(n, generator=g, dtype=torch.float32, device="cpu")
    x, _ = torch.sort(low + (high - low) * u)
    eps = torch.randn(n, generator=g, dtype=torch.float32, device="cpu")
    return x, regression_target(x) + noise * eps
