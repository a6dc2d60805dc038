import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from companion.attention import causal_mask, scaled_dot_product_attention
from companion.measure import best_time
from companion.variants import (
    GraphAttentionLayer,
    NonLocalBlock,
    elu_feature_map,
    linear_attention,
    local_mask,
    sliding_window_attention,
    strided_mask,
)


def randn(seed, *shape):
    return torch.randn(
        *shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64
    )


def test_local_mask():
    assert local_mask(4, 1).int().tolist() == [
        [1, 1, 0, 0],
        [1, 1, 1, 0],
        [0, 1, 1, 1],
        [0, 0, 1, 1],
    ]
    assert torch.equal(local_mask(5, 4, causal=True), causal_mask(5))
    assert torch.equal(local_mask(5, 0), torch.eye(5, dtype=torch.bool))


def test_strided_mask_and_two_step_reachability():
    mask = strided_mask(6, 2)
    for i in range(6):
        for j in range(6):
            assert mask[i, j] == (j <= i and (i - j) % 2 == 0)
    # Local (previous stride - 1 positions) plus strided: every earlier key reaches
    # every later query in at most two attention steps (Child et al., 2019).
    n, stride = 16, 4
    union = (local_mask(n, stride - 1, causal=True) | strided_mask(n, stride)).int()
    two_steps = (union @ union) > 0
    assert torch.equal(two_steps, causal_mask(n))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**16), n=st.integers(1, 12), window=st.integers(0, 14))
def test_sliding_window_equals_masked_attention(seed, n, window):
    q, k, v = randn(seed, 2, n, 3), randn(seed + 1, 2, n, 3), randn(seed + 2, 2, n, 4)
    banded = sliding_window_attention(q, k, v, window)
    masked, _ = scaled_dot_product_attention(q, k, v, mask=local_mask(n, window))
    assert torch.allclose(banded, masked, atol=1e-12)


def test_linear_attention_equals_its_quadratic_form():
    q, k, v = randn(0, 2, 5, 3), randn(1, 2, 7, 3), randn(2, 2, 7, 4)
    similarity = elu_feature_map(q) @ elu_feature_map(k).transpose(-2, -1)
    expected = similarity / similarity.sum(-1, keepdim=True) @ v
    assert torch.allclose(linear_attention(q, k, v), expected, atol=1e-12)
    k, v = randn(1, 2, 5, 3), randn(2, 2, 5, 4)
    similarity = elu_feature_map(q) @ elu_feature_map(k).transpose(-2, -1)
    similarity = similarity.masked_fill(~causal_mask(5), 0)
    expected = similarity / similarity.sum(-1, keepdim=True) @ v
    assert torch.allclose(linear_attention(q, k, v, causal=True), expected, atol=1e-12)


def test_elu_feature_map_is_positive_and_equals_elu_plus_one():
    x = torch.linspace(-50, 50, 101, dtype=torch.float64)
    assert (elu_feature_map(x) > 0).all()  # F.elu(x) + 1 rounds to 0 at x = -50
    moderate = torch.linspace(-5, 5, 11, dtype=torch.float64)
    assert torch.allclose(elu_feature_map(moderate), F.elu(moderate) + 1)


def test_linear_attention_never_returns_nan():
    q = torch.full((1, 3, 2), -200.0)  # exp(-200) underflows in float32
    k, v = torch.full((1, 4, 2), -200.0), torch.ones(1, 4, 2)
    assert torch.isfinite(linear_attention(q, k, v)).all()
    assert torch.isfinite(linear_attention(q, k[:, :3], v[:, :3], causal=True)).all()


def test_graph_attention_layer_formula():
    torch.manual_seed(0)
    layer = GraphAttentionLayer(3, 2, num_heads=2).double()
    h = randn(1, 4, 3)
    adjacency = torch.tensor(
        [[0, 1, 0, 0], [1, 0, 1, 0], [0, 1, 0, 1], [0, 0, 1, 0]], dtype=torch.bool
    )
    out, weights = layer(h, adjacency)
    assert out.shape == (4, 4) and weights.shape == (2, 4, 4)
    W = layer.linear.weight.view(2, 2, 3)
    for head in range(2):
        wh = h @ W[head].T
        a = torch.cat([layer.a_target[head], layer.a_source[head]])
        for i in range(4):
            neighbours = [j for j in range(4) if adjacency[i, j] or i == j]
            e = torch.stack(
                [F.leaky_relu(a @ torch.cat([wh[i], wh[j]]), 0.2) for j in neighbours]
            )
            alpha = torch.softmax(e, dim=0)
            assert torch.allclose(weights[head, i, neighbours], alpha, atol=1e-12)
            assert weights[head, i].sum().item() == pytest.approx(1.0)
            expected = (alpha[:, None] * wh[neighbours]).sum(0)
            assert torch.allclose(out[i, 2 * head : 2 * head + 2], expected, atol=1e-12)
    averaged = GraphAttentionLayer(3, 2, num_heads=2, concat=False).double()
    assert averaged(h, adjacency)[0].shape == (4, 2)


def test_non_local_block_is_self_attention_over_positions():
    torch.manual_seed(0)
    block = NonLocalBlock(channels=3, inner_channels=2).double()
    x = randn(0, 2, 3, 4, 5)
    z, weights = block(x)
    assert z.shape == x.shape and weights.shape == (2, 20, 20)
    flat = x.flatten(2).transpose(1, 2)  # (batch, positions, channels)

    def project(conv):
        return flat @ conv.weight[:, :, 0, 0].T + conv.bias

    scores = project(block.theta) @ project(block.phi).transpose(1, 2)
    y = torch.softmax(scores, dim=-1) @ project(block.g)
    expected = y @ block.w_z.weight[:, :, 0, 0].T + block.w_z.bias + flat
    assert torch.allclose(z.flatten(2).transpose(1, 2), expected, atol=1e-12)
    assert torch.allclose(weights, torch.softmax(scores, dim=-1))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: local_mask(0, 1), "n must be a positive integer"),
        (lambda: local_mask(3, -1), "window must be a non-negative integer"),
        (lambda: strided_mask(3, 0), "stride must be a positive integer"),
        (
            lambda: sliding_window_attention(
                torch.ones(4, 2), torch.ones(5, 2), torch.ones(5, 2), 1
            ),
            "must have the same length",
        ),
        (
            lambda: linear_attention(
                torch.ones(4, 2), torch.ones(5, 2), torch.ones(5, 2), causal=True
            ),
            "must have the same length",
        ),
        (
            lambda: GraphAttentionLayer(3, 2)(
                torch.ones(4, 2), torch.ones(4, 4).bool()
            ),
            r"h must have shape \(nodes, 3\)",
        ),
        (
            lambda: GraphAttentionLayer(3, 2)(torch.ones(4, 3), torch.ones(4, 4)),
            "adjacency must be a boolean",
        ),
        (
            lambda: GraphAttentionLayer(3, 2)(
                torch.ones(4, 3), torch.ones(3, 3).bool()
            ),
            r"adjacency must have shape \(4, 4\)",
        ),
        (
            lambda: NonLocalBlock(3, 2)(torch.ones(1, 2, 4, 4)),
            r"x must have shape \(batch, 3, height, width\)",
        ),
        (lambda: NonLocalBlock(0, 2), "channels must be a positive integer"),
        (
            lambda: best_time(lambda: None, repeats=0),
            "repeats must be a positive integer",
        ),
    ],
)
def test_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call()
