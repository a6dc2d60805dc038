"""Attention: weighted averages of values, with softmax weights from scores.

A query ``q`` is compared with every key ``k_i``; softmax turns the scores into
weights ``alpha(q, k_i)``; the output is the weighted average of the values,
``f(q) = sum_i alpha(q, k_i) v_i``. With the Gaussian score
``a(q, k) = -(q - k)^2 / (2 w^2)`` this is the kernel regression estimator of
Nadaraya (1964) and Watson (1964), built in chapter 1.
"""

import math

import torch
from torch import Tensor, nn

from companion.softmax import softmax
from companion.validation import check_float_tensor, check_ndim


def gaussian_scores(
    queries: Tensor, keys: Tensor, width: float | Tensor = 1.0
) -> Tensor:
    """Scores of a Gaussian kernel of width ``w``: ``a(q, k) = -(q - k)^2 / (2 w^2)``.

    ``softmax`` of these scores over the keys equals the normalised kernel
    weights ``K(q - k_i) / sum_j K(q - k_j)`` with ``K(u) = exp(-u^2 / (2 w^2))``
    (chapter 1). ``width`` may be a tensor, so that it can be learned.

    Shapes: ``queries`` (m,), ``keys`` (n,); the result is (m, n).
    """
    for name, t in (("queries", queries), ("keys", keys)):
        check_float_tensor(t, name)
        check_ndim(t, (1,), name)
    width = torch.as_tensor(width, dtype=queries.dtype)
    if width.dim() != 0 or not (0 < width.item() < math.inf):
        raise ValueError(
            f"width must be one positive finite number, got {width.tolist()!r}"
        )
    scores = -0.5 * ((queries[:, None] - keys[None, :]) / width) ** 2
    if torch.isinf(scores).any():
        raise ValueError(
            f"width={width.item():g} is too small for {queries.dtype}: the scores "
            "overflow; use a larger width or float64"
        )
    return scores


def attention_pooling(
    scores: Tensor, values: Tensor, mask: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Weighted average of the values, with weights ``softmax(scores)`` over the keys.

    Equation: ``alpha = softmax(a(q, k_1), ..., a(q, k_n))``,
    ``f(q) = sum_i alpha_i v_i`` (chapter 1). ``mask`` is boolean and True means
    "may attend", as in ``torch.nn.functional.scaled_dot_product_attention``;
    a query with no allowed key gets zero weights and a zero output.

    Shapes: ``scores`` (m, n); ``values`` (n,) or (n, d); ``mask`` (m, n).
    Returns ``(output, weights)``: output (m,) or (m, d), weights (m, n).
    """
    check_float_tensor(scores, "scores")
    check_ndim(scores, (2,), "scores")
    check_float_tensor(values, "values")
    check_ndim(values, (1, 2), "values")
    if values.dtype != scores.dtype:
        raise ValueError(
            f"scores and values must have the same dtype, "
            f"got {scores.dtype} and {values.dtype}"
        )
    if values.shape[0] != scores.shape[1]:
        raise ValueError(
            f"values has {values.shape[0]} rows but scores has {scores.shape[1]} keys "
            f"(scores {tuple(scores.shape)}, values {tuple(values.shape)})"
        )
    if mask is not None:
        if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
            raise ValueError("mask must be a boolean tensor (True = may attend)")
        if mask.shape != scores.shape:
            raise ValueError(
                f"mask shape {tuple(mask.shape)} does not match "
                f"scores shape {tuple(scores.shape)}"
            )
        scores = scores.masked_fill(~mask, -math.inf)
    weights = softmax(scores, dim=-1)
    return weights @ values, weights


def nadaraya_watson(
    queries: Tensor,
    keys: Tensor,
    values: Tensor,
    width: float | Tensor = 1.0,
    mask: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Nadaraya-Watson kernel regression with a Gaussian kernel of width ``w``.

    Equation: ``f(q) = sum_i softmax_i(-(q - k_i)^2 / (2 w^2)) v_i``
    (Nadaraya, 1964; Watson, 1964; chapter 1).

    Shapes: ``queries`` (m,), ``keys`` (n,), ``values`` (n,) or (n, d),
    ``mask`` (m, n). Returns ``(output, weights)`` as ``attention_pooling``.
    """
    return attention_pooling(gaussian_scores(queries, keys, width), values, mask)


class KernelRegression(nn.Module):
    """Nadaraya-Watson regression whose kernel width is a learned parameter.

    The width is stored as ``log_width`` so that gradient descent can never make
    it negative: ``w = exp(log_width)`` (chapter 1).
    """

    def __init__(self, width: float = 1.0):
        super().__init__()
        if not (isinstance(width, (int, float)) and 0 < width < math.inf):
            raise ValueError(f"width must be a positive finite number, got {width!r}")
        self.log_width = nn.Parameter(torch.tensor(math.log(width)))

    @property
    def width(self) -> float:
        """The current kernel width ``w`` as a Python float."""
        return math.exp(self.log_width.item())

    def forward(
        self, queries: Tensor, keys: Tensor, values: Tensor, mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """``nadaraya_watson`` with the learned width: ``(output, weights)``."""
        width = self.log_width.exp().to(queries.dtype)
        return nadaraya_watson(queries, keys, values, width, mask)
