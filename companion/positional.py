"""Positional encodings: how a Transformer learns where each token is (Part 4).

Three places where position can enter:

- the input embeddings: `sinusoidal_encoding`, `sinusoidal_encoding_2d`,
  `LearnedPositionalEmbedding`;
- the attention logits: `ShawRelativeEmbedding` (Shaw et al., 2018),
  `RelativePositionBias` with `t5_relative_position_bucket` (Raffel et al., 2020),
  `alibi_bias` (Press et al., 2022);
- the queries and keys: `apply_rope` (Su et al., RoFormer), with its cos/sin
  table `rope_cache`, and `apply_rope_2d` for a grid of image patches.

`SCHEMES` names them all, with where each acts; the models of Parts 5 and 6 take
one of these names.
"""

import math

import torch
from torch import Tensor, nn

from companion.softmax import accumulation_dtype
from companion.validation import (
    check_base,
    check_bucket_sizes,
    check_divisible,
    check_encoding_sizes,
    check_finite,
    check_float_dtype,
    check_ids,
    check_index_tensor,
    check_positive_int,
    check_relative_inputs,
    check_rope_2d_inputs,
    check_rope_inputs,
    check_rope_options,
    check_rope_queries_and_keys,
    check_sizes,
)

#: The positional schemes of the course and where each one acts (Part 4,
#: chapter 3): on the input embeddings, on the queries and keys, or on the
#: attention scores; "none" adds no position at all.
SCHEMES = {
    "none": "nowhere",
    "sinusoidal": "embeddings",
    "sinusoidal_2d": "embeddings",
    "learned": "embeddings",
    "rope": "queries and keys",
    "alibi": "scores",
    "t5": "scores",
}


def _relative_positions(
    q_len: int, k_len: int, device: torch.device | str | None = None
) -> Tensor:
    """``j - i`` for the queries at the last ``q_len`` of ``k_len`` positions (as
    when decoding with a cache): a (q_len, k_len) integer tensor on ``device``."""
    check_sizes(q_len=q_len, k_len=k_len)
    if q_len > k_len:
        raise ValueError(f"q_len={q_len} cannot exceed k_len={k_len}")
    key_position = torch.arange(k_len, device=device)
    return key_position[None, :] - key_position[k_len - q_len :, None]


def sinusoidal_encoding(
    num_positions: int,
    d_model: int,
    base: float = 10000.0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """The sinusoidal position encoding of the Transformer, one row per position.

    Equation (Vaswani et al., 2017, section 3.5):
    ``PE[p, 2i] = sin(p / base^(2i/d))`` and ``PE[p, 2i+1] = cos(p / base^(2i/d))``
    for ``i = 0 .. d/2 - 1``. No parameters; the wavelengths ``2 pi base^(2i/d)``
    grow geometrically from ``2 pi`` (Part 4, chapter 2).

    Returns a tensor of shape (num_positions, d_model), computed in float64 and
    given ``dtype`` (default float32) on ``device``; ``d_model`` must be even.
    """
    check_encoding_sizes(d_model, 2, base, num_positions=num_positions)
    check_float_dtype(dtype)
    position = torch.arange(num_positions, dtype=torch.float64, device=device)
    i = torch.arange(0, d_model, 2, dtype=torch.float64, device=device)  # 2i
    angle = position[:, None] * base ** (-i / d_model)  # (num_positions, d_model / 2)
    encoding = torch.stack([torch.sin(angle), torch.cos(angle)], dim=-1)  # pairs
    return encoding.reshape(num_positions, d_model).to(dtype)


def sinusoidal_encoding_2d(
    height: int,
    width: int,
    d_model: int,
    base: float = 10000.0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """A 2-D sinusoidal encoding for a grid of image patches, in raster order.

    The first ``d_model / 2`` dimensions are the 1-D `sinusoidal_encoding` of the
    row, the last ``d_model / 2`` that of the column, so that shifting a patch
    along either axis is a rotation of the corresponding half (Part 4, chapter 4).

    Returns a tensor of shape (height * width, d_model) (``dtype``, on ``device``),
    row ``r * width + c`` for the patch in row ``r``, column ``c``; ``d_model``
    must be a multiple of 4.
    """
    check_encoding_sizes(d_model, 4, base, height=height, width=width)
    check_float_dtype(dtype)
    half = d_model // 2
    rows = sinusoidal_encoding(height, half, base, device, dtype)
    columns = sinusoidal_encoding(width, half, base, device, dtype)
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
        check_sizes(max_len=max_len, d_model=d_model)
        self.max_len = max_len
        self.embedding = nn.Embedding(max_len, d_model)

    def forward(self, positions: Tensor | int) -> Tensor:
        """Embeddings of ``positions`` (an integer tensor), or of ``0 .. n-1`` for an
        integer ``n``; the result has shape ``(*positions.shape, d_model)``."""
        if not isinstance(positions, Tensor):
            check_positive_int(positions, "positions (a sequence length)")
            positions = torch.arange(positions, device=self.embedding.weight.device)
        check_index_tensor(positions, "positions")
        check_ids(positions, self.max_len, "positions (a learned table has no more)")
        return self.embedding(positions)


def apply_rope(
    x: Tensor,
    positions: Tensor | None = None,
    base: float = 10000.0,
    offset: int = 0,
    rotary_dim: int | None = None,
    cache: Tensor | None = None,
) -> Tensor:
    """Rotary position embedding: rotate each pair ``(x_2j, x_2j+1)`` by ``m theta_j``.

    Equation (Su et al., RoFormer, eq. 13-15): with ``theta_j = base^(-2j/d)``,
    ``(x_2j, x_2j+1) -> (x_2j cos(m theta_j) - x_2j+1 sin(m theta_j),
    x_2j sin(m theta_j) + x_2j+1 cos(m theta_j))`` for a vector at position ``m``;
    in complex form (section 3.2), ``x_2j + i x_2j+1`` times ``e^(i m theta_j)``.
    Applied to queries and keys, ``rope(q, m) . rope(k, n)`` depends on the
    positions only through ``m - n`` (Part 4, chapter 3). Adjacent pairs, as in
    the paper; "rotate-half" libraries pair ``j`` with ``j + d/2`` instead.

    Shapes: ``x`` (..., seq, d) with even ``d``; ``positions`` (seq,), integer or
    float (fractional positions allow position interpolation), default
    ``0 .. seq-1``. ``offset`` is added to every position: the length of a
    key-value cache, when the ``seq`` new tokens follow ``offset`` earlier ones.
    ``rotary_dim`` (even, default ``d``) rotates only the first ``rotary_dim``
    dimensions, with ``d`` replaced by ``rotary_dim`` in ``theta_j``, and passes
    the others through (partial rotary, as in GPT-NeoX, Black et al., 2022).
    ``cache`` is the table of `rope_cache` (its ``base`` replaces ``base``): the
    cos and sin of integer positions are read from it instead of computed.
    The result has the shape and dtype of ``x`` (float16 and bfloat16 are rotated
    in float32).
    """
    seq, d = check_rope_inputs(x, positions, base)
    rotary_dim = check_rope_options(x, positions, offset, rotary_dim, cache)
    if positions is None:
        positions = torch.arange(seq, device=x.device)
    if cache is None:
        theta = base ** (
            -torch.arange(0, rotary_dim, 2, dtype=torch.float64, device=x.device)
            / rotary_dim
        )
        angle = (positions.to(torch.float64)[:, None] + offset) * theta  # m theta_j
        cos, sin = torch.cos(angle), torch.sin(angle)
    else:
        cos, sin = cache[:, positions.long() + offset]  # rows m of the table
    wide = accumulation_dtype(x.dtype)  # half precision: rotate in float32
    cos, sin = cos.to(wide), sin.to(wide)
    even, odd = x[..., 0:rotary_dim:2].to(wide), x[..., 1:rotary_dim:2].to(wide)
    rotated = x.to(wide).clone()  # dimensions past rotary_dim pass through
    rotated[..., 0:rotary_dim:2] = even * cos - odd * sin
    rotated[..., 1:rotary_dim:2] = even * sin + odd * cos
    return rotated.to(x.dtype)


def rope_cache(
    max_len: int,
    dim: int,
    base: float = 10000.0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """The cos and sin of RoPE's angles ``m theta_j`` for positions ``0 ..
    max_len-1``, computed once and read by `apply_rope` (``cache=``) in every
    layer and at every decoding step.

    Equation (Su et al., RoFormer, eq. 15): ``theta_j = base^(-2j/dim)``,
    ``j = 0 .. dim/2 - 1``; ``dim`` is the number of rotated dimensions (the
    head dimension, or ``rotary_dim``). Computed in float64, then given ``dtype``
    (default float32) on ``device`` (Part 4, chapter 3).

    Returns a tensor of shape (2, max_len, dim / 2): ``cos, sin = rope_cache(...)``.
    """
    check_sizes(max_len=max_len)
    check_divisible(dim, 2, "dim", "pair_size")  # (cos, sin) pairs
    check_base(base)
    check_float_dtype(dtype)
    theta = base ** (-torch.arange(0, dim, 2, dtype=torch.float64, device=device) / dim)
    position = torch.arange(max_len, dtype=torch.float64, device=device)
    angle = position[:, None] * theta  # (max_len, dim / 2): m theta_j
    return torch.stack([torch.cos(angle), torch.sin(angle)]).to(dtype)


def apply_rope_2d(x: Tensor, height: int, width: int, base: float = 10000.0) -> Tensor:
    """Axial 2-D RoPE for a grid of image patches in raster order.

    Equation: the first ``d / 2`` dimensions are rotated by the patch's row ``r``
    and the last ``d / 2`` by its column ``c``, each half as in `apply_rope` (with
    ``d / 2`` in ``theta_j``), so that ``rope2d(q, (r, c)) . rope2d(k, (r', c'))``
    depends on the positions only through ``(r - r', c - c')``. The axial variant
    of RoPE for Vision Transformers (Heo et al., 2024), with the halves in the
    order of `sinusoidal_encoding_2d` (Part 4, chapter 4). Heo et al.'s code uses
    base 100 for its axial models and puts the column half first: the order is a
    permutation of the dimensions and the base changes only the wavelengths, not
    the relative property.

    Shapes: ``x`` (..., height * width, d), row ``r * width + c`` the patch in
    row ``r``, column ``c``; ``d`` a multiple of 4. The result has the shape and
    dtype of ``x``.
    """
    check_rope_2d_inputs(x, height, width, base)
    half = x.shape[-1] // 2
    rows = torch.arange(height, device=x.device).repeat_interleave(width)  # r
    columns = torch.arange(width, device=x.device).repeat(height)  # c
    return torch.cat(
        [
            apply_rope(x[..., :half], rows, base),
            apply_rope(x[..., half:], columns, base),
        ],
        dim=-1,
    )


def rope_queries_and_keys(
    q: Tensor, k: Tensor, scale: float = 1.0, base: float = 10000.0
) -> tuple[Tensor, Tensor]:
    """RoPE where a Transformer uses it: on the queries and keys of every head.

    The keys sit at positions ``0 .. k_len-1`` and the queries at the last
    ``q_len`` of them (as when decoding with a cache); every position is
    multiplied by ``scale``: position interpolation (Chen et al., 2023) uses
    train length / test length (Part 5, chapter 3). Pass it (or a
    ``functools.partial`` of it) as ``rotate`` to
    `companion.attention.MultiHeadAttention`.

    Shapes: ``q`` (..., q_len, d), ``k`` (..., k_len, d), ``q_len <= k_len``;
    the results have the same shapes.
    """
    q_len, k_len = check_rope_queries_and_keys(q, k, scale, base)
    positions = torch.arange(k_len, dtype=torch.float64, device=k.device) * scale
    return apply_rope(q, positions[k_len - q_len :], base), apply_rope(
        k, positions, base
    )


def alibi_slopes(num_heads: int, device: torch.device | str | None = None) -> Tensor:
    """The head-specific slopes of ALiBi (Press, Smith & Lewis, 2022, section 3).

    For ``H`` heads, ``H`` a power of two, the slopes ``s_h`` are the geometric
    sequence ``2^(-8/H), 2^(-16/H), ..., 2^(-8)``. Otherwise, as in the paper's code:
    the slopes for the largest power of two ``H' < H``, followed by every other
    slope of ``2 H'`` heads, until there are ``H`` (Part 4, chapter 3).
    """
    check_positive_int(num_heads, "num_heads")

    def power_of_two(n: int) -> list[float]:
        start = 2.0 ** (-8.0 / n)
        return [start ** (i + 1) for i in range(n)]

    if num_heads & (num_heads - 1) == 0:
        slopes = power_of_two(num_heads)
    else:
        closest = 2 ** math.floor(math.log2(num_heads))
        extra = power_of_two(2 * closest)[0::2][: num_heads - closest]
        slopes = power_of_two(closest) + extra
    return torch.tensor(slopes, dtype=torch.float64, device=device)


def alibi_bias(
    num_heads: int,
    q_len: int,
    k_len: int,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """ALiBi's additive attention bias: ``-s_h |i - j|`` for query ``i``, key ``j``.

    Press et al. (2022, eq. in section 3) add ``s_h (j - i)`` (their slope ``m``) to
    the (already scaled) score of a causal model, where ``j <= i``; that is
    ``-s_h |i - j|``. The
    queries are the last ``q_len`` of the ``k_len`` positions (as when decoding with
    a cache). For keys after the query, which a causal mask removes anyway, the
    same symmetric penalty is used (Part 4, chapter 3).

    Returns a tensor of shape (num_heads, q_len, k_len) (``dtype``, default
    float32, on ``device``); pass it as the ``bias`` of
    `companion.attention.scaled_dot_product_attention`.
    """
    check_float_dtype(dtype)
    slopes = alibi_slopes(num_heads, device)
    distance = _relative_positions(q_len, k_len, device).abs().to(torch.float64)
    return (0.0 - slopes[:, None, None] * distance).to(dtype)  # 0.0 - : no -0.0


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
    check_index_tensor(relative_position, "relative_position")
    check_bucket_sizes(bidirectional, num_buckets, max_distance)
    buckets = num_buckets // 2 if bidirectional else num_buckets
    max_exact = buckets // 2
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
        check_bucket_sizes(bidirectional, num_buckets, max_distance)
        self.bidirectional, self.num_buckets = bidirectional, num_buckets
        self.max_distance = max_distance
        self.bias = nn.Embedding(num_buckets, num_heads)

    def forward(self, q_len: int, k_len: int) -> Tensor:
        """The bias, of shape (num_heads, q_len, k_len); the queries are the last
        ``q_len`` of the ``k_len`` positions."""
        relative = _relative_positions(q_len, k_len, self.bias.weight.device)
        buckets = t5_relative_position_bucket(
            relative,
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
        check_sizes(max_distance=max_distance, dim=dim)
        self.max_distance = max_distance
        self.embedding = nn.Embedding(2 * max_distance + 1, dim)

    def forward(self, q_len: int, k_len: int) -> Tensor:
        """The embeddings ``a_ij``, of shape (q_len, k_len, dim); the queries are
        the last ``q_len`` of the ``k_len`` positions."""
        relative = _relative_positions(q_len, k_len, self.embedding.weight.device)
        clipped = relative.clamp(-self.max_distance, self.max_distance)
        return self.embedding(clipped + self.max_distance)


def relative_scores(q: Tensor, k: Tensor, relative: Tensor) -> Tensor:
    """Shaw et al.'s attention logits ``e_ij = q_i . (k_j + a_ij) / sqrt(d)``.

    Shapes: ``q`` (..., q_len, d), ``k`` (..., k_len, d), ``relative`` (q_len, k_len,
    d) from `ShawRelativeEmbedding`; the result is (..., q_len, k_len), to be
    softmaxed over the keys (Part 4, chapter 3).
    """
    check_relative_inputs(q, k, relative)
    dtype, wide = q.dtype, accumulation_dtype(q.dtype)  # half: sums in float32
    content = q.to(wide) @ k.to(wide).transpose(-2, -1)
    position = torch.einsum("...qd,qkd->...qk", q.to(wide), relative.to(wide))
    scores = ((content + position) / math.sqrt(q.shape[-1])).to(dtype)
    check_finite(scores, f"the scores of q, k and relative in {dtype}")
    return scores
