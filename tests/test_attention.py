import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from companion.attention import (
    KernelRegression,
    attention_pooling,
    gaussian_scores,
    nadaraya_watson,
)


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
    with pytest.raises(ValueError, match="width=1e-23 is too small for torch.float32"):
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
            "width must be one positive",
        ),
        (
            lambda: gaussian_scores(torch.ones(2), torch.ones(3), width=-1.0),
            "width must be one positive",
        ),
        (
            lambda: gaussian_scores(torch.ones(2), torch.ones(3), width=torch.ones(2)),
            "width must be one",
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
            "same dtype, got torch.float32 and torch.float64",
        ),
        (lambda: KernelRegression(width=0.0), "width must be a positive finite number"),
    ],
)
def test_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call()
