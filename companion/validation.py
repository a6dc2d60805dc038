"""Input checks shared by the public functions, so that bad input fails loudly.

Each check raises ``ValueError`` with a message that names the argument and
what is wrong with it (its type, dtype, shape or value).
"""

import math
import numbers

import torch
from torch import Tensor


def check_positive_int(value: object, name: str) -> None:
    """Raise unless `value` is a positive integer (``True`` is not a number here)."""
    if isinstance(value, bool) or not (
        isinstance(value, numbers.Integral) and value > 0
    ):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def check_positive_number(value: object, name: str) -> None:
    """Raise unless `value` is a positive, finite real number (not a boolean)."""
    if isinstance(value, bool) or not (
        isinstance(value, numbers.Real) and 0 < value < math.inf
    ):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")


def check_token_ids(tokens: object, vocab_size: int, name: str = "tokens") -> None:
    """Raise unless `tokens` is an integer tensor of shape (batch, seq), seq >= 1,
    holding ids in ``[0, vocab_size)``."""
    if (
        not isinstance(tokens, Tensor)
        or tokens.dim() != 2
        or tokens.is_floating_point()
        or tokens.dtype == torch.bool
        or tokens.shape[1] == 0
    ):
        raise ValueError(
            f"{name} must be an integer tensor of shape (batch, seq) with seq >= 1"
        )
    if tokens.min() < 0 or tokens.max() >= vocab_size:
        raise ValueError(
            f"{name} must lie in [0, {vocab_size}), got values from "
            f"{int(tokens.min())} to {int(tokens.max())}"
        )


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


def check_qkv(q: Tensor, k: Tensor, v: Tensor) -> None:
    """Raise unless ``q``, ``k``, ``v`` fit attention: float tensors of one dtype,
    shaped (..., m, d_k), (..., n, d_k), (..., n, d_v), leading axes broadcasting."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        check_float_tensor(t, name)
        if t.dim() < 2:
            raise ValueError(
                f"{name} must have at least 2 axes (..., seq, dim), "
                f"got shape {tuple(t.shape)}"
            )
    check_same_dtype({"q": q, "k": k, "v": v})
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"q and k must have the same last dimension d_k, got q {tuple(q.shape)} "
            f"and k {tuple(k.shape)}"
        )
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"k and v must have the same number of positions (axis -2), got "
            f"k {tuple(k.shape)} and v {tuple(v.shape)}"
        )
    try:
        torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    except RuntimeError:
        raise ValueError(
            f"the leading (batch, heads) axes of q {tuple(q.shape)}, "
            f"k {tuple(k.shape)} and v {tuple(v.shape)} do not broadcast"
        ) from None
