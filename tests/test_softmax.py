import math

import entmax
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from companion.softmax import (
    cross_entropy,
    entmax15,
    gumbel_softmax,
    log_softmax,
    logsumexp,
    online_softmax,
    softmax,
    softmax_jacobian,
    sparsemax,
)


def random_tensor(seed, shape, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(*shape, generator=g, dtype=torch.float64)


shapes = st.lists(st.integers(1, 5), min_size=1, max_size=4)


def test_published_value():
    # e^x / sum e^x by hand with the math module, independent of torch.
    x = [2.0, 3.0, 1.0]
    total = sum(math.exp(v) for v in x)
    by_hand = [math.exp(v) / total for v in x]
    result = softmax(torch.tensor(x, dtype=torch.float64))
    assert torch.allclose(
        result, torch.tensor(by_hand, dtype=torch.float64), atol=1e-15
    )
    # The value quoted in the course plan (rounded to 4 decimals).
    assert [round(v, 4) for v in result.tolist()] == [0.2447, 0.6652, 0.0900]


@settings(max_examples=60, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**16), data=st.data())
def test_matches_torch(shape, seed, data):
    x = random_tensor(seed, shape)
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    t = data.draw(st.floats(0.05, 20.0))
    assert torch.allclose(softmax(x, dim, t), torch.softmax(x / t, dim), atol=1e-12)
    assert torch.allclose(log_softmax(x, dim), torch.log_softmax(x, dim), atol=1e-12)
    assert torch.allclose(logsumexp(x, dim), torch.logsumexp(x, dim), atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**16), shift=st.floats(-1e3, 1e3))
def test_probability_vector_and_shift_invariance(shape, seed, shift):
    x = random_tensor(seed, shape)
    p = softmax(x)
    assert (p >= 0).all()
    assert torch.allclose(p.sum(-1), torch.ones(shape[:-1], dtype=torch.float64))
    assert torch.allclose(softmax(x + shift), p, atol=1e-10)


def test_argmax_is_preserved_and_low_temperature_is_one_hot():
    x = torch.tensor([0.5, 2.0, -1.0, 1.9], dtype=torch.float64)
    assert softmax(x).argmax() == x.argmax()
    assert torch.allclose(
        softmax(x, temperature=1e-3), torch.tensor([0.0, 1, 0, 0]).double()
    )
    uniform = torch.full((4,), 0.25, dtype=torch.float64)
    assert torch.allclose(softmax(x, temperature=1e6), uniform, atol=1e-5)


def test_no_overflow_for_large_scores():
    x = torch.tensor([1000.0, 1001.0])  # exp(1000) overflows float32 and float64
    expected = torch.tensor([1 / (1 + math.e), math.e / (1 + math.e)])
    assert torch.allclose(softmax(x), expected)
    assert torch.isclose(
        logsumexp(x), torch.tensor(1001.0 + math.log1p(math.exp(-1.0)))
    )
    assert torch.isfinite(log_softmax(torch.tensor([-1000.0, 1000.0]))).all()


@pytest.mark.parametrize(
    ("dtype", "temperature"),
    [(torch.float16, 1e-4), (torch.float32, 1e-39), (torch.float64, 1e-320)],
)
def test_tiny_temperature_does_not_overflow(dtype, temperature):
    # x / T overflows to inf here; (x - max) / T does not.
    p = softmax(torch.tensor([10.0, 20.0], dtype=dtype), temperature=temperature)
    assert torch.equal(p, torch.tensor([0.0, 1.0], dtype=dtype))


def test_tied_maxima_at_low_temperature_share_the_weight():
    p = softmax(torch.tensor([3.0, 1.0, 3.0], dtype=torch.float64), temperature=1e-3)
    assert torch.allclose(p, torch.tensor([0.5, 0.0, 0.5], dtype=torch.float64))


def test_numpy_temperature_is_accepted():
    x = torch.tensor([1.0, 2.0])
    assert torch.allclose(
        softmax(x, temperature=np.float32(2.0)), torch.softmax(x / 2, -1)
    )


def test_minus_infinity_means_zero_weight():
    x = torch.tensor([[1.0, -math.inf, 2.0], [-math.inf, -math.inf, -math.inf]])
    p = softmax(x)
    assert p[0, 1] == 0
    assert torch.allclose(p[0], torch.softmax(torch.tensor([1.0, -math.inf, 2.0]), -1))
    assert torch.equal(p[1], torch.zeros(3))  # nothing to weight: zeros, not NaN
    assert logsumexp(x)[1] == -math.inf
    assert (log_softmax(x)[1] == -math.inf).all()


def test_gradients_match_finite_differences():
    x = random_tensor(0, (3, 4)).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: softmax(t, -1, 0.7), (x,))
    assert torch.autograd.gradcheck(lambda t: log_softmax(t, 0), (x,))
    assert torch.autograd.gradcheck(lambda t: logsumexp(t, -1), (x,))


@pytest.mark.parametrize("function", [softmax, log_softmax, logsumexp])
@pytest.mark.parametrize(
    ("x", "kwargs", "message"),
    [
        ([1.0, 2.0], {}, "must be a torch.Tensor, got list"),
        (torch.tensor([1, 2]), {}, "floating-point dtype, got torch.int64"),
        (torch.tensor(1.0), {}, "at least one axis"),
        (torch.ones(2, 0), {}, r"no entries along dim=-1 \(shape \(2, 0\)\)"),
        (
            torch.ones(2, 3),
            {"dim": 2},
            r"dim=2 is out of range for x of shape \(2, 3\)",
        ),
        (torch.tensor([1.0, math.nan]), {}, "NaN or \\+inf"),
        (torch.tensor([1.0, math.inf]), {}, "NaN or \\+inf"),
    ],
)
def test_bad_input(function, x, kwargs, message):
    with pytest.raises(ValueError, match=message):
        function(x, **kwargs)


def test_masked_logits_in_cross_entropy_and_gumbel():
    logits = torch.tensor([[0.0, -math.inf, 1.0]], dtype=torch.float64)
    expected = torch.nn.functional.cross_entropy(logits, torch.tensor([0]))
    assert torch.allclose(cross_entropy(logits, torch.tensor([0])), expected)
    empty = torch.full((2, 3), -math.inf)
    assert torch.equal(gumbel_softmax(empty, hard=True), torch.zeros(2, 3))


@pytest.mark.parametrize("temperature", [1e-46, 1e39])
def test_temperature_must_be_representable(temperature):
    with pytest.raises(ValueError, match="is not representable in torch.float32"):
        softmax(torch.ones(3), temperature=temperature)
    assert torch.isfinite(
        softmax(torch.ones(3, dtype=torch.float64), temperature=temperature)
    ).all()


@pytest.mark.parametrize("temperature", [0.0, -1.0, math.inf, math.nan, "1", True])
def test_bad_temperature(temperature):
    with pytest.raises(
        ValueError, match="temperature must be a positive finite number"
    ):
        softmax(torch.ones(3), temperature=temperature)


# --- Part 3: Jacobian, cross-entropy, sparse maps, Gumbel-softmax, online softmax


@settings(max_examples=40, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**16))
def test_jacobian_matches_autograd(shape, seed):
    x = random_tensor(seed, shape)
    p = softmax(x)
    jacobian = softmax_jacobian(p)
    assert jacobian.shape == (*shape, shape[-1])
    flat_x = x.reshape(-1, shape[-1])
    flat_j = jacobian.reshape(-1, shape[-1], shape[-1])
    for row, expected in zip(flat_x, flat_j, strict=True):
        by_autograd = torch.autograd.functional.jacobian(softmax, row)
        assert torch.allclose(by_autograd, expected, atol=1e-12)
    assert torch.allclose(jacobian, jacobian.transpose(-1, -2))
    assert torch.allclose(jacobian.sum(-1), torch.zeros(shape, dtype=torch.float64))


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    n=st.integers(1, 6),
    k=st.integers(2, 6),
    eps=st.sampled_from([0.0, 0.1, 0.5, 1.0]),
)
def test_cross_entropy_matches_torch(seed, n, k, eps):
    logits = random_tensor(seed, (n, k))
    target = torch.randint(0, k, (n,), generator=torch.Generator().manual_seed(seed))
    expected = torch.nn.functional.cross_entropy(logits, target, label_smoothing=eps)
    assert torch.allclose(cross_entropy(logits, target, eps), expected, atol=1e-12)


def test_cross_entropy_gradient_is_p_minus_y():
    logits = random_tensor(0, (4, 5)).requires_grad_(True)
    target = torch.tensor([0, 3, 4, 1])
    cross_entropy(logits, target).backward()
    y = torch.nn.functional.one_hot(target, 5).double()
    assert torch.allclose(logits.grad, (softmax(logits.detach()) - y) / 4)
    assert torch.autograd.gradcheck(lambda z: cross_entropy(z, target, 0.2), (logits,))


def test_cross_entropy_published_value():
    # -log softmax([2, 3, 1])_1 = -log(0.6652...) by hand
    logits = torch.tensor([[2.0, 3.0, 1.0]], dtype=torch.float64)
    by_hand = -math.log(math.exp(3) / (math.exp(2) + math.exp(3) + math.exp(1)))
    assert math.isclose(cross_entropy(logits, torch.tensor([1])).item(), by_hand)


@pytest.mark.parametrize("target, eps", [(1, 0.0), (0, 0.1)])
def test_cross_entropy_refuses_an_infinite_loss(target, eps):
    # -inf on the true class, or on any class once smoothing gives it weight eps / K
    logits = torch.tensor([[0.0, -math.inf, 1.0]], dtype=torch.float64)
    with pytest.raises(ValueError, match="the cross-entropy is infinite"):
        cross_entropy(logits, torch.tensor([target]), label_smoothing=eps)


def test_cross_entropy_allows_minus_infinity_where_the_target_is_zero():
    logits = torch.tensor([[0.0, -math.inf, 1.0]], dtype=torch.float64)
    by_hand = -math.log(math.exp(1) / (math.exp(0) + math.exp(1)))
    assert math.isclose(cross_entropy(logits, torch.tensor([2])).item(), by_hand)


@settings(max_examples=60, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**16), data=st.data())
def test_sparsemax_and_entmax_match_the_reference_implementation(shape, seed, data):
    x = random_tensor(seed, shape)
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    assert torch.allclose(sparsemax(x, dim), entmax.sparsemax(x, dim=dim), atol=1e-12)
    assert torch.allclose(entmax15(x, dim), entmax.entmax15(x, dim=dim), atol=1e-10)


@settings(max_examples=60, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**16), scale=st.floats(0.01, 100.0))
def test_sparse_maps_land_on_the_simplex(shape, seed, scale):
    x = random_tensor(seed, shape, scale=scale)
    for function in (sparsemax, entmax15):
        p = function(x)
        assert (p >= 0).all()
        assert torch.allclose(p.sum(-1), torch.ones(shape[:-1], dtype=torch.float64))
        # The largest score gets the largest weight (argmax is preserved).
        top = p.gather(-1, x.argmax(-1, keepdim=True))
        assert torch.equal(top, p.max(-1, keepdim=True).values)


@pytest.mark.parametrize("scale", [1e3, 1e6, 1e10, 1e30])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_no_nan_or_inf_for_large_inputs(scale, dtype):
    x = scale * torch.randn(
        6, 9, generator=torch.Generator().manual_seed(0), dtype=dtype
    )
    for function in (softmax, log_softmax, sparsemax, entmax15):
        y = function(x)
        assert torch.isfinite(y).all(), function.__name__
    for function in (softmax, sparsemax, entmax15, lambda t: online_softmax(t, 4)):
        assert torch.allclose(function(x).sum(-1), torch.ones(6, dtype=dtype))


def test_gradchecks_of_the_sparse_maps_and_online_softmax():
    x = random_tensor(4, (3, 6)).requires_grad_(True)
    assert torch.autograd.gradcheck(sparsemax, (x,))
    assert torch.autograd.gradcheck(entmax15, (x,))
    assert torch.autograd.gradcheck(lambda t: online_softmax(t, 4), (x,))
    g = torch.Generator()
    assert torch.autograd.gradcheck(
        lambda t: gumbel_softmax(t, tau=0.8, generator=g.manual_seed(1)), (x,)
    )


def test_sparsemax_published_properties():
    # The projection of a point already on the simplex is the point itself.
    p = torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64)
    assert torch.allclose(sparsemax(p), p)
    # Two scores: sparsemax(t, 0) = (clip((t + 1) / 2, 0, 1), ...)
    # (the "sparse sigmoid" of Martins & Astudillo, 2016, section 2.2).
    for t in (-2.0, -0.4, 0.0, 0.7, 3.0):
        value = sparsemax(torch.tensor([t, 0.0], dtype=torch.float64))[0].item()
        assert math.isclose(value, min(max((t + 1) / 2, 0.0), 1.0), abs_tol=1e-15)
    masked = sparsemax(
        torch.tensor([[1.0, -math.inf, 0.5], [-math.inf, -math.inf, -math.inf]])
    )
    assert masked[0, 1] == 0 and torch.equal(masked[1], torch.zeros(3))


def test_gumbel_softmax_frequencies_match_softmax():
    logits = torch.tensor([1.0, 0.0, -1.0, 2.0], dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    samples = gumbel_softmax(logits.expand(40000, 4), tau=0.5, hard=True, generator=g)
    frequencies = samples.mean(0)
    assert torch.equal(samples.sum(-1), torch.ones(40000, dtype=torch.float64))
    # Gumbel-max is exact: frequencies within 4 standard errors of softmax.
    p = softmax(logits)
    assert (frequencies - p).abs().max() < 4 * math.sqrt(0.25 / 40000)


def test_gumbel_softmax_straight_through_gradient():
    logits = random_tensor(1, (3, 4)).requires_grad_(True)
    weights = random_tensor(2, (3, 4))
    hard = gumbel_softmax(
        logits, tau=0.7, hard=True, generator=torch.Generator().manual_seed(5)
    )
    (hard * weights).sum().backward()
    grad_hard = logits.grad.clone()
    logits.grad = None
    soft = gumbel_softmax(logits, tau=0.7, generator=torch.Generator().manual_seed(5))
    (soft * weights).sum().backward()
    assert torch.allclose(grad_hard, logits.grad)
    assert torch.equal(hard.detach().argmax(-1), soft.detach().argmax(-1))


@settings(max_examples=40, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**16), block=st.integers(1, 7))
def test_online_softmax_equals_softmax(shape, seed, block):
    x = random_tensor(seed, shape, scale=50.0)
    assert torch.allclose(online_softmax(x, block), torch.softmax(x, -1), atol=1e-12)


def test_online_softmax_handles_masks_and_large_values():
    x = torch.tensor([[1000.0, -math.inf, 999.0], [-math.inf, -math.inf, -math.inf]])
    y = online_softmax(x, block_size=1)
    assert torch.allclose(y[0], softmax(x[0]))
    assert torch.equal(y[1], torch.zeros(3))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: softmax_jacobian(torch.tensor([0.5, 0.6])),
            "must hold probability vectors",
        ),
        (
            lambda: softmax_jacobian(torch.tensor([1.5, -0.5])),
            "must hold probability vectors",
        ),
        (
            lambda: cross_entropy(torch.ones(3), torch.tensor([0])),
            r"logits must have shape \(N, K\)",
        ),
        (
            lambda: cross_entropy(torch.ones(2, 3), torch.tensor([0.0, 1.0])),
            "target must be an int64 or int32 tensor",
        ),
        (
            lambda: cross_entropy(torch.ones(2, 3), torch.tensor([0])),
            r"target must have shape \(2,\)",
        ),
        (
            lambda: cross_entropy(torch.ones(2, 3), torch.tensor([0, 3])),
            r"must lie in \[0, 3\)",
        ),
        (
            lambda: cross_entropy(torch.ones(2, 3), torch.tensor([0, 1]), 1.5),
            "label_smoothing",
        ),
        (lambda: sparsemax(torch.tensor([1.0, math.nan])), "NaN or \\+inf"),
        (lambda: entmax15(torch.tensor([1.0, -math.inf])), "needs finite scores"),
        (
            lambda: gumbel_softmax(torch.ones(3), tau=0.0),
            "tau must be a positive finite",
        ),
        (
            lambda: online_softmax(torch.ones(3), 0),
            "block_size must be a positive integer",
        ),
    ],
)
def test_bad_input_part3(call, message):
    with pytest.raises(ValueError, match=message):
        call()
