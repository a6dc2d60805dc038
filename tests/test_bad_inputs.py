"""The standing bad-input sweep: every public function and class of `companion`
through the classes of bad input, as PyTorch's "error inputs" do for operators.

`ENTRIES` is the table: one or more entries per public name (the coverage test
fails when a public function or class has none). An entry gives a valid call
(fresh arguments from a factory), the kind of each argument, and a reference: a
PyTorch operator or an independent float64 computation where one exists, else
the same call in float64 (which catches half-precision overflow), else a property
of the result. From the kinds, `variants` derives the bad inputs: wrong ranks and
dtypes (int, bool, float64 beside float32, float16, bfloat16), empty and length-1
axes, NaN and +-inf, huge values, non-contiguous views, batch 0, ids out of range
or of the wrong integer dtype, booleans and floats as sizes; and, for every entry
with floating inputs, all of them (and the module) in float16, bfloat16, float64.

The contract of every call: it returns a result without NaN or +inf (-inf only
where an entry documents it, e.g. a masked log-probability) that matches the
reference, or it raises ValueError/TypeError from a ``raise`` statement in
`companion` with a message naming the argument. Sizes given as booleans, floats,
0 or -1 must raise. Never an error from inside torch, never NaN, never a wrong
answer.
"""

import copy
import dataclasses
import datetime
import functools
import inspect
import math
import re
import tempfile
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path

import entmax
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import companion
from companion import (
    attention,
    data,
    measure,
    models,
    positional,
    pretrained,
    softmax,
    statistics,
    teaching,
    training,
    validation,
    variants,
)
from companion.tasks import recommendation, text, translation, vision

MODULES = (
    softmax,
    attention,
    positional,
    variants,
    models,
    pretrained,
    teaching,
    training,
    measure,
    statistics,
    validation,
    data,
    text,
    translation,
    vision,
    recommendation,
)
COMPANION_DIR = Path(companion.__file__).resolve().parent
INF = math.inf
HALF = (torch.float16, torch.bfloat16)


def public_names(module) -> set[str]:
    """The public functions and classes defined in `module` (not imported)."""
    return {
        f"{module.__name__.removeprefix('companion.')}.{name}"
        for name, obj in vars(module).items()
        if not name.startswith("_")
        and (inspect.isfunction(obj) or inspect.isclass(obj))
        and obj.__module__ == module.__name__
    }


# Inputs ------------------------------------------------------------------------


def rnd(*shape: int, seed: int = 0, scale: float = 1.0) -> Tensor:
    """Seeded float32 normal noise."""
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(shape, generator=g)


def ids(*shape: int, high: int, low: int = 0, seed: int = 0) -> Tensor:
    """Seeded int64 ids in [low, high)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(low, high, shape, generator=g)


def bmask(*shape: int, seed: int = 0) -> Tensor:
    """A seeded boolean mask (True = may attend) where every row sees key 0."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(shape, generator=g) > 0.4
    mask[..., 0] = True
    return mask


# Kinds of argument, and the bad inputs each kind gets ---------------------------

FLOAT = "float"  # a float tensor that must be finite
SCORES = "scores"  # a float tensor where -inf means "masked"
MASK = "mask"  # a boolean mask, True = may attend
SIZE = "size"  # a positive integer
NONNEG = "nonneg"  # a non-negative integer
NUMBER = "number"  # a positive finite real number
FRACTION = "fraction"  # a number in [0, 1]
REAL = "real"  # any finite real number
BASE = "base"  # a number > 1
DIM = "dim"  # an axis
CHOICE = "choice"  # one of a few strings
TEXT = "text"  # a string
TEXTS = "texts"  # a non-empty list of strings
DTYPE = "dtype"  # a floating dtype to build in
SEED = "seed"  # a seed for Python, NumPy and PyTorch


@dataclasses.dataclass(frozen=True)
class Ids:
    """Integer ids in [low, high)."""

    high: int
    low: int = 0


FLOAT_KINDS = (FLOAT, SCORES)


@dataclasses.dataclass(frozen=True)
class Variant:
    label: str
    arg: str | None  # the argument changed; None: all floating inputs
    change: Callable[[object], object]  # new value from the valid one
    must_raise: bool = False
    dtype: torch.dtype | None = None  # all floating inputs (and module) to dtype


def _set_first(value: float) -> Callable[[Tensor], Tensor]:
    def change(x: Tensor) -> Tensor:
        x = x.clone()
        x.view(-1)[0] = value
        return x

    return change


def _neginf_row(x: Tensor) -> Tensor:
    x = x.clone()
    x.view(-1, x.shape[-1])[0] = -INF
    return x


def _mask_row(x: Tensor) -> Tensor:
    x = x.clone()
    x.view(-1, x.shape[-1])[0] = False
    return x


def _non_contiguous(x: Tensor) -> Tensor:
    """The same values in a strided, non-contiguous view."""
    return torch.stack([x, x], dim=-1)[..., 0]


def _transposed_view(x: Tensor) -> Tensor:
    """The same values, viewed through a transpose (column-major strides)."""
    return x.mT.contiguous().mT


def tensor_shape_variants(x: Tensor) -> list[tuple[str, Callable]]:
    """Rank, empty and length-1 axes, non-contiguous views."""
    out = [("extra axis", lambda t: t[None])]
    if x.dim() >= 1:
        out.append(("one axis fewer", lambda t: t[0]))
    if x.dim() >= 2:
        out.append(("0-d", lambda t: t.reshape(-1)[0]))
    for i in range(x.dim()):
        out.append((f"empty axis {i}", lambda t, i=i: t.narrow(i, 0, 0)))
        if x.shape[i] > 1:
            out.append((f"length-1 axis {i}", lambda t, i=i: t.narrow(i, 0, 1)))
    if x.dim() >= 1:
        out.append(("non-contiguous", _non_contiguous))
    if x.dim() >= 2:
        out.append(("transposed view", _transposed_view))
    return out


def variants_of(kind: object, value: object) -> list[Variant]:
    """The bad inputs for one argument of `kind` whose valid value is `value`."""
    out: list[tuple] = []
    if kind in FLOAT_KINDS:
        out += [
            ("int64", lambda t: t.round().long()),
            ("bool", lambda t: t > 0),
            *[
                (str(d).removeprefix("torch."), lambda t, d=d: t.to(d))
                for d in (torch.float64, torch.float32, *HALF)
                if d != value.dtype
            ],
            *tensor_shape_variants(value),
            ("NaN", _set_first(math.nan)),
            ("+inf", _set_first(INF)),
            ("-inf", _set_first(-INF)),
            ("huge (x 1e4)", lambda t: t * 1e4),
        ]
        if kind == SCORES and value.dim() >= 1:
            out.append(("a row of -inf", _neginf_row))
    elif kind == MASK:
        out += [
            ("float mask", lambda t: t.float()),
            ("uint8 mask", lambda t: t.to(torch.uint8)),
            ("all False", torch.zeros_like),
            ("a row all False", _mask_row),
            ("extra axis", lambda t: t[None]),
            ("empty last axis", lambda t: t[..., :0]),
            ("non-contiguous", _non_contiguous),
        ]
    elif isinstance(kind, Ids):
        out += [
            (f"id {kind.high} (too large)", _set_first(kind.high)),
            (f"id {kind.low - 1} (too small)", _set_first(kind.low - 1)),
            *[
                (str(d).removeprefix("torch."), lambda t, d=d: t.to(d))
                for d in (torch.uint8, torch.int16, torch.int32, torch.float32)
            ],
            ("bool", lambda t: t > 0),
            *tensor_shape_variants(value),
        ]
    elif kind == SIZE:
        out += [(repr(v), lambda _, v=v: v, True) for v in (True, False, 2.0, 0, -1)]
        out.append(("1", lambda _: 1))
    elif kind == NONNEG:
        out += [(repr(v), lambda _, v=v: v, True) for v in (True, 2.0, -1)]
        out.append(("0", lambda _: 0))
    elif kind == NUMBER:
        bad = (True, 0, -1.0, math.nan, INF, "1")
        out += [(repr(v), lambda _, v=v: v, True) for v in bad]
        out += [(repr(v), lambda _, v=v: v) for v in (1e-30, 1e30, 2)]
    elif kind == FRACTION:
        out += [(repr(v), lambda _, v=v: v, True) for v in (True, -0.1, 1.5, math.nan)]
        out += [(repr(v), lambda _, v=v: v) for v in (0.0, 1)]
    elif kind == REAL:
        out += [(repr(v), lambda _, v=v: v, True) for v in (True, math.nan, INF)]
        out += [(repr(v), lambda _, v=v: v) for v in (-1.0, 0)]
    elif kind == BASE:
        out += [
            (repr(v), lambda _, v=v: v, True) for v in (True, 1, 0.5, math.nan, INF)
        ]
        out.append(("2", lambda _: 2))
    elif kind == DIM:
        out += [(repr(v), lambda _, v=v: v, True) for v in (True, 1.0, 7, -8)]
        out.append(("0", lambda _: 0))
    elif kind == CHOICE:
        out += [(repr(v), lambda _, v=v: v, True) for v in ("bogus", None)]
    elif kind == TEXT:
        out += [(repr(v), lambda _, v=v: v, True) for v in (5, None)]
        out.append(("''", lambda _: ""))
    elif kind == TEXTS:
        out += [("[]", lambda _: [], True), ("a str", lambda _: "abc", True)]
        out.append(("[5]", lambda _: [5]))
    elif kind == DTYPE:
        out += [(repr(d), lambda _, d=d: d, True) for d in (torch.int64, torch.bool)]
        out += [(repr(d), lambda _, d=d: d) for d in (torch.float64, *HALF)]
    elif kind == SEED:  # NumPy refuses -1 and 2**64: raising is fine, so is a result
        out += [(repr(v), lambda _, v=v: v, True) for v in (True, 2.0)]
        out += [(repr(v), lambda _, v=v: v) for v in (0, -1, 2**64)]
    else:
        raise AssertionError(f"unknown kind {kind!r}")
    return [Variant(label, None, change, *rest) for label, change, *rest in out]


# The table ----------------------------------------------------------------------


@dataclasses.dataclass
class Entry:
    """One valid call and what to compare it with.

    ``fn`` is a function, or a class: then the arguments named in ``init`` (a
    mapping argument -> constructor parameter) build an instance (seeded) whose
    ``method`` gets the others. ``reference(obj, **args)`` receives float64
    copies of the inputs (and of the instance ``obj``, if a module; None for a
    function) and returns what the call must return (None: anything). ``prop``
    asserts properties of a result given the call's arguments. ``neginf``:
    the result may hold -inf (documented, e.g. for masked entries)."""

    covers: str
    fn: Callable
    args: Callable[[], dict]
    kinds: dict
    reference: Callable | None = None
    prop: Callable | None = None
    init: dict = dataclasses.field(default_factory=dict)
    method: str = "forward"
    neginf: bool = False
    aliases: dict = dataclasses.field(default_factory=dict)
    tag: str = ""

    @property
    def label(self) -> str:
        method = f".{self.method}" if inspect.isclass(self.fn) else ""
        return f"{self.covers}{method}{f'[{self.tag}]' if self.tag else ''}"

    def variants(self) -> list[Variant]:
        valid = self.args()
        out = [Variant("valid", None, lambda v: v)]
        for name, kind in self.kinds.items():
            out += [
                dataclasses.replace(v, label=f"{name}: {v.label}", arg=name)
                for v in variants_of(kind, valid[name])
            ]
        floating = (
            any(kind in FLOAT_KINDS for kind in self.kinds.values()) or self.is_module()
        )
        if floating:
            for d in (torch.float16, torch.bfloat16, torch.float64):
                name = str(d).removeprefix("torch.")
                out.append(Variant(f"all {name}", None, lambda v: v, dtype=d))
            if not self.is_module():
                out.append(
                    Variant("all float16, huge (x 1e4)", None, "huge", dtype=HALF[0])
                )
        return out

    @functools.cached_property
    def arg_names(self) -> tuple[str, ...]:
        return tuple(self.args())

    def is_module(self) -> bool:
        return inspect.isclass(self.fn) and issubclass(self.fn, nn.Module)


def call(entry: Entry, kw: dict, dtype: torch.dtype | None) -> tuple[object, object]:
    """Run the entry on the arguments ``kw``: ``(result, instance or None)``."""
    kw = dict(kw)
    if not inspect.isclass(entry.fn):
        return entry.fn(**kw), None
    init = {param: kw.pop(name) for name, param in entry.init.items()}
    torch.default_generator.manual_seed(0)  # CPU only: fast
    obj = entry.fn(**init)
    if dtype is not None and isinstance(obj, nn.Module):
        obj = obj.to(dtype)
    return getattr(obj, entry.method)(**kw), obj


def to_float64(value: object, floating: bool = False) -> object:
    """Float64 copies of float tensors (of any tensor if `floating`) and modules."""
    if isinstance(value, Tensor) and (value.is_floating_point() or floating):
        return value.detach().to(torch.float64).contiguous()
    if isinstance(value, nn.Module):
        return copy.deepcopy(value).double()
    return value


# Checking a result --------------------------------------------------------------

TOLERANCE = {  # (rtol, atol relative to the size of the expected values)
    torch.float64: (1e-6, 1e-9),
    torch.float32: (2e-4, 2e-5),
    torch.float16: (2e-2, 4e-3),
    torch.bfloat16: (8e-2, 3e-2),
}
PRECISION = (torch.float64, torch.float32, torch.float16, torch.bfloat16)


def loosest(*values: object) -> torch.dtype:
    dtypes = {torch.float64}
    stack = list(values)
    while stack:
        v = stack.pop()
        if isinstance(v, Tensor) and v.is_floating_point():
            dtypes.add(v.dtype)
        elif isinstance(v, nn.Module):
            dtypes |= {p.dtype for p in v.parameters() if p.is_floating_point()}
        elif isinstance(v, list | tuple):
            stack.extend(v)
        elif isinstance(v, dict):
            stack.extend(v.values())
    return max(dtypes, key=PRECISION.index)


def non_finite(result: object, neginf: bool) -> str | None:
    """Why `result` is not acceptable as a value (NaN, +inf, unexpected -inf)."""
    if isinstance(result, Tensor):
        if result.is_floating_point() or result.is_complex():
            if bool(torch.isnan(result).any()):
                return "NaN in the result"
            if bool(torch.isposinf(result).any()):
                return "+inf in the result"
            if not neginf and bool(torch.isneginf(result).any()):
                return "-inf in the result"
        return None
    if isinstance(result, float):
        if math.isnan(result) or result == INF or (result == -INF and not neginf):
            return f"non-finite float {result}"
        return None
    if isinstance(result, nn.Module):
        return non_finite(list(result.parameters()), neginf)
    if isinstance(result, list | tuple):
        for item in result:
            why = non_finite(item, neginf)
            if why:
                return why
    return None


def mismatch(result: object, expected: object, dtype: torch.dtype) -> str | None:
    """How `result` differs from `expected` (None: it does not; expected None:
    anything goes)."""
    if expected is None:
        return None
    if isinstance(expected, Tensor):
        if not isinstance(result, Tensor):
            return f"expected a tensor, got {type(result).__name__}"
        if tuple(result.shape) != tuple(expected.shape):
            return f"shape {tuple(result.shape)}, expected {tuple(expected.shape)}"
        if not expected.is_floating_point():
            if result.is_floating_point() or not torch.equal(result.long(), expected):
                return "integer result differs from the reference"
            return None
        if not result.is_floating_point():
            return f"dtype {result.dtype}, expected a floating dtype"
        got, want = result.detach().double(), expected.detach().double()
        rtol, atol = TOLERANCE[dtype]
        finite = want[torch.isfinite(want)]
        scale = max(1.0, float(finite.abs().max())) if finite.numel() else 1.0
        if not torch.allclose(got, want, rtol=rtol, atol=atol * scale):
            diff = (got - want).abs().nan_to_num(INF).max()
            return f"differs from the reference by {float(diff):.3g} ({dtype} inputs)"
        return None
    if isinstance(expected, float):
        if not isinstance(result, int | float) or not math.isclose(
            result, expected, rel_tol=TOLERANCE[dtype][0], abs_tol=TOLERANCE[dtype][1]
        ):
            return f"{result!r}, expected {expected!r}"
        return None
    if isinstance(expected, list | tuple):
        if not isinstance(result, list | tuple) or len(result) != len(expected):
            return f"expected {len(expected)} items, got {result!r:.80}"
        for i, (r, e) in enumerate(zip(result, expected, strict=True)):
            why = mismatch(r, e, dtype)
            if why:
                return f"item {i}: {why}"
        return None
    return None if result == expected else f"{result!r:.80}, expected {expected!r:.80}"


def names_argument(message: str, names: tuple[str, ...]) -> bool:
    return any(re.search(rf"(?<!\w){re.escape(n)}(?!\w)", message) for n in names)


def check_error(entry: Entry, variant: Variant, error: BaseException) -> str | None:
    """None if `error` is a ValueError/TypeError raised by companion's own code
    whose message names the argument; else what is wrong with it."""
    frames = traceback.extract_tb(error.__traceback__)
    last = frames[-1]
    kind = type(error).__name__
    where = f"{Path(last.filename).name}:{last.lineno}"
    if not isinstance(error, ValueError | TypeError):
        return f"{kind} at {where}: {error}"
    if not (
        Path(last.filename).resolve().is_relative_to(COMPANION_DIR)
        and (last.line or "").lstrip().startswith("raise")
    ):
        return f"{kind} from inside at {where}: {error}"
    # A mismatch between arguments may be reported under either name: the message
    # must name one of the call's arguments (or an alias the entry declares).
    names = tuple(
        n for arg in entry.arg_names for n in entry.aliases.get(arg, (arg,))
    ) + tuple(entry.aliases.get(None, ()))
    if not names_argument(str(error), names):
        return f"{kind} not naming {'/'.join(names)}: {error}"
    return None


def variant_arguments(entry: Entry, variant: Variant) -> dict:
    kw = entry.args()
    if variant.arg is not None:
        kw[variant.arg] = variant.change(kw[variant.arg])
    if variant.dtype is not None:
        for name, kind in entry.kinds.items():
            if kind in FLOAT_KINDS:
                value = kw[name]
                if variant.change == "huge":
                    value = value * 1e4
                kw[name] = value.to(variant.dtype)
    return kw


def reference_arguments(entry: Entry, kw: dict) -> dict:
    return {
        name: to_float64(value, entry.kinds.get(name) in FLOAT_KINDS)
        for name, value in kw.items()
    }


def run_variant(entry: Entry, variant: Variant) -> str | None:
    """Call `entry` on `variant`: None if the contract holds, else a description."""
    kw = variant_arguments(entry, variant)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a warning from inside is a failure too
            result, obj = call(entry, kw, variant.dtype)
    except Exception as error:  # noqa: BLE001 (any error is judged, then reported)
        return check_error(entry, variant, error)
    if variant.must_raise:
        return f"accepted {variant.label.split(': ')[-1]} and returned {result!r:.60}"
    why = non_finite(result, entry.neginf)
    if why:
        return why
    if entry.prop is not None:
        try:
            entry.prop(result, **kw)
        except AssertionError as error:
            return f"property violated: {error}"
    reference = same_call(entry) if entry.reference == SAME else entry.reference
    if reference is not None:
        ref_kw = reference_arguments(entry, kw)
        if entry.init:
            ref_kw = {k: v for k, v in ref_kw.items() if k not in entry.init}
        try:
            expected = reference(to_float64(obj), **ref_kw)
        except Exception as error:  # noqa: BLE001
            return f"accepted, but the reference failed: {type(error).__name__} {error}"
        return mismatch(result, expected, loosest(kw, obj, result))
    return None


SAME = "the same call in float64"


def same_call(entry: Entry) -> Callable:
    """The reference "the same call on float64 inputs (and a float64 module)":
    catches what half precision, mixed dtypes and strided views get wrong."""

    def reference(obj, **kw):
        if obj is None:
            return entry.fn(**kw)
        return getattr(obj, entry.method)(**kw)

    return reference


# References ------------------------------------------------------------------------


def ref_softmax(x, dim=-1, temperature=1.0):
    """torch.softmax; a row of all -inf gives zeros (companion's documented value)."""
    return torch.softmax(x / temperature, dim).nan_to_num(0.0)


def ref_log_softmax(x, dim=-1):
    log_p = torch.log_softmax(x, dim)
    return torch.where(torch.isnan(log_p), -INF, log_p)  # rows of all -inf


def safe_weights(scores: Tensor) -> Tensor:
    """torch.softmax over the last axis, zeros for rows without a finite score
    (differentiable: no NaN reaches the gradient)."""
    some = torch.isfinite(scores).any(dim=-1, keepdim=True)
    return torch.softmax(torch.where(some, scores, 0.0), dim=-1) * some


def ref_attention(q, k, v, mask=None, bias=None, scale=None):
    """Output from F.scaled_dot_product_attention, weights from torch.softmax."""
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    scores = q @ k.mT * scale  # the weights do not depend on v's leading axes
    attn_mask = None
    if bias is not None:
        scores, attn_mask = scores + bias, bias
    if mask is not None:
        scores = scores.masked_fill(~mask, -INF)
        attn_mask = mask if bias is None else torch.where(mask, bias, -INF)
    lead = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    q, k, v = (t.expand(*lead, *t.shape[-2:]) for t in (q, k, v))
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, scale=scale)
    return out, safe_weights(scores)


def ref_attention_backward(q, k, v, grad_out, mask=None, scale=None, bias=None):
    """The gradients of the float64 attention by autograd."""
    q, k, v = (t.detach().requires_grad_() for t in (q, k, v))
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    scores = q @ k.mT * scale
    if bias is not None:
        scores = scores + bias
    if mask is not None:
        scores = scores.masked_fill(~mask, -INF)
    (safe_weights(scores) @ v).backward(grad_out)
    return q.grad, k.grad, v.grad


def ref_rope(x, positions=None, base=10000.0):
    """RoPE as complex multiplication: pair (x_2i, x_2i+1) is x_2i + i x_2i+1,
    multiplied by exp(i p theta_i) (Su et al., eq. 13)."""
    seq, d = x.shape[-2], x.shape[-1]
    if positions is None:
        positions = torch.arange(seq)
    theta = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    angle = positions.to(torch.float64)[:, None] * theta
    pairs = torch.view_as_complex(x.double().reshape(*x.shape[:-1], d // 2, 2))
    rotated = pairs * torch.polar(torch.ones_like(angle), angle)
    return torch.view_as_real(rotated).reshape(x.shape)


def ref_rope_qk(q, k, scale=1.0, base=10000.0):
    positions = torch.arange(k.shape[-2], dtype=torch.float64) * scale
    return ref_rope(q, positions[k.shape[-2] - q.shape[-2] :], base), ref_rope(
        k, positions, base
    )


def ref_mha(m, query, key, value, mask=None, bias=None, rotate=None, need_weights=True):
    """Multi-head attention from the module's weights, F.linear and
    F.scaled_dot_product_attention."""

    def heads(x, proj, n):
        y = F.linear(x, proj.weight, proj.bias)
        return y.view(*x.shape[:2], n, m.head_dim).transpose(1, 2)

    group = m.num_heads // m.num_kv_heads
    q = heads(query, m.q_proj, m.num_heads)
    k = heads(key, m.k_proj, m.num_kv_heads).repeat_interleave(group, 1)
    v = heads(value, m.v_proj, m.num_kv_heads).repeat_interleave(group, 1)
    if rotate is not None:
        q, k = ref_rope_qk(q, k)
    out, weights = ref_attention(q, k, v, mask, bias)
    out = out.transpose(1, 2).reshape(*query.shape[:2], -1)
    out = F.linear(out, m.out_proj.weight, m.out_proj.bias)
    return out, weights if need_weights else None


def ref_sinusoidal(num_positions, d_model, base=10000.0, device=None, dtype=None):
    """Vaswani et al., section 3.5, with the math module."""
    rows = [
        [
            (math.sin if j % 2 == 0 else math.cos)(p / base ** ((j - j % 2) / d_model))
            for j in range(d_model)
        ]
        for p in range(num_positions)
    ]
    return torch.tensor(rows, dtype=torch.float64).reshape(num_positions, d_model)


def ref_sinusoidal_2d(height, width, d_model, base=10000.0, device=None, dtype=None):
    rows = ref_sinusoidal(height, d_model // 2, base)
    columns = ref_sinusoidal(width, d_model // 2, base)
    return torch.cat(
        [
            rows.repeat_interleave(width, 0),
            columns.repeat(height, 1),
        ],
        dim=-1,
    )


def ref_alibi_slopes(n, device=None):
    """The slopes by the code published with Press et al. (2022)."""

    def power_of_2(n):
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start**i for i in range(n)]

    if math.log2(n).is_integer():
        return torch.tensor(power_of_2(n), dtype=torch.float64)
    closest = 2 ** math.floor(math.log2(n))
    extra = ref_alibi_slopes(2 * closest).tolist()[0::2][: n - closest]
    return torch.tensor(power_of_2(closest) + extra, dtype=torch.float64)


def ref_alibi_bias(num_heads, q_len, k_len, device=None, dtype=None):
    i = torch.arange(k_len - q_len, k_len, dtype=torch.float64)[:, None]
    j = torch.arange(k_len, dtype=torch.float64)[None, :]
    return -ref_alibi_slopes(num_heads)[:, None, None] * (i - j).abs()


def ref_t5_bucket(
    relative_position, bidirectional=True, num_buckets=32, max_distance=128
):
    """`_relative_position_bucket` of Hugging Face's T5 (from Mesh TensorFlow),
    with the logarithm in float64."""
    relative_position = relative_position.long()
    relative_buckets = 0
    if bidirectional:
        num_buckets //= 2
        relative_buckets += (relative_position > 0).long() * num_buckets
        relative_position = torch.abs(relative_position)
    else:
        relative_position = -torch.min(
            relative_position, torch.zeros_like(relative_position)
        )
    max_exact = num_buckets // 2
    is_small = relative_position < max_exact
    if_large = max_exact + (
        torch.log(relative_position.double() / max_exact)
        / math.log(max_distance / max_exact)
        * (num_buckets - max_exact)
    ).to(torch.long)
    if_large = torch.min(if_large, torch.full_like(if_large, num_buckets - 1))
    return relative_buckets + torch.where(is_small, relative_position, if_large)


def relative(q_len, k_len):
    return torch.arange(k_len)[None, :] - torch.arange(k_len - q_len, k_len)[:, None]


def ref_local_mask(n, window, causal=False, device=None):
    return torch.tensor(
        [
            [abs(i - j) <= window and (j <= i or not causal) for j in range(n)]
            for i in range(n)
        ]
    )


def ref_standard_traffic(q, k, v):
    """Q, K read; S written, read; P written, read; V read; O written."""
    n_q, n_k = q.shape[0], k.shape[0]
    return 4 * n_q * n_k + q.numel() + k.numel() + v.numel() + n_q * v.shape[1]


def ref_banded_attention(q, k, v, chunk_size, mask, scale, causal, window):
    """Attention with the band of `ref_local_mask`, top-left aligned (SDPA's
    is_causal), and the mask."""
    q_len, k_len = q.shape[-2], k.shape[-2]
    band = ref_local_mask(max(q_len, k_len), window, causal)[:q_len, :k_len]
    return ref_attention(q, k, v, mask & band, None, scale)[0]


def ref_strided_mask(n, stride, device=None):
    return torch.tensor(
        [[j <= i and (i - j) % stride == 0 for j in range(n)] for i in range(n)]
    )


def ref_linear_attention(q, k, v, causal=False):
    """Katharopoulos et al., eq. 2 with sim(q, k) = phi(q) . phi(k): the weights
    sim_ij / sum_j sim_ij are the softmax over j of log sim_ij = logsumexp_d
    (log phi(q_id) + log phi(k_jd)), which nothing underflows (quadratic, float64)."""

    def log_phi(x):  # log(elu(x) + 1)
        return torch.where(x > 0, torch.log1p(x.clamp(min=0)), x)

    log_sim = torch.logsumexp(
        log_phi(q)[..., :, None, :] + log_phi(k)[..., None, :, :], -1
    )
    if causal:
        log_sim = log_sim.masked_fill(
            ~torch.ones_like(log_sim, dtype=torch.bool).tril(), -INF
        )
    return torch.softmax(log_sim, dim=-1) @ v


def ref_jacobian(p):
    """The Jacobian of torch.softmax at log p, by autograd."""
    rows = p.reshape(-1, p.shape[-1])
    if not len(rows):
        return p.new_zeros(*p.shape, p.shape[-1])
    jac = [
        torch.autograd.functional.jacobian(lambda z: torch.softmax(z, -1), r.log())
        for r in rows
    ]
    return torch.stack(jac).reshape(*p.shape, p.shape[-1])


def ref_sparsemax(x, dim=-1):
    """entmax.sparsemax; -inf entries (masked) become scores 2 below the row's
    largest, which sparsemax gives exactly zero; rows of all -inf give zeros."""
    z = x.movedim(dim, -1)
    finite = torch.isfinite(z)
    some = finite.any(-1, keepdim=True)
    top = torch.where(finite, z, -INF).amax(-1, keepdim=True)
    z = torch.where(finite, z, torch.where(some, top - 2, 0.0))
    return (entmax.sparsemax(z, dim=-1) * some).movedim(-1, dim)


def ref_kernel_scores(queries, keys, width=1.0):
    width = width.detach() if isinstance(width, Tensor) else width
    return -0.5 * ((queries[:, None] - keys[None, :]) / width) ** 2


def ref_pooling(scores, values, mask=None):
    if mask is not None:
        scores = scores.masked_fill(~mask, -INF)
    weights = safe_weights(scores)
    return weights @ values, weights


def ref_bucket_table(q_len, k_len, table, bidirectional, num_buckets, max_distance):
    buckets = ref_t5_bucket(
        relative(q_len, k_len), bidirectional, num_buckets, max_distance
    )
    return table[buckets].permute(2, 0, 1)


def ref_rank_metric(gain):
    """Hit@k or NDCG@k with ties broken at random, in expectation, by counting."""

    def reference(scores, target, k=10, reduction="mean"):
        values = []
        for row, t in zip(scores.tolist(), target.tolist(), strict=True):
            above = sum(s > row[t] for s in row)
            ties = sum(s == row[t] for s in row) - 1
            ranks = range(above, above + ties + 1)
            values.append(sum(gain(r) if r < k else 0.0 for r in ranks) / (ties + 1))
        values = torch.tensor(values, dtype=torch.float64)
        return float(values.mean()) if reduction == "mean" else values

    return lambda obj, **kw: reference(**kw)


def fn(reference: Callable) -> Callable:
    """A reference of a function (it gets no instance)."""
    return lambda obj, **kw: reference(**kw)


# Entries: softmax ---------------------------------------------------------------------

E = Entry
X25 = {"x": SCORES, "dim": DIM}


def prop_gumbel(y, logits, tau=1.0, hard=False, generator=None):
    some = torch.isfinite(logits).any(-1)
    total = y.double().sum(-1)
    assert torch.allclose(total, some.double(), atol=1e-2), "rows must sum to 1"
    assert bool((y.double() > -1e-3).all()), "weights must be non-negative"
    assert bool((y[torch.isneginf(logits.expand_as(y))] == 0).all()), "masked != 0"
    if hard:
        one_hot = y.detach().double().round()
        assert torch.allclose(y.detach().double(), one_hot, atol=1e-2), "not one-hot"
        assert torch.equal(one_hot.sum(-1), some.double()), "not one-hot"


ENTRIES: list[Entry] = [
    E(
        "softmax.accumulation_dtype",
        softmax.accumulation_dtype,
        lambda: {"dtype": torch.float32},
        {},
        fn(lambda dtype: torch.float32 if dtype in HALF else dtype),
    ),
    *[
        E(
            "softmax.accumulation_dtype",
            softmax.accumulation_dtype,
            lambda d=d: {"dtype": d},
            {},
            fn(lambda dtype: torch.float32 if dtype in HALF else dtype),
            tag=str(d),
        )
        for d in (torch.float16, torch.bfloat16, torch.float64)
    ],
    E(
        "softmax.logsumexp",
        softmax.logsumexp,
        lambda: {"x": rnd(2, 5), "dim": -1},
        X25,
        fn(lambda x, dim: torch.logsumexp(x, dim)),
        neginf=True,
    ),
    E(
        "softmax.softmax",
        softmax.softmax,
        lambda: {"x": rnd(2, 5), "dim": -1, "temperature": 0.5},
        {**X25, "temperature": NUMBER},
        fn(ref_softmax),
    ),
    E(
        "softmax.log_softmax",
        softmax.log_softmax,
        lambda: {"x": rnd(2, 5), "dim": 0},
        X25,
        fn(ref_log_softmax),
        neginf=True,
    ),
    E(
        "softmax.softmax_jacobian",
        softmax.softmax_jacobian,
        lambda: {"p": torch.softmax(rnd(2, 4), -1)},
        {"p": FLOAT},
        fn(lambda p: ref_jacobian(p)),
    ),
    E(
        "softmax.softmax_jacobian",
        softmax.softmax_jacobian,
        lambda: {"p": softmax.softmax(rnd(3, 7).bfloat16())},
        {},
        fn(lambda p: ref_jacobian(p)),
        tag="companion's bfloat16 softmax",
    ),
    E(
        "softmax.cross_entropy",
        softmax.cross_entropy,
        lambda: {
            "logits": rnd(3, 5),
            "target": torch.tensor([0, 4, 2]),
            "label_smoothing": 0.1,
        },
        {"logits": SCORES, "target": Ids(5), "label_smoothing": FRACTION},
        fn(
            lambda logits, target, label_smoothing: F.cross_entropy(
                logits, target.long(), label_smoothing=label_smoothing
            )
        ),
    ),
    E(
        "softmax.cross_entropy",
        softmax.cross_entropy,
        lambda: {"logits": rnd(3, 5), "target": torch.tensor([0, 4, 2])},
        {"logits": SCORES},
        fn(lambda logits, target: F.cross_entropy(logits, target.long())),
        tag="no smoothing",
    ),
    E(
        "softmax.sparsemax",
        softmax.sparsemax,
        lambda: {"x": rnd(2, 5, scale=0.5), "dim": -1},
        X25,
        fn(ref_sparsemax),
    ),
    E(
        "softmax.entmax15",
        softmax.entmax15,
        lambda: {"x": rnd(2, 5), "dim": 0},
        X25,
        fn(lambda x, dim: entmax.entmax15(x, dim=dim)),
    ),
    E(
        "softmax.gumbel_softmax",
        softmax.gumbel_softmax,
        lambda: {
            "logits": rnd(3, 5),
            "tau": 0.5,
            "generator": torch.Generator().manual_seed(0),
        },
        {"logits": SCORES, "tau": NUMBER},
        prop=prop_gumbel,
    ),
    E(
        "softmax.gumbel_softmax",
        softmax.gumbel_softmax,
        lambda: {
            "logits": rnd(3, 5),
            "hard": True,
            "generator": torch.Generator().manual_seed(0),
        },
        {"logits": SCORES},
        prop=prop_gumbel,
        tag="hard",
    ),
    E(
        "softmax.online_softmax",
        softmax.online_softmax,
        lambda: {"x": rnd(2, 7), "block_size": 3},
        {"x": SCORES, "block_size": SIZE},
        fn(lambda x, block_size: ref_softmax(x, -1)),
    ),
]


# Entries: attention -------------------------------------------------------------------


def ref_additive(m, query, keys, values, mask=None):
    """Bahdanau et al.'s score v^T tanh(W q + U k) from the module's weights."""
    hidden = F.linear(query, m.w_q.weight).unsqueeze(-2) + F.linear(
        keys, m.w_k.weight
    ).unsqueeze(-3)
    return ref_pooling(F.linear(torch.tanh(hidden), m.v.weight)[..., 0], values, mask)


def ref_kernel_regression(m, queries, keys, values, mask=None):
    return ref_pooling(
        ref_kernel_scores(queries, keys, m.log_width.exp()), values, mask
    )


def qkv(q_len=3, k_len=5, d=4, d_v=3, lead=(2, 2)):
    return {
        "q": rnd(*lead, q_len, d, seed=1),
        "k": rnd(*lead, k_len, d, seed=2),
        "v": rnd(*lead, k_len, d_v, seed=3),
    }


QKV = {"q": FLOAT, "k": FLOAT, "v": FLOAT}
SDPA_KINDS = {**QKV, "mask": MASK, "bias": SCORES, "scale": NUMBER}


def sdpa_args():
    return {**qkv(), "mask": bmask(3, 5), "bias": rnd(2, 3, 5, seed=4), "scale": None}


def mha_args(**extra):
    return {
        "d_model": 8,
        "num_heads": 2,
        "query": rnd(2, 3, 8, seed=1),
        "key": rnd(2, 5, 8, seed=2),
        "value": rnd(2, 5, 8, seed=3),
        "mask": bmask(3, 5),
        "bias": rnd(2, 3, 5, seed=4),
        **extra,
    }


MHA_KINDS = {
    "d_model": SIZE,
    "num_heads": SIZE,
    "query": FLOAT,
    "key": FLOAT,
    "value": FLOAT,
    "mask": MASK,
    "bias": SCORES,
}
MHA_INIT = {"d_model": "d_model", "num_heads": "num_heads"}

ENTRIES += [
    E(
        "attention.masked_softmax",
        attention.masked_softmax,
        lambda: {"scores": rnd(2, 3, 4), "mask": bmask(3, 4)},
        {"scores": SCORES, "mask": MASK},
        fn(lambda scores, mask: ref_softmax(scores.masked_fill(~mask, -INF))),
    ),
    E(
        "attention.gaussian_scores",
        attention.gaussian_scores,
        lambda: {"queries": rnd(4), "keys": rnd(5, seed=1), "width": 0.7},
        {"queries": FLOAT, "keys": FLOAT, "width": NUMBER},
        fn(ref_kernel_scores),
        aliases={"width": ("width",), "queries": ("queries", "width")},
    ),
    E(
        "attention.attention_pooling",
        attention.attention_pooling,
        lambda: {"scores": rnd(4, 5), "values": rnd(5, 2, seed=1), "mask": bmask(4, 5)},
        {"scores": SCORES, "values": FLOAT, "mask": MASK},
        fn(ref_pooling),
    ),
    E(
        "attention.attention_pooling",
        attention.attention_pooling,
        lambda: {"scores": rnd(4, 5), "values": rnd(5, seed=1)},
        {"scores": SCORES, "values": FLOAT},
        fn(ref_pooling),
        tag="1-D values",
    ),
    E(
        "attention.nadaraya_watson",
        attention.nadaraya_watson,
        lambda: {
            "queries": rnd(4),
            "keys": rnd(5, seed=1),
            "values": rnd(5, seed=2),
            "width": 0.7,
            "mask": bmask(4, 5),
        },
        {
            "queries": FLOAT,
            "keys": FLOAT,
            "values": FLOAT,
            "width": NUMBER,
            "mask": MASK,
        },
        fn(
            lambda queries, keys, values, width, mask: ref_pooling(
                ref_kernel_scores(queries, keys, width), values, mask
            )
        ),
    ),
    E(
        "attention.KernelRegression",
        attention.KernelRegression,
        lambda: {
            "width": 0.7,
            "queries": rnd(4),
            "keys": rnd(5, seed=1),
            "values": rnd(5, 2, seed=2),
            "mask": bmask(4, 5),
        },
        {
            "width": NUMBER,
            "queries": FLOAT,
            "keys": FLOAT,
            "values": FLOAT,
            "mask": MASK,
        },
        ref_kernel_regression,
        init={"width": "width"},
    ),
    E(
        "attention.causal_mask",
        attention.causal_mask,
        lambda: {"n": 4},
        {"n": SIZE},
        fn(lambda n: torch.ones(n, n, dtype=torch.bool).tril()),
    ),
    E(
        "attention.padding_mask",
        attention.padding_mask,
        lambda: {"lengths": torch.tensor([3, 0, 5]), "max_len": 5},
        {"lengths": Ids(6), "max_len": SIZE},
        fn(
            lambda lengths, max_len: (
                torch.arange(max_len)[None, :] < lengths[:, None]
            )[:, None, None, :]
        ),
    ),
    E(
        "attention.padding_mask",
        attention.padding_mask,
        lambda: {"lengths": [2, 1], "max_len": 3, "device": "cpu"},
        {"max_len": SIZE},
        fn(
            lambda lengths, max_len, device: (
                torch.arange(max_len)[None, :] < torch.tensor(lengths)[:, None]
            )[:, None, None, :]
        ),
        tag="list",
    ),
    E(
        "attention.scaled_dot_product_attention",
        attention.scaled_dot_product_attention,
        sdpa_args,
        SDPA_KINDS,
        fn(ref_attention),
    ),
    E(
        "attention.attention_backward",
        attention.attention_backward,
        lambda: {**sdpa_args(), "grad_out": rnd(2, 2, 3, 3, seed=5)},
        {**SDPA_KINDS, "grad_out": FLOAT},
        fn(ref_attention_backward),
    ),
    E(
        "attention.AdditiveAttention",
        attention.AdditiveAttention,
        lambda: {
            "query_dim": 3,
            "key_dim": 4,
            "hidden_dim": 5,
            "query": rnd(2, 3, 3),
            "keys": rnd(2, 5, 4, seed=1),
            "values": rnd(2, 5, 2, seed=2),
            "mask": bmask(3, 5),
        },
        {
            "query_dim": SIZE,
            "key_dim": SIZE,
            "hidden_dim": SIZE,
            "query": FLOAT,
            "keys": FLOAT,
            "values": FLOAT,
            "mask": MASK,
        },
        ref_additive,
        init={
            "query_dim": "query_dim",
            "key_dim": "key_dim",
            "hidden_dim": "hidden_dim",
        },
    ),
    E(
        "attention.MultiHeadAttention",
        attention.MultiHeadAttention,
        mha_args,
        MHA_KINDS,
        ref_mha,
        init=MHA_INIT,
    ),
    E(
        "attention.MultiHeadAttention",
        attention.MultiHeadAttention,
        lambda: mha_args(need_weights=False),
        MHA_KINDS,
        ref_mha,
        init=MHA_INIT,
        tag="fused",
    ),
    E(
        "attention.MultiHeadAttention",
        attention.MultiHeadAttention,
        lambda: {
            **mha_args(
                num_heads=4,
                num_kv_heads=2,
                rotate=positional.rope_queries_and_keys,
                mask=bmask(2, 1, 1, 5),
            ),
            "bias": None,
        },
        {**{k: v for k, v in MHA_KINDS.items() if k != "bias"}, "num_kv_heads": SIZE},
        ref_mha,
        init={**MHA_INIT, "num_kv_heads": "num_kv_heads"},
        tag="grouped, RoPE, padding mask",
    ),
    E(
        "attention.MultiHeadAttention",
        attention.MultiHeadAttention,
        lambda: {
            **mha_args(
                num_heads=4,
                num_kv_heads=1,
                rotate=positional.rope_queries_and_keys,
                mask=bmask(2, 1, 1, 5),
                need_weights=False,
            ),
            "bias": None,
        },
        {**{k: v for k, v in MHA_KINDS.items() if k != "bias"}, "num_kv_heads": SIZE},
        ref_mha,
        init={**MHA_INIT, "num_kv_heads": "num_kv_heads"},
        tag="multi-query, RoPE, padding mask, fused",
    ),
    E(
        "attention.chunked_attention",
        attention.chunked_attention,
        lambda: {
            **qkv(5, 7, lead=(2,)),
            "chunk_size": 2,
            "mask": bmask(5, 7),
            "scale": None,
        },
        {**QKV, "chunk_size": SIZE, "mask": MASK, "scale": NUMBER},
        fn(
            lambda q, k, v, chunk_size, mask, scale: ref_attention(
                q, k, v, mask, None, scale
            )[0]
        ),
    ),
    E(
        "attention.chunked_attention",
        attention.chunked_attention,
        lambda: {
            **qkv(5, 7, lead=(2,)),
            "chunk_size": 2,
            "mask": bmask(5, 7),
            "scale": None,
            "causal": True,
            "window": 3,
        },
        {**QKV, "chunk_size": SIZE, "mask": MASK, "scale": NUMBER, "window": NONNEG},
        fn(ref_banded_attention),
        tag="causal, window",
    ),
]


# Entries: positional ------------------------------------------------------------------

ENCODING_KINDS = {"num_positions": SIZE, "d_model": SIZE, "base": BASE, "dtype": DTYPE}

ENTRIES += [
    E(
        "positional.sinusoidal_encoding",
        positional.sinusoidal_encoding,
        lambda: {
            "num_positions": 5,
            "d_model": 6,
            "base": 100.0,
            "dtype": torch.float32,
        },
        ENCODING_KINDS,
        fn(ref_sinusoidal),
    ),
    E(
        "positional.sinusoidal_encoding_2d",
        positional.sinusoidal_encoding_2d,
        lambda: {"height": 2, "width": 3, "d_model": 8, "base": 100.0},
        {"height": SIZE, "width": SIZE, "d_model": SIZE, "base": BASE},
        fn(ref_sinusoidal_2d),
    ),
    E(
        "positional.sinusoidal_encoding_2d",
        positional.sinusoidal_encoding_2d,
        lambda: {"height": 2, "width": 2, "d_model": 4, "dtype": torch.float64},
        {"dtype": DTYPE},
        fn(ref_sinusoidal_2d),
        tag="dtype",
    ),
    E(
        "positional.LearnedPositionalEmbedding",
        positional.LearnedPositionalEmbedding,
        lambda: {"max_len": 6, "d_model": 4, "positions": torch.tensor([[0, 5, 2]])},
        {"max_len": SIZE, "d_model": SIZE, "positions": Ids(6)},
        lambda m, positions: m.embedding.weight[positions.long()],
        init={"max_len": "max_len", "d_model": "d_model"},
    ),
    E(
        "positional.LearnedPositionalEmbedding",
        positional.LearnedPositionalEmbedding,
        lambda: {"max_len": 6, "d_model": 4, "positions": 4},
        {"positions": SIZE},
        lambda m, positions: m.embedding.weight[:positions],
        init={"max_len": "max_len", "d_model": "d_model"},
        tag="a length",
    ),
    E(
        "positional.apply_rope",
        positional.apply_rope,
        lambda: {"x": rnd(2, 3, 4), "base": 100.0},
        {"x": FLOAT, "base": BASE},
        fn(ref_rope),
    ),
    E(
        "positional.apply_rope",
        positional.apply_rope,
        lambda: {"x": rnd(2, 3, 4), "positions": torch.tensor([0.5, 3.0, 7.25])},
        {"x": FLOAT, "positions": FLOAT},
        fn(ref_rope),
        tag="positions",
    ),
    E(
        "positional.apply_rope",
        positional.apply_rope,
        lambda: {"x": rnd(2, 3, 4), "positions": torch.tensor([4, 0, 9])},
        {"positions": Ids(10)},
        fn(ref_rope),
        tag="integer positions",
    ),
    E(
        "positional.rope_queries_and_keys",
        positional.rope_queries_and_keys,
        lambda: {
            "q": rnd(2, 3, 4),
            "k": rnd(2, 5, 4, seed=1),
            "scale": 0.5,
            "base": 100.0,
        },
        {"q": FLOAT, "k": FLOAT, "scale": NUMBER, "base": BASE},
        fn(ref_rope_qk),
    ),
    E(
        "positional.alibi_slopes",
        positional.alibi_slopes,
        lambda: {"num_heads": 6},
        {"num_heads": SIZE},
        fn(lambda num_heads: ref_alibi_slopes(num_heads)),
    ),
    E(
        "positional.alibi_slopes",
        positional.alibi_slopes,
        lambda: {"num_heads": 8},
        {},
        fn(lambda num_heads: torch.tensor([2.0**-i for i in range(1, 9)]).double()),
        tag="published 8-head slopes 1/2 ... 1/256",
    ),
    E(
        "positional.alibi_bias",
        positional.alibi_bias,
        lambda: {"num_heads": 3, "q_len": 2, "k_len": 4, "dtype": torch.float32},
        {"num_heads": SIZE, "q_len": SIZE, "k_len": SIZE, "dtype": DTYPE},
        fn(ref_alibi_bias),
    ),
    E(
        "positional.t5_relative_position_bucket",
        positional.t5_relative_position_bucket,
        lambda: {
            "relative_position": relative(7, 40),
            "bidirectional": True,
            "num_buckets": 8,
            "max_distance": 20,
        },
        {
            "relative_position": Ids(10**6, low=-(10**6)),
            "num_buckets": SIZE,
            "max_distance": SIZE,
        },
        fn(ref_t5_bucket),
    ),
    E(
        "positional.t5_relative_position_bucket",
        positional.t5_relative_position_bucket,
        lambda: {
            "relative_position": relative(7, 40),
            "bidirectional": False,
            "num_buckets": 8,
            "max_distance": 20,
        },
        {"num_buckets": SIZE, "max_distance": SIZE},
        fn(ref_t5_bucket),
        tag="unidirectional",
    ),
    E(
        "positional.RelativePositionBias",
        positional.RelativePositionBias,
        lambda: {
            "num_heads": 2,
            "bidirectional": False,
            "num_buckets": 8,
            "max_distance": 20,
            "q_len": 3,
            "k_len": 25,
        },
        {
            "num_heads": SIZE,
            "num_buckets": SIZE,
            "max_distance": SIZE,
            "q_len": SIZE,
            "k_len": SIZE,
        },
        lambda m, q_len, k_len: ref_bucket_table(
            q_len, k_len, m.bias.weight, m.bidirectional, m.num_buckets, m.max_distance
        ),
        init={
            "num_heads": "num_heads",
            "bidirectional": "bidirectional",
            "num_buckets": "num_buckets",
            "max_distance": "max_distance",
        },
    ),
    E(
        "positional.ShawRelativeEmbedding",
        positional.ShawRelativeEmbedding,
        lambda: {"max_distance": 2, "dim": 4, "q_len": 3, "k_len": 5},
        {"max_distance": SIZE, "dim": SIZE, "q_len": SIZE, "k_len": SIZE},
        lambda m, q_len, k_len: m.embedding.weight[
            relative(q_len, k_len).clamp(-m.max_distance, m.max_distance)
            + m.max_distance
        ],
        init={"max_distance": "max_distance", "dim": "dim"},
    ),
    E(
        "positional.relative_scores",
        positional.relative_scores,
        lambda: {
            "q": rnd(2, 3, 4),
            "k": rnd(2, 5, 4, seed=1),
            "relative": rnd(3, 5, 4, seed=2),
        },
        {"q": FLOAT, "k": FLOAT, "relative": FLOAT},
        fn(
            lambda q, k, relative: (
                (q @ k.mT + torch.einsum("...qd,qkd->...qk", q, relative))
                / math.sqrt(q.shape[-1])
            )
        ),
    ),
]


# Entries: variants --------------------------------------------------------------------

ENTRIES += [
    E(
        "variants.local_mask",
        variants.local_mask,
        lambda: {"n": 5, "window": 1},
        {"n": SIZE, "window": NONNEG},
        fn(ref_local_mask),
    ),
    E(
        "variants.local_mask",
        variants.local_mask,
        lambda: {"n": 5, "window": 2, "causal": True},
        {"n": SIZE, "window": NONNEG},
        fn(ref_local_mask),
        tag="causal",
    ),
    E(
        "variants.strided_mask",
        variants.strided_mask,
        lambda: {"n": 6, "stride": 2},
        {"n": SIZE, "stride": SIZE},
        fn(ref_strided_mask),
    ),
    E(
        "variants.sliding_window_attention",
        variants.sliding_window_attention,
        lambda: {**qkv(5, 5, lead=(2,)), "window": 1},
        {**QKV, "window": NONNEG},
        fn(
            lambda q, k, v, window: ref_attention(
                q, k, v, ref_local_mask(q.shape[-2], window)
            )[0]
        ),
    ),
    E(
        "variants.elu_feature_map",
        variants.elu_feature_map,
        lambda: {"x": rnd(2, 5, scale=3.0)},
        {"x": FLOAT},
        fn(lambda x: F.elu(x) + 1),
    ),
    E(
        "variants.linear_attention",
        variants.linear_attention,
        lambda: qkv(3, 5, lead=(2,)),
        QKV,
        fn(ref_linear_attention),
    ),
    E(
        "variants.linear_attention",
        variants.linear_attention,
        lambda: {**qkv(5, 5, lead=(2,)), "causal": True},
        QKV,
        fn(ref_linear_attention),
        tag="causal",
    ),
    E(
        "variants.GraphAttentionLayer",
        variants.GraphAttentionLayer,
        lambda: {
            "in_features": 3,
            "out_features": 4,
            "num_heads": 2,
            "h": rnd(5, 3),
            "adjacency": bmask(5, 5),
        },
        {
            "in_features": SIZE,
            "out_features": SIZE,
            "num_heads": SIZE,
            "h": FLOAT,
            "adjacency": MASK,
        },
        SAME,
        init={
            "in_features": "in_features",
            "out_features": "out_features",
            "num_heads": "num_heads",
        },
    ),
    E(
        "variants.GraphAttentionLayer",
        variants.GraphAttentionLayer,
        lambda: {
            "in_features": 3,
            "out_features": 4,
            "num_heads": 2,
            "concat": False,
            "h": rnd(5, 3),
            "adjacency": bmask(5, 5),
        },
        {"h": FLOAT, "adjacency": MASK},
        SAME,
        init={
            "in_features": "in_features",
            "out_features": "out_features",
            "num_heads": "num_heads",
            "concat": "concat",
        },
        tag="averaged heads",
    ),
    E(
        "variants.NonLocalBlock",
        variants.NonLocalBlock,
        lambda: {"channels": 3, "inner_channels": 2, "x": rnd(2, 3, 2, 3)},
        {"channels": SIZE, "inner_channels": SIZE, "x": FLOAT},
        SAME,
        init={"channels": "channels", "inner_channels": "inner_channels"},
    ),
]


# Entries: models, training, measure ---------------------------------------------------


def block_args(**extra):
    return {
        "d_model": 8,
        "num_heads": 2,
        "d_ff": 16,
        "x": rnd(2, 3, 8),
        "mask": bmask(2, 1, 1, 3),
        **extra,
    }


BLOCK_INIT = {"d_model": "d_model", "num_heads": "num_heads", "d_ff": "d_ff"}
BLOCK_KINDS = {
    "d_model": SIZE,
    "num_heads": SIZE,
    "d_ff": SIZE,
    "x": FLOAT,
    "mask": MASK,
    "position": CHOICE,
}


def manual(obj, **kw):
    """The reference for the fused path: the manual formula (need_weights=True),
    in float64; only the first output is compared."""
    out = obj(**{**kw, "need_weights": True})
    return (out[0],) + (None,) * (len(out) - 1)


def encoder_args(**extra):
    return {
        "vocab_size": 7,
        "d_model": 8,
        "num_heads": 2,
        "num_layers": 1,
        "d_ff": 16,
        "max_len": 6,
        "tokens": ids(2, 4, high=7),
        **extra,
    }


ENCODER_INIT = {
    name: name
    for name in (
        "vocab_size",
        "d_model",
        "num_heads",
        "num_layers",
        "d_ff",
        "position",
        "max_len",
        "causal",
    )
}
ENCODER_KINDS = {
    "vocab_size": SIZE,
    "d_model": SIZE,
    "num_heads": SIZE,
    "num_layers": SIZE,
    "d_ff": SIZE,
    "max_len": SIZE,
    "position": CHOICE,
    "tokens": Ids(7),
}


def tiny_linear():
    torch.default_generator.manual_seed(0)  # CPU only: fast
    return nn.Linear(3, 1)


def square_loss(model, step):
    return model(rnd(4, 3, seed=step)).pow(2).mean()


def prop_train(losses, model, loss_fn, steps, lr=1e-3, seed=0, progress=True):
    assert isinstance(losses, list) and len(losses) == steps, "one loss per step"
    assert not model.training, "the model must be left in evaluation mode"


def prop_time(seconds, **_):
    assert 0 <= seconds < 1, "a time in seconds, of a call that does nothing"


def prop_peak(peak, **_):
    assert peak >= 4000, "1000 float32 numbers take at least 4000 bytes"


def prop_estimate(estimate, scores, **_):
    exact = scores.double().mean().item()
    assert math.isclose(estimate.mean, exact, rel_tol=1e-9, abs_tol=1e-12), "the mean"
    assert estimate.low <= estimate.high, "an interval"


def prop_estimate_text(text, **_):
    assert text == "0.500 [0.400, 0.600]", text


def prop_seed(result, seed):
    assert result is None and torch.initial_seed() == seed, "torch not seeded"


ENTRIES += [
    *[
        E(
            "models.TransformerBlock",
            models.TransformerBlock,
            lambda position=position, causal=causal, need=need: block_args(
                position=position,
                causal=causal,
                need_weights=need,
                position_scale=0.5 if position == "rope" else 1.0,
            ),
            {
                **BLOCK_KINDS,
                **({"position_scale": NUMBER} if position == "rope" else {}),
            },
            SAME if need else manual,
            init={**BLOCK_INIT, "position": "position", "causal": "causal"},
            tag=f"{position}{', causal' if causal else ''}{'' if need else ', fused'}",
        )
        for position, causal, need in (
            ("none", False, True),
            ("rope", True, False),
            ("alibi", True, True),
            ("t5", False, False),
        )
    ],
    *[
        E(
            "models.TransformerDecoderBlock",
            models.TransformerDecoderBlock,
            lambda position=position, need=need: {
                **{
                    k: v
                    for k, v in block_args(position=position, need_weights=need).items()
                    if k != "mask"
                },
                "memory": rnd(2, 4, 8, seed=1),
                "memory_mask": bmask(2, 1, 1, 4),
            },
            {
                **{k: v for k, v in BLOCK_KINDS.items() if k != "mask"},
                "memory": FLOAT,
                "memory_mask": MASK,
            },
            SAME if need else manual,
            init={**BLOCK_INIT, "position": "position"},
            tag=f"{position}{'' if need else ', fused'}",
        )
        for position, need in (("sinusoidal", True), ("alibi", False))
    ],
    E(
        "models.token_embedding",
        models.token_embedding,
        lambda: {"vocab_size": 7, "d_model": 4},
        {"vocab_size": SIZE, "d_model": SIZE},
    ),
    *[
        E(
            "models.TransformerEncoder",
            models.TransformerEncoder,
            lambda position=position, causal=causal: encoder_args(
                position=position, causal=causal, mask=bmask(2, 1, 1, 4)
            ),
            {**ENCODER_KINDS, "mask": MASK},
            SAME,
            init=ENCODER_INIT,
            tag=f"{position}{', causal' if causal else ''}",
        )
        for position, causal in (("sinusoidal", False), ("learned", True))
    ],
    E(
        "models.TransformerEncoder",
        models.TransformerEncoder,
        lambda: encoder_args(position="rope", causal=False, need_weights=False),
        ENCODER_KINDS,
        manual,
        init=ENCODER_INIT,
        tag="rope, fused",
    ),
    E(
        "models.TransformerEncoder",
        models.TransformerEncoder,
        lambda: encoder_args(position="learned", causal=False),
        ENCODER_KINDS,
        SAME,
        init=ENCODER_INIT,
        method="embed",
        tag="learned",
    ),
    E(
        "models.TransformerClassifier",
        models.TransformerClassifier,
        lambda: {
            **encoder_args(num_classes=3, lengths=torch.tensor([4, 2])),
            "max_len": 512,
        },
        {
            **{
                k: v
                for k, v in ENCODER_KINDS.items()
                if k not in ("max_len", "position")
            },
            "num_classes": SIZE,
            "lengths": Ids(5, low=1),
        },
        SAME,
        init={
            name: name
            for name in (
                "vocab_size",
                "num_classes",
                "d_model",
                "num_heads",
                "num_layers",
                "d_ff",
                "max_len",
            )
        },
    ),
    E(
        "models.TransformerClassifier",
        models.TransformerClassifier,
        lambda: {**encoder_args(num_classes=3), "max_len": 512},
        {"tokens": Ids(7), "num_classes": SIZE},
        SAME,
        init={
            name: name
            for name in (
                "vocab_size",
                "num_classes",
                "d_model",
                "num_heads",
                "num_layers",
                "d_ff",
                "max_len",
            )
        },
        tag="no lengths",
    ),
    E(
        "models.TransformerLanguageModel",
        models.TransformerLanguageModel,
        lambda: {**encoder_args(position="rope"), "position_scale": 0.5},
        {**ENCODER_KINDS, "position_scale": NUMBER},
        SAME,
        init={k: v for k, v in ENCODER_INIT.items() if k != "causal"},
    ),
    E(
        "training.seed_everything",
        training.seed_everything,
        lambda: {"seed": 3},
        {"seed": SEED},
        prop=prop_seed,
    ),
    E(
        "training.train",
        training.train,
        lambda: {
            "model": tiny_linear(),
            "loss_fn": square_loss,
            "steps": 2,
            "lr": 1e-2,
            "seed": 0,
            "progress": False,
        },
        {"steps": SIZE, "lr": NUMBER, "seed": SEED},
        prop=prop_train,
        aliases={"lr": ("lr", "learning rate")},
    ),
    E(
        "measure.best_time",
        measure.best_time,
        lambda: {"function": lambda: None, "repeats": 2},
        {"repeats": SIZE},
        prop=prop_time,
    ),
    E(
        "measure.peak_memory",
        measure.peak_memory,
        lambda: {"function": lambda: torch.ones(1000)},
        {},
        prop=prop_peak,
    ),
    E(
        "measure.standard_attention_traffic",
        measure.standard_attention_traffic,
        lambda: {k: t[0, 0] for k, t in qkv(5, 7).items()},
        QKV,
        fn(lambda q, k, v: [ref_attention(q, k, v)[0], ref_standard_traffic(q, k, v)]),
    ),
    E(
        "measure.tiled_attention_traffic",
        measure.tiled_attention_traffic,
        lambda: {**{k: t[0, 0] for k, t in qkv(5, 7).items()}, "sram_size": 32},
        {**QKV, "sram_size": SIZE},
        fn(lambda q, k, v, sram_size: [ref_attention(q, k, v)[0], None]),
    ),
    E(
        "statistics.bootstrap_mean",
        statistics.bootstrap_mean,
        lambda: {"scores": rnd(3, 20), "draws": 300, "level": 0.9, "seed": 0},
        {"scores": FLOAT, "draws": SIZE, "level": FRACTION, "seed": SEED},
        prop=prop_estimate,
    ),
    E(
        "statistics.Estimate",
        statistics.Estimate,
        lambda: {"mean": 0.5, "low": 0.4, "high": 0.6},
        {},
        prop=prop_estimate_text,
        init={"mean": "mean", "low": "low", "high": "high"},
        method="__str__",
    ),
]


# Entries: the post-norm block, mean pooling and the pretrained encoder (random
# weights here, so that the sweep stays fast; test_pretrained.py checks the real
# ones against transformers and sentence-transformers)

BERT_INIT = {**BLOCK_INIT, "vocab_size": "vocab_size", "num_layers": "num_layers"}
BERT_INIT["max_len"] = "max_len"


def bert_args(**extra):
    return {
        **{k: v for k, v in encoder_args().items() if k != "position"},
        "lengths": torch.tensor([4, 2]),
        "positions": torch.tensor([3, 0, 1, 2]),
        **extra,
    }


BERT_KINDS = {
    **{k: v for k, v in ENCODER_KINDS.items() if k != "position"},
    "lengths": Ids(5, low=1),
    "positions": Ids(6),
}


@functools.cache
def minilm_tokenizer():
    return pretrained.load_minilm().tokenizer


def sentence_encoder_args(**extra):
    torch.default_generator.manual_seed(0)  # CPU only: fast
    encoder = pretrained.BertEncoder(7, 8, 2, 1, 16, max_len=6)
    return {"encoder": encoder, "tokenizer": minilm_tokenizer(), **extra}


def ref_mean_over_tokens(hidden, lengths):
    return torch.stack(
        [h[:n].mean(0) for h, n in zip(hidden, lengths.tolist(), strict=True)]
    )


def prop_tokenized(result, sentences, **_):
    tokens, lengths = result
    assert tokens.shape == (len(sentences), int(lengths.max())), "padded to the longest"
    for row, n in zip(tokens.tolist(), lengths.tolist(), strict=True):
        assert row[0] == 101 and row[n - 1] == 102, "[CLS] ... [SEP]"
        assert all(i == 0 for i in row[n:]), "[PAD] after the sentence"


def prop_output_fields(result, last, **_):
    assert list(result) == ["last", "states", "weights"] and result["last"] is last


def prop_model_folder(result):
    assert (result / "model.safetensors").is_file(), "the weights' folder"


def prop_sentence_encoder(result, directory):
    assert isinstance(result, pretrained.SentenceEncoder) and not result.training


def prop_unit_rows(result, **_):
    norms = result.detach().double().norm(dim=-1)
    assert torch.allclose(
        norms, torch.ones_like(norms), atol=TOLERANCE[result.dtype][1]
    )


ENTRIES += [
    E(
        "models.PostNormTransformerBlock",
        models.PostNormTransformerBlock,
        lambda: block_args(activation="gelu", eps=1e-12),
        {
            **{k: v for k, v in BLOCK_KINDS.items() if k != "position"},
            "activation": CHOICE,
            "eps": NUMBER,
        },
        SAME,
        init={**BLOCK_INIT, "activation": "activation", "eps": "eps"},
    ),
    E(
        "models.PostNormTransformerBlock",
        models.PostNormTransformerBlock,
        lambda: block_args(activation="relu", need_weights=False),
        {"x": FLOAT, "mask": MASK},
        manual,
        init={**BLOCK_INIT, "activation": "activation"},
        tag="relu, fused",
    ),
    E(
        "models.mean_over_tokens",
        models.mean_over_tokens,
        lambda: {"hidden": rnd(2, 4, 3), "lengths": torch.tensor([4, 2])},
        {"hidden": FLOAT, "lengths": Ids(5, low=1)},
        fn(ref_mean_over_tokens),
    ),
    E(
        "pretrained.BertEncoder",
        pretrained.BertEncoder,
        bert_args,
        BERT_KINDS,
        SAME,
        init=BERT_INIT,
    ),
    E(
        "pretrained.BertEncoder",
        pretrained.BertEncoder,
        lambda: {
            k: v for k, v in bert_args(need_weights=False).items() if k != "lengths"
        },
        {k: v for k, v in BERT_KINDS.items() if k != "lengths"},
        SAME,
        init=BERT_INIT,
        tag="fused",
    ),
    E(
        "pretrained.BertEncoder",
        pretrained.BertEncoder,
        lambda: {k: v for k, v in bert_args().items() if k != "lengths"},
        {k: v for k, v in BERT_KINDS.items() if k != "lengths"},
        SAME,
        init=BERT_INIT,
        method="embed",
    ),
    E(
        "pretrained.SentenceEncoder",
        pretrained.SentenceEncoder,
        lambda: sentence_encoder_args(
            tokens=ids(2, 4, high=7),
            lengths=torch.tensor([4, 2]),
            positions=torch.tensor([3, 0, 1, 2]),
        ),
        {"tokens": Ids(7), "lengths": Ids(5, low=1), "positions": Ids(6)},
        SAME,
        init={"encoder": "encoder", "tokenizer": "tokenizer"},
        prop=prop_unit_rows,
    ),
    E(
        "pretrained.SentenceEncoder",
        pretrained.SentenceEncoder,
        lambda: sentence_encoder_args(sentences=["The cat sat.", "", "Ça va ?"]),
        {"sentences": TEXTS},
        prop=prop_tokenized,
        init={"encoder": "encoder", "tokenizer": "tokenizer"},
        method="tokenize",
    ),
    E(
        "pretrained.EncoderOutput",
        pretrained.EncoderOutput,
        lambda: {"last": rnd(1, 2, 3), "states": [], "weights": []},
        {},
        prop=prop_output_fields,
        init={"last": "last", "states": "states", "weights": "weights"},
        method="_asdict",
    ),
    E(
        "pretrained.course_weight_name",
        pretrained.course_weight_name,
        lambda: {"name": "encoder.layer.3.attention.self.query.weight"},
        {"name": TEXT},
        fn(
            lambda name: (
                "blocks.3.attention.q_proj.weight" if "layer.3" in name else None
            )
        ),
    ),
    E(
        "pretrained.course_weight_name",
        pretrained.course_weight_name,
        lambda: {"name": "pooler.dense.bias"},
        {},
        fn(lambda name: None),
        tag="skipped",
    ),
    E(
        "pretrained.minilm_directory",
        pretrained.minilm_directory,
        lambda: {},
        {},
        prop=prop_model_folder,
    ),
    E(
        "pretrained.load_minilm",
        pretrained.load_minilm,
        lambda: {"directory": None},
        {},
        prop=prop_sentence_encoder,
    ),
]


# Entries: the teaching kit (the first assignment's tests, on a namespace that
# answers them as the worked solution does)

FIRST_ASSIGNMENT = "03_softmax/01_definition_and_properties"


def answered():
    return {
        "dominant_logits": torch.tensor([50.0, 0.0, 0.0]),
        "equal_logits": torch.zeros(3),
        "inverse_softmax": lambda p, c=0.0: torch.log(p) + c,
    }


def prop_marker(result, exercise, hidden):
    marked = result(lambda: None)
    assert marked.exercise == exercise and marked.hidden is hidden


def prop_exercises(result, notebook):
    assert list(result) == ["ex-sigmoid", "ex-lse-gap", "ex-inverse"]


def prop_tests(result, chapter):
    assert {t.exercise for t in result} == {"ex-lse-gap", "ex-inverse"}


def prop_checked(result, namespace, chapter):
    assert result is None


ENTRIES += [
    E(
        "teaching.test",
        teaching.test,
        lambda: {"exercise": "ex-x", "hidden": False},
        {"exercise": TEXT},
        prop=prop_marker,
    ),
    E(
        "teaching.exercises",
        teaching.exercises,
        lambda: {"notebook": teaching.ROOT / "notebooks" / f"{FIRST_ASSIGNMENT}.ipynb"},
        {},
        prop=prop_exercises,
    ),
    E(
        "teaching.load_tests",
        teaching.load_tests,
        lambda: {"chapter": FIRST_ASSIGNMENT},
        {"chapter": TEXT},
        prop=prop_tests,
    ),
    E(
        "teaching.answers_of",
        teaching.answers_of,
        lambda: {"function": lambda square, x0: None, "solution_code": ["square = 1"]},
        {},
        fn(lambda function, solution_code: ["square"]),
    ),
    E(
        "teaching.check_assignment",
        teaching.check_assignment,
        lambda: {"namespace": answered(), "chapter": FIRST_ASSIGNMENT},
        {"chapter": TEXT},
        prop=prop_checked,
    ),
]


# Entries: validation (the checks themselves: None or a ValueError naming the argument)

V = validation


def check(name: str, args: Callable[[], dict], kinds: dict, **options) -> Entry:
    return Entry(f"validation.{name}", getattr(V, name), args, kinds, **options)


def number_check(name: str, kind: str, value: object) -> Entry:
    return check(name, lambda: {"value": value, "name": "value"}, {"value": kind})


ENTRIES += [
    check(
        "check_mean_pooling_inputs",
        lambda: {"hidden": rnd(2, 4, 3), "lengths": torch.tensor([4, 2])},
        {"hidden": FLOAT, "lengths": Ids(5, low=1)},
    ),
    check(
        "check_positions_of",
        lambda: {"positions": torch.tensor([2, 0, 1]), "tokens": ids(2, 3, high=7)},
        {"positions": Ids(3)},
    ),
    number_check("check_positive_int", SIZE, 3),
    number_check("check_nonnegative_int", NONNEG, 0),
    number_check("check_base", BASE, 100.0),
    number_check("check_fraction", FRACTION, 0.5),
    number_check("check_open_fraction", FRACTION, 0.5),
    number_check("check_real", REAL, 0.5),
    number_check("check_string", TEXT, "abc"),
    check(
        "check_index",
        lambda: {"value": 2, "upper": 5, "name": "value"},
        {"value": NONNEG, "upper": SIZE},
    ),
    check("check_sizes", lambda: {"n": 3, "d": 4}, {"n": SIZE, "d": SIZE}),
    check(
        "check_divisible",
        lambda: {"value": 6, "divisor": 3, "name": "value", "divisor_name": "divisor"},
        {"value": SIZE, "divisor": SIZE},
    ),
    check(
        "check_positive_number",
        lambda: {"value": 0.5, "name": "value", "dtype": torch.float32},
        {"value": NUMBER, "dtype": DTYPE},
    ),
    check(
        "check_bucket_sizes",
        lambda: {"bidirectional": True, "num_buckets": 8, "max_distance": 20},
        {"num_buckets": SIZE, "max_distance": SIZE},
    ),
    check(
        "check_choice",
        lambda: {"value": "a", "choices": ("a", "b"), "name": "value"},
        {"value": CHOICE},
    ),
    check(
        "check_choices",
        lambda: {"choices": ("a", "b"), "position": "a"},
        {"position": CHOICE},
    ),
    check("check_fractions", lambda: {"share": 0.4, "rate": 0.5}, {"share": FRACTION}),
    check("check_float_dtype", lambda: {"dtype": torch.float32}, {"dtype": DTYPE}),
    check("check_seed", lambda: {"seed": 3}, {"seed": SEED}),
    check(
        "check_float_tensor",
        lambda: {"x": rnd(2, 3), "name": "x", "ndim": (2,)},
        {"x": FLOAT},
    ),
    check(
        "check_index_tensor",
        lambda: {"x": ids(2, 3, high=5), "name": "x", "ndim": (2,)},
        {"x": Ids(5)},
    ),
    check(
        "check_ids",
        lambda: {"x": ids(2, 3, high=5), "upper": 5, "name": "x"},
        {"x": Ids(5), "upper": SIZE},
    ),
    check(
        "check_id_vector",
        lambda: {"x": ids(3, high=5), "upper": 5, "name": "x", "length": 3},
        {"x": Ids(5), "upper": SIZE, "length": SIZE},
    ),
    check(
        "check_token_ids",
        lambda: {"tokens": ids(2, 3, high=5), "vocab_size": 5, "max_len": 4},
        {"tokens": Ids(5), "vocab_size": SIZE, "max_len": SIZE},
    ),
    check(
        "check_lengths",
        lambda: {
            "lengths": torch.tensor([3, 1]),
            "max_len": 4,
            "lowest": 1,
            "batch": 2,
        },
        {"lengths": Ids(5, low=1), "max_len": SIZE, "lowest": NONNEG, "batch": SIZE},
    ),
    check(
        "check_source",
        lambda: {
            "source": ids(2, 4, high=6),
            "lengths": torch.tensor([4, 2]),
            "vocab_size": 6,
        },
        {"source": Ids(6), "lengths": Ids(5, low=1), "vocab_size": SIZE},
    ),
    check(
        "check_target",
        lambda: {"target": ids(2, 3, high=5), "vocab_size": 5, "batch": 2},
        {"target": Ids(5), "vocab_size": SIZE, "batch": SIZE},
        aliases={"target": ("target", "target_in")},
    ),
    check("check_finite", lambda: {"x": rnd(2, 3), "name": "x"}, {"x": FLOAT}),
    check(
        "check_normaliser",
        lambda: {"total": rnd(2, 3).abs() + 0.1, "name": "total"},
        {"total": FLOAT},
    ),
    check(
        "check_scores",
        lambda: {"x": rnd(2, 3), "dim": -1, "name": "x"},
        {"x": SCORES, "dim": DIM},
    ),
    check(
        "check_same_dtype",
        lambda: {"a": rnd(2), "b": rnd(3)},
        {"a": FLOAT, "b": FLOAT},
    ),
    check(
        "check_leading_axes",
        lambda: {"q": rnd(2, 3, 4), "k": rnd(2, 5, 4)},
        {"q": FLOAT, "k": FLOAT},
    ),
    check(
        "check_sequence",
        lambda: {"x": rnd(2, 3, 4), "d_model": 4, "name": "x"},
        {"x": FLOAT, "d_model": SIZE},
    ),
    check(
        "check_module_input",
        lambda: {"x": rnd(2, 3), "like": rnd(3), "name": "x"},
        {"x": FLOAT, "like": FLOAT},
    ),
    check(
        "check_mask",
        lambda: {"mask": bmask(3, 4), "shape": (2, 3, 4), "name": "mask"},
        {"mask": MASK},
    ),
    check(
        "check_bias",
        lambda: {"bias": rnd(3, 4), "shape": (2, 3, 4), "dtype": torch.float32},
        {"bias": SCORES},
    ),
    check("check_qkv", qkv, QKV),
    check("check_self_attention", lambda: qkv(5, 5), QKV),
    check(
        "check_kernel_inputs",
        lambda: {"queries": rnd(4), "keys": rnd(5, seed=1), "width": 0.7},
        {"queries": FLOAT, "keys": FLOAT, "width": NUMBER},
    ),
    check(
        "check_pooling_inputs",
        lambda: {"scores": rnd(4, 5), "values": rnd(5, 2)},
        {"scores": SCORES, "values": FLOAT},
    ),
    check(
        "check_attention",
        sdpa_args,
        SDPA_KINDS,
        reference=fn(
            lambda q, k, v, mask, bias, scale: (
                1 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
            )
        ),
    ),
    check(
        "check_backward_inputs",
        lambda: {**qkv(), "grad_out": rnd(2, 2, 3, 3)},
        {**QKV, "grad_out": FLOAT},
    ),
    check(
        "check_probabilities",
        lambda: {"p": torch.softmax(rnd(2, 4), -1)},
        {"p": FLOAT},
    ),
    check(
        "check_classification",
        lambda: {
            "logits": rnd(3, 5),
            "target": torch.tensor([0, 4, 2]),
            "label_smoothing": 0.1,
        },
        {"logits": SCORES, "target": Ids(5), "label_smoothing": FRACTION},
    ),
    check(
        "check_encoding_sizes",
        lambda: {"d_model": 8, "multiple": 2, "base": 100.0, "n": 3},
        {"d_model": SIZE, "base": BASE, "n": SIZE},
    ),
    check(
        "check_rope_inputs",
        lambda: {
            "x": rnd(2, 3, 4),
            "positions": torch.tensor([0.0, 1, 2]),
            "base": 10.0,
        },
        {"x": FLOAT, "positions": FLOAT, "base": BASE},
        reference=fn(lambda x, positions, base: (x.shape[-2], x.shape[-1])),
    ),
    check(
        "check_rope_queries_and_keys",
        lambda: {"q": rnd(2, 3, 4), "k": rnd(2, 5, 4), "scale": 1.0, "base": 10.0},
        {"q": FLOAT, "k": FLOAT, "scale": NUMBER, "base": BASE},
        reference=fn(lambda q, k, scale, base: (q.shape[-2], k.shape[-2])),
    ),
    check(
        "check_relative_inputs",
        lambda: {"q": rnd(2, 3, 4), "k": rnd(2, 5, 4), "relative": rnd(3, 5, 4)},
        {"q": FLOAT, "k": FLOAT, "relative": FLOAT},
    ),
    check("check_path", lambda: {"path": "data.csv", "name": "path"}, {"path": TEXT}),
    check(
        "check_texts",
        lambda: {"texts": ["ab", "c"], "name": "texts"},
        {"texts": TEXTS},
        reference=fn(lambda texts, name: list(texts)),
    ),
    check(
        "check_text_pairs",
        lambda: {"pairs": [("a", "b")], "name": "pairs"},
        {"pairs": TEXTS},
        reference=fn(lambda pairs, name: (["a"], ["b"])),
    ),
    check(
        "check_subset",
        lambda: {"values": ("a",), "choices": ("a", "b"), "name": "values"},
        {"values": CHOICE},
    ),
    check(
        "check_type",
        lambda: {"value": "abc", "types": str, "name": "value"},
        {"value": TEXT},
    ),
    check(
        "check_date",
        lambda: {
            "date": datetime.date(2000, 1, 1),
            "first": translation.FIRST_DATE,
            "last": translation.LAST_DATE,
            "name": "date",
        },
        {"date": TEXT},
    ),
    check(
        "check_size_tuple",
        lambda: {"values": (3, 4), "name": "values"},
        {"values": CHOICE},
    ),
    check(
        "check_sessions",
        lambda: {"sessions": ids(2, 4, high=6), "num_items": 6, "min_length": 2},
        {"sessions": Ids(6), "num_items": SIZE},
    ),
    check(
        "check_session_process",
        lambda: {"process": recommendation.SessionProcess()},
        {},
    ),
    check(
        "check_ranking",
        lambda: {"scores": rnd(3, 6), "target": torch.tensor([0, 5, 2]), "k": 2},
        {"scores": SCORES, "target": Ids(6), "k": SIZE},
    ),
    check(
        "check_patch_size",
        lambda: {"patch_size": 2, "height": 4, "width": 6},
        {"patch_size": SIZE},
    ),
    check(
        "check_vit_options",
        lambda: {
            "image_size": 8,
            "patch_size": 2,
            "position": "learned",
            "positions": ("learned", "none"),
        },
        {"patch_size": SIZE, "position": CHOICE},
    ),
    check(
        "check_class_token_weights",
        lambda: {"weights": rnd(2, 2, 5, 5), "grid": 2},
        {"weights": FLOAT, "grid": SIZE},
    ),
    check(
        "check_labelled_images",
        lambda: {"images": rnd(2, 4, 4), "labels": torch.tensor([1, 0])},
        {"images": FLOAT, "labels": Ids(10)},
    ),
    check(
        "check_regression_options",
        lambda: {"n": 4, "noise": 0.3, "low": 0.0, "high": 5.0, "seed": 0},
        {"n": SIZE, "noise": REAL, "low": REAL, "high": REAL, "seed": SEED},
    ),
]


ENTRIES += [
    check(
        "check_seeded_sizes",
        lambda: {"seed": 0, "n": 3, "length": 2},
        {"seed": SEED, "n": SIZE, "length": SIZE},
    ),
    check(
        "check_image_patches",
        lambda: {"images": rnd(2, 4, 6), "patch_size": 2},
        {"images": FLOAT, "patch_size": SIZE},
    ),
]


# Entries: companion.data and companion.tasks ------------------------------------------

CSV_DIR = tempfile.TemporaryDirectory()  # removed when the interpreter exits
CSV_PATH = Path(CSV_DIR.name) / "reviews.csv"
CSV_PATH.write_text('text,label\n"good, really",pos\nbad,neg\n', encoding="utf-8")
CORPUS = ["the plot was good", "bad"]  # vocabulary: pad unk bad good plot the was


def prop_regression(xy, n, noise=0.3, low=0.0, high=5.0, seed=0):
    x, y = xy
    assert x.shape == y.shape == (n,), "x and y must have shape (n,)"
    assert bool((x[1:] >= x[:-1]).all()), "x must be sorted"
    assert bool(((x >= low) & (x < high)).all()), "x must lie in [low, high)"


def prop_sentiment(result, n, seed=0, contrast_share=0.4, negation_share=0.3):
    texts, labels = result
    assert len(texts) == n == len(labels), "n texts and n labels"
    rules = [text.sentiment_rule(t) for t in texts]
    assert labels.tolist() == rules, "labels must follow the grammar's rule"


def prop_date_pairs(pairs, n, seed=0, formats=translation.FORMATS):
    assert len(pairs) == n, "n pairs"
    for _, iso in pairs:
        date = datetime.date.fromisoformat(iso)
        assert translation.FIRST_DATE <= date <= translation.LAST_DATE


def prop_digits(split, **_):
    assert len(split[0]) + len(split[2]) == 1797, "the 1797 digits, split"


def prop_distribution(probs, histories, genres, **_):
    assert bool((probs >= 0).all()), "probabilities must be non-negative"
    assert torch.allclose(probs.sum(-1), torch.ones(len(probs), dtype=probs.dtype))


def prop_sessions(result, num_users, length, seed, **_):
    sessions, genres = result
    assert sessions.shape == (num_users, length) and genres.shape == (num_users,)


def ref_decode_target(ids):
    out = []
    for row in ids.tolist():
        row = row[: row.index(translation.EOS)] if translation.EOS in row else row
        out.append("".join(translation.TARGET_VOCAB[i] if i > 2 else "?" for i in row))
    return out


def ref_patchify(images, patch_size):
    x = images if images.dim() == 4 else images[:, None]
    if not x.numel():
        batch, channels, height, width = x.shape
        count = (height // patch_size) * (width // patch_size)
        return x.new_zeros(batch, count, channels * patch_size**2)
    return F.unfold(x, patch_size, stride=patch_size).transpose(1, 2)


def ref_markov(train, histories, num_items):
    counts = torch.zeros(num_items, num_items, dtype=torch.float64)
    for row in train.tolist():
        for a, b in zip(row[:-1], row[1:], strict=True):
            counts[a, b] += 1
    popularity = torch.bincount(train.flatten().long(), minlength=num_items).double()
    return counts[histories[:, -1].long()] + popularity / (popularity.sum() + 1)


def gru(**extra):
    torch.default_generator.manual_seed(0)  # CPU only: fast
    return translation.GRUTranslator(
        embed_dim=4, hidden_dim=6, attention_dim=5, **extra
    )


def transformer_translator():
    torch.default_generator.manual_seed(0)  # CPU only: fast
    return translation.TransformerTranslator(
        d_model=8, num_heads=2, num_layers=1, d_ff=16
    )


def mlp():
    torch.default_generator.manual_seed(0)  # CPU only: fast
    return vision.MLPClassifier(16, (5,), 3)


def sasrec():
    torch.default_generator.manual_seed(0)  # CPU only: fast
    return recommendation.SASRec(10, d_model=8, num_heads=2, num_layers=1, max_len=6)


SOURCE = {"source": Ids(44), "lengths": Ids(6, low=1)}
GRU_INIT = {
    "embed_dim": "embed_dim",
    "hidden_dim": "hidden_dim",
    "attention": "attention",
    "attention_dim": "attention_dim",
}
GRU_KINDS = {"embed_dim": SIZE, "hidden_dim": SIZE, "attention_dim": SIZE}
TT_INIT = {n: n for n in ("d_model", "num_heads", "num_layers", "d_ff")}
TT_KINDS = {"d_model": SIZE, "num_heads": SIZE, "num_layers": SIZE, "d_ff": SIZE}
VIT_INIT = {
    n: n
    for n in (
        "image_size",
        "patch_size",
        "num_classes",
        "d_model",
        "num_heads",
        "num_layers",
        "d_ff",
        "position",
    )
}
PROCESS = {"num_items": 28, "num_genres": 2, "series_length": 4, "num_trending": 4}
PROCESS_INIT = {n: n for n in PROCESS}
SASREC_INIT = {
    n: n for n in ("num_items", "d_model", "num_heads", "num_layers", "max_len")
}


def source_args():
    return {"source": ids(2, 5, high=44), "lengths": torch.tensor([5, 3])}


def vit_args(position, **extra):
    return {
        "image_size": 4,
        "patch_size": 2,
        "num_classes": 3,
        "d_model": 8,
        "num_heads": 2,
        "num_layers": 1,
        "d_ff": 16,
        "position": position,
        "images": rnd(2, 4, 4),
        **extra,
    }


ENTRIES += [
    E(
        "data.regression_target",
        data.regression_target,
        lambda: {"x": rnd(5, scale=2.0)},
        {"x": FLOAT},
        fn(lambda x: torch.sin(2 * x) + x / 2),
    ),
    E(
        "data.regression_data",
        data.regression_data,
        lambda: {"n": 4, "noise": 0.3, "low": 0.0, "high": 5.0, "seed": 0},
        {"n": SIZE, "noise": REAL, "low": REAL, "high": REAL, "seed": SEED},
        prop=prop_regression,
    ),
    E(
        "tasks.text.tokenize",
        text.tokenize,
        lambda: {"text": "The plot wasn't good."},
        {"text": TEXT},
        fn(lambda text: re.findall(r"\w+|[^\w\s]", text.lower())),
    ),
    E(
        "tasks.text.Vocabulary",
        text.Vocabulary,
        lambda: {"corpus": CORPUS, "min_count": 1, "texts": ["the plot", "was bad ?"]},
        {"corpus": TEXTS, "min_count": SIZE, "texts": TEXTS},
        fn(
            lambda texts: (
                (
                    torch.tensor([[5, 4, 0], [6, 2, 1]]),
                    torch.tensor([2, 3]),
                )
                if texts == ["the plot", "was bad ?"]
                else None
            )
        ),
        init={"corpus": "texts", "min_count": "min_count"},
        method="encode",
    ),
    E(
        "tasks.text.Vocabulary",
        text.Vocabulary,
        lambda: {"corpus": CORPUS, "ids": torch.tensor([2, 3, 0, 6])},
        {"ids": Ids(7)},
        lambda vocab, ids: [vocab.itos[i] for i in ids.tolist() if i != 0],
        init={"corpus": "texts"},
        method="decode",
    ),
    E(
        "tasks.text.bag_of_words",
        text.bag_of_words,
        lambda: {"tokens": ids(2, 4, high=6), "vocab_size": 6},
        {"tokens": Ids(6), "vocab_size": SIZE},
        fn(
            lambda tokens, vocab_size: (
                F.one_hot(tokens.long(), vocab_size)
                .sum(1)
                .float()
                .index_fill(1, torch.tensor([0]), 0.0)
            )
        ),
    ),
    E(
        "tasks.text.sentiment_data",
        text.sentiment_data,
        lambda: {"n": 6, "seed": 0, "contrast_share": 0.4, "negation_share": 0.3},
        {
            "n": SIZE,
            "seed": SEED,
            "contrast_share": FRACTION,
            "negation_share": FRACTION,
        },
        prop=prop_sentiment,
    ),
    E(
        "tasks.text.sentiment_rule",
        text.sentiment_rule,
        lambda: {"text": "the plot was good , but the music was not very fun ."},
        {"text": TEXT},
        fn(lambda text: 0 if text.startswith("the plot") else None),
    ),
    E(
        "tasks.text.sentiment_kind",
        text.sentiment_kind,
        lambda: {"text": "the plot was good , but the music was bad ."},
        {"text": TEXT},
        fn(lambda text: "contrast" if "but" in text else None),
    ),
    E(
        "tasks.text.read_labelled_csv",
        text.read_labelled_csv,
        lambda: {"path": CSV_PATH, "text_column": "text", "label_column": "label"},
        {"text_column": CHOICE, "label_column": CHOICE},
        fn(
            lambda path, text_column, label_column: (
                ["good, really", "bad"],
                torch.tensor([1, 0]),
                ["neg", "pos"],
            )
        ),
        aliases={
            "text_column": ("text_column", "column"),
            "label_column": ("label_column", "column"),
        },
    ),
    E(
        "tasks.translation.format_date",
        translation.format_date,
        lambda: {"date": datetime.date(1999, 9, 23), "fmt": "spelled"},
        {"date": TEXT, "fmt": CHOICE},
        fn(
            lambda date, fmt: (
                "the twenty-third of september, nineteen ninety-nine"
                if fmt == "spelled"
                else None
            )
        ),
    ),
    E(
        "tasks.translation.date_pairs",
        translation.date_pairs,
        lambda: {"n": 3, "seed": 0, "formats": ("numeric", "spelled")},
        {"n": SIZE, "seed": SEED, "formats": CHOICE},
        prop=prop_date_pairs,
    ),
    E(
        "tasks.translation.encode_source",
        translation.encode_source,
        lambda: {"texts": ["23/09/1999", "sept 23 1999"]},
        {"texts": TEXTS},
        fn(
            lambda texts: (
                (None, torch.tensor([10, 12]))
                if texts == ["23/09/1999", "sept 23 1999"]
                else None
            )
        ),
    ),
    E(
        "tasks.translation.encode_target",
        translation.encode_target,
        lambda: {"texts": ["1999-09-23", "2001-01-02"]},
        {"texts": TEXTS},
    ),
    E(
        "tasks.translation.decode_target",
        translation.decode_target,
        lambda: {"ids": translation.encode_target(["1999-09-23", "2001-01-02"])[1]},
        {"ids": Ids(len(translation.TARGET_VOCAB))},
        fn(ref_decode_target),
    ),
    *[
        E(
            "tasks.translation.GRUTranslator",
            translation.GRUTranslator,
            lambda attention=attention: {
                "embed_dim": 4,
                "hidden_dim": 6,
                "attention": attention,
                "attention_dim": 5,
                **source_args(),
                "target_in": ids(2, 4, high=14),
            },
            {**GRU_KINDS, **SOURCE, "target_in": Ids(14)},
            SAME,
            init=GRU_INIT,
            tag="" if attention else "no attention",
        )
        for attention in (True, False)
    ],
    E(
        "tasks.translation.GRUTranslator",
        translation.GRUTranslator,
        lambda: {"embed_dim": 4, "hidden_dim": 6, "attention_dim": 5, **source_args()},
        {**GRU_KINDS, **SOURCE},
        SAME,
        init={k: v for k, v in GRU_INIT.items() if k != "attention"},
        method="encode",
    ),
    E(
        "tasks.translation.GRUTranslator",
        translation.GRUTranslator,
        lambda: {
            "embed_dim": 4,
            "hidden_dim": 6,
            "attention_dim": 5,
            "target_in": ids(2, 4, high=14),
            "annotations": rnd(2, 5, 12),
            "summary": rnd(2, 12, seed=1),
            "mask": bmask(2, 1, 5),
        },
        {
            **GRU_KINDS,
            "target_in": Ids(14),
            "annotations": FLOAT,
            "summary": FLOAT,
            "mask": MASK,
        },
        SAME,
        init={k: v for k, v in GRU_INIT.items() if k != "attention"},
        method="decode",
    ),
    E(
        "tasks.translation.TransformerTranslator",
        translation.TransformerTranslator,
        lambda: {
            "d_model": 8,
            "num_heads": 2,
            "num_layers": 1,
            "d_ff": 16,
            **source_args(),
            "target_in": ids(2, 4, high=14),
        },
        {**TT_KINDS, **SOURCE, "target_in": Ids(14)},
        SAME,
        init=TT_INIT,
    ),
    E(
        "tasks.translation.TransformerTranslator",
        translation.TransformerTranslator,
        lambda: {
            "d_model": 8,
            "num_heads": 2,
            "num_layers": 1,
            "d_ff": 16,
            **source_args(),
        },
        {**TT_KINDS, **SOURCE},
        SAME,
        init=TT_INIT,
        method="encode",
    ),
    E(
        "tasks.translation.TransformerTranslator",
        translation.TransformerTranslator,
        lambda: {
            "d_model": 8,
            "num_heads": 2,
            "num_layers": 1,
            "d_ff": 16,
            "target_in": ids(2, 4, high=14),
            "memory": rnd(2, 5, 8),
            "mask": bmask(2, 1, 1, 5),
        },
        {**TT_KINDS, "target_in": Ids(14), "memory": FLOAT, "mask": MASK},
        SAME,
        init=TT_INIT,
        method="decode",
    ),
    *[
        E(
            "tasks.translation.greedy_decode",
            translation.greedy_decode,
            lambda model=model: {"model": model(), **source_args(), "steps": 3},
            {**SOURCE, "steps": SIZE},
            SAME,
            tag=model.__name__,
        )
        for model in (gru, transformer_translator)
    ],
    E(
        "tasks.translation.sequence_loss",
        translation.sequence_loss,
        lambda: {"model": gru(), "pairs": [("23/09/1999", "1999-09-23")]},
        {"pairs": TEXTS},
        SAME,
    ),
    E(
        "tasks.translation.exact_match",
        translation.exact_match,
        lambda: {"predictions": ["a", "b"], "references": ["a", "c"]},
        {"predictions": TEXTS, "references": TEXTS},
        fn(
            lambda predictions, references: (
                torch.tensor([1.0, 0.0])
                if predictions == ["a", "b"] and references == ["a", "c"]
                else None
            )
        ),
    ),
    E(
        "tasks.vision.digits_split",
        vision.digits_split,
        lambda: {"test_size": 0.2, "seed": 0},
        {"test_size": FRACTION, "seed": SEED},
        prop=prop_digits,
    ),
    E(
        "tasks.vision.patchify",
        vision.patchify,
        lambda: {"images": rnd(2, 4, 6), "patch_size": 2},
        {"images": FLOAT, "patch_size": SIZE},
        fn(ref_patchify),
    ),
    *[
        E(
            "tasks.vision.VisionTransformer",
            vision.VisionTransformer,
            lambda position=position, attend=attend: vit_args(
                position, return_attention=attend
            ),
            {
                "image_size": SIZE,
                "patch_size": SIZE,
                "num_classes": SIZE,
                "d_model": SIZE,
                "position": CHOICE,
                "images": FLOAT,
            },
            SAME,
            init=VIT_INIT,
            tag=f"{position}{', attention' if attend else ''}",
        )
        for position, attend in (
            ("learned", True),
            ("sinusoidal_2d", False),
            ("none", False),
        )
    ],
    E(
        "tasks.vision.VisionTransformer",
        vision.VisionTransformer,
        lambda: vit_args("sinusoidal_2d"),
        {"images": FLOAT},
        SAME,
        init=VIT_INIT,
        method="embed",
    ),
    E(
        "tasks.vision.class_token_attention",
        vision.class_token_attention,
        lambda: {"weights": rnd(2, 2, 5, 5).softmax(-1), "grid": 2},
        {"weights": FLOAT, "grid": SIZE},
        fn(lambda weights, grid: weights[:, :, 0, 1:].mean(1).reshape(-1, grid, grid)),
    ),
    E(
        "tasks.vision.MLPClassifier",
        vision.MLPClassifier,
        lambda: {
            "in_features": 16,
            "hidden_sizes": (5,),
            "num_classes": 3,
            "images": rnd(2, 4, 4),
        },
        {"in_features": SIZE, "num_classes": SIZE, "images": FLOAT},
        SAME,
        init={n: n for n in ("in_features", "hidden_sizes", "num_classes")},
    ),
    E(
        "tasks.vision.CNNClassifier",
        vision.CNNClassifier,
        lambda: {
            "image_size": 4,
            "channels": 1,
            "widths": (2, 3),
            "num_classes": 3,
            "images": rnd(2, 4, 4),
        },
        {"image_size": SIZE, "channels": SIZE, "num_classes": SIZE, "images": FLOAT},
        SAME,
        init={n: n for n in ("image_size", "channels", "widths", "num_classes")},
    ),
    E(
        "tasks.vision.occlusion_effect",
        vision.occlusion_effect,
        lambda: {
            "model": mlp(),
            "images": rnd(2, 4, 4),
            "labels": torch.tensor([1, 0]),
            "patch_size": 2,
        },
        {"images": FLOAT, "labels": Ids(3), "patch_size": SIZE},
        SAME,
    ),
    E(
        "tasks.recommendation.SessionProcess",
        recommendation.SessionProcess,
        lambda: {**PROCESS, "num_users": 2, "length": 5, "seed": 0},
        {
            "num_items": SIZE,
            "num_genres": SIZE,
            "series_length": SIZE,
            "num_trending": SIZE,
            "num_users": SIZE,
            "length": SIZE,
            "seed": SEED,
        },
        prop=prop_sessions,
        init=PROCESS_INIT,
        method="sample",
    ),
    E(
        "tasks.recommendation.SessionProcess",
        recommendation.SessionProcess,
        lambda: {
            **PROCESS,
            "trending_rate": 0.15,
            "histories": ids(2, 5, high=28),
            "genres": torch.tensor([0, 1]),
        },
        {"trending_rate": FRACTION, "histories": Ids(28), "genres": Ids(2)},
        prop=prop_distribution,
        init={**PROCESS_INIT, "trending_rate": "trending_rate"},
        method="next_item_probabilities",
    ),
    E(
        "tasks.recommendation.SessionProcess",
        recommendation.SessionProcess,
        lambda: {**PROCESS, "item": 9},
        {"item": NONNEG},
        # item 9 = 4 trending + (genre 0 * 3 series + series 1) * 4 + episode 1
        fn(lambda item: ("episode", 0, 1, 1) if item == 9 else None),
        init=PROCESS_INIT,
        method="describe",
    ),
    E(
        "tasks.recommendation.SessionProcess",
        recommendation.SessionProcess,
        lambda: {**PROCESS, "genre": 1, "series": 2},
        {"genre": NONNEG, "series": NONNEG},
        fn(lambda genre, series: 4 + (genre * 3 + series) * 4),
        init=PROCESS_INIT,
        method="first_episode",
    ),
    E(
        "tasks.recommendation.SessionProcess",
        recommendation.SessionProcess,
        lambda: {**PROCESS, "zipf_exponent": 1.0},
        {"zipf_exponent": REAL},
        lambda process, **kw: (
            (1 / torch.arange(1, 5, dtype=torch.float64) ** process.zipf_exponent)
            / (
                1 / torch.arange(1, 5, dtype=torch.float64) ** process.zipf_exponent
            ).sum()
        ),
        init={**PROCESS_INIT, "zipf_exponent": "zipf_exponent"},
        method="trending_probabilities",
    ),
    *[
        E(
            "tasks.recommendation.SASRec",
            recommendation.SASRec,
            lambda: {
                "num_items": 10,
                "d_model": 8,
                "num_heads": 2,
                "num_layers": 1,
                "max_len": 6,
                "items": ids(2, 4, high=10),
            },
            {
                "num_items": SIZE,
                "d_model": SIZE,
                "num_heads": SIZE,
                "max_len": SIZE,
                "items": Ids(10),
            },
            SAME,
            init=SASREC_INIT,
            method=method,
        )
        for method in ("forward", "attention")
    ],
    E(
        "tasks.recommendation.next_item_loss",
        recommendation.next_item_loss,
        lambda: {"model": sasrec(), "sessions": ids(2, 5, high=10)},
        {"sessions": Ids(10)},
        SAME,
    ),
    E(
        "tasks.recommendation.popularity_scores",
        recommendation.popularity_scores,
        lambda: {"sessions": ids(2, 5, high=6), "num_items": 6},
        {"sessions": Ids(6), "num_items": SIZE},
        fn(
            lambda sessions, num_items: torch.bincount(
                sessions.flatten().long(), minlength=num_items
            ).double()
        ),
    ),
    E(
        "tasks.recommendation.markov_scores",
        recommendation.markov_scores,
        lambda: {
            "train": ids(3, 5, high=6),
            "histories": ids(2, 3, high=6, seed=1),
            "num_items": 6,
        },
        {"train": Ids(6), "histories": Ids(6), "num_items": SIZE},
        fn(ref_markov),
    ),
    *[
        E(
            f"tasks.recommendation.{metric.__name__}",
            metric,
            lambda: {
                "scores": rnd(3, 6).round(decimals=1),
                "target": torch.tensor([0, 5, 2]),
                "k": 2,
                "reduction": "mean",
            },
            {"scores": SCORES, "target": Ids(6), "k": SIZE, "reduction": CHOICE},
            ref_rank_metric(gain),
        )
        for metric, gain in (
            (recommendation.hit_rate_at_k, lambda r: 1.0),
            (recommendation.ndcg_at_k, lambda r: 1 / math.log2(r + 2)),
        )
    ],
]


# Entries: attention dropout (a probability in [0, 1); 0.0 in the valid call, so
# the results are deterministic; the random draws are tested in test_attention.py
# and test_models.py against PyTorch)

ENTRIES += [
    number_check("check_dropout", FRACTION, 0.5),
    E(
        "attention.scaled_dot_product_attention",
        attention.scaled_dot_product_attention,
        lambda: {**sdpa_args(), "dropout": 0.0},
        {"dropout": FRACTION},
        fn(lambda dropout, **kw: ref_attention(**kw)),
        tag="dropout",
    ),
    E(
        "attention.MultiHeadAttention",
        attention.MultiHeadAttention,
        lambda: mha_args(dropout=0.0),
        {"dropout": FRACTION},
        ref_mha,
        init={**MHA_INIT, "dropout": "dropout"},
        tag="dropout",
    ),
    E(
        "models.TransformerBlock",
        models.TransformerBlock,
        lambda: block_args(dropout=0.0),
        {"dropout": FRACTION},
        SAME,
        init={**BLOCK_INIT, "dropout": "dropout"},
        tag="dropout",
    ),
    E(
        "models.TransformerEncoder",
        models.TransformerEncoder,
        lambda: encoder_args(position="sinusoidal", causal=False, dropout=0.0),
        {"dropout": FRACTION},
        SAME,
        init={**ENCODER_INIT, "dropout": "dropout"},
        tag="dropout",
    ),
]

# Entries: RoPE in full (the cos/sin cache, a key-value cache offset, partial
# rotary, 2-D patches), against the complex form of Su et al. (section 3.2)


def ref_rope_options(
    x, positions=None, base=10000.0, offset=0, rotary_dim=None, cache=None
):
    """RoPE as complex multiplication on the first ``rotary_dim`` dimensions (the
    others passed through, as GPT-NeoX does), positions shifted by ``offset``; with
    a cache, the unit complex numbers ``cos + i sin`` read from its rows."""
    seq, d = x.shape[-2], x.shape[-1]
    r = d if rotary_dim is None else rotary_dim
    p = (torch.arange(seq) if positions is None else positions).double() + offset
    if cache is None:
        theta = base ** (-torch.arange(0, r, 2, dtype=torch.float64) / r)
        phase = torch.polar(torch.ones(seq, r // 2).double(), p[:, None] * theta)
    else:
        cos, sin = cache.double()[:, p.long()]
        phase = torch.complex(cos, sin)
    head = x.double()[..., :r].reshape(*x.shape[:-1], r // 2, 2).contiguous()
    rotated = torch.view_as_real(torch.view_as_complex(head) * phase)
    return torch.cat([rotated.reshape(*x.shape[:-1], r), x.double()[..., r:]], -1)


def ref_rope_cache(max_len, dim, base=10000.0, device=None, dtype=None):
    """cos and sin of p / base^(2i/dim), with the math module."""
    return torch.tensor(
        [
            [
                [f(p / base ** (2 * i / dim)) for i in range(dim // 2)]
                for p in range(max_len)
            ]
            for f in (math.cos, math.sin)
        ],
        dtype=torch.float64,
    )


def ref_rope_2d(x, height, width, base=10000.0):
    """Row positions on the first half, column positions on the second."""
    half = x.shape[-1] // 2
    rows = torch.arange(height).repeat_interleave(width)
    columns = torch.arange(width).repeat(height)
    return torch.cat(
        [ref_rope(x[..., :half], rows, base), ref_rope(x[..., half:], columns, base)],
        -1,
    )


ENTRIES += [
    E(
        "positional.apply_rope",
        positional.apply_rope,
        lambda: {"x": rnd(2, 3, 8), "base": 100.0, "offset": 5, "rotary_dim": 4},
        {"x": FLOAT, "base": BASE, "offset": NONNEG, "rotary_dim": SIZE},
        fn(ref_rope_options),
        tag="offset, partial rotary",
    ),
    E(
        "positional.apply_rope",
        positional.apply_rope,
        lambda: {
            "x": rnd(2, 3, 8),
            "positions": torch.tensor([4, 0, 9]),
            "offset": 2,
            "cache": positional.rope_cache(12, 8, base=100.0),
        },
        {"x": FLOAT, "positions": Ids(10), "offset": NONNEG, "cache": FLOAT},
        fn(ref_rope_options),
        tag="cos/sin cache",
    ),
    E(
        "positional.apply_rope",
        positional.apply_rope,
        lambda: {
            "x": rnd(2, 3, 8),
            "rotary_dim": 4,
            "cache": positional.rope_cache(5, 4),
        },
        {"rotary_dim": SIZE, "cache": FLOAT},
        fn(ref_rope_options),
        tag="cache, partial rotary",
    ),
    E(
        "positional.rope_cache",
        positional.rope_cache,
        lambda: {"max_len": 5, "dim": 6, "base": 100.0, "dtype": torch.float32},
        {"max_len": SIZE, "dim": SIZE, "base": BASE, "dtype": DTYPE},
        fn(ref_rope_cache),
    ),
    E(
        "positional.apply_rope_2d",
        positional.apply_rope_2d,
        lambda: {"x": rnd(2, 6, 8), "height": 2, "width": 3, "base": 100.0},
        {"x": FLOAT, "height": SIZE, "width": SIZE, "base": BASE},
        fn(ref_rope_2d),
    ),
    check(
        "check_rope_options",
        lambda: {
            "x": rnd(2, 3, 8),
            "positions": None,
            "offset": 1,
            "rotary_dim": 4,
            "cache": positional.rope_cache(10, 4),
        },
        {"offset": NONNEG, "rotary_dim": SIZE, "cache": FLOAT},
        reference=fn(lambda rotary_dim, **kw: rotary_dim),
    ),
    check(
        "check_rope_2d_inputs",
        lambda: {"x": rnd(2, 6, 8), "height": 2, "width": 3, "base": 10.0},
        {"x": FLOAT, "height": SIZE, "width": SIZE, "base": BASE},
    ),
    check(
        "check_model_images",
        lambda: {
            "images": rnd(2, 8, 8),
            "weight": rnd(4, 4),
            "channels": 1,
            "image_size": 8,
        },
        {"images": FLOAT},
    ),
    check(
        "check_bootstrap",
        lambda: {"scores": rnd(3, 5), "draws": 10, "level": 0.95, "seed": 0},
        {"scores": FLOAT, "draws": SIZE, "level": FRACTION, "seed": SEED},
    ),
    check(
        "check_chunked_options",
        lambda: {"chunk_size": 4, "causal": True, "window": 2},
        {"chunk_size": SIZE, "window": NONNEG},
    ),
    check(
        "check_traffic_inputs",
        lambda: {**{k: t[0, 0] for k, t in qkv(5, 7).items()}, "sram_size": 32},
        {**QKV, "sram_size": SIZE},
    ),
    check(
        "check_timing_options",
        lambda: {"repeats": 2, "cpu": True},
        {"repeats": SIZE},
    ),
]

# Tests ----------------------------------------------------------------------------


def test_the_table_covers_every_public_function_and_class():
    public = set().union(*(public_names(m) for m in MODULES))
    covered = {entry.covers for entry in ENTRIES}
    assert public - covered == set(), "public names without sweep entries"
    assert covered - public == set(), "entries for names that are not public"


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.label)
def test_bad_inputs(entry):
    failures = []
    for variant in entry.variants():
        why = run_variant(entry, variant)
        if why is not None:
            failures.append(f"{entry.label} | {variant.label}: {why}")
    assert not failures, "\n" + "\n".join(failures)


def test_the_sweep_size():
    entries = len(ENTRIES)
    inputs = sum(len(entry.variants()) for entry in ENTRIES)
    names = len({entry.covers for entry in ENTRIES})
    print(f"bad-input sweep: {inputs} inputs, {entries} entries, {names} names")
    assert inputs >= 6000 and entries >= 185  # a shrinking table must be deliberate


# Half precision against PyTorch's own kernels -------------------------------------

EQUAL = torch.zeros(65520, dtype=torch.float16)  # 65,520 terms of 1 overflow a sum


@pytest.mark.parametrize(
    "function",
    [softmax.softmax, lambda x: softmax.online_softmax(x, 4096), softmax.sparsemax],
    ids=["softmax", "online_softmax", "sparsemax"],
)
@pytest.mark.parametrize("shift", [0.0, 60000.0])
def test_a_long_float16_row_of_equal_scores_is_uniform(function, shift):
    x = EQUAL + shift
    expected = torch.softmax(x, dim=-1)  # PyTorch's float16 kernel: 1/65520 each
    assert float(expected[0]) == pytest.approx(1 / 65520, rel=1e-3)
    p = function(x)
    assert p.dtype == torch.float16
    assert torch.equal(p, expected)


def test_float16_log_softmax_and_entmax15_match_pytorch_and_sum_to_one():
    x = torch.cat([EQUAL, 3 * rnd(1000).half()])
    assert torch.allclose(
        softmax.log_softmax(x).float(), torch.log_softmax(x, -1).float(), atol=1e-3
    )
    assert torch.allclose(
        softmax.logsumexp(x).float(), torch.logsumexp(x.float(), -1), atol=1e-2
    )
    for row in (EQUAL, x, 3 * rnd(4, 300).half()):
        p = softmax.entmax15(row)
        assert p.dtype == torch.float16 and bool(torch.isfinite(p).all())
        total = p.float().sum(-1)
        assert torch.allclose(total, torch.ones_like(total), atol=2e-3)
        reference = entmax.entmax15(row.double(), dim=-1)
        assert torch.allclose(p.double(), reference, atol=1e-3)


def large_scores(dtype):
    """Queries and keys whose scores q . k / sqrt(d) reach ~1e5, beyond float16's
    largest number (65,504): the kernels must not form them in float16."""
    q = (300 * rnd(2, 2, 5, 8)).to(dtype)
    k = (300 * rnd(2, 2, 7, 8, seed=1)).to(dtype)
    v = rnd(2, 2, 7, 4, seed=2).to(dtype)
    return q, k, v, bmask(5, 7)


@pytest.mark.parametrize("dtype", HALF)
def test_half_precision_attention_with_large_scores_matches_pytorch(dtype):
    q, k, v, mask = large_scores(dtype)
    scores = q.double() @ k.double().mT / math.sqrt(8)
    assert float(scores.abs().max()) > 65504
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    tol = TOLERANCE[dtype]
    out, weights = attention.scaled_dot_product_attention(q, k, v, mask)
    assert out.dtype == weights.dtype == dtype
    fused = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    for got in (out, fused):
        assert bool(torch.isfinite(got).all())
        assert torch.allclose(got.float(), expected.float(), rtol=tol[0], atol=tol[1])
    chunked = attention.chunked_attention(q, k, v, chunk_size=3, mask=mask)
    assert torch.allclose(chunked.float(), expected.float(), rtol=tol[0], atol=tol[1])


@pytest.mark.parametrize("dtype", HALF)
def test_half_precision_multi_head_attention_with_large_scores_matches_pytorch(dtype):
    torch.default_generator.manual_seed(0)
    mha = attention.MultiHeadAttention(16, 2).to(dtype)
    with torch.no_grad():  # large projections: per-head scores beyond 65,504
        mha.q_proj.weight.mul_(250)
        mha.k_proj.weight.mul_(250)
    x = rnd(2, 6, 16).to(dtype)
    mask = bmask(6, 6)
    manual, _ = mha(x, x, x, mask)
    fused, _ = mha(x, x, x, mask, need_weights=False)
    m64 = copy.deepcopy(mha).double()
    reference, weights = ref_mha(m64, x.double(), x.double(), x.double(), mask)
    q = m64.split_heads(m64.q_proj(x.double()))
    k = m64.split_heads(m64.k_proj(x.double()))
    reference = reference.detach()
    assert float((q @ k.mT).abs().max().detach()) / math.sqrt(8) > 65504
    rtol, atol = TOLERANCE[dtype]
    scale = float(reference.abs().max())
    for got in (manual, fused):
        assert got.dtype == dtype and bool(torch.isfinite(got).all())
        assert torch.allclose(got.double(), reference, rtol=rtol, atol=atol * scale)


def test_float16_linear_attention_is_finite_and_close_to_float32():
    q, k, v = (3 * rnd(1, 1024, 64, seed=s) for s in range(3))
    for causal in (False, True):
        full = variants.linear_attention(q, k, v, causal=causal)
        half = variants.linear_attention(q.half(), k.half(), v.half(), causal=causal)
        assert half.dtype == torch.float16 and bool(torch.isfinite(half).all())
        assert torch.allclose(half.float(), full, rtol=1e-2, atol=1e-2)


def test_softmax_jacobian_accepts_companions_own_bfloat16_softmax():
    for n in (2, 7, 300, 1000):
        p = softmax.softmax(3 * rnd(3, n).bfloat16())
        jac = softmax.softmax_jacobian(p)
        assert jac.shape == (3, n, n) and bool(torch.isfinite(jac).all())
        assert torch.allclose(jac.float().sum(-1), torch.zeros(3, n), atol=1e-2)
