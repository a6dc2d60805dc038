"""Assignment tests for Part 5, chapter 4: efficient attention."""

import math

import torch

from companion.measure import peak_memory
from companion.teaching import test

BLOCK_SIZES = (64, 256, 1024)


def check_block_sizes(results, name):
    missing = [c for c in BLOCK_SIZES if c not in results]
    assert not missing, f"{name} has no entry for the block sizes {missing}"


@test("ex-chunk-size")
def larger_blocks_take_more_memory(chunk_memory):
    check_block_sizes(chunk_memory, "chunk_memory")
    small, large = chunk_memory[64], chunk_memory[1024]
    assert 0.9 < small < 100 and 0.9 < large < 1000, (
        f"chunk_memory holds {small:.4g} and {large:.4g} for blocks of 64 and 1024: "
        "store the peak memory in MiB (bytes / 2**20); the output alone takes 1 MiB"
    )
    assert large > 2 * small, (
        f"blocks of 1024 peak at {large:.1f} MiB, blocks of 64 at {small:.1f} MiB: "
        "expected the large blocks to need several times more (their scores)"
    )


@test("ex-chunk-size")
def smaller_blocks_take_more_time(chunk_time):
    check_block_sizes(chunk_time, "chunk_time")
    small, large = chunk_time[64], chunk_time[1024]
    assert large > 1, f"chunk_time[1024] = {large:.4g}: store the time in milliseconds"
    assert small > large, (
        f"blocks of 64 took {small:.1f} ms, blocks of 1024 {large:.1f} ms: expected "
        "the many small blocks to be slower (more, smaller matrix products)"
    )


def autograd_gradients(q, k, v, grad_out):
    """dQ, dK, dV of softmax(q k^T / sqrt(d)) v, by autograd."""
    q, k, v = (t.clone().requires_grad_() for t in (q, k, v))
    p = torch.softmax(q @ k.mT / math.sqrt(q.shape[-1]), dim=-1)
    (p @ v).backward(grad_out)
    return q.grad, k.grad, v.grad


def check_backward(tiled_backward, q_len, k_len, chunk, seed):
    generator = torch.Generator().manual_seed(seed)

    def draw(*shape):
        return torch.randn(*shape, generator=generator, dtype=torch.float64)

    q, k, v = draw(1, 2, q_len, 4), draw(1, 2, k_len, 4), draw(1, 2, k_len, 3)
    grad_out = draw(1, 2, q_len, 3)
    got = tiled_backward(q, k, v, grad_out, chunk)
    expected = autograd_gradients(q, k, v, grad_out)
    for name, a, b in zip(("dq", "dk", "dv"), got, expected, strict=True):
        assert a.shape == b.shape, (
            f"{name} has shape {tuple(a.shape)}, expected {tuple(b.shape)}"
        )
        error = (a - b).abs().max().item()
        assert error < 1e-10, (
            f"{name} differs from autograd by {error:.2e} ({q_len} queries, "
            f"{k_len} keys, blocks of {chunk}): check its accumulation over the "
            "blocks, and the partial blocks at the ends"
        )


@test("ex-tiled-backward")
def tiled_backward_matches_autograd(tiled_backward):
    assert callable(tiled_backward), "tiled_backward should be a function"
    check_backward(tiled_backward, q_len=23, k_len=19, chunk=5, seed=0)


@test("ex-tiled-backward", hidden=True)
def tiled_backward_for_any_block_size(tiled_backward):
    for q_len, k_len, chunk in ((13, 10, 1), (13, 10, 7), (9, 30, 64)):
        check_backward(tiled_backward, q_len, k_len, chunk, seed=chunk)


@test("ex-tiled-backward", hidden=True)
def tiled_backward_holds_one_block_at_a_time(tiled_backward):
    generator = torch.Generator().manual_seed(1)
    n, chunk = 1024, 128
    q, k, v, grad_out = (
        torch.randn(1, 1, n, 4, generator=generator, dtype=torch.float64)
        for _ in range(4)
    )
    peak = peak_memory(lambda: tiled_backward(q, k, v, grad_out, chunk))
    full = n * n * 8  # one n x n matrix of float64 scores or probabilities
    assert peak < full, (
        f"tiled_backward peaks at {peak / 2**20:.1f} MiB on {n} tokens, as much as "
        f"one full {n} x {n} matrix ({full / 2**20:.0f} MiB) or more: recompute P "
        "block by block instead of forming it whole"
    )
