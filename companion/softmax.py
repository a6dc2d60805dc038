"""Softmax and its log-space relatives, written to be numerically stable.

Chapter 1 uses `softmax` to turn attention scores into weights; Part 3 studies
these functions in detail. The name "softmax" is Bridle's (1990).
"""

import math

import torch
from torch import Tensor

from companion.validation import (
    check_classification,
    check_finite,
    check_positive_int,
    check_positive_number,
    check_probabilities,
    check_scores,
)


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for float16 and bfloat16, whose sums of many terms overflow or lose
    precision (65,520 terms of 1 already exceed float16's largest number); the
    dtype itself otherwise. What PyTorch's own softmax does on every device."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _row_max(x: Tensor, dim: int) -> Tensor:
    """``max_j x_j`` along `dim` (kept), with 0 for rows of all ``-inf``, so that
    ``x - max`` is never ``-inf - (-inf) = NaN``."""
    m = x.amax(dim=dim, keepdim=True)
    return torch.where(m == -math.inf, 0.0, m)


def logsumexp(x: Tensor, dim: int = -1) -> Tensor:
    """Log of the sum of exponentials along `dim`, without overflow.

    Equation: ``logsumexp(x) = m + log(sum_j exp(x_j - m))`` with ``m = max_j x_j``
    (the "log-sum-exp trick", Part 3, chapter 1). A row whose entries are all
    ``-inf`` gives ``-inf`` (the log of an empty sum), not NaN; its gradient
    there is NaN, as for ``torch.logsumexp``.

    Shapes: ``x`` of any shape; the result drops axis ``dim``.
    """
    check_scores(x, dim)
    m = _row_max(x, dim)
    total = torch.exp(x - m).sum(
        dim=dim, keepdim=True, dtype=accumulation_dtype(x.dtype)
    )
    return (m + torch.log(total)).squeeze(dim).to(x.dtype)


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
    check_scores(x, dim)
    check_positive_number(temperature, "temperature", x.dtype)
    e = torch.exp((x - _row_max(x, dim)) / temperature)
    total = e.sum(dim=dim, keepdim=True, dtype=accumulation_dtype(x.dtype))
    return (e / total.clamp_min(torch.finfo(total.dtype).tiny)).to(x.dtype)


def log_softmax(x: Tensor, dim: int = -1) -> Tensor:
    """Logarithm of the softmax along `dim`, computed as ``x - logsumexp(x)``.

    Equation: ``log softmax(x)_i = x_i - logsumexp(x)`` (Part 3, chapter 1).
    More accurate than ``log(softmax(x))``, which underflows to ``-inf`` for
    very negative scores. A row of all ``-inf`` gives all ``-inf``.

    Shapes: ``x`` of any shape; the result has the same shape.
    """
    lse = logsumexp(x, dim).unsqueeze(dim)
    return x - torch.where(lse == -math.inf, 0.0, lse)  # all -inf rows stay -inf


def softmax_jacobian(p: Tensor) -> Tensor:
    """Jacobian of the softmax, written in terms of its output: ``diag(p) - p p^T``.

    Equation: ``d p_i / d x_j = p_i (delta_ij - p_j)`` for ``p = softmax(x)``
    (Part 2, chapter 2; Part 3, chapter 2). Symmetric; its rows sum to zero.

    Shapes: ``p`` (..., n), probability vectors along the last axis; the result
    is (..., n, n).
    """
    check_probabilities(p)
    return torch.diag_embed(p) - p.unsqueeze(-1) * p.unsqueeze(-2)


def cross_entropy(
    logits: Tensor, target: Tensor, label_smoothing: float = 0.0
) -> Tensor:
    """Mean cross-entropy between ``softmax(logits)`` and integer class targets.

    Equation: ``loss_i = -sum_k y_ik log softmax(logits_i)_k`` with the smoothed
    target ``y_i = (1 - eps) onehot(target_i) + eps / K`` (Szegedy et al., 2016;
    ``eps = label_smoothing``), averaged over the batch. Its gradient with respect
    to the logits is ``(softmax(logits) - y) / N`` (Part 3, chapter 2). Equal to
    ``torch.nn.functional.cross_entropy`` with the same ``label_smoothing``.

    A ``-inf`` (masked) logit is allowed where the target is 0 (``0 log 0`` counts
    as 0), so only without label smoothing: with ``label_smoothing > 0`` every
    class has target ``eps / K > 0``, and a ``-inf`` logit anywhere, like one at
    the target class, would make the loss infinite and raises ``ValueError``.

    Shapes: ``logits`` (N, K); ``target`` (N,) integers in ``[0, K)``; the result
    is a scalar.
    """
    check_classification(logits, target, label_smoothing)
    log_p = log_softmax(logits, dim=-1)
    y = torch.full_like(log_p, label_smoothing / logits.shape[-1])  # eps / K ...
    on_target = torch.full_like(log_p[:, :1], 1 - label_smoothing)  # ... + 1 - eps
    y.scatter_add_(-1, target[:, None].long(), on_target)
    # 0 log 0 = 0: -inf logits where y == 0 (none when eps > 0, checked above).
    terms = torch.where(y == 0, 0.0, y * log_p)
    return -terms.sum(dim=-1).mean()


def sparsemax(x: Tensor, dim: int = -1) -> Tensor:
    """Sparsemax: the Euclidean projection of ``x`` onto the probability simplex.

    Equation (Martins & Astudillo, 2016, eq. 2 and algorithm 1):
    ``sparsemax(x) = argmin_{p in simplex} ||p - x||^2 = max(x - tau, 0)``, where,
    with ``x`` sorted in decreasing order, ``k = max{k : 1 + k x_(k) > sum_{j<=k}
    x_(j)}`` and ``tau = (sum_{j<=k} x_(j) - 1) / k``. Unlike softmax, it gives
    exactly zero weight to low scores (Part 3, chapter 3). ``-inf`` entries get
    zero; a row of all ``-inf`` gives all zeros.

    Shapes: ``x`` of any shape; the result has the same shape.
    """
    check_scores(x, dim)
    z = x.transpose(dim, -1).to(accumulation_dtype(x.dtype))
    finite = torch.isfinite(z).any(dim=-1, keepdim=True)
    z = torch.where(finite, z, torch.zeros_like(z))  # all -inf rows, fixed below
    # Shift invariance: subtracting the max keeps 1 + k z_(k) > cumsum exact enough
    # at k = 1 for huge scores (1 + 1e10 == 1e10 in float32).
    z = z - z.amax(dim=-1, keepdim=True)
    z_sorted, _ = torch.sort(z, dim=-1, descending=True)
    cumulative = z_sorted.cumsum(dim=-1)
    k = torch.arange(1, z.shape[-1] + 1, dtype=z.dtype, device=z.device)
    support = (1 + k * z_sorted > cumulative).sum(dim=-1, keepdim=True).clamp(min=1)
    tau = (cumulative.gather(-1, support - 1) - 1) / support.to(z.dtype)
    p = torch.clamp(z - tau, min=0) * finite
    return p.transpose(dim, -1).to(x.dtype)


def entmax15(x: Tensor, dim: int = -1) -> Tensor:
    """1.5-entmax: a sparse mapping between softmax (alpha = 1) and sparsemax (2).

    Equation (Peters, Niculae & Martins, 2019, eq. 9 and algorithm 2):
    ``entmax15(x)_i = max(x_i / 2 - tau, 0)^2``, with the threshold ``tau`` chosen
    so that the entries sum to one; found exactly by sorting (Part 3, chapter 3).

    Shapes: ``x`` of any shape; the result has the same shape.
    """
    check_scores(x, dim)
    check_finite(x, "x (entmax15 needs finite scores; mask with sparsemax or softmax)")
    z = x.transpose(dim, -1).to(accumulation_dtype(x.dtype)) / 2
    z = z - z.amax(dim=-1, keepdim=True)  # shift invariance, for accuracy
    z_sorted, _ = torch.sort(z, dim=-1, descending=True)
    k = torch.arange(1, z.shape[-1] + 1, dtype=z.dtype, device=z.device)
    mean = z_sorted.cumsum(dim=-1) / k
    mean_square = (z_sorted**2).cumsum(dim=-1) / k
    # For a support of size k, tau solves sum_{j<=k} (z_(j) - tau)^2 = 1.
    delta = (1 - k * (mean_square - mean**2)) / k
    tau_k = mean - torch.sqrt(torch.clamp(delta, min=0))
    support = (tau_k <= z_sorted).sum(dim=-1, keepdim=True)
    tau = tau_k.gather(-1, support - 1)
    return (torch.clamp(z - tau, min=0) ** 2).transpose(dim, -1).to(x.dtype)


def gumbel_softmax(
    logits: Tensor,
    tau: float = 1.0,
    hard: bool = False,
    generator: torch.Generator | None = None,
) -> Tensor:
    """A differentiable sample from ``Categorical(softmax(logits))``.

    Equation (Jang, Gu & Poole, 2017; Maddison, Mnih & Teh, 2017):
    ``y = softmax((logits + g) / tau)`` with ``g_i = -log(-log u_i)``,
    ``u_i ~ Uniform(0, 1)``. ``argmax(logits + g)`` is an exact sample (the
    Gumbel-max trick); ``tau`` trades exactness for smoothness. With ``hard`` the
    result is the one-hot sample, and its gradient is that of the soft ``y``
    (straight-through estimator; Part 3, chapter 3).

    Shapes: ``logits`` (..., K); the result has the same shape.
    """
    check_scores(logits, -1, "logits")
    check_positive_number(tau, "tau", logits.dtype)
    u = torch.rand(
        logits.shape, generator=generator, dtype=logits.dtype, device=logits.device
    )
    u = u.clamp(min=torch.finfo(logits.dtype).tiny)  # log(0) would be -inf
    gumbel = -torch.log(-torch.log(u))
    y_soft = softmax(logits + gumbel, dim=-1, temperature=float(tau))
    if not hard:
        return y_soft
    index = y_soft.argmax(dim=-1, keepdim=True)
    y_hard = torch.zeros_like(y_soft).scatter_(-1, index, 1.0)
    y_hard = y_hard * (y_soft.sum(dim=-1, keepdim=True) > 0)  # all -inf rows: zeros
    return y_hard - y_soft.detach() + y_soft


def online_softmax(x: Tensor, block_size: int) -> Tensor:
    """Softmax over the last axis with the normaliser computed in one pass over blocks.

    Keeps a running maximum ``m`` and a running sum ``ell = sum_j exp(x_j - m)``
    (``ℓ`` in the chapters); when a block raises the maximum to ``m'``, the sum is
    rescaled by ``exp(m - m')`` (Milakov & Gimelshein, 2018). The same rescaling
    lets memory-efficient attention process keys block by block (Part 3, chapter 3;
    Part 5).

    Shapes: ``x`` (..., n); the result has the same shape.
    """
    check_scores(x, -1)
    check_positive_int(block_size, "block_size")
    wide = accumulation_dtype(x.dtype)
    m = torch.full_like(x[..., :1], -math.inf)  # running maximum
    ell = torch.zeros_like(m, dtype=wide)  # running sum of exp(x_j - m)
    for start in range(0, x.shape[-1], block_size):
        block = x[..., start : start + block_size]
        m_new = torch.maximum(m, block.amax(dim=-1, keepdim=True))
        safe = torch.where(m_new == -math.inf, 0.0, m_new)  # rows all -inf so far
        block_sum = torch.exp(block - safe).sum(-1, True, dtype=wide)
        ell = ell * torch.exp(m - safe) + block_sum
        m = m_new
    safe = torch.where(m == -math.inf, 0.0, m)
    return (torch.exp(x - safe) / ell.clamp_min(torch.finfo(wide).tiny)).to(x.dtype)
