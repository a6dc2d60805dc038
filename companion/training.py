"""A small, deterministic training loop for the course's experiments (Part 5 on)."""

import random
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from companion.validation import check_positive_int, check_positive_number, check_seed


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch, so that a run is repeatable."""
    check_seed(seed)
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

    ``loss_fn`` returns the loss (a scalar tensor) of a batch it chooses, usually
    generated from the step number, so that the data are reproducible. Seeds
    everything with ``seed`` first; the model's initial weights are whatever it
    was built with, so seed before building it. Shows a progress bar unless
    ``progress`` is False. Stops with a ``ValueError`` if the loss becomes NaN or
    infinite. Leaves the model in evaluation mode; returns the losses.
    """
    check_positive_int(steps, "steps")
    check_positive_number(lr, "lr")
    seed_everything(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    model.train()
    for step in tqdm(range(steps), disable=not progress, ncols=80):
        loss = loss_fn(model, step)
        if not (isinstance(loss, Tensor) and loss.dim() == 0):
            raise ValueError(f"loss_fn must return a scalar tensor, got {loss!r}")
        if not torch.isfinite(loss):
            raise ValueError(
                f"the loss is {loss.item()} at step {step}; lower the learning rate"
            )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    return losses
