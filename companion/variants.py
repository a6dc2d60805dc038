"""Variants of attention: local and sparse patterns, linear attention, attention on
graphs and on images (Part 2, chapter 4).

Each variant keeps the idea of chapter 1 (weights over keys, then a weighted
average of values) and changes which keys a query sees, or how the weights are
computed, to save time and memory or to fit another kind of data.
"""

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from companion.attention import masked_softmax, scaled_dot_product_attention
from companion.softmax import accumulation_dtype
from companion.validation import (
    check_finite,
    check_float_tensor,
    check_module_input,
    check_nonnegative_int,
    check_normaliser,
    check_positive_int,
    check_qkv,
    check_self_attention,
    check_sizes,
)


def local_mask(
    n: int, window: int, causal: bool = False, device: torch.device | str | None = None
) -> Tensor:
    """Boolean ``(n, n)`` mask of a sliding window: query ``i`` may attend to key
    ``j`` iff ``|i - j| <= window`` (and ``j <= i`` when ``causal``).

    The "local" or "restricted" pattern of Luong et al. (2015) and Vaswani et al.
    (2017, table 1); True = may attend. Made on ``device``.
    """
    check_positive_int(n, "n")
    check_nonnegative_int(window, "window")
    position = torch.arange(n, device=device)
    offset = position[:, None] - position[None, :]  # i - j
    keep = offset.abs() <= window
    return keep & (offset >= 0) if causal else keep


def strided_mask(
    n: int, stride: int, device: torch.device | str | None = None
) -> Tensor:
    """Boolean ``(n, n)`` causal mask of the strided pattern of Child et al. (2019):
    query ``i`` may attend to key ``j <= i`` iff ``(i - j) % stride == 0``.

    Combined (logical or) with ``local_mask(n, stride - 1, causal=True)``, every
    key can reach every later query in two steps. True = may attend. Made on
    ``device``.
    """
    check_sizes(n=n, stride=stride)
    position = torch.arange(n, device=device)
    offset = position[:, None] - position[None, :]  # i - j
    return (offset >= 0) & (offset % stride == 0)


def sliding_window_attention(q: Tensor, k: Tensor, v: Tensor, window: int) -> Tensor:
    """Attention restricted to keys ``|i - j| <= window``, computed on the band only.

    Equal to ``scaled_dot_product_attention`` with ``local_mask(n, window)``, but it
    gathers the ``2 * window + 1`` neighbours of each query instead of scoring all
    ``n`` keys: ``O(n * window * d)`` time and memory instead of ``O(n^2)``
    (Part 2, chapter 4). Self-attention only: ``q``, ``k``, ``v`` share the length.

    Shapes: ``q``, ``k`` (..., n, d_k), ``v`` (..., n, d_v); the result is
    (..., n, d_v).
    """
    check_self_attention(q, k, v)
    check_nonnegative_int(window, "window")
    n, dtype, wide = q.shape[-2], q.dtype, accumulation_dtype(q.dtype)
    q, k, v = q.to(wide), k.to(wide), v.to(wide)  # half: scores and sums in float32
    window = min(window, n - 1)  # a wider window sees nothing more
    width = 2 * window + 1
    # Pad the sequence axis so that every query has `width` neighbours (one copy),
    # then view the neighbours of query i as row i (a strided view, no copy).
    k_band = F.pad(k, (0, 0, window, window)).unfold(-2, width, 1).transpose(-2, -1)
    v_band = F.pad(v, (0, 0, window, window)).unfold(-2, width, 1).transpose(-2, -1)
    # k_band: (..., n, width, d_k), v_band: (..., n, width, d_v)
    scores = (q.unsqueeze(-2) @ k_band.transpose(-2, -1)).squeeze(-2) / math.sqrt(
        q.shape[-1]
    )
    offsets = torch.arange(width, device=q.device) - window
    position = torch.arange(n, device=q.device)[:, None] + offsets[None, :]
    inside = (position >= 0) & (position < n)  # padded neighbours do not exist
    weights = masked_softmax(scores, inside)
    return (weights.unsqueeze(-2) @ v_band).squeeze(-2).to(dtype)


def elu_feature_map(x: Tensor) -> Tensor:
    """The feature map ``phi(x) = elu(x) + 1`` of Katharopoulos et al. (2020): positive,
    so that the linear-attention weights are non-negative.

    Computed as ``x + 1`` for ``x > 0`` and ``exp(x)`` otherwise, which is the same
    function without the rounding of ``(exp(x) - 1) + 1`` to zero for very negative
    ``x``.
    """
    check_float_tensor(x, "x")
    check_finite(x, "x")
    return torch.where(x > 0, x + 1, torch.exp(torch.clamp(x, max=0)))


def linear_attention(q: Tensor, k: Tensor, v: Tensor, causal: bool = False) -> Tensor:
    """Linear attention: softmax similarity replaced by ``phi(q)^T phi(k)``.

    Equation (Katharopoulos et al., 2020, eq. 5):
    ``out_i = phi(q_i)^T (sum_j phi(k_j) v_j^T) / (phi(q_i)^T sum_j phi(k_j))``.
    The two sums are computed once and shared by all queries, so time and memory
    grow linearly with the length ``n`` (``O(n d_k d_v)`` time). With ``causal``
    the sums run over ``j <= i``; this implementation stores all ``n`` running
    sums, ``n * d_k * d_v`` numbers, where a token-by-token recurrence would keep
    only the latest (Part 2, chapter 4, exercise). ``phi`` is `elu_feature_map`.
    Dividing ``phi(q_i)`` by a constant per query, and every ``phi(k_j)`` by one
    constant, leaves the ratio unchanged; as ``phi(x) = exp(x)`` for ``x <= 0``,
    subtracting the largest entry when it is negative does that, so very negative
    inputs do not underflow to ``0 / 0``.

    Shapes: ``q`` (..., m, d_k), ``k`` (..., n, d_k), ``v`` (..., n, d_v); the result
    is (..., m, d_v). ``causal`` needs ``m == n``. Half-precision inputs are
    summed in float32 (the sums over ``n`` keys overflow float16).
    """
    check_self_attention(q, k, v) if causal else check_qkv(q, k, v)
    wide = accumulation_dtype(q.dtype)
    q_, k_, v_ = q.to(wide), k.to(wide), v.to(wide)  # shifted by their largest
    phi_q = elu_feature_map(q_ - q_.amax(dim=-1, keepdim=True).clamp(max=0))
    phi_k = elu_feature_map(k_ - k_.amax(dim=(-2, -1), keepdim=True).clamp(max=0))
    if not causal:
        kv = phi_k.transpose(-2, -1) @ v_  # (..., d_k, d_v)
        normaliser = phi_q @ phi_k.sum(dim=-2, keepdim=True).transpose(-2, -1)
    else:  # running sums over j <= i of phi(k_j) v_j^T: (..., n, d_k, d_v)
        kv = torch.cumsum(phi_k.unsqueeze(-1) * v_.unsqueeze(-2), dim=-3)
        phi_q = phi_q.unsqueeze(-2)  # (..., n, 1, d_k), one row per running sum
        normaliser = phi_q @ torch.cumsum(phi_k, dim=-2).unsqueeze(-1)
    check_normaliser(normaliser, "phi(q) . sum_j phi(k_j), for these q and k,")
    out = (phi_q @ kv) / normaliser
    return (out if not causal else out.squeeze(-2)).to(q.dtype)


class GraphAttentionLayer(nn.Module):
    """One graph attention layer (GAT, Velickovic et al., 2018, eqs. 1-6).

    For node features ``h`` and a shared linear map ``W``, the score of neighbour
    ``j`` for node ``i`` is ``e_ij = LeakyReLU(a^T [W h_i || W h_j])``; the weights
    are its softmax over the neighbours of ``i`` (``i`` included); the output is
    ``sum_j alpha_ij W h_j``. With ``num_heads`` heads the outputs are concatenated
    (``concat=True``, hidden layers) or averaged (output layer). The nonlinearity
    after the layer is left to the caller.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        num_heads: int = 1,
        concat: bool = True,
        negative_slope: float = 0.2,
    ):
        super().__init__()
        check_sizes(
            in_features=in_features, out_features=out_features, num_heads=num_heads
        )
        self.num_heads, self.out_features, self.concat = num_heads, out_features, concat
        self.negative_slope = negative_slope
        self.linear = nn.Linear(in_features, num_heads * out_features, bias=False)
        # Split a = [a_target; a_source]:
        # a^T [W h_i || W h_j] = a_target . W h_i + a_source . W h_j
        self.a_target = nn.Parameter(torch.empty(num_heads, out_features))
        self.a_source = nn.Parameter(torch.empty(num_heads, out_features))
        nn.init.xavier_uniform_(self.linear.weight)
        nn.init.xavier_uniform_(self.a_target)
        nn.init.xavier_uniform_(self.a_source)

    def forward(self, h: Tensor, adjacency: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``(output, weights)``.

        Shapes: ``h`` (nodes, in_features); ``adjacency`` boolean (nodes, nodes),
        True where ``j`` is a neighbour of ``i`` (self-loops are added here).
        Result: output (nodes, heads * out_features) if ``concat`` else (nodes,
        out_features); weights (heads, nodes, nodes).
        """
        self.check_inputs(h, adjacency)
        nodes = h.shape[0]
        wh = self.linear(h).view(nodes, self.num_heads, self.out_features)
        wh = wh.transpose(0, 1)  # (heads, nodes, out_features)
        target = (wh * self.a_target[:, None, :]).sum(-1)  # (heads, nodes): a_t . W h_i
        source = (wh * self.a_source[:, None, :]).sum(-1)  # (heads, nodes): a_s . W h_j
        scores = F.leaky_relu(
            target[:, :, None] + source[:, None, :], self.negative_slope
        )
        neighbours = adjacency | torch.eye(nodes, dtype=torch.bool, device=h.device)
        weights = masked_softmax(scores, neighbours)
        out = weights @ wh  # (heads, nodes, out_features)
        if self.concat:
            return out.transpose(0, 1).reshape(nodes, -1), weights
        return out.mean(dim=0), weights

    def check_inputs(self, h: object, adjacency: object) -> None:
        """Raise unless ``h`` is a finite (nodes, in_features) tensor of the
        weights' dtype and ``adjacency`` a boolean (nodes, nodes) tensor."""
        check_float_tensor(h, "h")
        if h.dim() != 2 or h.shape[1] != self.linear.in_features or not len(h):
            raise ValueError(
                f"h must have shape (nodes, {self.linear.in_features}) with nodes "
                f">= 1, got {tuple(h.shape)}"
            )
        check_module_input(h, self.linear.weight, "h")
        check_finite(h, "h")
        nodes = h.shape[0]
        if not isinstance(adjacency, Tensor) or adjacency.dtype != torch.bool:
            raise ValueError("adjacency must be a boolean tensor (True = edge)")
        if adjacency.shape != (nodes, nodes):
            raise ValueError(
                f"adjacency must have shape ({nodes}, {nodes}), "
                f"got {tuple(adjacency.shape)}"
            )


class NonLocalBlock(nn.Module):
    """Non-local block, embedded-Gaussian version (Wang et al., 2018, eqs. 1, 3, 6).

    Every position of a feature map attends to every other position:
    ``y_i = sum_j softmax_j(theta(x_i)^T phi(x_j)) g(x_j)`` and ``z = W_z y + x``,
    where ``theta``, ``phi``, ``g`` and ``W_z`` are 1x1 convolutions (linear maps of
    the channels). The paper notes that this is self-attention over positions; as
    in the paper, the scores are not divided by ``sqrt(d)``.
    """

    def __init__(self, channels: int, inner_channels: int):
        super().__init__()
        check_sizes(channels=channels, inner_channels=inner_channels)
        self.theta = nn.Conv2d(channels, inner_channels, kernel_size=1)
        self.phi = nn.Conv2d(channels, inner_channels, kernel_size=1)
        self.g = nn.Conv2d(channels, inner_channels, kernel_size=1)
        self.w_z = nn.Conv2d(inner_channels, channels, kernel_size=1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``(z, weights)`` for ``x`` of shape (batch, channels, height, width);
        ``weights`` has shape (batch, height * width, height * width)."""
        self.check_inputs(x)
        batch, _, height, width = x.shape

        def positions(t: Tensor) -> Tensor:  # (batch, c, h, w) -> (batch, h * w, c)
            return t.flatten(2).transpose(1, 2)

        y, weights = scaled_dot_product_attention(
            positions(self.theta(x)),
            positions(self.phi(x)),
            positions(self.g(x)),
            scale=1.0,
        )
        y = y.transpose(1, 2).reshape(batch, -1, height, width)
        return self.w_z(y) + x, weights

    def check_inputs(self, x: object) -> None:
        """Raise unless ``x`` is a finite (batch, channels, height, width) tensor
        of the weights' dtype, with no empty axis."""
        check_float_tensor(x, "x")
        if x.dim() != 4 or x.shape[1] != self.theta.in_channels or 0 in x.shape:
            raise ValueError(
                f"x must have shape (batch, {self.theta.in_channels}, height, width), "
                f"none of them 0, got {tuple(x.shape)}"
            )
        check_module_input(x, self.theta.weight)
        check_finite(x, "x")
