import pytest
import torch

from companion.data import regression_data, regression_target


def test_target_function_values():
    x = torch.tensor([0.0, torch.pi / 4, 2.0])
    expected = torch.tensor(
        [0.0, 1.0 + torch.pi / 8, torch.sin(torch.tensor(4.0)).item() + 1.0]
    )
    assert torch.allclose(regression_target(x), expected)


def test_reproducible_sorted_and_in_range():
    x, y = regression_data(50, seed=3)
    x2, y2 = regression_data(50, seed=3)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert x.shape == y.shape == (50,)
    assert x.dtype == torch.float32
    assert (x[1:] >= x[:-1]).all()
    assert 0 <= x.min() and x.max() <= 5
    x3, _ = regression_data(50, seed=4)
    assert not torch.equal(x, x3)


def test_noise_level():
    x, y = regression_data(20_000, noise=0.3, seed=0)
    residual = y - regression_target(x)
    assert abs(residual.std().item() - 0.3) < 0.01
    x, y = regression_data(10, noise=0.0)
    assert torch.equal(y, regression_target(x))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": 0}, "n must be a positive integer"),
        ({"n": 2.5}, "n must be a positive integer"),
        ({"n": True}, "n must be a positive integer, got True"),
        ({"n": 5, "noise": -1.0}, "noise must be a finite number >= 0"),
        ({"n": 5, "noise": float("nan")}, "noise must be a finite number >= 0"),
        ({"n": 5, "noise": float("inf")}, "noise must be a finite number >= 0"),
        ({"n": 5, "noise": True}, "noise must be .* got True"),
        ({"n": 5, "noise": 1e38}, "noise must be .*at most"),
        ({"n": 5, "low": 2.0, "high": 1.0}, "need low < high"),
        ({"n": 5, "low": 1.0, "high": 1.0}, "need low < high"),
        ({"n": 5, "low": float("nan")}, "low must be a finite number"),
        ({"n": 5, "low": float("-inf")}, "low must be a finite number"),
        ({"n": 5, "high": float("inf")}, "high must be a finite number"),
        ({"n": 5, "high": True}, "high must be a finite number .* got True"),
        ({"n": 5, "low": -3e38, "high": 3e38}, "low must be a finite number"),
        (
            {"n": 5, "seed": 1.5},
            r"seed must be an integer in \[0, 18446744073709551616\)",
        ),
        ({"n": 5, "seed": True}, "seed must be an integer .* got True"),
        ({"n": 5, "seed": -1}, "seed must be an integer .* got -1"),
        (
            {"n": 5, "seed": 2**64},
            "seed must be an integer .* got 18446744073709551616",
        ),
    ],
)
def test_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        regression_data(**kwargs)


def test_the_largest_accepted_values_give_finite_data():
    limit = float(torch.finfo(torch.float32).max) / 16
    for low, high in ((-limit, limit), (limit / 2, limit), (-1.0, 1.0)):
        x, y = regression_data(1000, noise=limit, low=low, high=high)
        assert torch.isfinite(x).all() and torch.isfinite(y).all()


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (2.0, "x must be a torch.Tensor, got float"),
        (torch.tensor([1, 2]), "x must have a floating-point dtype, got torch.int64"),
    ],
)
def test_target_refuses_what_is_not_a_float_tensor(x, message):
    with pytest.raises(ValueError, match=message):
        regression_target(x)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_target_refuses_non_finite_x(value):
    with pytest.raises(ValueError, match="x contains NaN or infinite values"):
        regression_target(torch.tensor([0.0, value]))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_target_in_half_precision_is_computed_in_float32(dtype):
    # 2x overflows float16 above 32752; sin(2x) + x/2 does not
    x = torch.tensor([-40000.0, 0.5, 40000.0]).to(dtype)
    y = regression_target(x)
    assert y.dtype == dtype and torch.isfinite(y).all()
    assert torch.equal(y, regression_target(x.float()).to(dtype))
