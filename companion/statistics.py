"""Uncertainty of experimental results: a mean over seeds and test items with a
bootstrap interval (Parts 5 and 6).

An experiment here trains a model with several seeds and scores every trained
model on the same test items, giving a table ``scores[seed, item]``. Both the
seeds and the items are samples of what could have been drawn, so the interval
resamples both: seeds and items independently, the rows and the columns of the
table (the "pigeonhole" bootstrap for crossed data, Owen, 2007). To compare two
methods run with the same seeds on the same items, pass the table of their
differences ``a - b``: both are then resampled together (a paired comparison),
and the difference is resolved when its interval excludes zero.

The interval is approximate. Resampling R seeds keeps only (R - 1) / R of the
spread between them, so when that spread dominates and R is small, the interval
is too narrow: with five seeds and seeds that differ much more than items, about
86% of "95%" intervals cover the true mean (``tests/test_statistics.py``).
"""

from typing import NamedTuple

import torch
from torch import Tensor

from companion.validation import check_bootstrap


class Estimate(NamedTuple):
    """A mean and its confidence interval ``[low, high]``."""

    mean: float
    low: float
    high: float

    @property
    def resolved(self) -> bool:
        """True when the interval excludes zero (for a difference: its sign is
        resolved at the interval's level)."""
        return self.low > 0 or self.high < 0

    def __str__(self) -> str:
        return f"{self.mean:.3f} [{self.low:.3f}, {self.high:.3f}]"


def bootstrap_mean(
    scores: Tensor, draws: int = 2000, level: float = 0.95, seed: int = 0
) -> Estimate:
    """The mean of ``scores`` (seeds, items), or (items,), with the percentile
    interval at ``level`` (Efron and Tibshirani, 1993, section 13.3) of ``draws``
    means of tables whose rows (seeds) and columns (items) are resampled
    independently, with replacement (Owen, 2007)."""
    check_bootstrap(scores, draws, level, seed)
    table = scores.double().reshape(-1, scores.shape[-1])  # (seeds, items)
    seeds, items = table.shape
    device = table.device
    gen = torch.Generator(device=device).manual_seed(seed)
    means = []
    for start in range(0, draws, 256):  # 256 tables at a time bound the memory
        batch = min(256, draws - start)
        rows = torch.randint(seeds, (batch, seeds, 1), generator=gen, device=device)
        cols = torch.randint(items, (batch, 1, items), generator=gen, device=device)
        means.append(table[rows, cols].mean(dim=(1, 2)))
    tail = (1 - level) / 2
    probabilities = torch.tensor([tail, 1 - tail], dtype=torch.float64, device=device)
    low, high = torch.quantile(torch.cat(means), probabilities)
    return Estimate(float(table.mean()), float(low), float(high))
