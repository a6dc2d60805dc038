"""Tests of companion.measure: best_time, peak_memory and the traffic counts of
standard and tiled attention on a model machine."""

import math
import time

import pytest
import torch
import torch.nn.functional as F

from companion.measure import (
    best_time,
    peak_memory,
    standard_attention_traffic,
    tiled_attention_traffic,
)


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


def test_best_time_on_the_cpu_clock_counts_work_not_sleep():
    assert best_time(lambda: time.sleep(0.05), repeats=2) >= 0.05
    assert best_time(lambda: time.sleep(0.05), repeats=2, cpu=True) < 0.02
    with pytest.raises(ValueError, match="cpu must be True or False, got 1"):
        best_time(lambda: None, cpu=1)


def one_head(seed, n=48, d=8, n_k=None, d_v=None):
    g = torch.Generator().manual_seed(seed)
    n_k, d_v = n if n_k is None else n_k, d if d_v is None else d_v
    return (
        torch.randn(n, d, generator=g, dtype=torch.float64),
        torch.randn(n_k, d, generator=g, dtype=torch.float64),
        torch.randn(n_k, d_v, generator=g, dtype=torch.float64),
    )


@pytest.mark.parametrize(("n", "n_k", "d_v"), [(48, 48, 8), (37, 21, 5), (5, 50, 3)])
@pytest.mark.parametrize("sram_size", [32, 100, 256, 1000, 10_000])
def test_both_simulations_compute_attention(n, n_k, d_v, sram_size):
    q, k, v = one_head(n + sram_size, n, 8, n_k, d_v)
    expected = F.scaled_dot_product_attention(q[None], k[None], v[None])[0]
    standard, _ = standard_attention_traffic(q, k, v)
    tiled, _ = tiled_attention_traffic(q, k, v, sram_size)
    assert torch.allclose(standard, expected, rtol=0, atol=1e-12)
    assert torch.allclose(tiled, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("n", "d"), [(48, 8), (100, 4), (7, 16)])
def test_standard_attention_moves_4_n_squared_plus_4_n_d(n, d):
    """Read Q, K, write S; read S, write P; read P, V, write O (Dao et al., 2022,
    proof of theorem 2)."""
    _, accesses = standard_attention_traffic(*one_head(0, n, d))
    assert accesses == 4 * n * n + 4 * n * d


@pytest.mark.parametrize(
    ("n", "d", "sram_size"), [(64, 8, 32), (64, 8, 512), (50, 4, 90)]
)
def test_tiled_attention_count_by_hand(n, d, sram_size):
    """O, l, m initialised (n (d + 2)); K and V read once (2 n d); for each of the
    T_c key blocks, Q, O, l, m read and O, l, m written (n (3 d + 4))."""
    _, accesses = tiled_attention_traffic(*one_head(1, n, d), sram_size)
    t_c = math.ceil(n / math.ceil(sram_size / (4 * d)))
    assert accesses == n * (d + 2) + 2 * n * d + t_c * n * (3 * d + 4)


def test_tiled_traffic_is_theta_n2_d2_over_m_and_beats_standard_when_m_exceeds_d2():
    """Theorem 2 of Dao et al. (2022), for d <= M <= N d: the count over
    N^2 d^2 / M stays near 12 (Q read, O read and written, 4 N d / M times)."""
    n, d = 256, 8
    q, k, v = one_head(2, n, d)
    _, standard = standard_attention_traffic(q, k, v)
    for sram_size in (4 * d * d, 8 * d * d, 16 * d * d):  # B_c = d, 2 d, 4 d
        _, tiled = tiled_attention_traffic(q, k, v, sram_size)
        assert 12 <= tiled / (n * n * d * d / sram_size) <= 16
        assert tiled < standard
    _, small = tiled_attention_traffic(q, k, v, 4 * d)  # blocks of one row
    assert small > 2 * standard  # d^2 > M: tiling loses


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: tiled_attention_traffic(*one_head(0, 8, 4), 15),
            r"sram_size must hold one row each of Q, K, V and O, at least 4 d = 16",
        ),
        (
            lambda: tiled_attention_traffic(*one_head(0, 8, 4), True),
            "sram_size must be a positive integer, got True",
        ),
        (
            lambda: standard_attention_traffic(*(t[None] for t in one_head(0, 8, 4))),
            r"q, k and v must be matrices \(seq, dim\) of one head",
        ),
    ],
)
def test_bad_traffic_inputs(call, message):
    with pytest.raises(ValueError, match=message):
        call()
