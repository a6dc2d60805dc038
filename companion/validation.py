"""Input checks shared by the public functions, so that bad input fails loudly.

Each check raises ``ValueError`` with a message that names the argument and
what is wrong with it (its type, dtype, shape or value).
"""

import torch
from torch import Tensor


def check_float_tensor(x: object, name: str) -> None:
    """Raise unless `x` is a floating-point ``torch.Tensor``."""
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not torch.is_floating_point(x):
        raise ValueError(f"{name} must have a floating-point dtype, got {x.dtype}")


def check_dim(x: Tensor, dim: int, name: str) -> None:
    """Raise unless `dim` is a valid axis of `x` (negative axes count from the end)."""
    if x.dim() == 0:
        raise ValueError(f"{name} must have at least one axis, got a 0-d tensor")
    if not -x.dim() <= dim < x.dim():
        raise ValueError(
            f"dim={dim} is out of range for {name} of shape {tuple(x.shape)}"
        )


def check_ndim(x: Tensor, allowed: tuple[int, ...], name: str) -> None:
    """Raise unless `x` has one of the `allowed` numbers of axes."""
    if x.dim() not in allowed:
        wanted = " or ".join(str(n) for n in allowed)
        raise ValueError(f"{name} must have {wanted} axes, got shape {tuple(x.shape)}")
