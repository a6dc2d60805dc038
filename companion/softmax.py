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


def _check_positive_number(value: object, name: str, dtype: torch.dtype) -> None:
    """Raise unless ``value`` is a positive real number that stays positive and
    finite in ``dtype`` (1e-50 rounds to 0 in float32, 1e39 to inf)."""
    is_number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not (is_number and 0 < value < float("inf")):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    as_dtype = torch.tensor(float(value), dtype=dtype)
    if as_dtype == 0 or torch.isinf(as_dtype):
        raise ValueError(f"{name}={value!r} is not representable in {dtype}")


def logsumexp(x: Tensor, dim: int = -1) -> Tensor:
    """Log of the sum of exponentials along `dim`, without overflow.

    Equation: ``logsumexp(x) = m + log(sum_j exp(x_j - m))`` with ``m = max_j x_j``
    (the "log-sum-exp trick", Part 3, chapter 1). A row whose entries are all
    ``-inf`` gives ``-inf`` (the log of an empty sum), not NaN; its gradient
    there is NaN, as for ``torch.logsumexp``.

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
    _check_positive_number(temperature, "temperature", x.dtype)
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


def softmax_jacobian(p: Tensor) -> Tensor:
    """Jacobian of the softmax, written in terms of its output: ``diag(p) - p p^T``.

    Equation: ``d p_i / d x_j = p_i (delta_ij - p_j)`` for ``p = softmax(x)``
    (Part 2, chapter 2; Part 3, chapter 2). Symmetric; its rows sum to zero.

    Shapes: ``p`` (..., n), probability vectors along the last axis; the result
    is (..., n, n).
    """
    check_float_tensor(p, "p")
    check_dim(p, -1, "p")
    total = p.sum(dim=-1)
    if (p < 0).any() or not torch.allclose(total, torch.ones_like(total), atol=1e-4):
        raise ValueError(
            "p must hold probability vectors along its last axis (non-negative, "
            "summing to one), e.g. the output of softmax"
        )
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

    Shapes: ``logits`` (N, K); ``target`` (N,) integers in ``[0, K)``; the result
    is a scalar.
    """
    check_float_tensor(logits, "logits")
    if logits.dim() != 2:
        raise ValueError(f"logits must have shape (N, K), got {tuple(logits.shape)}")
    if not isinstance(target, Tensor) or target.dtype not in (torch.int32, torch.int64):
        raise ValueError("target must be a tensor of integer class indices")
    n, k = logits.shape
    if target.shape != (n,):
        raise ValueError(
            f"target must have shape ({n},) to match logits {tuple(logits.shape)}, "
            f"got {tuple(target.shape)}"
        )
    if n and ((target < 0).any() or (target >= k).any()):
        raise ValueError(f"target values must lie in [0, {k}), got {target.tolist()}")
    if isinstance(label_smoothing, bool) or not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must lie in [0, 1], got {label_smoothing!r}")
    log_p = log_softmax(logits, dim=-1)
    y = torch.full_like(log_p, label_smoothing / k)
    on_target = torch.full((n, 1), 1 - label_smoothing, dtype=log_p.dtype)
    y.scatter_add_(-1, target[:, None].long(), on_target)
    # 0 * log(0) counts as 0: a masked (-inf) logit with zero target weight is fine.
    terms = torch.where(y == 0, torch.zeros_like(log_p), y * log_p)
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
    _check_input(x, dim)
    z = x.transpose(dim, -1)
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
    return p.transpose(dim, -1)


def entmax15(x: Tensor, dim: int = -1) -> Tensor:
    """1.5-entmax: a sparse mapping between softmax (alpha = 1) and sparsemax (2).

    Equation (Peters, Niculae & Martins, 2019, eq. 9 and algorithm 2):
    ``entmax15(x)_i = max(x_i / 2 - tau, 0)^2``, with the threshold ``tau`` chosen
    so that the entries sum to one; found exactly by sorting (Part 3, chapter 3).

    Shapes: ``x`` of any shape; the result has the same shape.
    """
    _check_input(x, dim)
    if torch.isinf(x).any():
        raise ValueError("entmax15 needs finite scores; mask with sparsemax or softmax")
    z = x.transpose(dim, -1) / 2
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
    return (torch.clamp(z - tau, min=0) ** 2).transpose(dim, -1)


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
    _check_input(logits, -1, "logits")
    _check_positive_number(tau, "tau", logits.dtype)
    u = torch.rand(logits.shape, generator=generator, dtype=logits.dtype)
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

    Keeps a running maximum ``m`` and a running sum ``d = sum_j exp(x_j - m)``;
    when a block raises the maximum to ``m'``, the sum is rescaled by
    ``exp(m - m')`` (Milakov & Gimelshein, 2018). The same rescaling lets
    memory-efficient attention process keys block by block (Part 3, chapter 3;
    Part 5).

    Shapes: ``x`` (..., n); the result has the same shape.
    """
    _check_input(x, -1)
    if isinstance(block_size, bool) or not (
        isinstance(block_size, int) and block_size > 0
    ):
        raise ValueError(f"block_size must be a positive integer, got {block_size!r}")
    m = torch.full(x.shape[:-1] + (1,), -float("inf"), dtype=x.dtype, device=x.device)
    d = torch.zeros_like(m)
    for start in range(0, x.shape[-1], block_size):
        block = x[..., start : start + block_size]
        m_new = torch.maximum(m, block.amax(dim=-1, keepdim=True))
        safe = torch.where(torch.isinf(m_new), torch.zeros_like(m_new), m_new)
        d = d * torch.exp(m - safe) + torch.exp(block - safe).sum(dim=-1, keepdim=True)
        m = m_new
    safe = torch.where(torch.isinf(m), torch.zeros_like(m), m)
    return torch.exp(x - safe) / torch.where(d == 0, torch.ones_like(d), d)
