"""Tests of companion.training: the deterministic training loop."""

import torch
import torch.nn.functional as F

from companion.models import (
    TransformerClassifier,
)
from companion.training import train


def test_training_is_deterministic_and_learns():
    def make():
        torch.manual_seed(0)  # the same initial weights for both runs
        return TransformerClassifier(
            6, 2, d_model=16, num_heads=2, num_layers=1, d_ff=32
        )

    def loss_fn(model, step):
        g = torch.Generator().manual_seed(step)
        tokens = torch.randint(0, 6, (32, 5), generator=g)
        labels = (tokens == 0).any(dim=1).long()  # does the sequence contain token 0?
        return F.cross_entropy(model(tokens), labels)

    first = train(make(), loss_fn, steps=80, lr=3e-3, seed=1, progress=False)
    second = train(make(), loss_fn, steps=80, lr=3e-3, seed=1, progress=False)
    assert first == second
    assert sum(first[-10:]) / 10 < 0.5 * sum(first[:10]) / 10
