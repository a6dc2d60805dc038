"""Assignment tests for Part 3, chapter 2: gradients and cross-entropy."""

import torch

from companion.teaching import test


def _vector(value, name):
    """``value`` as a flat float64 tensor, for answers given as tensors or lists."""
    try:
        return torch.as_tensor(value, dtype=torch.float64).detach().flatten()
    except (TypeError, ValueError, RuntimeError) as error:
        raise AssertionError(f"{name} should be a tensor of numbers: {error}") from None


@test("ex-smoothing-gradient")
def smoothing_gradient_is_p_minus_the_smoothed_target(smoothing_gradient):
    gradient = _vector(smoothing_gradient, "smoothing_gradient")
    assert gradient.shape == (3,), (
        "expected one partial derivative per logit (3 numbers), got shape "
        f"{tuple(gradient.shape)}"
    )
    p = torch.softmax(torch.tensor([2.0, 1.0, 3.0], dtype=torch.float64), 0)
    eps, classes = 0.1, 3
    one_hot = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    smoothed = (1 - eps) * one_hot + eps / classes
    assert not torch.allclose(gradient, p - one_hot, atol=1e-4), (
        "this is p - y for the one-hot target: with label smoothing the target puts "
        "eps/K on every class and 1 - eps + eps/K on class 3"
    )
    assert torch.allclose(gradient, p - smoothed, atol=1e-4), (
        f"expected p - y_smooth = {[round(v, 4) for v in (p - smoothed).tolist()]}, "
        f"got {[round(v, 4) for v in gradient.tolist()]}: the gradient with respect "
        "to the logits (not the probabilities) of the smoothed cross-entropy"
    )


def _mse_gradient_norms(logits):
    """|d/dz ||softmax(z) - y||^2| for the rows of ``logits``, class 0 correct."""
    z = logits.clone().requires_grad_(True)
    y = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    loss = ((torch.softmax(z, -1) - y) ** 2).sum()
    (gradient,) = torch.autograd.grad(loss, z)
    return gradient.norm(dim=-1)


def _first_logit_only(s):
    s = torch.as_tensor(s, dtype=torch.float64).reshape(-1)
    return torch.stack([s, torch.zeros_like(s), torch.zeros_like(s)], dim=1)


@test("ex-mse-largest")
def p_peak_is_where_the_squared_error_gradient_peaks(p_peak):
    p = float(p_peak)
    scan = torch.linspace(-10, 10, 4001, dtype=torch.float64)
    norms = _mse_gradient_norms(_first_logit_only(scan))
    expected = torch.softmax(_first_logit_only(scan[norms.argmax()]), -1)[0, 0].item()
    assert 0 < p < 1, f"p_peak should be a probability, got {p}"
    assert abs(p - expected) < 0.01, (
        f"the norm of the squared-error gradient with respect to the logits, "
        f"|2 J (p - y)|, is largest at p(correct) = {expected:.3f}; got {p:.3f}. "
        "Store the probability of the correct class there, not the logit"
    )


@test("ex-mse-largest", hidden=True)
def the_gradient_at_p_peak_beats_its_neighbours(p_peak):
    p = float(p_peak)
    assert 0 < p < 1, f"p_peak should be a probability, got {p}"
    logit = torch.tensor(p / ((1 - p) / 2), dtype=torch.float64).log()  # others at 0
    norms = _mse_gradient_norms(_first_logit_only(logit + torch.tensor([0, -1, 1])))
    assert norms[0] >= norms[1:].max(), (
        f"the gradient norm at p(correct) = {p:.3f} ({norms[0]:.4f}) is smaller than "
        f"one logit away ({norms[1]:.4f}, {norms[2]:.4f}): not the peak"
    )


@test("ex-redundant")
def the_columns_of_the_fitted_w_sum_to_zero(column_sum, W):
    total = _vector(column_sum, "column_sum")
    rows = W.shape[0]
    assert total.shape == (rows,), (
        f"W has {rows} rows (input features) and one column per class: the sum of "
        f"its columns has {rows} entries (sum over the classes, dim 1), got shape "
        f"{tuple(total.shape)}"
    )
    assert torch.allclose(total, W.detach().double().sum(1), atol=1e-8), (
        "column_sum should be the fitted W summed over its columns (the classes)"
    )
    assert total.abs().max() < 1e-5, (
        f"the columns of the L2-regularised W should sum to zero; largest entry "
        f"{total.abs().max():.2e}"
    )
