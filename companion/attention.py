"""Attention: weighted averages of values, with softmax weights from scores.

A query ``q`` is compared with every key ``k_i``; softmax turns the scores into
weights ``alpha(q, k_i)``; the output is the weighted average of the values,
``f(q) = sum_i alpha(q, k_i) v_i``.

- Chapter 1: with the Gaussian score ``a(q, k) = -(q - k)^2 / (2 w^2)`` this is
  the kernel regression estimator of Nadaraya (1964) and Watson (1964).
- Part 2: scaled dot-product attention (Vaswani et al., 2017), its hand-derived
  backward pass, masks, additive attention (Bahdanau et al., 2015) and
  multi-head, multi-query and grouped-query attention.

Shapes follow PyTorch: ``(batch, heads, seq, dim)``; boolean masks mean
True = may attend, as in ``torch.nn.functional.scaled_dot_product_attention``.
"""

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from companion.softmax import accumulation_dtype, softmax
from companion.validation import (
    check_attention,
    check_backward_inputs,
    check_bias,
    check_chunked_options,
    check_divisible,
    check_dropout,
    check_finite,
    check_float_tensor,
    check_kernel_inputs,
    check_leading_axes,
    check_lengths,
    check_mask,
    check_module_input,
    check_pooling_inputs,
    check_positive_int,
    check_positive_number,
    check_same_dtype,
    check_scores,
    check_sequence,
    check_sizes,
)


def masked_softmax(scores: Tensor, mask: Tensor | None = None) -> Tensor:
    """Softmax over the last axis (the keys), with masked keys removed.

    ``mask`` is boolean and broadcasts to ``scores``; True = may attend, as in
    ``torch.nn.functional.scaled_dot_product_attention``. A masked score becomes
    ``-inf`` and gets weight ``exp(-inf) = 0``; a row with no allowed key gets all
    zeros, never NaN (chapter 1; Part 2, chapter 3).
    """
    check_scores(scores, -1, "scores")
    if mask is not None:
        check_mask(mask, tuple(scores.shape))
        scores = scores.masked_fill(~mask, -math.inf)
    return softmax(scores, dim=-1)


def gaussian_scores(
    queries: Tensor, keys: Tensor, width: float | Tensor = 1.0
) -> Tensor:
    """Scores of a Gaussian kernel of width ``w``: ``a(q, k) = -(q - k)^2 / (2 w^2)``.

    ``softmax`` of these scores over the keys equals the normalised kernel
    weights ``K(q - k_i) / sum_j K(q - k_j)`` with ``K(u) = exp(-u^2 / (2 w^2))``
    (chapter 1). ``width`` may be a tensor, so that it can be learned.

    Shapes: ``queries`` (m,), ``keys`` (n,); the result is (m, n).
    """
    check_kernel_inputs(queries, keys, width)
    scores = -0.5 * ((queries[:, None] - keys[None, :]) / width) ** 2
    shown = "width (a tensor)" if isinstance(width, Tensor) else f"width={width:g}"
    check_finite(scores, f"the scores for {shown} in {queries.dtype}")
    return scores


def attention_pooling(
    scores: Tensor, values: Tensor, mask: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Weighted average of the values, with weights ``softmax(scores)`` over the keys.

    Equation: ``alpha = softmax(a(q, k_1), ..., a(q, k_n))``,
    ``f(q) = sum_i alpha_i v_i`` (chapter 1). ``mask`` is boolean, True = may
    attend (see `masked_softmax`); a query with no allowed key gets zero weights
    and a zero output.

    Shapes: ``scores`` (m, n); ``values`` (n,) or (n, d); ``mask`` broadcasts to
    (m, n).
    Returns ``(output, weights)``: output (m,) or (m, d), weights (m, n).
    """
    check_pooling_inputs(scores, values)
    weights = masked_softmax(scores, mask)
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
        check_positive_number(width, "width")
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


def causal_mask(n: int, device: torch.device | str | None = None) -> Tensor:
    """Boolean ``(n, n)`` mask for autoregressive attention: query ``i`` may attend
    to keys ``j <= i`` (lower triangle True; Vaswani et al., 2017, section 3.2.3;
    Part 2, chapter 3). True = may attend. Made on ``device`` (default: the CPU,
    or PyTorch's default device).
    """
    check_positive_int(n, "n")
    return torch.ones(n, n, dtype=torch.bool, device=device).tril()


def padding_mask(
    lengths: Tensor | list[int], max_len: int, device: torch.device | str | None = None
) -> Tensor:
    """Boolean mask that hides the padding of sequences of different lengths.

    Sequence ``b`` has ``lengths[b]`` real tokens followed by padding; key ``j`` may
    be attended to iff ``j < lengths[b]`` (Part 2, chapter 3). True = may attend.

    Shapes: ``lengths`` (batch,), a tensor (the mask is made on its device) or a
    list (made on ``device``); the result is (batch, 1, 1, max_len), which
    broadcasts to the scores' (batch, heads, q_len, max_len).
    """
    if isinstance(lengths, list | tuple):
        lengths = torch.tensor(lengths, dtype=torch.int64, device=device)
    check_lengths(lengths, max_len, lowest=0)
    keep = torch.arange(max_len, device=lengths.device) < lengths[:, None]
    return keep[:, None, None, :]


def scaled_dot_product_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | None = None,
    bias: Tensor | None = None,
    scale: float | None = None,
    dropout: float = 0.0,
) -> tuple[Tensor, Tensor]:
    """Scaled dot-product attention, returning the output and the weights.

    Equation: ``softmax(Q K^T / sqrt(d_k) + B) V`` (Vaswani et al., 2017, eq. 1;
    Part 2, chapters 1-3). ``scale`` replaces ``1 / sqrt(d_k)`` when given.
    ``bias`` ``B`` is added to the scaled scores (ALiBi and T5 biases, Part 4).
    ``mask`` is boolean, True = may attend (as in
    ``torch.nn.functional.scaled_dot_product_attention``); a query with no allowed
    key gets zero weights and a zero output, never NaN.

    ``dropout`` ``p`` (attention dropout, Part 2, chapter 3): after the softmax,
    each weight is kept with probability ``1 - p`` and divided by ``1 - p``, set
    to zero otherwise, before the product with ``V``. This is "inverted" dropout,
    as in PyTorch: ``p`` is the probability of dropping. Srivastava et al. (2014)
    write ``p`` for the probability of keeping a unit and multiply the weights by
    it at test time instead; the expected output is the same. The weights
    returned are those used, so in training their rows no longer sum to one.
    Like ``dropout_p`` of ``F.scaled_dot_product_attention`` it acts whenever
    ``p > 0``; modules pass it only in training mode. On the CPU the same random
    state gives the same dropped weights as that function.

    Shapes: ``q`` (..., q_len, d_k), ``k`` (..., k_len, d_k), ``v`` (..., k_len,
    d_v); ``mask`` and ``bias`` broadcast to (..., q_len, k_len). Returns
    ``(output, weights)``: output (..., q_len, d_v), weights (..., q_len, k_len).
    """
    scale = check_attention(q, k, v, mask, bias, scale)  # 1 / sqrt(d_k) by default
    check_dropout(dropout)
    wide = accumulation_dtype(q.dtype)  # float16 scores overflow: float32 for half
    scores = (q.to(wide) * scale) @ k.to(wide).transpose(-2, -1)
    if bias is not None:
        scores = scores + bias
    weights = softmax(scores if mask is None else scores.masked_fill(~mask, -math.inf))
    if dropout > 0:  # keep each weight with probability 1 - p, scaled by 1 / (1 - p)
        keep = torch.empty_like(weights).bernoulli_(1 - dropout)
        weights = weights * (keep / (1 - dropout))
    return (weights @ v.to(wide)).to(q.dtype), weights.to(q.dtype)


def _fused_mask(mask: Tensor | None, bias: Tensor | None) -> Tensor | None:
    """The boolean ``mask`` (True = may attend) and the additive ``bias`` as the one
    ``attn_mask`` that ``torch.nn.functional.scaled_dot_product_attention`` takes:
    the bias with ``-inf`` where the mask hides a key (Part 2, chapter 3)."""
    if mask is not None and bias is not None:
        return bias.masked_fill(~mask, -math.inf)
    return mask if bias is None else bias


def attention_backward(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    grad_out: Tensor,
    mask: Tensor | None = None,
    scale: float | None = None,
    bias: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients of scaled dot-product attention, derived by hand (Part 2, chapter 2).

    With the scale ``γ = 1 / sqrt(d_k)`` (or ``scale``), ``S = γ Q K^T`` (masked),
    ``P = softmax(S)`` row by row and ``O = P V``,
    and ``dO`` the gradient of the loss with respect to ``O``:

    - ``dV = P^T dO``
    - ``dP = dO V^T``
    - ``dS = P * (dP - rowsum(dP * P))``  (the softmax Jacobian ``diag(p) - p p^T``
      applied row by row; ``*`` is the element-wise product)
    - ``dQ = γ dS K`` and ``dK = γ dS^T Q``.

    Masked entries have ``P = 0``, hence ``dS = 0``: no gradient flows through them.
    An additive ``bias`` changes ``P`` but not the formulas (its own gradient is
    ``dS``, Part 2, chapter 2, exercise 3).

    Shapes: as `scaled_dot_product_attention`, with ``q``, ``k``, ``v`` sharing
    their leading axes; ``grad_out`` has the output's shape. Returns
    ``(dq, dk, dv)`` with the shapes of ``q``, ``k``, ``v``.
    """
    check_backward_inputs(q, k, v, grad_out)
    scale = check_attention(q, k, v, mask, bias, scale)  # 1 / sqrt(d_k) by default
    _, p = scaled_dot_product_attention(q, k, v, mask=mask, bias=bias, scale=scale)
    dtype, wide = q.dtype, accumulation_dtype(q.dtype)  # half: products in float32
    p, q, k, v, grad_out = (t.to(wide) for t in (p, q, k, v, grad_out))
    dv = p.transpose(-2, -1) @ grad_out
    dp = grad_out @ v.transpose(-2, -1)
    ds = p * (dp - (dp * p).sum(dim=-1, keepdim=True))
    dq = scale * ds @ k
    dk = scale * ds.transpose(-2, -1) @ q
    return dq.to(dtype), dk.to(dtype), dv.to(dtype)


class AdditiveAttention(nn.Module):
    """Additive attention: the score is ``v^T tanh(W_q q + W_k k)``.

    This is the alignment model ``e_ij = v_a^T tanh(W_a s_{i-1} + U_a h_j)`` of
    Bahdanau et al. (2015, appendix A.1.2), with the query ``q`` in place of the
    decoder state and the key ``k`` in place of the annotation; ``v`` is a learned
    vector. The weights are the softmax of the scores over the keys (Part 2,
    chapter 1). No bias terms, as in the paper's equations.
    """

    def __init__(self, query_dim: int, key_dim: int, hidden_dim: int):
        super().__init__()
        check_sizes(query_dim=query_dim, key_dim=key_dim, hidden_dim=hidden_dim)
        self.w_q = nn.Linear(query_dim, hidden_dim, bias=False)
        self.w_k = nn.Linear(key_dim, hidden_dim, bias=False)
        self.v = nn.Linear(hidden_dim, 1, bias=False)

    def forward(
        self, query: Tensor, keys: Tensor, values: Tensor, mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Return ``(context, weights)``.

        Shapes: ``query`` (..., q_len, query_dim), ``keys`` (..., k_len, key_dim),
        ``values`` (..., k_len, d_v), ``mask`` broadcastable to (..., q_len, k_len).
        Result: context (..., q_len, d_v), weights (..., q_len, k_len).
        """
        self.check_inputs(query, keys, values)
        hidden = self.w_q(query).unsqueeze(-2) + self.w_k(keys).unsqueeze(-3)
        scores = self.v(torch.tanh(hidden)).squeeze(-1)  # (..., q_len, k_len)
        weights = masked_softmax(scores, mask)
        return weights @ values, weights

    def check_inputs(self, query: object, keys: object, values: object) -> None:
        """Raise unless ``query`` (..., q_len, query_dim), ``keys`` (..., k_len,
        key_dim) and ``values`` (..., k_len, d_v) are finite tensors of the
        weights' dtype."""
        for name, t, dim in (
            ("query", query, self.w_q.in_features),
            ("keys", keys, self.w_k.in_features),
        ):
            check_float_tensor(t, name)
            if t.dim() < 2 or t.shape[-1] != dim:
                raise ValueError(
                    f"{name} must have shape (..., seq, {dim}), got {tuple(t.shape)}"
                )
            check_module_input(t, self.w_q.weight, name)
            check_finite(t, name)
        check_float_tensor(values, "values")
        check_same_dtype(query=query, keys=keys, values=values)
        if values.dim() < 2 or values.shape[-2] != keys.shape[-2]:
            raise ValueError(
                f"values must have shape (..., {keys.shape[-2]}, d_v) to match keys "
                f"{tuple(keys.shape)}, got {tuple(values.shape)}"
            )
        check_finite(values, "values")
        check_leading_axes(query=query, keys=keys, values=values)


class MultiHeadAttention(nn.Module):
    """Multi-head attention with optional grouped-query attention.

    ``MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W^O`` with
    ``head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V)`` (Vaswani et al., 2017,
    section 3.2.2; Part 2, chapter 3). With ``num_kv_heads < num_heads`` the
    query heads are split into ``num_kv_heads`` groups that share one key/value
    head each: grouped-query attention (Ainslie et al., 2023); ``num_kv_heads=1``
    is multi-query attention (Shazeer, 2019).

    Submodules ``q_proj``, ``k_proj``, ``v_proj``, ``out_proj`` are ``nn.Linear``.
    ``dropout`` is the attention dropout probability, applied to the weights in
    training mode only (as ``nn.MultiheadAttention``'s ``dropout``; Part 2,
    chapter 3).
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        num_kv_heads: int | None = None,
        bias: bool = True,
        dropout: float = 0.0,
    ):
        super().__init__()
        num_kv_heads = num_heads if num_kv_heads is None else num_kv_heads
        check_sizes(d_model=d_model, num_heads=num_heads, num_kv_heads=num_kv_heads)
        check_divisible(d_model, num_heads, "d_model", "num_heads")
        check_divisible(num_heads, num_kv_heads, "num_heads", "num_kv_heads")
        check_dropout(dropout)
        self.dropout = dropout
        self.d_model, self.num_heads = d_model, num_heads
        self.num_kv_heads, self.head_dim = num_kv_heads, d_model // num_heads
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, num_kv_heads * self.head_dim, bias=bias)
        self.v_proj = nn.Linear(d_model, num_kv_heads * self.head_dim, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        mask: Tensor | None = None,
        bias: Tensor | None = None,
        rotate: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]] | None = None,
        need_weights: bool = True,
    ) -> tuple[Tensor, Tensor | None]:
        """Return ``(output, weights)``; ``weights`` is None when ``need_weights``
        is False, and then PyTorch's fused kernel computes the same output.

        Shapes: ``query`` (batch, q_len, d_model); ``key`` and ``value`` (batch,
        k_len, d_model); ``mask`` boolean, True = may attend, of shape (q_len,
        k_len) or broadcastable 4-D (batch, num_heads, q_len, k_len), e.g. a
        `padding_mask`. (A 3-D mask is refused: broadcasting would read its first
        axis as heads, not batch.) ``bias`` is added to the scores (ALiBi, T5;
        broadcastable to (batch, num_heads, q_len, k_len)). ``rotate`` maps the
        queries and keys of every head, (batch, heads, len, head_dim), to new ones
        before the scores: RoPE (`companion.positional.rope_queries_and_keys`).
        In training mode the weights are dropped out with probability
        ``dropout`` (both paths draw the same random weights on the CPU).
        Result: output (batch, q_len, d_model), weights (batch, num_heads, q_len,
        k_len).
        """
        self.check_inputs(query, key, value, mask, bias)
        batch, q_len, _ = query.shape
        q = self.split_heads(self.q_proj(query))  # (batch, heads, q_len, head_dim)
        k = self.split_heads(self.k_proj(key))  # (batch, kv_heads, k_len, head_dim)
        v = self.split_heads(self.v_proj(value))  # (batch, kv_heads, k_len, head_dim)
        if rotate is not None:
            q, k = rotate(q, k)
        group = self.num_heads // self.num_kv_heads  # query heads per key/value head
        k = k.repeat_interleave(group, dim=1)  # (batch, heads, k_len, head_dim)
        v = v.repeat_interleave(group, dim=1)
        p = self.dropout if self.training else 0.0  # attention dropout: training only
        if need_weights:  # the formula, step by step: softmax(Q K^T / sqrt(d) + B) V
            out, weights = scaled_dot_product_attention(q, k, v, mask, bias, dropout=p)
        else:  # the same in PyTorch's fused kernel, which never stores the weights
            attn_mask = _fused_mask(mask, bias)
            out = F.scaled_dot_product_attention(
                q, k, v, attn_mask=attn_mask, dropout_p=p
            )
            weights = None
        out = out.transpose(1, 2).reshape(batch, q_len, self.d_model)  # merge heads
        return self.out_proj(out), weights

    def split_heads(self, x: Tensor) -> Tensor:
        """(batch, seq, heads * head_dim) -> (batch, heads, seq, head_dim)."""
        batch, seq, width = x.shape
        return x.view(batch, seq, width // self.head_dim, self.head_dim).transpose(1, 2)

    def check_inputs(
        self, query: object, key: object, value: object, mask: object, bias: object
    ) -> None:
        """Raise unless ``query``, ``key``, ``value`` are finite (batch, seq,
        d_model) tensors of the weights' dtype, sharing the batch size (key and
        value the length too), ``mask`` is None or a boolean mask, 2-D or 4-D, and
        ``bias`` None or a float tensor, both broadcasting to the scores (batch,
        num_heads, q_len, k_len). In self-attention the three are one tensor,
        checked once."""
        checked = []
        for name, t in (("query", query), ("key", key), ("value", value)):
            if not any(t is u for u in checked):
                check_sequence(t, self.d_model, name)
                check_module_input(t, self.q_proj.weight, name)
                checked.append(t)
        if key.shape[:2] != value.shape[:2] or key.shape[0] != query.shape[0]:
            raise ValueError(
                "query, key and value must share the batch size, and key and value "
                f"the length; got query {tuple(query.shape)}, key {tuple(key.shape)}, "
                f"value {tuple(value.shape)}"
            )
        scores = (query.shape[0], self.num_heads, query.shape[1], key.shape[1])
        if mask is not None:
            if isinstance(mask, Tensor) and mask.dim() not in (2, 4):
                raise ValueError(
                    f"mask must have 2 axes (q_len, k_len) or 4 (batch, heads, "
                    f"q_len, k_len), got shape {tuple(mask.shape)}"
                )
            check_mask(mask, scores)
        if bias is not None:
            check_bias(bias, scores, query.dtype)


def chunked_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    chunk_size: int = 1024,
    mask: Tensor | None = None,
    scale: float | None = None,
    causal: bool = False,
    window: int | None = None,
) -> Tensor:
    """Scaled dot-product attention computed block by block with the online softmax.

    Queries and keys are processed in blocks of ``chunk_size``; for each query
    block, a running maximum ``m``, a running normaliser ``ell`` and a running output
    are rescaled by ``exp(m_old - m_new)`` whenever a key block raises the maximum
    (Milakov & Gimelshein, 2018; Rabe & Staats, 2021; the idea behind
    FlashAttention, Dao et al., 2022). The result equals
    `scaled_dot_product_attention`'s output up to rounding, but only a few
    ``chunk_size x chunk_size`` blocks of scores exist at a time (per batch
    element and head) instead of ``q_len x k_len`` (Part 5, chapter 4). Fully
    masked rows give zeros. The time still grows as ``q_len * k_len``: only the
    memory drops.

    ``causal`` and ``window`` restrict attention to a band without any mask
    matrix: key ``j`` is visible from query ``i`` iff ``j <= i`` (``causal``) and
    ``|i - j| <= window`` (``window``; with ``causal``, ``i - window <= j <= i``),
    the pattern of `companion.variants.local_mask`. Positions count from the first
    query and the first key, so for ``q_len != k_len`` the causal band is aligned
    to the top left, as ``is_causal=True`` of
    ``torch.nn.functional.scaled_dot_product_attention`` (FlashAttention-2 aligns
    it to the bottom right instead). Each block of scores is classified from its
    corners: fully hidden blocks are skipped (never computed), fully visible
    blocks need no mask, and only partly visible ones get a ``chunk x chunk``
    mask. ``mask`` (True = may attend) may be given as well.

    The saving is for the forward pass. Under autograd every block's weights are
    kept for the backward pass; training with little memory needs the backward
    pass to recompute them (FlashAttention) or checkpointing (Rabe & Staats).

    Shapes: as `scaled_dot_product_attention`; returns the output only,
    (..., q_len, d_v).
    """
    scale = check_attention(q, k, v, mask, None, scale)  # 1 / sqrt(d_k) by default
    check_chunked_options(chunk_size, causal, window)
    lead = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    q_len, k_len = q.shape[-2], k.shape[-2]
    if mask is not None:
        mask = torch.broadcast_to(mask, (*lead, q_len, k_len))  # a view, no copy
    # key j is visible from query i iff i - below <= j <= i + above
    unlimited = q_len + k_len  # farther than any query is from any key
    below = unlimited if window is None else window
    above = 0 if causal else (unlimited if window is None else window)
    hidden = {}  # hidden entries of partly visible blocks, by offset and shape
    wide = accumulation_dtype(q.dtype)  # scores and sums in float32 for half inputs
    output = torch.empty((*lead, q_len, v.shape[-1]), dtype=q.dtype, device=q.device)
    for q_start in range(0, q_len, chunk_size):
        q_block = q[..., q_start : q_start + chunk_size, :].to(wide) * scale
        rows = q_block.shape[-2]
        q_last = q_start + rows - 1
        m = torch.full((*lead, rows, 1), -math.inf, dtype=wide, device=q.device)
        ell = torch.zeros((*lead, rows, 1), dtype=wide, device=q.device)
        acc = torch.zeros((*lead, rows, v.shape[-1]), dtype=wide, device=q.device)
        for k_start in range(0, k_len, chunk_size):
            k_last = min(k_start + chunk_size, k_len) - 1
            if k_start > q_last + above or k_last < q_start - below:
                continue  # fully hidden: skipped, never computed
            k_block = k[..., k_start : k_last + 1, :]
            v_block = v[..., k_start : k_last + 1, :]
            scores = q_block @ k_block.to(wide).transpose(-2, -1)
            if k_start < q_last - below or k_last > q_start + above:  # partly visible
                shape = (k_start - q_start, rows, k_last + 1 - k_start)
                if shape not in hidden:  # the same pattern recurs along the diagonal
                    i = torch.arange(rows, device=q.device)[:, None]
                    j = torch.arange(shape[2], device=q.device)[None, :] + shape[0]
                    hidden[shape] = (j < i - below) | (j > i + above)  # (rows, chunk)
                scores = scores.masked_fill(hidden[shape], -math.inf)
            if mask is not None:
                block = mask[..., q_start : q_last + 1, k_start : k_last + 1]
                scores = scores.masked_fill(~block, -math.inf)
            m_new = torch.maximum(m, scores.amax(dim=-1, keepdim=True))
            # a row masked so far has m_new = -inf; use 0 there to avoid -inf - -inf
            safe = torch.where(m_new == -math.inf, 0.0, m_new)
            p = torch.exp(scores - safe)  # masked scores: exp(-inf) = 0
            correction = torch.exp(m - safe)  # exp(-inf) = 0 on the first block
            ell = ell * correction + p.sum(dim=-1, keepdim=True, dtype=wide)
            acc = acc * correction + p @ v_block.to(wide)
            m = m_new
        block_output = acc / ell.clamp_min(torch.finfo(wide).tiny)  # masked rows: 0
        output[..., q_start : q_start + rows, :] = block_output.to(q.dtype)
    return output
