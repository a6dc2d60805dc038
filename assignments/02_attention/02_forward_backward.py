"""Assignment tests for Part 2, chapter 2: forward and backward passes."""

import math

import torch

from companion.teaching import test


def scores_of(q, k):
    """Reference: the scaled scores Q K^T / sqrt(d_k), detached, as a new leaf."""
    q, k = q.detach(), k.detach()
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    return scores.clone().requires_grad_(True)


def weights_of(scores, mask=None):
    """Reference: the row softmax of ``scores``, zero where ``mask`` is False and
    on rows with no allowed key (plain torch, differentiable)."""
    if mask is None:
        return torch.softmax(scores, dim=-1)
    allowed = mask.expand_as(scores)
    logits = scores.masked_fill(~allowed, -math.inf)
    logits = torch.where(allowed.any(-1, keepdim=True), logits, 0.0)
    return torch.softmax(logits, dim=-1) * allowed


def score_gradient(q, k, v, grad_out, mask=None, bias=None):
    """Reference: the gradient dS of <grad_out, O> with respect to the scores S."""
    scores = scores_of(q, k)
    shifted = scores if bias is None else scores + bias.detach()
    output = weights_of(shifted, mask) @ v.detach()
    output.backward(grad_out)
    return scores.grad


@test("ex-single-query")
def dv_rows_equal_autograd(dv_rows, q3, k3, v3, do):
    values = v3.detach().clone().requires_grad_(True)
    output = weights_of(scores_of(q3, k3)) @ values
    output.backward(do)
    got = torch.as_tensor(dv_rows)
    assert got.shape == values.shape, (
        f"expected one row per value, shape {tuple(values.shape)}, "
        f"got {tuple(got.shape)}"
    )
    assert torch.allclose(got, values.grad, atol=1e-10), (
        "row j should be dv_j = p_j do, the gradient autograd gives for value j"
    )


@test("ex-single-query", hidden=True)
def dv_rows_are_weighted_copies_of_do(dv_rows, do):
    rows = torch.as_tensor(dv_rows)
    upstream = do.reshape(-1)
    assert torch.allclose(rows.sum(0), upstream, atol=1e-10), (
        "the rows p_j do should add up to do, since the weights p_j sum to one"
    )
    coefficients = rows @ upstream / (upstream @ upstream)
    assert torch.allclose(rows, torch.outer(coefficients, upstream), atol=1e-10), (
        "every row should be a multiple of do"
    )


@test("ex-rows-sum-zero")
def rows_of_ds_sum_to_zero(ds4, q, k):
    got = torch.as_tensor(ds4)
    shape = (*q.shape[:-1], k.shape[-2])
    assert got.shape == shape, (
        f"dS has one entry per query and key, shape {shape}, got {tuple(got.shape)}"
    )
    assert got.abs().sum() > 0, "dS should not be all zeros"
    assert torch.allclose(got.sum(-1), torch.zeros(shape[:-1], dtype=got.dtype)), (
        "every row of dS should sum to zero"
    )


@test("ex-rows-sum-zero", hidden=True)
def ds4_is_the_gradient_of_the_scores(ds4, q, k, v, mask, grad_out):
    expected = score_gradient(q, k, v, grad_out, mask)
    assert torch.allclose(torch.as_tensor(ds4), expected, atol=1e-10), (
        "ds4 should be dS = P * (dP - rowsum(dP * P)) with dP = dO V^T, for the "
        "batch q, k, v, mask and grad_out above"
    )


@test("ex-bias-gradient")
def bias_gradient_is_ds(bias, q5, k5, v5, up5):
    assert bias.grad is not None, (
        "bias has no gradient: make it a leaf with requires_grad=True, add it to "
        "the scores and call backward on the output"
    )
    expected = score_gradient(q5, k5, v5, up5, bias=bias)
    assert bias.grad.shape == expected.shape, (
        f"the bias should have the shape of S, {tuple(expected.shape)}"
    )
    assert torch.allclose(bias.grad, expected, atol=1e-10), (
        "bias.grad should equal dS, the gradient with respect to the scores"
    )


@test("ex-bias-gradient")
def ds5_by_the_equations(ds5, bias, q5, k5, v5, up5):
    expected = score_gradient(q5, k5, v5, up5, bias=bias)
    got = torch.as_tensor(ds5).detach()
    assert got.shape == expected.shape and torch.allclose(got, expected, atol=1e-10), (
        "ds5 should be dS = P * (dP - rowsum(dP * P)), with dP = dO V^T and P the "
        "weights of the biased scores"
    )


def sizes_from_counts(counts):
    """n and d from the counts 4 n^2 d (self-attention) and 4 n d^2 (recurrent)."""
    attention, recurrent = counts["self-attention"], counts["recurrent"]
    n_times_d = (attention * recurrent / 16) ** (1 / 3)
    n = round(math.sqrt(n_times_d * attention / recurrent))
    return n, round(n_times_d / n)


@test("ex-crossover")
def counts_on_both_sides_of_the_boundary(below, above):
    for name, counts, cheaper in [("below", below, True), ("above", above, False)]:
        n, d = sizes_from_counts(counts)
        assert d == 256, f"{name}: use layers of width d = 256, got d = {d}"
        assert counts["self-attention"] == 4 * n * n * d, f"{name}: not a layer_flops"
        assert (n < d) == cheaper, (
            f"{name} should hold the counts for a length {name} the boundary, got "
            f"n = {n}: self-attention is cheaper exactly when n < d"
        )
        assert (counts["self-attention"] < counts["recurrent"]) == cheaper


@test("ex-crossover")
def layers_for_1000_positions(layers_1000):
    layers = int(layers_1000)
    assert 3**layers >= 1000, (
        f"{layers} dilated layers of width 3 see back only {3**layers - 1} positions"
    )
    assert 3 ** (layers - 1) < 1000, (
        f"{layers - 1} layers already see back {3 ** (layers - 1) - 1} positions: "
        "take the smallest L with 3^L >= 1000"
    )


@test("ex-rowsum-output")
def rowsum_from_the_output(by_output, q, k, v, mask, grad_out):
    output = weights_of(scores_of(q, k), mask).detach() @ v.detach()
    expected = (grad_out * output).sum(-1)
    got = torch.as_tensor(by_output)
    assert got.shape == expected.shape, (
        f"one row sum per query: expected shape {tuple(expected.shape)}, "
        f"got {tuple(got.shape)}"
    )
    assert torch.allclose(got, expected, atol=1e-10), (
        "by_output should be rowsum(dO * O), with O the output of the batch above"
    )


@test("ex-rowsum-output", hidden=True)
def rowsum_from_the_weights(by_weights, q, k, v, mask, grad_out):
    weights = weights_of(scores_of(q, k), mask).detach()
    expected = ((grad_out @ v.detach().transpose(-2, -1)) * weights).sum(-1)
    got = torch.as_tensor(by_weights)
    assert got.shape == expected.shape and torch.allclose(got, expected, atol=1e-10), (
        "by_weights should be rowsum(dP * P), with dP = dO V^T"
    )
