"""Positional encodings: how a Transformer learns where each token is (Part 4).

Three places where position can enter:

- the input embeddings: `sinusoidal_encoding`, `sinusoidal_encoding_2d`,
  `LearnedPositionalEmbedding`;
- the attention logits: `ShawRelativeEmbedding` (Shaw et al., 2018),
  `RelativePositionBias` with `t5_relative_position_bucket` (Raffel et al., 2020),
  `alibi_bias` (Press et al., 2022);
- the queries and keys: `apply_rope` (Su et al., RoFormer).
"""

import math

import torch
from torch import Tensor, nn

from companion.validation import check_float_tensor, check_positive_int


def _relative_positions(q_len: int, k_len: int) -> Tensor:
    """``j - i`` for the queries at the last ``q_len`` of ``k_len`` positions (as
    when decoding with a cache): a (q_len, k_len) integer tensor."""
    check_positive_int(q_len, "q_len")
    check_positive_int(k_len, "k_len")
    if q_len > k_len:
        raise ValueError(f"q_len={q_len} cannot exceed k_len={k_len}")
    query_position = torch.arange(k_len - q_len, k_len)
    return torch.arange(k_len)[None, :] - query_position[:, None]


def _check_base(base: object) -> None:
    if isinstance(base, bool) or not (
        isinstance(base, (int, float)) and 1 < base < math.inf
    ):
        raise ValueError(f"base must be a finite number greater than 1, got {base!r}")


def sinusoidal_encoding(
    num_positions: int, d_model: int, base: float = 10000.0
) -> Tensor:
    """The sinusoidal position encoding of the Transformer, one row per position.

    Equation (Vaswani et al., 2017, section 3.5):
    ``PE[p, 2i] = sin(p / base^(2i/d))`` and ``PE[p, 2i+1] = cos(p / base^(2i/d))``
    for ``i = 0 .. d/2 - 1``. No parameters; the wavelengths ``2 pi base^(2i/d)``
    grow geometrically from ``2 pi`` (Part 4, chapter 2).

    Returns a float32 tensor of shape (num_positions, d_model); ``d_model`` must be
    even.
    """
    check_positive_int(num_positions, "num_positions")
    check_positive_int(d_model, "d_model")
    if d_model % 2:
        raise ValueError(f"d_model must be even (sin/cos pairs), got {d_model}")
    _check_base(base)
    position = torch.arange(num_positions, dtype=torch.float64)[:, None]
    frequency = base ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    angle = position * frequency  # (num_positions, d_model / 2)
    encoding = torch.empty(num_positions, d_model, dtype=torch.float64)
    encoding[:, 0::2] = torch.sin(angle)
    encoding[:, 1::2] = torch.cos(angle)
    return encoding.to(torch.float32)


def sinusoidal_encoding_2d(
    height: int, width: int, d_model: int, base: float = 10000.0
) -> Tensor:
    """A 2-D sinusoidal encoding for a grid of image patches, in raster order.

    The first ``d_model / 2`` dimensions are the 1-D `sinusoidal_encoding` of the
    row, the last ``d_model / 2`` that of the column, so that shifting a patch
    along either axis is a rotation of the corresponding half (Part 4, chapter 4).

    Returns a float32 tensor of shape (height * width, d_model), row ``r * width +
    c`` for the patch in row ``r``, column ``c``; ``d_model`` must be a multiple of 4.
    """
    check_positive_int(height, "height")
    check_positive_int(width, "width")
    check_positive_int(d_model, "d_model")
    if d_model % 4:
        raise ValueError(
            f"d_model must be a multiple of 4 (two sin/cos halves), got {d_model}"
        )
    half = d_model // 2
    rows = sinusoidal_encoding(height, half, base)
    columns = sinusoidal_encoding(width, half, base)
    grid_rows = rows[:, None, :].expand(height, width, half)
    grid_columns = columns[None, :, :].expand(height, width, half)
    return torch.cat([grid_rows, grid_columns], dim=-1).reshape(height * width, d_model)


class LearnedPositionalEmbedding(nn.Module):
    """One learned vector per absolute position, as in BERT (Devlin et al., 2019) and
    GPT; the Transformer paper found it "nearly identical" to sinusoids (Vaswani et
    al., 2017, table 3). It has no vector for positions ``>= max_len`` (Part 4,
    chapter 2).
    """

    def __init__(self, max_len: int, d_model: int):
        super().__init__()
        check_positive_int(max_len, "max_len")
        check_positive_int(d_model, "d_model")
        self.max_len = max_len
        self.embedding = nn.Embedding(max_len, d_model)

    def forward(self, positions: Tensor | int) -> Tensor:
        """Embeddings of ``positions`` (an integer tensor), or of ``0 .. n-1`` for an
        integer ``n``; the result has shape ``(*positions.shape, d_model)``."""
        if isinstance(positions, int) and not isinstance(positions, bool):
            check_positive_int(positions, "the sequence length")
            positions = torch.arange(positions, device=self.embedding.weight.device)
        if (
            not isinstance(positions, Tensor)
            or positions.is_floating_point()
            or positions.dtype == torch.bool
        ):
            raise ValueError("positions must be an integer tensor or a sequence length")
        if positions.numel() and (
            positions.min() < 0 or positions.max() >= self.max_len
        ):
            raise ValueError(
                f"positions must lie in [0, {self.max_len}): a learned embedding "
                f"has no vector beyond; got range "
                f"[{int(positions.min())}, {int(positions.max())}]"
            )
        return self.embedding(positions)


def apply_rope(
    x: Tensor, positions: Tensor | None = None, base: float = 10000.0
) -> Tensor:
    """Rotary position embedding: rotate each pair ``(x_2i, x_2i+1)`` by ``p theta_i``.

    Equation (Su et al., RoFormer, eq. 13-15): with ``theta_i = base^(-2i/d)``,
    ``(x_2i, x_2i+1) -> (x_2i cos(p theta_i) - x_2i+1 sin(p theta_i),
    x_2i sin(p theta_i) + x_2i+1 cos(p theta_i))`` for a vector at position ``p``.
    Applied to queries and keys, ``rope(q, m) . rope(k, n)`` depends on the
    positions only through ``m - n`` (Part 4, chapter 3). Adjacent pairs, as in
    the paper; "rotate-half" libraries pair ``j`` with ``j + d/2`` instead.

    Shapes: ``x`` (..., seq, d) with even ``d``; ``positions`` (seq,), integer or
    float (fractional positions allow position interpolation), default
    ``0 .. seq-1``. The result has the shape and dtype of ``x``.
    """
    check_float_tensor(x, "x")
    if x.dim() < 2:
        raise ValueError(f"x must have shape (..., seq, d), got {tuple(x.shape)}")
    seq, d = x.shape[-2], x.shape[-1]
    if d % 2:
        raise ValueError(f"the last axis must have even size (pairs), got {d}")
    _check_base(base)
    if positions is None:
        positions = torch.arange(seq, device=x.device)
    if not isinstance(positions, Tensor) or positions.shape != (seq,):
        shape = tuple(positions.shape) if isinstance(positions, Tensor) else positions
        raise ValueError(f"positions must be a tensor of shape ({seq},), got {shape}")
    if positions.dtype == torch.bool or not torch.isfinite(positions.double()).all():
        raise ValueError("positions must be finite integers or floats, not booleans")
    theta = base ** (-torch.arange(0, d, 2, dtype=torch.float64, device=x.device) / d)
    angle = positions.to(device=x.device, dtype=torch.float64)[:, None] * theta
    cos, sin = torch.cos(angle).to(x.dtype), torch.sin(angle).to(x.dtype)
    even, odd = x[..., 0::2], x[..., 1::2]
    rotated = torch.empty_like(x)
    rotated[..., 0::2] = even * cos - odd * sin
    rotated[..., 1::2] = even * sin + odd * cos
    return rotated


def alibi_slopes(num_heads: int) -> Tensor:
    """The head-specific slopes of ALiBi (Press, Smith & Lewis, 2022, section 3).

    For ``n`` heads, ``n`` a power of two, the slopes are the geometric sequence
    ``2^(-8/n), 2^(-16/n), ..., 2^(-8)``. Otherwise, as in the paper's code: the
    slopes for the largest power of two ``n' < n``, followed by every other slope
    of ``2 n'`` heads, until there are ``n`` (Part 4, chapter 3).
    """
    check_positive_int(num_heads, "num_heads")

    def power_of_two(n: int) -> list[float]:
        start = 2.0 ** (-8.0 / n)
        return [start ** (i + 1) for i in range(n)]

    if num_heads & (num_heads - 1) == 0:
        slopes = power_of_two(num_heads)
    else:
        closest = 2 ** math.floor(math.log2(num_heads))
        extra = alibi_slopes(2 * closest).tolist()[0::2][: num_heads - closest]
        slopes = power_of_two(closest) + extra
    return torch.tensor(slopes, dtype=torch.float64)


def alibi_bias(num_heads: int, q_len: int, k_len: int) -> Tensor:
    """ALiBi's additive attention bias: ``-m_h |i - j|`` for query ``i``, key ``j``.

    Press et al. (2022, eq. in section 3) add ``m_h (j - i)`` to the (already scaled)
    score of a causal model, where ``j <= i``; that is ``-m_h |i - j|``. The
    queries are the last ``q_len`` of the ``k_len`` positions (as when decoding with
    a cache). For keys after the query, which a causal mask removes anyway, the
    same symmetric penalty is used (Part 4, chapter 3).

    Returns a float32 tensor of shape (num_heads, q_len, k_len); pass it as the
    ``bias`` of `companion.attention.scaled_dot_product_attention`.
    """
    slopes = alibi_slopes(num_heads)
    distance = _relative_positions(q_len, k_len).abs().to(torch.float64)
    return (0.0 - slopes[:, None, None] * distance).to(torch.float32)  # no -0.0


def t5_relative_position_bucket(
    relative_position: Tensor,
    bidirectional: bool = True,
    num_buckets: int = 32,
    max_distance: int = 128,
) -> Tensor:
    """Map relative positions (key index - query index) to T5's buckets.

    Raffel et al. (2020, section 2.1): half of the buckets (with ``bidirectional``)
    hold keys before the query, half keys after it. Within a half, distances below
    ``num_buckets / 4`` (or ``/ 2`` when unidirectional) get one bucket each;
    larger distances share buckets whose width grows logarithmically up to
    ``max_distance``; everything farther shares the last bucket (Part 4, chapter 3).

    Shapes: ``relative_position`` integer tensor of any shape; the result has the
    same shape, values in ``[0, num_buckets)``.
    """
    if (
        not isinstance(relative_position, Tensor)
        or relative_position.is_floating_point()
        or relative_position.dtype == torch.bool
    ):
        raise ValueError("relative_position must be an integer tensor")
    check_positive_int(num_buckets, "num_buckets")
    check_positive_int(max_distance, "max_distance")
    buckets = num_buckets // 2 if bidirectional else num_buckets
    max_exact = buckets // 2
    if max_exact < 1 or max_distance <= max_exact:
        raise ValueError(
            f"need max_distance > exact range, got num_buckets={num_buckets}, "
            f"max_distance={max_distance}"
        )
    n = -relative_position.long()  # query index - key index
    result = torch.zeros_like(n)
    if bidirectional:
        result = result + (n < 0).long() * buckets  # keys after the query
        n = n.abs()
    else:
        n = n.clamp(min=0)  # keys after the query share bucket 0
    scaled = torch.log(n.double().clamp(min=1) / max_exact) / math.log(
        max_distance / max_exact
    )
    large = max_exact + (scaled * (buckets - max_exact)).long()
    large = large.clamp(max=buckets - 1)
    return result + torch.where(n < max_exact, n, large)


class RelativePositionBias(nn.Module):
    """T5's relative attention bias: one learned scalar per (bucket, head), added to
    the attention logits (Raffel et al., 2020; Part 4, chapter 3). T5 shares one
    such table across all layers of a stack; its decoder uses the unidirectional
    buckets (``bidirectional=False``)."""

    def __init__(
        self,
        num_heads: int,
        bidirectional: bool = True,
        num_buckets: int = 32,
        max_distance: int = 128,
    ):
        super().__init__()
        check_positive_int(num_heads, "num_heads")
        self.bidirectional, self.num_buckets = bidirectional, num_buckets
        self.max_distance = max_distance
        t5_relative_position_bucket(
            torch.zeros(1, dtype=torch.long), bidirectional, num_buckets, max_distance
        )  # validates the sizes
        self.bias = nn.Embedding(num_buckets, num_heads)

    def forward(self, q_len: int, k_len: int) -> Tensor:
        """The bias, of shape (num_heads, q_len, k_len); the queries are the last
        ``q_len`` of the ``k_len`` positions."""
        relative = _relative_positions(q_len, k_len)
        buckets = t5_relative_position_bucket(
            relative.to(self.bias.weight.device),
            self.bidirectional,
            self.num_buckets,
            self.max_distance,
        )
        return self.bias(buckets).permute(2, 0, 1)


class ShawRelativeEmbedding(nn.Module):
    """Learned embeddings of clipped relative distances (Shaw, Uszkoreit & Vaswani,
    2018, eqs. 3-5): ``a_ij = w[clip(j - i, -k, k)]``, one vector per distance in
    ``[-k, k]``. Used as ``e_ij = q_i . (k_j + a_ij) / sqrt(d)`` (see
    `relative_scores`; Part 4, chapter 3).
    """

    def __init__(self, max_distance: int, dim: int):
        super().__init__()
        check_positive_int(max_distance, "max_distance")
        check_positive_int(dim, "dim")
        self.max_distance = max_distance
        self.embedding = nn.Embedding(2 * max_distance + 1, dim)

    def forward(self, q_len: int, k_len: int) -> Tensor:
        """The embeddings ``a_ij``, of shape (q_len, k_len, dim); the queries are
        the last ``q_len`` of the ``k_len`` positions."""
        relative = _relative_positions(q_len, k_len)
        clipped = relative.clamp(-self.max_distance, self.max_distance)
        return self.embedding(
            clipped.to(self.embedding.weight.device) + self.max_distance
        )


def relative_scores(q: Tensor, k: Tensor, relative: Tensor) -> Tensor:
    """Shaw et al.'s attention logits ``e_ij = q_i . (k_j + a_ij) / sqrt(d)``.

    Shapes: ``q`` (..., q_len, d), ``k`` (..., k_len, d), ``relative`` (q_len, k_len,
    d) from `ShawRelativeEmbedding`; the result is (..., q_len, k_len), to be
    softmaxed over the keys (Part 4, chapter 3).
    """
    for name, t in (("q", q), ("k", k), ("relative", relative)):
        check_float_tensor(t, name)
    expected = (q.shape[-2], k.shape[-2], q.shape[-1])
    if k.shape[-1] != q.shape[-1] or tuple(relative.shape) != expected:
        raise ValueError(
            "need q (..., q_len, d), k (..., k_len, d), relative (q_len, k_len, d); "
            f"got q {tuple(q.shape)}, k {tuple(k.shape)}, "
            f"relative {tuple(relative.shape)}"
        )
    content = q @ k.transpose(-2, -1)
    position = torch.einsum("...qd,qkd->...qk", q, relative)
    return (content + position) / math.sqrt(q.shape[-1])
