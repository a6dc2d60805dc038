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


def check_same_dtype(tensors: dict[str, Tensor]) -> None:
    """Raise unless all the named tensors share one dtype."""
    dtypes = {name: t.dtype for name, t in tensors.items()}
    if len(set(dtypes.values())) > 1:
        listed = ", ".join(f"{name} {dtype}" for name, dtype in dtypes.items())
        raise ValueError(f"inputs must share one dtype, got {listed}")


def check_mask(mask: object, shape: tuple[int, ...]) -> None:
    """Raise unless `mask` is a boolean tensor that broadcasts to `shape`."""
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
        raise ValueError(
            "mask must be a boolean tensor (True = may attend); "
            "pass an additive float mask as `bias` instead"
        )
    check_broadcasts(mask, shape, "mask")


def check_broadcasts(x: Tensor, shape: tuple[int, ...], name: str) -> None:
    """Raise unless `x` broadcasts to `shape` (the shape of the attention scores)."""
    try:
        broadcast = torch.broadcast_shapes(x.shape, shape)
    except RuntimeError:
        broadcast = None
    if broadcast != torch.Size(shape):
        raise ValueError(
            f"{name} of shape {tuple(x.shape)} does not broadcast to the "
            f"attention scores of shape {tuple(shape)}"
        )
