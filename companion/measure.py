"""Measuring time and memory on this machine (Part 2, chapter 4; Part 5), and
counting memory traffic on a model machine (Part 5, chapter 4).

Times vary between machines and runs; chapters print them for the reader but
assert only the claims they make (ratios, growth rates). Traffic counts are exact.
"""

import contextlib
import math
import os
import time
from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from companion.softmax import accumulation_dtype, softmax
from companion.validation import check_timing_options, check_traffic_inputs


def best_time(
    function: Callable[[], object], repeats: int = 5, cpu: bool = False
) -> float:
    """The shortest of ``repeats`` wall-clock times of ``function()``, in seconds
    (the minimum is the least disturbed by other work on the machine).

    With ``cpu=True``, the CPU time of this process instead (``time.process_time``,
    all its threads): other programs on a loaded machine disturb it far less than
    the wall clock, and with one thread it is the time the work takes alone."""
    check_timing_options(repeats, cpu)
    clock = time.process_time if cpu else time.perf_counter
    times = []
    for _ in range(repeats):
        start = clock()
        function()
        times.append(clock() - start)
    return min(times)


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence C-level stderr (the profiler's start/stop log lines)."""
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def peak_memory(function: Callable[[], object]) -> int:
    """Peak bytes of CPU memory that PyTorch allocates while ``function()`` runs,
    above what was allocated before.

    Measured with PyTorch's profiler, which records every allocation and every
    free made through PyTorch's allocator, including those inside composite
    operators and fused kernels; the records are replayed in time order.
    Tensors that ``function`` returns count. Memory allocated outside PyTorch
    (by NumPy, say) is not seen.
    """
    with _quiet_stderr(), torch.autograd.profiler.profile(profile_memory=True) as prof:
        function()
    records = [e for e in prof.kineto_results.events() if e.name() == "[memory]"]
    current = peak = 0
    for record in sorted(records, key=lambda e: e.start_ns()):
        current += record.nbytes()  # positive for an allocation, negative for a free
        peak = max(peak, current)
    return peak


class _SlowMemory:
    """The slow memory (a GPU's HBM) of a model machine: counts the elements that
    move between it and the fast memory (SRAM), where all arithmetic happens."""

    def __init__(self) -> None:
        self.accesses = 0

    def read(self, x: Tensor) -> Tensor:
        self.accesses += x.numel()
        return x

    def write(self, x: Tensor) -> Tensor:
        self.accesses += x.numel()
        return x


def standard_attention_traffic(q: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, int]:
    """Standard attention, Algorithm 0 of Dao et al. (2022), on a model machine:
    returns the output ``softmax(Q K^T / sqrt(d)) V`` and the number of elements
    read from and written to slow memory (HBM).

    Each step reads its inputs from HBM and writes its result back: ``S = Q K^T``
    (``S`` is written), ``P = softmax(S)`` (``S`` read, ``P`` written), ``O = P V``:
    ``4 N^2 + 4 N d`` accesses for ``N`` queries and keys of width ``d``,
    ``Theta(N d + N^2)`` (their theorem 2). Each step's inputs are counted once, as
    in that proof: a fast memory too small for a row of ``S`` would add re-reads.

    Shapes: ``q`` (n_q, d), ``k`` (n_k, d), ``v`` (n_k, d_v): one head.
    """
    check_traffic_inputs(q, k, v, None)
    dtype, wide = q.dtype, accumulation_dtype(q.dtype)  # half: work in float32
    q, k, v = q.to(wide), k.to(wide), v.to(wide)
    hbm = _SlowMemory()
    s = hbm.write(hbm.read(q) @ hbm.read(k).T / math.sqrt(q.shape[-1]))
    p = hbm.write(softmax(hbm.read(s), dim=-1))
    o = hbm.write(hbm.read(p) @ hbm.read(v))
    return o.to(dtype), hbm.accesses


def tiled_attention_traffic(
    q: Tensor, k: Tensor, v: Tensor, sram_size: int
) -> tuple[Tensor, int]:
    """FlashAttention's forward pass, Algorithm 1 of Dao et al. (2022), on a model
    machine with a fast memory (SRAM) of ``sram_size`` elements: returns the output
    and the number of elements read from and written to slow memory (HBM).

    Blocks of ``B_c = ceil(M / (4 d))`` keys and ``B_r = min(B_c, d)`` queries.
    The outer loop loads each key/value block once; the inner loop reads every
    query block with its running output ``O_i``, maximum ``m_i`` and normaliser
    ``l_i``, updates them by the online softmax and writes them back. The scores
    never reach HBM; ``Q`` and ``O`` pass through it ``T_c = ceil(N / B_c)`` times:
    about ``12 N^2 d^2 / M`` accesses, ``Theta(N^2 d^2 / M)`` (their theorem 2).

    Shapes: ``q`` (n_q, d), ``k`` (n_k, d), ``v`` (n_k, d_v): one head.
    """
    check_traffic_inputs(q, k, v, sram_size)
    (n_q, d), n_k = q.shape, k.shape[0]
    block_c = math.ceil(sram_size / (4 * d))
    block_r = min(block_c, d)
    dtype, wide = q.dtype, accumulation_dtype(q.dtype)  # half: work in float32
    q, k, v = q.to(wide), k.to(wide), v.to(wide)
    hbm = _SlowMemory()  # O, l, m start in HBM: zeros, zeros, -inf (written once)
    o = hbm.write(torch.zeros(n_q, v.shape[1], dtype=wide, device=q.device))
    ell = hbm.write(torch.zeros(n_q, 1, dtype=wide, device=q.device))
    m = hbm.write(torch.full((n_q, 1), -math.inf, dtype=wide, device=q.device))
    for j in range(0, n_k, block_c):
        k_j, v_j = hbm.read(k[j : j + block_c]), hbm.read(v[j : j + block_c])
        for i in range(0, n_q, block_r):
            rows = slice(i, i + block_r)
            q_i, o_i = hbm.read(q[rows]), hbm.read(o[rows])
            ell_i, m_i = hbm.read(ell[rows]), hbm.read(m[rows])
            s_ij = q_i @ k_j.T / math.sqrt(d)  # in SRAM only
            m_tilde = s_ij.amax(dim=-1, keepdim=True)
            p_tilde = torch.exp(s_ij - m_tilde)
            ell_tilde = p_tilde.sum(dim=-1, keepdim=True)
            m_new = torch.maximum(m_i, m_tilde)
            old, new = torch.exp(m_i - m_new), torch.exp(m_tilde - m_new)
            ell_new = old * ell_i + new * ell_tilde
            o[rows] = hbm.write((ell_i * old * o_i + new * p_tilde @ v_j) / ell_new)
            ell[rows], m[rows] = hbm.write(ell_new), hbm.write(m_new)
    return o.to(dtype), hbm.accesses
