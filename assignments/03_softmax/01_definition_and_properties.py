"""Assignment tests for Part 3, chapter 1: softmax, definition and properties."""

import math

import torch

from companion.teaching import test


@test("ex-lse-gap")
def dominant_logits_bring_lse_to_the_max(dominant_logits):
    z = torch.as_tensor(dominant_logits, dtype=torch.float64)
    gap = torch.logsumexp(z, 0) - z.max()
    assert gap < 1e-3, (
        f"LSE exceeds the max by {gap:.4g}: make one logit much larger than the others"
    )


@test("ex-lse-gap")
def equal_logits_reach_the_upper_bound(equal_logits):
    z = torch.as_tensor(equal_logits, dtype=torch.float64)
    gap = torch.logsumexp(z, 0) - z.max() - math.log(z.numel())
    assert abs(gap) < 1e-9, f"LSE - max - log n = {gap:.4g}, expected 0"


@test("ex-inverse")
def inverse_softmax_recovers_p(inverse_softmax):
    p = torch.tensor([0.2, 0.05, 0.5, 0.25], dtype=torch.float64)
    z = inverse_softmax(p)
    assert torch.allclose(torch.softmax(z, 0), p), "softmax(inverse_softmax(p)) != p"


@test("ex-inverse", hidden=True)
def every_constant_shift_is_a_solution(inverse_softmax):
    generator = torch.Generator().manual_seed(0)
    p = torch.rand(6, generator=generator, dtype=torch.float64) + 0.01
    p = p / p.sum()
    for c in (-7.0, 0.0, 3.5):
        z = inverse_softmax(p, c)
        assert torch.allclose(torch.softmax(z, 0), p), f"fails for c = {c}"
        assert torch.allclose(z - inverse_softmax(p, 0.0), torch.full_like(z, c)), (
            "the solutions differ by the constant c in every entry"
        )
