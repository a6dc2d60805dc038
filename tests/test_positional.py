import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from companion.attention import causal_mask, scaled_dot_product_attention
from companion.positional import (
    LearnedPositionalEmbedding,
    RelativePositionBias,
    ShawRelativeEmbedding,
    alibi_bias,
    alibi_slopes,
    apply_rope,
    apply_rope_2d,
    relative_scores,
    rope_cache,
    sinusoidal_encoding,
    sinusoidal_encoding_2d,
    t5_relative_position_bucket,
)


def test_sinusoidal_values_by_hand():
    d = 8
    pe = sinusoidal_encoding(20, d)
    assert pe.shape == (20, d) and pe.dtype == torch.float32
    for p in (0, 1, 7, 19):
        for i in range(d // 2):
            angle = p / 10000 ** (2 * i / d)
            assert math.isclose(pe[p, 2 * i].item(), math.sin(angle), abs_tol=1e-7)
            assert math.isclose(pe[p, 2 * i + 1].item(), math.cos(angle), abs_tol=1e-7)


def test_sinusoidal_shift_is_a_linear_map():
    # PE(p + k) = M_k PE(p), with M_k block-diagonal rotations (Vaswani et al., 3.5).
    d, k = 16, 5
    pe = sinusoidal_encoding(60, d, base=100.0).double()
    frequency = 100.0 ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    M = torch.zeros(d, d, dtype=torch.float64)
    for i, w in enumerate(frequency):
        c, s = math.cos(k * w), math.sin(k * w)
        M[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = torch.tensor([[c, s], [-s, c]])
    assert torch.allclose(pe[k:], pe[:-k] @ M.T, atol=1e-6)


def test_sinusoidal_2d_is_row_and_column_encodings():
    grid = sinusoidal_encoding_2d(3, 5, 16)
    assert grid.shape == (15, 16)
    rows, columns = sinusoidal_encoding(3, 8), sinusoidal_encoding(5, 8)
    for r in range(3):
        for c in range(5):
            assert torch.equal(grid[r * 5 + c], torch.cat([rows[r], columns[c]]))
    with pytest.raises(ValueError, match="multiple of 4"):
        sinusoidal_encoding_2d(2, 2, 6)


def test_learned_embedding_and_its_length_limit():
    embedding = LearnedPositionalEmbedding(max_len=10, d_model=4)
    assert embedding(6).shape == (6, 4)
    assert torch.equal(
        embedding(torch.tensor([3, 3])), embedding.embedding.weight[[3, 3]]
    )
    with pytest.raises(
        ValueError,
        match=r"positions \(a learned table has no more\) must lie in \[0, 10\)",
    ):
        embedding(11)
    with pytest.raises(ValueError, match="positions must be an int64 or int32 tensor"):
        embedding(torch.tensor([0.5]))


def rotate_by_complex_numbers(x, positions, base=10000.0):
    """Reference: pairs (2i, 2i+1) as complex numbers times exp(i p theta_i)."""
    d = x.shape[-1]
    z = torch.view_as_complex(x.double().reshape(*x.shape[:-1], d // 2, 2).contiguous())
    theta = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    rotation = torch.polar(
        torch.ones(len(positions), d // 2, dtype=torch.float64),
        positions.double()[:, None] * theta,
    )
    return torch.view_as_real(z * rotation).reshape(x.shape)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**16), seq=st.integers(1, 9), half=st.integers(1, 8))
def test_rope_equals_complex_rotation_and_preserves_norms(seed, seq, half):
    x = torch.randn(
        2,
        seq,
        2 * half,
        generator=torch.Generator().manual_seed(seed),
        dtype=torch.float64,
    )
    positions = torch.arange(seq) * 3 + 1
    rotated = apply_rope(x, positions)
    assert torch.allclose(rotated, rotate_by_complex_numbers(x, positions), atol=1e-12)
    assert torch.allclose(rotated.norm(dim=-1), x.norm(dim=-1))
    assert torch.allclose(
        apply_rope(x), rotate_by_complex_numbers(x, torch.arange(seq))
    )


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    m=st.integers(0, 500),
    n=st.integers(0, 500),
    shift=st.integers(-200, 200),
)
def test_rope_relative_property(seed, m, n, shift):
    g = torch.Generator().manual_seed(seed)
    q, k = (
        torch.randn(1, 16, generator=g, dtype=torch.float64),
        torch.randn(1, 16, generator=g, dtype=torch.float64),
    )

    def score(a, b):
        return (
            apply_rope(q, torch.tensor([a])) @ apply_rope(k, torch.tensor([b])).T
        ).item()

    if min(m + shift, n + shift) >= 0:
        assert math.isclose(score(m, n), score(m + shift, n + shift), abs_tol=1e-9)


def test_alibi_slopes_match_the_paper():
    assert alibi_slopes(8).tolist() == [2.0**-i for i in range(1, 9)]
    assert torch.allclose(
        alibi_slopes(16),
        torch.tensor([2.0 ** (-i / 2) for i in range(1, 17)], dtype=torch.float64),
    )
    # 12 heads: the 8-head slopes, then every other 16-head slope (the paper's code).
    twelve = [2.0**-i for i in range(1, 9)] + [
        2.0**-0.5,
        2.0**-1.5,
        2.0**-2.5,
        2.0**-3.5,
    ]
    assert torch.allclose(alibi_slopes(12), torch.tensor(twelve, dtype=torch.float64))
    assert len(alibi_slopes(6)) == 6 and torch.allclose(
        alibi_slopes(1), torch.tensor([2.0**-8], dtype=torch.float64)
    )


def test_alibi_bias():
    bias = alibi_bias(num_heads=2, q_len=2, k_len=4)
    # queries are positions 2 and 3; bias = -slope * |i - j|
    expected_head0 = -0.0625 * torch.tensor([[2.0, 1, 0, 1], [3, 2, 1, 0]])
    assert torch.allclose(bias[0], expected_head0)
    assert torch.allclose(bias[1], expected_head0 / 16)
    # Added to the scores, it equals the causal ALiBi of the paper on j <= i.
    q = k = v = torch.randn(1, 2, 4, 8, dtype=torch.float64)
    out, weights = scaled_dot_product_attention(
        q, k, v, bias=alibi_bias(2, 4, 4).double()
    )
    assert torch.allclose(weights.sum(-1), torch.ones(1, 2, 4, dtype=torch.float64))


# Relative positions (key index - query index, the same convention as mesh-tensorflow's
# memory_position - query_position): the exact range, the first log buckets, values
# around 32 and 128 (each max_distance) and far beyond.
T5_RELATIVE = (
    [-1000, -129, -128, -127, -64, -63, -33, -32, -31, -17, -16, -15]
    + list(range(-10, 11))
    + [15, 16, 17, 31, 32, 33, 63, 64, 127, 128, 129, 500]
)


# Expected buckets computed with the reference implementation T5 uses:
# mesh-tensorflow's _relative_position_bucket (github.com/tensorflow/mesh,
# mesh_tensorflow/transformer/transformer_layers.py), transcribed line by line
# (float32 log, truncating int32 cast) and evaluated at T5_RELATIVE.
@pytest.mark.parametrize(
    ("bidirectional", "num_buckets", "max_distance", "expected"),
    [
        (
            True,
            32,
            128,
            [15, 15, 15, 15, 14, 13, 12, 12, 11, 10, 10, 9, 8, 8, 8, 7, 6, 5, 4, 3, 2]
            + [1, 0, 17, 18, 19, 20, 21, 22, 23, 24, 24, 24, 25, 26, 26, 27, 28, 28]
            + [29, 30, 31, 31, 31, 31],
        ),
        (
            False,
            32,
            128,
            [31, 31, 31, 31, 26, 26, 21, 21, 21, 16, 16, 15, 10, 9, 8, 7, 6, 5, 4, 3]
            + [2, 1, 0]
            + [0] * 22,  # keys after the query (1 to 500) all share bucket 0
        ),
        (
            True,
            32,
            32,
            [15, 15, 15, 15, 15, 15, 15, 15, 15, 12, 12, 11, 9, 8, 8, 7, 6, 5, 4, 3, 2]
            + [1, 0, 17, 18, 19, 20, 21, 22, 23, 24, 24, 25, 27, 28, 28, 31, 31, 31]
            + [31, 31, 31, 31, 31, 31],
        ),
    ],
)
def test_t5_buckets_match_mesh_tensorflow(
    bidirectional, num_buckets, max_distance, expected
):
    assert len(expected) == len(T5_RELATIVE)
    buckets = t5_relative_position_bucket(
        torch.tensor(T5_RELATIVE, dtype=torch.long),
        bidirectional,
        num_buckets,
        max_distance,
    )
    assert buckets.tolist() == expected
    wide = t5_relative_position_bucket(
        torch.arange(-300, 301), bidirectional, num_buckets, max_distance
    )
    assert wide.min() >= 0 and wide.max() < num_buckets


def test_t5_bucket_boundaries():
    b = dict(
        zip(
            range(-140, 141),
            t5_relative_position_bucket(torch.arange(-140, 141)).tolist(),
            strict=True,
        )
    )
    assert [b[r] for r in (0, -1, -7)] == [0, 1, 7]  # exact buckets for keys before
    assert [b[r] for r in (1, 7)] == [17, 23]  # keys after: offset 16
    assert b[-8] == 8 and b[-16] == 10 and b[-128] == b[-140] == 15


def hf_t5_bucket(relative_position, bidirectional, num_buckets=32, max_distance=128):
    """Hugging Face's ``T5Attention._relative_position_bucket`` (itself adapted from
    mesh-tensorflow), transcribed for one Python integer: key index - query index."""
    bucket = 0
    if bidirectional:
        num_buckets //= 2
        bucket += num_buckets if relative_position > 0 else 0
        distance = abs(relative_position)
    else:
        distance = -min(relative_position, 0)
    max_exact = num_buckets // 2
    if distance < max_exact:
        return bucket + distance
    large = max_exact + int(
        math.log(distance / max_exact)
        / math.log(max_distance / max_exact)
        * (num_buckets - max_exact)
    )
    return bucket + min(large, num_buckets - 1)


@pytest.mark.parametrize(
    ("bidirectional", "per_direction", "exact"), [(True, 16, 8), (False, 32, 16)]
)
def test_t5_last_bucket_starts_at_91_and_113(bidirectional, per_direction, exact):
    # Closed form: the last bucket starts at the first distance where
    # exact + log(distance / exact) / log(128 / exact) * (per_direction - exact)
    # reaches per_direction - 1.
    first = math.ceil(
        exact * (128 / exact) ** ((per_direction - exact - 1) / (per_direction - exact))
    )
    assert first == (91 if bidirectional else 113)
    relative = [-90, -91, -112, -113, 90, 91, -(first - 1), -first]
    buckets = t5_relative_position_bucket(torch.tensor(relative), bidirectional)
    assert buckets.tolist() == [hf_t5_bucket(r, bidirectional) for r in relative]
    assert hf_t5_bucket(-(first - 1), bidirectional) == per_direction - 2
    assert hf_t5_bucket(-first, bidirectional) == per_direction - 1
    if bidirectional:  # keys after the query: the same boundary, offset by 16
        assert [hf_t5_bucket(r, True) for r in (90, 91)] == [30, 31]


def test_relative_position_bias_module():
    torch.manual_seed(0)
    module = RelativePositionBias(num_heads=3)
    bias = module(4, 6)
    assert bias.shape == (3, 4, 6)
    # 4 queries at the last positions 2..5: query 2 is position 4; key 5 is at +1.
    bucket = t5_relative_position_bucket(torch.tensor(5 - 4))
    assert torch.equal(bias[:, 2, 5], module.bias.weight[bucket])


def test_relative_modules_place_queries_at_the_end_when_decoding():
    torch.manual_seed(0)
    bias = RelativePositionBias(2, bidirectional=False)
    assert torch.equal(bias(1, 5)[:, 0], bias(5, 5)[:, 4])
    shaw = ShawRelativeEmbedding(3, 4)
    assert torch.equal(shaw(1, 5)[0], shaw(5, 5)[4])
    assert torch.equal(alibi_bias(2, 1, 5)[:, 0], alibi_bias(2, 5, 5)[:, 4])


def test_shaw_relative_embedding_and_scores():
    torch.manual_seed(0)
    module = ShawRelativeEmbedding(max_distance=2, dim=4)
    table = module(3, 6)
    assert table.shape == (3, 6, 4)
    assert torch.equal(table[0, 5], module.embedding.weight[2 + 2])  # clipped to +2
    assert torch.equal(table[2, 0], module.embedding.weight[-2 + 2])  # clipped to -2
    # 3 queries at positions 3..5: query 1 is position 4, key 2 is at -2.
    assert torch.equal(table[1, 2], module.embedding.weight[-2 + 2])
    assert torch.equal(table[0, 4], module.embedding.weight[1 + 2])
    q, k = torch.randn(2, 3, 4), torch.randn(2, 6, 4)
    scores = relative_scores(q, k, table)
    by_hand = torch.stack(
        [
            torch.stack(
                [(q[:, i] * (k[:, j] + table[i, j])).sum(-1) / 2.0 for j in range(6)],
                -1,
            )
            for i in range(3)
        ],
        -2,
    )
    assert torch.allclose(scores, by_hand, atol=1e-6)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: sinusoidal_encoding(10, 7), "d_model must be a multiple of 2"),
        (lambda: sinusoidal_encoding(0, 8), "num_positions must be a positive integer"),
        (
            lambda: sinusoidal_encoding(10, 8, base=1.0),
            "base must be a finite number greater than 1",
        ),
        (lambda: apply_rope(torch.ones(3, 5)), "with d even"),
        (
            lambda: apply_rope(torch.ones(3, 4), torch.arange(2)),
            r"positions must be a tensor of shape \(3,\)",
        ),
        (lambda: apply_rope(torch.ones(4)), r"x must have shape \(\.\.\., seq, d\)"),
        (lambda: alibi_slopes(0), "num_heads must be a positive integer"),
        (lambda: alibi_bias(2, 5, 3), "q_len=5 cannot exceed k_len=3"),
        (
            lambda: t5_relative_position_bucket(torch.tensor([1.5])),
            "int64 or int32 tensor",
        ),
        (
            lambda: t5_relative_position_bucket(torch.tensor([True])),
            "int64 or int32 tensor",
        ),
        (
            lambda: apply_rope(torch.ones(2, 4), torch.tensor([True, False])),
            "must be numbers on x's device",
        ),
        (lambda: apply_rope(torch.ones(2, 4), torch.tensor([0.0, math.nan])), "finite"),
        (
            lambda: LearnedPositionalEmbedding(4, 2)(torch.tensor([True])),
            "int64 or int32 tensor",
        ),
        (lambda: RelativePositionBias(2)(4, 3), "q_len=4 cannot exceed k_len=3"),
        (
            lambda: t5_relative_position_bucket(
                torch.tensor([1]), num_buckets=4, max_distance=1
            ),
            "max_distance",
        ),
        (
            lambda: LearnedPositionalEmbedding(0, 4),
            "max_len must be a positive integer",
        ),
        (
            lambda: ShawRelativeEmbedding(0, 4),
            "max_distance must be a positive integer",
        ),
        (
            lambda: relative_scores(
                torch.ones(3, 4), torch.ones(5, 4), torch.ones(3, 4, 4)
            ),
            "need q",
        ),
    ],
)
def test_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# RoPE in full: the cos/sin cache, a key-value cache offset, partial rotary, 2-D ---


def llama_freqs_cis(dim, end, theta=10000.0):
    """Meta's LLaMA reference code (``precompute_freqs_cis``), in float64: the unit
    complex numbers ``e^(i p theta_j)`` for positions ``p < end``."""
    freqs = 1.0 / (theta ** (torch.arange(0, dim, 2)[: dim // 2].double() / dim))
    t = torch.arange(end, dtype=torch.float64)
    freqs = torch.outer(t, freqs)
    return torch.polar(torch.ones_like(freqs), freqs)


def llama_apply_rotary(x, freqs_cis):
    """LLaMA's ``apply_rotary_emb``: adjacent pairs as complex numbers, times
    ``freqs_cis`` (seq, d / 2)."""
    pairs = torch.view_as_complex(x.double().reshape(*x.shape[:-1], -1, 2))
    return torch.view_as_real(pairs * freqs_cis).flatten(-2)


def neox_partial_rotary(x, positions, rotary_ndims, base=10000.0):
    """GPT-NeoX's attention (as in Hugging Face's ``GPTNeoXAttention``): rotate-half
    RoPE on the first ``rotary_ndims`` dimensions, with frequencies computed from
    ``rotary_ndims``; the other dimensions pass through."""
    inv_freq = 1.0 / (
        base ** (torch.arange(0, rotary_ndims, 2).double() / rotary_ndims)
    )
    freqs = torch.outer(positions.double(), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    x = x.double()
    x_rot, x_pass = x[..., :rotary_ndims], x[..., rotary_ndims:]
    x1, x2 = x_rot[..., : rotary_ndims // 2], x_rot[..., rotary_ndims // 2 :]
    rotated = x_rot * emb.cos() + torch.cat((-x2, x1), dim=-1) * emb.sin()
    return torch.cat((rotated, x_pass), dim=-1)


def pairs_to_halves(d, rotary_dim):
    """The permutation that turns adjacent pairs (2j, 2j+1) of the first
    ``rotary_dim`` dimensions into GPT-NeoX's (j, j + rotary_dim / 2)."""
    return torch.cat(
        [
            torch.arange(0, rotary_dim, 2),
            torch.arange(1, rotary_dim, 2),
            torch.arange(rotary_dim, d),
        ]
    )


def test_rope_cache_matches_llama_precompute_freqs_cis():
    cos, sin = rope_cache(50, 16, dtype=torch.float64)
    freqs_cis = llama_freqs_cis(16, 50)
    assert cos.shape == sin.shape == (50, 8)
    assert torch.allclose(cos, freqs_cis.real, atol=1e-12)
    assert torch.allclose(sin, freqs_cis.imag, atol=1e-12)
    assert rope_cache(3, 4).dtype == torch.float32
    assert rope_cache(3, 4, dtype=torch.bfloat16).dtype == torch.bfloat16


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rope_with_the_cache_is_bitwise_the_computed_rope(dtype):
    x = torch.randn(2, 3, 7, 16, generator=torch.Generator().manual_seed(0)).to(dtype)
    cache = rope_cache(40, 16, dtype=dtype)
    for offset in (0, 5, 33):
        assert torch.equal(
            apply_rope(x, offset=offset, cache=cache), apply_rope(x, offset=offset)
        )
    positions = torch.tensor([3, 0, 9, 9, 1, 20, 2])
    assert torch.equal(apply_rope(x, positions, cache=cache), apply_rope(x, positions))


def test_rope_offset_matches_llama_slice_of_freqs_cis():
    # LLaMA decodes with freqs_cis[start_pos : start_pos + seqlen].
    x = torch.randn(2, 5, 12, generator=torch.Generator().manual_seed(1)).double()
    freqs_cis = llama_freqs_cis(12, 64)
    for start in (0, 1, 17, 59):
        expected = llama_apply_rotary(x, freqs_cis[start : start + 5])
        assert torch.allclose(apply_rope(x, offset=start), expected, atol=1e-12)
        cached = apply_rope(x, offset=start, cache=rope_cache(64, 12, dtype=x.dtype))
        assert torch.allclose(cached, expected, atol=1e-12)
    assert torch.equal(apply_rope(x, offset=17), apply_rope(x, torch.arange(17, 22)))


def test_rope_offset_is_added_to_explicit_positions():
    x = torch.randn(3, 6, 10, generator=torch.Generator().manual_seed(2)).double()
    cache = rope_cache(80, 10, dtype=torch.float64)
    positions = torch.tensor([4, 0, 9, 9, 1, 30])
    for offset in (0, 3, 41):
        shifted = apply_rope(x, positions + offset)
        assert torch.equal(apply_rope(x, positions, offset=offset), shifted)
        cached = apply_rope(x, positions, offset=offset, cache=cache)
        assert torch.allclose(cached, shifted, atol=1e-12)
    fractional = torch.tensor([0.5, 2.25, 7.0, 1.75, 3.5, 10.0], dtype=torch.float64)
    assert torch.equal(
        apply_rope(x, fractional, offset=5), apply_rope(x, fractional + 5)
    )


def test_decoding_with_a_key_value_cache_equals_the_full_pass():
    g = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(1, 2, 9, 8, generator=g, dtype=torch.float64) for _ in "qkv")
    full, _ = scaled_dot_product_attention(
        apply_rope(q), apply_rope(k), v, mask=causal_mask(9)
    )
    cache = rope_cache(16, 8, dtype=torch.float64)
    keys, values, steps, wrong = [], [], [], []
    for t in range(9):  # one token at a time, its position offset by the cache
        keys.append(apply_rope(k[..., t : t + 1, :], offset=t, cache=cache))
        values.append(v[..., t : t + 1, :])
        q_t = apply_rope(q[..., t : t + 1, :], offset=t)
        out, _ = scaled_dot_product_attention(
            q_t, torch.cat(keys, -2), torch.cat(values, -2)
        )
        steps.append(out)
        stale = apply_rope(q[..., t : t + 1, :])  # the mistake: every token at 0
        wrong.append(
            scaled_dot_product_attention(
                stale, torch.cat(keys, -2), torch.cat(values, -2)
            )[0]
        )
    assert torch.allclose(torch.cat(steps, -2), full, atol=1e-12)
    assert not torch.allclose(torch.cat(wrong, -2), full, atol=1e-3)


@pytest.mark.parametrize("d, rotary_dim", [(16, 4), (96, 24), (8, 8), (10, 2)])
def test_partial_rotary_matches_gpt_neox_up_to_the_pair_layout(d, rotary_dim):
    x = torch.randn(3, 11, d, generator=torch.Generator().manual_seed(d)).double()
    positions = torch.arange(11) * 7
    perm = pairs_to_halves(d, rotary_dim)
    ours = apply_rope(x, positions, rotary_dim=rotary_dim)
    neox = neox_partial_rotary(x[..., perm], positions, rotary_dim)
    assert torch.allclose(ours[..., perm], neox, atol=1e-12)
    assert torch.equal(ours[..., rotary_dim:], x[..., rotary_dim:])  # passed through
    cached = apply_rope(
        x, positions, rotary_dim=rotary_dim, cache=rope_cache(80, rotary_dim).double()
    )
    assert torch.allclose(cached, ours, atol=1e-6)


def test_partial_rotary_keeps_the_relative_property():
    g = torch.Generator().manual_seed(3)
    q, k = (torch.randn(1, 32, generator=g, dtype=torch.float64) for _ in "qk")

    def score(m, n):
        rq = apply_rope(q, torch.tensor([m]), rotary_dim=8)
        return float(rq @ apply_rope(k, torch.tensor([n]), rotary_dim=8).T)

    for m, n, shift in [(0, 5, 3), (40, 2, 100), (7, 7, 250)]:
        assert math.isclose(score(m, n), score(m + shift, n + shift), abs_tol=1e-9)
    # the unrotated 24 dimensions add the same term at every distance
    assert math.isclose(
        score(0, 0) - score(0, 300),
        float(q[:, :8] @ k[:, :8].T)
        - float(q[:, :8] @ apply_rope(k[:, :8], torch.tensor([300])).T),
        abs_tol=1e-9,
    )


def test_rope_2d_matches_axial_complex_form_and_is_relative_in_2d():
    height, width, d = 3, 4, 16
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2, height * width, d, generator=g, dtype=torch.float64)
    rows = torch.arange(height).repeat_interleave(width)
    columns = torch.arange(width).repeat(height)
    freqs = llama_freqs_cis(d // 2, max(height, width))
    expected = torch.cat(
        [
            llama_apply_rotary(x[..., : d // 2], freqs[rows]),
            llama_apply_rotary(x[..., d // 2 :], freqs[columns]),
        ],
        dim=-1,
    )
    assert torch.allclose(apply_rope_2d(x, height, width), expected, atol=1e-12)
    # the same query and key content at every patch: scores depend on (dr, dc) only
    q, k = (torch.randn(1, d, generator=g, dtype=torch.float64) for _ in "qk")
    scores = apply_rope_2d(q.expand(height * width, d), height, width) @ (
        apply_rope_2d(k.expand(height * width, d), height, width).T
    )
    by_offset = {}
    for i in range(height * width):
        for j in range(height * width):
            offset = (int(rows[i] - rows[j]), int(columns[i] - columns[j]))
            by_offset.setdefault(offset, []).append(float(scores[i, j]))
    assert len(by_offset) == (2 * height - 1) * (2 * width - 1)
    for values in by_offset.values():
        assert max(values) - min(values) < 1e-9
    assert len({round(v[0], 6) for v in by_offset.values()}) > 1  # not constant


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_rope_is_rotated_in_float32(dtype):
    x = torch.randn(4, 33, 16, generator=torch.Generator().manual_seed(5)).to(dtype)
    positions = torch.arange(33) * 1000  # large angles
    for kwargs in ({}, {"rotary_dim": 8}, {"offset": 7}):
        got = apply_rope(x, positions, **kwargs)
        assert got.dtype == dtype
        expected = apply_rope(x.double(), positions, **kwargs)
        # one rounding of the result: within half an ulp of the largest value
        tol = torch.finfo(dtype).eps * float(expected.abs().max())
        assert float((got.double() - expected).abs().max()) <= tol
    got = apply_rope_2d(x[:, :32], 4, 8)
    assert got.dtype == dtype
    expected = apply_rope_2d(x[:, :32].double(), 4, 8)
    tol = torch.finfo(dtype).eps * float(expected.abs().max())
    assert float((got.double() - expected).abs().max()) <= tol


def test_rope_options_gradients():
    x = torch.randn(2, 5, 8, dtype=torch.float64, requires_grad=True)
    cache = rope_cache(12, 4, dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda t: apply_rope(t, offset=3, rotary_dim=4, cache=cache), (x,)
    )
    assert torch.autograd.gradcheck(
        lambda t: apply_rope_2d(t.reshape(2, 5, 8)[:, :4], 2, 2), (x,)
    )


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: apply_rope(torch.ones(3, 4), offset=-1), "offset must be a non-neg"),
        (lambda: apply_rope(torch.ones(3, 4), offset=True), "offset must be a non-neg"),
        (lambda: apply_rope(torch.ones(3, 8), rotary_dim=3), r"rotary_dim .* \[2, 8\]"),
        (lambda: apply_rope(torch.ones(3, 8), rotary_dim=10), "rotary_dim must be"),
        (lambda: apply_rope(torch.ones(3, 8), rotary_dim=0), "rotary_dim must be"),
        (
            lambda: apply_rope(torch.ones(3, 8), cache=rope_cache(5, 6)),
            r"cache must be \(cos, sin\) of shape \(2, max_len, 4\)",
        ),
        (
            lambda: apply_rope(torch.ones(3, 8), cache=rope_cache(5, 8)[0]),
            "cache must be",
        ),
        (
            lambda: apply_rope(torch.ones(3, 8), cache=2 * rope_cache(5, 8)),
            r"cosines and sines, in \[-1, 1\]",
        ),
        (
            lambda: apply_rope(torch.ones(3, 8), offset=3, cache=rope_cache(5, 8)),
            r"positions \+ offset must lie in \[0, 5\) .* got 3 to 5",
        ),
        (
            lambda: apply_rope(
                torch.ones(3, 8), torch.tensor([0.0, 1, 2]), cache=rope_cache(5, 8)
            ),
            "positions must be integers to index the cache",
        ),
        (
            lambda: apply_rope(
                torch.ones(3, 8), torch.tensor([0, -1, 2]), cache=rope_cache(5, 8)
            ),
            "got -1 to 2",
        ),
        (lambda: rope_cache(4, 5), "dim=5 is not divisible by pair_size=2"),
        (lambda: rope_cache(0, 4), "max_len must be a positive integer"),
        (lambda: rope_cache(4, 4, base=1), "base must be"),
        (lambda: rope_cache(4, 4, dtype=torch.int64), "dtype"),
        (lambda: apply_rope_2d(torch.ones(5, 8), 2, 3), r"height \* width = 6"),
        (lambda: apply_rope_2d(torch.ones(6, 6), 2, 3), "multiple of 4"),
        (lambda: apply_rope_2d(torch.ones(6, 8), 0, 3), "height must be a positive"),
        (lambda: apply_rope_2d(torch.ones(6, 8), 2, 3, base=0.5), "base must be"),
    ],
)
def test_bad_rope_options(call, message):
    with pytest.raises(ValueError, match=message):
        call()
