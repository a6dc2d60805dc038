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
        ({"n": 5, "noise": -1.0}, "noise must be >= 0"),
        ({"n": 5, "low": 2.0, "high": 1.0}, "need low < high"),
    ],
)
def test_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        regression_data(**kwargs)
