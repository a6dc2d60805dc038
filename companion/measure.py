"""Measuring time and memory on this machine (Part 2, chapter 4; Part 5).

Times vary between machines and runs; chapters print them for the reader but
assert only the claims they make (ratios, growth rates).
"""

import contextlib
import os
import time
from collections.abc import Callable, Iterator

import torch

from companion.validation import check_positive_int


def best_time(function: Callable[[], object], repeats: int = 5) -> float:
    """The shortest of ``repeats`` wall-clock times of ``function()``, in seconds
    (the minimum is the least disturbed by other work on the machine)."""
    check_positive_int(repeats, "repeats")
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
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
