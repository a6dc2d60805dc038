"""Small Transformers assembled from the course's parts (Part 5 onwards).

`TransformerBlock` is a pre-norm encoder (or, with ``causal``, decoder-only)
block; `TransformerEncoder` adds token embeddings and a positional scheme chosen
by one argument; `TransformerClassifier` and `TransformerLanguageModel` put a
head on top.
"""

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from companion.attention import MultiHeadAttention, causal_mask, padding_mask
from companion.positional import (
    LearnedPositionalEmbedding,
    RelativePositionBias,
    alibi_bias,
    sinusoidal_encoding,
)
from companion.validation import (
    check_float_tensor,
    check_mask,
    check_positive_int,
    check_token_ids,
)

#: Where position enters: nowhere, the input (sinusoidal, learned), the attention
#: logits (alibi, t5) or the queries and keys (rope).
POSITIONS = ("none", "sinusoidal", "learned", "rope", "alibi", "t5")


def _check_position(position: str) -> None:
    if position not in POSITIONS:
        raise ValueError(f"position must be one of {POSITIONS}, got {position!r}")


class TransformerBlock(nn.Module):
    """A pre-norm Transformer block: ``x + Attention(LN(x))``, then ``x + FFN(LN(x))``.

    The sublayers are those of Vaswani et al. (2017, section 3): multi-head
    self-attention and a position-wise feed-forward network
    ``W_2 relu(W_1 x + b_1) + b_2``, each with a residual connection; the layer
    normalisation comes first ("pre-norm", as ``nn.TransformerEncoderLayer`` with
    ``norm_first=True``). The block handles the positional schemes that act
    inside attention: ``rope`` rotates queries and keys, ``alibi`` and ``t5`` add
    a bias to the logits (here each block has its own T5 table; T5 shares one
    across layers). ``sinusoidal`` and ``learned`` act on the input, in
    `TransformerEncoder` (Part 5, chapter 1). The attribute ``rope_scale``
    (default 1) multiplies RoPE's positions: position interpolation (Part 5,
    chapter 3).
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        d_ff: int,
        position: str = "none",
        causal: bool = False,
    ):
        super().__init__()
        _check_position(position)
        check_positive_int(d_ff, "d_ff")
        self.position, self.causal = position, causal
        self.rope_scale = 1.0
        self.norm1 = nn.LayerNorm(d_model)
        self.attention = MultiHeadAttention(d_model, num_heads)
        self.norm2 = nn.LayerNorm(d_model)
        self.linear1 = nn.Linear(d_model, d_ff)
        self.linear2 = nn.Linear(d_ff, d_model)
        self.t5_bias = (
            RelativePositionBias(num_heads, bidirectional=not causal)
            if position == "t5"
            else None
        )

    def position_bias(self, seq: int) -> Tensor | None:
        """This block's additive logit bias, (heads, seq, seq), or None."""
        if self.position == "alibi":
            return alibi_bias(self.attention.num_heads, seq, seq)
        if self.position == "t5":
            return self.t5_bias(seq, seq)
        return None

    def forward(self, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Return ``(output, attention weights)`` for ``x`` of shape (batch, seq,
        d_model); ``mask`` (True = may attend) is combined with the causal mask."""
        check_float_tensor(x, "x")
        if x.dim() != 3 or x.shape[-1] != self.norm1.normalized_shape[0]:
            raise ValueError(
                f"x must have shape (batch, seq, {self.norm1.normalized_shape[0]}), "
                f"got {tuple(x.shape)}"
            )
        seq = x.shape[1]
        if mask is not None:
            check_mask(mask, (x.shape[0], self.attention.num_heads, seq, seq))
        if self.causal:
            causal = causal_mask(seq).to(x.device)
            mask = causal if mask is None else mask & causal
        bias = self.position_bias(seq)
        h = self.norm1(x)
        attended, weights = self.attention(
            h,
            h,
            h,
            mask=mask,
            bias=None if bias is None else bias.to(device=x.device, dtype=x.dtype),
            rope=self.position == "rope",
            rope_scale=self.rope_scale,
        )
        x = x + attended
        x = x + self.linear2(F.relu(self.linear1(self.norm2(x))))
        return x, weights


class TransformerEncoder(nn.Module):
    """Token embeddings (scaled by ``sqrt(d_model)``, Vaswani et al., section 3.4),
    the positional scheme ``position``, a stack of `TransformerBlock` and a final
    layer normalisation, which a pre-norm stack needs because its residual stream
    is never normalised otherwise (Part 5). ``max_len`` is the size of the learned
    position table (``position="learned"`` only)."""

    def __init__(
        self,
        vocab_size: int,
        d_model: int = 64,
        num_heads: int = 4,
        num_layers: int = 2,
        d_ff: int = 128,
        position: str = "sinusoidal",
        max_len: int = 512,
        causal: bool = False,
    ):
        super().__init__()
        _check_position(position)
        for name, value in (
            ("vocab_size", vocab_size),
            ("num_layers", num_layers),
            ("max_len", max_len),
        ):
            check_positive_int(value, name)
        self.vocab_size, self.position, self.d_model = vocab_size, position, d_model
        self.embedding = nn.Embedding(vocab_size, d_model)
        # standard deviation d^-1/2, so that after the sqrt(d) scaling the entries
        # have unit variance, like the sinusoids' (as in fairseq's Transformer)
        nn.init.normal_(self.embedding.weight, std=d_model**-0.5)
        self.learned = (
            LearnedPositionalEmbedding(max_len, d_model)
            if position == "learned"
            else None
        )
        self.blocks = nn.ModuleList(
            TransformerBlock(d_model, num_heads, d_ff, position, causal)
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(d_model)

    def forward(
        self, tokens: Tensor, mask: Tensor | None = None
    ) -> tuple[Tensor, list[Tensor]]:
        """Return ``(hidden states, attention weights of every layer)`` for integer
        ``tokens`` of shape (batch, seq)."""
        check_token_ids(tokens, self.vocab_size)
        x = self.embedding(tokens) * math.sqrt(self.d_model)
        seq = tokens.shape[1]
        if self.position == "sinusoidal":
            x = x + sinusoidal_encoding(seq, self.d_model).to(x.device, x.dtype)
        elif self.position == "learned":
            x = x + self.learned(seq)
        weights = []
        for block in self.blocks:
            x, w = block(x, mask)
            weights.append(w)
        return self.norm(x), weights


class TransformerClassifier(nn.Module):
    """A `TransformerEncoder` whose token states are averaged and mapped to class
    logits (Part 5, chapter 2; Part 6)."""

    def __init__(self, vocab_size: int, num_classes: int, **encoder_options):
        super().__init__()
        check_positive_int(num_classes, "num_classes")
        self.encoder = TransformerEncoder(vocab_size, **encoder_options)
        self.head = nn.Linear(self.encoder.d_model, num_classes)

    def forward(self, tokens: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Class logits of shape (batch, num_classes).

        With ``lengths`` (batch,), sequence ``b`` is its first ``lengths[b]``
        tokens followed by padding: attention never looks at the padding and the
        average runs over the real tokens only, so the padding cannot change the
        answer."""
        if lengths is None:
            hidden, _ = self.encoder(tokens)
            return self.head(hidden.mean(dim=1))
        if not isinstance(tokens, Tensor) or tokens.dim() != 2:
            raise ValueError("tokens must be a tensor of shape (batch, seq)")
        lengths = torch.as_tensor(lengths, device=tokens.device)
        if lengths.shape != tokens.shape[:1] or (lengths < 1).any():
            raise ValueError(
                f"lengths must have shape ({tokens.shape[0]},) with every entry >= 1, "
                f"got {lengths.tolist()}"
            )
        keep = padding_mask(lengths, tokens.shape[1])
        hidden, _ = self.encoder(tokens, keep)
        real = keep[:, 0, 0, :, None].to(hidden.dtype)
        return self.head((hidden * real).sum(dim=1) / real.sum(dim=1))


class TransformerLanguageModel(nn.Module):
    """A causal `TransformerEncoder` with a linear head predicting the next token at
    every position (Part 5, chapter 3)."""

    def __init__(self, vocab_size: int, **encoder_options):
        super().__init__()
        if "causal" in encoder_options:
            raise ValueError("a language model is always causal; do not pass causal")
        self.encoder = TransformerEncoder(vocab_size, causal=True, **encoder_options)
        self.head = nn.Linear(self.encoder.d_model, vocab_size)

    def forward(self, tokens: Tensor) -> Tensor:
        """Next-token logits of shape (batch, seq, vocab_size)."""
        hidden, _ = self.encoder(tokens)
        return self.head(hidden)
