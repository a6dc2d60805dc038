"""Assignment tests for Part 5, chapter 3b: adapting to longer inputs."""

import torch

from companion.positional import t5_relative_position_bucket
from companion.teaching import test


def untrained(max_distance, length=32):
    """The buckets of a bidirectional T5 bias that no relative position of a
    ``length``-token input reaches."""
    relative = torch.arange(-(length - 1), length)  # key minus query
    used = t5_relative_position_bucket(
        relative, bidirectional=True, max_distance=max_distance
    )
    return sorted(set(range(32)) - set(used.tolist()))


def check_buckets(untrained_buckets, max_distance, show=False):
    assert max_distance in untrained_buckets, (
        f"untrained_buckets has no entry for maximum distance {max_distance}"
    )
    got = sorted(int(b) for b in untrained_buckets[max_distance])
    expected = untrained(max_distance)
    assert got == expected, (
        f"with maximum distance {max_distance} you found the untrained buckets {got}"
        + (f", expected {expected}" if show else "")
        + ": find the buckets that the relative positions -31 to 31 reach (keys "
        "before and after the query, bidirectional=True), and list the others of "
        "the 32"
    )


@test("ex-t5-bidirectional")
def untrained_buckets_with_maximum_distance_128(untrained_buckets):
    check_buckets(untrained_buckets, 128)


@test("ex-t5-bidirectional", hidden=True)
def untrained_buckets_with_maximum_distance_32(untrained_buckets):
    check_buckets(untrained_buckets, 32, show=True)


@test("ex-fixed-scale")
def scale_one_eighth_beats_one_quarter(fixed, after):
    fixed = torch.as_tensor(fixed).double()
    eighth = after["interpolated", 256]
    assert fixed.shape == eighth.shape, (
        f"fixed has shape {tuple(fixed.shape)}, expected {tuple(eighth.shape)}: "
        "one row per fine-tuned model, one accuracy per test sequence, as score gives"
    )
    assert ((fixed >= 0) & (fixed <= 1)).all(), "accuracies lie between 0 and 1"
    assert fixed.mean() < eighth.mean() - 0.2, (
        f"at scale 1/4 the models score {fixed.mean():.3f} on average, at 1/8 "
        f"{eighth.mean():.3f}: expected scale 1/4 to be far worse (did you pass "
        "scale=1/4 with the 256-token test set and the interpolated models?)"
    )


@test("ex-fixed-scale", hidden=True)
def fixed_scale_scores_match_a_recount(fixed, tuned, test_sets):
    tokens, targets, _ = test_sets[256]
    with torch.no_grad():
        predicted = tuned["interpolated"][0](tokens, position_scale=1 / 4).argmax(-1)
    expected = (predicted == targets)[:, 128:].double().mean(1)
    got = torch.as_tensor(fixed).double()[0]
    assert (got - expected).abs().mean() < 0.01, (
        f"the first model's accuracies at scale 1/4 average {got.mean():.3f}, a "
        f"recount gives {expected.mean():.3f}: score the second half of each "
        "256-token test sequence with position_scale=1/4"
    )
