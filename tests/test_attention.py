"""Tests of companion.attention: attention pooling and kernel regression, scaled
dot-product attention (manual and fused), masks, the hand-derived backward pass,
chunked attention, additive and multi-head attention."""

import math
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

from companion.attention import (
    AdditiveAttention,
    KernelRegression,
    MultiHeadAttention,
    attention_backward,
    attention_pooling,
    causal_mask,
    chunked_attention,
    gaussian_scores,
    masked_softmax,
    nadaraya_watson,
    padding_mask,
    scaled_dot_product_attention,
)
from companion.measure import peak_memory
from companion.positional import apply_rope, rope_queries_and_keys


def points(seed, n, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return 5 * torch.rand(n, generator=g, dtype=dtype)


def classic_nadaraya_watson(x_query, x_train, y_train, width):
    """Textbook estimator sum_i K(x - x_i) y_i / sum_j K(x - x_j), plain Python."""
    out = []
    for x in x_query:
        kernel = [math.exp(-((x - xi) ** 2) / (2 * width**2)) for xi in x_train]
        out.append(
            sum(k * y for k, y in zip(kernel, y_train, strict=True)) / sum(kernel)
        )
    return out


def test_gaussian_scores_formula():
    q, k = points(0, 4), points(1, 6)
    scores = gaussian_scores(q, k, width=0.7)
    assert scores.shape == (4, 6)
    for i in range(4):
        for j in range(6):
            expected = -((q[i] - k[j]) ** 2).item() / (2 * 0.7**2)
            assert math.isclose(scores[i, j].item(), expected, rel_tol=1e-12)


@pytest.mark.parametrize("width", [0.2, 1.0, 3.0])
def test_equals_the_classic_estimator(width):
    xq, xt, yt = points(0, 7), points(1, 11), points(2, 11)
    expected = classic_nadaraya_watson(xq.tolist(), xt.tolist(), yt.tolist(), width)
    output, weights = nadaraya_watson(xq, xt, yt, width)
    assert torch.allclose(
        output, torch.tensor(expected, dtype=torch.float64), atol=1e-12
    )
    assert torch.allclose(weights.sum(-1), torch.ones(7, dtype=torch.float64))


def test_wide_kernel_is_average_pooling_and_narrow_kernel_is_nearest_neighbour():
    xq, xt, yt = points(0, 5), points(1, 9), points(2, 9)
    wide, _ = nadaraya_watson(xq, xt, yt, width=1e4)
    assert torch.allclose(wide, yt.mean().expand(5), atol=1e-6)
    narrow, _ = nadaraya_watson(xq, xt, yt, width=1e-3)
    nearest = yt[(xq[:, None] - xt[None, :]).abs().argmin(dim=1)]
    assert torch.allclose(narrow, nearest)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**16), n=st.integers(2, 12))
def test_invariant_to_the_order_of_key_value_pairs(seed, n):
    xq, xt, yt = points(seed, 4), points(seed + 1, n), points(seed + 2, n)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    out, weights = nadaraya_watson(xq, xt, yt, 0.5)
    out_perm, weights_perm = nadaraya_watson(xq, xt[perm], yt[perm], 0.5)
    assert torch.allclose(out, out_perm, atol=1e-12)
    assert torch.allclose(weights[:, perm], weights_perm, atol=1e-12)


def test_vector_values():
    xq, xt = points(0, 3), points(1, 6)
    values = torch.stack([points(2, 6), points(3, 6)], dim=1)
    output, _ = nadaraya_watson(xq, xt, values, 0.5)
    assert output.shape == (3, 2)
    for column in range(2):
        single, _ = nadaraya_watson(xq, xt, values[:, column], 0.5)
        assert torch.allclose(output[:, column], single)


def test_mask_leave_one_out_and_empty_rows():
    x, y = points(0, 6), points(1, 6)
    leave_one_out = ~torch.eye(6, dtype=torch.bool)
    output, weights = nadaraya_watson(x, x, y, 0.5, mask=leave_one_out)
    assert (weights.diagonal() == 0).all()
    for i in range(6):
        others = [j for j in range(6) if j != i]
        (expected,) = classic_nadaraya_watson(
            [x[i].item()], x[others].tolist(), y[others].tolist(), 0.5
        )
        assert math.isclose(output[i].item(), expected, rel_tol=1e-12)
    nothing = torch.zeros(6, 6, dtype=torch.bool)
    output, weights = nadaraya_watson(x, x, y, 0.5, mask=nothing)
    assert torch.equal(output, torch.zeros(6, dtype=torch.float64))
    assert torch.equal(weights, torch.zeros(6, 6, dtype=torch.float64))


def test_tiny_width_is_an_error_not_a_silent_wrong_answer():
    q, k = torch.tensor([0.0, 1.0]), torch.tensor([0.5, 2.0])
    with pytest.raises(ValueError, match="width=1e-23 in torch.float32"):
        gaussian_scores(q, k, width=1e-23)  # (q - k) / w overflows float32
    assert torch.isfinite(gaussian_scores(q.double(), k.double(), width=1e-23)).all()


def test_gradient_with_respect_to_width():
    xq, xt, yt = points(0, 4), points(1, 7), points(2, 7)
    width = torch.tensor(0.8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda w: nadaraya_watson(xq, xt, yt, w)[0], (width,)
    )


def test_kernel_regression_module():
    model = KernelRegression(width=2.0)
    assert math.isclose(model.width, 2.0, rel_tol=1e-6)
    assert [name for name, _ in model.named_parameters()] == ["log_width"]
    xq, xt, yt = (
        points(0, 4, torch.float32),
        points(1, 7, torch.float32),
        points(2, 7, torch.float32),
    )
    output, weights = model(xq, xt, yt)
    expected, _ = nadaraya_watson(xq, xt, yt, 2.0)
    assert torch.allclose(output, expected)
    output.sum().backward()
    assert model.log_width.grad is not None and model.log_width.grad.abs() > 0


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: gaussian_scores(torch.ones(2, 2), torch.ones(3)),
            r"queries must have 1 axes, got shape \(2, 2\)",
        ),
        (lambda: gaussian_scores(torch.ones(2), [1.0]), "keys must be a torch.Tensor"),
        (
            lambda: gaussian_scores(torch.ones(2), torch.ones(3), width=0.0),
            "width must be a positive finite number",
        ),
        (
            lambda: gaussian_scores(torch.ones(2), torch.ones(3), width=-1.0),
            "width must be a positive finite number",
        ),
        (
            lambda: gaussian_scores(torch.ones(2), torch.ones(3), width=torch.ones(2)),
            "width must have 0 axes",
        ),
        (
            lambda: attention_pooling(torch.ones(2, 3), torch.ones(4)),
            r"values has 4 rows but scores has 3 keys",
        ),
        (
            lambda: attention_pooling(torch.ones(3), torch.ones(3)),
            r"scores must have 2 axes",
        ),
        (
            lambda: attention_pooling(torch.ones(2, 3), torch.ones(3, 1, 1)),
            r"values must have 1 or 2 axes",
        ),
        (
            lambda: attention_pooling(
                torch.ones(2, 3), torch.ones(3), mask=torch.ones(2, 3)
            ),
            "mask must be a boolean tensor",
        ),
        (
            lambda: attention_pooling(
                torch.ones(2, 3), torch.ones(3), mask=torch.ones(3, 2, dtype=torch.bool)
            ),
            r"mask of shape \(3, 2\) does not broadcast to the attention scores",
        ),
        (
            lambda: attention_pooling(
                torch.ones(2, 3), torch.ones(3, dtype=torch.float64)
            ),
            "share one dtype, got scores torch.float32, values torch.float64",
        ),
        (lambda: KernelRegression(width=0.0), "width must be a positive finite number"),
    ],
)
def test_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call()


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
def test_bad_input_scaled_dot_product(kwargs, message):
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
            "lengths must be an int64 or int32 tensor",
        ),
        (lambda: padding_mask(torch.tensor([[1]]), 3), "lengths must have 1 axes"),
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


def band(q_len, k_len, causal, window):
    """Key j visible from query i: j <= i if causal, |i - j| <= window if given;
    positions count from the first query and key (SDPA's is_causal, top left)."""
    return torch.tensor(
        [
            [
                (j <= i or not causal) and (window is None or abs(i - j) <= window)
                for j in range(k_len)
            ]
            for i in range(q_len)
        ]
    )


SIZES = [(37, 37), (37, 23), (23, 37), (1, 9), (9, 1), (64, 64)]


@pytest.mark.parametrize(("q_len", "k_len"), SIZES)
@pytest.mark.parametrize("chunk", [1, 5, 8, 16, 37, 100])
def test_causal_chunked_attention_equals_torch_is_causal(q_len, k_len, chunk):
    q, k, v = qkv(q_len + k_len, (2, 3), q_len, k_len, 8, 5)
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    got = chunked_attention(q, k, v, chunk, causal=True)
    assert torch.allclose(got, expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize(("q_len", "k_len"), SIZES)
@pytest.mark.parametrize("chunk", [3, 8, 37])
@pytest.mark.parametrize("window", [0, 1, 4, 50])
@pytest.mark.parametrize("causal", [True, False])
def test_windowed_chunked_attention_equals_torch_with_the_band_mask(
    q_len, k_len, chunk, window, causal
):
    q, k, v = qkv(window + chunk, (2,), q_len, k_len, 8, 5)
    visible = band(q_len, k_len, causal, window)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=visible)
    expected[..., ~visible.any(-1), :] = 0.0  # rows that see no key: zeros
    got = chunked_attention(q, k, v, chunk, causal=causal, window=window)
    assert torch.allclose(got, expected, rtol=0, atol=1e-10)
    if causal and window == 0 and k_len >= q_len:  # only itself: the value itself
        assert torch.allclose(got, v[..., :q_len, :], rtol=0, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    q_len=st.integers(1, 20),
    k_len=st.integers(1, 20),
    chunk=st.integers(1, 25),
    causal=st.booleans(),
    window=st.none() | st.integers(0, 25),
)
def test_band_and_mask_together_equal_naive(seed, q_len, k_len, chunk, causal, window):
    q, k, v = qkv(seed, (2,), q_len, k_len, 4, 3)
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(2, q_len, k_len, generator=g) < 0.7  # may leave rows empty
    both = mask & band(q_len, k_len, causal, window)
    expected, _ = scaled_dot_product_attention(q, k, v, mask=both)
    got = chunked_attention(q, k, v, chunk, mask=mask, causal=causal, window=window)
    assert torch.allclose(got, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("options", "computed"),
    [
        ({}, 64),
        ({"causal": True}, 36),  # the 8 diagonal blocks and the 28 below
        ({"causal": True, "window": 8}, 15),  # the diagonal and the one below
        ({"window": 8}, 22),  # the diagonal and its two neighbours
    ],
)
def test_hidden_blocks_are_never_computed(options, computed):
    """64 tokens in blocks of 8: 64 blocks of scores, of which only the visible
    or partly visible ones cost matrix products (counted by PyTorch)."""
    x = torch.randn(1, 1, 64, 16)

    def flops(**options):
        with FlopCounterMode(display=False) as counter:
            chunked_attention(x, x, x, chunk_size=8, **options)
        return counter.get_total_flops()

    assert flops(**options) == flops() * computed // 64


def test_causal_chunked_attention_builds_no_mask_matrix():
    """The memory grows linearly with n, and at 2048 tokens it is far below the
    n x n bytes that a boolean causal mask alone would take."""
    peaks = {}
    for n in (1024, 2048):
        x = torch.randn(1, 1, n, 32)
        peaks[n] = peak_memory(lambda x=x: chunked_attention(x, x, x, 128, causal=True))
    assert peaks[2048] < 2048 * 2048 / 4
    assert peaks[2048] < 2.5 * peaks[1024]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_causal_half_precision_accumulates_in_float32(dtype):
    """Scores beyond float16's largest number (65,504) stay finite and correct."""
    q, k, v = qkv(4, (2,), 13, 13, 8, 4)
    q, k = 300 * q, 300 * k
    assert float((q @ k.mT).abs().max()) / math.sqrt(8) > 65504
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    got = chunked_attention(q.to(dtype), k.to(dtype), v.to(dtype), 4, causal=True)
    assert got.dtype == dtype and bool(torch.isfinite(got).all())
    assert torch.allclose(got.double(), expected, rtol=0.05, atol=0.05)


def test_causal_result_follows_the_inputs_device():
    q, k, v = qkv(5, (2,), 7, 7, 4, 3)
    torch.set_default_device("meta")
    try:
        got = chunked_attention(q, k, v, 3, causal=True, window=2)
    finally:
        torch.set_default_device(None)
    assert got.device.type == "cpu"
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=band(7, 7, True, 2))
    assert torch.allclose(got, expected, rtol=0, atol=1e-12)


def test_causal_gradients_equal_autograd_through_sdpa():
    q, k, v = (t.requires_grad_() for t in qkv(6, (2,), 9, 11, 4, 3))
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    want = torch.autograd.grad(expected.square().sum(), (q, k, v))
    got = chunked_attention(q, k, v, chunk_size=4, causal=True)
    have = torch.autograd.grad(got.square().sum(), (q, k, v))
    for a, b in zip(want, have, strict=True):
        assert torch.allclose(a, b, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"causal": 1}, "causal must be True or False, got 1"),
        ({"causal": "yes"}, "causal must be True or False, got 'yes'"),
        ({"window": -1}, "window must be a non-negative integer, got -1"),
        ({"window": True}, "window must be a non-negative integer, got True"),
        ({"window": 2.0}, "window must be a non-negative integer, got 2.0"),
        ({"chunk_size": True}, "chunk_size must be a positive integer, got True"),
    ],
)
def test_chunked_attention_bad_options(options, message):
    with pytest.raises(ValueError, match=message):
        chunked_attention(*qkv(0), **options)


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
    rotate = partial(rope_queries_and_keys, scale=scale)
    out, _ = mha(query, key, key, rotate=rotate)
    fused, none = mha(query, key, key, rotate=rotate, need_weights=False)
    assert none is None and torch.allclose(fused, out, atol=1e-12)

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
        with pytest.raises(ValueError, match="scale must be a positive finite"):
            mha(x, x, x, rotate=partial(rope_queries_and_keys, scale=bad))
    with pytest.raises(ValueError, match="queries must be the last of the 3 key"):
        mha(torch.ones(2, 4, 8), x, x, rotate=rope_queries_and_keys)
    additive = AdditiveAttention(3, 5, 4)
    with pytest.raises(ValueError, match=r"keys must have shape \(\.\.\., seq, 5\)"):
        additive(torch.ones(2, 3), torch.ones(4, 3), torch.ones(4, 2))
    with pytest.raises(ValueError, match=r"values must have shape \(\.\.\., 4, d_v\)"):
        additive(torch.ones(2, 3), torch.ones(4, 5), torch.ones(3, 2))


# Attention dropout -------------------------------------------------------------


def dropout_inputs(dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(2, 3, 5, 4, generator=g, dtype=dtype)
    k = torch.randn(2, 3, 7, 4, generator=g, dtype=dtype)
    v = torch.randn(2, 3, 7, 6, generator=g, dtype=dtype)
    mask = torch.rand(5, 7, generator=g) > 0.3
    mask[:, 0] = True
    return q, k, v, mask


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16])
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("use_bias", [False, True])
def test_dropout_equals_torch_with_the_same_random_state(dtype, p, use_bias):
    """On the CPU, F.scaled_dot_product_attention(dropout_p=p) takes the math path,
    whose dropout draws one Bernoulli(1 - p) per weight from the default
    generator: from the same state, companion drops the same weights."""
    # This exact comparison relies on an implementation detail of PyTorch: its CPU
    # math path draws the Bernoulli variables in the same order as companion. A
    # PyTorch upgrade could make it fail with companion still correct, but never
    # pass with companion wrong; test_dropout_is_unbiased_and_drops_a_share_p
    # below is the independent, statistical check.
    q, k, v, mask = dropout_inputs(dtype)
    bias = torch.randn(5, 7, dtype=dtype) if use_bias else None
    attn_mask = mask if bias is None else bias.masked_fill(~mask, -math.inf)
    torch.manual_seed(7)
    ours, weights = scaled_dot_product_attention(
        q, k, v, mask=mask, bias=bias, dropout=p
    )
    torch.manual_seed(7)
    theirs = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=p)
    tol = {torch.float64: 1e-12, torch.float32: 1e-5, torch.float16: 2e-3}[dtype]
    assert torch.allclose(ours, theirs, atol=tol, rtol=tol)
    # the draws differ from one call to the next: not the output without dropout
    plain, _ = scaled_dot_product_attention(q, k, v, mask=mask, bias=bias)
    assert not torch.allclose(ours, plain, atol=tol)
    # the weights returned are the ones used: zeros and survivors scaled by 1/(1-p)
    _, clean = scaled_dot_product_attention(q, k, v, mask=mask, bias=bias)
    kept = weights != 0
    assert torch.allclose(
        weights[kept].double(), clean[kept].double() / (1 - p), rtol=tol, atol=tol
    )


def test_dropout_is_unbiased_and_drops_a_share_p():
    """Inverted dropout: E[output] equals the output without dropout, and the
    share of dropped (allowed) weights is p. Over N draws the share has standard
    deviation sqrt(p(1-p)/M) for M Bernoulli draws; bounds of 5 sigma."""
    q, k, v, mask = dropout_inputs()
    p, draws = 0.3, 4000
    torch.manual_seed(0)
    clean, clean_weights = scaled_dot_product_attention(q, k, v, mask=mask)
    qs, ks, vs = (
        t.expand(draws, *t.shape[1:]).contiguous() for t in (q[:1], k[:1], v[:1])
    )
    out, weights = scaled_dot_product_attention(qs, ks, vs, mask=mask, dropout=p)
    allowed = mask.expand_as(weights)
    share = float((weights[allowed] == 0).double().mean())
    m = int(allowed.sum())
    assert abs(share - p) < 5 * math.sqrt(p * (1 - p) / m)
    mean = out.mean(0)
    # per entry, the mean of `draws` outputs has standard error <= spread / sqrt(draws)
    stderr = out.std(0) / math.sqrt(draws)
    assert bool(((mean - clean[0]).abs() < 5 * stderr + 1e-12).all())
    # a kept weight is w / (1 - p), so one draw has standard deviation
    # w sqrt(p / (1 - p)); the mean of `draws` of them is within 5 sigma of w
    spread = clean_weights[0] * math.sqrt(p / (1 - p) / draws)
    assert bool(((weights.mean(0) - clean_weights[0]).abs() <= 5 * spread).all())
    # rows of the dropped weights no longer sum to one
    assert not torch.allclose(weights.sum(-1), torch.ones_like(weights.sum(-1)))


def test_fully_masked_rows_stay_zero_under_dropout():
    q, k, v, mask = dropout_inputs()
    mask = mask.clone()
    mask[2] = False
    out, weights = scaled_dot_product_attention(q, k, v, mask=mask, dropout=0.5)
    assert bool((out[..., 2, :] == 0).all()) and bool((weights[..., 2, :] == 0).all())
    assert not out.isnan().any()


def test_dropout_zero_draws_nothing_and_changes_nothing():
    q, k, v, mask = dropout_inputs()
    state = torch.get_rng_state()
    with_zero = scaled_dot_product_attention(q, k, v, mask=mask, dropout=0.0)
    assert torch.equal(state, torch.get_rng_state())
    without = scaled_dot_product_attention(q, k, v, mask=mask)
    assert all(torch.equal(a, b) for a, b in zip(with_zero, without, strict=True))


def test_attention_dropout_gradient_flows_only_through_kept_weights():
    q, k, v, mask = dropout_inputs()
    v = v.clone().requires_grad_()
    torch.manual_seed(3)
    out, weights = scaled_dot_product_attention(q, k, v, mask=mask, dropout=0.5)
    out.sum().backward()
    # dV = P_dropped^T dO: keys whose weight was dropped for every query get none
    expected = weights.detach().transpose(-2, -1) @ torch.ones_like(out)
    assert torch.allclose(v.grad, expected, atol=1e-12)


def copy_into_torch_mha(mha, dropout):
    reference = torch.nn.MultiheadAttention(
        mha.d_model,
        mha.num_heads,
        dropout=dropout,
        batch_first=True,
        dtype=torch.float64,
    )
    with torch.no_grad():
        projections = (mha.q_proj, mha.k_proj, mha.v_proj)
        reference.in_proj_weight.copy_(torch.cat([p.weight for p in projections]))
        reference.in_proj_bias.copy_(torch.cat([p.bias for p in projections]))
        reference.out_proj.load_state_dict(mha.out_proj.state_dict())
    return reference


@pytest.mark.parametrize("need_weights", [True, False])
def test_multi_head_dropout_in_training_equals_torch(need_weights):
    """Training mode: both of companion's paths (formula and fused kernel) draw
    the same dropped weights as nn.MultiheadAttention(dropout=p) on both of its
    paths, from the same random state."""
    torch.manual_seed(0)
    mha = MultiHeadAttention(8, 2, dropout=0.4).double()
    reference = copy_into_torch_mha(mha, 0.4)
    x = torch.randn(3, 5, 8, dtype=torch.float64)
    memory = torch.randn(3, 6, 8, dtype=torch.float64)
    keep = padding_mask(torch.tensor([6, 3, 1]), 6)
    torch.manual_seed(1)
    ours, weights = mha(x, memory, memory, mask=keep, need_weights=need_weights)
    for torch_weights in (True, False):
        torch.manual_seed(1)
        theirs, _ = reference(
            x,
            memory,
            memory,
            key_padding_mask=~keep[:, 0, 0],
            need_weights=torch_weights,
        )
        assert torch.allclose(ours, theirs, atol=1e-12)
    assert (weights is None) != need_weights


def test_multi_head_dropout_is_off_in_eval_mode():
    torch.manual_seed(0)
    mha = MultiHeadAttention(8, 2, dropout=0.5).double()
    plain = MultiHeadAttention(8, 2).double()
    plain.load_state_dict(mha.state_dict())
    x = torch.randn(2, 4, 8, dtype=torch.float64)
    mha.eval()
    for need_weights in (True, False):
        state = torch.get_rng_state()
        out, weights = mha(x, x, x, need_weights=need_weights)
        assert torch.equal(state, torch.get_rng_state()), "eval mode draws nothing"
        expected, expected_weights = plain(x, x, x, need_weights=need_weights)
        assert torch.equal(out, expected)
        if need_weights:
            assert torch.allclose(weights.sum(-1), torch.ones(2, 2, 4).double())
    mha.train()
    torch.manual_seed(2)
    assert not torch.allclose(mha(x, x, x)[0], plain(x, x, x)[0])


def test_fused_path_passes_dropout_only_in_training(monkeypatch):
    seen = []
    fused = F.scaled_dot_product_attention

    def spy(*args, **kwargs):
        seen.append(kwargs.get("dropout_p", 0.0))
        return fused(*args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    mha = MultiHeadAttention(8, 2, dropout=0.25)
    x = torch.randn(1, 3, 8)
    mha(x, x, x, need_weights=False)
    mha.eval()
    mha(x, x, x, need_weights=False)
    assert seen == [0.25, 0.0]


@pytest.mark.parametrize("bad", [-0.1, 1, 1.0, 1.5, math.nan, math.inf, True, "0.1"])
def test_dropout_must_be_a_probability_below_one(bad):
    q, k, v, _ = dropout_inputs()
    message = r"dropout must be a probability in \[0, 1\)"
    with pytest.raises(ValueError, match=message):
        scaled_dot_product_attention(q, k, v, dropout=bad)
    with pytest.raises(ValueError, match=message):
        MultiHeadAttention(8, 2, dropout=bad)
