import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from companion.softmax import log_softmax, logsumexp, softmax


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


@pytest.mark.parametrize("temperature", [0.0, -1.0, math.inf, math.nan, "1", True])
def test_bad_temperature(temperature):
    with pytest.raises(
        ValueError, match="temperature must be a positive finite number"
    ):
        softmax(torch.ones(3), temperature=temperature)
