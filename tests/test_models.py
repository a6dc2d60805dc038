import pytest
import torch

from companion.attention import padding_mask
from companion.models import (
    POSITIONS,
    PostNormTransformerBlock,
    TransformerBlock,
    TransformerClassifier,
    TransformerDecoderBlock,
    TransformerEncoder,
    TransformerLanguageModel,
    mean_over_tokens,
)
from companion.training import train


def copy_into_torch_layer(block, norm_first=True, **options):
    layer = torch.nn.TransformerEncoderLayer(
        16,
        4,
        32,
        dropout=0.0,
        batch_first=True,
        norm_first=norm_first,
        dtype=torch.float64,
        **options,
    )
    a = block.attention
    with torch.no_grad():
        layer.self_attn.in_proj_weight.copy_(
            torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight])
        )
        layer.self_attn.in_proj_bias.copy_(
            torch.cat([a.q_proj.bias, a.k_proj.bias, a.v_proj.bias])
        )
        layer.self_attn.out_proj.load_state_dict(a.out_proj.state_dict())
        for name in ("linear1", "linear2", "norm1", "norm2"):
            getattr(layer, name).load_state_dict(getattr(block, name).state_dict())
    return layer


def test_block_equals_torch_encoder_layer():
    torch.manual_seed(0)
    block = TransformerBlock(16, 4, 32).double()
    layer = copy_into_torch_layer(block)
    x = torch.randn(3, 7, 16, dtype=torch.float64)
    assert torch.allclose(block(x)[0], layer(x), atol=1e-12)
    causal = TransformerBlock(16, 4, 32, causal=True).double()
    layer = copy_into_torch_layer(causal)
    expected = layer(
        x,
        src_mask=torch.nn.Transformer.generate_square_subsequent_mask(
            7, dtype=torch.float64
        ),
    )
    assert torch.allclose(causal(x)[0], expected, atol=1e-12)


@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_post_norm_block_equals_torch_encoder_layer(activation):
    """Post-norm, as nn.TransformerEncoderLayer's default norm_first=False; with
    the GELU and eps 1e-12, BERT's block."""
    torch.manual_seed(0)
    block = PostNormTransformerBlock(16, 4, 32, activation, eps=1e-12).double()
    layer = copy_into_torch_layer(
        block, norm_first=False, activation=activation, layer_norm_eps=1e-12
    )
    x = torch.randn(3, 7, 16, dtype=torch.float64)
    keep = padding_mask(torch.tensor([7, 4, 1]), 7)
    out, weights = block(x, keep)
    expected = layer(x, src_key_padding_mask=~keep[:, 0, 0, :])
    assert torch.allclose(out, expected, atol=1e-12)
    assert torch.allclose(weights.sum(-1), torch.ones(3, 4, 7, dtype=torch.float64))
    assert float(weights[1, :, :, 4:].abs().max()) == 0.0  # padding never attended


def test_mean_over_tokens_ignores_the_padding():
    hidden = torch.randn(2, 5, 3)
    pooled = mean_over_tokens(hidden, torch.tensor([5, 2]))
    assert torch.allclose(pooled[0], hidden[0].mean(0))
    assert torch.allclose(pooled[1], hidden[1, :2].mean(0))
    changed = hidden.clone()
    changed[1, 2:] = 1e4
    assert torch.equal(mean_over_tokens(changed, torch.tensor([5, 2]))[1], pooled[1])


@pytest.mark.parametrize("position", POSITIONS)
def test_language_model_is_causal(position):
    torch.manual_seed(0)
    model = TransformerLanguageModel(
        11, d_model=16, num_heads=2, num_layers=2, d_ff=32, position=position
    )
    tokens = torch.randint(0, 11, (2, 9))
    changed = tokens.clone()
    changed[:, 6:] = (changed[:, 6:] + 1) % 11
    with torch.no_grad():
        assert torch.allclose(model(tokens)[:, :6], model(changed)[:, :6], atol=1e-6)
        assert not torch.allclose(model(tokens)[:, 6:], model(changed)[:, 6:])


@pytest.mark.parametrize("position", POSITIONS)
def test_only_no_position_is_permutation_equivariant(position):
    torch.manual_seed(0)
    encoder = TransformerEncoder(
        11, d_model=16, num_heads=2, num_layers=2, d_ff=32, position=position
    )
    tokens = torch.randint(0, 11, (4, 8))
    perm = torch.tensor([3, 0, 6, 1, 7, 2, 5, 4])
    with torch.no_grad():
        hidden, _ = encoder(tokens)
        permuted, _ = encoder(tokens[:, perm])
        reversed_hidden, _ = encoder(tokens.flip(1))
    equivariant = torch.allclose(permuted, hidden[:, perm], atol=1e-5)
    assert equivariant == (position == "none")
    # A symmetric bias -m|i - j| cannot tell a sequence from its reverse.
    reversal_equivariant = torch.allclose(reversed_hidden, hidden.flip(1), atol=1e-5)
    assert reversal_equivariant == (position in ("none", "alibi"))


def test_encoder_returns_weights_per_layer():
    encoder = TransformerEncoder(
        10, d_model=16, num_heads=2, num_layers=3, d_ff=32, position="alibi"
    )
    hidden, weights = encoder(torch.randint(0, 10, (2, 5)))
    assert (
        hidden.shape == (2, 5, 16)
        and len(weights) == 3
        and weights[0].shape == (2, 2, 5, 5)
    )


def test_token_embeddings_have_unit_variance_after_scaling():
    """Initialised with std d^-1/2 and scaled by sqrt(d): entries of variance 1, the
    scale of the sinusoidal encoding (Vaswani et al., 2017, section 3.4)."""
    torch.manual_seed(0)
    encoder = TransformerEncoder(1000, d_model=64)
    scaled = encoder.embedding.weight * 64**0.5
    assert abs(scaled.std().item() - 1) < 0.02


@pytest.mark.parametrize("position", POSITIONS)
def test_classifier_ignores_padding(position):
    """A padded batch gives each sequence the logits it gets alone, whatever sits
    in the padding."""
    torch.manual_seed(0)
    model = TransformerClassifier(12, 3, d_model=16, num_heads=2, position=position)
    model.eval()
    lengths = torch.tensor([5, 2, 7])
    tokens = torch.randint(1, 12, (3, 7))
    padded = model(tokens, lengths)
    other_padding = tokens.clone()
    other_padding[0, 5:] = 0
    other_padding[1, 2:] = 11
    assert torch.allclose(model(other_padding, lengths), padded, atol=1e-5)
    for b, n in enumerate(lengths.tolist()):
        alone = model(tokens[b : b + 1, :n])
        assert torch.allclose(padded[b], alone[0], atol=1e-5)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: TransformerBlock(16, 4, 32, position="absolute"),
            "position must be one of",
        ),
        (lambda: TransformerEncoder(10, position="rotary"), "position must be one of"),
        (
            lambda: TransformerEncoder(10)(torch.ones(2, 3)),
            "tokens must be an int64 or int32 tensor",
        ),
        (
            lambda: train(TransformerEncoder(10), lambda m, s: None, steps=0),
            "steps must be a positive",
        ),
        (
            lambda: train(TransformerEncoder(10), lambda m, s: None, steps=1, lr=0.0),
            "lr must be a positive finite number",
        ),
        (
            lambda: train(
                TransformerEncoder(10), lambda m, s: None, steps=1, lr=float("inf")
            ),
            "lr must be a positive finite number",
        ),
        (
            lambda: train(TransformerEncoder(10), lambda m, s: 1.0, steps=1),
            "loss_fn must return a scalar tensor",
        ),
        (
            lambda: train(
                TransformerEncoder(10),
                lambda m, s: torch.tensor(float("nan"), requires_grad=True),
                steps=1,
            ),
            "the loss is nan at step 0",
        ),
        (lambda: TransformerBlock(16, 4, 0), "d_ff must be a positive integer"),
        (lambda: TransformerBlock(16, True, 32), "num_heads must be a positive"),
        (
            lambda: TransformerBlock(16, 4, 32)(torch.ones(2, 3, 8)),
            r"x must have shape \(batch, seq, 16\)",
        ),
        (
            lambda: TransformerBlock(16, 4, 32, causal=True)(
                torch.ones(2, 3, 16), mask=torch.ones(3, 3)
            ),
            "mask must be a boolean tensor",
        ),
        (lambda: TransformerEncoder(10, num_layers=0), "num_layers must be a positive"),
        (lambda: TransformerEncoder(0), "vocab_size must be a positive"),
        (
            lambda: TransformerEncoder(10)(torch.tensor([[1, 10]])),
            r"tokens must lie in \[0, 10\), got values from 1 to 10",
        ),
        (
            lambda: TransformerEncoder(10)(torch.zeros(2, 0, dtype=torch.long)),
            "with batch, seq >= 1",
        ),
        (lambda: TransformerClassifier(10, 0), "num_classes must be a positive"),
        (
            lambda: TransformerClassifier(10, 2)(
                torch.ones(2, 3, dtype=torch.long), torch.tensor([3, 0])
            ),
            r"lengths must lie in \[1, 3\]",
        ),
        (
            lambda: TransformerLanguageModel(10, causal=False),
            "a language model is always causal",
        ),
    ],
)
def test_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("causal", [False, True])
def test_fused_path_equals_the_manual_formula(position, causal):
    """need_weights=False runs PyTorch's fused kernel; in float64 it agrees with
    the manual softmax(QK^T/sqrt(d) + B)V to 1e-12, for every positional scheme,
    with and without padding (whose padded queries see no key at all)."""
    torch.manual_seed(0)
    encoder = TransformerEncoder(11, d_model=16, num_heads=4, position=position)
    encoder = encoder.double()
    for block in encoder.blocks:
        block.causal = causal
    tokens = torch.randint(0, 11, (3, 7))
    keep = padding_mask(torch.tensor([7, 4, 1]), 7)
    for mask in (None, keep, keep & keep.transpose(-2, -1)):
        manual, weights = encoder(tokens, mask, need_weights=True)
        fused, none = encoder(tokens, mask, need_weights=False)
        assert all(w is None for w in none) and weights[0].shape == (3, 4, 7, 7)
        assert torch.allclose(fused, manual, atol=1e-12, rtol=0)


def test_decoder_block_fused_equals_manual():
    torch.manual_seed(0)
    block = TransformerDecoderBlock(16, 4, 32, position="alibi").double()
    x, memory = torch.randn(2, 5, 16).double(), torch.randn(2, 6, 16).double()
    memory_mask = padding_mask(torch.tensor([6, 2]), 6)
    manual = block(x, memory, memory_mask, need_weights=True)
    fused = block(x, memory, memory_mask, need_weights=False)
    assert fused[1] is None and fused[2] is None
    assert manual[2].shape == (2, 4, 5, 6)
    assert torch.allclose(fused[0], manual[0], atol=1e-12, rtol=0)


def test_position_scale_is_an_argument_of_the_forward_pass():
    """RoPE's position interpolation without state: scale 1 changes nothing, and
    any other scale is refused by the schemes whose positions are whole numbers."""
    torch.manual_seed(0)
    model = TransformerLanguageModel(5, d_model=8, num_heads=2, position="rope")
    tokens = torch.randint(0, 5, (2, 6))
    assert torch.equal(model(tokens), model(tokens, position_scale=1.0))
    assert not torch.allclose(model(tokens), model(tokens, position_scale=0.5))
    t5 = TransformerLanguageModel(5, d_model=8, num_heads=2, position="t5")
    with pytest.raises(ValueError, match="position_scale applies to RoPE only"):
        t5(tokens, position_scale=0.5)


def test_sinusoidal_encoder_needs_an_even_width_at_construction():
    with pytest.raises(ValueError, match=r"d_model must be a multiple of 2 \(sin/cos"):
        TransformerEncoder(10, d_model=7, num_heads=1, position="sinusoidal")


# Dropout -------------------------------------------------------------------------


class Contiguous(torch.nn.Module):
    """PyTorch draws dropout's Bernoulli noise in the memory order of its input
    (``empty_like`` keeps the strides); nn.MultiheadAttention returns a transposed
    view, companion a contiguous tensor. Placed before a torch dropout, this makes
    both draw the same noise for the same entries; it changes no value."""

    def forward(self, x):
        return x.contiguous()


def test_block_dropout_in_training_equals_torch_encoder_layer():
    """nn.TransformerEncoderLayer(norm_first=True) drops, in this order, the
    attention weights, the attention output, the feed-forward hidden layer and
    the feed-forward output; from the same random state the block drops the same
    entries, with and without the causal mask, on both attention paths."""
    torch.manual_seed(0)
    for causal in (False, True):
        block = TransformerBlock(16, 4, 32, causal=causal, dropout=0.3).double()
        layer = copy_into_torch_layer(block)
        layer.dropout.p = layer.dropout2.p = 0.3
        layer.dropout1 = torch.nn.Sequential(Contiguous(), torch.nn.Dropout(0.3))
        layer.self_attn.dropout = 0.3
        x = torch.randn(3, 7, 16, dtype=torch.float64)
        src_mask = (
            torch.nn.Transformer.generate_square_subsequent_mask(7, dtype=torch.float64)
            if causal
            else None
        )
        for need_weights in (True, False):
            torch.manual_seed(1)
            ours, _ = block(x, need_weights=need_weights)
            torch.manual_seed(1)
            theirs = layer(x, src_mask=src_mask)
            assert torch.allclose(ours, theirs, atol=1e-12)
        torch.manual_seed(1)
        assert not torch.allclose(block(x)[0], block.eval()(x)[0])
        block.train()


def copy_into_torch_decoder_layer(block, dropout):
    layer = torch.nn.TransformerDecoderLayer(
        16, 4, 32, dropout=dropout, batch_first=True, norm_first=True
    ).double()
    with torch.no_grad():
        for ours, theirs in (
            (block.attention, layer.self_attn),
            (block.cross_attention, layer.multihead_attn),
        ):
            projections = (ours.q_proj, ours.k_proj, ours.v_proj)
            theirs.in_proj_weight.copy_(torch.cat([p.weight for p in projections]))
            theirs.in_proj_bias.copy_(torch.cat([p.bias for p in projections]))
            theirs.out_proj.load_state_dict(ours.out_proj.state_dict())
        for name in ("linear1", "linear2", "norm1"):
            getattr(layer, name).load_state_dict(getattr(block, name).state_dict())
        layer.norm2.load_state_dict(block.norm_cross.state_dict())
        layer.norm3.load_state_dict(block.norm2.state_dict())
    for name in ("dropout1", "dropout2"):  # after attention: see Contiguous
        setattr(layer, name, torch.nn.Sequential(Contiguous(), getattr(layer, name)))
    return layer


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_decoder_block_equals_torch_decoder_layer(dropout):
    """The decoder block is nn.TransformerDecoderLayer(norm_first=True) with a
    causal target mask, in eval mode and, with dropout, in training mode from
    the same random state."""
    torch.manual_seed(0)
    block = TransformerDecoderBlock(16, 4, 32, dropout=dropout).double()
    layer = copy_into_torch_decoder_layer(block, dropout)
    x = torch.randn(2, 5, 16, dtype=torch.float64)
    memory = torch.randn(2, 6, 16, dtype=torch.float64)
    keep = padding_mask(torch.tensor([6, 2]), 6)
    causal = torch.nn.Transformer.generate_square_subsequent_mask(
        5, dtype=torch.float64
    )
    for training in (False, True):
        block.train(training)
        layer.train(training)
        torch.manual_seed(1)
        ours = block(x, memory, keep)[0]
        torch.manual_seed(1)
        theirs = layer(
            x, memory, tgt_mask=causal, memory_key_padding_mask=~keep[:, 0, 0]
        )
        assert torch.allclose(ours, theirs, atol=1e-12)


def test_encoder_dropout_acts_in_training_only():
    """With dropout, training mode changes the output (the embeddings, every
    block); eval mode equals the same weights without dropout, and the
    classifier and the language model pass it on."""
    torch.manual_seed(0)
    options = dict(d_model=16, num_heads=2, num_layers=2, d_ff=32)
    model = TransformerLanguageModel(11, dropout=0.2, **options)
    plain = TransformerLanguageModel(11, **options)
    plain.load_state_dict(model.state_dict())
    assert model.encoder.dropout.p == 0.2
    assert all(b.attention.dropout == 0.2 for b in model.encoder.blocks)
    tokens = torch.randint(0, 11, (2, 9))
    with torch.no_grad():
        torch.manual_seed(1)
        first, second = model(tokens), model(tokens)
        assert not torch.allclose(first, second), "two draws, two outputs"
        model.eval()
        assert torch.equal(model(tokens), plain(tokens))
    classifier = TransformerClassifier(11, 3, dropout=0.2, **options)
    assert all(b.dropout.p == 0.2 for b in classifier.encoder.blocks)


@pytest.mark.parametrize(
    "call",
    [
        lambda: TransformerBlock(8, 2, 16, dropout=1.0),
        lambda: TransformerDecoderBlock(8, 2, 16, dropout=-0.1),
        lambda: TransformerEncoder(10, dropout=True),
    ],
)
def test_bad_dropout(call):
    with pytest.raises(ValueError, match=r"dropout must be a probability in \[0, 1\)"):
        call()
