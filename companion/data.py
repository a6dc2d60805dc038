"""Small data sets the course generates itself, so nothing is downloaded."""

import torch
from torch import Tensor


def regression_target(x: Tensor) -> Tensor:
    """Chapter 1's noise-free regression curve: ``f(x) = sin(2x) + x / 2``."""
    return torch.sin(2 * x) + 0.5 * x


def regression_data(
    n: int, noise: float = 0.3, low: float = 0.0, high: float = 5.0, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """Sample ``n`` points ``x`` uniform on ``[low, high)``, sorted, and
    ``y = f(x) + noise * eps``.

    ``f`` is `regression_target` and ``eps ~ N(0, 1)``. A private generator seeded
    with ``seed`` makes the data independent of the global random state and the
    same on every machine for a given PyTorch version (chapter 1).
    Returns ``(x, y)``, each of shape (n,) and dtype float32.
    """
    if not (isinstance(n, int) and n > 0):
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise!r}")
    if not low < high:
        raise ValueError(f"need low < high, got low={low!r}, high={high!r}")
    g = torch.Generator().manual_seed(seed)
    x, _ = torch.sort(
        low + (high - low) * torch.rand(n, generator=g, dtype=torch.float32)
    )
    y = regression_target(x) + noise * torch.randn(n, generator=g, dtype=torch.float32)
    return x, y
