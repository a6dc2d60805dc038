import math

import pytest
import torch

from companion.statistics import Estimate, bootstrap_mean


def normal(seed, *shape):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_the_mean_is_the_table_mean_and_lies_in_its_interval():
    scores = normal(0, 5, 40)
    estimate = bootstrap_mean(scores)
    assert math.isclose(estimate.mean, scores.double().mean().item(), rel_tol=1e-12)
    assert estimate.low < estimate.mean < estimate.high


def test_items_only_matches_the_normal_theory_width():
    # For a mean of n items the bootstrap standard error is s * sqrt((n-1)/n) / sqrt(n),
    # so a 95% percentile interval is about 2 * 1.96 of it wide.
    x = normal(1, 400).double()
    estimate = bootstrap_mean(x, draws=20000)
    n = x.numel()
    se = x.std(unbiased=False).item() / math.sqrt(n)
    assert math.isclose(estimate.high - estimate.low, 2 * 1.959964 * se, rel_tol=0.05)


def test_a_constant_table_has_a_zero_width_interval():
    estimate = bootstrap_mean(torch.full((3, 7), 0.25))
    assert estimate == Estimate(0.25, 0.25, 0.25)


def test_spread_between_seeds_widens_the_interval():
    # The same item scores, shifted by a different offset per seed: an interval
    # that ignored the seeds (items only) would be as narrow as the first one.
    items = normal(2, 1, 200)
    same = items.expand(4, 200)
    shifted = same + torch.tensor([[-0.5], [0.0], [0.3], [0.6]])
    narrow, wide = bootstrap_mean(same), bootstrap_mean(shifted)
    assert wide.high - wide.low > 2 * (narrow.high - narrow.low)


def test_coverage_is_close_to_the_level():
    # 200 experiments, each with 5 seeds x 60 items drawn around a true mean of 0.3
    # (a seed effect of sd 0.1 and an item effect of sd 1): about 95% of the
    # intervals must contain 0.3. The binomial sd of the count is about 3.
    covered = 0
    for trial in range(200):
        g = torch.Generator().manual_seed(1000 + trial)
        seed_effect = 0.1 * torch.randn(5, 1, generator=g)
        item_effect = torch.randn(1, 60, generator=g)
        noise = 0.5 * torch.randn(5, 60, generator=g)
        estimate = bootstrap_mean(0.3 + seed_effect + item_effect + noise, draws=400)
        covered += estimate.low <= 0.3 <= estimate.high
    assert 176 <= covered <= 200, covered


def test_with_few_seeds_that_dominate_the_interval_is_too_narrow():
    # The documented limit: 5 seeds that differ much more than the items do.
    # Resampling 5 seeds keeps 4/5 of their variance, so fewer than 95% of the
    # intervals cover the true mean (172 of 200 here), but far more than half.
    covered = 0
    for trial in range(200):
        g = torch.Generator().manual_seed(5000 + trial)
        seed_effect = 0.3 * torch.randn(5, 1, generator=g)
        item_effect = 0.1 * torch.randn(1, 60, generator=g)
        noise = 0.1 * torch.randn(5, 60, generator=g)
        estimate = bootstrap_mean(0.3 + seed_effect + item_effect + noise, draws=400)
        covered += estimate.low <= 0.3 <= estimate.high
    assert 150 <= covered <= 185, covered


def test_a_paired_difference_is_resolved_only_when_it_should_be():
    base = normal(3, 5, 100)
    better = base + 0.2 + 0.05 * normal(4, 5, 100)  # same seeds and items, +0.2
    noisy = base + 0.5 * normal(5, 5, 100)  # no true difference
    assert bootstrap_mean(better - base).resolved
    assert bootstrap_mean(better - base).low > 0.15
    assert not bootstrap_mean(noisy - base).resolved


def test_the_same_seed_gives_the_same_interval_and_half_precision_is_accumulated():
    scores = normal(6, 3, 50)
    assert bootstrap_mean(scores, seed=1) == bootstrap_mean(scores, seed=1)
    assert bootstrap_mean(scores, seed=1) != bootstrap_mean(scores, seed=2)
    big = torch.full((2, 30), 60000.0, dtype=torch.float16)  # the sum overflows float16
    assert bootstrap_mean(big).mean == 60000.0


def test_the_string_shows_three_decimals():
    assert str(Estimate(0.5, 0.41234, 0.6)) == "0.500 [0.412, 0.600]"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"scores": torch.ones(2, 0)}, "scores must not be empty"),
        ({"scores": torch.ones(2, 2, 2)}, "scores must have 1 or 2 axes"),
        ({"scores": torch.tensor([1.0, math.nan])}, "scores contains NaN"),
        ({"scores": torch.ones(3, dtype=torch.int64)}, "scores must have a floating"),
        ({"scores": torch.ones(3), "draws": 0}, "draws must be a positive integer"),
        ({"scores": torch.ones(3), "level": 1.5}, "level must be a number in"),
        ({"scores": torch.ones(3), "seed": -1}, "seed must be an integer"),
    ],
)
def test_bad_input_names_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        bootstrap_mean(**kwargs)
