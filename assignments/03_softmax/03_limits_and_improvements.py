"""Assignment tests for Part 3, chapter 3: the limits of softmax, and improvements."""

import math

import torch
import torch.nn.functional as F

from companion.teaching import test


def _call(function, *numbers):
    """``function`` at plain numbers, or at float64 tensors if it needs tensors."""
    try:
        return float(function(*numbers))
    except (TypeError, AttributeError):
        tensors = [torch.tensor(x, dtype=torch.float64) for x in numbers]
        return float(function(*tensors))


@test("ex-sparsemax-two")
def sparsemax_two_matches_sparsemax(sparsemax_two, sparsemax):
    for t in torch.linspace(-3, 3, 61, dtype=torch.float64).tolist():
        expected = sparsemax(torch.tensor([t, 0.0], dtype=torch.float64))[0].item()
        got = _call(sparsemax_two, t)
        assert abs(got - expected) < 1e-9, (
            f"sparsemax_two({t:g}) = {got:.4f}, but the first weight of "
            f"sparsemax({t:g}, 0) is {expected:.4f}: project (t, 0) onto the "
            "segment p1 + p2 = 1, p1, p2 >= 0"
        )


@test("ex-sparsemax-two", hidden=True)
def sparsemax_two_is_exactly_zero_or_one_beyond_one(sparsemax_two):
    for t in (-1.0, -1.7, -25.0):
        got = _call(sparsemax_two, t)
        assert got == 0.0, f"sparsemax_two({t}) should be exactly 0, got {got}"
    for t in (1.0, 1.3, 25.0):
        got = _call(sparsemax_two, t)
        assert got == 1.0, f"sparsemax_two({t}) should be exactly 1, got {got}"
    for t in (-0.9, 0.0, 0.6):
        got = _call(sparsemax_two, t)
        assert math.isclose(got, (t + 1) / 2), (
            f"sparsemax_two({t}) should be (t + 1) / 2 = {(t + 1) / 2}, got {got}"
        )


def _smoothed_gap(eps, classes):
    """log of (1 - eps + eps/K) / (eps/K): the correct logit minus every other."""
    return math.log((1 - eps + eps / classes) / (eps / classes))


@test("ex-ls-bound")
def optimal_gap_matches_the_smoothed_target(optimal_gap):
    gap, expected = float(optimal_gap), _smoothed_gap(0.1, 10)
    assert abs(gap - expected) < 1e-3, (
        f"expected log((1 - eps + eps/K) / (eps/K)) = {expected:.4f} for eps = 0.1 "
        f"and K = 10, got {gap:.4f}: the correct class gets 1 - eps + eps/K (not "
        "1 - eps), every other class eps/K, and logit differences are log-ratios"
    )


@test("ex-ls-bound", hidden=True)
def the_smoothed_loss_is_flat_at_optimal_gap(optimal_gap):
    logits = torch.zeros(1, 10, dtype=torch.float64)
    logits[0, 0] = float(optimal_gap)
    logits.requires_grad_(True)
    loss = F.cross_entropy(logits, torch.tensor([0]), label_smoothing=0.1)
    (gradient,) = torch.autograd.grad(loss, logits)
    assert gradient.norm() < 1e-4, (
        f"at a gap of {float(optimal_gap):.4f} the smoothed cross-entropy still has "
        f"a gradient of norm {gradient.norm():.2e}: not its minimum"
    )


def _sink_reference(real, sink_score):
    scores = torch.cat([torch.tensor([sink_score], dtype=torch.float64), real])
    return torch.softmax(scores, 0)[1:].sum().item()


@test("ex-softmax-plus-one")
def weight_on_real_keys_is_the_softmax_mass_off_the_sink(weight_on_real_keys):
    generator = torch.Generator().manual_seed(0)
    for sink_score in (0.0, 2.0, -1.5):
        real = torch.randn(5, generator=generator, dtype=torch.float64)
        expected = _sink_reference(real, sink_score)
        try:
            got = float(weight_on_real_keys(real, sink_score))
        except TypeError:
            got = float(weight_on_real_keys(real, torch.tensor(sink_score)))
        assert abs(got - expected) < 1e-9, (
            f"with sink score {sink_score} the real keys get {expected:.4f} of a "
            f"softmax over [sink, real scores], got {got:.4f}: S / (e^s0 + S) with "
            "S = sum_j e^z_j"
        )


@test("ex-softmax-plus-one", hidden=True)
def weight_on_real_keys_spans_zero_to_one(weight_on_real_keys):
    base = torch.tensor([0.0, 0.5, -0.5], dtype=torch.float64)
    weights = []
    for shift in (-30.0, -3.0, 0.0, 3.0, 30.0):
        try:
            weights.append(float(weight_on_real_keys(base + shift, 1.0)))
        except TypeError:
            weights.append(float(weight_on_real_keys(base + shift, torch.tensor(1.0))))
    assert weights[0] < 1e-9 and weights[-1] > 1 - 1e-9, (
        "far below the sink score the real keys should get almost no weight, far "
        f"above almost all of it; got {weights[0]:.3g} and {weights[-1]:.3g}"
    )
    assert all(a < b for a, b in zip(weights, weights[1:], strict=False)), (
        f"the weight should grow with the real scores: {weights}"
    )
