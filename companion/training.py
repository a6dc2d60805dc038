"""A small, deterministic training loop for the course's experiments (Part 5 on)."""

import random
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch, so that a run is repeatable."""
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 (seed the legacy global generator too)
    torch.manual_seed(seed)


def train(
    model: nn.Module,
    loss_fn: Callable[[nn.Module, int], Tensor],
    steps: int,
    lr: float = 1e-3,
    seed: int = 0,
    progress: bool = True,
) -> list[float]:
    """Minimise ``loss_fn(model, step)`` with Adam for ``steps`` steps.

    ``loss_fn`` computes the loss of a batch it chooses (usually generated from the
    step number, so that data are reproducible). Seeds everything with ``seed``
    first; shows a progress bar unless ``progress`` is False. Returns the losses.
    """
    if isinstance(steps, bool) or not (isinstance(steps, int) and steps > 0):
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr!r}")
    seed_everything(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    model.train()
    for step in tqdm(range(steps), disable=not progress, ncols=80):
        loss = loss_fn(model, step)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    return losses
