"""Tests of companion.measure: best_time and peak_memory."""

import torch

from companion.measure import best_time, peak_memory


def test_peak_memory_counts_the_score_matrix():
    x = torch.randn(1, 1024, 8)
    peak = peak_memory(lambda: x @ x.transpose(-2, -1))
    assert peak >= 1024 * 1024 * 4  # the float32 result itself
    assert peak < 2 * 1024 * 1024 * 4
    small = peak_memory(lambda: x[:, :32] @ x[:, :32].transpose(-2, -1))
    assert small < peak / 100


def test_peak_memory_sees_inside_composite_operators():
    """PyTorch's unfused attention builds the n x n weights inside one operator and
    frees them before returning; they must still count."""
    x = torch.randn(1, 1, 1024, 8)
    with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.MATH):
        peak = peak_memory(
            lambda: torch.nn.functional.scaled_dot_product_attention(x, x, x)
        )
    assert peak >= 1024 * 1024 * 4


def test_best_time_is_the_minimum():
    calls = []
    assert best_time(lambda: calls.append(1), repeats=3) >= 0
    assert len(calls) == 3
