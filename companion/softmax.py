"""Softmax and its log-space relatives, written to be numerically stable.

Chapter 1 uses `softmax` to turn attention scores into weights; Part 3 studies
these functions in detail. The name "softmax" is Bridle's (1990).
"""

import numbers

import torch
from torch import Tensor

from companion.validation import check_dim, check_float_tensor


def _check_input(x: Tensor, dim: int, name: str = "x") -> None:
    check_float_tensor(x, name)
    check_dim(x, dim, name)
    if x.shape[dim] == 0:
        raise ValueError(
            f"{name} has no entries along dim={dim} (shape {tuple(x.shape)})"
        )
    if torch.isnan(x).any() or torch.isposinf(x).any():
        raise ValueError(
            f"{name} contains NaN or +inf; softmax of such a row is undefined"
        )


def logsumexp(x: Tensor, dim: int = -1) -> Tensor:
    """Log of the sum of exponentials along `dim`, without overflow.

    Equation: ``logsumexp(x) = m + log(sum_j exp(x_j - m))`` with ``m = max_j x_j``
    (the "log-sum-exp trick", Part 3, chapter 1). A row whose entries are all
    ``-inf`` gives ``-inf`` (the log of an empty sum), not NaN.

    Shapes: ``x`` of any shape; the result drops axis ``dim``.
    """
    _check_input(x, dim)
    m = x.amax(dim=dim, keepdim=True)
    m = torch.where(torch.isinf(m), torch.zeros_like(m), m)  # all -inf rows
    return (m + torch.log(torch.exp(x - m).sum(dim=dim, keepdim=True))).squeeze(dim)


def softmax(x: Tensor, dim: int = -1, temperature: float = 1.0) -> Tensor:
    """Softmax along `dim`: non-negative weights that sum to one.

    Equation: ``softmax(x / T)_i = exp((x_i - m) / T) / sum_j exp((x_j - m) / T)``,
    where subtracting ``m = max_j x_j`` changes nothing mathematically and keeps
    every exponent <= 0, so nothing overflows, whatever the temperature (Bridle,
    1990; chapter 1 and Part 3, chapter 1). ``T`` is the temperature: as
    ``T -> 0`` the weights approach a uniform distribution over the maximal
    entries (one-hot when the maximum is unique); large ``T`` approaches the
    uniform distribution over all entries.

    Entries equal to ``-inf`` get weight zero, which is how masks are applied.
    A row whose entries are all ``-inf`` has nothing to weight and gives all
    zeros (never NaN); every other row sums to one.

    Shapes: ``x`` of any shape; the result has the same shape.
    """
    _check_input(x, dim)
    is_number = isinstance(temperature, numbers.Real) and not isinstance(
        temperature, bool
    )
    if not (is_number and 0 < temperature < float("inf")):
        raise ValueError(
            f"temperature must be a positive finite number, got {temperature!r}"
        )
    m = x.amax(dim=dim, keepdim=True)
    m = torch.where(torch.isinf(m), torch.zeros_like(m), m)  # all -inf rows
    e = torch.exp((x - m) / temperature)
    total = e.sum(dim=dim, keepdim=True)
    return e / torch.where(total == 0, torch.ones_like(total), total)


def log_softmax(x: Tensor, dim: int = -1) -> Tensor:
    """Logarithm of the softmax along `dim`, computed as ``x - logsumexp(x)``.

    Equation: ``log softmax(x)_i = x_i - logsumexp(x)`` (Part 3, chapter 1).
    More accurate than ``log(softmax(x))``, which underflows to ``-inf`` for
    very negative scores. A row of all ``-inf`` gives all ``-inf``.

    Shapes: ``x`` of any shape; the result has the same shape.
    """
    lse = logsumexp(x, dim).unsqueeze(dim)
    lse = torch.where(torch.isinf(lse), torch.zeros_like(lse), lse)  # all -inf rows
    return x - lse
