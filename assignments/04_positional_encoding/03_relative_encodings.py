"""Assignment tests for Part 4, chapter 3: relative positional encodings."""

import torch

from companion.positional import alibi_slopes
from companion.teaching import test


def _mean(alibi_mean_distance, slope):
    """The answer at ``slope``, given as a number or, if need be, as a tensor."""
    try:
        return float(alibi_mean_distance(slope))
    except (TypeError, AttributeError):
        return float(alibi_mean_distance(torch.tensor(slope, dtype=torch.float64)))


@test("ex-alibi-window")
def alibi_mean_distance_is_the_mean_of_the_weights(alibi_mean_distance):
    # Long enough to stand for infinity: e^(-s t) = e^-781 at the end for s = 1/256.
    distance = torch.arange(200_000, dtype=torch.float64)
    for slope in [*alibi_slopes(8).tolist(), 0.05, 2.0]:
        weights = torch.exp(-slope * distance)
        expected = ((weights * distance).sum() / weights.sum()).item()
        got = _mean(alibi_mean_distance, slope)
        assert abs(got - expected) < 1e-6 * max(1.0, expected), (
            f"for slope {slope:.4g} the weights e^(-s t), t = 0, 1, 2, ..., have mean "
            f"distance {expected:.4f}, got {got:.4f}: the mean of a geometric "
            "distribution with ratio e^-s"
        )


@test("ex-alibi-window", hidden=True)
def steep_heads_match_the_16_key_measurement(alibi_mean_distance, mean_distance):
    slopes = alibi_slopes(8).tolist()
    infinite = [_mean(alibi_mean_distance, s) for s in slopes]
    measured = [float(m) for m in mean_distance]
    assert abs(infinite[0] - measured[0]) < 0.01, (
        f"the steepest head barely reaches the 16th key: its mean distance over an "
        f"infinite sequence ({infinite[0]:.3f}) should match the measured "
        f"{measured[0]:.3f}"
    )
    shorter = all(m <= i + 1e-3 for i, m in zip(infinite, measured, strict=True))
    assert shorter, "16 keys cut the distribution short: never beyond the infinite mean"
    assert infinite[-1] > 20 * measured[-1], (
        f"the shallowest head (slope 1/256) averages over about 256 keys, got "
        f"{infinite[-1]:.1f}"
    )
