import pytest
import torch
import torch.nn.functional as F

from companion.models import (
    POSITIONS,
    TransformerBlock,
    TransformerClassifier,
    TransformerEncoder,
    TransformerLanguageModel,
)
from companion.training import train


def copy_into_torch_layer(block):
    layer = torch.nn.TransformerEncoderLayer(
        16, 4, 32, dropout=0.0, batch_first=True, norm_first=True, dtype=torch.float64
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
        (lambda: TransformerEncoder(10)(torch.ones(2, 3)), "integer tensor of shape"),
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
            "with seq >= 1",
        ),
        (lambda: TransformerClassifier(10, 0), "num_classes must be a positive"),
        (
            lambda: TransformerClassifier(10, 2)(
                torch.ones(2, 3, dtype=torch.long), torch.tensor([3, 0])
            ),
            r"lengths must have shape \(2,\) with every entry >= 1",
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
