"""Small Transformers assembled from the course's parts (Part 5 onwards).

`TransformerBlock` is a pre-norm encoder (or, with ``causal``, decoder-only)
block, `PostNormTransformerBlock` the post-norm block of the Transformer paper and
of BERT, and `TransformerDecoderBlock` adds cross-attention over an encoder's
states; `TransformerEncoder` adds token embeddings and a positional scheme chosen
by one argument (a name from `companion.positional.SCHEMES`);
`TransformerClassifier` and `TransformerLanguageModel` put a head on top.

Every layer computes attention with PyTorch's fused kernel unless the caller asks
for the attention weights (``need_weights=True``), which the manual formula of
`companion.attention.scaled_dot_product_attention` returns.
"""

import math
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from companion.attention import (
    MultiHeadAttention,
    causal_mask,
    padding_mask,
)
from companion.positional import (
    SCHEMES,
    LearnedPositionalEmbedding,
    RelativePositionBias,
    alibi_bias,
    rope_queries_and_keys,
    sinusoidal_encoding,
)
from companion.softmax import accumulation_dtype
from companion.validation import (
    check_choice,
    check_dropout,
    check_encoding_sizes,
    check_lengths,
    check_mask,
    check_mean_pooling_inputs,
    check_module_input,
    check_positive_number,
    check_sequence,
    check_sizes,
    check_token_ids,
)

#: The positional schemes a sequence model takes (`companion.positional.SCHEMES`
#: without the 2-D one): where position enters is nowhere, the input
#: (sinusoidal, learned), the queries and keys (rope) or the scores (alibi, t5).
POSITIONS = tuple(name for name in SCHEMES if name != "sinusoidal_2d")


class TransformerBlock(nn.Module):
    """A pre-norm Transformer block: ``x + Attention(LN(x))``, then ``x + FFN(LN(x))``.

    The sublayers are those of Vaswani et al. (2017, section 3): multi-head
    self-attention and a position-wise feed-forward network
    ``W_2 relu(W_1 x + b_1) + b_2``, each with a residual connection; the layer
    normalisation comes first ("pre-norm", as ``nn.TransformerEncoderLayer`` with
    ``norm_first=True``). The block applies the positional schemes that act
    inside attention: ``rope`` rotates queries and keys, ``alibi`` and ``t5`` add
    a bias to the scores (here each block has its own T5 table; T5 shares one
    across layers). ``sinusoidal`` and ``learned`` act on the input, in
    `TransformerEncoder` (Part 5, chapter 1).

    ``dropout`` ``p`` acts in training mode only, where Vaswani et al. (2017,
    section 5.4) apply it, on each sublayer's output before the residual
    addition, and where their reference implementations (and
    ``nn.TransformerEncoderLayer``, in the same order) also do: on the attention
    weights and on the feed-forward network's hidden layer (Part 2, chapter 3).
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        d_ff: int,
        position: str = "none",
        causal: bool = False,
        dropout: float = 0.0,
    ):
        super().__init__()
        check_choice(position, POSITIONS, "position")
        check_sizes(d_model=d_model, num_heads=num_heads, d_ff=d_ff)
        check_dropout(dropout)
        self.position, self.causal = position, causal
        self.norm1 = nn.LayerNorm(d_model)
        self.attention = MultiHeadAttention(d_model, num_heads, dropout=dropout)
        self.dropout = nn.Dropout(dropout)  # no parameters; acts in training only
        self.norm2 = nn.LayerNorm(d_model)
        self.linear1 = nn.Linear(d_model, d_ff)
        self.linear2 = nn.Linear(d_ff, d_model)
        self.activation = F.relu  # the GELU in BERT's PostNormTransformerBlock
        self.t5_bias = (
            RelativePositionBias(num_heads, bidirectional=not causal)
            if position == "t5"
            else None
        )

    def forward(
        self,
        x: Tensor,
        mask: Tensor | None = None,
        position_scale: float = 1.0,
        need_weights: bool = True,
    ) -> tuple[Tensor, Tensor | None]:
        """Return ``(output, attention weights)`` for ``x`` of shape (batch, seq,
        d_model); the weights (batch, heads, seq, seq) are None when
        ``need_weights`` is False (then attention runs in PyTorch's fused
        kernel). ``mask`` (True = may attend) is combined with the causal mask.
        ``position_scale`` multiplies RoPE's positions (position interpolation,
        Part 5, chapter 3)."""
        self.check_inputs(x, mask)
        h = self.norm1(x)
        attended, weights = self.attention(
            h,
            h,
            h,
            mask=self.full_mask(mask, x.shape[1], x.device),
            need_weights=need_weights,
            **self.position_arguments(x.shape[1], x.shape[1], x, position_scale),
        )
        x = x + self.dropout(attended)
        return x + self.dropout(self.feed_forward(self.norm2(x))), weights

    def feed_forward(self, x: Tensor) -> Tensor:
        """The position-wise network ``W_2 relu(W_1 x + b_1) + b_2`` (Vaswani et
        al., 2017, eq. 2), with dropout on the hidden layer in training."""
        return self.linear2(self.dropout(self.activation(self.linear1(x))))

    def position_arguments(
        self, q_len: int, k_len: int, like: Tensor, scale: float
    ) -> dict[str, object]:
        """What this block's positional scheme gives attention: a ``rotate`` of
        the queries and keys (rope), a ``bias`` of the scores (alibi, t5; (heads,
        q_len, k_len) on ``like``'s device and dtype), or nothing."""
        check_positive_number(scale, "position_scale")
        if self.position != "rope" and scale != 1:
            raise ValueError(
                f"position_scale applies to RoPE only, not {self.position}"
            )
        if self.position == "rope":
            return {"rotate": partial(rope_queries_and_keys, scale=scale)}
        if self.position == "alibi":
            heads = self.attention.num_heads
            return {"bias": alibi_bias(heads, q_len, k_len, like.device, like.dtype)}
        if self.position == "t5":
            return {"bias": self.t5_bias(q_len, k_len).to(like.dtype)}
        return {}

    def full_mask(self, mask: Tensor | None, seq: int, device: torch.device) -> Tensor:
        """``mask`` and, in a causal block, the causal mask, made on ``device``:
        (seq, seq) or (batch, heads, seq, seq); None when nothing is masked."""
        if not self.causal:
            return mask
        causal = causal_mask(seq, device)
        return causal if mask is None else mask & causal

    def check_inputs(self, x: object, mask: object) -> None:
        """Raise unless ``x`` is a finite (batch, seq, d_model) tensor of the
        weights' dtype and ``mask`` None or a boolean mask of its scores."""
        check_sequence(x, self.attention.d_model)
        check_module_input(x, self.linear1.weight)
        if mask is not None:
            batch, seq, _ = x.shape
            check_mask(mask, (batch, self.attention.num_heads, seq, seq))


class PostNormTransformerBlock(TransformerBlock):
    """A post-norm Transformer block: ``LN(x + Attention(x))``, then ``LN(x + FFN(x))``.

    The order of Vaswani et al. (2017, section 3.1), "LayerNorm(x + Sublayer(x))",
    and of BERT (Devlin et al., 2019), whose feed-forward network uses the GELU
    (Hendrycks & Gimpel, 2016) where the Transformer paper has the ReLU:
    ``activation`` is ``"relu"`` or ``"gelu"``; ``eps`` is the layer
    normalisation's (BERT's is 1e-12). Attention, feed-forward network and input
    checks are `TransformerBlock`'s; no positional scheme acts inside it (BERT
    adds learned positions to the input). Part 6, chapter 5.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        d_ff: int,
        activation: str = "relu",
        eps: float = 1e-5,
        dropout: float = 0.0,
    ):
        super().__init__(d_model, num_heads, d_ff, dropout=dropout)
        check_choice(activation, ACTIVATIONS, "activation")
        check_positive_number(eps, "eps")
        self.activation = ACTIVATIONS[activation]
        self.norm1.eps = self.norm2.eps = eps

    def forward(
        self, x: Tensor, mask: Tensor | None = None, need_weights: bool = True
    ) -> tuple[Tensor, Tensor | None]:
        """Return ``(output, attention weights)`` as `TransformerBlock` does."""
        self.check_inputs(x, mask)
        attended, weights = self.attention(
            x, x, x, mask=mask, need_weights=need_weights
        )
        x = self.norm1(x + self.dropout(attended))
        return self.norm2(x + self.dropout(self.feed_forward(x))), weights


#: The feed-forward activations of `PostNormTransformerBlock`: the exact GELU,
#: ``x Phi(x)``, as BERT's reference code and ``nn.GELU()`` compute it.
ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu}


class TransformerDecoderBlock(TransformerBlock):
    """A pre-norm Transformer decoder block: causal self-attention, cross-attention
    over the encoder states, a feed-forward network, each ``x + Sublayer(LN(x))``.

    The sublayers of Vaswani et al. (2017, section 3.1): the self-attention is
    masked so that position ``i`` sees only positions ``<= i``; in the
    cross-attention the queries come from the decoder and the keys and values
    from the encoder ("memory"). The paper normalises after each residual
    addition; like `TransformerBlock`, whose self-attention, feed-forward network
    and positional schemes this block inherits, it normalises before. Part 6,
    chapter 2. ``dropout`` as in `TransformerBlock`, on the cross-attention too
    (the order of ``nn.TransformerDecoderLayer``).
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        d_ff: int,
        position: str = "none",
        dropout: float = 0.0,
    ):
        super().__init__(d_model, num_heads, d_ff, position, True, dropout)
        self.norm_cross = nn.LayerNorm(d_model)
        self.cross_attention = MultiHeadAttention(d_model, num_heads, dropout=dropout)

    def forward(
        self,
        x: Tensor,
        memory: Tensor,
        memory_mask: Tensor | None = None,
        need_weights: bool = True,
    ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """Return ``(output, self-attention weights, cross-attention weights)``.

        Shapes: ``x`` (batch, tgt, d_model), ``memory`` (batch, src, d_model),
        ``memory_mask`` boolean (True = may attend) broadcastable to (batch, heads,
        tgt, src), e.g. a `padding_mask` of the source; weights (batch, heads, tgt,
        tgt) and (batch, heads, tgt, src), or None when ``need_weights`` is False.
        """
        self.check_inputs(x, None)
        self.check_memory(x, memory, memory_mask)
        h = self.norm1(x)
        seq = x.shape[1]
        attended, self_weights = self.attention(
            h,
            h,
            h,
            mask=self.full_mask(None, seq, x.device),
            need_weights=need_weights,
            **self.position_arguments(seq, seq, x, 1.0),
        )
        x = x + self.dropout(attended)
        h = self.norm_cross(x)
        attended, cross_weights = self.cross_attention(
            h, memory, memory, mask=memory_mask, need_weights=need_weights
        )
        x = x + self.dropout(attended)
        out = x + self.dropout(self.feed_forward(self.norm2(x)))
        return out, self_weights, cross_weights

    def check_memory(self, x: Tensor, memory: object, memory_mask: object) -> None:
        """Raise unless ``memory`` is a finite (batch, src, d_model) tensor of the
        weights' dtype with the batch size of ``x``, and ``memory_mask`` None or a
        boolean mask of the cross-attention scores (batch, heads, tgt, src)."""
        check_sequence(memory, self.attention.d_model, "memory")
        check_module_input(memory, self.linear1.weight, "memory")
        if memory.shape[0] != x.shape[0]:
            raise ValueError(
                f"x and memory must share the batch size, got x {tuple(x.shape)} "
                f"and memory {tuple(memory.shape)}"
            )
        if memory_mask is not None:
            batch, tgt, src = x.shape[0], x.shape[1], memory.shape[1]
            heads = self.attention.num_heads
            check_mask(memory_mask, (batch, heads, tgt, src), "memory_mask")


def token_embedding(vocab_size: int, d_model: int) -> nn.Embedding:
    """Token embeddings with standard deviation ``d_model^-1/2``, so that after the
    ``sqrt(d_model)`` scaling of Vaswani et al. (section 3.4) the entries have unit
    variance, like the sinusoids' (as in fairseq's Transformer)."""
    check_sizes(vocab_size=vocab_size, d_model=d_model)
    embedding = nn.Embedding(vocab_size, d_model)
    nn.init.normal_(embedding.weight, std=d_model**-0.5)
    return embedding


class TransformerEncoder(nn.Module):
    """Token embeddings (scaled by ``sqrt(d_model)``, Vaswani et al., section 3.4),
    the positional scheme ``position``, a stack of `TransformerBlock` and a final
    layer normalisation, which a pre-norm stack needs because its residual stream
    is never normalised otherwise (Part 5). ``max_len`` is the size of the learned
    position table (``position="learned"`` only). With ``cross_attention`` the
    blocks are causal `TransformerDecoderBlock`: the decoder of an
    encoder-decoder, which calls `embed`, its ``blocks`` and ``norm`` with the
    encoder's states (``companion.tasks.translation.TransformerTranslator``).
    ``dropout`` (training mode only) acts on the embedded input, as on "the sums
    of the embeddings and the positional encodings" of Vaswani et al. (2017,
    section 5.4), and in every block (`TransformerBlock`)."""

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
        cross_attention: bool = False,
        dropout: float = 0.0,
    ):
        super().__init__()
        check_choice(position, POSITIONS, "position")
        check_sizes(num_layers=num_layers, max_len=max_len)
        check_dropout(dropout)
        if position == "sinusoidal":
            check_encoding_sizes(d_model, 2, 10000.0)
        self.vocab_size, self.position, self.d_model = vocab_size, position, d_model
        self.embedding = token_embedding(vocab_size, d_model)
        self.learned = (
            LearnedPositionalEmbedding(max_len, d_model)
            if position == "learned"
            else None
        )
        self.blocks = nn.ModuleList(
            TransformerDecoderBlock(d_model, num_heads, d_ff, position, dropout)
            if cross_attention
            else TransformerBlock(d_model, num_heads, d_ff, position, causal, dropout)
            for _ in range(num_layers)
        )
        self.dropout = nn.Dropout(dropout)  # no parameters; acts in training only
        self.norm = nn.LayerNorm(d_model)

    def forward(
        self,
        tokens: Tensor,
        mask: Tensor | None = None,
        position_scale: float = 1.0,
        need_weights: bool = True,
    ) -> tuple[Tensor, list[Tensor | None]]:
        """Return ``(hidden states, attention weights of every layer)`` for integer
        ``tokens`` of shape (batch, seq); the weights are None when
        ``need_weights`` is False (the models' heads ask for none, so that they
        train with the fused kernel). ``position_scale`` multiplies RoPE's
        positions (position interpolation, Part 5, chapter 3)."""
        x = self.embed(tokens)
        weights = []
        for block in self.blocks:
            x, w = block(x, mask, position_scale, need_weights)
            weights.append(w)
        return self.norm(x), weights

    def embed(self, tokens: Tensor) -> Tensor:
        """``sqrt(d_model) E[tokens]`` plus the positions of a scheme that acts on
        the embeddings: (batch, seq, d_model)."""
        max_len = None if self.learned is None else self.learned.max_len
        check_token_ids(tokens, self.vocab_size, max_len=max_len)
        x = self.embedding(tokens) * math.sqrt(self.d_model)
        seq = tokens.shape[1]
        if self.position == "sinusoidal":
            x = x + sinusoidal_encoding(
                seq, self.d_model, device=x.device, dtype=x.dtype
            )
        elif self.position == "learned":
            x = x + self.learned(seq)
        return self.dropout(x)


class TransformerClassifier(nn.Module):
    """A `TransformerEncoder` whose token states are averaged and mapped to class
    logits (Part 5, chapter 2; Part 6)."""

    def __init__(self, vocab_size: int, num_classes: int, **encoder_options):
        super().__init__()
        check_sizes(num_classes=num_classes)
        self.encoder = TransformerEncoder(vocab_size, **encoder_options)
        self.head = nn.Linear(self.encoder.d_model, num_classes)

    def forward(self, tokens: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Class logits of shape (batch, num_classes).

        With ``lengths`` (batch,), sequence ``b`` is its first ``lengths[b]``
        tokens followed by padding: attention never looks at the padding and the
        average runs over the real tokens only, so the padding cannot change the
        answer."""
        if lengths is None:
            hidden, _ = self.encoder(tokens, need_weights=False)
            return self.head(hidden.mean(dim=1))
        check_token_ids(tokens, self.encoder.vocab_size)
        check_lengths(lengths, tokens.shape[1], batch=tokens.shape[0])
        keep = padding_mask(lengths, tokens.shape[1])  # (batch, 1, 1, seq)
        hidden, _ = self.encoder(tokens, keep, need_weights=False)
        return self.head(mean_over_tokens(hidden, lengths))


def mean_over_tokens(hidden: Tensor, lengths: Tensor) -> Tensor:
    """The average of the states ``hidden`` (batch, seq, d_model) of sequence ``b``
    over its first ``lengths[b]`` positions, the real tokens before the padding:
    (batch, d_model). The padding's states cannot change it. Mean pooling, as in
    Sentence-BERT (Reimers & Gurevych, 2019) and the classifier above."""
    check_mean_pooling_inputs(hidden, lengths)
    real = padding_mask(lengths, hidden.shape[1])[:, 0, 0, :, None]  # (batch, seq, 1)
    real = real.to(hidden.dtype)
    total = (hidden * real).sum(dim=1, dtype=accumulation_dtype(hidden.dtype))
    return (total / real.sum(dim=1)).to(hidden.dtype)  # float32 sums for half inputs


class TransformerLanguageModel(nn.Module):
    """A causal `TransformerEncoder` with a linear head predicting the next token at
    every position (Part 5, chapter 3)."""

    def __init__(self, vocab_size: int, **encoder_options):
        super().__init__()
        if "causal" in encoder_options:
            raise ValueError("a language model is always causal; do not pass causal")
        self.encoder = TransformerEncoder(vocab_size, causal=True, **encoder_options)
        self.head = nn.Linear(self.encoder.d_model, vocab_size)

    def forward(self, tokens: Tensor, position_scale: float = 1.0) -> Tensor:
        """Next-token logits of shape (batch, seq, vocab_size); ``position_scale``
        as in `TransformerEncoder` (train length / test length interpolates)."""
        hidden, _ = self.encoder(tokens, None, position_scale, need_weights=False)
        return self.head(hidden)
