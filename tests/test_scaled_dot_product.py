import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from companion.attention import (
    attention_backward,
    causal_mask,
    chunked_attention,
    masked_softmax,
    padding_mask,
    scaled_dot_product_attention,
)
from companion.measure import peak_memory


def qkv(seed, lead=(2, 3), q_len=4, k_len=6, d_k=5, d_v=3):
    g = torch.Generator().manual_seed(seed)

    def draw(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    return draw(*lead, q_len, d_k), draw(*lead, k_len, d_k), draw(*lead, k_len, d_v)


def random_mask(seed, shape, keep=0.6):
    """A random boolean mask in which every query row may attend to at least one key."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(*shape, generator=g) < keep
    mask[..., 0] = True
    return mask


dims = st.integers(1, 6)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    lead=st.lists(st.integers(1, 3), min_size=0, max_size=2),
    q_len=dims,
    k_len=dims,
    d_k=dims,
    d_v=dims,
    use_mask=st.booleans(),
    use_bias=st.booleans(),
    scale=st.one_of(st.none(), st.floats(0.1, 2.0)),
)
def test_matches_torch(seed, lead, q_len, k_len, d_k, d_v, use_mask, use_bias, scale):
    q, k, v = qkv(seed, tuple(lead), q_len, k_len, d_k, d_v)
    scores_shape = (*lead, q_len, k_len)
    mask = random_mask(seed, scores_shape) if use_mask else None
    bias = torch.randn(scores_shape, dtype=torch.float64) if use_bias else None
    output, weights = scaled_dot_product_attention(
        q, k, v, mask=mask, bias=bias, scale=scale
    )
    # torch's float attn_mask is added to the scores; combine mask and bias that way.
    additive = torch.zeros(scores_shape, dtype=torch.float64)
    if bias is not None:
        additive = additive + bias
    if mask is not None:
        additive = additive.masked_fill(~mask, -math.inf)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=additive, scale=scale)
    assert torch.allclose(output, expected, atol=1e-12)
    assert torch.allclose(
        weights.sum(-1), torch.ones(scores_shape[:-1], dtype=torch.float64)
    )


def test_default_scale_is_one_over_sqrt_dk():
    q, k, v = qkv(0, d_k=16)
    _, weights = scaled_dot_product_attention(q, k, v)
    scores = torch.einsum("bhqd,bhkd->bhqk", q, k) / 4.0  # sqrt(16) = 4
    assert torch.allclose(weights, torch.softmax(scores, dim=-1))


def test_boolean_mask_convention_is_true_may_attend():
    q, k, v = qkv(1)
    mask = torch.zeros(4, 6, dtype=torch.bool)
    mask[:, 2] = True  # every query may attend only to key 2
    output, weights = scaled_dot_product_attention(q, k, v, mask=mask)
    assert torch.equal(weights[..., 2], torch.ones(2, 3, 4, dtype=torch.float64))
    assert torch.allclose(output, v[..., 2:3, :].expand_as(output))


def test_fully_masked_rows_give_zeros_not_nan():
    q, k, v = qkv(2)
    mask = random_mask(2, (2, 3, 4, 6))
    mask[0, 1, 2] = False  # query 2 of head 1 in batch 0 may attend to nothing
    q.requires_grad_(True)
    output, weights = scaled_dot_product_attention(q, k, v, mask=mask)
    assert torch.equal(weights[0, 1, 2], torch.zeros(6, dtype=torch.float64))
    assert torch.equal(output[0, 1, 2], torch.zeros(3, dtype=torch.float64))
    assert torch.isfinite(output).all()
    output.sum().backward()
    assert torch.isfinite(q.grad).all()
    assert torch.equal(q.grad[0, 1, 2], torch.zeros(5, dtype=torch.float64))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**16))
def test_permutation_equivariance(seed):
    q, k, v = qkv(seed)
    g = torch.Generator().manual_seed(seed)
    perm_q, perm_k = torch.randperm(4, generator=g), torch.randperm(6, generator=g)
    output, _ = scaled_dot_product_attention(q, k, v)
    # Reordering queries reorders outputs; reordering key-value pairs changes nothing.
    out_q, _ = scaled_dot_product_attention(q[..., perm_q, :], k, v)
    out_k, _ = scaled_dot_product_attention(q, k[..., perm_k, :], v[..., perm_k, :])
    assert torch.allclose(out_q, output[..., perm_q, :], atol=1e-12)
    assert torch.allclose(out_k, output, atol=1e-12)


def test_causal_mask():
    expected = torch.tensor(
        [[True, False, False], [True, True, False], [True, True, True]]
    )
    assert torch.equal(causal_mask(3), expected)
    # With a causal mask, changing later tokens never changes earlier outputs.
    q, k, v = qkv(3, q_len=6, k_len=6)
    output, _ = scaled_dot_product_attention(q, k, v, mask=causal_mask(6))
    k2, v2 = k.clone(), v.clone()
    k2[..., 4:, :] += 1.0
    v2[..., 4:, :] -= 2.0
    output2, _ = scaled_dot_product_attention(q, k2, v2, mask=causal_mask(6))
    assert torch.equal(output[..., :4, :], output2[..., :4, :])
    assert not torch.allclose(output[..., 4:, :], output2[..., 4:, :])
    causal = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert torch.allclose(output, causal, atol=1e-12)


def test_padding_mask():
    mask = padding_mask(torch.tensor([2, 4, 0]), max_len=4)
    assert mask.shape == (3, 1, 1, 4)
    assert mask[:, 0, 0].tolist() == [
        [True, True, False, False],
        [True, True, True, True],
        [False, False, False, False],
    ]
    assert torch.equal(padding_mask([1, 3], 3), padding_mask(torch.tensor([1, 3]), 3))
    q, k, v = qkv(4, lead=(3, 2), k_len=4)
    _, weights = scaled_dot_product_attention(q, k, v, mask=mask)
    assert (weights[0, ..., 2:] == 0).all()
    assert (weights[2] == 0).all()  # an empty sequence attends to nothing


def test_backward_matches_autograd_with_masks():
    q, k, v = qkv(5)
    mask = random_mask(5, (2, 1, 4, 6))
    mask[1, 0, 3] = False  # a fully masked row
    grad_out = torch.randn(2, 3, 4, 3, dtype=torch.float64)
    for scale in (None, 0.3):
        leaves = [t.clone().requires_grad_(True) for t in (q, k, v)]
        output, _ = scaled_dot_product_attention(*leaves, mask=mask, scale=scale)
        expected = torch.autograd.grad(output, leaves, grad_out)
        by_hand = attention_backward(q, k, v, grad_out, mask=mask, scale=scale)
        for mine, reference in zip(by_hand, expected, strict=True):
            assert torch.allclose(mine, reference, atol=1e-12)


def test_backward_with_bias_matches_autograd():
    q, k, v = qkv(8)
    bias = torch.randn(4, 6, dtype=torch.float64)
    grad_out = torch.randn(2, 3, 4, 3, dtype=torch.float64)
    leaves = [t.clone().requires_grad_(True) for t in (q, k, v)]
    output, _ = scaled_dot_product_attention(*leaves, bias=bias)
    expected = torch.autograd.grad(output, leaves, grad_out)
    by_hand = attention_backward(q, k, v, grad_out, bias=bias)
    for mine, reference in zip(by_hand, expected, strict=True):
        assert torch.allclose(mine, reference, atol=1e-12)


def test_backward_matches_torch_fused_attention():
    q, k, v = qkv(6)
    leaves = [t.clone().requires_grad_(True) for t in (q, k, v)]
    grad_out = torch.randn(2, 3, 4, 3, dtype=torch.float64)
    output = F.scaled_dot_product_attention(*leaves)
    expected = torch.autograd.grad(output, leaves, grad_out)
    for mine, reference in zip(
        attention_backward(q, k, v, grad_out), expected, strict=True
    ):
        assert torch.allclose(mine, reference, atol=1e-12)


def test_gradcheck():
    q, k, v = (t.requires_grad_(True) for t in qkv(7, lead=(2,), q_len=3, k_len=4))
    mask = random_mask(7, (3, 4))
    bias = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)

    def function(q, k, v, bias):
        return scaled_dot_product_attention(q, k, v, mask=mask, bias=bias)[0]

    assert torch.autograd.gradcheck(function, (q, k, v, bias))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"q": torch.ones(4)}, r"q must have at least 2 axes"),
        (
            {"k": torch.ones(2, 3, 6, 7)},
            r"q and k must have the same last dimension d_k",
        ),
        (
            {"v": torch.ones(2, 3, 5, 3)},
            r"k and v must have the same number of positions",
        ),
        (
            {"v": torch.ones(2, 3, 6, 3, dtype=torch.int64)},
            "v must have a floating-point",
        ),
        ({"v": torch.ones(2, 3, 6, 3, dtype=torch.float64)}, "must share one dtype"),
        (
            {"k": torch.ones(4, 3, 6, 5)},
            r"leading \(batch, heads\) axes .* do not broadcast",
        ),
        (
            {"mask": torch.ones(4, 6)},
            r"mask must be a boolean tensor \(True = may attend\)",
        ),
        (
            {"mask": torch.ones(4, 5, dtype=torch.bool)},
            r"mask of shape \(4, 5\) does not",
        ),
        ({"bias": torch.ones(7, 6)}, r"bias of shape \(7, 6\) does not broadcast"),
        ({"scale": 0.0}, "scale must be a positive finite number, got 0.0"),
        ({"scale": -1.0}, "scale must be a positive finite number"),
    ],
)
def test_bad_input(kwargs, message):
    arguments = {"q": torch.ones(2, 3, 4, 5), "k": torch.ones(2, 3, 6, 5)}
    arguments["v"] = torch.ones(2, 3, 6, 3)
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        scaled_dot_product_attention(**arguments)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: causal_mask(0), "n must be a positive integer"),
        (
            lambda: padding_mask(torch.tensor([1.0]), 3),
            "lengths must be a 1-D tensor of integers",
        ),
        (lambda: padding_mask(torch.tensor([[1]]), 3), "lengths must be a 1-D tensor"),
        (lambda: padding_mask([4], 3), r"lengths must lie in \[0, 3\], got \[4\]"),
        (lambda: padding_mask([1], 0), "max_len must be a positive integer"),
        (
            lambda: attention_backward(
                *qkv(0), torch.ones(2, 3, 4, 4, dtype=torch.float64)
            ),
            r"grad_out must have the output's shape \(2, 3, 4, 3\)",
        ),
        (
            lambda: attention_backward(
                torch.ones(2, 4, 5),
                torch.ones(1, 6, 5),
                torch.ones(1, 6, 3),
                torch.ones(2, 4, 3),
            ),
            "identical leading axes",
        ),
        (
            lambda: attention_backward(*qkv(0), torch.ones(2, 3, 4, 3)),
            "inputs must share one dtype, got q torch.float64, grad_out torch.float32",
        ),
    ],
)
def test_bad_input_masks_and_backward(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_masked_softmax():
    scores = torch.tensor([[1.0, 2.0, 3.0], [0.5, 0.5, 0.5]], dtype=torch.float64)
    keep = torch.tensor([True, False, True])  # broadcasts over the rows
    weights = masked_softmax(scores, keep)
    assert torch.allclose(
        weights[0], torch.softmax(torch.tensor([1.0, -math.inf, 3.0]), -1).double()
    )
    assert torch.allclose(
        weights[1], torch.tensor([0.5, 0.0, 0.5], dtype=torch.float64)
    )
    nothing = masked_softmax(scores, torch.zeros(3, dtype=torch.bool))
    assert torch.equal(nothing, torch.zeros(2, 3, dtype=torch.float64))
    assert torch.allclose(masked_softmax(scores), torch.softmax(scores, -1))


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    q_len=st.integers(1, 20),
    k_len=st.integers(1, 20),
    chunk=st.integers(1, 25),
    use_mask=st.booleans(),
)
def test_chunked_attention_equals_naive(seed, q_len, k_len, chunk, use_mask):
    q, k, v = qkv(seed, (2,), q_len, k_len, 4, 3)
    mask = None
    if use_mask:
        g = torch.Generator().manual_seed(seed)
        mask = torch.rand(2, q_len, k_len, generator=g) < 0.5  # may leave rows empty
    expected, _ = scaled_dot_product_attention(q, k, v, mask=mask)
    assert torch.allclose(
        chunked_attention(q, k, v, chunk, mask=mask), expected, rtol=0, atol=1e-12
    )


def test_chunked_attention_uses_far_less_memory():
    x = torch.randn(1, 2048, 32)
    naive = peak_memory(lambda: scaled_dot_product_attention(x, x, x))
    chunked = peak_memory(lambda: chunked_attention(x, x, x, chunk_size=256))
    assert chunked < naive / 10


def test_chunked_attention_gradients_equal_naive():
    q, k, v = (t.requires_grad_() for t in qkv(3, (2,), 9, 11, 4, 3))
    mask = causal_mask(11)[-9:]
    expected, _ = scaled_dot_product_attention(q, k, v, mask=mask)
    naive_grads = torch.autograd.grad(expected.square().sum(), (q, k, v))
    out = chunked_attention(q, k, v, chunk_size=4, mask=mask)
    chunked_grads = torch.autograd.grad(out.square().sum(), (q, k, v))
    for a, b in zip(naive_grads, chunked_grads, strict=True):
        assert torch.allclose(a, b, rtol=0, atol=1e-12)


def test_chunked_attention_bad_chunk():
    with pytest.raises(ValueError, match="chunk_size must be a positive integer"):
        chunked_attention(*qkv(0), chunk_size=0)
    q, k, v = qkv(0)
    with pytest.raises(ValueError, match="k contains NaN or infinite values"):
        chunked_attention(q, k.clone().fill_(math.inf), v)
