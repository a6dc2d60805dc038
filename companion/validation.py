"""The named input checks of `companion`, in one place.

A public function opens with one or two of these, then the formula. Each check
raises ``ValueError`` with a message that names the argument and what is wrong
with it (its type, dtype, shape or value). They refuse booleans wherever a number
is expected (``True`` is an ``int`` in Python), and they allocate no tensors of
their own: they compare shapes, dtypes, Python numbers and ``torch.finfo``, so
they work on any device. Checks that must look at the data (NaN, +inf, ids out of
range) reduce it to one boolean.
"""

import math
import numbers

import torch
from torch import Tensor

#: The integer dtypes that ``nn.Embedding``, ``gather`` and ``scatter`` accept.
INDEX_DTYPES = (torch.int32, torch.int64)


# Python numbers ------------------------------------------------------------------


def _is_integer(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_positive_int(value: object, name: str) -> None:
    """Raise unless `value` is an integer >= 1 (not a boolean)."""
    if not (_is_integer(value) and value > 0):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def check_sizes(**sizes: object) -> None:
    """`check_positive_int` for every keyword: ``check_sizes(d_model=64, ...)``."""
    for name, value in sizes.items():
        check_positive_int(value, name)


def check_nonnegative_int(value: object, name: str) -> None:
    """Raise unless `value` is an integer >= 0 (not a boolean)."""
    if not (_is_integer(value) and value >= 0):
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")


def check_divisible(value: int, divisor: int, name: str, divisor_name: str) -> None:
    """Raise unless `value` and `divisor` are sizes and `divisor` divides `value`."""
    check_sizes(**{name: value, divisor_name: divisor})
    if value % divisor:
        raise ValueError(f"{name}={value} is not divisible by {divisor_name}={divisor}")


def check_positive_number(
    value: object, name: str, dtype: torch.dtype | None = None
) -> None:
    """Raise unless `value` is a positive finite real number (not a boolean) and,
    given a floating `dtype`, one that stays positive and finite in it (1e-50
    rounds to 0 in float32, 1e39 to inf; 1e5 is inf in float16)."""
    if not (_is_real(value) and 0 < value < math.inf):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    if dtype is not None:
        check_float_dtype(dtype)
        info = torch.finfo(dtype)
        if not info.tiny * info.eps <= value <= info.max:  # the subnormals count
            raise ValueError(f"{name}={value!r} is not representable in {dtype}")


def check_base(value: object, name: str = "base") -> None:
    """Raise unless `value` is a finite real number greater than 1 (the base of
    the wavelengths of sinusoids and RoPE)."""
    if not (_is_real(value) and 1 < value < math.inf):
        raise ValueError(
            f"{name} must be a finite number greater than 1, got {value!r}"
        )


def check_bucket_sizes(
    bidirectional: object, num_buckets: object, max_distance: object
) -> None:
    """Raise unless T5's bucket settings leave at least one exact bucket and a
    ``max_distance`` beyond the exact range."""
    if not isinstance(bidirectional, bool):
        raise ValueError(f"bidirectional must be True or False, got {bidirectional!r}")
    check_sizes(num_buckets=num_buckets, max_distance=max_distance)
    max_exact = (num_buckets // 2 if bidirectional else num_buckets) // 2
    if max_exact < 1 or max_distance <= max_exact:
        raise ValueError(
            f"need max_distance > exact range, got num_buckets={num_buckets}, "
            f"max_distance={max_distance}"
        )


def check_seed(seed: object, name: str = "seed") -> None:
    """Raise unless `seed` is an integer in ``[0, 2**32)``, which Python, NumPy
    and PyTorch all accept (NumPy refuses negative and larger seeds)."""
    if not (_is_integer(seed) and 0 <= seed < 2**32):
        raise ValueError(f"{name} must be an integer in [0, 2**32), got {seed!r}")


def check_fraction(value: object, name: str) -> None:
    """Raise unless `value` is a real number in [0, 1] (not a boolean)."""
    if not (_is_real(value) and 0 <= value <= 1):
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")


def check_real(value: object, name: str) -> None:
    """Raise unless `value` is a finite real number (not a boolean)."""
    if not (_is_real(value) and math.isfinite(value)):
        raise ValueError(f"{name} must be a finite number, got {value!r}")


def check_choice(value: object, choices: tuple | dict, name: str) -> None:
    """Raise unless `value` is one of `choices`."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")


# Tensors -------------------------------------------------------------------------


def _shape(x: Tensor) -> tuple[int, ...]:
    return tuple(x.shape)


def check_float_tensor(x: object, name: str, ndim: tuple[int, ...] = ()) -> None:
    """Raise unless `x` is a floating-point ``torch.Tensor`` (with one of the
    numbers of axes in `ndim`, when given)."""
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not torch.is_floating_point(x):
        raise ValueError(f"{name} must have a floating-point dtype, got {x.dtype}")
    if ndim and x.dim() not in ndim:
        wanted = " or ".join(str(n) for n in ndim)
        raise ValueError(f"{name} must have {wanted} axes, got shape {_shape(x)}")


def check_float_dtype(dtype: object, name: str = "dtype") -> None:
    """Raise unless `dtype` is a floating-point ``torch.dtype`` (a builder of
    sines or slopes in an integer dtype would round them to 0 and 1)."""
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise ValueError(f"{name} must be a floating-point torch.dtype, got {dtype!r}")


def check_index_tensor(x: object, name: str, ndim: tuple[int, ...] = ()) -> None:
    """Raise unless `x` is an int32 or int64 tensor (the dtypes that embeddings and
    indexing accept), with one of the numbers of axes in `ndim`, when given."""
    if not isinstance(x, Tensor) or x.dtype not in INDEX_DTYPES:
        got = x.dtype if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{name} must be an int64 or int32 tensor, got {got}")
    if ndim and x.dim() not in ndim:
        wanted = " or ".join(str(n) for n in ndim)
        raise ValueError(f"{name} must have {wanted} axes, got shape {_shape(x)}")


def check_ids(x: Tensor, upper: int, name: str) -> None:
    """Raise unless every entry of the index tensor `x` lies in ``[0, upper)``."""
    if x.numel() and not bool(((x >= 0) & (x < upper)).all()):
        raise ValueError(
            f"{name} must lie in [0, {upper}), got values from "
            f"{int(x.min())} to {int(x.max())}"
        )


def check_token_ids(
    tokens: object, vocab_size: int, name: str = "tokens", max_len: int | None = None
) -> None:
    """Raise unless `tokens` is an integer tensor of shape (batch, seq), both at
    least 1 (and ``seq <= max_len``, when given), holding ids in
    ``[0, vocab_size)``."""
    check_index_tensor(tokens, name, ndim=(2,))
    if 0 in tokens.shape:
        raise ValueError(
            f"{name} must have shape (batch, seq) with batch, seq >= 1, "
            f"got {_shape(tokens)}"
        )
    if max_len is not None and tokens.shape[1] > max_len:
        raise ValueError(
            f"{name} has {tokens.shape[1]} positions, but the learned position "
            f"table has {max_len} rows (max_len): there is no embedding for "
            f"position {max_len} onwards"
        )
    check_ids(tokens, vocab_size, name)


def check_positions_of(positions: object, tokens: Tensor) -> None:
    """Raise unless ``positions``, the position ids of ``tokens`` (batch, seq), is
    an integer tensor of shape (seq,) or (batch, seq)."""
    check_index_tensor(positions, "positions", ndim=(1, 2))
    if positions.shape not in (tokens.shape[1:], tokens.shape):
        raise ValueError(
            f"positions must have shape {_shape(tokens)[1:]} or {_shape(tokens)}, "
            f"the shape of tokens, got {_shape(positions)}"
        )


def check_lengths(
    lengths: object, max_len: int, lowest: int = 1, batch: int | None = None
) -> None:
    """Raise unless ``lengths`` is a 1-D integer tensor (of ``batch`` entries, when
    given) with entries in ``[lowest, max_len]``, ``max_len`` a positive integer."""
    check_index_tensor(lengths, "lengths", ndim=(1,))
    check_positive_int(max_len, "max_len")
    check_nonnegative_int(lowest, "lowest")
    if batch is not None:
        check_positive_int(batch, "batch")
    if batch is not None and lengths.shape[0] != batch:
        raise ValueError(f"lengths must have shape ({batch},), got {_shape(lengths)}")
    if bool(((lengths < lowest) | (lengths > max_len)).any()):
        raise ValueError(
            f"lengths must lie in [{lowest}, {max_len}], got {lengths.tolist()}"
        )


def check_source(source: object, lengths: object, vocab_size: int) -> None:
    """Raise unless ``source`` holds token ids (batch, seq) and ``lengths`` (batch,)
    the number of real tokens of each row, in ``[1, seq]``."""
    check_token_ids(source, vocab_size, "source")
    check_lengths(lengths, source.shape[1], batch=source.shape[0])


def check_target(target: object, vocab_size: int, batch: int) -> None:
    """Raise unless ``target`` holds token ids (batch, steps) for ``batch`` sources."""
    check_token_ids(target, vocab_size, "target_in")
    check_positive_int(batch, "batch")
    if target.shape[0] != batch:
        raise ValueError(
            f"source and target_in must have the same batch size, got {batch} and "
            f"{target.shape[0]}"
        )


def check_finite(x: Tensor, name: str) -> None:
    """Raise if `x` holds NaN or an infinity."""
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or infinite values")


def check_normaliser(total: Tensor, name: str) -> None:
    """Raise unless every entry of `total`, a sum of positive weights that will
    divide, is positive and finite (it underflows to 0 when the weights do)."""
    if not bool(((total > 0) & torch.isfinite(total)).all()):
        raise ValueError(f"{name} underflows to 0 or overflows; scale the inputs down")


def check_scores(x: object, dim: int = -1, name: str = "x") -> None:
    """Raise unless `x` is a float tensor with at least one entry along the valid
    axis `dim` and no NaN or +inf (-inf is allowed: it means "masked")."""
    check_float_tensor(x, name)
    if x.dim() == 0:
        raise ValueError(f"{name} must have at least one axis, got a 0-d tensor")
    if not (_is_integer(dim) and -x.dim() <= dim < x.dim()):
        raise ValueError(f"dim={dim!r} is out of range for {name} of shape {_shape(x)}")
    if x.shape[dim] == 0:
        raise ValueError(f"{name} has no entries along dim={dim} (shape {_shape(x)})")
    if bool(torch.isnan(x).any() | torch.isposinf(x).any()):
        raise ValueError(f"{name} contains NaN or +inf; its softmax is undefined")


def check_same_dtype(**tensors: Tensor) -> None:
    """Raise unless all the named tensors share one dtype."""
    if len({t.dtype for t in tensors.values()}) > 1:
        listed = ", ".join(f"{name} {t.dtype}" for name, t in tensors.items())
        raise ValueError(f"inputs must share one dtype, got {listed}")


def check_leading_axes(**tensors: Tensor) -> None:
    """Raise unless the leading (batch, heads) axes of the named tensors, all but
    their last two, broadcast together."""
    try:
        torch.broadcast_shapes(*(t.shape[:-2] for t in tensors.values()))
    except RuntimeError:
        listed = ", ".join(f"{name} {_shape(t)}" for name, t in tensors.items())
        raise ValueError(
            f"the leading (batch) axes do not broadcast: {listed}"
        ) from None


def check_sequence(x: object, d_model: int, name: str = "x") -> None:
    """Raise unless `x` is a finite float tensor of shape (batch, seq, d_model) with
    batch, seq >= 1: the input of an attention layer or a Transformer block."""
    check_float_tensor(x, name)
    if x.dim() != 3 or x.shape[-1] != d_model or 0 in x.shape:
        raise ValueError(
            f"{name} must have shape (batch, seq, {d_model}) with batch, seq >= 1, "
            f"got {_shape(x)}"
        )
    check_finite(x, name)


def check_mean_pooling_inputs(hidden: object, lengths: object) -> None:
    """Raise unless ``hidden`` is a finite float tensor (batch, seq, d_model), all
    three at least 1, and ``lengths`` (batch,) integers in ``[1, seq]``."""
    check_float_tensor(hidden, "hidden", ndim=(3,))
    check_sequence(hidden, hidden.shape[-1], "hidden")
    check_lengths(lengths, hidden.shape[1], batch=hidden.shape[0])


def check_module_input(x: object, like: Tensor, name: str = "x") -> None:
    """Raise unless the float tensor `x` has the dtype of the module parameter
    `like` (``nn.Linear`` refuses a float64 input to float32 weights)."""
    if isinstance(x, Tensor) and x.dtype != like.dtype:
        raise ValueError(
            f"{name} has dtype {x.dtype} but the module's weights are {like.dtype}; "
            f"convert one of them (e.g. model.to({x.dtype}))"
        )


def _broadcasts(x: Tensor, shape: tuple[int, ...]) -> bool:
    try:
        return torch.broadcast_shapes(x.shape, shape) == torch.Size(shape)
    except RuntimeError:
        return False


def check_mask(mask: object, shape: tuple[int, ...], name: str = "mask") -> None:
    """Raise unless `mask` is a boolean tensor (True = may attend) that broadcasts
    to the scores' `shape`."""
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
        raise ValueError(
            f"{name} must be a boolean tensor (True = may attend); "
            "pass an additive float mask as `bias` instead"
        )
    if not _broadcasts(mask, shape):
        raise ValueError(
            f"{name} of shape {_shape(mask)} does not broadcast to the attention "
            f"scores of shape {tuple(shape)}"
        )


def check_bias(bias: object, shape: tuple[int, ...], dtype: torch.dtype) -> None:
    """Raise unless `bias` is a tensor of `dtype`, without NaN or +inf, that
    broadcasts to the scores' `shape`."""
    check_float_tensor(bias, "bias")
    if bias.dtype != dtype:
        raise ValueError(f"bias must have the inputs' dtype {dtype}, got {bias.dtype}")
    if not _broadcasts(bias, shape):
        raise ValueError(
            f"bias of shape {_shape(bias)} does not broadcast to the attention "
            f"scores of shape {tuple(shape)}"
        )
    if bool(torch.isnan(bias).any() | torch.isposinf(bias).any()):
        raise ValueError("bias contains NaN or +inf")


def check_qkv(q: object, k: object, v: object) -> None:
    """Raise unless ``q``, ``k``, ``v`` fit attention: finite float tensors of one
    dtype, shaped (..., m, d_k), (..., n, d_k), (..., n, d_v) with ``d_k >= 1``,
    their leading axes broadcasting."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        check_float_tensor(t, name)
        if t.dim() < 2:
            raise ValueError(
                f"{name} must have at least 2 axes (..., seq, dim), got {_shape(t)}"
            )
    check_same_dtype(q=q, k=k, v=v)
    if q.shape[-1] != k.shape[-1] or q.shape[-1] == 0:
        raise ValueError(
            f"q and k must have the same last dimension d_k >= 1, got q {_shape(q)} "
            f"and k {_shape(k)}"
        )
    if k.shape[-2] != v.shape[-2] or k.shape[-2] == 0:
        raise ValueError(
            f"k and v must have the same number of positions (axis -2), at least "
            f"one, got k {_shape(k)} and v {_shape(v)}"
        )
    try:
        torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    except RuntimeError:
        raise ValueError(
            f"the leading (batch, heads) axes of q {_shape(q)}, k {_shape(k)} and "
            f"v {_shape(v)} do not broadcast"
        ) from None
    for name, t in (("q", q), ("k", k), ("v", v)):
        check_finite(t, name)


# Composite checks, one per function or family -------------------------------


def check_kernel_inputs(queries: object, keys: object, width: object) -> None:
    """Raise unless ``queries`` and ``keys`` are finite 1-D float tensors of one
    dtype and ``width`` is a positive finite number or 0-d tensor."""
    for name, t in (("queries", queries), ("keys", keys)):
        check_float_tensor(t, name, ndim=(1,))
        check_finite(t, name)
    check_same_dtype(queries=queries, keys=keys)
    if isinstance(width, Tensor):
        check_float_tensor(width, "width", ndim=(0,))
        width = width.item()
    check_positive_number(width, "width")


def check_pooling_inputs(scores: object, values: object) -> None:
    """Raise unless ``scores`` (m, n) and finite ``values`` (n,) or (n, d) are
    float tensors of one dtype."""
    check_float_tensor(scores, "scores", ndim=(2,))
    check_float_tensor(values, "values", ndim=(1, 2))
    check_same_dtype(scores=scores, values=values)
    if values.shape[0] != scores.shape[1]:
        raise ValueError(
            f"values has {values.shape[0]} rows but scores has {scores.shape[1]} keys "
            f"(scores {tuple(scores.shape)}, values {tuple(values.shape)})"
        )
    check_finite(values, "values")


def check_attention(
    q: Tensor, k: Tensor, v: Tensor, mask: object, bias: object, scale: object
) -> float:
    """Raise unless the arguments of scaled dot-product attention fit together.
    Returns the scale to use: ``scale``, or ``1 / sqrt(d_k)`` when it is None."""
    check_qkv(q, k, v)
    lead = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    scores_shape = (*lead, q.shape[-2], k.shape[-2])
    if mask is not None:
        check_mask(mask, scores_shape)
    if bias is not None:
        check_bias(bias, scores_shape, q.dtype)
    if scale is None:
        return 1.0 / math.sqrt(q.shape[-1])
    check_positive_number(scale, "scale")
    return float(scale)


def check_backward_inputs(q: Tensor, k: Tensor, v: Tensor, grad_out: object) -> None:
    """Raise unless ``q``, ``k``, ``v`` fit attention with identical leading axes
    and ``grad_out`` is a finite tensor of the output's shape and dtype."""
    check_qkv(q, k, v)
    if not (q.shape[:-2] == k.shape[:-2] == v.shape[:-2]):
        raise ValueError(
            f"q, k and v must have identical leading axes, got q {tuple(q.shape)}, "
            f"k {tuple(k.shape)}, v {tuple(v.shape)}"
        )
    check_float_tensor(grad_out, "grad_out")
    check_same_dtype(q=q, grad_out=grad_out)
    expected = (*q.shape[:-1], v.shape[-1])
    if tuple(grad_out.shape) != expected:
        raise ValueError(
            f"grad_out must have the output's shape {expected}, "
            f"got {tuple(grad_out.shape)}"
        )
    check_finite(grad_out, "grad_out")


def check_probabilities(p: object) -> None:
    """Raise unless `p` holds probability vectors along its last axis: non-negative
    and summing to one within the rounding of its dtype (``n eps`` for ``n``
    entries, at least 1e-4), as softmax's output does, in bfloat16 too."""
    check_scores(p, -1, "p")
    n, eps = p.shape[-1], torch.finfo(p.dtype).eps
    total = p.sum(dim=-1, dtype=torch.float64 if p.dtype == torch.float64 else None)
    if bool((p < 0).any()) or bool(((total - 1).abs() > max(1e-4, n * eps)).any()):
        raise ValueError(
            "p must hold probability vectors along its last axis (non-negative, "
            "summing to one), e.g. the output of softmax"
        )


def check_classification(
    logits: object, target: object, label_smoothing: object = 0.0
) -> None:
    """Raise unless ``logits`` (N, K) with N, K >= 1 and integer ``target`` (N,)
    in ``[0, K)`` fit a classification loss with ``label_smoothing`` in [0, 1],
    and no class the (smoothed) target gives weight has the logit ``-inf`` (its
    loss would be infinite)."""
    check_scores(logits, -1, "logits")
    check_fraction(label_smoothing, "label_smoothing")
    if logits.dim() != 2 or logits.shape[0] == 0:
        raise ValueError(
            f"logits must have shape (N, K) with N >= 1, got {tuple(logits.shape)}"
        )
    check_index_tensor(target, "target", ndim=(1,))
    if target.shape[0] != logits.shape[0]:
        raise ValueError(
            f"target must have shape ({logits.shape[0]},) to match logits "
            f"{tuple(logits.shape)}, got {tuple(target.shape)}"
        )
    n, k = logits.shape
    if bool(((target < 0) | (target >= k)).any()):
        raise ValueError(
            f"target values must lie in [0, {k}) for logits of shape {(n, k)}, "
            f"got {target.tolist()}"
        )
    masked = torch.isneginf(logits)
    at_target = masked.gather(1, target[:, None].long())
    if bool(masked.any() if label_smoothing else at_target.any()):
        raise ValueError(
            "logits is -inf at a class the target gives weight (the target class, "
            "or any class with label_smoothing > 0): the cross-entropy is infinite"
        )


def check_encoding_sizes(d_model: object, multiple: int, base: object, **sizes) -> None:
    """Raise unless the sizes are positive integers, ``d_model`` a multiple of
    ``multiple`` (sin/cos pairs) and ``base`` a finite number above 1."""
    check_sizes(d_model=d_model, **sizes)
    if d_model % multiple:
        raise ValueError(
            f"d_model must be a multiple of {multiple} (sin/cos pairs), got {d_model}"
        )
    check_base(base)


def check_rope_inputs(x: object, positions: object, base: object) -> tuple[int, int]:
    """Raise unless ``x`` is a float tensor (..., seq, d) with even ``d`` and
    ``positions`` None or a finite, non-boolean tensor of shape (seq,) on ``x``'s
    device; return ``(seq, d)``."""
    check_float_tensor(x, "x")
    if x.dim() < 2 or x.shape[-1] % 2:
        raise ValueError(
            f"x must have shape (..., seq, d) with d even (pairs), got {tuple(x.shape)}"
        )
    check_base(base)
    check_finite(x, "x")
    seq, d = x.shape[-2], x.shape[-1]
    if positions is not None:
        if not isinstance(positions, Tensor) or positions.shape != (seq,):
            got = tuple(positions.shape) if isinstance(positions, Tensor) else positions
            raise ValueError(f"positions must be a tensor of shape ({seq},), got {got}")
        if positions.dtype == torch.bool or positions.device != x.device:
            raise ValueError(
                f"positions must be numbers on x's device {x.device}, got "
                f"{positions.dtype} on {positions.device}"
            )
        check_finite(positions, "positions")
    return seq, d


def check_rope_queries_and_keys(
    q: object, k: object, scale: object, base: object
) -> tuple[int, int]:
    """Raise unless ``q`` (..., q_len, d) and ``k`` (..., k_len, d) are finite float
    tensors with ``d`` even and ``q_len <= k_len`` (the queries are the last
    positions), ``scale`` a positive number and ``base`` above 1; return
    ``(q_len, k_len)``."""
    for name, t in (("q", q), ("k", k)):
        check_float_tensor(t, name)
        if t.dim() < 2 or t.shape[-1] % 2:
            raise ValueError(
                f"{name} must have shape (..., seq, d) with d even (pairs), "
                f"got {tuple(t.shape)}"
            )
        check_finite(t, name)
    check_positive_number(scale, "scale")
    check_base(base)
    q_len, k_len = q.shape[-2], k.shape[-2]
    if q_len > k_len:
        raise ValueError(
            f"the {q_len} queries must be the last of the {k_len} key positions "
            f"(q {tuple(q.shape)}, k {tuple(k.shape)})"
        )
    return q_len, k_len


def check_relative_inputs(q: object, k: object, relative: object) -> None:
    """Raise unless ``q`` (..., q_len, d), ``k`` (..., k_len, d) and ``relative``
    (q_len, k_len, d) are finite float tensors of one dtype with ``d >= 1``."""
    for name, t in (("q", q), ("k", k), ("relative", relative)):
        check_float_tensor(t, name)
        check_finite(t, name)
    check_same_dtype(q=q, k=k, relative=relative)
    expected = (*q.shape[-2:-1], *k.shape[-2:-1], *q.shape[-1:])
    if (
        q.dim() < 2
        or k.dim() < 2
        or k.shape[-1] != q.shape[-1]
        or tuple(relative.shape) != expected
        or q.shape[-1] == 0
    ):
        raise ValueError(
            "need q (..., q_len, d), k (..., k_len, d), relative (q_len, k_len, d) "
            f"with d >= 1; got q {tuple(q.shape)}, k {tuple(k.shape)}, "
            f"relative {tuple(relative.shape)}"
        )
    check_leading_axes(q=q, k=k)


def check_self_attention(q: object, k: object, v: object) -> None:
    """Raise unless ``q``, ``k``, ``v`` fit attention and share their length."""
    check_qkv(q, k, v)
    if k.shape[-2] != q.shape[-2]:
        raise ValueError(
            f"q and k must have the same length, got {q.shape[-2]} and {k.shape[-2]}"
        )


# The Part 6 tasks (companion.tasks) and companion.data ---------------------------


def check_string(value: object, name: str) -> None:
    """Raise unless `value` is a ``str``."""
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {type(value).__name__}")


def check_path(path: object, name: str = "path") -> None:
    """Raise unless `path` is a ``str`` or a path object (``open(3)`` would read
    file descriptor 3, ``open(True)`` standard output)."""
    if not (isinstance(path, str) or hasattr(path, "__fspath__")):
        raise ValueError(
            f"{name} must be a str or a pathlib.Path, got {type(path).__name__}"
        )


def _as_list(items: object, name: str, what: str) -> list:
    """``items`` as a non-empty list: any iterable but a single string."""
    if isinstance(items, str | bytes):
        raise ValueError(f"{name} must be a non-empty list of {what}, got one string")
    if not hasattr(items, "__iter__"):
        raise ValueError(
            f"{name} must be a non-empty list of {what}, got {type(items).__name__}"
        )
    items = list(items)
    if not items:
        raise ValueError(f"{name} must be a non-empty list of {what}, got none")
    return items


def check_texts(
    texts: object,
    name: str = "texts",
    alphabet: str | None = None,
    same_length: bool = False,
    count: int | None = None,
) -> list[str]:
    """Return `texts` as a list, after checking it: an iterable (list, tuple,
    generator) of at least one string, but not a single string (which would be
    read character by character); ``count`` strings when given. With
    ``alphabet``, every text is non-empty and made of its characters; with
    ``same_length``, all texts have one length."""
    texts = _as_list(texts, name, "strings")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(f"{name}[{i}] must be a string, got {type(text).__name__}")
        if alphabet is not None and not text:
            raise ValueError(f"{name}[{i}] is an empty string")
    if count is not None and len(texts) != count:
        raise ValueError(f"{name} must hold {count} strings, got {len(texts)}")
    if alphabet is not None:
        unknown = sorted({c for text in texts for c in text} - set(alphabet))
        if unknown:
            raise ValueError(f"{name} hold characters outside {alphabet!r}: {unknown}")
    if same_length and len({len(text) for text in texts}) > 1:
        raise ValueError(
            f"{name} must all have the same length, got lengths "
            f"{sorted({len(text) for text in texts})}"
        )
    return texts


def check_text_pairs(pairs: object, name: str = "pairs") -> tuple[list, list]:
    """Return the first and the second strings of `pairs`, an iterable of at least
    one ``(str, str)`` pair (not a string)."""
    pairs = _as_list(pairs, name, "(str, str) pairs")
    for i, pair in enumerate(pairs):
        if not (
            isinstance(pair, tuple | list)
            and len(pair) == 2
            and all(isinstance(s, str) for s in pair)
        ):
            raise ValueError(f"{name}[{i}] must be a pair of strings, got {pair!r}")
    return [first for first, _ in pairs], [second for _, second in pairs]


def check_fractions(**fractions: object) -> None:
    """`check_fraction` for every keyword: ``check_fractions(share=0.4, ...)``."""
    for name, value in fractions.items():
        check_fraction(value, name)


def check_open_fraction(value: object, name: str) -> None:
    """Raise unless `value` is a real number strictly between 0 and 1."""
    if not (_is_real(value) and 0 < value < 1):
        raise ValueError(f"{name} must be a number in (0, 1), got {value!r}")


def check_choices(choices: tuple | dict, **values: object) -> None:
    """`check_choice` for every keyword: ``check_choices(NAMES, position=...)``."""
    for name, value in values.items():
        check_choice(value, choices, name)


def check_subset(values: object, choices: tuple, name: str) -> None:
    """Raise unless `values` is a non-empty tuple or list of names in `choices`."""
    if not (
        isinstance(values, tuple | list)
        and values
        and all(isinstance(v, str) and v in choices for v in values)
    ):
        raise ValueError(
            f"{name} must be a non-empty tuple of names from {tuple(choices)}, "
            f"got {values!r}"
        )


def check_type(value: object, types: type | tuple[type, ...], name: str) -> None:
    """Raise unless `value` is an instance of one of `types`."""
    if not isinstance(value, types):
        types = types if isinstance(types, tuple) else (types,)
        wanted = " or ".join(f"a {t.__name__}" for t in types)
        raise ValueError(f"{name} must be {wanted}, got {type(value).__name__}")


def check_index(value: object, upper: int, name: str) -> None:
    """Raise unless `value` is an integer (not a boolean) in ``[0, upper)``."""
    if not (_is_integer(value) and 0 <= value < upper):
        raise ValueError(f"{name} must be an integer in [0, {upper}), got {value!r}")


def check_date(date: object, first: object, last: object, name: str = "date") -> None:
    """Raise unless `date` is a ``datetime.date`` (not a ``datetime``, which does
    not compare with dates) between `first` and `last`, both included."""
    if type(date) is not type(first):
        raise ValueError(f"{name} must be a datetime.date, got {type(date).__name__}")
    if not first <= date <= last:
        raise ValueError(f"{name} must lie in [{first}, {last}], got {date}")


def check_size_tuple(values: object, name: str) -> None:
    """Raise unless `values` is a tuple (possibly empty) of positive integers."""
    if not (
        isinstance(values, tuple) and all(_is_integer(v) and v > 0 for v in values)
    ):
        raise ValueError(f"{name} must be a tuple of positive integers, got {values!r}")


def check_id_vector(x: object, upper: int, name: str, length: int) -> None:
    """Raise unless `x` is an int32/int64 tensor of shape (length,) holding ids in
    ``[0, upper)``."""
    check_index_tensor(x, name, ndim=(1,))
    if x.shape[0] != length:
        raise ValueError(f"{name} must have shape ({length},), got {_shape(x)}")
    check_ids(x, upper, name)


def check_sessions(
    sessions: object, num_items: object, name: str = "sessions", min_length: int = 1
) -> None:
    """Raise unless ``num_items`` is a positive integer and ``sessions`` an
    int32/int64 tensor (users, seq) with users >= 1 and seq >= ``min_length``,
    holding item ids in ``[0, num_items)``."""
    check_positive_int(num_items, "num_items")
    check_index_tensor(sessions, name, ndim=(2,))
    if sessions.shape[0] < 1 or sessions.shape[1] < min_length:
        raise ValueError(
            f"{name} must have shape (users, seq) with users >= 1 and seq >= "
            f"{min_length}, got {_shape(sessions)}"
        )
    check_ids(sessions, num_items, name)


def check_session_process(process: object) -> None:
    """Raise unless the fields of a ``SessionProcess`` fit together: positive
    integer sizes, rates in [0, 1), a zipf_exponent in [0, inf), and
    ``num_items - num_trending`` a positive multiple of ``num_genres *
    series_length``."""
    check_sizes(
        num_items=process.num_items,
        num_genres=process.num_genres,
        series_length=process.series_length,
        num_trending=process.num_trending,
    )
    for name, upper in (
        ("trending_rate", 1),
        ("abandon_rate", 1),
        ("explore_rate", 1),
        ("zipf_exponent", math.inf),
    ):
        value = getattr(process, name)
        if not (_is_real(value) and 0 <= value < upper):
            raise ValueError(f"{name} must be a number in [0, {upper}), got {value!r}")
    episodes = process.num_items - process.num_trending
    block = process.num_genres * process.series_length
    if episodes < block or episodes % block:
        raise ValueError(
            f"num_items - num_trending = {episodes} must be a positive multiple of "
            f"num_genres * series_length = {block}"
        )


def check_ranking(scores: object, target: object, k: object) -> None:
    """Raise unless ``scores`` (users, items) is a float tensor without NaN, with
    users, items >= 1, ``target`` (users,) holds item ids and ``k`` is an integer
    in ``[1, items]``."""
    check_float_tensor(scores, "scores", ndim=(2,))
    if 0 in scores.shape:
        raise ValueError(
            f"scores must have shape (users, items) with users, items >= 1, got "
            f"{_shape(scores)}"
        )
    if bool(torch.isnan(scores).any()):
        raise ValueError("scores must not contain NaN")
    check_id_vector(target, scores.shape[1], "target", scores.shape[0])
    check_positive_int(k, "k")
    if k > scores.shape[1]:
        raise ValueError(
            f"k must be at most the number of items {scores.shape[1]}, got {k}"
        )


def check_patch_size(patch_size: object, height: int, width: int) -> None:
    """Raise unless `patch_size` is a positive integer dividing `height` and
    `width`, the sides of the images."""
    check_positive_int(patch_size, "patch_size")
    if height % patch_size or width % patch_size:
        raise ValueError(
            f"the image size {height}x{width} is not divisible by "
            f"patch_size={patch_size}"
        )


def check_vit_options(
    image_size: int, patch_size: object, position: object, positions: tuple
) -> None:
    """Raise unless `patch_size` divides the (checked) `image_size` and
    `position` is one of `positions`."""
    check_patch_size(patch_size, image_size, image_size)
    check_choice(position, positions, "position")


def check_class_token_weights(weights: object, grid: object) -> None:
    """Raise unless ``grid`` is a positive integer and ``weights`` a float tensor
    (batch, heads, 1 + grid**2, 1 + grid**2): a layer's attention weights over a
    class token and a grid of patches."""
    check_positive_int(grid, "grid")
    check_float_tensor(weights, "weights")
    seq = 1 + grid**2
    if (
        weights.dim() != 4
        or tuple(weights.shape[-2:]) != (seq, seq)
        or weights.shape[1] == 0
    ):
        raise ValueError(
            f"weights must have shape (batch, heads, {seq}, {seq}) with heads >= 1 "
            f"for grid={grid}, got {_shape(weights)}"
        )


def check_labelled_images(images: object, labels: object) -> None:
    """Raise unless ``images`` is a finite float tensor (batch, H, W) and
    ``labels`` an int32/int64 tensor (batch,)."""
    check_float_tensor(images, "images", ndim=(3,))
    check_finite(images, "images")
    check_index_tensor(labels, "labels", ndim=(1,))
    if labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"labels must have shape ({images.shape[0]},) to match images "
            f"{_shape(images)}, got {_shape(labels)}"
        )


def check_regression_options(
    n: object, noise: object, low: object, high: object, seed: object
) -> None:
    """Raise unless ``n`` is a positive integer, ``seed`` an integer in [0, 2**64)
    (what ``torch.Generator.manual_seed`` takes) and ``noise >= 0``, ``low <
    high`` finite numbers small enough for float32 data (magnitudes up to
    ``finfo(float32).max / 16``, so that ``2x``, ``high - low`` and the noise stay
    finite)."""
    check_positive_int(n, "n")
    check_index(seed, 2**64, "seed")
    limit = float(torch.finfo(torch.float32).max) / 16
    if not (_is_real(noise) and 0 <= noise <= limit):
        raise ValueError(
            f"noise must be a finite number >= 0 (at most {limit:.2g}), got {noise!r}"
        )
    for name, value in (("low", low), ("high", high)):
        if not (_is_real(value) and -limit <= value <= limit):
            raise ValueError(
                f"{name} must be a finite number of magnitude at most {limit:.2g}, "
                f"got {value!r}"
            )
    if not low < high:
        raise ValueError(f"need low < high, got low={low!r}, high={high!r}")


def check_seeded_sizes(seed: object, **sizes: object) -> None:
    """Raise unless ``seed`` is a non-negative integer and every keyword a
    positive integer (the arguments of a generator of data)."""
    check_nonnegative_int(seed, "seed")
    check_sizes(**sizes)


def check_image_patches(images: object, patch_size: object) -> None:
    """Raise unless ``images`` is a finite float tensor (batch, H, W) or (batch,
    C, H, W) with C, H, W >= 1 and ``patch_size`` a positive integer dividing H
    and W."""
    check_float_tensor(images, "images", ndim=(3, 4))
    if 0 in images.shape[1:]:
        raise ValueError(
            f"images must have non-empty (C,) H and W axes, got {_shape(images)}"
        )
    check_finite(images, "images")
    check_patch_size(patch_size, *images.shape[-2:])


def check_dropout(value: object, name: str = "dropout") -> None:
    """Raise unless `value` is a dropout probability ``p``: a real number in
    [0, 1) (not a boolean). ``p = 1`` would drop every weight and divide by
    ``1 - p = 0``."""
    if not (_is_real(value) and 0 <= value < 1):
        raise ValueError(f"{name} must be a probability in [0, 1), got {value!r}")


def check_rope_options(
    x: Tensor,
    positions: Tensor | None,
    offset: object,
    rotary_dim: object,
    cache: object,
) -> int:
    """Raise unless ``offset`` is a non-negative integer, ``rotary_dim`` None or
    an even number of dimensions in ``[2, d]`` (``d``, the last axis of ``x``),
    and ``cache`` None or a finite float tensor (2, max_len, rotary_dim / 2) on
    ``x``'s device, with values in [-1, 1], in which the integer positions
    ``positions + offset`` lie; return the number of rotated dimensions (``d``
    for None)."""
    check_nonnegative_int(offset, "offset")
    d = x.shape[-1]
    if rotary_dim is None:
        rotary_dim = d  # all of an even d
    elif not (_is_integer(rotary_dim) and 2 <= rotary_dim <= d and rotary_dim % 2 == 0):
        raise ValueError(
            f"rotary_dim must be an even number of dimensions in [2, {d}], "
            f"got {rotary_dim!r}"
        )
    if cache is None:
        return rotary_dim
    check_float_tensor(cache, "cache")
    if (
        cache.dim() != 3
        or cache.shape[0] != 2
        or cache.shape[2] != rotary_dim // 2
        or cache.device != x.device
    ):
        raise ValueError(
            f"cache must be (cos, sin) of shape (2, max_len, {rotary_dim // 2}) on "
            f"{x.device}, got {_shape(cache)} on {cache.device}"
        )
    check_finite(cache, "cache")
    if cache.numel() and float(cache.abs().amax()) > 1:
        raise ValueError("cache must hold cosines and sines, in [-1, 1]")
    seq, max_len = x.shape[-2], cache.shape[1]
    if positions is not None and (
        positions.is_floating_point() or positions.is_complex()
    ):
        raise ValueError(
            f"positions must be integers to index the cache, got {positions.dtype}"
        )
    if seq == 0:
        return rotary_dim
    first = offset + (0 if positions is None else int(positions.min()))
    last = offset + (seq - 1 if positions is None else int(positions.max()))
    if first < 0 or last >= max_len:
        raise ValueError(
            f"positions + offset must lie in [0, {max_len}) (the cache's max_len), "
            f"got {first} to {last}"
        )
    return rotary_dim


def check_rope_2d_inputs(
    x: object, height: object, width: object, base: object
) -> None:
    """Raise unless ``x`` is a finite float tensor (..., height * width, d) with
    ``d`` a multiple of 4 (half the pairs for the row, half for the column),
    ``height`` and ``width`` positive integers and ``base`` above 1."""
    check_sizes(height=height, width=width)
    check_base(base)
    check_float_tensor(x, "x")
    if x.dim() < 2 or x.shape[-2] != height * width or x.shape[-1] % 4:
        raise ValueError(
            f"x must have shape (..., height * width = {height * width}, d) with d a "
            f"multiple of 4 (row and column pairs), got {_shape(x)}"
        )
    check_finite(x, "x")


def check_bootstrap(scores: object, draws: object, level: object, seed: object) -> None:
    """Raise unless `scores` is a finite, non-empty (items,) or (seeds, items)
    float tensor, `draws` a positive integer, `level` a fraction and `seed` a
    seed (`companion.statistics.bootstrap_mean`)."""
    check_float_tensor(scores, "scores", ndim=(1, 2))
    if scores.numel() == 0:
        raise ValueError(f"scores must not be empty, got shape {_shape(scores)}")
    check_finite(scores, "scores")
    check_positive_int(draws, "draws")
    check_fraction(level, "level")
    check_seed(seed)


def check_chunked_options(chunk_size: object, causal: object, window: object) -> None:
    """Raise unless ``chunk_size`` is a positive integer, ``causal`` is True or
    False and ``window`` is None or a non-negative integer (the options of
    `companion.attention.chunked_attention`)."""
    check_positive_int(chunk_size, "chunk_size")
    if not isinstance(causal, bool):
        raise ValueError(f"causal must be True or False, got {causal!r}")
    if window is not None:
        check_nonnegative_int(window, "window")


def check_traffic_inputs(q: object, k: object, v: object, sram_size: object) -> None:
    """Raise unless ``q`` (n_q, d), ``k`` (n_k, d) and ``v`` (n_k, d_v) are finite
    float matrices of one head and ``sram_size`` (in elements) holds at least one
    row each of Q, K, V and O, ``4 d``, so that Algorithm 1 of Dao et al. (2022)
    has blocks of at least one row (`companion.measure.tiled_attention_traffic`)."""
    check_qkv(q, k, v)
    if not (q.dim() == k.dim() == v.dim() == 2):
        raise ValueError(
            f"q, k and v must be matrices (seq, dim) of one head, got q {_shape(q)}, "
            f"k {_shape(k)}, v {_shape(v)}"
        )
    if sram_size is not None:
        check_positive_int(sram_size, "sram_size")
        if sram_size < 4 * q.shape[-1]:
            raise ValueError(
                f"sram_size must hold one row each of Q, K, V and O, at least "
                f"4 d = {4 * q.shape[-1]} elements, got {sram_size}"
            )


def check_timing_options(repeats: object, cpu: object) -> None:
    """Raise unless ``repeats`` is a positive integer and ``cpu`` is True or False
    (`companion.measure.best_time`)."""
    check_positive_int(repeats, "repeats")
    if not isinstance(cpu, bool):
        raise ValueError(f"cpu must be True or False, got {cpu!r}")


def check_model_images(
    images: object, weight: Tensor, channels: int, image_size: int
) -> None:
    """Raise unless ``images`` is a finite float tensor of ``weight``'s dtype and
    device, of shape (batch, channels, image_size, image_size), or (batch,
    image_size, image_size) for one channel, with batch >= 1 (the image models of
    `companion.tasks.vision`)."""
    check_float_tensor(images, "images")
    check_module_input(images, weight, "images")
    expected = (channels, image_size, image_size)
    shape = tuple(images.shape)
    if images.dim() == 3 and channels == 1:
        shape = (shape[0], 1, *shape[1:])
    if len(shape) != 4 or shape[1:] != expected or shape[0] == 0:
        raise ValueError(
            f"images must have shape (batch, {image_size}, {image_size}) or "
            f"(batch, {', '.join(map(str, expected))}) with batch >= 1, got "
            f"{tuple(images.shape)}"
        )
    check_finite(images, "images")
