"""Assignment tests for Part 2, chapter 1: scoring functions."""

import torch

from companion.teaching import test


def as_number(value):
    return float(torch.as_tensor(value, dtype=torch.float64))


@test("ex-variance")
def unit_variance_gives_d_k(dot_variance):
    for d_k in (1, 16, 64):
        got = as_number(dot_variance(d_k, 1.0))
        assert abs(got - d_k) < 1e-9, (
            f"with unit-variance components Var(q.k) = d_k = {d_k}, got {got:.4g}"
        )


@test("ex-variance")
def variance_grows_as_sigma_to_the_fourth(dot_variance):
    for d_k, sigma in [(64, 2.0), (8, 0.5), (3, 3.0)]:
        got, expected = as_number(dot_variance(d_k, sigma)), d_k * sigma**4
        assert abs(got - expected) < 1e-9 * expected, (
            f"for d_k = {d_k}, sigma = {sigma}: expected {expected:.4g}, got "
            f"{got:.4g}; each product q_i k_i has variance E[q_i^2] E[k_i^2]"
        )


@test("ex-variance", hidden=True)
def variance_matches_a_simulation(dot_variance):
    generator = torch.Generator().manual_seed(5)
    d_k, sigma = 8, 3.0
    qs = sigma * torch.randn(20000, d_k, generator=generator, dtype=torch.float64)
    ks = sigma * torch.randn(20000, d_k, generator=generator, dtype=torch.float64)
    measured = (qs * ks).sum(-1).var().item()
    ratio = measured / as_number(dot_variance(d_k, sigma))
    assert abs(ratio - 1) < 0.05, (
        f"simulated Var(q.k) = {measured:.1f} for d_k = {d_k}, sigma = {sigma}, "
        f"but dot_variance gives {as_number(dot_variance(d_k, sigma)):.1f}"
    )


@test("ex-low-rank")
def m_gives_the_score_of_the_projections(M, W_Q, W_K):
    d = W_Q.shape[0]
    assert W_K.shape == W_Q.shape, "W_Q and W_K should both be d x d_k"
    assert tuple(M.shape) == (d, d), f"M should be {d} x {d}, got {tuple(M.shape)}"
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(5, d, generator=generator, dtype=W_Q.dtype)
    y = torch.randn(7, d, generator=generator, dtype=W_Q.dtype)
    projected = (x @ W_Q) @ (y @ W_K).T
    assert torch.allclose(x @ M @ y.T, projected, atol=1e-8), (
        "x M y^T should equal (x W_Q)(y W_K)^T for every x and y: M = W_Q W_K^T"
    )


@test("ex-low-rank")
def m_has_rank_d_k(M, W_Q):
    d, d_k = W_Q.shape
    assert d_k < d, f"choose d_k < d to see the low rank (got d = {d}, d_k = {d_k})"
    rank = int(torch.linalg.matrix_rank(M))
    assert rank == d_k, f"M is {d} x {d} but should have rank d_k = {d_k}, got {rank}"


def additive_reference(queries, keys, W_q, W_k, v):
    """v^T tanh(W_q q_i + W_k k_j) for every query i and key j."""
    hidden = (queries @ W_q.T)[:, None, :] + (keys @ W_k.T)[None, :, :]
    return torch.tanh(hidden) @ v


@test("ex-concat")
def concat_scores_equal_the_additive_scores(
    concat_scores, queries, keys, values, W_q, W_k, v, additive
):
    got = torch.as_tensor(concat_scores, dtype=torch.float64)
    expected = additive_reference(queries, keys, W_q, W_k, v)
    assert got.shape == expected.shape, (
        f"expected a {tuple(expected.shape)} matrix of scores (queries x keys), "
        f"got {tuple(got.shape)}"
    )
    assert torch.allclose(got, expected, atol=1e-10), (
        "the concat scores should equal v^T tanh(W_q q + W_k k) for every pair"
    )
    with torch.no_grad():
        _, weights = additive(queries, keys, values)
    assert torch.allclose(torch.softmax(got, dim=-1), weights, atol=1e-10), (
        "the softmax of the concat scores should be AdditiveAttention's weights"
    )


@test("ex-concat", hidden=True)
def w_concat_stacks_w_q_and_w_k(W_concat, W_q, W_k):
    expected = (W_q.shape[0], W_q.shape[1] + W_k.shape[1])
    assert tuple(W_concat.shape) == expected, (
        f"W = [W_q W_k] should be {expected}, got {tuple(W_concat.shape)}"
    )
    width = W_q.shape[1]
    assert torch.allclose(W_concat[:, :width], W_q), (
        "the first columns of W multiply q: they are W_q"
    )
    assert torch.allclose(W_concat[:, width:], W_k), (
        "the last columns of W multiply k: they are W_k"
    )
