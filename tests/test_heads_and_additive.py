import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from companion.attention import (
    AdditiveAttention,
    MultiHeadAttention,
    causal_mask,
    padding_mask,
)
from companion.positional import apply_rope


def randn(seed, *shape):
    return torch.randn(
        *shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64
    )


def torch_copy(mha: MultiHeadAttention) -> torch.nn.MultiheadAttention:
    """PyTorch's own module with the same weights (it packs q, k, v into one matrix)."""
    has_bias = mha.q_proj.bias is not None
    reference = torch.nn.MultiheadAttention(
        mha.d_model, mha.num_heads, bias=has_bias, batch_first=True, dtype=torch.float64
    )
    with torch.no_grad():
        projections = (mha.q_proj, mha.k_proj, mha.v_proj)
        reference.in_proj_weight.copy_(torch.cat([p.weight for p in projections]))
        reference.out_proj.weight.copy_(mha.out_proj.weight)
        if has_bias:
            reference.in_proj_bias.copy_(torch.cat([p.bias for p in projections]))
            reference.out_proj.bias.copy_(mha.out_proj.bias)
    return reference


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    heads=st.sampled_from([1, 2, 4]),
    q_len=st.integers(1, 5),
    k_len=st.integers(1, 5),
    bias=st.booleans(),
)
def test_equals_torch_multihead_attention(seed, heads, q_len, k_len, bias):
    torch.manual_seed(seed)
    mha = MultiHeadAttention(8, heads, bias=bias).double()
    reference = torch_copy(mha)
    query, memory = randn(seed, 3, q_len, 8), randn(seed + 1, 3, k_len, 8)
    lengths = torch.randint(
        1, k_len + 1, (3,), generator=torch.Generator().manual_seed(seed)
    )
    keep = padding_mask(lengths, k_len)
    out, weights = mha(query, memory, memory, mask=keep)
    # PyTorch's module uses the opposite convention: True = may NOT attend.
    expected, expected_weights = reference(
        query,
        memory,
        memory,
        key_padding_mask=~keep[:, 0, 0],
        average_attn_weights=False,
    )
    assert torch.allclose(out, expected, atol=1e-12)
    assert torch.allclose(weights, expected_weights, atol=1e-12)


def test_self_attention_with_causal_mask_equals_torch():
    torch.manual_seed(0)
    mha = MultiHeadAttention(12, 3).double()
    x = randn(1, 2, 6, 12)
    out, _ = mha(x, x, x, mask=causal_mask(6))
    expected, _ = torch_copy(mha)(x, x, x, attn_mask=~causal_mask(6))
    assert torch.allclose(out, expected, atol=1e-12)


@pytest.mark.parametrize("num_kv_heads", [1, 2, 4])
def test_grouped_query_attention_equals_torch_sdpa(num_kv_heads):
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4, num_kv_heads=num_kv_heads).double()
    x = randn(2, 3, 5, 16)
    out, weights = mha(x, x, x, mask=causal_mask(5))
    q = mha.q_proj(x).view(3, 5, 4, 4).transpose(1, 2)
    k = mha.k_proj(x).view(3, 5, num_kv_heads, 4).transpose(1, 2)
    v = mha.v_proj(x).view(3, 5, num_kv_heads, 4).transpose(1, 2)
    heads = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    expected = mha.out_proj(heads.transpose(1, 2).reshape(3, 5, 16))
    assert torch.allclose(out, expected, atol=1e-12)
    assert weights.shape == (3, 4, 5, 5)


@pytest.mark.parametrize("scale", [1.0, 0.25])
def test_rope_rotates_queries_and_keys_at_scaled_positions(scale):
    """Queries sit at the last q_len of the k_len positions; positions * scale."""
    torch.manual_seed(0)
    mha = MultiHeadAttention(8, 2).double()
    query, key = randn(1, 2, 3, 8), randn(2, 2, 5, 8)
    out, _ = mha(query, key, key, rope=True, rope_scale=scale)

    def heads(x):
        return x.view(2, -1, 2, 4).transpose(1, 2)

    positions = torch.arange(5, dtype=torch.float64) * scale
    q = apply_rope(heads(mha.q_proj(query)), positions[2:])
    k = apply_rope(heads(mha.k_proj(key)), positions)
    expected = F.scaled_dot_product_attention(q, k, heads(mha.v_proj(key)))
    expected = mha.out_proj(expected.transpose(1, 2).reshape(2, 3, 8))
    assert torch.allclose(out, expected, atol=1e-12)


def test_key_value_projection_sizes():
    sizes = {}
    for kv_heads in (8, 2, 1):
        mha = MultiHeadAttention(64, 8, num_kv_heads=kv_heads)
        assert mha.k_proj.out_features == mha.v_proj.out_features == kv_heads * 8
        sizes[kv_heads] = mha.k_proj.weight.numel() + mha.v_proj.weight.numel()
    assert sizes[8] == 4 * sizes[2] == 8 * sizes[1]


def test_multi_query_heads_share_keys_and_values():
    # Give query heads 0 and 1 identical projections. With one shared key/value
    # head (multi-query) their weights coincide; with separate heads they do not.
    x = randn(3, 1, 4, 8)
    for kv_heads, same in ((1, True), (4, False)):
        torch.manual_seed(0)
        mha = MultiHeadAttention(8, 4, num_kv_heads=kv_heads).double()
        with torch.no_grad():
            mha.q_proj.weight[2:4] = mha.q_proj.weight[0:2]
            mha.q_proj.bias[2:4] = mha.q_proj.bias[0:2]
        _, weights = mha(x, x, x)
        assert torch.allclose(weights[:, 0], weights[:, 1]) == same


def test_additive_attention_formula():
    torch.manual_seed(0)
    attention = AdditiveAttention(query_dim=3, key_dim=5, hidden_dim=4).double()
    query, keys, values = randn(1, 2, 3), randn(2, 6, 5), randn(3, 6, 2)
    context, weights = attention(query, keys, values)
    w_q, w_k, v = attention.w_q.weight, attention.w_k.weight, attention.v.weight[0]
    for i in range(2):
        scores = torch.stack(
            [v @ torch.tanh(w_q @ query[i] + w_k @ keys[j]) for j in range(6)]
        )
        expected = torch.softmax(scores, dim=0)
        assert torch.allclose(weights[i], expected, atol=1e-12)
        assert torch.allclose(context[i], expected @ values, atol=1e-12)


def test_additive_attention_batched_and_masked():
    torch.manual_seed(0)
    attention = AdditiveAttention(3, 3, 8).double()
    query, keys, values = randn(1, 4, 2, 3), randn(2, 4, 5, 3), randn(3, 4, 5, 6)
    keep = padding_mask([5, 3, 1, 0], 5)[:, 0]  # (batch, 1, k_len)
    context, weights = attention(query, keys, values, mask=keep)
    assert context.shape == (4, 2, 6) and weights.shape == (4, 2, 5)
    assert (weights[1, :, 3:] == 0).all()
    assert torch.equal(context[3], torch.zeros(2, 6, dtype=torch.float64))
    assert torch.allclose(weights[:3].sum(-1), torch.ones(3, 2, dtype=torch.float64))
    query.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda q: attention(q, keys, values, keep)[0], (query,)
    )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: MultiHeadAttention(10, 3),
            "d_model=10 is not divisible by num_heads=3",
        ),
        (
            lambda: MultiHeadAttention(8, 4, num_kv_heads=3),
            "num_heads=4 is not divisible",
        ),
        (lambda: MultiHeadAttention(8, 0), "num_heads must be a positive integer"),
        (lambda: AdditiveAttention(3, 0, 4), "key_dim must be a positive integer"),
    ],
)
def test_bad_construction(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_three_dimensional_masks_are_refused():
    mha = MultiHeadAttention(8, 2)
    x = torch.ones(2, 3, 8)
    with pytest.raises(
        ValueError, match=r"mask must have 2 axes .* got shape \(2, 3, 3\)"
    ):
        mha(x, x, x, mask=torch.ones(2, 3, 3, dtype=torch.bool))


def test_bad_forward_input():
    mha = MultiHeadAttention(8, 2)
    x = torch.ones(2, 3, 8)
    with pytest.raises(ValueError, match=r"query must have shape \(batch, seq, 8\)"):
        mha(torch.ones(2, 3, 6), x, x)
    with pytest.raises(ValueError, match="must share the batch size"):
        mha(x, x, torch.ones(2, 4, 8))
    with pytest.raises(ValueError, match=r"mask of shape \(4, 4\) does not broadcast"):
        mha(x, x, x, mask=causal_mask(4))
    for bad in (0, float("inf"), True):
        with pytest.raises(ValueError, match="rope_scale must be a positive finite"):
            mha(x, x, x, rope=True, rope_scale=bad)
    with pytest.raises(ValueError, match="more queries than keys"):
        mha(torch.ones(2, 4, 8), x, x, rope=True)
    additive = AdditiveAttention(3, 5, 4)
    with pytest.raises(ValueError, match=r"keys must have shape \(\.\.\., seq, 5\)"):
        additive(torch.ones(2, 3), torch.ones(4, 3), torch.ones(4, 2))
    with pytest.raises(ValueError, match=r"values must have shape \(\.\.\., 4, d_v\)"):
        additive(torch.ones(2, 3), torch.ones(4, 5), torch.ones(3, 2))
